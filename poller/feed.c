/*
 * feed.c - one feed driven by the poller: lease, schedule, pages, hand-over; see feed.h.
 */
#include "feed.h"

#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "event.h"
#include "feed_status.h"
#include "fetch.h"
#include "log.h"
#include "record.h"
#include "util.h"

#define POLLER_PROGRAM "clawback-poller"
#define POLLER_VERDICT_EDGE "verdicts"
#define POLLER_CHUNK 500          /* items per commit */
#define POLLER_SLICE_MS 50        /* longest hand-over work per tick */
#define POLLER_MAX_PAGES 10000    /* pages per poll, against a server that always says "more" */
#define POLLER_RETRY_COMMIT_MS 1000
#define POLLER_MAX_RETRY_AFTER_MS 3600000
#define POLLER_MAX_SKEW_MS 60000 /* a feed time further ahead than this never moves a cursor */

typedef enum {
    FEED_IDLE,
    FEED_FETCHING,
    FEED_HANDING_OVER,
} poller_phase_t;

typedef enum {
    FEED_KIND_RETRO,
    FEED_KIND_TAXII21,
    FEED_KIND_MISP,
    FEED_KIND_LIST, /* urlhaus, openphish: snapshots */
} poller_kind_t;

struct poller_feed {
    const config_feed_t *cfg;
    daemon_t *daemon;
    poller_kind_t kind;
    fetch_t *fetch;
    char hash_key[128], lease_key[128], seen_key[128];
    /* lease */
    bool leased;
    int64_t lease_renewed_ms; /* monotonic */
    /* schedule */
    poller_phase_t phase;
    int64_t next_poll_ms; /* wall clock */
    int64_t failures;
    /* the poll in progress */
    int64_t poll_started_ms;
    size_t pages, poll_new;
    char *token, *region_uri; /* retro */
    int64_t since_ms;         /* retro: the since of the current page */
    char *added_after;        /* taxii21 */
    int64_t misp_since_s, misp_page, misp_max_ms;
    int64_t cursor_ms;        /* retro, misp: the committed cursor */
    int64_t pending_cursor_ms; /* the cursor the commit in flight writes, 0: none */
    /* the page being handed over */
    fetch_job_t *job;
    size_t pos, page_new;
    zhashx_t *page_keys; /* keys of this page already handled */
    int64_t retry_commit_at; /* monotonic: a commit waits until then (full, Redis down) */
};

/* ------------------------------------------------------------------ lease */

static redis_script_t POLLER_LEASE_SCRIPT = {
    .source = "local v = redis.call('GET', KEYS[1])\n"
              "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
              "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end\n"
              "return 0\n",
};
static redis_script_t POLLER_RELEASE_SCRIPT = {
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
              "return 0\n",
};

/* poller_lease_call - run a lease script; its integer reply, or -1 when Redis failed. */
static int64_t poller_lease_call(poller_feed_t *self, redis_script_t *script)
{
    const config_t *cfg = daemon_config(self->daemon);
    const char *instance = bus_instance(daemon_bus(self->daemon));
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)cfg->poller_lease_ms);
    const char *argv[] = {self->lease_key, instance, ttl};
    size_t lens[] = {strlen(argv[0]), strlen(argv[1]), strlen(argv[2])};
    redisReply *r = redis_conn_eval(daemon_redis(self->daemon), script, 1, 3, argv, lens);
    int64_t rc = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return rc;
}

/* poller_drop_page - forget the page being handed over (its items are fetched again). */
static void poller_drop_page(poller_feed_t *self)
{
    fetch_job_destroy(&self->job);
    zhashx_destroy(&self->page_keys);
    self->pos = self->page_new = 0;
}

