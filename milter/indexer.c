/*
 * indexer.c - drain the milter's spool into the index; see indexer.h.
 */
#include "indexer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest.h"
#include "log.h"
#include "mindex.h"
#include "program.h"
#include "strbuf.h"
#include "util.h"

#define INDEXER_BACKOFF_MIN_MS 100
#define INDEXER_BACKLOG_LOG_MS 60000 /* a backlog is logged at most this often */
#define INDEXER_RELIST_MS 60000      /* ready/ is listed again this often when idle (files put back) */

struct indexer {
    const config_t *cfg;
    spool_t *spool;
    redis_conn_t *redis;
    mindex_t *index;
    message_net_t trusted[MESSAGE_MAX_TRUSTED];
    size_t n_trusted;
    message_net_t internal[MESSAGE_MAX_TRUSTED];
    size_t n_internal;
    char instance[256];

    /* the ready/ names still to do: from the last listing, then as the milter commits them */
    char **names;
    size_t n_names, pos;
    int64_t listed_ms; /* monotonic time of the last listing of ready/; 0: never */
    bool check; /* the next round checks each message against the index first */
    bool redis_down;
    int64_t last_backlog_log_ms;

    _Atomic uint64_t indexed, duplicates, bad, failures;

    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool woken, stopping; /* under lock */
    char **pushed;        /* under lock: names committed since the indexer last took them */
    size_t n_pushed, cap_pushed;
};

/* indexer_connect - a fresh Redis connection and index (after start or a failure, so that no
 * half-sent pipeline survives). 0 or -1. */
static int indexer_connect(indexer_t *self, char *err, size_t errsize)
{
    mindex_destroy(&self->index);
    redis_conn_destroy(&self->redis);
    self->redis = program_redis(self->cfg, err, errsize);
    if (!self->redis)
        return -1;
    self->index = program_index(self->cfg, self->redis);
    return 0;
}

indexer_t *indexer_new(const config_t *cfg, spool_t *spool, char *err, size_t errsize)
{
    indexer_t *self = util_xcalloc(1, sizeof(*self));
    self->cfg = cfg;
    self->spool = spool;
    self->check = true; /* a previous run may have been killed between a flush and the removal */
    char why[256];
    if (message_nets_parse(cfg->index_trusted_relays, self->trusted, MESSAGE_MAX_TRUSTED, &self->n_trusted, why,
                           sizeof(why)) != 0) {
        snprintf(err, errsize, "[index] trusted_relays: %s", why);
        free(self);
        return NULL;
    }
    if (message_nets_parse(cfg->milter_internal_networks, self->internal, MESSAGE_MAX_TRUSTED, &self->n_internal,
                           why, sizeof(why)) != 0) {
        snprintf(err, errsize, "[milter] internal_networks: %s", why);
        free(self);
        return NULL;
    }
    if (cfg->milter_instance && *cfg->milter_instance)
        util_strlcpy(self->instance, cfg->milter_instance, sizeof(self->instance));
    else if (gethostname(self->instance, sizeof(self->instance) - 1) != 0)
        util_strlcpy(self->instance, "localhost", sizeof(self->instance));
    if (indexer_connect(self, err, errsize) != 0) {
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    util_cond_init_monotonic(&self->cond);
    return self;
}

/* names_clear - forget the cached listing. */
static void names_clear(indexer_t *self)
{
    for (size_t i = 0; i < self->n_names; i++)
        free(self->names[i]);
    free(self->names);
    self->names = NULL;
    self->n_names = self->pos = 0;
}

/* take_pushed - (locked) the names pushed since the last call, appended to names. */
static void take_pushed(indexer_t *self)
{
    if (self->n_pushed == 0)
        return;
    self->names = util_xrealloc(self->names, (self->n_names + self->n_pushed) * sizeof(*self->names));
    memcpy(self->names + self->n_names, self->pushed, self->n_pushed * sizeof(*self->pushed));
    self->n_names += self->n_pushed;
    self->n_pushed = 0;
}

/* next_names - the next names to do, when the current ones are done: what the milter pushed,
 * or, at the first round and every INDEXER_RELIST_MS when nothing was pushed, a listing of
 * ready/ (with the pushed ones merged in, each name once, in arrival order). Listing a
 * directory that grew during a backlog reads every block of it: never once per message. */
static int next_names(indexer_t *self)
{
    names_clear(self);
    int64_t now = util_monotonic_ms();
    bool relist = !self->listed_ms || now - self->listed_ms >= INDEXER_RELIST_MS;
    pthread_mutex_lock(&self->lock);
    relist = relist && (!self->listed_ms || self->n_pushed == 0);
    if (!relist) {
        take_pushed(self);
        pthread_mutex_unlock(&self->lock);
        return 0;
    }
    take_pushed(self); /* before listing: a name pushed later is in the next round only */
    pthread_mutex_unlock(&self->lock);
    char **listed = NULL;
    size_t n_listed = 0;
    if (spool_list(self->spool, 0, &listed, &n_listed) != 0)
        return -1;
    self->listed_ms = now;
    self->names = util_xrealloc(self->names, (self->n_names + n_listed + 1) * sizeof(*self->names));
    if (n_listed)
        memcpy(self->names + self->n_names, listed, n_listed * sizeof(*listed));
    self->n_names += n_listed;
    free(listed);
    qsort(self->names, self->n_names, sizeof(*self->names), util_cmp_strings);
    size_t kept = 0;
    for (size_t i = 0; i < self->n_names; i++) {
        if (kept && strcmp(self->names[kept - 1], self->names[i]) == 0)
            free(self->names[i]);
        else
            self->names[kept++] = self->names[i];
    }
    self->n_names = kept;
    return 0;
}

void indexer_destroy(indexer_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    indexer_t *self = *selfp;
    indexer_stop(self);
    names_clear(self);
    for (size_t i = 0; i < self->n_pushed; i++)
        free(self->pushed[i]);
    free(self->pushed);
    mindex_destroy(&self->index);
    redis_conn_destroy(&self->redis);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->cond);
    free(self);
    *selfp = NULL;
}

