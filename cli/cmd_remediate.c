/*
 * cmd_remediate.c - the operator's remediation commands (the seed's search-and-remediate):
 *
 *   clawback remediate --action delete|forward|forward-delete --by USER [--source S]
 *                      (MID... | --query QUERY...) [--limit N]
 *       one job per recipient of each message, in a new batch (its UUID on standard output);
 *       the profile of each recipient comes from its domain's [domains] mapping; the seed's
 *       "Message N was initiated for 'Forward' remedial action by 'USER' from source 'S' in
 *       batch '...'." line for each message.
 *   clawback approve UUID --by USER    put a held batch's jobs on the bus
 *   clawback reject UUID --by USER     drop a held batch: its copies are free again
 *
 * Jobs go out in commits of CLI_CHUNK messages, with their claims, states and lines, like
 * the enricher's (batch.h). The jobs are dispatched by the running enricher(s); this command
 * only commits them. A full jobs edge is waited for (at most CLI_FULL_WAIT_MS).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "bus.h"
#include "cli.h"
#include "event.h"
#include "policy.h"
#include "util.h"

#define CLI_CHUNK 500
#define CLI_FULL_WAIT_MS 600000
#define CLI_PROGRAM "clawback"
#define CLI_DEFAULT_SOURCE "clawback"
#define CLI_MAX_MESSAGES 100000

/* The parts a command needs to commit. */
typedef struct {
    config_t *cfg;
    redis_conn_t *redis;
    zloop_t *loop;
    bus_t *bus;
    mindex_t *ix;
    const char *name; /* the command, for messages */
} cli_env_t;

static void env_close(cli_env_t *e)
{
    mindex_destroy(&e->ix);
    bus_destroy(&e->bus);
    zloop_destroy(&e->loop);
    redis_conn_destroy(&e->redis);
    config_destroy(&e->cfg);
}

/* env_open - configuration, Redis, a bus endpoint and the index. 0, or -1 after printing why. */
static int env_open(cli_t *cli, cli_env_t *e, const char *name)
{
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->cfg = cli_config(cli);
    if (!e->cfg)
        return -1;
    e->redis = cli_redis(e->cfg);
    if (!e->redis) {
        env_close(e);
        return -1;
    }
    char err[512];
    e->loop = zloop_new();
    e->bus = bus_new(e->cfg, e->redis, e->loop, CLI_PROGRAM, err, sizeof(err));
    if (!e->bus) {
        fprintf(stderr, "clawback %s: %s\n", name, err);
        env_close(e);
        return -1;
    }
    e->ix = program_index(e->cfg, e->redis);
    return 0;
}

/* env_run - run a commit, waiting while an edge is full. 0, or -1 after printing why. */
static int env_run(cli_env_t *e, bus_commit_t *c)
{
    int64_t deadline = util_monotonic_ms() + CLI_FULL_WAIT_MS;
    for (;;) {
        bus_status_t st = bus_commit_run(c);
        if (st == BUS_OK)
            return 0;
        if (st != BUS_FULL || util_monotonic_ms() > deadline) {
            fprintf(stderr, "clawback %s: %s\n", e->name, bus_errstr(e->bus));
            return -1;
        }
        usleep(200 * 1000); /* the remediators drain the edge */
    }
}

/* ------------------------------------------------------------ remediate */

typedef struct {
    int64_t *mids;
    size_t n, cap;
} mid_list_t;

static int collect_mid(const mindex_record_t *rec, void *arg)
{
    mid_list_t *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->mids = util_xrealloc(l->mids, l->cap * sizeof(*l->mids));
    }
    l->mids[l->n++] = rec->mid;
    return 0;
}