/* poller_lose_lease - another instance has the feed now: stop handing over. */
static void poller_lose_lease(poller_feed_t *self, const char *why)
{
    if (self->leased)
        log_info("ECS: Feed '%s' handed over to another poller (%s)", self->cfg->name, why);
    self->leased = false;
    poller_drop_page(self);
    if (self->phase == FEED_HANDING_OVER)
        self->phase = FEED_IDLE;
}

/* poller_load_state - read the schedule and the retro token of a feed just taken. */
static void poller_load_state(poller_feed_t *self)
{
    redisReply *r = redis_conn_command(daemon_redis(self->daemon), "HMGET %s %s %s %s %s", self->hash_key,
                                       FEED_FIELD_NEXT_POLL, FEED_FIELD_FAILURES, FEED_FIELD_TOKEN,
                                       FEED_FIELD_REGION);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
        int64_t n;
        self->next_poll_ms = r->element[0]->str && util_parse_int64(r->element[0]->str, &n) == 0 ? n : 0;
        self->failures = r->element[1]->str && util_parse_int64(r->element[1]->str, &n) == 0 ? n : 0;
        free(self->token);
        free(self->region_uri);
        self->token = r->element[2]->str ? util_xstrdup(r->element[2]->str) : NULL;
        self->region_uri = r->element[3]->str ? util_xstrdup(r->element[3]->str) : NULL;
    }
    if (r)
        freeReplyObject(r);
}

/* poller_keep_lease - take or renew the lease when due; whether this instance holds it. */
static bool poller_keep_lease(poller_feed_t *self)
{
    int64_t lease_ms = daemon_config(self->daemon)->poller_lease_ms;
    int64_t now = util_monotonic_ms();
    if (self->leased && now - self->lease_renewed_ms < lease_ms / 3)
        return true;
    int64_t rc = poller_lease_call(self, &POLLER_LEASE_SCRIPT);
    if (rc == 1 || rc == 2) {
        if (!self->leased) {
            log_info("ECS: Feed '%s' taken by this poller", self->cfg->name);
            poller_load_state(self);
        }
        self->leased = true;
        self->lease_renewed_ms = now;
    } else if (rc == 0) {
        poller_lose_lease(self, "lease held elsewhere");
    } else if (self->leased && now - self->lease_renewed_ms >= lease_ms) {
        poller_lose_lease(self, "lease not renewed: Redis unreachable");
    }
    return self->leased;
}

/* ------------------------------------------------------------------ lines and state */

/* poller_emit_lines - write a job's lines to the log and hand them to the logger. */
static void poller_emit_lines(poller_feed_t *self, const fetch_job_t *job)
{
    if (!job->nlines)
        return;
    bus_commit_t *c = bus_commit_new(daemon_bus(self->daemon), NULL);
    for (size_t i = 0; i < job->nlines; i++) {
        log_at(job->lines[i].level, "%s", job->lines[i].message);
        if (job->lines[i].level <= daemon_config(self->daemon)->log_level) {
            char err[256];
            (void)event_commit_add(c, POLLER_PROGRAM, "ecs", job->lines[i].level, 0, NULL, job->lines[i].message,
                                   err, sizeof(err));
        }
    }
    /* progress lines are not state: when the logger's edge is full they stay in this log only */
    if (bus_commit_run(c) != BUS_OK)
        log_debug("ECS: Feed '%s': %zu lines not sent to the logger: %s", self->cfg->name, job->nlines,
                  bus_errstr(daemon_bus(self->daemon)));
    bus_commit_destroy(&c);
}

