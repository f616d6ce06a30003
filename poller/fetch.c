/*
 * fetch.c - the worker thread that talks to one feed; see fetch.h.
 */
#include "fetch.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "strbuf.h"
#include "util.h"

#define FETCH_MAX_SECRET 4096
#define FETCH_TRACE_BODY 4096 /* bytes of a response shown in a Trace line */

struct fetch {
    zactor_t *actor;
    const config_feed_t *feed;
    atomic_int cancel;
    bool busy;
};

typedef struct {
    const config_feed_t *feed;
    atomic_int *cancel;
    http_client_t *http;
} fetch_worker_t;

/* ------------------------------------------------------------------ jobs */

fetch_job_t *fetch_job_new(const config_feed_t *feed)
{
    fetch_job_t *job = util_xcalloc(1, sizeof(*job));
    job->feed = feed;
    job->retry_after_s = -1;
    return job;
}

void fetch_job_destroy(fetch_job_t **jobp)
{
    if (!jobp || !*jobp)
        return;
    fetch_job_t *job = *jobp;
    free(job->since);
    free(job->next);
    free(job->token);
    free(job->region_uri);
    feed_page_release(&job->page);
    free(job->date_added_last);
    free(job->new_token);
    free(job->new_region_uri);
    for (size_t i = 0; i < job->nlines; i++)
        free(job->lines[i].message);
    free(job->lines);
    free(job);
    *jobp = NULL;
}

