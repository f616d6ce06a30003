/*
 * url_find.h - find URLs in decoded message text and HTML.
 *
 * Plain text: http://, https://, ftp:// URLs, bare www. hosts, URLs in angle brackets (which
 * may be wrapped over lines by the mailer: the line breaks inside the brackets, with the
 * spaces around them, are dropped), defanged URLs (hxxp://, http[:]//, evil[.]com after such a
 * scheme) and Cisco's BLOCKED...BLOCKED; trailing punctuation that ends a sentence
 * (. , ; : ! ? ' " *) is not part of the URL, nor is a closing ) ] } whose opening one is not
 * inside the URL. Non-ASCII letters are part of a URL (IRIs).
 * HTML (libxml2's HTML parser, forgiving of broken markup): href, src, action and similar
 * attributes, entity-decoded, resolved against <base href> when relative; visible text is
 * scanned as plain text, so link text that is itself a URL is found too.
 *
 * The finder reports candidates as they appear, duplicates included; callers refang, unwrap,
 * canonicalize and de-duplicate. Work is linear in the input and bounded: a candidate longer
 * than URL_FIND_MAX_URL bytes is cut there; at most URL_FIND_MAX_PER_PART candidates are
 * reported per call (the return value says whether that limit was hit).
 */
#ifndef CLAWBACK_URL_FIND_H
#define CLAWBACK_URL_FIND_H

#include <stdbool.h>
#include <stddef.h>

#define URL_FIND_MAX_URL 8192
#define URL_FIND_MAX_PER_PART 100000

typedef enum {
    URL_FROM_TEXT = 0,  /* plain text, or a text node of HTML */
    URL_FROM_HTML_ATTR, /* HTML markup: an attribute (href, src, action, ...), a CSS url(),
                         * a <meta> refresh */
} url_origin_t;

/* url_found_fn - one candidate: url (len bytes, not NUL-terminated, valid only during the
 * call) exactly as found (after entity decoding and base resolution for HTML). */
typedef void (*url_found_fn)(void *ctx, const char *url, size_t len, url_origin_t origin);

/* url_find_text - report every URL candidate in UTF-8 text (len bytes; NUL bytes are
 * treated as separators). Returns the number reported. */
size_t url_find_text(const char *text, size_t len, url_found_fn fn, void *ctx);

/* url_find_html - report every URL candidate in an HTML document (UTF-8, len bytes).
 * Returns the number reported. */
size_t url_find_html(const char *html, size_t len, url_found_fn fn, void *ctx);

#endif
