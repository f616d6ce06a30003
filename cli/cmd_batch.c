/*
 * cmd_batch.c - `clawback batch [--json] [UUID]`: remediation batches (batch.h).
 *
 * Without UUID: the newest 50 batches of cb:batches, one line each (created, state, reason,
 * initiator, counters), their hashes read in one pipeline. With UUID: the batch's fields,
 * "done: X of Y" (results of its jobs), and its jobs from cb:batch:<uuid>:jobs sorted by MID
 * then recipient; that hash may hold 100,000 fields, so it is read with HSCAN, never HGETALL.
 * Nothing is written to Redis.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "cli.h"
#include "strbuf.h"
#include "util.h"

#define BATCH_LIST_COUNT 50
#define BATCH_SCAN_COUNT 1000
#define BATCH_JOBS_MAX 2000000 /* jobs shown at most (a batch has one per message and recipient) */

/* The fields of cb:batch:<uuid> shown in text, in this order; numbers are JSON numbers, times
 * (ms) are shown as ISO 8601 UTC. */
typedef struct {
    const char *name;
    bool number;
    bool time;
} batch_field_t;

static const batch_field_t BATCH_FIELDS[] = {
    {"state", false, false},      {"created_ms", true, true},  {"reason", false, false},
    {"source", false, false},     {"initiator", false, false}, {"action", false, false},
    {"feed", false, false},       {"observable_type", false, false}, {"observable", false, false},
    {"verdict", false, false},    {"query", false, false},     {"messages", true, false},
    {"jobs", true, false},        {"skipped", true, false},    {"remediated", true, false},
    {"not_found", true, false},   {"failed", true, false},     {"approved_by", false, false},
    {"approved_ms", true, true},  {"rejected_by", false, false}, {"rejected_ms", true, true},
};

/* One job of a batch (strings owned). */
typedef struct {
    int64_t mid;
    char *rcpt;
    char *state;
    bool implied; /* from a list of jobs as created, not a state written for this job */
} batch_job_t;

static const batch_field_t *batch_field(const char *name)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(BATCH_FIELDS); i++)
        if (strcmp(BATCH_FIELDS[i].name, name) == 0)
            return &BATCH_FIELDS[i];
    return NULL;
}

/* batch_hash_get - the value of a field of an HGETALL reply, NULL when absent. */
static const char *batch_hash_get(const redisReply *h, const char *name)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && h->element[i + 1]->type == REDIS_REPLY_STRING &&
            strcmp(h->element[i]->str, name) == 0)
            return h->element[i + 1]->str;
    return NULL;
}

/* batch_count - a counter of the hash, 0 when absent or not a number. */
static int64_t batch_count(const redisReply *h, const char *name)
{
    int64_t n = 0;
    const char *v = batch_hash_get(h, name);
    return v && util_parse_int64(v, &n) == 0 ? n : 0;
}

/* batch_iso - ms as "YYYY-MM-DDTHH:MM:SSZ" ("?" when it is no time). */
static void batch_iso(int64_t ms, char *out, size_t size)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, size, "?");
}

/* batch_append_cell - s (NULL: "-") cleaned and padded to width, then a space. */
static void batch_append_cell(strbuf_t *out, const char *s, int width)
{
    size_t before = out->len;
    cli_append_clean(out, s && *s ? s : "-");
    size_t chars = 0;
    for (size_t i = before; i < out->len; i++)
        chars += ((unsigned char)out->data[i] & 0xC0) != 0x80;
    for (; chars < (size_t)width; chars++)
        strbuf_appends(out, " ");
    strbuf_appends(out, " ");
}

/* batch_append_value - a field's value: a time in ISO 8601, else cleaned as is. */
static void batch_append_value(strbuf_t *out, const batch_field_t *f, const char *value)
{
    int64_t ms;
    char when[32];
    if (f && f->time && util_parse_int64(value, &ms) == 0) {
        batch_iso(ms, when, sizeof(when));
        strbuf_appends(out, when);
    } else {
        cli_append_clean(out, value);
    }
}

/* batch_append_json - the batch as a JSON object without its closing brace: "batch", then
 * every field of the hash (count and ms fields as numbers when they are). rename_jobs: the
 * "jobs" counter is written as "job_count" (the object gets a "jobs" array). */