const char *indexer_direction(const indexer_t *self, const char *ip)
{
    return message_nets_contain(self->internal, self->n_internal, ip) ? "outgoing" : "incoming";
}

indexer_counts_t indexer_counts(indexer_t *self)
{
    indexer_counts_t c = {atomic_load(&self->indexed), atomic_load(&self->duplicates), atomic_load(&self->bad),
                          atomic_load(&self->failures)};
    return c;
}

/* set_aside - move a ready file to bad/ with a log line. */
static void set_aside(indexer_t *self, const char *name, const char *queue_id, const char *reason)
{
    if (spool_set_aside(self->spool, name, reason) != 0)
        log_critical("milter: cannot move %s/ready/%s to bad/: %s (reason: %s)", spool_dir(self->spool), name,
                     strerror(errno), reason);
    else
        log_warning("milter: message %s (queue id %s) set aside in %s/bad/: %s", name, queue_id ? queue_id : "-",
                    spool_dir(self->spool), reason);
    atomic_fetch_add(&self->bad, 1);
}

/* already_indexed - whether a message with msg's Message-ID and this queue id is in the
 * index: 1 yes, 0 no or cannot tell, -1 Redis failed. */
static int already_indexed(indexer_t *self, const message_t *msg, const char *queue_id)
{
    if (!msg->message_id || !queue_id || !*queue_id)
        return 0;
    int64_t *mids = NULL;
    mindex_record_t *recs = NULL;
    size_t n = 0;
    if (mindex_lookup_records(self->index, MINDEX_MESSAGE_ID, msg->message_id, 1000, &mids, &recs, &n) != 0)
        return -1;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].queue_id && strcmp(recs[i].queue_id, queue_id) == 0)
            found = 1;
        mindex_record_clear(&recs[i]);
    }
    free(recs);
    free(mids);
    return found;
}

/* redis_failed - a round failed on Redis: log (once per outage), reconnect afresh, check the
 * next round's messages against the index. Returns -1. */
static int redis_failed(indexer_t *self, const char *why)
{
    atomic_fetch_add(&self->failures, 1);
    if (!self->redis_down)
        log_warning("milter: cannot index: %s; the messages stay in %s/ready/ and are tried again", why,
                    spool_dir(self->spool));
    self->redis_down = true;
    self->check = true;
    char err[256];
    if (indexer_connect(self, err, sizeof(err)) != 0)
        log_critical("milter: %s", err);
    return -1;
}

