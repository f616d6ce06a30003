/*
 * remediate.c - the remediator's core (remediate.h): tasks, workers, profile chains, results.
 *
 * Locking: one mutex guards the task lists, the per-mailbox counts and the figures; workers
 * wait on one condition variable. A worker holds no lock while it talks to a server. The main
 * thread alone touches the bus and the kept deliveries.
 */
#include "remediate.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "batch.h"
#include "daemon.h"
#include "log.h"
#include "program.h"
#include "record.h"
#include "redis_conn.h"
#include "util.h"

#define REMEDIATE_MAX_CHAIN 8          /* profiles in one chain */
#define REMEDIATE_COMMIT_RETRY_MS 1000 /* a result Redis refused is committed again this often */
#define REMEDIATE_COMMIT_PIPELINE 64   /* result commits sent before the first outcome is read */

const backend_ops_t *backend_ops_for(const char *type)
{
    static const backend_ops_t *const all[] = {&BACKEND_IMAP, &BACKEND_GRAPH};
    for (size_t i = 0; type && i < UTIL_ARRAY_LEN(all); i++)
        if (!strcmp(all[i]->type, type))
            return all[i];
    return NULL;
}

/* One [profile]: its settings (borrowed from the configuration) and its open back-end. */
typedef struct {
    const config_profile_t *cfg;
    const backend_ops_t *ops;
    backend_t *backend;
} profile_t;

/* One job on its way: queued, in a worker, waiting for its retry time, or finished. */
typedef struct task {
    struct task *next;
    record_job_t job;          /* decoded, owned */
    char *message_id;          /* job.message_id as mailboxes hold it (in <>), owned */
    bool groupable;            /* a Delete whose every profile's back-end takes jobs together */
    bus_delivery_t *delivery;  /* kept until the result is committed (or handed back) */
    char mailbox[321];         /* the recipient, lowercase: the key of the concurrency limit */
    int limit;                 /* jobs at once in this mailbox */
    int64_t first_ms;          /* the first attempt's start */
    int64_t not_before_ms;     /* 0, or when a retry may start */
    int attempts;
    /* the last attempt's outcome, written by the worker */
    backend_status_t status;
    int64_t retry_after_ms;
    char detail[768];
    char profile[CONFIG_PROFILE_MAX + 1]; /* the profile that acted, or the chain */
    char forward_to[321];                 /* where it was forwarded, when it was */
} task_t;

typedef struct worker {
    remediate_t *self;
    pthread_t thread;
    redis_conn_t *redis; /* this worker's own: the record of forwards */
    bool started;
} worker_t;

struct remediate {
    const config_t *cfg;
    bus_t *bus;
    zloop_t *loop;
    profile_t *profiles;
    size_t nprofiles;
    worker_t *workers;
    size_t nworkers;
    int wake_fd;     /* eventfd: workers tell the main thread a task finished */
    int commit_timer; /* -1 when none */
    bool stopped;

    pthread_mutex_t lock;
    pthread_cond_t work; /* a task was queued, a mailbox freed, or stopping */
    bool stopping;
    task_t *ready, *ready_tail; /* queued, in arrival order (retries keep their turn by time) */
    task_t *done;               /* finished by a worker, for the main thread */
    task_t *uncommitted;        /* finished, result not yet committed (Redis refused it) */
    zhashx_t *busy;             /* mailbox -> jobs of it in workers (intptr_t) */
    remediate_stats_t stats;
};

/* ---------------------------------------------------------------- tasks */

static void task_free(task_t *t)
{
    free(t->message_id);
    record_clear(&RECORD_DESC_job, &t->job);
    free(t);
}

/* task_set - record an outcome in t (detail printf-style). */
static void task_set(task_t *t, backend_status_t status, int64_t retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void task_set(task_t *t, backend_status_t status, int64_t retry_after_ms, const char *fmt, ...)
{
    t->status = status;
    t->retry_after_ms = retry_after_ms;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->detail, sizeof(t->detail), fmt, ap);
    va_end(ap);
}

static profile_t *remediate_profile(remediate_t *self, const char *name, size_t len)
{
    for (size_t i = 0; i < self->nprofiles; i++)
        if (strlen(self->profiles[i].cfg->name) == len && !memcmp(self->profiles[i].cfg->name, name, len))
            return &self->profiles[i];
    return NULL;
}

/* remediate_chain - the profiles a job names (space-separated), at most REMEDIATE_MAX_CHAIN;
 * an unknown name is left NULL (the worker reports it). */
static size_t remediate_chain(remediate_t *self, const char *names, profile_t **chain, const char **unknown,
                              size_t *unknown_len)
{
    size_t n = 0;
    *unknown = NULL;
    for (const char *p = names ? names : ""; *p && n < REMEDIATE_MAX_CHAIN;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (!len)
            break;
        chain[n] = remediate_profile(self, p, len);
        if (!chain[n] && !*unknown) {
            *unknown = p;
            *unknown_len = len;
        }
        n++;
        p += len;
    }
    return n;
}

