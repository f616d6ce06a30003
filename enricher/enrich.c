/*
 * enrich.c - verdict -> matched messages -> jobs; see enrich.h.
 */
#include "enrich.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "event.h"
#include "log.h"
#include "mindex.h"
#include "policy.h"
#include "program.h"
#include "strbuf.h"
#include "url_canon.h"
#include "url_unwrap.h"
#include "util.h"

#define ENRICH_PROGRAM "clawback-enricher"
#define ENRICH_MAX_SUBJECTS 32 /* distinct subjects expanded per verdict */
#define ENRICH_PIPELINE 64          /* claim reads (HMGET) per round trip */
#define ENRICH_CLAIMS_PER_READ 500  /* copies per HMGET */
#define ENRICH_REPLANS 5       /* plans tried when other enrichers keep taking claims */
#define ENRICH_INFLIGHT 2      /* commits sent ahead of their outcome */

struct enrich {
    const config_t *cfg;
    redis_conn_t *redis;
    mindex_t *ix;
    policy_t *policy;
};

/* How a message matched the verdict. */
typedef enum { MATCH_URL = 0, MATCH_EMAIL_ID = 1, MATCH_SUBJECT = 2 } match_how_t;

typedef struct {
    int64_t mid;
    match_how_t how;
} match_t;

/* One job to create: a recipient of a matched message. */
typedef struct {
    size_t rec;   /* index into plan.recs */
    size_t rcpt;  /* index into that record's recipients */
    const config_domains_t *mapping;
    bool skip;    /* no job: claimed (by another batch or already by this one), or remediated */
    bool mine;    /* claimed by this batch already (an earlier, interrupted run) */
    bool stale;   /* the copy holds the state an earlier batch left (failed, rejected) */
} plan_job_t;

/* Everything one verdict leads to. */
typedef struct {
    record_verdict_t verdict;
    char canonical[URL_CANON_MAX_INPUT + 1];
    char uuid[BATCH_UUID_LEN + 1];
    int64_t now_ms;
    match_t *matches;
    size_t nmatches;
    mindex_record_t *recs;
    size_t nrecs;
    plan_job_t *jobs;
    size_t njobs;
    /* counts for the summary */
    size_t by_url, by_email_id, by_subject, too_old, outgoing, unmapped, action_none, claimed, remediated_before;
    size_t done_before; /* copies this batch already has (an earlier, interrupted run) */
    size_t messages;    /* messages with at least one job in this batch */
    strbuf_t notes;     /* subjects not expanded, ... */
    bool held;
} plan_t;

enrich_t *enrich_new(const config_t *cfg, redis_conn_t *redis, char *err, size_t errsize)
{
    policy_t *policy = policy_new(cfg, err, errsize);
    if (!policy)
        return NULL;
    enrich_t *self = util_xcalloc(1, sizeof(*self));
    self->cfg = cfg;
    self->redis = redis;
    self->policy = policy;
    self->ix = program_index(cfg, redis);
    log_info("enricher: %zu allowlist entries, %zu domain mappings, same-subject expansion %s (at most %lld "
             "messages), window %llds, approval above %lld messages",
             policy_allowlist_size(policy), cfg->ndomains, cfg->enricher_same_subject ? "on" : "off",
             (long long)cfg->enricher_subject_max, (long long)(cfg->enricher_window_ms / 1000),
             (long long)cfg->enricher_approval_threshold);
    return self;
}

void enrich_destroy(enrich_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    enrich_t *self = *selfp;
    mindex_destroy(&self->ix);
    policy_destroy(&self->policy);
    free(self);
    *selfp = NULL;
}

/* plan_forget - drop what a plan found (to plan the same verdict again). */
static void plan_forget(plan_t *p)
{
    free(p->matches);
    p->matches = NULL;
    p->nmatches = 0;
    for (size_t i = 0; i < p->nrecs; i++)
        mindex_record_clear(&p->recs[i]);
    free(p->recs);
    p->recs = NULL;
    free(p->jobs);
    p->jobs = NULL;
    p->nrecs = p->njobs = 0;
    p->by_url = p->by_email_id = p->by_subject = p->too_old = p->outgoing = p->unmapped = p->action_none = 0;
    strbuf_reset(&p->notes);
}

static void plan_clear(plan_t *p)
{
    record_clear(&RECORD_DESC_verdict, &p->verdict);
    plan_forget(p);
    strbuf_release(&p->notes);
}

/* enrich_finish - consume the verdict with one ecs event (and the same line in this log). 0 when
 * committed, -1 to try again. */