/* poller_fail - a poll failed: back off, record the error. */
static void poller_fail(poller_feed_t *self, const char *error, int64_t retry_after_s)
{
    const config_feed_t *f = self->cfg;
    self->failures++;
    int64_t delay = f->backoff_min_ms;
    for (int64_t i = 1; i < self->failures && delay < f->backoff_max_ms; i++)
        delay *= 2;
    if (delay > f->backoff_max_ms)
        delay = f->backoff_max_ms;
    delay = delay / 2 + (int64_t)(((uint64_t)random() % 1000) * (uint64_t)(delay / 2) / 1000); /* jitter */
    if (retry_after_s > 0) {
        int64_t ra = retry_after_s * 1000 > POLLER_MAX_RETRY_AFTER_MS ? POLLER_MAX_RETRY_AFTER_MS : retry_after_s * 1000;
        if (ra > delay)
            delay = ra;
    }
    int64_t now = util_now_ms();
    self->next_poll_ms = now + delay;
    self->phase = FEED_IDLE;
    poller_drop_page(self);
    log_warning("ECS: Feed '%s' poll failed: %s. Attempt %lld, next in %.1f s", f->name, error,
                (long long)self->failures, (double)delay / 1000.0);
    redisReply *r = redis_conn_command(daemon_redis(self->daemon), "HSET %s %s %s %s %lld %s %lld %s %lld",
                                       self->hash_key, FEED_FIELD_LAST_ERROR, error, FEED_FIELD_LAST_ERROR_MS,
                                       (long long)now, FEED_FIELD_FAILURES, (long long)self->failures,
                                       FEED_FIELD_NEXT_POLL, (long long)self->next_poll_ms);
    if (r)
        freeReplyObject(r);
}

/* ------------------------------------------------------------------ polls */

/* poller_start_page - hand the next page's job to the worker. */
static void poller_start_page(poller_feed_t *self)
{
    fetch_job_t *job = fetch_job_new(self->cfg);
    char text[64];
    job->first_page = self->pages == 0;
    switch (self->kind) {
    case FEED_KIND_RETRO:
        feed_format_time(self->since_ms, false, text, sizeof(text));
        job->since = util_xstrdup(text);
        job->token = self->token ? util_xstrdup(self->token) : NULL;
        job->region_uri = self->region_uri ? util_xstrdup(self->region_uri) : NULL;
        break;
    case FEED_KIND_TAXII21:
        job->since = self->added_after ? util_xstrdup(self->added_after) : NULL;
        if (self->job && self->job->page.more && self->job->page.next)
            job->next = util_xstrdup(self->job->page.next);
        break;
    case FEED_KIND_MISP:
        snprintf(text, sizeof(text), "%lld", (long long)self->misp_since_s);
        job->since = util_xstrdup(text);
        job->page_number = self->misp_page;
        break;
    case FEED_KIND_LIST:
        break;
    }
    poller_drop_page(self);
    if (fetch_start(self->fetch, &job) < 0) {
        fetch_job_destroy(&job);
        poller_fail(self, "the feed's worker is not available", -1);
        return;
    }
    self->phase = FEED_FETCHING;
}

