/*
 * graph.c - the Microsoft Graph back-end (BACKEND_GRAPH, backend.h): Exchange Online
 * mailboxes through Graph's mail API, app-only (OAuth 2.0 client credentials).
 *
 * The protocol (reference: protocols.md section 2, learn.microsoft.com/graph):
 *   token    POST {token_url} client_id, client_secret, grant_type=client_credentials,
 *            scope={API origin}/.default -> access_token, expires_in (no refresh token)
 *   find     GET {url}/users/{upn}/messages?$filter=internetMessageId eq '<id>'&$select=...
 *            with Prefer: IdType="ImmutableId" (ids survive a move), every folder, paged by
 *            @odata.nextLink; only copies whose internetMessageId is exactly the job's count
 *   remove   POST .../messages/{id}/move {"destinationId"} (quarantine) or
 *            POST .../messages/{id}/permanentDelete (permanent); 404 ErrorItemNotFound: gone
 *   forward  POST .../createForward {"toRecipients", "comment"} -> a draft; PATCH its subject
 *            to "[Message Remediated] " + the original's; POST .../send
 *
 * What a backend_t keeps (shared by the workers, each part behind its own mutex):
 *   - the access token, fetched on first use, renewed 5 minutes before it expires and once
 *     when Graph answers 401 InvalidAuthenticationToken;
 *   - idle HTTP clients (one per session while in use: an http_client_t is not thread-safe);
 *   - per mailbox, a sliding 10-minute count of the requests sent (in GRAPH_BUCKETS buckets)
 *     so a mailbox never gets more than mailbox_rate of them (Graph allows 10,000), and the
 *     id of its quarantine folder once looked up. A mailbox unused for 10 minutes is forgotten.
 *
 * Errors: 429, 5xx and network failures are BACKEND_RETRY (retry_after_ms from Retry-After,
 * else -1); other answers BACKEND_FAILED with Graph's error code and message. Neither the
 * secret nor a token ever goes into a detail.
 */
#include "backend.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_client.h"
#include "strbuf.h"
#include "util.h"

#define GRAPH_DEFAULT_URL "https://graph.microsoft.com/v1.0"
#define GRAPH_DEFAULT_QUARANTINE "deleteditems"
#define GRAPH_SELECT "id,parentFolderId,subject,internetMessageId"
#define GRAPH_RENEW_EARLY_MS (5 * 60 * 1000) /* renew a token this long before it expires */
#define GRAPH_WINDOW_MS (10 * 60 * 1000)     /* Graph's per-mailbox request window */
#define GRAPH_BUCKET_MS 10000                /* the window is counted in buckets this long */
#define GRAPH_BUCKETS (GRAPH_WINDOW_MS / GRAPH_BUCKET_MS)
#define GRAPH_MAILBOX_HASH 256
#define GRAPH_SWEEP_MS 60000 /* how often idle mailboxes are looked for */
#define GRAPH_POOL_MAX 64    /* idle HTTP clients kept */
#define GRAPH_MAX_BODY (16 * 1024 * 1024)
#define GRAPH_MAX_PAGES 50    /* find: result pages followed */
#define GRAPH_MAX_COPIES 1000 /* find: copies kept */
#define GRAPH_MAX_URL 16384

/* The folders Graph knows by name in every mailbox (usable as a destinationId). */
static const char *const GRAPH_WELL_KNOWN[] = {
    "archive", "clutter", "conflicts", "conversationhistory", "deleteditems", "drafts", "inbox",
    "junkemail", "localfailures", "msgfolderroot", "outbox", "recoverableitemsdeletions",
    "scheduled", "searchfolders", "sentitems", "serverfailures", "syncissues",
};

/* Per-mailbox state, kept until the mailbox has been idle for a whole window. */
typedef struct graph_mailbox {
    struct graph_mailbox *next; /* hash chain */
    char *name;                 /* lowercase address */
    int64_t last_ms;            /* monotonic time of the last request */
    int64_t bucket_index[GRAPH_BUCKETS]; /* which bucket (monotonic ms / GRAPH_BUCKET_MS) */
    uint32_t bucket_count[GRAPH_BUCKETS];
    char *quarantine_id; /* the quarantine folder's id here, NULL until looked up */
} graph_mailbox_t;

struct backend {
    char *api_root;   /* no trailing '/' */
    char *token_url;
    char *scope;      /* the API's origin + "/.default" */
    char *client_id;
    char *secret;     /* cleansed on destroy */
    char *quarantine; /* folder name, or a well-known name */
    bool quarantine_well_known;
    bool permanent;
    char *forward_to;
    char *ca_file;
    http_client_options_t http_options;
    int64_t mailbox_rate;

    pthread_mutex_t token_lock; /* guards the four below */
    http_client_t *token_http;
    char *token;          /* NULL when none */
    int64_t token_renew_ms; /* monotonic: fetch a new one from then on */