static int enrich_finish(bus_t *bus, const bus_delivery_t *d, log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int enrich_finish(bus_t *bus, const bus_delivery_t *d, log_level_t level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    bus_commit_t *c = bus_commit_new(bus, d);
    char err[256];
    if (event_commit_add(c, ENRICH_PROGRAM, "ecs", level, 0, NULL, line, err, sizeof(err)) < 0)
        log_warning("enricher: event not sent: %s", err);
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    if (st != BUS_OK && st != BUS_DUPLICATE) {
        log_warning("enricher: verdict %s: %s; tried again", d->record_id, bus_errstr(bus));
        return -1;
    }
    if (st == BUS_OK)
        log_msg(level, "enricher: %s", line);
    return 0;
}

static int match_cmp(const void *a, const void *b)
{
    const match_t *x = a, *y = b;
    if (x->mid != y->mid)
        return x->mid > y->mid ? -1 : 1; /* newest first */
    return (int)x->how - (int)y->how;
}

/* plan_add_matches - add mids with how, keeping each MID once (its first way of matching). */
static void plan_add_matches(plan_t *p, const int64_t *mids, size_t n, match_how_t how)
{
    p->matches = util_xrealloc(p->matches, (p->nmatches + n + 1) * sizeof(*p->matches));
    for (size_t i = 0; i < n; i++)
        p->matches[p->nmatches++] = (match_t){mids[i], how};
    qsort(p->matches, p->nmatches, sizeof(*p->matches), match_cmp);
    size_t w = 0;
    for (size_t i = 0; i < p->nmatches; i++)
        if (w == 0 || p->matches[w - 1].mid != p->matches[i].mid)
            p->matches[w++] = p->matches[i];
    p->nmatches = w;
}

static const match_t *plan_match_of(const plan_t *p, int64_t mid)
{
    match_t key = {mid, MATCH_URL};
    size_t lo = 0, hi = p->nmatches;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (p->matches[m].mid == mid)
            return &p->matches[m];
        if (match_cmp(&p->matches[m], &key) < 0)
            lo = m + 1;
        else
            hi = m;
    }
    return NULL;
}

/* plan_keep_records - append the records of the window's incoming mail to p->recs (counting
 * the others); takes over recs (found of them). */
static void plan_keep_records(enrich_t *self, plan_t *p, mindex_record_t *recs, size_t found)
{
    p->recs = util_xrealloc(p->recs, (p->nrecs + found + 1) * sizeof(*p->recs));
    int64_t oldest = p->now_ms - self->cfg->enricher_window_ms;
    for (size_t i = 0; i < found; i++) {
        bool keep = true;
        if (!recs[i].direction || strcmp(recs[i].direction, "incoming") != 0) {
            p->outgoing++;
            keep = false;
        } else if (recs[i].time_ms < oldest) {
            p->too_old++;
            keep = false;
        }
        if (keep)
            p->recs[p->nrecs++] = recs[i];
        else
            mindex_record_clear(&recs[i]);
    }
    free(recs);
}

/* plan_read_records - read the records of mids[0..n) and keep them (plan_keep_records). 0 or -1. */
static int plan_read_records(enrich_t *self, plan_t *p, const int64_t *mids, size_t n)
{
    mindex_record_t *recs = NULL;
    size_t found = 0;
    if (n && mindex_get_many(self->ix, mids, n, &recs, &found) != 0)
        return -1;
    plan_keep_records(self, p, recs, found);
    return 0;
}

/* plan_look_up - the messages carrying value (kind), matched as how: their records kept, the
 * ones already matched left out. 0 or -1. */
static int plan_look_up(enrich_t *self, plan_t *p, mindex_kind_t kind, const char *value, match_how_t how)
{
    int64_t *mids = NULL;
    mindex_record_t *recs = NULL;
    size_t n = 0;
    if (mindex_lookup_records(self->ix, kind, value, 0, &mids, &recs, &n) != 0)
        return -1;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (plan_match_of(p, mids[i])) {
            mindex_record_clear(&recs[i]);
            continue;
        }
        mids[w] = mids[i];
        recs[w++] = recs[i];
    }
    plan_add_matches(p, mids, w, how);
    plan_keep_records(self, p, recs, w);
    free(mids);
    return 0;
}