/* poller_start_poll - begin a poll from the committed cursor. */
static void poller_start_poll(poller_feed_t *self)
{
    const config_feed_t *f = self->cfg;
    const config_t *cfg = daemon_config(self->daemon);
    int64_t now = util_now_ms();
    char committed[128] = ""; /* the cursor as last committed */
    redisReply *r = redis_conn_command(daemon_redis(self->daemon), "HGET %s %s", self->hash_key, FEED_FIELD_CURSOR);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        poller_fail(self, "Redis unreachable", -1);
        return;
    }
    if (r->type == REDIS_REPLY_STRING)
        util_strlcpy(committed, r->str, sizeof(committed));
    freeReplyObject(r);
    self->poll_started_ms = now;
    self->pages = self->poll_new = 0;
    self->misp_max_ms = 0;
    int64_t cursor = 0;
    bool has_cursor = committed[0] && util_parse_int64(committed, &cursor) == 0;
    switch (self->kind) {
    case FEED_KIND_RETRO:
        self->cursor_ms = has_cursor ? cursor : 0;
        /* since is inclusive and in whole seconds: the second after the newest one handed over,
         * less the overlap that catches verdicts the service adds late */
        self->since_ms = has_cursor ? cursor + 1000 - f->overlap_ms : now - f->initial_lookback_ms;
        if (self->since_ms < now - cfg->index_retention_ms)
            self->since_ms = now - cfg->index_retention_ms; /* older verdicts are not acted on */
        break;
    case FEED_KIND_TAXII21: {
        char text[64];
        free(self->added_after);
        feed_format_time(now - f->initial_lookback_ms, true, text, sizeof(text));
        self->added_after = util_xstrdup(committed[0] ? committed : text);
        break;
    }
    case FEED_KIND_MISP:
        self->cursor_ms = has_cursor ? cursor * 1000 : 0;
        self->misp_since_s = has_cursor ? cursor - f->overlap_ms / 1000 : (now - f->initial_lookback_ms) / 1000;
        if (self->misp_since_s < (now - cfg->index_retention_ms) / 1000)
            self->misp_since_s = (now - cfg->index_retention_ms) / 1000; /* older verdicts are not acted on */
        self->misp_page = 1;
        break;
    case FEED_KIND_LIST:
        break;
    }
    r = redis_conn_command(daemon_redis(self->daemon), "HSET %s %s %lld", self->hash_key, FEED_FIELD_LAST_POLL,
                           (long long)now);
    if (r)
        freeReplyObject(r);
    poller_start_page(self);
}

/* poller_finish_poll - the last page is handed over: schedule the next poll. */
static void poller_finish_poll(poller_feed_t *self)
{
    const config_t *cfg = daemon_config(self->daemon);
    int64_t now = util_now_ms();
    self->failures = 0;
    self->next_poll_ms = self->poll_started_ms + self->cfg->interval_ms;
    self->phase = FEED_IDLE;
    if (self->kind != FEED_KIND_RETRO)
        log_info("ECS: Feed '%s' polled: %zu new verdicts in %zu pages", self->cfg->name, self->poll_new, self->pages);
    redis_conn_t *redis = daemon_redis(self->daemon);
    redisReply *r = redis_conn_command(redis, "HSET %s %s %lld %s %lld %s 0", self->hash_key, FEED_FIELD_LAST_SUCCESS,
                                       (long long)now, FEED_FIELD_NEXT_POLL, (long long)self->next_poll_ms,
                                       FEED_FIELD_FAILURES);
    if (r)
        freeReplyObject(r);
    r = redis_conn_command(redis, "ZREMRANGEBYSCORE %s -inf %lld", self->seen_key,
                           (long long)(now - cfg->index_retention_ms));
    if (r)
        freeReplyObject(r);
}

/* poller_page_time - the newest time among the page's items that is not ahead of the clock by
 * more than POLLER_MAX_SKEW_MS (a bad timestamp must not move a cursor past everything to
 * come); 0 when none. */
static int64_t poller_page_time(const fetch_job_t *job)
{
    int64_t limit = util_now_ms() + POLLER_MAX_SKEW_MS, newest = 0;
    for (size_t i = 0; i < job->page.count; i++)
        if (job->page.items[i].observed_ms <= limit && job->page.items[i].observed_ms > newest)
            newest = job->page.items[i].observed_ms;
    return newest;
}

/* poller_page_is_last - whether the page being handed over ends the poll. */
static bool poller_page_is_last(const poller_feed_t *self)
{
    const fetch_job_t *job = self->job;
    if (self->pages + 1 >= POLLER_MAX_PAGES)
        return true;
    switch (self->kind) {
    case FEED_KIND_RETRO:
        return !job->page.more;
    case FEED_KIND_TAXII21:
        return !job->page.more || (!job->page.next && !job->date_added_last);
    case FEED_KIND_MISP:
        return job->page.raw_count < (size_t)self->cfg->page_size;
    case FEED_KIND_LIST:
        return true;
    }
    return true;
}