/* remediate_chunk - commit the jobs of recs[from, to) of a new admin batch. */
static int remediate_chunk(cli_env_t *e, const policy_t *policy, const mindex_record_t *recs, size_t from, size_t to,
                           const char *uuid, const char *action, const char *by, const char *source, bool first,
                           size_t *jobs, size_t *messages, size_t *skipped)
{
    const config_t *cfg = e->cfg;
    char bkey[96], jkey[96], err[256];
    batch_key(bkey, sizeof(bkey), uuid, NULL);
    batch_key(jkey, sizeof(jkey), uuid, "jobs");
    int64_t now = util_now_ms();
    bus_commit_t *c = bus_commit_new(e->bus, NULL);
    if (first) {
        char ms[24];
        snprintf(ms, sizeof(ms), "%" PRId64, now);
        bus_commit_hset(c, bkey, "created_ms", ms);
        bus_commit_hset(c, bkey, "state", BATCH_INITIATED);
        bus_commit_hset(c, bkey, "reason", "admin");
        bus_commit_hset(c, bkey, "initiator", by);
        bus_commit_hset(c, bkey, "source", source);
        bus_commit_hset(c, bkey, "action", action);
        bus_commit_zadd(c, BATCH_INDEX_KEY, now, uuid);
    }
    strbuf_t line;
    strbuf_init(&line, 0);
    event_lines_t lines;
    event_lines_init(&lines, CLI_PROGRAM, LOG_LEVEL_INFO, uuid);
    size_t chunk_jobs = 0, chunk_messages = 0;
    int rc = 0;
    for (size_t i = from; i < to && rc == 0; i++) {
        const mindex_record_t *r = &recs[i];
        size_t before = chunk_jobs;
        for (size_t k = 0; k < r->n_rcpts && rc == 0; k++) {
            const char *rcpt = r->rcpts[k].address;
            const config_domains_t *m = policy_for_recipient(policy, rcpt);
            if (!m || !*m->profile) {
                fprintf(stderr, "clawback remediate: message %" PRId64 ": no [domains] mapping with a profile reaches %s; "
                        "skipped\n", r->mid, rcpt);
                (*skipped)++;
                continue;
            }
            record_job_t job;
            memset(&job, 0, sizeof(job));
            record_init(&RECORD_DESC_job, &job);
            char id[RECORD_MAX_ID + 1];
            batch_job_id(uuid, r->mid, rcpt, id);
            free(job.id);
            job.id = util_xstrdup(id);
            job.batch = (char *)uuid;
            job.mid = r->mid;
            job.message_id = r->message_id ? r->message_id : (char *)"";
            job.recipient = (char *)rcpt;
            job.action = (char *)action;
            job.profile = m->profile;
            job.subject = r->subject && strlen(r->subject) <= 4096 ? r->subject : NULL;
            job.reason = (char *)"admin";
            job.initiator = (char *)by;
            job.source = (char *)source;
            rc = bus_commit_add_record(c, "jobs", &RECORD_DESC_job, &job, err, sizeof(err));
            free(job.id);
            batch_commit_copy(c, uuid, r->mid, rcpt, BATCH_JOB_INITIATED, BATCH_CLAIM_TAKE, cfg->index_retention_ms);
            chunk_jobs++;
        }
        if (chunk_jobs > before) {
            chunk_messages++;
            strbuf_reset(&line);
            batch_line_initiated(&line, r->mid, action, by, source, uuid);
            event_lines_add(&lines, "mail_logs", r->mid, line.data);
        }
    }
    if (rc == 0)
        rc = event_lines_commit(&lines, c, err, sizeof(err));
    event_lines_release(&lines);
    if (chunk_messages)
        bus_commit_hincrby(c, bkey, "messages", (int64_t)chunk_messages);
    if (chunk_jobs)
        bus_commit_hincrby(c, bkey, "jobs", (int64_t)chunk_jobs);
    bus_commit_pexpire(c, bkey, cfg->index_retention_ms);
    bus_commit_pexpire(c, jkey, cfg->index_retention_ms);
    if (rc != 0)
        fprintf(stderr, "clawback remediate: %s\n", err);
    else
        rc = env_run(e, c);
    bus_commit_destroy(&c);
    strbuf_release(&line);
    *jobs += chunk_jobs;
    *messages += chunk_messages;
    return rc;
}