/* plan_expand_subjects - add the messages sharing a subject with a message matched so far. */
static int plan_expand_subjects(enrich_t *self, plan_t *p)
{
    char *subjects[ENRICH_MAX_SUBJECTS];
    size_t nsubjects = 0, more = 0;
    const char *last_raw = NULL; /* messages of one campaign mostly share the raw subject too */
    zhashx_t *others = NULL;     /* the subjects beyond ENRICH_MAX_SUBJECTS */
    for (size_t i = 0; i < p->nrecs; i++) {
        const char *raw = p->recs[i].subject;
        if (raw && last_raw && strcmp(raw, last_raw) == 0)
            continue;
        last_raw = raw;
        char *norm = raw ? mindex_subject_normalize(raw) : NULL;
        bool known = !norm || !*norm;
        for (size_t k = 0; k < nsubjects && !known; k++)
            known = strcmp(subjects[k], norm) == 0;
        if (!known && nsubjects == ENRICH_MAX_SUBJECTS) {
            if (!others)
                others = zhashx_new();
            if (zhashx_insert(others, norm, (void *)1) == 0)
                more++; /* a distinct subject beyond the limit */
            known = true;
        }
        if (known)
            free(norm);
        else
            subjects[nsubjects++] = norm;
    }
    zhashx_destroy(&others);
    if (more)
        strbuf_appendf(&p->notes, "; %zu further subjects not expanded (at most %d per verdict)", more,
                       ENRICH_MAX_SUBJECTS);
    int rc = 0;
    size_t limit = (size_t)self->cfg->enricher_subject_max;
    for (size_t k = 0; k < nsubjects; k++) {
        int64_t *mids = NULL;
        size_t n = 0;
        if (rc == 0 && mindex_lookup(self->ix, MINDEX_SUBJECT, subjects[k], limit + 1, &mids, &n) != 0)
            rc = -1;
        if (rc == 0 && n > limit) {
            strbuf_appendf(&p->notes, "; subject '%.200s' is carried by more than %zu messages: not expanded",
                           subjects[k], limit);
        } else if (rc == 0) {
            /* only the MIDs not matched yet are read */
            int64_t *fresh = util_xcalloc(n + 1, sizeof(*fresh));
            size_t nfresh = 0;
            for (size_t i = 0; i < n; i++)
                if (!plan_match_of(p, mids[i]))
                    fresh[nfresh++] = mids[i];
            plan_add_matches(p, fresh, nfresh, MATCH_SUBJECT);
            if (plan_read_records(self, p, fresh, nfresh) != 0)
                rc = -1;
            free(fresh);
        }
        free(mids);
        free(subjects[k]);
    }
    return rc;
}

/* plan_job_mid - the MID of plan job i. */
static int64_t plan_job_mid(const plan_t *p, size_t i)
{
    return p->recs[p->jobs[i].rec].mid;
}

/* plan_note_claim - what a copy's claim and state say about job j. */
static void plan_note_claim(plan_t *p, plan_job_t *j, const redisReply *claim, const redisReply *state)
{
    j->skip = j->mine = false;
    j->stale = state->type == REDIS_REPLY_STRING;
    if (claim->type == REDIS_REPLY_STRING && strcmp(claim->str, p->uuid) == 0) {
        j->skip = j->mine = true;
        p->done_before++;
    } else if (state->type == REDIS_REPLY_STRING && (!strcmp(state->str, "remediated") || !strcmp(state->str, "not_found"))) {
        j->skip = true;
        p->remediated_before++;
    } else if (claim->type == REDIS_REPLY_STRING) {
        j->skip = true;
        p->claimed++;
    }
}

/* plan_read_claims - mark the jobs whose copy is claimed or already remediated; count them.
 * The jobs of one cb:copies key are read with one HMGET, ENRICH_PIPELINE of them a round trip. */
