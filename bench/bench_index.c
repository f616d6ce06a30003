/*
 * bench_index - index the corpus into a Redis: messages/s end to end (parse + index) and
 * bytes of Redis memory per message (growth of used_memory over the messages indexed).
 *
 *   bench_index REDIS_URL COPIES < paths
 * The messages are read into memory first; each copy indexes every message again under a
 * distinct recipient (user<copy>@bench.example), as distinct deliveries. Delivery times are
 * spread evenly over the retention window (168 hours), as in an index that has been running
 * for a week: closed partitions are compacted as the writer moves on, the newest is open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "message.h"
#include "mindex.h"
#include "redis_conn.h"
#include "util.h"

static long long used_memory(redis_conn_t *r)
{
    redisReply *rep = redis_conn_command(r, "INFO memory");
    long long v = -1;
    if (rep && rep->type == REDIS_REPLY_STRING) {
        const char *p = strstr(rep->str, "used_memory:");
        if (p)
            v = atoll(p + strlen("used_memory:"));
    }
    if (rep)
        freeReplyObject(rep);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_index REDIS_URL COPIES < paths\n");
        return 2;
    }
    int copies = atoi(argv[2]);
    char err[512];
    redis_conn_t *redis = redis_conn_new(argv[1], NULL, 10000, err, sizeof(err));
    if (!redis) {
        fprintf(stderr, "bench_index: %s\n", err);
        return 1;
    }
    size_t n = 0, cap = 0, bytes = 0;
    char **data = NULL;
    size_t *lens = NULL;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    while ((got = getline(&line, &lcap, stdin)) > 0) {
        if (line[got - 1] == '\n')
            line[got - 1] = '\0';
        char *d;
        size_t len;
        if (util_read_file(line, MESSAGE_MAX_SIZE, &d, &len, err, sizeof(err)) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            data = util_xrealloc(data, cap * sizeof(*data));
            lens = util_xrealloc(lens, cap * sizeof(*lens));
        }
        data[n] = d;
        lens[n] = len;
        bytes += len;
        n++;
    }
    free(line);
    message_library_init();
    mindex_t *ix = mindex_new(redis, NULL);
    /* the index's parameters and first keys exist before the measurement starts */
    long long before = used_memory(redis);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t indexed = 0, failed = 0;
    int64_t retention = 168LL * 3600 * 1000, now = util_now_ms();
    size_t total = (size_t)copies * n;
    for (int c = 0; c < copies; c++) {
        char rcpt[64];
        snprintf(rcpt, sizeof(rcpt), "user%d@bench.example", c);
        const char *rcpts[] = {rcpt};
        mindex_delivery_t d = {.rcpts = rcpts, .n_rcpts = 1};
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)c * n + i;
            d.time_ms = now - retention + 60000 + (int64_t)((double)(retention - 120000) * (double)k / (double)total);
            message_t msg;
            if (message_parse(data[i], lens[i], NULL, &msg, err, sizeof(err)) != 0) {
                failed++;
                continue;
            }
            if (mindex_add(ix, &msg, &d, NULL, NULL) != 0) {
                fprintf(stderr, "bench_index: %s\n", mindex_errstr(ix));
                failed++;
            } else {
                indexed++;
            }
            message_clear(&msg);
        }
    }
    if (mindex_finish(ix) != 0)
        fprintf(stderr, "bench_index: %s\n", mindex_errstr(ix));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    long long after = used_memory(redis);
    printf("index: %zu messages (%d copies of %zu, %.1f MB each), %zu failed, %.2f s: %.0f messages/s "
           "end to end (parse + index, one core)\n",
           indexed, copies, n, (double)bytes / 1e6, failed, secs, (double)indexed / secs);
    printf("index: Redis used_memory grew by %lld bytes: %.0f bytes per message\n", after - before,
           indexed ? (double)(after - before) / (double)indexed : 0.0);
    mindex_destroy(&ix);
    redis_conn_destroy(&redis);
    for (size_t i = 0; i < n; i++)
        free(data[i]);
    free(data);
    free(lens);
    return failed ? 1 : 0;
}
