/*
 * url_canon.h - the canonical form of a URL, exactly as Google Safe Browsing v4 defines it
 * ("URLs and hashing", ../shared/reference/protocols.md section 7).
 *
 * The canonical form is what the index stores and what a verdict is matched on, so the same
 * function serves both sides. Only web URLs are canonicalized: http, https and ftp (a missing
 * scheme means http); anything else (mailto:, javascript:, data:) is refused, as is a URL
 * without a usable host. Work is bounded: input longer than URL_CANON_MAX_INPUT bytes is
 * refused, and the repeated percent-unescaping is done in one linear pass that reaches the same
 * fixed point as unescaping round after round (so "%25" nested a thousand times costs nothing).
 *
 * Decisions the page leaves open: user info ("user:pass@") is dropped; the port is dropped
 * whatever it is (also out of range or not numeric); '\' counts as '/' in the slashes after
 * the scheme and in the path, as in browsers; an IPv6 literal is kept as written, lowercased,
 * in brackets; an IPv4 address follows Chrome's syntax (0x hex, leading-0 octal, 1 to 4
 * parts): a host whose parts are not all such numbers is a host name, one whose numbers are
 * out of range is URL_CANON_BAD_HOST; a non-ASCII host that IDNA refuses (or that is not
 * UTF-8) is kept as its percent-escaped bytes.
 */
#ifndef CLAWBACK_URL_CANON_H
#define CLAWBACK_URL_CANON_H

#include <stddef.h>

#include "strbuf.h"

#define URL_CANON_MAX_INPUT 8192

typedef enum {
    URL_CANON_OK = 0,
    URL_CANON_EMPTY,      /* nothing left after trimming */
    URL_CANON_TOO_LONG,   /* input longer than URL_CANON_MAX_INPUT */
    URL_CANON_BAD_SCHEME, /* a scheme other than http, https, ftp */
    URL_CANON_BAD_HOST,   /* no host, or a host that cannot be a host name or address */
} url_canon_status_t;

/* url_canon - write the canonical form of url (len bytes, need not be NUL-terminated) into out,
 * which is reset first. Returns URL_CANON_OK, or another status with out left empty (when the
 * result would pass out's maximum, URL_CANON_TOO_LONG). */
url_canon_status_t url_canon(const char *url, size_t len, strbuf_t *out);

/* url_canon_strerror - a short English reason for a status (static string). */
const char *url_canon_strerror(url_canon_status_t status);

/* url_canon_host - the host of a canonical URL (as written by url_canon): sets *host_len and
 * returns a pointer into canon, or NULL when canon has no "scheme://host" shape. */
const char *url_canon_host(const char *canon, size_t *host_len);

#endif