static int plan_read_claims(enrich_t *self, plan_t *p)
{
    p->claimed = p->remediated_before = p->done_before = 0;
    const char **argv = util_xcalloc(2 + 2 * ENRICH_CLAIMS_PER_READ, sizeof(*argv));
    char **fields = util_xcalloc(2 * ENRICH_CLAIMS_PER_READ, sizeof(*fields));
    size_t *bounds = util_xcalloc(ENRICH_PIPELINE + 1, sizeof(*bounds));
    redisReply **replies = util_xcalloc(ENRICH_PIPELINE, sizeof(*replies));
    int rc = 0;
    size_t next = 0;
    while (rc == 0 && next < p->njobs) {
        size_t ncmd = 0;
        bounds[0] = next;
        while (next < p->njobs && ncmd < ENRICH_PIPELINE) {
            int64_t shard = plan_job_mid(p, next) / BATCH_COPIES_SHARD;
            char key[48];
            batch_copies_key(key, sizeof(key), plan_job_mid(p, next));
            argv[0] = "HMGET";
            argv[1] = key;
            size_t nf = 0, end = next;
            while (end < p->njobs && end - next < ENRICH_CLAIMS_PER_READ &&
                   plan_job_mid(p, end) / BATCH_COPIES_SHARD == shard) {
                const mindex_record_t *r = &p->recs[p->jobs[end].rec];
                const char *rcpt = r->rcpts[p->jobs[end].rcpt].address;
                fields[nf++] = batch_claim_field(r->mid, rcpt);
                fields[nf++] = batch_state_field(r->mid, rcpt);
                end++;
            }
            for (size_t f = 0; f < nf; f++)
                argv[2 + f] = fields[f];
            if (redis_conn_appendargv(self->redis, (int)(2 + nf), argv, NULL) != 0)
                rc = -1;
            for (size_t f = 0; f < nf; f++)
                free(fields[f]);
            bounds[++ncmd] = next = end;
        }
        if (rc != 0 || redis_conn_pipeline_exec(self->redis, replies, ncmd) != 0) {
            rc = -1;
            break;
        }
        for (size_t k = 0; k < ncmd; k++) {
            const redisReply *r = replies[k];
            size_t n = bounds[k + 1] - bounds[k];
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 * n)
                rc = -1;
            for (size_t i = 0; rc == 0 && i < n; i++)
                plan_note_claim(p, &p->jobs[bounds[k] + i], r->element[2 * i], r->element[2 * i + 1]);
            if (replies[k])
                freeReplyObject(replies[k]);
        }
    }
    free(argv);
    free(fields);
    free(bounds);
    free(replies);
    return rc;
}

/* plan_build - look the verdict up and decide every job. 0 or -1 (Redis failed). */
static int plan_build(enrich_t *self, plan_t *p)
{
    const record_verdict_t *v = &p->verdict;
    int64_t t0 = util_monotonic_ms();
    bool is_url = strcmp(v->observable_type, "url") == 0;
    if (plan_look_up(self, p, is_url ? MINDEX_URL : MINDEX_DOMAIN, p->canonical, MATCH_URL) != 0)
        return -1;
    int64_t t1 = util_monotonic_ms();
    if (v->email_id && *v->email_id) {
        char eid[37];
        size_t len = strlen(v->email_id);
        if (len == 36) {
            for (size_t i = 0; i <= len; i++)
                eid[i] = (char)tolower((unsigned char)v->email_id[i]);
            if (plan_look_up(self, p, MINDEX_EMAIL_ID, eid, MATCH_EMAIL_ID) != 0)
                return -1;
        } else {
            strbuf_appendf(&p->notes, "; email_id '%.64s' is not an email id", v->email_id);
        }
    }
    int64_t t2 = util_monotonic_ms();
    if (self->cfg->enricher_same_subject && p->nrecs && plan_expand_subjects(self, p) != 0)
        return -1;
    int64_t t3 = util_monotonic_ms();

    size_t total = 0;
    for (size_t i = 0; i < p->nrecs; i++)
        total += p->recs[i].n_rcpts;
    p->jobs = util_xcalloc(total + 1, sizeof(*p->jobs));
    for (size_t i = 0; i < p->nrecs; i++) {
        const match_t *m = plan_match_of(p, p->recs[i].mid);
        if (m && m->how == MATCH_URL)
            p->by_url++;
        else if (m && m->how == MATCH_EMAIL_ID)
            p->by_email_id++;
        else
            p->by_subject++;
        for (size_t r = 0; r < p->recs[i].n_rcpts; r++) {
            const config_domains_t *mapping = policy_for_recipient(self->policy, p->recs[i].rcpts[r].address);
            if (!mapping)
                p->unmapped++;
            else if (!strcmp(mapping->action, "none"))
                p->action_none++;
            else
                p->jobs[p->njobs++] = (plan_job_t){.rec = i, .rcpt = r, .mapping = mapping};
        }
    }
    int64_t t4 = util_monotonic_ms();
    int rc = plan_read_claims(self, p);
    log_debug("enricher: verdict %s planned: look-up and records %lld ms, email id %lld ms, subjects %lld ms (%zu "
              "records), policy %lld ms, claims %lld ms", v->id, (long long)(t1 - t0), (long long)(t2 - t1),
              (long long)(t3 - t2), p->nrecs, (long long)(t4 - t3), (long long)(util_monotonic_ms() - t4));
    return rc;
}

/* plan_matched - how a message matched, as an initiation names it. */
static const char *plan_matched(const plan_t *p, int64_t mid)
{
    const match_t *m = plan_match_of(p, mid);
    return m && m->how == MATCH_URL ? "url" : m && m->how == MATCH_EMAIL_ID ? "email_id" : "subject";
}

/* plan_job_record - the job of plan job j: its strings point into the plan, id and the
 * subject are in the caller's buffers (a subject is cut at the job's 4096 bytes). Not cleared. */
