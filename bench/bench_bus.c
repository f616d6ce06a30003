/*
 * bench_bus - throughput of one bus edge (commit, dispatch, consumer commit with
 * acknowledgement) next to plain ZeroMQ PUSH/PULL, with the same records, in the same run.
 *
 *   bench_bus pushpull N            N records over PUSH/PULL between two processes
 *   bench_bus edge REDIS_URL N      N records through one bus edge: a producer process
 *                                   commits and dispatches, a consumer process commits each
 *                                   record (acknowledging it); timed until the edge is empty
 *
 * Prints one line per run: "<name> <N> records in <s> s: <records/s> records/s".
 */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "program.h"
#include "util.h"

/* bench_record - a typical event record (about 150 bytes encoded). */
static void bench_record(long n, msgpack_sbuffer *buf, char *id, size_t idsize)
{
    record_event_t ev = {0};
    char message[128];
    snprintf(id, idsize, "bench-%ld", n);
    snprintf(message, sizeof(message), "MID: %ld Message deleted successfully from user%ld@example.com mailbox.", n, n);
    ev.id = id;
    ev.time_ms = util_now_ms();
    ev.program = "bench";
    ev.log = "remediation";
    ev.level = "info";
    ev.mid = n;
    ev.message = message;
    char err[128];
    if (record_encode(&RECORD_DESC_event, &ev, buf, err, sizeof(err)) < 0)
        abort();
}

static void bench_report(const char *name, long n, int64_t start_ms)
{
    double s = (double)(util_monotonic_ms() - start_ms) / 1000.0;
    printf("%-28s %ld records in %.2f s: %.0f records/s\n", name, n, s, s > 0 ? (double)n / s : 0.0);
    fflush(stdout);
}

static int bench_pushpull(long n)
{
    int port_pipe[2];
    if (pipe(port_pipe) < 0)
        return 1;
    pid_t child = fork(); /* before any ZeroMQ context exists in this process */
    if (child == 0) {
        int port;
        if (read(port_pipe[0], &port, sizeof(port)) != (ssize_t)sizeof(port))
            _exit(1);
        char endpoint[64];
        snprintf(endpoint, sizeof(endpoint), ">tcp://127.0.0.1:%d", port);
        zsock_t *pull = zsock_new_pull(endpoint);
        for (long i = 0; pull && i < n; i++) {
            zframe_t *f = zframe_recv(pull);
            if (!f)
                _exit(1);
            zframe_destroy(&f);
        }
        zsock_destroy(&pull);
        _exit(0);
    }
    zsock_t *push = zsock_new(ZMQ_PUSH);
    int port = zsock_bind(push, "tcp://127.0.0.1:*");
    if (port < 0 || write(port_pipe[1], &port, sizeof(port)) != (ssize_t)sizeof(port))
        return 1;
    int64_t start = util_monotonic_ms();
    for (long i = 0; i < n; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        char id[32];
        bench_record(i, &buf, id, sizeof(id));
        zframe_t *f = zframe_new(buf.data, buf.size);
        zframe_send(&f, push, 0);
        msgpack_sbuffer_destroy(&buf);
    }
    int status;
    waitpid(child, &status, 0);
    bench_report("zmq PUSH/PULL (no acks)", n, start);
    zsock_destroy(&push);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

typedef struct {
    bus_t *bus;
    long n, produced;
} bench_producer_t;

static int bench_produce_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    bench_producer_t *p = arg;
    for (int i = 0; i < 500 && p->produced < p->n; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        char id[32];
        bench_record(p->produced, &buf, id, sizeof(id));
        bus_commit_t *c = bus_commit_new(p->bus, NULL);
        bus_commit_add(c, "bench", id, buf.data, buf.size);
        if (bus_commit_run(c) == BUS_OK)
            p->produced++;
        bus_commit_destroy(&c);
        msgpack_sbuffer_destroy(&buf);
    }
    return 0;
}

typedef struct {
    redis_conn_t *redis;
    long n;
    int64_t start;
} bench_watch_t;

static int bench_watch_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    bench_watch_t *w = arg;
    redisReply *r = redis_conn_command(w->redis, "HGET cb:bus:stats bench.committed");
    long committed = r && r->type == REDIS_REPLY_STRING ? atol(r->str) : 0;
    if (r)
        freeReplyObject(r);
    return committed >= w->n ? -1 : 0;
}

static int bench_consume(bus_t *bus, const bus_delivery_t *d, void *arg)
{
    (void)arg;
    bus_commit_t *c = bus_commit_new(bus, d); /* a consumer's commit: no output, acknowledges */
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    return st == BUS_OK || st == BUS_DUPLICATE ? 0 : -1;
}

static int bench_edge(const char *url, long n)
{
    program_options_t opts = {.redis_url = url};
    char err[256];
    config_t *cfg = program_load_config(&opts, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "bench_bus: %s\n", err);
        return 1;
    }
    config_set(cfg, "bus", "heartbeat", "50ms", err, sizeof(err));
    config_set(cfg, "bus", "max_waiting", "100000000", err, sizeof(err));
    log_open("bench_bus", LOG_LEVEL_WARNING, "-", "");
    pid_t child = fork();
    if (child == 0) {
        zsys_handler_set(NULL);
        redis_conn_t *redis = program_redis(cfg, err, sizeof(err));
        zloop_t *loop = zloop_new();
        bus_t *bus = bus_new(cfg, redis, loop, "bench-consumer", err, sizeof(err));
        bus_consume(bus, "bench", bench_consume, NULL);
        bench_watch_t w = {redis, n, 0};
        zloop_timer(loop, 20, 0, bench_watch_tick, &w);
        zloop_start(loop);
        bus_destroy(&bus);
        zloop_destroy(&loop);
        redis_conn_destroy(&redis);
        _exit(0);
    }
    redis_conn_t *redis = program_redis(cfg, err, sizeof(err));
    zloop_t *loop = zloop_new();
    bus_t *bus = bus_new(cfg, redis, loop, "bench-producer", err, sizeof(err));
    bus_produce(bus, "bench");
    bench_producer_t p = {bus, n, 0};
    int64_t start = util_monotonic_ms();
    zloop_timer(loop, 1, 0, bench_produce_tick, &p);
    bench_watch_t w = {redis, n, start};
    zloop_timer(loop, 20, 0, bench_watch_tick, &w);
    zloop_start(loop);
    bench_report("bus edge (commit+dispatch+ack)", n, start);
    int status;
    waitpid(child, &status, 0);
    bus_destroy(&bus);
    zloop_destroy(&loop);
    redis_conn_destroy(&redis);
    config_destroy(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "pushpull") == 0)
        return bench_pushpull(atol(argv[2]));
    if (argc == 4 && strcmp(argv[1], "edge") == 0)
        return bench_edge(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: bench_bus pushpull N | bench_bus edge REDIS_URL N\n");
    return 2;
}
