/*
 * cmd_queues.c - `clawback queues`: the depth and counters of every bus edge.
 */
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "cli.h"
#include "strbuf.h"
#include "topology.h"

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
    strbuf_appends(&out, "]\n");
    if (json && rc == CLI_OK)
        fputs(out.data, stdout);
    strbuf_release(&out);
    redis_conn_destroy(&redis);
    return rc;
}