static void plan_job_record(const plan_t *p, const plan_job_t *j, record_job_t *job, char id[RECORD_MAX_ID + 1],
                            char subject[4097])
{
    const mindex_record_t *r = &p->recs[j->rec];
    const char *rcpt = r->rcpts[j->rcpt].address;
    memset(job, 0, sizeof(*job));
    batch_job_id(p->uuid, r->mid, rcpt, id);
    job->id = id;
    job->time_ms = p->now_ms;
    job->batch = (char *)p->uuid;
    job->mid = r->mid;
    job->message_id = r->message_id ? r->message_id : (char *)"";
    job->recipient = (char *)rcpt;
    job->action = (char *)j->mapping->action;
    job->profile = (char *)j->mapping->profile;
    if (r->subject && strnlen(r->subject, 4097) > 4096) {
        memcpy(subject, r->subject, 4096);
        subject[4096] = '\0';
        job->subject = subject;
    } else {
        job->subject = r->subject;
    }
    job->reason = (char *)"url_retrospection"; /* initiator and source are implied (record.h) */
}

/* plan_summary - the verdict's summary line. */
static void plan_summary(const plan_t *p, const enrich_t *self, strbuf_t *out)
{
    const record_verdict_t *v = &p->verdict;
    size_t jobs = 0;
    for (size_t i = 0; i < p->njobs; i++)
        jobs += !p->jobs[i].skip;
    strbuf_appendf(out, "URL retrospection verdict from feed '%s': %s '%s' is %s: %zu messages matched (%zu carry it, %zu "
                   "by email id, %zu by the same subject)",
                   v->feed, v->observable_type, p->canonical, v->disposition, p->nrecs, p->by_url, p->by_email_id,
                   p->by_subject);
    if (jobs + p->done_before)
        strbuf_appendf(out, "; %zu jobs %s batch '%s'", jobs + p->done_before, p->held ? "wait for approval in" : "in",
                       p->uuid);
    else
        strbuf_appends(out, "; nothing to remediate");
    if (p->too_old)
        strbuf_appendf(out, "; %zu delivered more than %llds ago: not remediated", p->too_old,
                       (long long)(self->cfg->enricher_window_ms / 1000));
    if (p->outgoing)
        strbuf_appendf(out, "; %zu outgoing: not remediated", p->outgoing);
    if (p->unmapped)
        strbuf_appendf(out, "; %zu recipients in no [domains] mapping: not remediated", p->unmapped);
    if (p->action_none)
        strbuf_appendf(out, "; %zu recipients with action none: not remediated", p->action_none);
    if (p->claimed)
        strbuf_appendf(out, "; %zu copies already in another batch", p->claimed);
    if (p->remediated_before)
        strbuf_appendf(out, "; %zu copies already remediated", p->remediated_before);
    if (p->notes.len)
        strbuf_append(out, p->notes.data, p->notes.len);
    strbuf_appends(out, ".");
}

/* plan_chunk - the commit of jobs [from, to) (whole messages); the last consumes the verdict
 * (its summary line is left in summary). NULL when a record does not encode (logged). */
