/*
 * strbuf.h - a growable byte buffer with a hard maximum size.
 *
 * Every append checks the maximum first: a buffer fed from outside (an HTTP body, a log
 * line, a JSON document) can never grow past what its owner allowed. An append that would
 * exceed it appends nothing, sets `overflow` and returns -1.
 */
#ifndef CLAWBACK_STRBUF_H
#define CLAWBACK_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data;     /* always NUL-terminated when non-NULL; owned by the buffer */
    size_t len;
    size_t cap;
    size_t max;     /* largest len allowed; 0 means SIZE_MAX / 2 */
    bool overflow;  /* set once an append was refused */
} strbuf_t;

/* strbuf_init - empty buffer that may grow to max bytes (0: unbounded in practice). */
void strbuf_init(strbuf_t *sb, size_t max);
/* strbuf_release - free the storage; the buffer is empty and reusable afterwards. */
void strbuf_release(strbuf_t *sb);
/* strbuf_reset - empty the buffer, keep the storage. */
void strbuf_reset(strbuf_t *sb);
/* strbuf_append - append n bytes; 0, or -1 when the maximum would be exceeded. */
int strbuf_append(strbuf_t *sb, const void *data, size_t n);
/* strbuf_appends - append a C string. */
int strbuf_appends(strbuf_t *sb, const char *s);
/* strbuf_append_int - append v in decimal; strbuf_appendv - append n C strings in a row (both
 * without printf, for lines built by the thousand). */
int strbuf_append_int(strbuf_t *sb, int64_t v);
int strbuf_appendv(strbuf_t *sb, const char *const *parts, size_t n);
/* strbuf_append_escaped - append s percent-encoded (%XX, uppercase hex): RFC 3986 unreserved
 * characters (A-Z a-z 0-9 - . _ ~) and those in keep (may be NULL) stay as they are. 0 or -1
 * (the maximum; the part that fit stays). */
int strbuf_append_escaped(strbuf_t *sb, const char *s, const char *keep);
/* strbuf_appendf - append printf-formatted text. */
int strbuf_appendf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vappendf(strbuf_t *sb, const char *fmt, va_list ap);
/* strbuf_append_json_string - append s (n bytes) as a quoted JSON string; bytes that are not
 * valid UTF-8 are replaced by U+FFFD so the output is always valid JSON. */
int strbuf_append_json_string(strbuf_t *sb, const char *s, size_t n);
/* strbuf_detach - hand the contents to the caller (caller frees); the buffer is emptied. */
char *strbuf_detach(strbuf_t *sb);

#endif
