/*
 * cmd_ingest.c - `clawback ingest [--rcpt ADDR]... [--time MS] [--json] PATH...`: index messages
 * as delivered now (or at --time, epoch milliseconds within the retention: a backfill).
 *
 * A PATH is an RFC 5322 file, a maildir, a directory of files or an mbox (common/mailsource).
 * Recipients come from --rcpt, else from the message's delivery headers (Delivered-To,
 * X-Original-To, Envelope-To), else its To and Cc (common/ingest.c, shared with clawback-milter). A message that cannot be parsed, or has no
 * recipient, is reported and skipped; a Redis failure stops the run (exit 1) with the reason.
 * On a terminal, a progress line on standard error; at the end a one-line summary on
 * standard output (indexed, failed, seconds), or the same as JSON with --json.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ingest.h"
#include "mailsource.h"
#include "message.h"
#include "mindex.h"
#include "util.h"

#define INGEST_MAX_RCPTS 256

typedef struct {
    mindex_t *index;
    message_context_t ctx;
    const char *rcpts[INGEST_MAX_RCPTS];
    size_t n_rcpts;
    int64_t time_ms; /* delivery time; 0: now */
    size_t indexed, failed;
    bool progress;
    int64_t started_ms, last_progress_ms;
    bool redis_failed;
} ingest_t;

static void ingest_progress(ingest_t *in, bool final)
{
    if (!in->progress)
        return;
    int64_t now = util_monotonic_ms();
    if (!final && now - in->last_progress_ms < 200)
        return;
    in->last_progress_ms = now;
    double secs = (double)(now - in->started_ms) / 1000.0;
    fprintf(stderr, "\r\033[Kclawback ingest: %zu indexed, %zu failed, %.0f messages/s", in->indexed, in->failed,
            secs > 0 ? (double)in->indexed / secs : 0.0);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

static void ingest_skip(void *arg, const char *origin, const char *reason)
{
    ingest_t *in = arg;
    in->failed++;
    if (in->progress)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "clawback ingest: %s: %s (skipped)\n", origin, reason);
}

/* ingest_walk_error - a file the walk skipped (its reason already names it). */
static void ingest_walk_error(void *arg, const char *origin, const char *reason)
{
    ingest_t *in = arg;
    (void)origin;
    in->failed++;
    if (in->progress)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "clawback ingest: %s (skipped)\n", reason);
}

static int ingest_one(void *arg, const char *origin, const char *data, size_t len)
{
    ingest_t *in = arg;
    message_t msg;
    char err[512];
    if (ingest_parse(data, len, &in->ctx, &msg, err, sizeof(err)) != INGEST_OK) {
        ingest_skip(in, origin, err);
        return 0;
    }
    mindex_delivery_t d = {.rcpts = in->rcpts, .n_rcpts = in->n_rcpts, .time_ms = in->time_ms};
    ingest_status_t rc = ingest_add(in->index, &msg, &d, NULL, err, sizeof(err));
    message_clear(&msg);
    if (rc == INGEST_SKIPPED) {
        ingest_skip(in, origin, err);
        return 0;
    }
    if (rc != INGEST_OK) {
        in->redis_failed = true;
        return 1; /* stop the walk: Redis is not taking writes */
    }
    in->indexed++;
    ingest_progress(in, false);
    return 0;
}

int cli_cmd_ingest(cli_t *cli, int argc, char **argv)
{
    static const struct option longopts[] = {{"rcpt", required_argument, NULL, 'r'},
                                              {"json", no_argument, NULL, 'j'},
                                              {"time", required_argument, NULL, 't'},
                                              {NULL, 0, NULL, 0}};
    ingest_t in;
    memset(&in, 0, sizeof(in));
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (in.n_rcpts >= INGEST_MAX_RCPTS || !strchr(optarg, '@')) {
                fprintf(stderr, "clawback ingest: bad or too many --rcpt '%s'\n", optarg);
                return CLI_USAGE;
            }
            in.rcpts[in.n_rcpts++] = optarg;
            break;
        case 'j': json = true; break;
        case 't':
            if (util_parse_int64(optarg, &in.time_ms) != 0 || in.time_ms <= 0) {
                fprintf(stderr, "clawback ingest: bad --time '%s' (epoch milliseconds)\n", optarg);
                return CLI_USAGE;
            }
            break;
        default: return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return CLI_USAGE;
    config_t *cfg = cli_config(cli);
    if (!cfg)
        return CLI_FAILURE;
    message_net_t trusted[MESSAGE_MAX_TRUSTED];
    size_t n_trusted = 0;
    char err[512];
    if (message_nets_parse(cfg->index_trusted_relays, trusted, MESSAGE_MAX_TRUSTED, &n_trusted, err,
                           sizeof(err)) != 0) {
        fprintf(stderr, "clawback: [index] trusted_relays: %s\n", err);
        config_destroy(&cfg);
        return CLI_FAILURE;
    }
    in.ctx.trusted = trusted;
    in.ctx.n_trusted = n_trusted;
    redis_conn_t *redis = program_redis(cfg, err, sizeof(err));
    if (!redis) {
        fprintf(stderr, "clawback ingest: %s\n", err);
        config_destroy(&cfg);
        return CLI_FAILURE;
    }
    in.index = program_index(cfg, redis);
    in.progress = !json && isatty(STDERR_FILENO);
    in.started_ms = util_monotonic_ms();
    message_library_init();

    int rc = CLI_OK;
    for (int i = optind; i < argc && !in.redis_failed; i++) {
        mailsource_stats_t stats = {0};
        /* an mbox may be any size (it is mapped, not read); each message is bounded */
        if (mailsource_walk(argv[i], (size_t)1 << 46, MESSAGE_MAX_SIZE, ingest_one, ingest_walk_error, &in, &stats,
                            err, sizeof(err)) < 0) {
            fprintf(stderr, "clawback ingest: %s\n", err);
            in.failed++;
        }
    }
    if (!in.redis_failed && mindex_finish(in.index) != 0)
        in.redis_failed = true;
    if (in.redis_failed) {
        fprintf(stderr, "clawback ingest: %s; stopped\n", mindex_errstr(in.index));
        rc = CLI_FAILURE;
    }
    ingest_progress(&in, true);
    double secs = (double)(util_monotonic_ms() - in.started_ms) / 1000.0;
    if (json)
        printf("{\"indexed\":%zu,\"failed\":%zu,\"seconds\":%.3f,\"stopped\":%s}\n", in.indexed, in.failed, secs,
               in.redis_failed ? "true" : "false");
    else
        printf("indexed %zu, failed %zu, %.1f seconds\n", in.indexed, in.failed, secs);
    mindex_destroy(&in.index);
    redis_conn_destroy(&redis);
    config_destroy(&cfg);
    return rc;
}