/* ---------------------------------------------------------------- workers */

/* remediate_forward_record - the job that already forwarded this copy, into out ("" when
 * none); -1 when Redis cannot say. */
static int remediate_forward_record(worker_t *w, const task_t *t, char *out, size_t size)
{
    char key[64], field[400];
    batch_copies_key(key, sizeof(key), t->job.mid);
    snprintf(field, sizeof(field), "%" PRId64 " forwarded:%s", t->job.mid, t->job.recipient);
    redisReply *r = redis_conn_command(w->redis, "HGET %s %s", key, field);
    if (!r)
        return -1;
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return 0;
}

/* remediate_note_forward - record that this job forwarded the copy (before its result is
 * committed: a redelivered job then skips the forward). -1 when Redis refused. */
static int remediate_note_forward(worker_t *w, const task_t *t)
{
    char key[64], field[400];
    batch_copies_key(key, sizeof(key), t->job.mid);
    snprintf(field, sizeof(field), "%" PRId64 " forwarded:%s", t->job.mid, t->job.recipient);
    redisReply *r = redis_conn_command(w->redis, "HSET %s %s %s", key, field, t->job.id);
    if (!r)
        return -1;
    freeReplyObject(r);
    /* the copies key lives as long as the index; when this created it, give it that life */
    r = redis_conn_command(w->redis, "PEXPIRE %s %lld NX", key, (long long)w->self->cfg->index_retention_ms);
    if (r)
        freeReplyObject(r);
    return 0;
}

/* remediate_removed - t's outcome from its remove's (after the forward that done_detail
 * describes, "" when the job did not forward). */
static void remediate_removed(task_t *t, const backend_outcome_t *out, const char *done_detail)
{
    if (out->status == BACKEND_NOT_FOUND && *done_detail)
        task_set(t, BACKEND_OK, -1, "%s; gone from the mailbox before it was deleted", done_detail);
    else if (out->status != BACKEND_OK)
        task_set(t, out->status, out->retry_after_ms, "%s%sdelete: %s", done_detail, *done_detail ? "; " : "",
                 out->detail);
    else
        task_set(t, BACKEND_OK, -1, "%s%s%s", done_detail, *done_detail ? "; " : "", out->detail);
}

/* remediate_act - the job's action on the copies the profile's session found. */
static void remediate_act(worker_t *w, task_t *t, profile_t *p, backend_session_t *s, const backend_job_t *bj)
{
    const char *action = t->job.action;
    bool forward = !strcmp(action, "forward") || !strcmp(action, "forward_delete");
    bool remove = !strcmp(action, "delete") || !strcmp(action, "forward_delete");
    backend_outcome_t out = {0};
    char done_detail[300] = "";
    if (forward) {
        if (!*p->cfg->forward_to) {
            task_set(t, BACKEND_FAILED, -1, "profile '%s' has no forward_to", p->cfg->name);
            return;
        }
        char before[RECORD_MAX_ID + 1];
        if (remediate_forward_record(w, t, before, sizeof(before)) < 0) {
            task_set(t, BACKEND_RETRY, -1, "Redis: cannot read the record of forwards: %s",
                     redis_conn_errstr(w->redis));
            return;
        }
        if (*before) {
            snprintf(done_detail, sizeof(done_detail), "already forwarded to %s by job %s", p->cfg->forward_to,
                     before);
        } else {
            p->ops->forward(s, bj, p->cfg->forward_to, &out);
            if (out.status != BACKEND_OK) {
                task_set(t, out.status, out.retry_after_ms, "forward to %s: %s", p->cfg->forward_to, out.detail);
                return;
            }
            if (remediate_note_forward(w, t) < 0)
                log_warning("remediator: job %s: forwarded, but Redis did not record it (%s); its result records it",
                            t->job.id, redis_conn_errstr(w->redis));
            snprintf(done_detail, sizeof(done_detail), "forwarded to %s", p->cfg->forward_to);
        }
        snprintf(t->forward_to, sizeof(t->forward_to), "%s", p->cfg->forward_to);
    }
    if (remove) {
        p->ops->remove(s, bj, &out);
        remediate_removed(t, &out, done_detail);
        return;
    }
    task_set(t, BACKEND_OK, -1, "%s", done_detail);
}

/* What the profiles of a chain said of one job that none of them acted on yet. */
typedef struct {
    bool any_retry, any_not_found;
    int64_t retry_after;
    char why[sizeof(((task_t *)0)->detail)];
    size_t why_len;
} remediate_tried_t;

/* remediate_tried - note one profile's outcome (name: name_len bytes) in tried. */
static void remediate_tried(remediate_tried_t *tried, const char *name, size_t name_len, const backend_outcome_t *out)
{
    tried->any_retry |= out->status == BACKEND_RETRY;
    tried->any_not_found |= out->status == BACKEND_NOT_FOUND;
    if (out->status == BACKEND_RETRY && out->retry_after_ms > tried->retry_after)
        tried->retry_after = out->retry_after_ms;
    size_t room = sizeof(tried->why) - tried->why_len;
    int k = snprintf(tried->why + tried->why_len, room, "%s%.*s: %s", tried->why_len ? "; " : "", (int)name_len, name,
                     out->detail);
    tried->why_len += k < 0 ? 0 : (size_t)k >= room ? room - 1 : (size_t)k;
}