static void batch_append_json(strbuf_t *out, const char *uuid, const redisReply *h, bool rename_jobs)
{
    strbuf_appends(out, "{\"batch\":");
    strbuf_append_json_string(out, uuid, strlen(uuid));
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *v = h->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || strcmp(f->str, "batch") == 0 ||
            (rename_jobs && strcmp(f->str, "job_count") == 0))
            continue; /* a name the object already uses */
        const char *name = rename_jobs && strcmp(f->str, "jobs") == 0 ? "job_count" : f->str;
        strbuf_appends(out, ",");
        strbuf_append_json_string(out, name, strlen(name));
        strbuf_appends(out, ":");
        const batch_field_t *known = batch_field(f->str);
        int64_t n;
        if (known && known->number && util_parse_int64(v->str, &n) == 0)
            strbuf_appendf(out, "%lld", (long long)n);
        else
            strbuf_append_json_string(out, v->str, v->len);
    }
}

/* batch_list - the newest batches; 0, or -1 after printing why. */
static int batch_list(redis_conn_t *redis, bool json, strbuf_t *out)
{
    redisReply *z = redis_conn_command(redis, "ZREVRANGE %s 0 %d WITHSCORES", BATCH_INDEX_KEY, BATCH_LIST_COUNT - 1);
    if (!z || z->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "clawback batch: %s\n", z ? "cb:batches: unexpected reply from Redis" : redis_conn_errstr(redis));
        if (z)
            freeReplyObject(z);
        return -1;
    }
    const char *uuids[BATCH_LIST_COUNT];
    int64_t created[BATCH_LIST_COUNT];
    size_t n = 0, malformed = 0;
    for (size_t i = 0; i + 1 < z->elements && n < BATCH_LIST_COUNT; i += 2) {
        const redisReply *member = z->element[i], *score = z->element[i + 1];
        char *end = NULL;
        double ms = score->type == REDIS_REPLY_STRING ? strtod(score->str, &end) : -1;
        if (member->type != REDIS_REPLY_STRING || !batch_uuid_valid(member->str) || !end || *end ||
            !(ms >= 0 && ms < 1e14)) {
            malformed++;
            continue;
        }
        uuids[n] = member->str;
        created[n++] = (int64_t)ms;
    }
    redisReply *h[BATCH_LIST_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        char key[96];
        batch_key(key, sizeof(key), uuids[i], NULL);
        if (redis_conn_append(redis, "HGETALL %s", key) < 0) {
            fprintf(stderr, "clawback batch: %s\n", redis_conn_errstr(redis));
            freeReplyObject(z);
            return -1;
        }
    }
    if (n && redis_conn_pipeline_exec(redis, h, n) < 0) {
        fprintf(stderr, "clawback batch: %s\n", redis_conn_errstr(redis));
        freeReplyObject(z);
        return -1;
    }
    if (json)
        strbuf_appends(out, "[");
    else
        strbuf_appendf(out, "%-36s %-20s %-17s %-17s %-20s %8s %8s %10s %9s %6s\n", "UUID", "CREATED", "STATE",
                       "REASON", "INITIATOR", "MESSAGES", "JOBS", "REMEDIATED", "NOT_FOUND", "FAILED");
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i]->type != REDIS_REPLY_ARRAY) {
            malformed++;
            continue;
        }
        if (h[i]->elements == 0)
            continue; /* expired: only the listing remembers it */
        if (json) {
            strbuf_appends(out, shown ? "," : "");
            batch_append_json(out, uuids[i], h[i], false);
            strbuf_appends(out, "}");
        } else {
            char when[32];
            batch_iso(created[i], when, sizeof(when));
            strbuf_appendf(out, "%-36s %-20s ", uuids[i], when);
            batch_append_cell(out, batch_hash_get(h[i], "state"), 17);
            batch_append_cell(out, batch_hash_get(h[i], "reason"), 17);
            batch_append_cell(out, batch_hash_get(h[i], "initiator"), 20);
            strbuf_appendf(out, "%8lld %8lld %10lld %9lld %6lld\n", (long long)batch_count(h[i], "messages"),
                           (long long)batch_count(h[i], "jobs"), (long long)batch_count(h[i], "remediated"),
                           (long long)batch_count(h[i], "not_found"), (long long)batch_count(h[i], "failed"));
        }
        shown++;
    }
    if (json)
        strbuf_appends(out, "]\n");
    if (malformed)
        fprintf(stderr, "clawback batch: %zu malformed entr%s in Redis set aside\n", malformed,
                malformed == 1 ? "y" : "ies");
    for (size_t i = 0; i < n; i++)
        freeReplyObject(h[i]);
    freeReplyObject(z);
    return 0;
}