int cli_cmd_remediate(cli_t *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"action", required_argument, NULL, 'a'}, {"by", required_argument, NULL, 'b'},
        {"source", required_argument, NULL, 's'}, {"query", no_argument, NULL, 'q'},
        {"limit", required_argument, NULL, 'l'},  {NULL, 0, NULL, 0}};
    const char *action = NULL, *by = NULL, *source = CLI_DEFAULT_SOURCE;
    bool query = false;
    int64_t limit = 10000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        switch (c) {
        case 'a': action = !strcmp(optarg, "forward-delete") ? "forward_delete" : optarg; break;
        case 'b': by = optarg; break;
        case 's': source = optarg; break;
        case 'q': query = true; break;
        case 'l':
            if (util_parse_int64(optarg, &limit) != 0 || limit <= 0 || limit > CLI_MAX_MESSAGES) {
                fprintf(stderr, "clawback remediate: --limit: 1 to %d\n", CLI_MAX_MESSAGES);
                return CLI_USAGE;
            }
            break;
        default: return CLI_USAGE;
        }
    }
    if (!batch_action_valid(action) ||
        !by || !*by || strlen(by) > 128 || strlen(source) == 0 || strlen(source) > 64 || optind >= argc) {
        fprintf(stderr, "clawback remediate: needs --action delete|forward|forward-delete, --by USER (1 to 128 "
                        "characters) and MIDs or --query QUERY\n");
        return CLI_USAGE;
    }
    mid_list_t mids = {0};
    query_t q = {0};
    if (query) {
        strbuf_t text;
        strbuf_init(&text, 0);
        for (int i = optind; i < argc; i++)
            strbuf_appendf(&text, "%s%s", i > optind ? " " : "", argv[i]);
        char err[512];
        int bad = query_parse(text.data, &q, err, sizeof(err));
        if (bad)
            fprintf(stderr, "clawback remediate: %s\n  %s\n", err, text.data);
        strbuf_release(&text);
        if (bad) {
            query_clear(&q);
            return CLI_USAGE;
        }
    } else {
        for (int i = optind; i < argc; i++) {
            int64_t mid;
            if (util_parse_int64(argv[i], &mid) != 0 || mid <= 0) {
                fprintf(stderr, "clawback remediate: '%s' is not a MID (or give --query)\n", argv[i]);
                free(mids.mids);
                return CLI_USAGE;
            }
            if (mids.n < CLI_MAX_MESSAGES)
                collect_mid(&(mindex_record_t){.mid = mid}, &mids);
        }
    }
    cli_env_t e;
    if (env_open(cli, &e, "remediate") != 0) {
        query_clear(&q);
        free(mids.mids);
        return CLI_FAILURE;
    }
    char err[512];
    policy_t *policy = policy_new(e.cfg, err, sizeof(err));
    int rc = CLI_OK;
    if (!policy) {
        fprintf(stderr, "clawback remediate: %s\n", err);
        rc = CLI_FAILURE;
    }
    size_t candidates = 0;
    if (rc == CLI_OK && query && cli_search_run(e.ix, &q, (size_t)limit, collect_mid, &mids, &candidates) < 0)
        rc = CLI_FAILURE;
    mindex_record_t *recs = NULL;
    size_t nrecs = 0;
    if (rc == CLI_OK && mids.n && mindex_get_many(e.ix, mids.mids, mids.n, &recs, &nrecs) != 0) {
        fprintf(stderr, "clawback remediate: %s\n", mindex_errstr(e.ix));
        rc = CLI_FAILURE;
    }
    if (rc == CLI_OK && nrecs < mids.n)
        fprintf(stderr, "clawback remediate: %zu of the %zu messages are not in the index (expired or unknown)\n",
                mids.n - nrecs, mids.n);
    if (rc == CLI_OK && nrecs == 0) {
        fprintf(stderr, "clawback remediate: no message to remediate\n");
        rc = CLI_FAILURE;
    }
    char uuid[37];
    util_uuid(uuid);
    size_t jobs = 0, messages = 0, skipped = 0;
    for (size_t from = 0; rc == CLI_OK && from < nrecs; from += CLI_CHUNK) {
        size_t to = nrecs - from < CLI_CHUNK ? nrecs : from + CLI_CHUNK;
        if (remediate_chunk(&e, policy, recs, from, to, uuid, action, by, source, from == 0, &jobs, &messages,
                            &skipped) != 0)
            rc = CLI_FAILURE;
    }
    if (rc == CLI_OK || jobs) {
        printf("%s\n", uuid);
        fprintf(stderr, "batch %s: %zu jobs for %zu messages (%s by %s from source %s)%s\n", uuid, jobs, messages,
                batch_action_label(action), by, source, rc == CLI_OK ? "" : ": interrupted, see above");
    }
    if (rc == CLI_OK && skipped)
        fprintf(stderr, "%zu recipients skipped (no profile reaches them)\n", skipped);
    for (size_t i = 0; i < nrecs; i++)
        mindex_record_clear(&recs[i]);
    free(recs);
    free(mids.mids);
    query_clear(&q);
    policy_destroy(&policy);
    env_close(&e);
    return rc;
}