/* poller_page_done - a page is handed over: fetch the next one or finish the poll. */
static void poller_page_done(poller_feed_t *self)
{
    const fetch_job_t *job = self->job;
    bool next = !poller_page_is_last(self);
    if (!next && self->pages + 1 >= POLLER_MAX_PAGES && (job->page.more || self->kind == FEED_KIND_MISP))
        log_warning("ECS: Feed '%s': stopping after %d pages; the next poll goes on from the newest time seen",
                    self->cfg->name, POLLER_MAX_PAGES);
    self->pages++;
    self->poll_new += self->page_new;
    if (self->kind == FEED_KIND_MISP && poller_page_time(job) > self->misp_max_ms)
        self->misp_max_ms = poller_page_time(job);
    switch (next ? self->kind : FEED_KIND_LIST) {
    case FEED_KIND_RETRO:
        if (job->page.more) {
            if (poller_page_time(job) > self->since_ms) {
                self->since_ms = poller_page_time(job);
            } else {
                /* a full page of one timestamp: step over it rather than loop */
                log_warning("ECS: Feed '%s': a full page at one timestamp; moving since by one second",
                            self->cfg->name);
                self->since_ms += 1000;
            }
        }
        break;
    case FEED_KIND_TAXII21:
        if (!job->page.next) { /* "more" without "next": ask again from the page's date added */
            free(self->added_after);
            self->added_after = util_xstrdup(job->date_added_last);
        }
        break;
    case FEED_KIND_MISP:
        self->misp_page++;
        break;
    case FEED_KIND_LIST:
        break;
    }
    if (next) {
        poller_start_page(self); /* keeps the job until the next one is built (taxii "next") */
    } else {
        poller_finish_poll(self);
        poller_drop_page(self);
    }
}

/* poller_verdict_add - add the verdict record of item to commit; 0, or -1 when it does not
 * encode (the item is skipped). */
static int poller_verdict_add(poller_feed_t *self, bus_commit_t *c, const feed_item_t *item)
{
    record_verdict_t v;
    memset(&v, 0, sizeof(v));
    record_init(&RECORD_DESC_verdict, &v);
    free(v.id);
    char id[RECORD_MAX_ID + 1];
    snprintf(id, sizeof(id), "feed:%s:%s", self->cfg->name, item->key);
    v.id = util_xstrdup(id);
    v.feed = util_xstrdup(self->cfg->name);
    v.observable_type = util_xstrdup(item->type == FEED_OBSERVABLE_DOMAIN ? "domain" : "url");
    v.value = util_xstrdup(item->value);
    v.disposition = util_xstrdup("malicious");
    v.email_id = item->email_id ? util_xstrdup(item->email_id) : NULL;
    v.observed_ms = item->observed_ms;
    v.context = item->context ? util_xstrdup(item->context) : NULL;
    char err[256];
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int rc = record_encode(&RECORD_DESC_verdict, &v, &buf, err, sizeof(err));
    if (rc == 0 && buf.size > (size_t)daemon_config(self->daemon)->bus_max_record) {
        snprintf(err, sizeof(err), "record of %zu bytes is larger than [bus] max_record", buf.size);
        rc = -1;
    }
    if (rc == 0 && bus_commit_add(c, POLLER_VERDICT_EDGE, v.id, buf.data, buf.size) < 0) {
        snprintf(err, sizeof(err), "%s", bus_errstr(daemon_bus(self->daemon)));
        rc = -1;
    }
    if (rc < 0)
        log_warning("ECS: Feed '%s': verdict for '%.200s' skipped: %s", self->cfg->name, item->value, err);
    msgpack_sbuffer_destroy(&buf);
    record_clear(&RECORD_DESC_verdict, &v);
    return rc;
}