/* fetch_line - add a log line to the job ("ECS: " is the caller's). */
static void fetch_line(fetch_job_t *job, log_level_t level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fetch_line(fetch_job_t *job, log_level_t level, const char *fmt, ...)
{
    strbuf_t sb;
    strbuf_init(&sb, 8192);
    va_list ap;
    va_start(ap, fmt);
    (void)strbuf_vappendf(&sb, fmt, ap); /* a longer line is cut */
    va_end(ap);
    job->lines = util_xrealloc(job->lines, (job->nlines + 1) * sizeof(*job->lines));
    job->lines[job->nlines].level = level;
    job->lines[job->nlines].message = strbuf_detach(&sb);
    job->nlines++;
}

/* fetch_fail - mark the job failed with a reason. */
static int fetch_fail(fetch_job_t *job, bool retryable, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fetch_fail(fetch_job_t *job, bool retryable, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->error, sizeof(job->error), fmt, ap);
    va_end(ap);
    job->status = -1;
    job->retryable = retryable;
    return -1;
}

/* ------------------------------------------------------------------ helpers */

/* fetch_read_secret - the first line of the credentials file into out; 0 (empty when no file
 * is configured) or -1 with the reason in the job. */
static int fetch_read_secret(fetch_job_t *job, char *out, size_t size)
{
    out[0] = '\0';
    if (!*job->feed->credentials_file)
        return 0;
    char *data = NULL, why[256];
    size_t len = 0;
    if (util_read_file(job->feed->credentials_file, FETCH_MAX_SECRET, &data, &len, why, sizeof(why)) < 0)
        return fetch_fail(job, false, "cannot read credentials_file: %s", why);
    size_t n = strcspn(data, "\r\n");
    if (n >= size || n == 0) {
        free(data);
        return fetch_fail(job, false, "credentials_file %s: the first line is empty or too long",
                          job->feed->credentials_file);
    }
    memcpy(out, data, n);
    out[n] = '\0';
    OPENSSL_cleanse(data, len);
    free(data);
    return 0;
}

/* fetch_append_url - append base without its trailing slashes, then path. */
static void fetch_append_url(strbuf_t *sb, const char *base, const char *path)
{
    size_t start = sb->len;
    (void)strbuf_appends(sb, base);
    while (sb->len > start && sb->data[sb->len - 1] == '/')
        sb->data[--sb->len] = '\0';
    (void)strbuf_appends(sb, path);
}

/* fetch_py_repr - s as a Python string literal in single quotes (the seed's log shows dicts). */
static void fetch_py_repr(strbuf_t *sb, const char *s)
{
    (void)strbuf_append(sb, "'", 1);
    for (; *s; s++) {
        if (*s == '\'' || *s == '\\')
            (void)strbuf_append(sb, "\\", 1);
        (void)strbuf_append(sb, s, 1);
    }
    (void)strbuf_append(sb, "'", 1);
}

/* fetch_body_excerpt - a short printable excerpt of a response body for a line. */
static void fetch_body_excerpt(const http_response_t *r, size_t max, char *out, size_t size)
{
    size_t n = r->body ? r->body_len : 0;
    if (n > max)
        n = max;
    if (n >= size)
        n = size - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r->body[i];
        out[i] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* fetch_json_message - the "message" member of a JSON error body, or "". */
static void fetch_json_message(const http_response_t *r, char *out, size_t size)
{
    out[0] = '\0';
    if (!r->body)
        return;
    json_t *root = json_loadb(r->body, r->body_len, 0, NULL);
    const char *m = json_is_object(root) ? json_string_value(json_object_get(root, "message")) : NULL;
    if (m)
        util_strlcpy(out, m, size);
    json_decref(root);
}

/* fetch_request - one HTTP request; 0 when an answer came (any status), -1 (job failed). */
static int fetch_request(fetch_worker_t *w, fetch_job_t *job, const char *method, const char *url,
                         const char *const *headers, const char *body, http_response_t *r)
{
    if (http_client_request(w->http, method, url, headers, body, body ? strlen(body) : 0, r) == 0)
        return 0;
    bool retryable = http_error_retryable(r);
    return fetch_fail(job, retryable || r->error == HTTP_ERROR_TOO_LARGE, "%s", http_client_errstr(w->http));
}

/* fetch_check_status - 0 for a 2xx answer; otherwise the job fails with the status (retryable
 * for 429 and 5xx, with the server's Retry-After). */
static int fetch_check_status(fetch_job_t *job, const char *what, const http_response_t *r)
{
    if (r->status >= 200 && r->status < 300)
        return 0;
    char excerpt[160];
    fetch_body_excerpt(r, 120, excerpt, sizeof(excerpt));
    job->retry_after_s = r->retry_after_s;
    return fetch_fail(job, http_error_retryable(r), "%s: HTTP %ld %s", what, r->status, excerpt);
}

/* fetch_parse_failed - the document could not be parsed. */
static int fetch_parse_failed(fetch_job_t *job, const char *what, const char *why)
{
    return fetch_fail(job, true, "%s: bad response: %s", what, why);
}

/* ------------------------------------------------------------------ retro */

/* fetch_retro_register - register the device: a new token and region. 0 or -1. */
static int fetch_retro_register(fetch_worker_t *w, fetch_job_t *job)
{
    const config_feed_t *f = job->feed;
    strbuf_t url, repr;
    strbuf_init(&url, 4096);
    strbuf_init(&repr, 4096);
    fetch_append_url(&url, f->url, "/v1/register/device/");
    strbuf_append_escaped(&url, f->device_id, NULL);
    (void)strbuf_appends(&repr, "{'org_id': ");
    fetch_py_repr(&repr, f->org_id);
    (void)strbuf_appends(&repr, ", 'model': ");
    fetch_py_repr(&repr, f->model);
    (void)strbuf_appends(&repr, ", 'version': ");
    fetch_py_repr(&repr, f->version);
    (void)strbuf_appends(&repr, ", 'type': 'esa-ces'}");
    fetch_line(job, LOG_LEVEL_DEBUG, "ECS: Connecting to register api url %s with payload %s", url.data, repr.data);

    json_t *payload = json_pack("{s:s, s:s, s:s, s:s}", "org_id", f->org_id, "model", f->model, "version",
                                f->version, "type", "esa-ces");
    char *body = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    static const char *const headers[] = {"Content-Type: application/json", "Accept: application/json", NULL};
    http_response_t r;
    int rc = fetch_request(w, job, "POST", url.data, headers, body, &r);
    free(body);
    if (rc == 0) {
        fetch_line(job, LOG_LEVEL_TRACE, "ECS: URL %s, Status %ld", url.data, r.status);
        if (r.status != 201 && r.status != 200) {
            char message[200];
            fetch_json_message(&r, message, sizeof(message));
            fetch_line(job, LOG_LEVEL_WARNING, "ECS: Device registration failed. Status %ld '%s'", r.status, message);
            rc = fetch_check_status(job, "registration", &r);
            if (rc == 0)
                rc = fetch_fail(job, false, "registration: HTTP %ld", r.status);
        }
    }
    if (rc == 0) {
        json_error_t jerr;
        json_t *root = json_loadb(r.body, r.body_len, JSON_REJECT_DUPLICATES, &jerr);
        const char *token = json_string_value(json_object_get(root, "token"));
        const char *region = json_string_value(json_object_get(root, "region_uri"));
        if (!token || !*token || strlen(token) > 4096 || strpbrk(token, "\r\n"))
            rc = fetch_parse_failed(job, "registration", "no usable token");
        else if (!region || (strncmp(region, "https://", 8) != 0 && strncmp(region, "http://", 7) != 0) ||
                 strlen(region) > 2048 || strpbrk(region, "\r\n \t"))
            rc = fetch_parse_failed(job, "registration", "no usable region_uri");
        if (rc == 0) {
            free(job->new_token);
            free(job->new_region_uri);
            job->new_token = util_xstrdup(token);
            job->new_region_uri = util_xstrdup(region);
            job->registered = true;
            fetch_line(job, LOG_LEVEL_INFO, "ECS: Device registration is successful");
        }
        json_decref(root);
    }
    if (rc == 0) {
        free(job->token);
        free(job->region_uri);
        job->token = util_xstrdup(job->new_token);
        job->region_uri = util_xstrdup(job->new_region_uri);
    }
    http_response_release(&r);
    strbuf_release(&url);
    strbuf_release(&repr);
    return rc;
}

/* fetch_retro - one page of retrospective verdicts. */
static int fetch_retro(fetch_worker_t *w, fetch_job_t *job)
{
    const config_feed_t *f = job->feed;
    if ((!job->token || !job->region_uri) && fetch_retro_register(w, job) < 0)
        return -1;
    if (job->first_page)
        fetch_line(job, LOG_LEVEL_DEBUG, "ECS: Start polling");
    for (int attempt = 0;; attempt++) {
        strbuf_t base, url;
        strbuf_init(&base, 4096);
        strbuf_init(&url, 8192);
        fetch_append_url(&base, job->region_uri, "/v1/retro/device/");
        strbuf_append_escaped(&base, f->device_id, NULL);
        fetch_line(job, LOG_LEVEL_DEBUG, "ECS: Querying URL '%s' with parameters: {'since': '%s', 'page_size': %lld}",
                   base.data, job->since, (long long)f->page_size);
        (void)strbuf_appendf(&url, "%s?since=", base.data);
        strbuf_append_escaped(&url, job->since, NULL);
        (void)strbuf_appendf(&url, "&page_size=%lld", (long long)f->page_size);
        char auth[4200];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", job->token);
        const char *headers[] = {auth, "Accept: application/json", NULL};
        http_response_t r;
        int rc = fetch_request(w, job, "GET", url.data, headers, NULL, &r);
        OPENSSL_cleanse(auth, sizeof(auth));
        if (rc < 0) {
            fetch_line(job, LOG_LEVEL_WARNING, "ECS: Cloud query failed. '%s'", job->error);
            strbuf_release(&base);
            strbuf_release(&url);
            return -1;
        }
        if (r.status != 200) {
            char excerpt[FETCH_TRACE_BODY + 1], message[200];
            fetch_body_excerpt(&r, FETCH_TRACE_BODY, excerpt, sizeof(excerpt));
            fetch_line(job, LOG_LEVEL_TRACE, "ECS: URL %s, Status %ld, Response %s", url.data, r.status, excerpt);
            fetch_json_message(&r, message, sizeof(message));
            bool expired = (r.status == 403 && strstr(message, "Expired")) || r.status == 401;
            if (expired)
                fetch_line(job, LOG_LEVEL_WARNING, "ECS: Cloud query failed. 'Token Expired.'");
            else
                fetch_line(job, LOG_LEVEL_WARNING, "ECS: Cloud query failed. 'HTTP %ld %s'", r.status, message);
            strbuf_release(&base);
            strbuf_release(&url);
            if (expired && attempt == 0) {
                http_response_release(&r);
                if (fetch_retro_register(w, job) < 0)
                    return -1;
                fetch_line(job, LOG_LEVEL_INFO, "ECS: Token Expired/Invalid. Retrying.");
                continue;
            }
            rc = fetch_check_status(job, "retro poll", &r);
            http_response_release(&r);
            return rc;
        }
        char excerpt[FETCH_TRACE_BODY + 1];
        fetch_body_excerpt(&r, FETCH_TRACE_BODY, excerpt, sizeof(excerpt));
        fetch_line(job, LOG_LEVEL_TRACE, "ECS: Cloud retro response: %s", excerpt);
        char err[256];
        rc = feed_parse_retro(r.body, r.body_len, &job->page, err, sizeof(err));
        http_response_release(&r);
        strbuf_release(&base);
        strbuf_release(&url);
        if (rc < 0) {
            fetch_line(job, LOG_LEVEL_WARNING, "ECS: Cloud query failed. 'Invalid response: %s'", err);
            return fetch_parse_failed(job, "retro poll", err);
        }
        fetch_line(job, LOG_LEVEL_DEBUG, "ECS: Finish polling");
        if (job->page.count == 0)
            fetch_line(job, LOG_LEVEL_INFO, "ECS: No retrospections found.");
        return 0;
    }
}

/* ------------------------------------------------------------------ taxii21, misp, lists */

/* fetch_auth_header - "Authorization: Basic ..." (username + secret) or "... Bearer secret"
 * into out, or "" when the feed has no credentials. 0 or -1 (job failed). */
static int fetch_auth_header(fetch_job_t *job, char *out, size_t size)
{
    char secret[FETCH_MAX_SECRET];
    out[0] = '\0';
    if (fetch_read_secret(job, secret, sizeof(secret)) < 0)
        return -1;
    if (*job->feed->username) {
        char plain[FETCH_MAX_SECRET + 256];
        int n = snprintf(plain, sizeof(plain), "%s:%s", job->feed->username, secret);
        unsigned char b64[((FETCH_MAX_SECRET + 256 + 2) / 3) * 4 + 1];
        if (n < 0 || (size_t)n >= sizeof(plain) || size < 22 + (size_t)((n + 2) / 3) * 4)
            return fetch_fail(job, false, "credentials too long");
        EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
        snprintf(out, size, "Authorization: Basic %s", (const char *)b64);
        OPENSSL_cleanse(plain, sizeof(plain));
        OPENSSL_cleanse(b64, sizeof(b64));
    } else if (*secret) {
        snprintf(out, size, "Authorization: Bearer %s", secret);
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    return 0;
}

static int fetch_taxii21(fetch_worker_t *w, fetch_job_t *job)
{
    const config_feed_t *f = job->feed;
    char auth[FETCH_MAX_SECRET * 2];
    if (fetch_auth_header(job, auth, sizeof(auth)) < 0)
        return -1;
    strbuf_t url;
    strbuf_init(&url, 16384);
    (void)strbuf_appends(&url, f->url);
    if (!url.len || url.data[url.len - 1] != '/')
        (void)strbuf_appends(&url, "/");
    (void)strbuf_appendf(&url, "objects/?limit=%lld&match%%5Btype%%5D=indicator", (long long)f->page_size);
    if (job->since && *job->since) {
        (void)strbuf_appends(&url, "&added_after=");
        strbuf_append_escaped(&url, job->since, NULL);
    }
    if (job->next && *job->next) {
        (void)strbuf_appends(&url, "&next=");
        strbuf_append_escaped(&url, job->next, NULL);
    }
    fetch_line(job, LOG_LEVEL_DEBUG, "ECS: [%s] Querying URL '%s' with parameters: {'added_after': '%s', 'limit': %lld%s}",
               f->name, f->url, job->since ? job->since : "", (long long)f->page_size, job->next ? ", 'next': ..." : "");
    const char *headers[] = {"Accept: application/taxii+json;version=2.1", *auth ? auth : NULL, NULL};
    http_response_t r;
    int rc = fetch_request(w, job, "GET", url.data, headers, NULL, &r);
    OPENSSL_cleanse(auth, sizeof(auth));
    strbuf_release(&url);
    if (rc == 0)
        rc = fetch_check_status(job, "taxii21 poll", &r);
    if (rc == 0) {
        char err[256], last[128];
        if (feed_parse_taxii21(r.body, r.body_len, util_now_ms(), &job->page, err, sizeof(err)) < 0)
            rc = fetch_parse_failed(job, "taxii21 poll", err);
        else if (http_response_header(&r, "X-TAXII-Date-Added-Last", last, sizeof(last)) > 0)
            job->date_added_last = util_xstrdup(last);
    }
    http_response_release(&r);
    return rc;
}

static int fetch_misp(fetch_worker_t *w, fetch_job_t *job)
{
    const config_feed_t *f = job->feed;
    char secret[FETCH_MAX_SECRET], auth[FETCH_MAX_SECRET + 32];
    if (fetch_read_secret(job, secret, sizeof(secret)) < 0)
        return -1;
    snprintf(auth, sizeof(auth), "Authorization: %s", secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    strbuf_t url;
    strbuf_init(&url, 4096);
    fetch_append_url(&url, f->url, "/attributes/restSearch");
    int64_t since = 0;
    (void)util_parse_int64(job->since ? job->since : "0", &since);
    json_t *q = json_pack("{s:s, s:[s,s,s], s:i, s:I, s:I, s:I}", "returnFormat", "json", "type", "url", "domain",
                          "hostname", "to_ids", 1, "timestamp", (json_int_t)since, "limit", (json_int_t)f->page_size,
                          "page", (json_int_t)job->page_number);
    char *body = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    fetch_line(job, LOG_LEVEL_DEBUG, "ECS: [%s] Querying URL '%s' with parameters: %s", f->name, url.data, body);
    const char *headers[] = {"Accept: application/json", "Content-Type: application/json", auth, NULL};
    http_response_t r;
    int rc = fetch_request(w, job, "POST", url.data, headers, body, &r);
    OPENSSL_cleanse(auth, sizeof(auth));
    free(body);
    strbuf_release(&url);
    if (rc == 0)
        rc = fetch_check_status(job, "misp query", &r);
    if (rc == 0) {
        char err[256];
        if (feed_parse_misp(r.body, r.body_len, &job->page, err, sizeof(err)) < 0)
            rc = fetch_parse_failed(job, "misp query", err);
    }
    http_response_release(&r);
    return rc;
}

/* fetch_list - a whole list (URLhaus CSV, OpenPhish) from a URL or a local file. */
static int fetch_list(fetch_worker_t *w, fetch_job_t *job)
{
    const config_feed_t *f = job->feed;
    bool remote = strncmp(f->url, "http://", 7) == 0 || strncmp(f->url, "https://", 8) == 0;
    bool urlhaus = strcmp(f->type, "urlhaus") == 0;
    char *data = NULL;
    size_t len = 0;
    int rc = 0;
    http_response_t r = {0};
    fetch_line(job, LOG_LEVEL_DEBUG, "ECS: [%s] Fetching %s", f->name, f->url);
    if (remote) {
        char auth[FETCH_MAX_SECRET + 32] = "", secret[FETCH_MAX_SECRET];
        if (urlhaus) {
            if (fetch_read_secret(job, secret, sizeof(secret)) < 0)
                return -1;
            if (*secret)
                snprintf(auth, sizeof(auth), "Auth-Key: %s", secret);
            OPENSSL_cleanse(secret, sizeof(secret));
        }
        const char *headers[] = {*auth ? auth : NULL, NULL};
        rc = fetch_request(w, job, "GET", f->url, headers, NULL, &r);
        OPENSSL_cleanse(auth, sizeof(auth));
        if (rc == 0)
            rc = fetch_check_status(job, "list download", &r);
        data = r.body;
        len = r.body_len;
    } else {
        const char *path = strncmp(f->url, "file://", 7) == 0 ? f->url + 7 : f->url;
        char why[256];
        if (util_read_file(path, (size_t)f->max_size, &data, &len, why, sizeof(why)) < 0)
            rc = fetch_fail(job, true, "cannot read %s: %s", path, why);
    }
    if (rc == 0) {
        char err[256];
        int prc = urlhaus ? feed_parse_urlhaus_csv(data, len, &job->page, err, sizeof(err))
                          : feed_parse_openphish(data, len, &job->page, err, sizeof(err));
        if (prc < 0)
            rc = fetch_parse_failed(job, "list", err);
    }
    if (remote)
        http_response_release(&r);
    else
        free(data);
    return rc;
}

/* ------------------------------------------------------------------ the worker */

/* fetch_run - perform one job. */
static void fetch_run(fetch_worker_t *w, fetch_job_t *job)
{
    const char *type = job->feed->type;
    job->status = 0;
    if (strcmp(type, "retro") == 0)
        (void)fetch_retro(w, job);
    else if (strcmp(type, "taxii21") == 0)
        (void)fetch_taxii21(w, job);
    else if (strcmp(type, "misp") == 0)
        (void)fetch_misp(w, job);
    else
        (void)fetch_list(w, job);
}

/* fetch_actor - the worker thread: take a job, run it, hand it back; until $TERM. */
static void fetch_actor(zsock_t *pipe, void *arg)
{
    fetch_t *self = arg;
    fetch_worker_t w = {.feed = self->feed, .cancel = &self->cancel};
    http_client_options_t o = {
        .total_timeout_ms = self->feed->timeout_ms,
        .max_body = (size_t)self->feed->max_size,
        .insecure = !self->feed->tls_verify,
        .ca_file = *self->feed->ca_file ? self->feed->ca_file : NULL,
        .proxy = *self->feed->proxy ? self->feed->proxy : NULL,
    };
    w.http = http_client_new(&o);
    if (w.http)
        http_client_set_cancel(w.http, &self->cancel);
    zsock_signal(pipe, 0);
    while (true) {
        zmsg_t *msg = zmsg_recv(pipe);
        if (!msg)
            break;
        zframe_t *first = zmsg_first(msg);
        if (!first || zframe_streq(first, "$TERM")) {
            zmsg_destroy(&msg);
            break;
        }
        fetch_job_t *job = NULL;
        if (zframe_size(first) == sizeof(job))
            memcpy(&job, zframe_data(first), sizeof(job));
        zmsg_destroy(&msg);
        if (!job)
            continue;
        if (!w.http)
            fetch_fail(job, true, "cannot initialise libcurl");
        else
            fetch_run(&w, job);
        zsock_send(pipe, "p", job); /* always: the owner frees it, even when stopping */
    }
    http_client_destroy(&w.http);
    /* free OpenSSL's per-thread state now: the detached thread's exit handlers may otherwise
     * still be running when the process exits */
    OPENSSL_thread_stop();
}

fetch_t *fetch_new(const config_feed_t *feed)
{
    fetch_t *self = util_xcalloc(1, sizeof(*self));
    self->feed = feed;
    atomic_init(&self->cancel, 0);
    self->actor = zactor_new(fetch_actor, self);
    if (!self->actor) {
        free(self);
        return NULL;
    }
    return self;
}

void fetch_destroy(fetch_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    fetch_t *self = *selfp;
    atomic_store(&self->cancel, 1);
    if (self->busy) {
        /* the request in progress aborts at the next progress callback (under a second) */
        zsock_set_rcvtimeo(self->actor, 10000);
        fetch_job_t *job = fetch_finish(self);
        fetch_job_destroy(&job);
        /* zactor_destroy waits with the same timeout: it must wait for the thread to end, or
         * the thread would outlive the state it reads */
        zsock_set_rcvtimeo(self->actor, -1);
    }
    zactor_destroy(&self->actor);
    free(self);
    *selfp = NULL;
}

zsock_t *fetch_sock(fetch_t *self)
{
    return zactor_sock(self->actor);
}

bool fetch_busy(const fetch_t *self)
{
    return self->busy;
}

int fetch_start(fetch_t *self, fetch_job_t **job)
{
    if (self->busy || !job || !*job)
        return -1;
    if (zsock_send(self->actor, "p", *job) < 0)
        return -1;
    *job = NULL;
    self->busy = true;
    return 0;
}

fetch_job_t *fetch_finish(fetch_t *self)
{
    fetch_job_t *job = NULL;
    if (zsock_recv(self->actor, "p", &job) < 0)
        return NULL;
    self->busy = false;
    return job;
}
