/*
 * url_unwrap.h - undo what mail gateways and analysts do to URLs before canonicalization.
 *
 * Refanging turns an analyst's defanged URL back into a URL (hxxp -> http, [.] (.) {.} [dot]
 * -> ., [:] -> :, [@] [at] -> @). Unwrapping recovers the URL that a gateway's rewrite points
 * to: Microsoft Safe Links, Proofpoint URL Defense v1, v2 and v3, Cisco's secure-web rewrite
 * and the BLOCKED...BLOCKED defang of Cisco's gateway. Wrappers nest, so url_unwrap_layers
 * repeats until nothing more comes off; both the outer and every inner URL are observables.
 * Pure functions on bytes: no allocation beyond the caller's buffers (url_unwrap_layers keeps
 * two scratch buffers of its own for the duration of the call), bounded depth. No layer is
 * longer than the URL it came out of, so the work is linear in the input per layer.
 */
#ifndef CLAWBACK_URL_UNWRAP_H
#define CLAWBACK_URL_UNWRAP_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define URL_UNWRAP_MAX_DEPTH 8

typedef enum {
    URL_WRAP_NONE = 0,
    URL_WRAP_DEFANG,       /* analyst defanging (hxxp, [.], ...) */
    URL_WRAP_SAFELINKS,    /* *.safelinks.protection.outlook.com/?url= */
    URL_WRAP_PROOFPOINT_V1, /* urldefense.proofpoint.com/v1/url?u= */
    URL_WRAP_PROOFPOINT_V2, /* urldefense.proofpoint.com/v2/url?u= */
    URL_WRAP_PROOFPOINT_V3, /* urldefense.com/v3/__URL__;... */
    URL_WRAP_CISCO,        /* secure-web.cisco.com/<token>/<percent-encoded URL> */
    URL_WRAP_BLOCKED,      /* BLOCKED<defanged URL>BLOCKED */
} url_wrap_t;

/* url_wrap_name - a short lowercase name of a wrapper kind ("safelinks", ...; static). */
const char *url_wrap_name(url_wrap_t kind);

/* url_refang - write url with defanging undone into out (reset first). Returns true when
 * anything changed (out then holds the refanged URL), false otherwise (out left empty). */
bool url_refang(const char *url, size_t len, strbuf_t *out);

/* url_unwrap_once - when url (already refanged) is a known gateway rewrite, write the URL it
 * wraps into out (reset first) and return its kind; otherwise return URL_WRAP_NONE. */
url_wrap_t url_unwrap_once(const char *url, size_t len, strbuf_t *out);

/* url_layer_fn - one layer of a URL: the outermost first (via URL_WRAP_NONE), then each inner
 * URL with the wrapper it came out of. url is not NUL-terminated and only valid during the call. */
typedef void (*url_layer_fn)(void *ctx, const char *url, size_t len, url_wrap_t via);

/* url_unwrap_layers - call fn for url and for every URL inside it: refang, then unwrap,
 * repeatedly, at most URL_UNWRAP_MAX_DEPTH layers. Returns the number of layers reported. */
int url_unwrap_layers(const char *url, size_t len, url_layer_fn fn, void *ctx);

#endif