/* poller_add_final_writes - the page's cursor and counters, with its last chunk. */
static void poller_add_final_writes(poller_feed_t *self, bus_commit_t *c)
{
    const fetch_job_t *job = self->job;
    bool last = poller_page_is_last(self);
    char text[64];
    self->pending_cursor_ms = 0;
    switch (self->kind) {
    case FEED_KIND_RETRO: {
        /* within a poll the next page asks from the newest second again (more of that second may
         * follow): so does a restart, until the poll is complete */
        int64_t cursor = poller_page_time(job) - (last ? 0 : 1000);
        if (cursor > self->cursor_ms) {
            self->pending_cursor_ms = cursor;
            snprintf(text, sizeof(text), "%lld", (long long)cursor);
            bus_commit_hset(c, self->hash_key, FEED_FIELD_CURSOR, text);
        }
        break;
    }
    case FEED_KIND_TAXII21:
        if (job->date_added_last)
            bus_commit_hset(c, self->hash_key, FEED_FIELD_CURSOR, job->date_added_last);
        break;
    case FEED_KIND_MISP: {
        int64_t newest = poller_page_time(job) > self->misp_max_ms ? poller_page_time(job) : self->misp_max_ms;
        if (last && newest / 1000 * 1000 > self->cursor_ms) {
            self->pending_cursor_ms = newest / 1000 * 1000;
            snprintf(text, sizeof(text), "%lld", (long long)(newest / 1000));
            bus_commit_hset(c, self->hash_key, FEED_FIELD_CURSOR, text);
        }
        break;
    }
    case FEED_KIND_LIST:
        break;
    }
    if (job->page.skipped)
        bus_commit_hincrby(c, self->hash_key, FEED_FIELD_SKIPPED, (int64_t)job->page.skipped);
    if (job->page.withdrawn)
        bus_commit_hincrby(c, self->hash_key, FEED_FIELD_WITHDRAWN, (int64_t)job->page.withdrawn);
}

/* poller_announce - a line in this log and, best effort, the logger's (a logger that is down
 * must not hold verdicts back, so it never shares a commit with them). */
static void poller_announce(poller_feed_t *self, log_level_t level, const char *line)
{
    log_at(level, "%s", line);
    bus_commit_t *c = bus_commit_new(daemon_bus(self->daemon), NULL);
    char err[256];
    if (event_commit_add(c, POLLER_PROGRAM, "ecs", level, 0, NULL, line, err, sizeof(err)) < 0 ||
        bus_commit_run(c) != BUS_OK)
        log_debug("ECS: Feed '%s': a line was not sent to the logger: %s", self->cfg->name,
                  bus_errstr(daemon_bus(self->daemon)));
    bus_commit_destroy(&c);
}

/* poller_unchoose - a chunk was not committed: its keys are to be handled again. */
static void poller_unchoose(poller_feed_t *self, const size_t *idx, size_t n)
{
    for (size_t j = 0; j < n; j++)
        zhashx_delete(self->page_keys, self->job->page.items[idx[j]].key);
}

/* poller_hand_over_chunk - commit the next chunk of the page. 1: more to do, 0: the page is
 * done, -1: wait (full, Redis down) or stop (lease lost). */