int indexer_run_once(indexer_t *self, size_t *done)
{
    *done = 0;
    if (!self->index)
        return redis_failed(self, "no Redis connection");
    if (self->pos >= self->n_names) {
        if (next_names(self) != 0) {
            log_critical("milter: cannot list %s/ready: %s", spool_dir(self->spool), strerror(errno));
            return 0;
        }
    }
    size_t batch = (size_t)self->cfg->milter_batch;
    size_t end = self->pos + batch < self->n_names ? self->pos + batch : self->n_names;
    if (end == self->pos)
        return 0;
    /* the files of this round whose message is queued in the index, removed after the flush */
    const char **queued = util_xcalloc(end - self->pos, sizeof(*queued));
    size_t n_queued = 0;
    char err[512];
    for (size_t i = self->pos; i < end; i++) {
        const char *name = self->names[i];
        spool_entry_t e;
        int rc = spool_read(self->spool, name, &e, err, sizeof(err));
        if (rc == -1) {
            set_aside(self, name, NULL, err);
            continue;
        }
        if (rc == -2) {
            /* gone (an operator moved it) or unreadable: logged, left where it is */
            log_warning("milter: %s", err);
            continue;
        }
        const char *const *rcpts = (const char *const *)e.env.rcpts;
        message_context_t ctx = {.envelope_sender = e.env.sender,
                                 .envelope_rcpts = rcpts,
                                 .n_envelope_rcpts = e.env.n_rcpts,
                                 .client_ip = e.env.client_ip,
                                 .helo = e.env.helo,
                                 .trusted = self->trusted,
                                 .n_trusted = self->n_trusted};
        message_t msg;
        if (ingest_parse(e.data, e.len, &ctx, &msg, err, sizeof(err)) != INGEST_OK) {
            set_aside(self, name, e.env.queue_id, err);
            spool_entry_clear(&e);
            continue;
        }
        if (self->check) {
            int dup = already_indexed(self, &msg, e.env.queue_id);
            if (dup < 0) {
                message_clear(&msg);
                spool_entry_clear(&e);
                free(queued);
                return redis_failed(self, mindex_errstr(self->index));
            }
            if (dup) {
                log_info("milter: message %s (queue id %s, Message-ID <%s>) is already in the index", name,
                         e.env.queue_id, msg.message_id);
                spool_remove(self->spool, name);
                atomic_fetch_add(&self->duplicates, 1);
                message_clear(&msg);
                spool_entry_clear(&e);
                continue;
            }
        }
        mindex_delivery_t d = {.rcpts = rcpts,
                               .n_rcpts = e.env.n_rcpts,
                               .time_ms = e.env.time_ms,
                               .direction = indexer_direction(self, e.env.client_ip),
                               .queue_id = e.env.queue_id};
        int64_t mid = 0;
        ingest_status_t st = ingest_add(self->index, &msg, &d, &mid, err, sizeof(err));
        if (st == INGEST_OK) {
            queued[n_queued++] = name;
            log_debug("milter: message %s queue_id=%s mid=%lld direction=%s rcpts=%zu urls=%zu%s", name,
                      e.env.queue_id ? e.env.queue_id : "-", (long long)mid, d.direction, e.env.n_rcpts, msg.urls.n,
                      e.env.truncated ? " truncated" : "");
        }
        message_clear(&msg);
        if (st == INGEST_SKIPPED)
            set_aside(self, name, e.env.queue_id, err);
        spool_entry_clear(&e);
        if (st == INGEST_FAILED) {
            free(queued);
            return redis_failed(self, err);
        }
    }
    if (mindex_flush(self->index) != 0) {
        free(queued);
        return redis_failed(self, mindex_errstr(self->index));
    }
    for (size_t i = 0; i < n_queued; i++)
        if (spool_remove(self->spool, queued[i]) != 0)
            log_critical("milter: cannot remove the indexed %s/ready/%s: %s", spool_dir(self->spool), queued[i],
                         strerror(errno));
    atomic_fetch_add(&self->indexed, n_queued);
    free(queued);
    if (self->redis_down)
        log_info("milter: indexing again (Redis %s is back)", redis_conn_describe(self->redis));
    self->redis_down = false;
    self->check = false;
    *done = end - self->pos;
    self->pos = end;
    return 0;
}

