/*
 * http_client.c - HTTP(S) client on one reused libcurl easy handle; see http_client.h.
 *
 * Every request starts with curl_easy_reset() and re-applies the client's settings, so no
 * per-request option (method, body, headers) can leak into the next request, while the
 * handle's connection, DNS and TLS session caches survive. Bodies are collected in a strbuf
 * capped at max_body: the write callback aborts the transfer as soon as the cap would be
 * passed. Error messages name the method and the URL's scheme://host[:port] only (never its
 * user info, path or query, never a header or a body).
 */
#include "http_client.h"

#include <stdatomic.h>

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "program.h"
#include "strbuf.h"
#include "util.h"

#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_TOTAL_TIMEOUT_MS 60000
#define HTTP_DEFAULT_MAX_BODY ((size_t)16 * 1024 * 1024)
#define HTTP_RETRY_AFTER_MAX ((int64_t)INT32_MAX)

struct http_client {
    CURL *curl;
    int64_t connect_timeout_ms;
    int64_t total_timeout_ms;
    size_t max_body;
    bool insecure;
    char *ca_file;
    char *proxy;
    char *user_agent;
    char curl_error[CURL_ERROR_SIZE];
    char errstr[512];
    const atomic_int *cancel;
};

/* One request's collected response. */
typedef struct {
    strbuf_t body;
    bool too_large;        /* the write callback refused data past max_body */
    int64_t retry_after_s; /* -1 when absent */
    strbuf_t headers;      /* the final response's header lines, capped */
    const atomic_int *cancel;
} http_transfer_t;

#define HTTP_MAX_HEADERS 32768

static pthread_once_t http_global_once = PTHREAD_ONCE_INIT;
static CURLcode http_global_rc = CURLE_FAILED_INIT;

/* http_global_init - initialise libcurl once per process. */
static void http_global_init(void)
{
    http_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void http_client_set_error(http_client_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* http_client_set_error - format the last failure's message. */
static void http_client_set_error(http_client_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->errstr, sizeof(self->errstr), fmt, ap);
    va_end(ap);
}

/* http_url_origin - write url's "scheme://host[:port]" (no user info, path or query) to out. */
static void http_url_origin(const char *url, char *out, size_t outsize)
{
    const char *sep = strstr(url, "://");
    size_t scheme_len = 0;
    const char *authority = url;
    if (sep) {
        scheme_len = (size_t)(sep - url);
        for (size_t i = 0; i < scheme_len; i++) {
            if (!isalnum((unsigned char)url[i]) && url[i] != '+' && url[i] != '-' &&
                url[i] != '.') {
                scheme_len = 0;
                break;
            }
        }
        if (scheme_len == 0 || scheme_len > 16) {
            snprintf(out, outsize, "(invalid URL)");
            return;
        }
        authority = sep + 3;
    }
    size_t auth_len = strcspn(authority, "/?#");
    const char *at = memrchr(authority, '@', auth_len);
    const char *host = at ? at + 1 : authority;
    size_t host_len = auth_len - (size_t)(host - authority);
    if (host_len > 260)
        host_len = 260;
    for (size_t i = 0; i < host_len; i++) {
        if (!isgraph((unsigned char)host[i])) {
            snprintf(out, outsize, "(invalid URL)");
            return;
        }
    }
    snprintf(out, outsize, "%.*s%s%.*s", (int)scheme_len, url, sep ? "://" : "",
             (int)host_len, host);
}

/* http_parse_retry_after - seconds from now for a Retry-After value (n bytes), -1 if invalid. */
static int64_t http_parse_retry_after(const char *value, size_t n)
{
    while (n > 0 && isspace((unsigned char)*value)) {
        value++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)value[n - 1]))
        n--;
    if (n == 0)
        return -1;
    size_t digits = 0;
    while (digits < n && isdigit((unsigned char)value[digits]))
        digits++;
    if (digits == n) {
        int64_t seconds = 0;
        for (size_t i = 0; i < n; i++) {
            seconds = seconds * 10 + (value[i] - '0');
            if (seconds > HTTP_RETRY_AFTER_MAX)
                return HTTP_RETRY_AFTER_MAX;
        }
        return seconds;
    }
    char date[128];
    if (n >= sizeof(date))
        return -1;
    memcpy(date, value, n);
    date[n] = '\0';
    time_t when = curl_getdate(date, NULL);
    if (when == (time_t)-1)
        return -1;
    int64_t delta = (int64_t)when - (int64_t)time(NULL);
    if (delta < 0)
        return 0;
    return delta > HTTP_RETRY_AFTER_MAX ? HTTP_RETRY_AFTER_MAX : delta;
}