/* ------------------------------------------------------------ approve, reject */

/* held_batch_check - the batch exists, is complete and waits for approval. 0, or -1 after
 * printing why. */
static int held_batch_check(cli_env_t *e, const char *uuid)
{
    char bkey[96];
    batch_key(bkey, sizeof(bkey), uuid, NULL);
    redisReply *r = redis_conn_command(e->redis, "HMGET %s state complete", bkey);
    int rc = -1;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        fprintf(stderr, "clawback %s: %s\n", e->name, r ? "unexpected reply" : redis_conn_errstr(e->redis));
    else if (r->element[0]->type != REDIS_REPLY_STRING)
        fprintf(stderr, "clawback %s: no batch %s\n", e->name, uuid);
    else if (strcmp(r->element[0]->str, BATCH_AWAITING_APPROVAL) != 0)
        fprintf(stderr, "clawback %s: batch %s is %s, not waiting for approval\n", e->name, uuid, r->element[0]->str);
    else if (r->element[1]->type != REDIS_REPLY_STRING)
        fprintf(stderr, "clawback %s: batch %s is still being created; try again in a moment\n", e->name, uuid);
    else
        rc = 0;
    if (r)
        freeReplyObject(r);
    return rc;
}

/* decide - approve (true) or reject a held batch, CLI_CHUNK held jobs per commit. Each commit
 * moves the batch's "released" count, so a run that was interrupted goes on where it stopped,
 * and the lock (cb:batch:<uuid>:decision) keeps two operators from deciding at once. */
