/*
 * text.h - bytes and characters, knowing nothing of mail: hex digits and UTF-8.
 *
 * Pure functions on caller-owned bytes; no allocation.
 */
#ifndef CLAWBACK_TEXT_H
#define CLAWBACK_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* text_hex_value - the value of a hex digit (either case), -1 for any other byte. */
int text_hex_value(unsigned char c);

/* text_utf8_decode - the length of the valid UTF-8 sequence at p (n > 0 bytes left), with its
 * code point in *cp; 0 when the bytes are not valid UTF-8 (overlong, surrogate, above
 * U+10FFFF, truncated). */
size_t text_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

/* text_utf8_encode - code point cp (below 0x110000) as UTF-8 into out[4]; returns the length. */
size_t text_utf8_encode(uint32_t cp, char out[4]);

#endif