/* remediate_untouched - t's outcome when no profile of its chain (n of them) acted: retried
 * when one could not tell (RETRY), not found when one looked and found nothing, else failed
 * with every profile's reason. */
static void remediate_untouched(task_t *t, size_t n, const remediate_tried_t *tried)
{
    snprintf(t->profile, sizeof(t->profile), "%s", t->job.profile ? t->job.profile : "");
    if (!n)
        task_set(t, BACKEND_FAILED, -1, "the job names no profile");
    else if (tried->any_retry)
        task_set(t, BACKEND_RETRY, tried->retry_after, "%s", tried->why);
    else if (tried->any_not_found)
        task_set(t, BACKEND_NOT_FOUND, -1, "%s", tried->why);
    else
        task_set(t, BACKEND_FAILED, -1, "%s", tried->why);
}

/* remediate_backend_job - what the back-end needs of t. */
static backend_job_t remediate_backend_job(const task_t *t)
{
    return (backend_job_t){
        .id = t->job.id,
        .batch = t->job.batch,
        .mid = t->job.mid,
        .mailbox = t->job.recipient,
        .message_id = t->message_id,
        .subject = t->job.subject,
    };
}

/* remediate_run - one attempt of a task: through its profile chain, the first profile that
 * finds the message acts (remediate_untouched when none does). */
static void remediate_run(worker_t *w, task_t *t)
{
    remediate_t *self = w->self;
    profile_t *chain[REMEDIATE_MAX_CHAIN];
    const char *unknown;
    size_t unknown_len = 0;
    size_t n = remediate_chain(self, t->job.profile, chain, &unknown, &unknown_len);
    backend_job_t bj = remediate_backend_job(t);
    remediate_tried_t tried = {.retry_after = -1};
    for (size_t i = 0; i < n; i++) {
        profile_t *p = chain[i];
        backend_outcome_t out = {0};
        if (!p) {
            backend_outcome_set(&out, BACKEND_FAILED, -1, "no [profile] of that name");
        } else {
            backend_session_t *s = p->ops->session(p->backend, t->job.recipient, &out);
            if (s) {
                p->ops->find(s, &bj, &out);
                if (out.status == BACKEND_OK) {
                    snprintf(t->profile, sizeof(t->profile), "%s", p->cfg->name);
                    remediate_act(w, t, p, s, &bj);
                    p->ops->release(p->backend, s, t->status != BACKEND_RETRY);
                    return;
                }
                p->ops->release(p->backend, s, out.status != BACKEND_RETRY);
            }
        }
        remediate_tried(&tried, p ? p->cfg->name : unknown, p ? strlen(p->cfg->name) : unknown_len, &out);
    }
    remediate_untouched(t, n, &tried);
}

static size_t remediate_take_more(remediate_t *self, task_t **group, size_t n);

/* remediate_run_group - one attempt of n groupable tasks of one mailbox and one profile chain
 * (remediate_take; group has room for BACKEND_MAX_MANY): each profile finds all of them in one
 * find_many and deletes those it found in one remove_many; the ones it did not find go on to
 * the next profile. Once the first profile's session is open, or refused (a login can take a
 * while: jobs of a verdict arrive one by one meanwhile), the mailbox's tasks queued since join
 * in. How many tasks it ran in all. */