/* batch_job_parse - split a jobs field "<mid> <recipient>"; false when malformed. */
static bool batch_job_parse(const char *field, int64_t *mid, const char **rcpt)
{
    const char *sp = strchr(field, ' ');
    char num[24];
    size_t len = sp ? (size_t)(sp - field) : 0;
    if (!len || len >= sizeof(num) || !sp[1])
        return false;
    memcpy(num, field, len);
    num[len] = '\0';
    if (util_parse_int64(num, mid) != 0 || *mid <= 0)
        return false;
    *rcpt = sp + 1;
    return true;
}

static int batch_job_cmp(const void *a, const void *b)
{
    const batch_job_t *x = a, *y = b;
    if (x->mid != y->mid)
        return x->mid < y->mid ? -1 : 1;
    return strcmp(x->rcpt, y->rcpt);
}

/* batch_job_order - batch_job_cmp, then a job's own state before its implied one. */
static int batch_job_order(const void *a, const void *b)
{
    int c = batch_job_cmp(a, b);
    return c ? c : (int)((const batch_job_t *)a)->implied - (int)((const batch_job_t *)b)->implied;
}

/* batch_job_push - append a job (strings copied); false when the list is full. */
static bool batch_job_push(batch_job_t **jobs, size_t *n, size_t *cap, int64_t mid, const char *rcpt, size_t len,
                           const char *state, bool implied)
{
    if (*n == BATCH_JOBS_MAX)
        return false;
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        *jobs = util_xrealloc(*jobs, *cap * sizeof(**jobs));
    }
    (*jobs)[(*n)++] =
        (batch_job_t){.mid = mid, .rcpt = util_xstrndup(rcpt, len), .state = util_xstrdup(state), .implied = implied};
    return true;
}

/* batch_job_list - the jobs of a list field ("@...": "<mid> <recipient>" lines, as the enricher
 * created them), with state implied; false when the list is full. Malformed lines counted. */
static bool batch_job_list(batch_job_t **jobs, size_t *n, size_t *cap, const char *list, const char *implied,
                           size_t *malformed)
{
    for (const char *line = list; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[400];
        int64_t mid;
        const char *rcpt;
        if (len && len < sizeof(buf)) {
            memcpy(buf, line, len);
            buf[len] = '\0';
            if (!batch_job_parse(buf, &mid, &rcpt))
                (*malformed)++;
            else if (!batch_job_push(jobs, n, cap, mid, rcpt, strlen(rcpt), implied, true))
                return false;
        } else if (len) {
            (*malformed)++;
        }
        line += len + (end ? 1 : 0);
    }
    return true;
}

/* batch_scan_jobs - every job of the hash key, sorted by MID then recipient, each once (HSCAN
 * may return a field twice; a job's own state wins over the one its list implies, implied).
 * *jobs allocated (caller frees it and its strings). 0, or -1 after printing why. */
static int batch_scan_jobs(redis_conn_t *redis, const char *key, const char *implied, batch_job_t **jobs, size_t *n)
{
    size_t cap = 0, malformed = 0;
    bool truncated = false;
    char cursor[32] = "0";
    *jobs = NULL;
    *n = 0;
    do {
        redisReply *r = redis_conn_command(redis, "HSCAN %s %s COUNT %d", key, cursor, BATCH_SCAN_COUNT);
        if (!r) {
            fprintf(stderr, "clawback batch: %s\n", redis_conn_errstr(redis));
            return -1;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof(cursor) || r->element[1]->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "clawback batch: %s: unexpected reply from Redis\n", key);
            freeReplyObject(r);
            return -1;
        }
        util_strlcpy(cursor, r->element[0]->str, sizeof(cursor));
        const redisReply *page = r->element[1];
        for (size_t i = 0; i + 1 < page->elements && !truncated; i += 2) {
            const redisReply *f = page->element[i], *v = page->element[i + 1];
            int64_t mid;
            const char *rcpt;
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                malformed++;
            else if (f->str[0] == BATCH_JOB_LIST_PREFIX)
                truncated = !batch_job_list(jobs, n, &cap, v->str, implied, &malformed);
            else if (!batch_job_parse(f->str, &mid, &rcpt))
                malformed++;
            else
                truncated = !batch_job_push(jobs, n, &cap, mid, rcpt, strlen(rcpt), v->str, false);
        }
        freeReplyObject(r);
    } while (!truncated && strcmp(cursor, "0") != 0);
    if (malformed)
        fprintf(stderr, "clawback batch: %s: %zu malformed job%s set aside\n", key, malformed, malformed == 1 ? "" : "s");
    if (truncated)
        fprintf(stderr, "clawback batch: %s: more than %d jobs, the rest not shown\n", key, BATCH_JOBS_MAX);
    if (*n)
        qsort(*jobs, *n, sizeof(**jobs), batch_job_order);
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        if (w && batch_job_cmp(&(*jobs)[w - 1], &(*jobs)[i]) == 0) {
            free((*jobs)[i].rcpt);
            free((*jobs)[i].state);
        } else {
            (*jobs)[w++] = (*jobs)[i];
        }
    }
    *n = w;
    return 0;
}