static int poller_hand_over_chunk(poller_feed_t *self)
{
    fetch_job_t *job = self->job;
    bus_t *bus = daemon_bus(self->daemon);
    redis_conn_t *redis = daemon_redis(self->daemon);
    size_t end = self->pos + POLLER_CHUNK;
    if (end > job->page.count)
        end = job->page.count;
    bool last = end == job->page.count;

    /* the chunk's keys not yet handled in this page, then which of them were handed over before */
    size_t n = 0;
    size_t *idx = util_xcalloc(end - self->pos + 1, sizeof(*idx));
    for (size_t i = self->pos; i < end; i++) /* page_keys: handled, or chosen for this chunk */
        if (zhashx_insert(self->page_keys, job->page.items[i].key, (void *)1) == 0)
            idx[n++] = i;
    bool *seen = util_xcalloc(n + 1, sizeof(*seen));
    if (n) {
        const char **argv = util_xcalloc(n + 2, sizeof(*argv));
        size_t *lens = util_xcalloc(n + 2, sizeof(*lens));
        argv[0] = "ZMSCORE", lens[0] = 7;
        argv[1] = self->seen_key, lens[1] = strlen(self->seen_key);
        for (size_t j = 0; j < n; j++)
            argv[j + 2] = job->page.items[idx[j]].key, lens[j + 2] = strlen(argv[j + 2]);
        redisReply *r = redis_conn_commandargv(redis, (int)n + 2, argv, lens);
        free(argv);
        free(lens);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n) {
            log_warning("ECS: Feed '%s': cannot read what was handed over: %s", self->cfg->name,
                        r ? "unexpected reply" : redis_conn_errstr(redis));
            if (r)
                freeReplyObject(r);
            poller_unchoose(self, idx, n);
            free(idx);
            free(seen);
            self->retry_commit_at = util_monotonic_ms() + POLLER_RETRY_COMMIT_MS;
            return -1;
        }
        for (size_t j = 0; j < n; j++)
            seen[j] = r->element[j]->type != REDIS_REPLY_NIL;
        freeReplyObject(r);
    }

    int64_t now = util_now_ms();
    bus_commit_t *c = bus_commit_new(bus, NULL);
    bus_commit_guard(c, self->lease_key, bus_instance(bus));
    size_t added = 0;
    for (size_t j = 0; j < n; j++) {
        const feed_item_t *item = &job->page.items[idx[j]];
        if (!seen[j] && poller_verdict_add(self, c, item) == 0)
            added++;
        if (!seen[j] || self->kind == FEED_KIND_LIST) /* a list item's score: when last listed */
            bus_commit_zadd(c, self->seen_key, now, item->key);
    }
    if (added)
        bus_commit_hincrby(c, self->hash_key, FEED_FIELD_VERDICTS, (int64_t)added);
    if (last)
        poller_add_final_writes(self, c);
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    int rc;
    if (st != BUS_OK)
        poller_unchoose(self, idx, n);
    if (st == BUS_OK) {
        self->page_new += added;
        self->pos = end;
        if (last && self->pending_cursor_ms)
            self->cursor_ms = self->pending_cursor_ms;
        if (last && self->kind == FEED_KIND_RETRO && self->page_new > 0)
            poller_announce(self, LOG_LEVEL_INFO, "URL verdict update received from retrospective service.");
        rc = last ? 0 : 1;
    } else if (st == BUS_FENCED) {
        poller_lose_lease(self, "lease lost before the hand-over");
        rc = -1;
    } else {
        if (st == BUS_FULL)
            log_debug("ECS: Feed '%s': the verdicts edge is full; waiting", self->cfg->name);
        else
            log_warning("ECS: Feed '%s': hand-over failed: %s", self->cfg->name, bus_errstr(bus));
        self->retry_commit_at = util_monotonic_ms() + POLLER_RETRY_COMMIT_MS;
        rc = -1;
    }
    free(idx);
    free(seen);
    return rc;
}

/* poller_hand_over - commit chunks of the page for at most a slice of time. */
static void poller_hand_over(poller_feed_t *self)
{
    int64_t start = util_monotonic_ms();
    if (start < self->retry_commit_at)
        return;
    while (self->phase == FEED_HANDING_OVER && self->job) {
        int rc = poller_hand_over_chunk(self);
        if (rc < 0)
            return;
        if (rc == 0) {
            poller_page_done(self);
            return;
        }
        if (util_monotonic_ms() - start > POLLER_SLICE_MS)
            return;
    }
}