    pthread_mutex_t pool_lock;
    http_client_t *pool[GRAPH_POOL_MAX];
    size_t npool;

    pthread_mutex_t mailbox_lock;
    graph_mailbox_t *mailboxes[GRAPH_MAILBOX_HASH];
    int64_t last_sweep_ms;
};

typedef struct {
    char *id;      /* Graph's (immutable) id */
    char *subject; /* as Graph has it */
    bool done;     /* removed or found gone */
} graph_copy_t;

struct backend_session {
    backend_t *backend;
    char *mailbox;
    char *user_url; /* {url}/users/{mailbox, escaped} */
    http_client_t *http;
    graph_copy_t *copies;
    size_t ncopies;
};

/* What one Graph call returned. */
typedef struct {
    long status;   /* HTTP status, 0 when none arrived */
    char code[96]; /* Graph's error code of a failure, "" otherwise */
    json_t *json;  /* a 2xx answer's JSON body, or NULL; owned, released by graph_reply_clear */
} graph_reply_t;

/* ------------------------------------------------------------------ small helpers */

/* graph_is_well_known - whether name is one of Graph's well-known folder names. */
static bool graph_is_well_known(const char *name)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(GRAPH_WELL_KNOWN); i++)
        if (strcasecmp(name, GRAPH_WELL_KNOWN[i]) == 0)
            return true;
    return false;
}

/* graph_str - the string member key of object, or fallback when it is absent or not a string. */
static const char *graph_str(const json_t *object, const char *key, const char *fallback)
{
    const char *v = json_string_value(json_object_get(object, key));
    return v ? v : fallback;
}

/* graph_scrub - blank every occurrence of secret in text (an error description that would
 * echo it must not carry it into a log). */
static void graph_scrub(char *text, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n < 4)
        return;
    for (char *p = strstr(text, secret); p; p = strstr(p + n, secret))
        memset(p, '*', n);
}

/* graph_error_fields - the error code and message of a Graph ({"error": {"code", "message"}})
 * or identity platform ({"error": "...", "error_description"}) error body; "" when none. */
static void graph_error_fields(const http_response_t *resp, char *code, size_t codesize, char *msg, size_t msgsize)
{
    code[0] = msg[0] = '\0';
    json_t *root = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    json_t *err = json_object_get(root, "error");
    if (json_is_object(err)) {
        util_strlcpy(code, graph_str(err, "code", ""), codesize);
        util_strlcpy(msg, graph_str(err, "message", ""), msgsize);
    } else if (json_is_string(err)) {
        util_strlcpy(code, json_string_value(err), codesize);
        util_strlcpy(msg, graph_str(root, "error_description", ""), msgsize);
    }
    json_decref(root);
    for (char *p = msg; *p; p++) /* one log line */
        if (*p == '\r' || *p == '\n')
            *p = ' ';
}

/* graph_outcome_from - fill out for a failed exchange: no response (rc < 0) or a non-2xx one.
 * RETRY for network failures, timeouts, 429 and 5xx; FAILED otherwise. */
static backend_status_t graph_outcome_from(backend_outcome_t *out, const backend_t *be, const char *what, int rc,
                                           const http_response_t *resp, const char *errstr, char *code,
                                           size_t codesize)
{
    code[0] = '\0';
    if (rc < 0) {
        backend_status_t st = http_error_retryable(resp) ? BACKEND_RETRY : BACKEND_FAILED;
        return backend_outcome_set(out, st, -1, "%s: %s", what, errstr);
    }
    char msg[320];
    graph_error_fields(resp, code, codesize, msg, sizeof(msg));
    graph_scrub(msg, be->secret);
    backend_status_t st = http_error_retryable(resp) ? BACKEND_RETRY : BACKEND_FAILED;
    int64_t after = st == BACKEND_RETRY && resp->retry_after_s >= 0 ? resp->retry_after_s * 1000 : -1;
    return backend_outcome_set(out, st, after, "%s: HTTP %ld%s%s%s%s", what, resp->status, *code ? " " : "", code,
                               *msg ? ": " : "", msg);
}

/* ------------------------------------------------------------------ the per-mailbox budget */

static size_t graph_mailbox_hash(const char *name)
{
    size_t h = 5381;
    for (; *name; name++)
        h = h * 33 + (unsigned char)*name;
    return h % GRAPH_MAILBOX_HASH;
}

static void graph_mailbox_free(graph_mailbox_t *mb)
{
    free(mb->name);
    free(mb->quarantine_id);
    free(mb);
}

/* graph_mailboxes_sweep - forget the mailboxes idle for a whole window (mailbox_lock held). */
static void graph_mailboxes_sweep(backend_t *be, int64_t now)
{
    if (now - be->last_sweep_ms < GRAPH_SWEEP_MS)
        return;
    be->last_sweep_ms = now;
    for (size_t i = 0; i < GRAPH_MAILBOX_HASH; i++) {
        graph_mailbox_t **link = &be->mailboxes[i];
        while (*link) {
            graph_mailbox_t *mb = *link;
            if (now - mb->last_ms > GRAPH_WINDOW_MS + GRAPH_BUCKET_MS) {
                *link = mb->next;
                graph_mailbox_free(mb);
            } else {
                link = &mb->next;
            }
        }
    }
}