static bus_commit_t *plan_chunk(enrich_t *self, plan_t *p, bus_t *bus, const bus_delivery_t *d, size_t from,
                                size_t to, bool first, bool last, strbuf_t *summary)
{
    const config_t *cfg = self->cfg;
    int64_t ttl = cfg->index_retention_ms > cfg->enricher_window_ms ? cfg->index_retention_ms : cfg->enricher_window_ms;
    char bkey[96], jkey[96], hkey[96], err[256];
    batch_key(bkey, sizeof(bkey), p->uuid, NULL);
    batch_key(jkey, sizeof(jkey), p->uuid, "jobs");
    batch_key(hkey, sizeof(hkey), p->uuid, "held");
    bus_commit_t *c = bus_commit_new(bus, last ? d : NULL);
    const char *job_state = p->held ? BATCH_JOB_HELD : BATCH_JOB_INITIATED;
    if (first) {
        char now[24];
        snprintf(now, sizeof(now), "%" PRId64, p->now_ms);
        bus_commit_hsetnx(c, bkey, "created_ms", now);
        bus_commit_hsetnx(c, bkey, "state", p->held ? BATCH_AWAITING_APPROVAL : BATCH_INITIATED);
        bus_commit_hset(c, bkey, "reason", "url_retrospection");
        bus_commit_hset(c, bkey, "initiator", BATCH_RETRO_INITIATOR);
        bus_commit_hset(c, bkey, "source", BATCH_RETRO_SOURCE);
        bus_commit_hset(c, bkey, "feed", p->verdict.feed);
        bus_commit_hset(c, bkey, "observable_type", p->verdict.observable_type);
        bus_commit_hset(c, bkey, "observable", p->canonical);
        bus_commit_hset(c, bkey, "verdict", p->verdict.id);
        bus_commit_zadd(c, BATCH_INDEX_KEY, p->now_ms, p->uuid);
    }
    strbuf_t line;
    strbuf_init(&line, 0);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    /* the chunk's messages travel as one initiation record: the logger writes their lines
     * (why each matched, "was initiated") and adds them to each message's tracking */
    _Static_assert(ENRICH_CHUNK <= 1000, "an initiation holds at most 1000 messages");
    record_initiation_t in = {
        .time_ms = p->now_ms,
        .program = (char *)ENRICH_PROGRAM,
        .batch = p->uuid,
        .held = p->held,
        .initiator = (char *)BATCH_RETRO_INITIATOR,
        .source = (char *)BATCH_RETRO_SOURCE,
        .feed = p->verdict.feed,
        .observable_type = p->verdict.observable_type,
        .observable = p->canonical,
        .disposition = p->verdict.disposition,
    };
    char in_id[RECORD_MAX_ID + 1];
    util_uuid(in_id);
    in.id = in_id;
    in.messages.v = util_xcalloc(ENRICH_CHUNK + 1, sizeof(*in.messages.v));
    strbuf_t job_list; /* the jobs of the chunk, listed in the batch's jobs (batch.h) */
    strbuf_init(&job_list, 0);
    size_t messages = 0, jobs = 0;
    int64_t last_mid = 0;
    int rc = 0;
    char id[RECORD_MAX_ID + 1], *subject = util_xmalloc(4097);
    for (size_t i = from; i < to && rc == 0; i++) {
        const plan_job_t *j = &p->jobs[i];
        if (j->skip)
            continue;
        const mindex_record_t *r = &p->recs[j->rec];
        const char *rcpt = r->rcpts[j->rcpt].address;
        batch_commit_claim(c, p->uuid, r->mid, rcpt, job_state, p->held || j->stale, ttl, &job_list);
        record_job_t job;
        plan_job_record(p, j, &job, id, subject);
        if (p->held) {
            msgpack_sbuffer_clear(&buf);
            rc = record_encode(&RECORD_DESC_job, &job, &buf, err, sizeof(err));
            if (rc == 0)
                bus_commit_rpush(c, hkey, buf.data, buf.size);
        } else {
            rc = bus_commit_add_record(c, "jobs", &RECORD_DESC_job, &job, err, sizeof(err));
        }
        jobs++;
        if (r->mid != last_mid) { /* the first job of this message in the chunk */
            last_mid = r->mid;
            record_initiated_t *m = &in.messages.v[in.messages.n++];
            m->mid = r->mid;
            m->matched = (char *)plan_matched(p, r->mid);
            m->email_id = !strcmp(m->matched, "email_id") ? (char *)r->email_id : NULL;
            m->action = (char *)j->mapping->action;
            messages++;
        }
    }
    free(subject);
    batch_commit_job_list(c, p->uuid, in_id, &job_list, ttl);
    strbuf_release(&job_list);
    if (rc == 0 && in.messages.n)
        rc = bus_commit_add_record(c, EVENT_EDGE, &RECORD_DESC_initiation, &in, err, sizeof(err));
    free(in.messages.v);
    if (messages)
        bus_commit_hincrby(c, bkey, "messages", (int64_t)messages);
    if (jobs)
        bus_commit_hincrby(c, bkey, "jobs", (int64_t)jobs);
    if (last) {
        bus_commit_hset(c, bkey, "complete", "1");
        strbuf_reset(&line);
        plan_summary(p, self, &line);
        if (rc == 0)
            rc = event_commit_add(c, ENRICH_PROGRAM, "ecs", LOG_LEVEL_INFO, 0, p->uuid, line.data, err, sizeof(err));
        if (rc == 0 && p->held) {
            char held[512];
            snprintf(held, sizeof(held),
                     "Batch '%s' waits for an operator: %zu messages is more than [enricher] approval_threshold %lld "
                     "(clawback approve %s, or clawback reject %s).",
                     p->uuid, p->messages, (long long)cfg->enricher_approval_threshold, p->uuid, p->uuid);
            rc = event_commit_add(c, ENRICH_PROGRAM, "ecs", LOG_LEVEL_WARNING, 0, p->uuid, held, err, sizeof(err));
            log_warning("enricher: %s", held);
        }
    }
    /* every key of the batch lives as long as its messages */
    bus_commit_pexpire(c, bkey, ttl);
    bus_commit_pexpire(c, jkey, ttl);
    if (p->held)
        bus_commit_pexpire(c, hkey, ttl);
    if (rc != 0) {
        log_warning("enricher: batch %s: a record does not encode: %s", p->uuid, err);
        bus_commit_destroy(&c);
    }
    if (last)
        strbuf_append(summary, line.data, line.len);
    msgpack_sbuffer_destroy(&buf);
    strbuf_release(&line);
    return c;
}