/* batch_show - one batch and its jobs; CLI_OK, or CLI_FAILURE after printing why. */
static int batch_show(redis_conn_t *redis, const char *uuid, bool json, strbuf_t *out)
{
    char key[96], jobs_key[96];
    batch_key(key, sizeof(key), uuid, NULL);
    batch_key(jobs_key, sizeof(jobs_key), uuid, "jobs");
    redisReply *h = redis_conn_command(redis, "HGETALL %s", key);
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "clawback batch: %s\n", h ? "unexpected reply from Redis" : redis_conn_errstr(redis));
        if (h)
            freeReplyObject(h);
        return CLI_FAILURE;
    }
    if (h->elements == 0) {
        fprintf(stderr, "clawback batch: no batch %s\n", uuid);
        freeReplyObject(h);
        return CLI_FAILURE;
    }
    batch_job_t *jobs;
    size_t n;
    const char *state = batch_hash_get(h, "state");
    const char *implied = state && !strcmp(state, BATCH_AWAITING_APPROVAL) ? BATCH_JOB_HELD : BATCH_JOB_INITIATED;
    if (batch_scan_jobs(redis, jobs_key, implied, &jobs, &n) != 0) {
        freeReplyObject(h);
        return CLI_FAILURE;
    }
    if (json) {
        batch_append_json(out, uuid, h, true);
        strbuf_appends(out, ",\"jobs\":[");
        for (size_t i = 0; i < n; i++) {
            strbuf_appendf(out, "%s{\"mid\":%lld,\"recipient\":", i ? "," : "", (long long)jobs[i].mid);
            strbuf_append_json_string(out, jobs[i].rcpt, strlen(jobs[i].rcpt));
            strbuf_appends(out, ",\"state\":");
            strbuf_append_json_string(out, jobs[i].state, strlen(jobs[i].state));
            strbuf_appends(out, "}");
        }
        strbuf_appends(out, "]}\n");
    } else {
        strbuf_appendf(out, "batch: %s\n", uuid);
        for (size_t i = 0; i < UTIL_ARRAY_LEN(BATCH_FIELDS); i++) {
            const char *v = batch_hash_get(h, BATCH_FIELDS[i].name);
            if (!v)
                continue;
            strbuf_appendf(out, "%s: ", BATCH_FIELDS[i].name);
            batch_append_value(out, &BATCH_FIELDS[i], v);
            strbuf_appends(out, "\n");
        }
        int64_t done = batch_count(h, "remediated") + batch_count(h, "not_found") + batch_count(h, "failed");
        strbuf_appendf(out, "done: %lld of %lld\n\n%-12s ", (long long)done, (long long)batch_count(h, "jobs"), "MID");
        batch_append_cell(out, "RECIPIENT", 40);
        strbuf_appends(out, "STATE\n");
        for (size_t i = 0; i < n; i++) {
            strbuf_appendf(out, "%-12lld ", (long long)jobs[i].mid);
            batch_append_cell(out, jobs[i].rcpt, 40);
            cli_append_clean(out, jobs[i].state);
            strbuf_appends(out, "\n");
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(jobs[i].rcpt);
        free(jobs[i].state);
    }
    free(jobs);
    freeReplyObject(h);
    return CLI_OK;
}

int cli_cmd_batch(cli_t *cli, int argc, char **argv)
{
    bool json = false;
    const char *uuid = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (!uuid && argv[i][0] != '-')
            uuid = argv[i];
        else
            return CLI_USAGE;
    }
    if (uuid && !batch_uuid_valid(uuid)) {
        fprintf(stderr, "clawback batch: bad batch id '%s' (a UUID in lowercase hex)\n", uuid);
        return CLI_USAGE;
    }
    redis_conn_t *redis = cli_connect(cli);
    if (!redis)
        return CLI_FAILURE;
    strbuf_t out;
    strbuf_init(&out, 0);
    int rc = uuid ? batch_show(redis, uuid, json, &out) : batch_list(redis, json, &out) == 0 ? CLI_OK : CLI_FAILURE;
    if (rc == CLI_OK && out.data)
        fputs(out.data, stdout);
    strbuf_release(&out);
    redis_conn_destroy(&redis);
    return rc;
}