/* graph_mailbox_get - the state of mailbox (created when new; mailbox_lock held). */
static graph_mailbox_t *graph_mailbox_get(backend_t *be, const char *mailbox, int64_t now)
{
    graph_mailboxes_sweep(be, now);
    size_t h = graph_mailbox_hash(mailbox);
    for (graph_mailbox_t *mb = be->mailboxes[h]; mb; mb = mb->next)
        if (strcmp(mb->name, mailbox) == 0)
            return mb;
    graph_mailbox_t *mb = util_xcalloc(1, sizeof(*mb));
    mb->name = util_xstrdup(mailbox);
    mb->last_ms = now;
    mb->next = be->mailboxes[h];
    be->mailboxes[h] = mb;
    return mb;
}

/* graph_budget_take - count one request to mailbox; RETRY (nothing counted) when mailbox_rate
 * requests were sent in the last window, with the time until the oldest of them leaves it. A
 * bucket's requests leave the window a whole window after the bucket ends (never early). */
static int graph_budget_take(backend_t *be, const char *mailbox, backend_outcome_t *out)
{
    int64_t now = util_monotonic_ms();
    int64_t current = now / GRAPH_BUCKET_MS;
    int64_t oldest_live = current - GRAPH_BUCKETS + 1; /* buckets still inside the window */
    pthread_mutex_lock(&be->mailbox_lock);
    graph_mailbox_t *mb = graph_mailbox_get(be, mailbox, now);
    int64_t used = 0;
    for (size_t i = 0; i < GRAPH_BUCKETS; i++)
        if (mb->bucket_index[i] >= oldest_live)
            used += mb->bucket_count[i];
    if (used >= be->mailbox_rate) {
        /* the earliest bucket whose departure brings the count under the rate */
        int64_t freed = 0, wait_ms = GRAPH_WINDOW_MS;
        for (int64_t b = oldest_live; b <= current; b++) {
            size_t i = (size_t)(b % GRAPH_BUCKETS);
            if (mb->bucket_index[i] == b)
                freed += mb->bucket_count[i];
            if (used - freed < be->mailbox_rate) {
                wait_ms = (b + 1) * GRAPH_BUCKET_MS + GRAPH_WINDOW_MS - now;
                break;
            }
        }
        pthread_mutex_unlock(&be->mailbox_lock);
        backend_outcome_set(out, BACKEND_RETRY, wait_ms,
                            "mailbox_rate: %lld requests to %s in the last 10 minutes, the limit; next in %lld ms",
                            (long long)used, mailbox, (long long)wait_ms);
        return -1;
    }
    size_t i = (size_t)(current % GRAPH_BUCKETS);
    if (mb->bucket_index[i] != current) {
        mb->bucket_index[i] = current;
        mb->bucket_count[i] = 0;
    }
    mb->bucket_count[i]++;
    mb->last_ms = now;
    pthread_mutex_unlock(&be->mailbox_lock);
    return 0;
}

/* graph_quarantine_cached - a copy of the quarantine folder id known for mailbox, or NULL.
 * Caller frees. */
static char *graph_quarantine_cached(backend_t *be, const char *mailbox)
{
    pthread_mutex_lock(&be->mailbox_lock);
    graph_mailbox_t *mb = graph_mailbox_get(be, mailbox, util_monotonic_ms());
    char *id = util_xstrdup(mb->quarantine_id);
    pthread_mutex_unlock(&be->mailbox_lock);
    return id;
}

static void graph_quarantine_remember(backend_t *be, const char *mailbox, const char *id)
{
    pthread_mutex_lock(&be->mailbox_lock);
    graph_mailbox_t *mb = graph_mailbox_get(be, mailbox, util_monotonic_ms());
    free(mb->quarantine_id);
    mb->quarantine_id = util_xstrdup(id);
    pthread_mutex_unlock(&be->mailbox_lock);
}

/* ------------------------------------------------------------------ the token */