/* http_write_cb - libcurl body callback: append to the capped buffer, abort past max_body. */
static size_t http_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_transfer_t *xfer = userdata;
    size_t n = size * nmemb;
    if (strbuf_append(&xfer->body, ptr, n) < 0) {
        xfer->too_large = true;
        return n == 0 ? 1 : 0; /* anything but n aborts the transfer */
    }
    return n;
}

/* http_header_cb - libcurl header callback: pick up Retry-After of the final response. */
static size_t http_header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
    http_transfer_t *xfer = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    const size_t name_len = sizeof(name) - 1;
    if (n >= 5 && strncmp(buffer, "HTTP/", 5) == 0) {
        xfer->retry_after_s = -1; /* a new (possibly final) response begins */
        xfer->headers.len = 0;
    } else if (n >= name_len && strncasecmp(buffer, name, name_len) == 0) {
        xfer->retry_after_s = http_parse_retry_after(buffer + name_len, n - name_len);
    }
    (void)strbuf_append(&xfer->headers, buffer, n); /* past the cap: later headers are dropped */
    return n;
}

/* http_progress_cb - libcurl progress callback: abort when the caller cancels. */
static int http_progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const http_transfer_t *xfer = userdata;
    return xfer->cancel && atomic_load(xfer->cancel) ? 1 : 0;
}

/* http_classify - the error class of a libcurl failure. */
static http_error_t http_classify(CURLcode rc, bool too_large)
{
    if (too_large)
        return HTTP_ERROR_TOO_LARGE;
    switch (rc) {
    case CURLE_OK:
        return HTTP_ERROR_NONE;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return HTTP_ERROR_NETWORK;
    case CURLE_OPERATION_TIMEDOUT:
        return HTTP_ERROR_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return HTTP_ERROR_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return HTTP_ERROR_TOO_LARGE;
    default:
        return HTTP_ERROR_OTHER;
    }
}

/* http_clamp_long - an int64 millisecond value as a long for libcurl. */
static long http_clamp_long(int64_t v)
{
    if (v > LONG_MAX)
        return LONG_MAX;
    return v < 0 ? 0 : (long)v;
}

http_client_t *http_client_new(const http_client_options_t *options)
{
    pthread_once(&http_global_once, http_global_init);
    if (http_global_rc != CURLE_OK)
        return NULL;
    CURL *curl = curl_easy_init();
    if (!curl)
        return NULL;
    http_client_t *self = util_xcalloc(1, sizeof(*self));
    self->curl = curl;
    self->connect_timeout_ms = HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    self->total_timeout_ms = HTTP_DEFAULT_TOTAL_TIMEOUT_MS;
    self->max_body = HTTP_DEFAULT_MAX_BODY;
    if (options) {
        if (options->connect_timeout_ms > 0)
            self->connect_timeout_ms = options->connect_timeout_ms;
        if (options->total_timeout_ms > 0)
            self->total_timeout_ms = options->total_timeout_ms;
        if (options->max_body > 0)
            self->max_body = options->max_body;
        self->insecure = options->insecure;
        if (options->ca_file && options->ca_file[0])
            self->ca_file = util_xstrdup(options->ca_file);
        if (options->proxy && options->proxy[0])
            self->proxy = util_xstrdup(options->proxy);
        if (options->user_agent && options->user_agent[0])
            self->user_agent = util_xstrdup(options->user_agent);
    }
    if (!self->user_agent)
        self->user_agent = util_xstrdup("clawback/" CLAWBACK_VERSION);
    return self;
}

void http_client_destroy(http_client_t **self)
{
    if (!self || !*self)
        return;
    http_client_t *c = *self;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->ca_file);
    free(c->proxy);
    free(c->user_agent);
    free(c);
    *self = NULL;
}

const char *http_client_errstr(const http_client_t *self)
{
    return self ? self->errstr : "no HTTP client";
}

void http_response_release(http_response_t *response)
{
    if (!response)
        return;
    free(response->body);
    free(response->content_type);
    free(response->headers);
    memset(response, 0, sizeof(*response));
    response->retry_after_s = -1;
}

bool http_error_retryable(const http_response_t *response)
{
    if (!response)
        return false;
    switch (response->error) {
    case HTTP_ERROR_NETWORK:
    case HTTP_ERROR_TIMEOUT:
        return true;
    case HTTP_ERROR_NONE:
        return response->status == 429 ||
               (response->status >= 500 && response->status <= 599 && response->status != 501);
    default:
        return false;
    }
}