static size_t remediate_run_group(worker_t *w, task_t **group, size_t n)
{
    remediate_t *self = w->self;
    profile_t *chain[REMEDIATE_MAX_CHAIN];
    const char *unknown;
    size_t unknown_len = 0;
    size_t nchain = remediate_chain(self, group[0]->job.profile, chain, &unknown, &unknown_len);
    remediate_tried_t *tried = util_xcalloc(BACKEND_MAX_MANY, sizeof(*tried));
    backend_job_t *bjs = util_xcalloc(BACKEND_MAX_MANY, sizeof(*bjs));
    backend_outcome_t *outs = util_xcalloc(BACKEND_MAX_MANY, sizeof(*outs));
    size_t *left = util_xcalloc(BACKEND_MAX_MANY, sizeof(*left)); /* indices in group of the tasks not acted on */
    bool *found = util_xcalloc(BACKEND_MAX_MANY, sizeof(*found));
    size_t nleft = n;
    for (size_t i = 0; i < n; i++) {
        left[i] = i;
        tried[i].retry_after = -1;
    }
    for (size_t c = 0; c < nchain && nleft > 0; c++) {
        profile_t *p = chain[c]; /* groupable: every profile exists and has find_many */
        backend_outcome_t out = {0};
        backend_session_t *s = p->ops->session(p->backend, group[0]->job.recipient, &out);
        if (c == 0) { /* the session's answer (open or refused) holds for them too */
            size_t more = remediate_take_more(self, group, n);
            for (size_t i = n; i < n + more; i++) {
                left[nleft++] = i;
                tried[i].retry_after = -1;
            }
            n += more;
            if (n > 1)
                log_info("remediator: %zu Delete jobs of %s together", n, group[0]->mailbox);
        }
        if (!s) {
            for (size_t i = 0; i < nleft; i++)
                remediate_tried(&tried[left[i]], p->cfg->name, strlen(p->cfg->name), &out);
            continue;
        }
        for (size_t i = 0; i < nleft; i++) {
            bjs[i] = remediate_backend_job(group[left[i]]);
            memset(&outs[i], 0, sizeof(outs[i]));
        }
        p->ops->find_many(s, bjs, nleft, outs);
        for (size_t i = 0; i < nleft; i++)
            found[i] = outs[i].status == BACKEND_OK;
        p->ops->remove_many(s, bjs, nleft, outs);
        bool reusable = true;
        size_t kept = 0;
        for (size_t i = 0; i < nleft; i++) {
            task_t *t = group[left[i]];
            reusable = reusable && outs[i].status != BACKEND_RETRY;
            if (found[i]) {
                snprintf(t->profile, sizeof(t->profile), "%s", p->cfg->name);
                remediate_removed(t, &outs[i], "");
            } else {
                remediate_tried(&tried[left[i]], p->cfg->name, strlen(p->cfg->name), &outs[i]);
                left[kept++] = left[i];
            }
        }
        p->ops->release(p->backend, s, reusable);
        nleft = kept;
    }
    for (size_t i = 0; i < nleft; i++)
        remediate_untouched(group[left[i]], nchain, &tried[left[i]]);
    free(tried);
    free(bjs);
    free(outs);
    free(left);
    free(found);
    return n;
}

static intptr_t remediate_busy(remediate_t *self, const char *mailbox)
{
    return (intptr_t)zhashx_lookup(self->busy, mailbox);
}

static void remediate_busy_add(remediate_t *self, const char *mailbox, intptr_t delta)
{
    intptr_t n = remediate_busy(self, mailbox) + delta;
    if (n > 0)
        zhashx_update(self->busy, mailbox, (void *)n);
    else
        zhashx_delete(self->busy, mailbox);
}

/* remediate_unlink - (locked) take t, which follows prev (NULL: the first), off the queue. */
static void remediate_unlink(remediate_t *self, task_t *prev, task_t *t)
{
    if (prev)
        prev->next = t->next;
    else
        self->ready = t->next;
    if (self->ready_tail == t)
        self->ready_tail = prev;
    t->next = NULL;
}

/* remediate_gather - (locked) the queued tasks after prev (NULL: from the first) that are due
 * at now, groupable and of group[0]'s mailbox and profile chain, unlinked into group[n...] up
 * to BACKEND_MAX_MANY in all. How many were added. */
static size_t remediate_gather(remediate_t *self, task_t *prev, task_t **group, size_t n, int64_t now)
{
    const task_t *t = group[0];
    size_t added = 0;
    task_t *before = prev, *next;
    for (task_t *u = before ? before->next : self->ready; u && n + added < BACKEND_MAX_MANY; u = next) {
        next = u->next;
        if (u->groupable && u->not_before_ms <= now && !strcmp(u->mailbox, t->mailbox) &&
            !strcmp(u->job.profile, t->job.profile)) {
            remediate_unlink(self, before, u);
            group[n + added++] = u;
        } else {
            before = u;
        }
    }
    return added;
}

/* remediate_take - (locked) the first queued task whose time has come and whose mailbox has
 * room, unlinked, into group[0]; when it is groupable, also the next ones (up to
 * BACKEND_MAX_MANY in all) of the same mailbox and profile chain that are groupable and due.
 * The number taken; 0 with *wait_ms until the earliest retry time (or -1: none). */
static size_t remediate_take(remediate_t *self, task_t **group, int64_t *wait_ms)
{
    int64_t now = util_monotonic_ms(), earliest = -1;
    task_t *prev = NULL;
    for (task_t *t = self->ready; t; prev = t, t = t->next) {
        if (t->not_before_ms > now) {
            if (earliest < 0 || t->not_before_ms < earliest)
                earliest = t->not_before_ms;
            continue;
        }
        if (remediate_busy(self, t->mailbox) >= t->limit)
            continue;
        remediate_unlink(self, prev, t);
        group[0] = t;
        return t->groupable ? 1 + remediate_gather(self, prev, group, 1, now) : 1;
    }
    *wait_ms = earliest < 0 ? -1 : earliest - now;
    return 0;
}

/* remediate_begin - (locked) group[from..to), taken off the queue by a worker: counted as
 * running, one attempt more each, the time of a task's first attempt kept. */