/* graph_token_fetch - ask the token endpoint for a new token (token_lock held). */
static int graph_token_fetch(backend_t *be, backend_outcome_t *out)
{
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                          "Accept: application/json", NULL};
    if (!be->token_http && !(be->token_http = http_client_new(&be->http_options))) {
        backend_outcome_set(out, BACKEND_RETRY, -1, "token: cannot initialise the HTTP client");
        return -1;
    }
    strbuf_t form;
    strbuf_init(&form, 0);
    (void)strbuf_appends(&form, "client_id=");
    strbuf_append_escaped(&form, be->client_id, NULL);
    (void)strbuf_appends(&form, "&client_secret=");
    strbuf_append_escaped(&form, be->secret, NULL);
    (void)strbuf_appends(&form, "&grant_type=client_credentials&scope=");
    strbuf_append_escaped(&form, be->scope, NULL);
    http_response_t resp;
    int rc = http_client_request(be->token_http, "POST", be->token_url, headers, form.data, form.len, &resp);
    OPENSSL_cleanse(form.data, form.len);
    strbuf_release(&form);
    char code[96];
    if (rc < 0 || resp.status != 200) {
        graph_outcome_from(out, be, "token", rc, &resp, http_client_errstr(be->token_http), code, sizeof(code));
        http_response_release(&resp);
        return -1;
    }
    json_t *root = json_loadb(resp.body, resp.body_len, 0, NULL);
    const char *token = json_string_value(json_object_get(root, "access_token"));
    json_t *expires = json_object_get(root, "expires_in");
    int64_t expires_s = json_is_integer(expires) ? json_integer_value(expires)
                        : json_is_string(expires) ? strtoll(json_string_value(expires), NULL, 10)
                                                  : 0;
    int status = 0;
    if (!token || !*token || expires_s <= 0) {
        backend_outcome_set(out, BACKEND_FAILED, -1, "token: the answer has no access_token or expires_in");
        status = -1;
    } else {
        free(be->token);
        be->token = util_xstrdup(token);
        /* renew 5 minutes early; a token that lives less than 10 minutes, at half-life */
        int64_t early = expires_s * 1000 / 2 < GRAPH_RENEW_EARLY_MS ? expires_s * 1000 / 2 : GRAPH_RENEW_EARLY_MS;
        be->token_renew_ms = util_monotonic_ms() + expires_s * 1000 - early;
    }
    json_decref(root);
    OPENSSL_cleanse(resp.body, resp.body_len);
    http_response_release(&resp);
    return status;
}

/* graph_token_get - a copy of a valid token (fetched when none is, or it is due for renewal);
 * NULL with out filled. Caller cleanses and frees. */
static char *graph_token_get(backend_t *be, backend_outcome_t *out)
{
    pthread_mutex_lock(&be->token_lock);
    if ((!be->token || util_monotonic_ms() >= be->token_renew_ms) && graph_token_fetch(be, out) < 0) {
        pthread_mutex_unlock(&be->token_lock);
        return NULL;
    }
    char *copy = util_xstrdup(be->token);
    pthread_mutex_unlock(&be->token_lock);
    return copy;
}

/* graph_token_drop - forget the cached token if it is still stale (another thread may have
 * replaced it already). */
static void graph_token_drop(backend_t *be, const char *stale)
{
    pthread_mutex_lock(&be->token_lock);
    if (be->token && strcmp(be->token, stale) == 0) {
        OPENSSL_cleanse(be->token, strlen(be->token));
        free(be->token);
        be->token = NULL;
    }
    pthread_mutex_unlock(&be->token_lock);
}

/* ------------------------------------------------------------------ one Graph call */

static void graph_reply_clear(graph_reply_t *reply)
{
    json_decref(reply->json);
    memset(reply, 0, sizeof(*reply));
}

/* graph_call - method on url (a full URL) with an optional JSON body, counted against the
 * mailbox's budget, with a token (renewed and tried once more on 401
 * InvalidAuthenticationToken). 0 on a 2xx answer (its JSON in reply->json when there is a
 * body), -1 with out filled otherwise (reply->status and reply->code say what Graph answered).
 * what names the step in the detail. */
static int graph_call(backend_session_t *s, const char *method, const char *url, json_t *body, const char *what,
                      graph_reply_t *reply, backend_outcome_t *out)
{
    backend_t *be = s->backend;
    memset(reply, 0, sizeof(*reply));
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int result = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (graph_budget_take(be, s->mailbox, out) < 0)
            break;
        char *token = graph_token_get(be, out);
        if (!token)
            break;
        strbuf_t auth;
        strbuf_init(&auth, 0);
        (void)strbuf_appendf(&auth, "Authorization: Bearer %s", token);
        const char *headers[] = {auth.data, "Accept: application/json", "Prefer: IdType=\"ImmutableId\"",
                                 payload ? "Content-Type: application/json" : NULL, NULL};
        http_response_t resp;
        int rc = http_client_request(s->http, method, url, headers, payload, payload ? strlen(payload) : 0, &resp);
        OPENSSL_cleanse(auth.data, auth.len);
        strbuf_release(&auth);
        reply->status = rc < 0 ? 0 : resp.status;
        if (rc == 0 && resp.status >= 200 && resp.status < 300) {
            result = 0;
            if (resp.body_len > 0 && !(reply->json = json_loadb(resp.body, resp.body_len, 0, NULL))) {
                backend_outcome_set(out, BACKEND_FAILED, -1, "%s: HTTP %ld with a body that is not JSON", what,
                                    resp.status);
                result = -1;
            }
        } else {
            graph_outcome_from(out, be, what, rc, &resp, http_client_errstr(s->http), reply->code,
                               sizeof(reply->code));
            if (rc == 0 && resp.status == 401 && attempt == 0 &&
                strcmp(reply->code, "InvalidAuthenticationToken") == 0) {
                graph_token_drop(be, token);
                OPENSSL_cleanse(token, strlen(token));
                free(token);
                http_response_release(&resp);
                continue;
            }
        }
        OPENSSL_cleanse(token, strlen(token));
        free(token);
        http_response_release(&resp);
        break;
    }
    free(payload);
    if (result < 0) {
        json_decref(reply->json);
        reply->json = NULL;
    }
    return result;
}

