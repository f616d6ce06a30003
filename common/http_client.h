/*
 * http_client.h - an HTTP(S) client (libcurl) that returns errors instead of exiting.
 *
 * One http_client_t holds one curl easy handle (connections are reused between requests)
 * and its settings: timeouts, a maximum response body size, TLS verification (on unless the
 * caller turns it off), an optional CA file and proxy (otherwise libcurl reads the usual
 * http_proxy / https_proxy / no_proxy environment variables). Nothing here logs secrets:
 * request headers and bodies are never written anywhere.
 *
 * A request either completes (any HTTP status, including 4xx/5xx: the caller decides) and
 * returns 0, or fails (DNS, connect, TLS, timeout, body larger than the maximum, ...) and
 * returns -1 with a message in http_client_errstr() and a class in the response's `error`.
 */
#ifndef CLAWBACK_HTTP_CLIENT_H
#define CLAWBACK_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zero (or negative) numbers select the default. */
typedef struct {
    int64_t connect_timeout_ms; /* default 10 s */
    int64_t total_timeout_ms;   /* whole request, default 60 s */
    size_t max_body;            /* largest response body accepted, default 16 MiB */
    bool insecure;              /* true: do not verify TLS peer and host (tests only) */
    const char *ca_file;        /* CA bundle used instead of the system one, or NULL */
    const char *proxy;          /* proxy URL, or NULL for the environment's */
    const char *user_agent;     /* or NULL for "clawback/<version>" */
} http_client_options_t;

typedef enum {
    HTTP_ERROR_NONE = 0,
    HTTP_ERROR_NETWORK,   /* DNS, connect, reset: worth retrying */
    HTTP_ERROR_TIMEOUT,   /* worth retrying */
    HTTP_ERROR_TLS,       /* certificate or handshake: not retried */
    HTTP_ERROR_TOO_LARGE, /* body exceeded max_body: not retried */
    HTTP_ERROR_OTHER,
} http_error_t;

typedef struct {
    long status;          /* HTTP status, 0 when the request failed */
    char *body;           /* NUL-terminated, owned by the response; NULL on failure */
    size_t body_len;
    char *content_type;   /* or NULL; owned by the response */
    int64_t retry_after_s; /* Retry-After in seconds from now (delta or HTTP date; a past date
                            * gives 0), -1 when absent, unparsable or the request failed */
    http_error_t error;
    char *headers;        /* the final response's header lines ("Name: value\r\n"...), owned;
                           * NULL on failure */
} http_response_t;

typedef struct http_client http_client_t;

/* http_client_new - a client with the given options (NULL: defaults); strings are copied.
 * Caller owns the result; NULL only when libcurl cannot be initialised. */
http_client_t *http_client_new(const http_client_options_t *options);
/* http_client_destroy - free; accepts NULL, clears the pointer. */
void http_client_destroy(http_client_t **self);

/* http_client_request - perform method (GET, HEAD, POST, PUT, PATCH or DELETE) on url (http
 * or https only; redirects are not followed) with the given extra header lines ("Name: value",
 * NULL-terminated array, may be NULL; no CR or LF) and body (may be NULL). POST, PUT and PATCH
 * always send a Content-Length (0 without a body); a body is sent with libcurl's default
 * Content-Type (application/x-www-form-urlencoded) unless the headers name one. Overwrites
 * *response without freeing what it held, even on failure (release it with
 * http_response_release). 0 when an HTTP response arrived, -1 otherwise. */
int http_client_request(http_client_t *self, const char *method, const char *url,
                        const char *const *headers, const char *body, size_t body_len,
                        http_response_t *response);
/* http_client_errstr - the last failure's message ("" before any failure; a success does not
 * clear it). It names the method and the URL's scheme://host:port only: no user info, path,
 * query, header or body. */
const char *http_client_errstr(const http_client_t *self);

/* http_response_header - copy the value of the first header called name (case-insensitive)
 * into out; its length, or -1 when absent or longer than size - 1. */
int http_response_header(const http_response_t *response, const char *name, char *out, size_t size);

/* http_client_set_cancel - while *cancel is non-zero, requests of this client abort (another
 * thread sets it to stop one quickly); NULL: never. The flag is the caller's. */
void http_client_set_cancel(http_client_t *self, const atomic_int *cancel);

/* http_response_release - free a response's contents and empty it; the struct itself is the
 * caller's. Accepts NULL. */
void http_response_release(http_response_t *response);

/* http_error_retryable - whether a failure (network, timeout) or a status (429, 5xx except
 * 501) is worth retrying. */
bool http_error_retryable(const http_response_t *response);

#endif