/* plan_finish_oldest - finish the oldest of the commits in flight; its status (BUS_OK when
 * none). */
static bus_status_t plan_finish_oldest(bus_commit_t **running, size_t *nrunning)
{
    if (*nrunning == 0)
        return BUS_OK;
    bus_status_t st = bus_commit_finish(running[0]);
    bus_commit_destroy(&running[0]);
    memmove(running, running + 1, (*nrunning - 1) * sizeof(*running));
    (*nrunning)--;
    return st;
}

/* plan_commit - commit the plan's jobs chunk by chunk. Redis is never left waiting: each chunk
 * is built while Redis runs the ones before, and up to ENRICH_INFLIGHT are sent ahead (each
 * chunk is atomic on its own: claims and jobs together). The last, which consumes the verdict,
 * is sent only once every other succeeded. */
static bus_status_t plan_commit(enrich_t *self, plan_t *p, bus_t *bus, const bus_delivery_t *d)
{
    size_t from = 0;
    bool first = true;
    bus_commit_t *running[ENRICH_INFLIGHT];
    size_t nrunning = 0;
    bus_status_t st = BUS_OK;
    int64_t build_ms = 0, wait_ms = 0, send_ms = 0;
    strbuf_t summary;
    strbuf_init(&summary, 0);
    do {
        /* a chunk ends at a message boundary after ENRICH_CHUNK messages with jobs */
        size_t to = from, messages = 0;
        int64_t mid = 0;
        while (to < p->njobs) {
            const plan_job_t *j = &p->jobs[to];
            int64_t m = p->recs[j->rec].mid;
            if (!j->skip && m != mid) {
                if (messages == ENRICH_CHUNK)
                    break;
                messages++;
                mid = m;
            }
            to++;
        }
        bool last = to >= p->njobs;
        if (messages || last) {
            int64_t t0 = util_monotonic_ms();
            bus_commit_t *c = plan_chunk(self, p, bus, d, from, to, first, last, &summary);
            int64_t t1 = util_monotonic_ms();
            build_ms += t1 - t0;
            while (st == BUS_OK && nrunning > 0 && (last || nrunning == ENRICH_INFLIGHT))
                st = plan_finish_oldest(running, &nrunning);
            wait_ms += util_monotonic_ms() - t1;
            if (st == BUS_OK && !c)
                st = BUS_ERROR;
            int64_t t2 = util_monotonic_ms();
            if (st == BUS_OK && bus_commit_send(c) == 0) {
                running[nrunning++] = c;
            } else {
                if (st == BUS_OK)
                    st = bus_commit_finish(c); /* BUS_ERROR: the send failed, and said why */
                bus_commit_destroy(&c);
            }
            send_ms += util_monotonic_ms() - t2;
            first = false;
        }
        from = to;
    } while (st == BUS_OK && from < p->njobs);
    /* the ones still in flight are finished whatever happened (their replies must be read) */
    while (nrunning > 0) {
        bus_status_t s2 = plan_finish_oldest(running, &nrunning);
        if (st == BUS_OK)
            st = s2;
    }
    if (st == BUS_OK)
        log_info("enricher: %s", summary.data);
    log_debug("enricher: batch %s: building commits %lld ms, sending %lld ms, waiting for Redis %lld ms", p->uuid,
              (long long)build_ms, (long long)send_ms, (long long)wait_ms);
    strbuf_release(&summary);
    return st;
}

/* enrich_canonical - the verdict's value as the index holds it; false when it has none. */
static bool enrich_canonical(const record_verdict_t *v, char *out, size_t size, char *why, size_t whysize)
{
    size_t len = strlen(v->value);
    if (strcmp(v->observable_type, "domain") == 0) {
        while (len && v->value[len - 1] == '.')
            len--;
        if (len == 0 || len >= size || memchr(v->value, '/', len) || memchr(v->value, ' ', len)) {
            snprintf(why, whysize, "not a domain name");
            return false;
        }
        for (size_t i = 0; i < len; i++)
            out[i] = (char)tolower((unsigned char)v->value[i]);
        out[len] = '\0';
        return true;
    }
    strbuf_t refanged, canon;
    strbuf_init(&refanged, 0);
    strbuf_init(&canon, size - 1);
    const char *url = v->value;
    if (url_refang(url, len, &refanged)) {
        url = refanged.data;
        len = refanged.len;
    }
    url_canon_status_t st = url_canon(url, len, &canon);
    bool ok = st == URL_CANON_OK;
    if (ok)
        memcpy(out, canon.data, canon.len + 1);
    else
        snprintf(why, whysize, "%s", url_canon_strerror(st));
    strbuf_release(&refanged);
    strbuf_release(&canon);
    return ok;
}