/* graph_message_url - {user_url}/messages[/{id, escaped}[/{action}]] into sb. */
static void graph_message_url(const backend_session_t *s, strbuf_t *sb, const char *id, const char *action)
{
    strbuf_init(sb, GRAPH_MAX_URL);
    (void)strbuf_appends(sb, s->user_url);
    (void)strbuf_appends(sb, "/messages");
    if (id) {
        (void)strbuf_appends(sb, "/");
        strbuf_append_escaped(sb, id, NULL);
    }
    if (action) {
        (void)strbuf_appends(sb, "/");
        (void)strbuf_appends(sb, action);
    }
}

/* graph_append_filter - "$filter=" + the OData `property eq 'value'` (a quote doubled), all
 * percent-encoded (an unencoded '+' would read as a space). */
static void graph_append_filter(strbuf_t *sb, const char *property, const char *value)
{
    strbuf_t expr;
    strbuf_init(&expr, GRAPH_MAX_URL);
    (void)strbuf_appendf(&expr, "%s eq '", property);
    for (const char *p = value; *p; p++)
        (void)strbuf_append(&expr, *p == '\'' ? "''" : p, *p == '\'' ? 2 : 1);
    (void)strbuf_appends(&expr, "'");
    (void)strbuf_appends(sb, "$filter=");
    strbuf_append_escaped(sb, expr.data, NULL);
    strbuf_release(&expr);
}

/* ------------------------------------------------------------------ the quarantine folder */

/* graph_quarantine_id - the id of the quarantine folder in the session's mailbox (looked up
 * once per mailbox: a well-known name directly, another name by displayName among the top
 * folders). Caller frees; NULL with out filled. */
static char *graph_quarantine_id(backend_session_t *s, backend_outcome_t *out)
{
    backend_t *be = s->backend;
    char *id = graph_quarantine_cached(be, s->mailbox);
    if (id)
        return id;
    strbuf_t url;
    strbuf_init(&url, GRAPH_MAX_URL);
    (void)strbuf_appendf(&url, "%s/mailFolders", s->user_url);
    if (be->quarantine_well_known) {
        (void)strbuf_appends(&url, "/");
        strbuf_append_escaped(&url, be->quarantine, NULL);
        (void)strbuf_appends(&url, "?$select=id");
    } else {
        (void)strbuf_appends(&url, "?");
        graph_append_filter(&url, "displayName", be->quarantine);
        (void)strbuf_appends(&url, "&$select=id,displayName");
    }
    graph_reply_t reply;
    if (graph_call(s, "GET", url.data, NULL, "quarantine folder", &reply, out) == 0) {
        json_t *folder = be->quarantine_well_known ? reply.json : json_array_get(json_object_get(reply.json, "value"), 0);
        const char *fid = json_string_value(json_object_get(folder, "id"));
        if (fid) {
            id = util_xstrdup(fid);
            graph_quarantine_remember(be, s->mailbox, id);
        } else {
            backend_outcome_set(out, BACKEND_FAILED, -1, "quarantine folder '%s' does not exist in %s",
                                be->quarantine, s->mailbox);
        }
    }
    graph_reply_clear(&reply);
    strbuf_release(&url);
    return id;
}

/* ------------------------------------------------------------------ the operations */

static void graph_copies_clear(backend_session_t *s)
{
    for (size_t i = 0; i < s->ncopies; i++) {
        free(s->copies[i].id);
        free(s->copies[i].subject);
    }
    free(s->copies);
    s->copies = NULL;
    s->ncopies = 0;
}

/* graph_same_origin - whether url starts with the scheme://host:port of root (a nextLink
 * must not send the token elsewhere). */
static bool graph_same_origin(const char *root, const char *url)
{
    const char *sep = strstr(root, "://");
    if (!sep)
        return false;
    size_t n = (size_t)(sep + 3 - root);
    n += strcspn(root + n, "/");
    return strncmp(root, url, n) == 0 && (url[n] == '/' || url[n] == '\0');
}

/* graph_collect - keep the messages of one result page whose internetMessageId is exactly
 * message_id (Graph's eq may be looser: case, normalisation). */