static void remediate_begin(remediate_t *self, task_t **group, size_t from, size_t to)
{
    self->stats.queued -= (int64_t)(to - from);
    self->stats.running += (int64_t)(to - from);
    int64_t now = util_now_ms();
    for (size_t i = from; i < to; i++) {
        group[i]->attempts++;
        if (!group[i]->first_ms)
            group[i]->first_ms = now;
    }
}

/* remediate_take_more - what remediate_take would add to a group of n now: the tasks queued
 * since that are due, groupable and of the group's mailbox and profile chain, unlinked into
 * group[n...] and counted as running. How many. */
static size_t remediate_take_more(remediate_t *self, task_t **group, size_t n)
{
    pthread_mutex_lock(&self->lock);
    size_t more = remediate_gather(self, NULL, group, n, util_monotonic_ms());
    remediate_begin(self, group, n, n + more);
    pthread_mutex_unlock(&self->lock);
    return more;
}

static void remediate_wait(remediate_t *self, int64_t wait_ms)
{
    if (wait_ms < 0) {
        pthread_cond_wait(&self->work, &self->lock);
        return;
    }
    struct timespec ts = util_deadline_ts(CLOCK_MONOTONIC, wait_ms);
    pthread_cond_timedwait(&self->work, &self->lock, &ts);
}