void indexer_publish_status(indexer_t *self)
{
    size_t depth = 0;
    int64_t age = 0;
    if (spool_backlog(self->spool, &depth, &age) != 0) {
        log_critical("milter: cannot read %s/ready: %s", spool_dir(self->spool), strerror(errno));
        return;
    }
    indexer_counts_t c = indexer_counts(self);
    int64_t now = util_now_ms();
    strbuf_t text;
    strbuf_init(&text, 0);
    strbuf_appendf(&text,
                   "instance=%s depth=%zu oldest_age_ms=%lld indexed=%llu duplicates=%llu bad=%llu "
                   "redis_failures=%llu redis=%s updated_ms=%lld spool=%s",
                   self->instance, depth, (long long)age, (unsigned long long)c.indexed,
                   (unsigned long long)c.duplicates, (unsigned long long)c.bad, (unsigned long long)c.failures,
                   self->redis_down ? "down" : "up", (long long)now, spool_dir(self->spool));
    if (spool_status_write(self->spool, text.data) != 0)
        log_warning("milter: cannot write %s/status: %s", spool_dir(self->spool), strerror(errno));
    if (depth && now - self->last_backlog_log_ms >= INDEXER_BACKLOG_LOG_MS) {
        log_info("milter: backlog %zu messages, oldest %.1f s (Redis %s)", depth, (double)age / 1000.0,
                 self->redis_down ? "down" : "up");
        self->last_backlog_log_ms = now;
    }
    if (!self->redis_down && self->redis) {
        redisReply *r = redis_conn_command(self->redis, "HSET %s %s %s", MILTER_STATUS_KEY, self->instance, text.data);
        if (r)
            freeReplyObject(r);
    }
    strbuf_release(&text);
}

/* wait_ms - sleep up to ms on the condition (woken by a new message or stop); true when
 * stopping. */
static bool wait_ms(indexer_t *self, int64_t ms)
{
    struct timespec until = util_deadline_ts(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&self->lock);
    while (!self->woken && !self->stopping)
        if (pthread_cond_timedwait(&self->cond, &self->lock, &until) == ETIMEDOUT)
            break;
    self->woken = false;
    bool stopping = self->stopping;
    pthread_mutex_unlock(&self->lock);
    return stopping;
}

static bool stopping(indexer_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool s = self->stopping;
    pthread_mutex_unlock(&self->lock);
    return s;
}

/* indexer_main - the thread: rounds until stopped, backoff on Redis failures, status. */
static void *indexer_main(void *arg)
{
    indexer_t *self = arg;
    pthread_setname_np(pthread_self(), "cb-indexer");
    int64_t backoff = 0, next_status = 0;
    while (!stopping(self)) {
        int64_t now = util_monotonic_ms();
        if (now >= next_status) {
            indexer_publish_status(self);
            next_status = now + self->cfg->milter_status_interval_ms;
        }
        size_t done = 0;
        if (indexer_run_once(self, &done) != 0) {
            backoff = backoff ? backoff * 2 : INDEXER_BACKOFF_MIN_MS;
            if (backoff > self->cfg->milter_backoff_max_ms)
                backoff = self->cfg->milter_backoff_max_ms;
            /* a new message does not end a backoff: only the time or a stop */
            int64_t until = util_monotonic_ms() + backoff;
            for (int64_t left = backoff; left > 0 && !wait_ms(self, left); left = until - util_monotonic_ms())
                ;
            continue;
        }
        backoff = 0;
        if (done == 0) {
            int64_t left = next_status - util_monotonic_ms();
            wait_ms(self, left > 0 ? left : 1);
        }
    }
    /* rewrite this writer's record buckets at their size; nothing is lost if Redis is down */
    if (!self->redis_down && self->index && mindex_finish(self->index) != 0)
        log_warning("milter: %s", mindex_errstr(self->index));
    indexer_publish_status(self);
    message_thread_release();
    return NULL;
}

int indexer_start(indexer_t *self)
{
    if (self->running)
        return 0;
    self->stopping = false;
    if (pthread_create(&self->thread, NULL, indexer_main, self) != 0)
        return -1;
    self->running = true;
    return 0;
}

void indexer_push(indexer_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    if (self->n_pushed == self->cap_pushed) {
        self->cap_pushed = self->cap_pushed ? self->cap_pushed * 2 : 64;
        self->pushed = util_xrealloc(self->pushed, self->cap_pushed * sizeof(*self->pushed));
    }
    self->pushed[self->n_pushed++] = util_xstrdup(name);
    self->woken = true;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

void indexer_stop(indexer_t *self)
{
    if (!self->running)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    self->running = false;
}