static void graph_collect(json_t *page, const char *message_id, json_t *kept)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(page, "value"), i, m) {
        const char *mid = json_string_value(json_object_get(m, "internetMessageId"));
        const char *id = json_string_value(json_object_get(m, "id"));
        if (mid && id && strcmp(mid, message_id) == 0 && json_array_size(kept) < GRAPH_MAX_COPIES)
            json_array_append(kept, m);
    }
}

static void graph_find(backend_session_t *s, const backend_job_t *job, backend_outcome_t *out)
{
    backend_t *be = s->backend;
    graph_copies_clear(s);
    strbuf_t url;
    strbuf_init(&url, GRAPH_MAX_URL);
    (void)strbuf_appendf(&url, "%s/messages?", s->user_url);
    graph_append_filter(&url, "internetMessageId", job->message_id);
    (void)strbuf_appends(&url, "&$select=" GRAPH_SELECT);
    if (url.overflow) {
        strbuf_release(&url);
        backend_outcome_set(out, BACKEND_FAILED, -1, "find: the Message-ID is too long for a query");
        return;
    }
    json_t *kept = json_array();
    char *next = util_xstrdup(url.data);
    strbuf_release(&url);
    int pages = 0;
    while (next) {
        graph_reply_t reply;
        int rc = graph_call(s, "GET", next, NULL, "find", &reply, out);
        free(next);
        next = NULL;
        if (rc < 0) {
            json_decref(kept);
            return;
        }
        graph_collect(reply.json, job->message_id, kept);
        const char *link = json_string_value(json_object_get(reply.json, "@odata.nextLink"));
        if (link && !graph_same_origin(be->api_root, link)) {
            backend_outcome_set(out, BACKEND_FAILED, -1, "find: @odata.nextLink leaves %s", be->api_root);
            graph_reply_clear(&reply);
            json_decref(kept);
            return;
        }
        if (link && ++pages < GRAPH_MAX_PAGES) /* past that, act on the copies found so far */
            next = util_xstrdup(link);
        graph_reply_clear(&reply);
    }
    char *skip_folder = NULL; /* copies already in the quarantine folder are done with */
    if (json_array_size(kept) > 0 && !be->permanent && !(skip_folder = graph_quarantine_id(s, out))) {
        json_decref(kept);
        return;
    }
    size_t i, skipped = 0;
    json_t *m;
    s->copies = util_xcalloc(json_array_size(kept) + 1, sizeof(*s->copies));
    json_array_foreach(kept, i, m) {
        const char *folder = json_string_value(json_object_get(m, "parentFolderId"));
        if (skip_folder && folder && strcmp(folder, skip_folder) == 0) {
            skipped++;
            continue;
        }
        graph_copy_t *c = &s->copies[s->ncopies++];
        c->id = util_xstrdup(json_string_value(json_object_get(m, "id")));
        c->subject = util_xstrdup(graph_str(m, "subject", job->subject ? job->subject : ""));
    }
    json_decref(kept);
    free(skip_folder);
    if (s->ncopies == 0)
        backend_outcome_set(out, BACKEND_NOT_FOUND, -1, "no copy of %s in %s%s", job->message_id, s->mailbox,
                            skipped ? " outside the quarantine folder" : "");
    else
        backend_outcome_set(out, BACKEND_OK, -1, "%zu cop%s of %s in %s", s->ncopies, s->ncopies == 1 ? "y" : "ies",
                            job->message_id, s->mailbox);
}

/* graph_gone - whether a failed call on one message says the message no longer exists. */
static bool graph_gone(const graph_reply_t *reply)
{
    return reply->status == 404 && strcmp(reply->code, "ErrorItemNotFound") == 0;
}

static void graph_remove(backend_session_t *s, const backend_job_t *job, backend_outcome_t *out)
{
    backend_t *be = s->backend;
    json_t *move = NULL;
    if (!be->permanent) {
        char *dest = be->quarantine_well_known ? util_xstrdup(be->quarantine) : graph_quarantine_id(s, out);
        if (!dest)
            return;
        move = json_pack("{s:s}", "destinationId", dest);
        free(dest);
    }
    size_t removed = 0, gone = 0;
    for (size_t i = 0; i < s->ncopies; i++) {
        graph_copy_t *c = &s->copies[i];
        if (c->done)
            continue;
        strbuf_t url;
        graph_message_url(s, &url, c->id, be->permanent ? "permanentDelete" : "move");
        graph_reply_t reply;
        int rc = graph_call(s, "POST", url.data, move, "remove", &reply, out);
        bool is_gone = rc < 0 && graph_gone(&reply);
        graph_reply_clear(&reply);
        strbuf_release(&url);
        if (rc < 0 && !is_gone) {
            json_decref(move);
            return;
        }
        c->done = true;
        if (is_gone)
            gone++;
        else
            removed++;
    }
    json_decref(move);
    if (removed == 0)
        backend_outcome_set(out, BACKEND_NOT_FOUND, -1, "every copy of %s in %s was already gone", job->message_id,
                            s->mailbox);
    else
        backend_outcome_set(out, BACKEND_OK, -1, "%zu cop%s of %s in %s %s (%zu already gone)", removed,
                            removed == 1 ? "y" : "ies", job->message_id, s->mailbox,
                            be->permanent ? "permanently deleted" : "moved to the quarantine folder", gone);
}