int enrich_verdict(enrich_t *self, bus_t *bus, const bus_delivery_t *d)
{
    plan_t p;
    memset(&p, 0, sizeof(p));
    strbuf_init(&p.notes, 0);
    if (record_decode(&RECORD_DESC_verdict, d->payload, d->len, &p.verdict, p.canonical, sizeof(p.canonical)) != 0) {
        char why[600];
        snprintf(why, sizeof(why), "not a verdict record: %.500s", p.canonical);
        plan_clear(&p);
        return bus_set_aside(bus, d, why);
    }
    const record_verdict_t *v = &p.verdict;
    p.now_ms = util_now_ms();
    int rc = 0;
    char why[256];
    if (!policy_acts_on(self->policy, v->disposition)) {
        rc = enrich_finish(bus, d, LOG_LEVEL_DEBUG, "Verdict from feed '%s' on %s '%.2000s' is %s: not acted on.",
                           v->feed, v->observable_type, v->value, v->disposition);
    } else if (!enrich_canonical(v, p.canonical, sizeof(p.canonical), why, sizeof(why))) {
        rc = enrich_finish(bus, d, LOG_LEVEL_WARNING, "Verdict from feed '%s' on %s '%.2000s' not acted on: %s.", v->feed,
                           v->observable_type, v->value, why);
    } else if (v->observed_ms && p.now_ms - v->observed_ms > self->cfg->enricher_max_verdict_age_ms) {
        rc = enrich_finish(bus, d, LOG_LEVEL_WARNING,
                           "Verdict from feed '%s' on %s '%s' not acted on: first observed %llds ago, more than "
                           "[enricher] max_verdict_age (%llds).",
                           v->feed, v->observable_type, p.canonical, (long long)((p.now_ms - v->observed_ms) / 1000),
                           (long long)(self->cfg->enricher_max_verdict_age_ms / 1000));
    } else if (policy_allowlisted(self->policy, v->observable_type, p.canonical, why, sizeof(why))) {
        rc = enrich_finish(bus, d, LOG_LEVEL_INFO,
                           "Verdict from feed '%s' on %s '%s' not acted on: allowlisted (%s).", v->feed,
                           v->observable_type, p.canonical, why);
    } else {
        batch_uuid_from(v->id, p.uuid);
        rc = -1;
        for (int attempt = 0; attempt < ENRICH_REPLANS; attempt++) {
            if (plan_build(self, &p) != 0) {
                log_warning("enricher: verdict %s: %s; tried again", v->id, mindex_errstr(self->ix));
                break;
            }
            p.messages = 0;
            int64_t mid = 0;
            for (size_t i = 0; i < p.njobs; i++) {
                int64_t m = p.recs[p.jobs[i].rec].mid;
                bool counts = !p.jobs[i].skip || p.jobs[i].mine;
                if (m != mid && counts) {
                    p.messages++;
                    mid = m;
                }
            }
            p.held = self->cfg->enricher_approval_threshold > 0 &&
                     (int64_t)p.messages > self->cfg->enricher_approval_threshold;
            if (p.messages == 0) { /* nothing to remediate: no batch */
                strbuf_t line;
                strbuf_init(&line, 0);
                plan_summary(&p, self, &line);
                rc = enrich_finish(bus, d, LOG_LEVEL_INFO, "%s", line.data);
                strbuf_release(&line);
                break;
            }
            int64_t tc = util_monotonic_ms();
            bus_status_t st = plan_commit(self, &p, bus, d);
            log_debug("enricher: verdict %s: commits took %lld ms", v->id, (long long)(util_monotonic_ms() - tc));
            if (st == BUS_OK || st == BUS_DUPLICATE) {
                rc = 0;
                break;
            }
            if (st != BUS_FENCED) {
                log_warning("enricher: verdict %s: %s; tried again", v->id, bus_errstr(bus));
                break;
            }
            /* another enricher claimed some of these copies meanwhile: plan again */
            log_info("enricher: verdict %s: copies claimed meanwhile by another batch; planning again", v->id);
            plan_forget(&p);
        }
    }
    plan_clear(&p);
    return rc;
}