static void *remediate_worker(void *arg)
{
    worker_t *w = arg;
    remediate_t *self = w->self;
    pthread_mutex_lock(&self->lock);
    task_t *group[BACKEND_MAX_MANY];
    while (!self->stopping) {
        int64_t wait_ms = -1;
        size_t n = remediate_take(self, group, &wait_ms);
        if (!n) {
            remediate_wait(self, wait_ms);
            continue;
        }
        /* a group shares one session: one of the mailbox's places */
        remediate_busy_add(self, group[0]->mailbox, 1);
        remediate_begin(self, group, 0, n);
        pthread_mutex_unlock(&self->lock);

        if (group[0]->groupable)
            n = remediate_run_group(w, group, n);
        else
            remediate_run(w, group[0]);

        pthread_mutex_lock(&self->lock);
        remediate_busy_add(self, group[0]->mailbox, -1);
        self->stats.running -= (int64_t)n;
        for (size_t i = 0; i < n; i++) {
            group[i]->next = self->done;
            self->done = group[i];
        }
        uint64_t one = 1;
        if (write(self->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warning("remediator: cannot wake the main thread: %s", strerror(errno));
        pthread_cond_broadcast(&self->work); /* the mailbox has room again */
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

/* ---------------------------------------------------------------- main thread */

static const char *remediate_status_name(backend_status_t st)
{
    return st == BACKEND_OK ? "remediated" : st == BACKEND_NOT_FOUND ? "not_found" : "failed";
}

/* remediate_commit_prepare - the commit of t's result, consuming its job; NULL when the result
 * does not encode (cannot happen with fields from a decoded job): t was then set aside and
 * freed. */
static bus_commit_t *remediate_commit_prepare(remediate_t *self, task_t *t)
{
    record_result_t r = {0};
    char id[RECORD_MAX_ID + 1], err[256];
    snprintf(id, sizeof(id), "r:%.*s", RECORD_MAX_ID - 2, t->job.id);
    r.id = id;
    r.time_ms = util_now_ms();
    r.job_id = t->job.id;
    r.batch = t->job.batch;
    r.mid = t->job.mid;
    r.recipient = t->job.recipient;
    r.action = t->job.action;
    r.profile = *t->profile ? t->profile : NULL;
    r.status = (char *)remediate_status_name(t->status);
    r.detail = *t->detail ? t->detail : NULL;
    r.attempts = t->attempts;
    r.reason = t->job.reason;
    r.forward_to = *t->forward_to ? t->forward_to : NULL;
    bus_commit_t *c = bus_commit_new(self->bus, t->delivery);
    if (bus_commit_add_record(c, "results", &RECORD_DESC_result, &r, err, sizeof(err)) < 0) {
        log_warning("remediator: job %s: its result does not encode: %s", t->job.id, err);
        bus_commit_destroy(&c);
        bus_set_aside(self->bus, t->delivery, err);
        bus_delivery_release(self->bus, &t->delivery, false);
        task_free(t);
        return NULL;
    }
    return c;
}

/* remediate_committed - after t's result commit ran with status st: logged, counted, its job
 * released and t freed (0); -1 when Redis did not take it (t is kept for another try). */
static int remediate_committed(remediate_t *self, task_t *t, bus_status_t st)
{
    if (st != BUS_OK && st != BUS_DUPLICATE) {
        log_warning("remediator: job %s: result not committed (%s); trying again", t->job.id,
                    bus_errstr(self->bus));
        return -1;
    }
    log_info("remediator: job %s (MID %" PRId64 ", %s for %s): %s%s%s%s after %d attempt%s: %s", t->job.id,
             t->job.mid, t->job.action, t->job.recipient, remediate_status_name(t->status),
             *t->profile ? " with profile '" : "", t->profile, *t->profile ? "'" : "", t->attempts,
             t->attempts == 1 ? "" : "s", t->detail);
    pthread_mutex_lock(&self->lock);
    if (t->status == BACKEND_OK)
        self->stats.remediated++;
    else if (t->status == BACKEND_NOT_FOUND)
        self->stats.not_found++;
    else
        self->stats.failed++;
    pthread_mutex_unlock(&self->lock);
    bus_delivery_release(self->bus, &t->delivery, false);
    task_free(t);
    return 0;
}

/* remediate_commit - commit t's result, consuming its job. 0 when done with t (freed). */
static int remediate_commit(remediate_t *self, task_t *t)
{
    bus_commit_t *c = remediate_commit_prepare(self, t);
    if (!c)
        return 0;
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    return remediate_committed(self, t, st);
}

/* remediate_commit_many - commit the results of n tasks, REMEDIATE_COMMIT_PIPELINE at a time
 * sent before the first outcome is read (each commit still atomic on its own); the ones Redis
 * did not take go to the uncommitted list, retried by the commit timer. */
static void remediate_commit_many(remediate_t *self, task_t **tasks, size_t n)
{
    bus_commit_t *sent[REMEDIATE_COMMIT_PIPELINE];
    task_t *owner[REMEDIATE_COMMIT_PIPELINE];
    for (size_t i = 0; i < n;) {
        size_t m = 0;
        for (; i < n && m < REMEDIATE_COMMIT_PIPELINE; i++) {
            bus_commit_t *c = remediate_commit_prepare(self, tasks[i]); /* may use Redis: before sends */
            if (!c)
                continue;
            sent[m] = c;
            owner[m++] = tasks[i];
        }
        for (size_t k = 0; k < m; k++)
            bus_commit_send(sent[k]); /* a failed send makes finish say BUS_ERROR */
        for (size_t k = 0; k < m; k++) {
            bus_status_t st = bus_commit_finish(sent[k]);
            bus_commit_destroy(&sent[k]);
            if (remediate_committed(self, owner[k], st) < 0) {
                owner[k]->next = self->uncommitted;
                self->uncommitted = owner[k];
            }
        }
    }
}

/* remediate_backoff_ms - the delay before attempt n + 1: backoff_min doubled per attempt,
 * capped at backoff_max, with up to a quarter of jitter; the server's Retry-After when larger. */
static int64_t remediate_backoff_ms(const config_t *cfg, int attempts, int64_t retry_after_ms)
{
    int64_t d = cfg->remediator_backoff_min_ms;
    for (int i = 1; i < attempts && d < cfg->remediator_backoff_max_ms; i++)
        d *= 2;
    if (d > cfg->remediator_backoff_max_ms)
        d = cfg->remediator_backoff_max_ms;
    d -= (int64_t)((uint64_t)random() % (uint64_t)(d / 4 + 1)); /* jitter */
    return retry_after_ms > d ? retry_after_ms : d;
}

/* remediate_queue - (locked) append t to the queue. */
static void remediate_queue(remediate_t *self, task_t *t)
{
    t->next = NULL;
    if (self->ready_tail)
        self->ready_tail->next = t;
    else
        self->ready = t;
    self->ready_tail = t;
    self->stats.queued++;
    pthread_cond_signal(&self->work);
}

/* remediate_finished - a task back from a worker: retried later (false), or its result is to
 * be committed (true). */
static bool remediate_finished(remediate_t *self, task_t *t)
{
    if (t->status == BACKEND_RETRY) {
        int64_t spent = util_now_ms() - t->first_ms;
        int64_t delay = remediate_backoff_ms(self->cfg, t->attempts, t->retry_after_ms);
        /* a next try past give_up_after (a server's Retry-After, mailbox_rate's window) is not
         * waited for: the job fails now, as it would then */
        bool in_time = spent + delay <= self->cfg->remediator_give_up_ms;
        if (in_time && !self->stopping) {
            log_info("remediator: job %s (MID %" PRId64 ", %s): attempt %d failed for now, again in %lld ms: %s",
                     t->job.id, t->job.mid, t->job.recipient, t->attempts, (long long)delay, t->detail);
            pthread_mutex_lock(&self->lock);
            self->stats.retries++;
            t->not_before_ms = util_monotonic_ms() + delay;
            remediate_queue(self, t);
            pthread_mutex_unlock(&self->lock);
            return false;
        }
        if (self->stopping) { /* stopping: another instance takes it from the start */
            bus_delivery_release(self->bus, &t->delivery, true);
            task_free(t);
            return false;
        }
        char last[sizeof(t->detail)];
        snprintf(last, sizeof(last), "%s", t->detail);
        task_set(t, BACKEND_FAILED, -1,
                 "gave up after %d attempts in %llds (the next, in %llds, would be past [remediator] "
                 "give_up_after): %s",
                 t->attempts, (long long)(spent / 1000), (long long)((delay + 999) / 1000), last);
    }
    return true;
}

/* remediate_drain - take every finished task from the workers and handle it. */
static void remediate_drain(remediate_t *self)
{
    pthread_mutex_lock(&self->lock);
    task_t *done = self->done;
    self->done = NULL;
    pthread_mutex_unlock(&self->lock);
    /* the list is newest first: handle in finishing order */
    size_t n = 0;
    for (task_t *t = done; t; t = t->next)
        n++;
    task_t **order = util_xcalloc(n + 1, sizeof(*order)), **commit = util_xcalloc(n + 1, sizeof(*commit));
    for (size_t i = n; done; done = done->next)
        order[--i] = done;
    size_t ncommit = 0;
    for (size_t i = 0; i < n; i++)
        if (remediate_finished(self, order[i]))
            commit[ncommit++] = order[i];
    remediate_commit_many(self, commit, ncommit);
    free(order);
    free(commit);
}

static int remediate_on_wake(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    remediate_t *self = arg;
    uint64_t n;
    if (read(self->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warning("remediator: wake-up read: %s", strerror(errno));
    remediate_drain(self);
    return 0;
}

static int remediate_on_commit_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    remediate_t *self = arg;
    task_t *list = self->uncommitted;
    self->uncommitted = NULL;
    while (list) {
        task_t *next = list->next;
        if (remediate_commit(self, list) < 0) {
            list->next = self->uncommitted;
            self->uncommitted = list;
        }
        list = next;
    }
    return 0;
}

/* remediate_fail_now - a job that cannot be attempted: its Failed result at once. */
static int remediate_fail_now(remediate_t *self, task_t *t, const char *why)
{
    task_set(t, BACKEND_FAILED, -1, "%s", why);
    snprintf(t->profile, sizeof(t->profile), "%s", t->job.profile ? t->job.profile : "");
    if (remediate_commit(self, t) < 0) {
        t->next = self->uncommitted;
        self->uncommitted = t;
    }
    return 0;
}

int remediate_on_job(bus_t *bus, const bus_delivery_t *delivery, void *arg)
{
    remediate_t *self = arg;
    if (self->stopping)
        return -1; /* handed back with the rest */
    task_t *t = util_xcalloc(1, sizeof(*t));
    if (daemon_decode(bus, delivery, &RECORD_DESC_job, &t->job) < 0) {
        free(t);
        return 0;
    }
    t->delivery = bus_delivery_keep(bus, delivery);
    if (!t->delivery) {
        task_free(t);
        return -1;
    }
    size_t n = strnlen(t->job.recipient, sizeof(t->mailbox) - 1);
    for (size_t i = 0; i < n; i++)
        t->mailbox[i] = (char)tolower((unsigned char)t->job.recipient[i]);
    if (!batch_action_valid(t->job.action))
        return remediate_fail_now(self, t, "unknown action");
    if (!*t->job.message_id)
        return remediate_fail_now(self, t, "the message has no Message-ID to find it by");
    profile_t *chain[REMEDIATE_MAX_CHAIN];
    const char *unknown;
    size_t unknown_len = 0;
    size_t nchain = remediate_chain(self, t->job.profile, chain, &unknown, &unknown_len);
    if (!nchain)
        return remediate_fail_now(self, t, "the job names no profile");
    /* the index keeps a Message-ID without its angle brackets; mailboxes hold it with them */
    t->message_id = util_xmalloc(strlen(t->job.message_id) + 3);
    sprintf(t->message_id, t->job.message_id[0] == '<' ? "%s" : "<%s>", t->job.message_id);
    t->limit = 64;
    t->groupable = !strcmp(t->job.action, "delete") && !unknown;
    for (size_t i = 0; i < nchain; i++) {
        t->groupable = t->groupable && chain[i] && chain[i]->ops->find_many && chain[i]->ops->remove_many;
        if (!chain[i])
            continue;
        /* one IMAP connection per mailbox: one job at a time there */
        int limit = !strcmp(chain[i]->cfg->type, "imap") ? 1 : (int)chain[i]->cfg->mailbox_concurrency;
        if (limit < t->limit)
            t->limit = limit;
    }
    if (unknown && nchain == 1) {
        char why[160];
        snprintf(why, sizeof(why), "no [profile %.*s] in the configuration", (int)unknown_len, unknown);
        return remediate_fail_now(self, t, why);
    }
    pthread_mutex_lock(&self->lock);
    remediate_queue(self, t);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

/* ---------------------------------------------------------------- life */

remediate_t *remediate_new(const config_t *cfg, bus_t *bus, zloop_t *loop, char *err, size_t errsize)
{
    remediate_t *self = util_xcalloc(1, sizeof(*self));
    self->cfg = cfg;
    self->bus = bus;
    self->loop = loop;
    self->commit_timer = -1;
    pthread_mutex_init(&self->lock, NULL);
    util_cond_init_monotonic(&self->work);
    self->busy = zhashx_new();
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wake_fd < 0) {
        snprintf(err, errsize, "eventfd: %s", strerror(errno));
        goto fail;
    }
    self->profiles = util_xcalloc(cfg->nprofiles + 1, sizeof(*self->profiles));
    for (size_t i = 0; i < cfg->nprofiles; i++) {
        profile_t *p = &self->profiles[self->nprofiles];
        p->cfg = &cfg->profiles[i];
        p->ops = backend_ops_for(p->cfg->type);
        if (!p->ops) {
            snprintf(err, errsize, "[profile %s]: type %s has no back-end", p->cfg->name, p->cfg->type);
            goto fail;
        }
        char why[256] = "";
        p->backend = p->ops->open(p->cfg, why, sizeof(why));
        if (!p->backend) {
            snprintf(err, errsize, "[profile %s]: %s", p->cfg->name, why);
            goto fail;
        }
        self->nprofiles++;
    }
    /* a [domains] mapping naming a profile that does not exist would fail every job */
    for (size_t i = 0; i < cfg->ndomains; i++) {
        const char *names = cfg->domains[i].profile;
        for (const char *p = names; *p;) {
            p += strspn(p, " \t");
            size_t len = strcspn(p, " \t");
            if (len && !remediate_profile(self, p, len))
                log_warning("remediator: [domains %s] names profile '%.*s', which no [profile] section defines: its "
                            "jobs fail", cfg->domains[i].name, (int)len, p);
            p += len;
        }
    }
    self->nworkers = (size_t)cfg->remediator_workers;
    self->workers = util_xcalloc(self->nworkers, sizeof(*self->workers));
    for (size_t i = 0; i < self->nworkers; i++) {
        worker_t *w = &self->workers[i];
        w->self = self;
        w->redis = program_redis(cfg, err, errsize);
        if (!w->redis)
            goto fail;
    }
    for (size_t i = 0; i < self->nworkers; i++) {
        worker_t *w = &self->workers[i];
        int rc = pthread_create(&w->thread, NULL, remediate_worker, w);
        if (rc) {
            snprintf(err, errsize, "cannot start a worker thread: %s", strerror(rc));
            goto fail;
        }
        w->started = true;
    }
    zmq_pollitem_t item = {.socket = NULL, .fd = self->wake_fd, .events = ZMQ_POLLIN};
    if (zloop_poller(loop, &item, remediate_on_wake, self) < 0) {
        snprintf(err, errsize, "cannot watch the workers' wake-up descriptor");
        goto fail;
    }
    self->commit_timer = zloop_timer(loop, REMEDIATE_COMMIT_RETRY_MS, 0, remediate_on_commit_timer, self);
    log_info("remediator: %zu profiles, %zu workers", self->nprofiles, self->nworkers);
    return self;
fail:
    remediate_destroy(&self);
    return NULL;
}

void remediate_stop(remediate_t *self)
{
    if (!self || self->stopped)
        return;
    self->stopped = true;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_broadcast(&self->work);
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < self->nworkers; i++)
        if (self->workers[i].started) {
            pthread_join(self->workers[i].thread, NULL);
            self->workers[i].started = false;
        }
    if (self->loop && self->wake_fd >= 0) {
        zmq_pollitem_t item = {.socket = NULL, .fd = self->wake_fd, .events = ZMQ_POLLIN};
        zloop_poller_end(self->loop, &item);
    }
    if (self->loop && self->commit_timer >= 0)
        zloop_timer_end(self->loop, self->commit_timer);
    self->commit_timer = -1;
    /* what the workers finished is committed (or handed back when Redis refuses); the rest
     * goes back to the bus for another instance */
    remediate_drain(self);
    for (task_t *t = self->uncommitted, *next; t; t = next) {
        next = t->next;
        if (remediate_commit(self, t) < 0) {
            bus_delivery_release(self->bus, &t->delivery, true);
            task_free(t);
        }
    }
    self->uncommitted = NULL;
    size_t handed = 0;
    for (task_t *t = self->ready, *next; t; t = next) {
        next = t->next;
        bus_delivery_release(self->bus, &t->delivery, true);
        task_free(t);
        handed++;
    }
    self->ready = self->ready_tail = NULL;
    if (handed)
        log_info("remediator: %zu queued jobs handed back", handed);
}

void remediate_destroy(remediate_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    remediate_t *self = *selfp;
    remediate_stop(self);
    for (size_t i = 0; i < self->nworkers; i++)
        redis_conn_destroy(&self->workers[i].redis);
    free(self->workers);
    for (size_t i = 0; i < self->nprofiles; i++)
        self->profiles[i].ops->destroy(&self->profiles[i].backend);
    free(self->profiles);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    zhashx_destroy(&self->busy);
    pthread_cond_destroy(&self->work);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *selfp = NULL;
}

void remediate_stats(remediate_t *self, remediate_stats_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    int64_t now = util_monotonic_ms(), waiting = 0;
    for (task_t *t = self->ready; t; t = t->next)
        waiting += t->not_before_ms > now;
    out->waiting_retry = waiting;
    pthread_mutex_unlock(&self->lock);
}