static void graph_forward(backend_session_t *s, const backend_job_t *job, const char *to, backend_outcome_t *out)
{
    backend_t *be = s->backend;
    if (!to || !*to)
        to = be->forward_to;
    if (!to || !*to) {
        backend_outcome_set(out, BACKEND_FAILED, -1, "forward: no forward_to address");
        return;
    }
    graph_copy_t *c = NULL;
    for (size_t i = 0; i < s->ncopies && !c; i++)
        if (!s->copies[i].done)
            c = &s->copies[i];
    if (!c) {
        backend_outcome_set(out, BACKEND_NOT_FOUND, -1, "forward: no copy of %s left in %s", job->message_id,
                            s->mailbox);
        return;
    }
    char comment[512];
    snprintf(comment, sizeof(comment), "%s: %s (batch %s, MID %lld) - forwarded by Clawback remediation",
             BACKEND_JOB_HEADER, job->id, job->batch ? job->batch : "-", (long long)job->mid);
    json_t *create = json_pack("{s:[{s:{s:s}}],s:s}", "toRecipients", "emailAddress", "address", to, "comment", comment);
    strbuf_t url;
    graph_message_url(s, &url, c->id, "createForward");
    graph_reply_t reply;
    int rc = graph_call(s, "POST", url.data, create, "forward: createForward", &reply, out);
    json_decref(create);
    strbuf_release(&url);
    if (rc < 0) {
        if (graph_gone(&reply))
            backend_outcome_set(out, BACKEND_NOT_FOUND, -1, "forward: %s is gone from %s", job->message_id, s->mailbox);
        graph_reply_clear(&reply);
        return;
    }
    char *draft = util_xstrdup(json_string_value(json_object_get(reply.json, "id")));
    graph_reply_clear(&reply);
    if (!draft) {
        backend_outcome_set(out, BACKEND_FAILED, -1, "forward: createForward returned no draft id");
        return;
    }
    strbuf_t subject;
    strbuf_init(&subject, 0);
    (void)strbuf_appendf(&subject, "%s%s", BACKEND_FORWARD_PREFIX, c->subject);
    json_t *patch = json_pack("{s:s}", "subject", subject.data);
    strbuf_release(&subject);
    graph_message_url(s, &url, draft, NULL);
    rc = graph_call(s, "PATCH", url.data, patch, "forward: set the subject", &reply, out);
    json_decref(patch);
    graph_reply_clear(&reply);
    strbuf_release(&url);
    if (rc == 0) {
        graph_message_url(s, &url, draft, "send");
        rc = graph_call(s, "POST", url.data, NULL, "forward: send", &reply, out);
        graph_reply_clear(&reply);
        strbuf_release(&url);
    }
    if (rc < 0) { /* the draft is not wanted any more (best effort: out keeps the failure) */
        backend_outcome_t ignored;
        graph_message_url(s, &url, draft, NULL);
        (void)graph_call(s, "DELETE", url.data, NULL, "forward: drop the draft", &reply, &ignored);
        graph_reply_clear(&reply);
        strbuf_release(&url);
    } else {
        backend_outcome_set(out, BACKEND_OK, -1, "%s in %s forwarded to %s", job->message_id, s->mailbox, to);
    }
    free(draft);
}

/* ------------------------------------------------------------------ sessions */