/* http_build_headers - the request's header list (*out, may stay NULL); 0 or -1 with errstr. */
static int http_build_headers(http_client_t *self, const char *method, const char *origin,
                              const char *const *headers, struct curl_slist **out)
{
    struct curl_slist *list = NULL;
    bool have_expect = false;
    for (size_t i = 0; headers && headers[i]; i++) {
        const char *h = headers[i];
        if (strpbrk(h, "\r\n")) {
            http_client_set_error(self, "%s %s: request header %zu contains a line break",
                                  method, origin, i);
            curl_slist_free_all(list);
            return -1;
        }
        if (strncasecmp(h, "expect:", 7) == 0)
            have_expect = true;
        struct curl_slist *next = curl_slist_append(list, h);
        if (!next) {
            http_client_set_error(self, "%s %s: out of memory building request headers",
                                  method, origin);
            curl_slist_free_all(list);
            return -1;
        }
        list = next;
    }
    if (!have_expect) {
        /* No "Expect: 100-continue" round trip before larger bodies. */
        struct curl_slist *next = curl_slist_append(list, "Expect:");
        if (!next) {
            http_client_set_error(self, "%s %s: out of memory building request headers",
                                  method, origin);
            curl_slist_free_all(list);
            return -1;
        }
        list = next;
    }
    *out = list;
    return 0;
}

/* http_apply_options - reset the handle and apply the client's settings and the request's. */
static CURLcode http_apply_options(http_client_t *self, const char *method, const char *url,
                                   struct curl_slist *headers, const char *body,
                                   size_t body_len, http_transfer_t *xfer)
{
    CURL *c = self->curl;
    CURLcode rc = CURLE_OK;
    curl_easy_reset(c);
    self->curl_error[0] = '\0';
#define HTTP_SETOPT(opt, val)                                                              \
    do {                                                                                   \
        if (rc == CURLE_OK)                                                                \
            rc = curl_easy_setopt(c, opt, val);                                            \
    } while (0)
    HTTP_SETOPT(CURLOPT_ERRORBUFFER, self->curl_error);
    HTTP_SETOPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    HTTP_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    HTTP_SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    HTTP_SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    HTTP_SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    HTTP_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    HTTP_SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    HTTP_SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    HTTP_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, http_clamp_long(self->connect_timeout_ms));
    HTTP_SETOPT(CURLOPT_TIMEOUT_MS, http_clamp_long(self->total_timeout_ms));
    HTTP_SETOPT(CURLOPT_SSL_VERIFYPEER, self->insecure ? 0L : 1L);
    HTTP_SETOPT(CURLOPT_SSL_VERIFYHOST, self->insecure ? 0L : 2L);
    if (self->ca_file)
        HTTP_SETOPT(CURLOPT_CAINFO, self->ca_file);
    if (self->proxy)
        HTTP_SETOPT(CURLOPT_PROXY, self->proxy);
    HTTP_SETOPT(CURLOPT_USERAGENT, self->user_agent);
    HTTP_SETOPT(CURLOPT_WRITEFUNCTION, http_write_cb);
    HTTP_SETOPT(CURLOPT_WRITEDATA, xfer);
    HTTP_SETOPT(CURLOPT_HEADERFUNCTION, http_header_cb);
    HTTP_SETOPT(CURLOPT_HEADERDATA, xfer);
    if (xfer->cancel) {
        HTTP_SETOPT(CURLOPT_NOPROGRESS, 0L);
        HTTP_SETOPT(CURLOPT_XFERINFOFUNCTION, http_progress_cb);
        HTTP_SETOPT(CURLOPT_XFERINFODATA, xfer);
    }
    HTTP_SETOPT(CURLOPT_URL, url);
    if (headers)
        HTTP_SETOPT(CURLOPT_HTTPHEADER, headers);

    bool is_get = strcmp(method, "GET") == 0;
    bool is_head = strcmp(method, "HEAD") == 0;
    bool is_post = strcmp(method, "POST") == 0;
    bool sends_body = body != NULL || is_post || strcmp(method, "PUT") == 0 ||
                      strcmp(method, "PATCH") == 0;
    if (is_head) {
        HTTP_SETOPT(CURLOPT_NOBODY, 1L);
    } else if (sends_body) {
        /* POSTFIELDS makes libcurl send Content-Length (0 for an empty body). */
        HTTP_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        HTTP_SETOPT(CURLOPT_POSTFIELDS, body ? body : "");
        if (!is_post)
            HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, method);
    } else if (is_get) {
        HTTP_SETOPT(CURLOPT_HTTPGET, 1L);
    } else {
        HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }
#undef HTTP_SETOPT
    return rc;
}

/* http_method_supported - whether method is one this client sends. */
static bool http_method_supported(const char *method)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(methods); i++)
        if (strcmp(method, methods[i]) == 0)
            return true;
    return false;
}

int http_client_request(http_client_t *self, const char *method, const char *url,
                        const char *const *headers, const char *body, size_t body_len,
                        http_response_t *response)
{
    if (!response)
        return -1;
    memset(response, 0, sizeof(*response));
    response->retry_after_s = -1;
    response->error = HTTP_ERROR_OTHER;
    if (!self)
        return -1;
    if (!method || !url || !url[0]) {
        http_client_set_error(self, "HTTP request without a method or URL");
        return -1;
    }
    char origin[300];
    http_url_origin(url, origin, sizeof(origin));
    if (!http_method_supported(method)) {
        http_client_set_error(self, "unsupported HTTP method for %s", origin);
        return -1;
    }
    if (!body && body_len > 0) {
        http_client_set_error(self, "%s %s: body length without a body", method, origin);
        return -1;
    }
    if (body && strcmp(method, "HEAD") == 0) {
        http_client_set_error(self, "%s %s: HEAD request with a body", method, origin);
        return -1;
    }
    struct curl_slist *list = NULL;
    if (http_build_headers(self, method, origin, headers, &list) < 0)
        return -1;

    http_transfer_t xfer;
    memset(&xfer, 0, sizeof(xfer));
    strbuf_init(&xfer.body, self->max_body);
    xfer.retry_after_s = -1;
    strbuf_init(&xfer.headers, HTTP_MAX_HEADERS);
    xfer.cancel = self->cancel;

    CURLcode rc = http_apply_options(self, method, url, list, body, body_len, &xfer);
    if (rc != CURLE_OK) {
        http_client_set_error(self, "%s %s: cannot set up request: %s", method, origin,
                              curl_easy_strerror(rc));
        curl_easy_reset(self->curl);
        curl_slist_free_all(list);
        strbuf_release(&xfer.body);
        strbuf_release(&xfer.headers);
        return -1;
    }
    rc = curl_easy_perform(self->curl);
    long status = 0;
    char *content_type = NULL;
    if (rc == CURLE_OK && !xfer.too_large) {
        curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &status);
        const char *ct = NULL;
        if (curl_easy_getinfo(self->curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK)
            content_type = util_xstrdup(ct);
    }
    char curl_error[CURL_ERROR_SIZE];
    util_strlcpy(curl_error, self->curl_error, sizeof(curl_error));
    /* Drop the handle's pointers to the header list, the body and the stack transfer state;
     * the connection cache survives the reset. */
    curl_easy_reset(self->curl);
    curl_slist_free_all(list);

    if (rc != CURLE_OK || xfer.too_large) {
        response->error = http_classify(rc, xfer.too_large);
        if (response->error == HTTP_ERROR_TOO_LARGE)
            http_client_set_error(self, "%s %s: response body larger than %zu bytes", method,
                                  origin, self->max_body);
        else if (rc == CURLE_ABORTED_BY_CALLBACK)
            http_client_set_error(self, "%s %s: cancelled", method, origin);
        else if (curl_error[0])
            http_client_set_error(self, "%s %s: %s", method, origin, curl_error);
        else
            http_client_set_error(self, "%s %s: %s", method, origin, curl_easy_strerror(rc));
        strbuf_release(&xfer.body);
        strbuf_release(&xfer.headers);
        return -1;
    }

    response->status = status;
    response->body_len = xfer.body.len;
    response->body = strbuf_detach(&xfer.body);
    response->content_type = content_type;
    response->retry_after_s = xfer.retry_after_s;
    response->headers = strbuf_detach(&xfer.headers);
    response->error = HTTP_ERROR_NONE;
    return 0;
}

int http_response_header(const http_response_t *response, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *line = response->headers; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *end = line + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            size_t vlen = (size_t)(end - v);
            if (vlen >= size)
                return -1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return (int)vlen;
        }
        line = eol ? eol + 1 : line + len;
    }
    return -1;
}

void http_client_set_cancel(http_client_t *self, const atomic_int *cancel)
{
    self->cancel = cancel;
}
