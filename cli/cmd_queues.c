/*
 * cmd_queues.c - `clawback queues`: the depth and counters of every bus edge, then the spool
 * backlog each clawback-milter publishes (MILTER_STATUS_KEY; its spool_dir/status file shows
 * the same when Redis is down).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cli.h"
#include "indexer.h" /* MILTER_STATUS_KEY: clawback-milter's, defined once */
#include "strbuf.h"
#include "topology.h"
#include "util.h"

/* queues_milters - each milter's published backlog: a table, or JSON objects appended to out
 * ({"milter": INSTANCE, "depth": N, ...}). */
static int queues_milters(redis_conn_t *redis, int json, strbuf_t *out)
{
    redisReply *r = redis_conn_command(redis, "HGETALL %s", MILTER_STATUS_KEY);
    if (!r) {
        fprintf(stderr, "clawback: queues: %s\n", redis_conn_errstr(redis));
        return CLI_FAILURE;
    }
    if (!json && r->type == REDIS_REPLY_ARRAY && r->elements)
        printf("\n%-20s %9s %12s %10s %6s %5s %12s\n", "MILTER", "SPOOLED", "OLDEST_AGE", "INDEXED", "BAD", "REDIS",
               "STATUS_AGE");
    int64_t now = util_now_ms();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const char *instance = r->element[i]->str, *text = r->element[i + 1]->str;
        if (!instance || !text)
            continue;
        long long depth = 0, age = 0, indexed = 0, bad = 0, updated = 0;
        char redis_state[8] = "?";
        const char *p;
        if ((p = strstr(text, " depth=")))
            depth = atoll(p + 7);
        if ((p = strstr(text, " oldest_age_ms=")))
            age = atoll(p + 15);
        if ((p = strstr(text, " indexed=")))
            indexed = atoll(p + 9);
        if ((p = strstr(text, " bad=")))
            bad = atoll(p + 5);
        if ((p = strstr(text, " updated_ms=")))
            updated = atoll(p + 12);
        if ((p = strstr(text, " redis=")))
            sscanf(p + 7, "%7[a-z]", redis_state);
        if (json) {
            strbuf_appends(out, ",{\"milter\":");
            strbuf_append_json_string(out, instance, strlen(instance));
            strbuf_appendf(out,
                           ",\"depth\":%lld,\"oldest_age_ms\":%lld,\"indexed\":%lld,\"bad\":%lld,\"redis\":\"%s\","
                           "\"status_age_ms\":%lld}",
                           depth, age, indexed, bad, redis_state, (long long)(now - updated));
        } else {
            printf("%-20s %9lld %10.1fs %10lld %6lld %5s %10.1fs\n", instance, depth, (double)age / 1000.0, indexed,
                   bad, redis_state, (double)(now - updated) / 1000.0);
        }
    }
    freeReplyObject(r);
    return CLI_OK;
}

int cli_cmd_queues(cli_t *cli, int argc, char **argv)
{
    int json = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--edge") == 0 && i + 1 < argc)
            only = argv[++i];
        else
            return CLI_USAGE;
    }
    redis_conn_t *redis = cli_connect(cli);
    if (!redis)
        return CLI_FAILURE;
    size_t n;
    const topology_edge_t *edges = topology_edges(&n);
    const char *names[64];
    size_t count = 0;
    if (only)
        names[count++] = only;
    else
        for (size_t i = 0; i < n; i++)
            names[count++] = edges[i].edge;

    int rc = CLI_OK;
    if (!json)
        printf("%-10s %9s %9s %12s %5s %5s %7s %10s %6s %7s %9s %9s\n", "EDGE", "WAITING", "INFLIGHT", "OLDEST_AGE",
               "DISP", "CONS", "DEAD", "COMMITTED", "DUPS", "REDISP", "MALFORMED", "OVERSIZED");
    strbuf_t out;
    strbuf_init(&out, 0);
    strbuf_appends(&out, "[");
    for (size_t i = 0; i < count; i++) {
        bus_edge_stats_t s;
        if (bus_edge_stats(redis, names[i], &s) < 0) {
            fprintf(stderr, "clawback: queues: %s\n", redis_conn_errstr(redis));
            rc = CLI_FAILURE;
            break;
        }
        if (json) {
            strbuf_appendf(&out,
                           "%s{\"edge\":\"%s\",\"waiting\":%lld,\"in_flight\":%lld,\"oldest_age_ms\":%lld,"
                           "\"dispatchers\":%lld,\"consumers\":%lld,\"dead\":%lld,\"committed\":%lld,"
                           "\"duplicates\":%lld,\"redispatched\":%lld,\"malformed_frames\":%lld,"
                           "\"oversized_frames\":%lld}",
                           i ? "," : "", names[i], (long long)s.waiting, (long long)s.in_flight,
                           (long long)s.oldest_age_ms, (long long)s.dispatchers, (long long)s.consumers,
                           (long long)s.dead, (long long)s.committed, (long long)s.duplicates,
                           (long long)s.redispatched, (long long)s.malformed_frames, (long long)s.oversized_frames);
        } else {
            printf("%-10s %9lld %9lld %10.1fs %5lld %5lld %7lld %10lld %6lld %7lld %9lld %9lld\n", names[i],
                   (long long)s.waiting, (long long)s.in_flight, (double)s.oldest_age_ms / 1000.0,
                   (long long)s.dispatchers, (long long)s.consumers, (long long)s.dead, (long long)s.committed,
                   (long long)s.duplicates, (long long)s.redispatched, (long long)s.malformed_frames,
                   (long long)s.oversized_frames);
        }
    }
    if (!only && rc == CLI_OK)
        rc = queues_milters(redis, json, &out);
    strbuf_appends(&out, "]\n");
    if (json && rc == CLI_OK)
        fputs(out.data, stdout);
    strbuf_release(&out);
    redis_conn_destroy(&redis);
    return rc;
}