static backend_session_t *graph_session(backend_t *be, const char *mailbox, backend_outcome_t *out)
{
    if (!mailbox || !*mailbox || strlen(mailbox) > 320) {
        backend_outcome_set(out, BACKEND_FAILED, -1, "no valid mailbox address");
        return NULL;
    }
    http_client_t *http = NULL;
    pthread_mutex_lock(&be->pool_lock);
    if (be->npool > 0)
        http = be->pool[--be->npool];
    pthread_mutex_unlock(&be->pool_lock);
    if (!http && !(http = http_client_new(&be->http_options))) {
        backend_outcome_set(out, BACKEND_RETRY, -1, "cannot initialise the HTTP client");
        return NULL;
    }
    backend_session_t *s = util_xcalloc(1, sizeof(*s));
    s->backend = be;
    s->http = http;
    s->mailbox = util_xstrdup(mailbox);
    for (char *p = s->mailbox; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    strbuf_t url;
    strbuf_init(&url, 0);
    (void)strbuf_appendf(&url, "%s/users/", be->api_root);
    strbuf_append_escaped(&url, s->mailbox, "@");
    s->user_url = strbuf_detach(&url);
    return s;
}

static void graph_release(backend_t *be, backend_session_t *s, bool reusable)
{
    if (!s)
        return;
    pthread_mutex_lock(&be->pool_lock);
    if (reusable && be->npool < GRAPH_POOL_MAX) {
        be->pool[be->npool++] = s->http;
        s->http = NULL;
    }
    pthread_mutex_unlock(&be->pool_lock);
    http_client_destroy(&s->http);
    graph_copies_clear(s);
    free(s->mailbox);
    free(s->user_url);
    free(s);
}

/* ------------------------------------------------------------------ open and destroy */

static void graph_destroy(backend_t **self)
{
    if (!self || !*self)
        return;
    backend_t *be = *self;
    for (size_t i = 0; i < be->npool; i++)
        http_client_destroy(&be->pool[i]);
    http_client_destroy(&be->token_http);
    for (size_t i = 0; i < GRAPH_MAILBOX_HASH; i++)
        while (be->mailboxes[i]) {
            graph_mailbox_t *mb = be->mailboxes[i];
            be->mailboxes[i] = mb->next;
            graph_mailbox_free(mb);
        }
    backend_free_secret(&be->token);
    backend_free_secret(&be->secret);
    pthread_mutex_destroy(&be->token_lock);
    pthread_mutex_destroy(&be->pool_lock);
    pthread_mutex_destroy(&be->mailbox_lock);
    free(be->api_root);
    free(be->token_url);
    free(be->scope);
    free(be->client_id);
    free(be->quarantine);
    free(be->forward_to);
    free(be->ca_file);
    free(be);
    *self = NULL;
}

static backend_t *graph_open(const config_profile_t *p, char *err, size_t errsize)
{
    const char *url = p->url && *p->url ? p->url : GRAPH_DEFAULT_URL;
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
        snprintf(err, errsize, "profile %s: url must be http:// or https://", p->name);
        return NULL;
    }
    if (!p->client_id || !*p->client_id || !p->secret_file || !*p->secret_file ||
        ((!p->token_url || !*p->token_url) && (!p->tenant || !*p->tenant))) {
        snprintf(err, errsize, "profile %s: graph needs client_id, secret_file and tenant (or token_url)", p->name);
        return NULL;
    }
    const char *mode = p->delete_mode && *p->delete_mode ? p->delete_mode : "quarantine";
    if (strcmp(mode, "quarantine") != 0 && strcmp(mode, "permanent") != 0) {
        snprintf(err, errsize, "profile %s: delete must be quarantine or permanent, not %s", p->name, mode);
        return NULL;
    }
    char *secret = NULL;
    if (backend_read_secret(p->name, "secret_file", p->secret_file, &secret, err, errsize) < 0)
        return NULL;
    backend_t *be = util_xcalloc(1, sizeof(*be));
    be->secret = secret;
    be->api_root = util_xstrdup(url);
    for (size_t n = strlen(be->api_root); n > 0 && be->api_root[n - 1] == '/'; n--)
        be->api_root[n - 1] = '\0';
    strbuf_t sb;
    strbuf_init(&sb, 0);
    if (p->token_url && *p->token_url) {
        (void)strbuf_appends(&sb, p->token_url);
    } else {
        (void)strbuf_appends(&sb, "https://login.microsoftonline.com/");
        strbuf_append_escaped(&sb, p->tenant, NULL);
        (void)strbuf_appends(&sb, "/oauth2/v2.0/token");
    }
    be->token_url = strbuf_detach(&sb);
    const char *host = strstr(be->api_root, "://") + 3;
    (void)strbuf_append(&sb, be->api_root, (size_t)(host - be->api_root) + strcspn(host, "/"));
    (void)strbuf_appends(&sb, "/.default");
    be->scope = strbuf_detach(&sb);
    be->client_id = util_xstrdup(p->client_id);
    be->quarantine = util_xstrdup(p->quarantine && *p->quarantine ? p->quarantine : GRAPH_DEFAULT_QUARANTINE);
    be->quarantine_well_known = graph_is_well_known(be->quarantine);
    be->permanent = strcmp(mode, "permanent") == 0;
    be->forward_to = util_xstrdup(p->forward_to ? p->forward_to : "");
    be->ca_file = p->ca_file && *p->ca_file ? util_xstrdup(p->ca_file) : NULL;
    be->http_options = (http_client_options_t){
        .total_timeout_ms = p->timeout_ms,
        .max_body = GRAPH_MAX_BODY,
        .insecure = !p->tls_verify,
        .ca_file = be->ca_file,
    };
    be->mailbox_rate = p->mailbox_rate > 0 ? p->mailbox_rate : 10000;
    pthread_mutex_init(&be->token_lock, NULL);
    pthread_mutex_init(&be->pool_lock, NULL);
    pthread_mutex_init(&be->mailbox_lock, NULL);
    return be;
}

const backend_ops_t BACKEND_GRAPH = {
    .type = "graph",
    .open = graph_open,
    .destroy = graph_destroy,
    .session = graph_session,
    .release = graph_release,
    .find = graph_find,
    .forward = graph_forward,
    .remove = graph_remove,
};