static int decide(cli_env_t *e, const char *uuid, const char *by, bool approve)
{
    if (held_batch_check(e, uuid) != 0)
        return CLI_FAILURE;
    char bkey[96], hkey[96], lkey[112], err[256];
    batch_key(bkey, sizeof(bkey), uuid, NULL);
    batch_key(hkey, sizeof(hkey), uuid, "held");
    batch_key(lkey, sizeof(lkey), uuid, "decision");
    char token[64];
    snprintf(token, sizeof(token), "%s:%s", approve ? "approve" : "reject", bus_instance(e->bus));
    redisReply *r = redis_conn_command(e->redis, "SET %s %s NX PX 600000", lkey, token);
    bool locked = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!locked) {
        fprintf(stderr, "clawback %s: another operator is deciding on batch %s\n", e->name, uuid);
        return CLI_FAILURE;
    }
    r = redis_conn_command(e->redis, "HGET %s released", bkey);
    long long released = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    if (r)
        freeReplyObject(r);
    const char *state = approve ? BATCH_JOB_INITIATED : BATCH_JOB_REJECTED;
    const config_t *cfg = e->cfg;
    int rc = CLI_OK;
    size_t jobs = 0;
    strbuf_t line;
    strbuf_init(&line, 0);
    event_lines_t lines;
    event_lines_init(&lines, CLI_PROGRAM, LOG_LEVEL_INFO, uuid);
    for (;;) {
        r = redis_conn_command(e->redis, "LRANGE %s %lld %lld", hkey, released, released + CLI_CHUNK - 1);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "clawback %s: %s\n", e->name, r ? "unexpected reply" : redis_conn_errstr(e->redis));
            if (r)
                freeReplyObject(r);
            rc = CLI_FAILURE;
            break;
        }
        size_t n = r->elements;
        bus_commit_t *c = bus_commit_new(e->bus, NULL);
        bus_commit_guard(c, lkey, token);
        int64_t last_mid = 0;
        for (size_t i = 0; i < n && rc == CLI_OK; i++) {
            record_job_t job;
            if (r->element[i]->type != REDIS_REPLY_STRING ||
                record_decode(&RECORD_DESC_job, r->element[i]->str, r->element[i]->len, &job, err, sizeof(err)) != 0) {
                fprintf(stderr, "clawback %s: held job %lld of batch %s is damaged; skipped\n", e->name,
                        released + (long long)i, uuid);
                continue;
            }
            batch_commit_copy(c, uuid, job.mid, job.recipient, state, approve ? BATCH_CLAIM_KEEP : BATCH_CLAIM_RELEASE,
                              cfg->index_retention_ms);
            if (approve) {
                free(job.initiator);
                job.initiator = util_xstrdup(by); /* the operator who let it go */
                if (!job.source)
                    job.source = util_xstrdup(batch_job_source(&job));
                if (bus_commit_add_record(c, "jobs", &RECORD_DESC_job, &job, err, sizeof(err)) != 0) {
                    fprintf(stderr, "clawback %s: %s\n", e->name, err);
                    rc = CLI_FAILURE;
                }
            }
            if (job.mid != last_mid) {
                last_mid = job.mid;
                strbuf_reset(&line);
                if (approve)
                    batch_line_initiated(&line, job.mid, job.action, by, batch_job_source(&job), uuid);
                else
                    strbuf_appendf(&line, "Message %" PRId64 " was not remediated: batch '%s' was rejected by '%s'.",
                                   job.mid, uuid, by);
                event_lines_add(&lines, "mail_logs", job.mid, line.data);
            }
            record_clear(&RECORD_DESC_job, &job);
            jobs++;
        }
        if (event_lines_commit(&lines, c, err, sizeof(err)) != 0) {
            fprintf(stderr, "clawback %s: %s\n", e->name, err);
            rc = CLI_FAILURE;
        }
        freeReplyObject(r);
        bus_commit_hincrby(c, bkey, "released", (int64_t)n);
        bool done = n < CLI_CHUNK;
        if (done) {
            char ms[24];
            snprintf(ms, sizeof(ms), "%" PRId64, util_now_ms());
            bus_commit_hset(c, bkey, "state", approve ? BATCH_INITIATED : BATCH_REJECTED);
            bus_commit_hset(c, bkey, approve ? "approved_by" : "rejected_by", by);
            bus_commit_hset(c, bkey, approve ? "approved_ms" : "rejected_ms", ms);
            bus_commit_pexpire(c, hkey, 1); /* the held jobs are gone */
            strbuf_reset(&line);
            strbuf_appendf(&line, "Batch '%s' %s by '%s': %lld jobs %s.", uuid, approve ? "approved" : "rejected", by,
                           released + (long long)n, approve ? "initiated" : "dropped");
            if (event_commit_add(c, CLI_PROGRAM, "ecs", LOG_LEVEL_INFO, 0, uuid, line.data, err, sizeof(err)) != 0)
                rc = CLI_FAILURE;
        }
        bus_commit_pexpire(c, bkey, cfg->index_retention_ms);
        if (rc == CLI_OK && env_run(e, c) != 0)
            rc = CLI_FAILURE;
        bus_commit_destroy(&c);
        released += (long long)n;
        if (done || rc != CLI_OK)
            break;
    }
    if (rc == CLI_OK)
        printf("batch %s %s by %s: %zu jobs %s\n", uuid, approve ? "approved" : "rejected", by, jobs,
               approve ? "initiated" : "dropped");
    r = redis_conn_command(e->redis, "EVAL %s 1 %s %s",
                           "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
                           lkey, token);
    if (r)
        freeReplyObject(r);
    strbuf_release(&line);
    event_lines_release(&lines);
    return rc;
}

static int decide_command(cli_t *cli, int argc, char **argv, bool approve)
{
    const char *name = approve ? "approve" : "reject";
    static const struct option longopts[] = {{"by", required_argument, NULL, 'b'}, {NULL, 0, NULL, 0}};
    const char *by = NULL;
    int c;
    optind = 0; /* glibc: start afresh, permuting (UUID and --by in any order) */
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c != 'b')
            return CLI_USAGE;
        by = optarg;
    }
    if (optind != argc - 1 || !batch_uuid_valid(argv[optind]) || !by || !*by || strlen(by) > 128) {
        fprintf(stderr, "clawback %s: needs a batch UUID and --by USER\n", name);
        return CLI_USAGE;
    }
    cli_env_t e;
    if (env_open(cli, &e, name) != 0)
        return CLI_FAILURE;
    int rc = decide(&e, argv[optind], by, approve);
    env_close(&e);
    return rc;
}

int cli_cmd_approve(cli_t *cli, int argc, char **argv)
{
    return decide_command(cli, argc, argv, true);
}

int cli_cmd_reject(cli_t *cli, int argc, char **argv)
{
    return decide_command(cli, argc, argv, false);
}