/* poller_on_fetched - the worker finished a page. */
static int poller_on_fetched(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop, (void)sock;
    poller_feed_t *self = arg;
    fetch_job_t *job = fetch_finish(self->fetch);
    if (!job)
        return 0;
    poller_emit_lines(self, job);
    if (job->registered) {
        free(self->token);
        free(self->region_uri);
        self->token = util_xstrdup(job->new_token);
        self->region_uri = util_xstrdup(job->new_region_uri);
        redisReply *r = redis_conn_command(daemon_redis(self->daemon), "HSET %s %s %s %s %s", self->hash_key,
                                           FEED_FIELD_TOKEN, self->token, FEED_FIELD_REGION, self->region_uri);
        if (r && r->type != REDIS_REPLY_ERROR)
            log_debug("ECS: Successfully updated region uri and token in database");
        else
            log_warning("ECS: Feed '%s': cannot store the new token: %s", self->cfg->name,
                        r ? r->str : redis_conn_errstr(daemon_redis(self->daemon)));
        if (r)
            freeReplyObject(r);
    }
    if (!self->leased) {
        fetch_job_destroy(&job);
        self->phase = FEED_IDLE;
        return 0;
    }
    if (job->status < 0) {
        char error[600];
        snprintf(error, sizeof(error), "%s", job->error);
        int64_t retry_after = job->retry_after_s;
        fetch_job_destroy(&job);
        poller_fail(self, error, retry_after);
        return 0;
    }
    if (job->page.skipped)
        log_warning("ECS: Feed '%s': %zu malformed items skipped (first: %s)", self->cfg->name, job->page.skipped,
                    job->page.skip_reason);
    poller_drop_page(self);
    self->job = job;
    self->page_keys = zhashx_new();
    self->phase = FEED_HANDING_OVER;
    self->retry_commit_at = 0;
    poller_hand_over(self);
    return 0;
}

/* ------------------------------------------------------------------ public */

poller_feed_t *poller_feed_new(const config_feed_t *feed, daemon_t *daemon)
{
    poller_feed_t *self = util_xcalloc(1, sizeof(*self));
    self->cfg = feed;
    self->daemon = daemon;
    self->kind = strcmp(feed->type, "retro") == 0     ? FEED_KIND_RETRO
                 : strcmp(feed->type, "taxii21") == 0 ? FEED_KIND_TAXII21
                 : strcmp(feed->type, "misp") == 0    ? FEED_KIND_MISP
                                                      : FEED_KIND_LIST;
    feed_key(self->hash_key, sizeof(self->hash_key), feed->name, NULL);
    feed_key(self->lease_key, sizeof(self->lease_key), feed->name, "lease");
    feed_key(self->seen_key, sizeof(self->seen_key), feed->name, "seen");
    self->fetch = fetch_new(feed);
    if (!self->fetch || zloop_reader(daemon_loop(daemon), fetch_sock(self->fetch), poller_on_fetched, self) < 0) {
        fetch_destroy(&self->fetch);
        free(self);
        return NULL;
    }
    return self;
}

void poller_feed_destroy(poller_feed_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    poller_feed_t *self = *selfp;
    zloop_reader_end(daemon_loop(self->daemon), fetch_sock(self->fetch));
    fetch_destroy(&self->fetch);
    if (self->leased && poller_lease_call(self, &POLLER_RELEASE_SCRIPT) == 1)
        log_info("ECS: Feed '%s' released", self->cfg->name);
    poller_drop_page(self);
    free(self->token);
    free(self->region_uri);
    free(self->added_after);
    free(self);
    *selfp = NULL;
}

void poller_feed_tick(poller_feed_t *self)
{
    if (!self->cfg->enabled)
        return;
    if (!poller_keep_lease(self))
        return;
    switch (self->phase) {
    case FEED_IDLE:
        if (util_now_ms() >= self->next_poll_ms && !fetch_busy(self->fetch) &&
            bus_edge_has_room(daemon_bus(self->daemon), POLLER_VERDICT_EDGE))
            poller_start_poll(self);
        break;
    case FEED_FETCHING:
        break;
    case FEED_HANDING_OVER:
        poller_hand_over(self);
        break;
    }
}
