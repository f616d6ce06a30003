/*
 * daemon.c - the daemon skeleton: options, config, logging, signals, Redis, bus, loop; see
 * daemon.h for the order and the contract.
 */
#include "daemon.h"

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "program.h"
#include "topology.h"
#include "util.h"

struct daemon {
    const daemon_spec_t *spec;
    void *state;
    config_t *cfg;
    redis_conn_t *redis;
    bus_t *bus;
    zloop_t *loop;
    int signal_fd;
    zlistx_t *timers; /* daemon_timer_t*, owned */
    bool stop_requested;
};

typedef struct {
    daemon_t *daemon;
    daemon_timer_fn fn;
    void *arg;
} daemon_timer_t;

const config_t *daemon_config(daemon_t *d)
{
    return d->cfg;
}

redis_conn_t *daemon_redis(daemon_t *d)
{
    return d->redis;
}

bus_t *daemon_bus(daemon_t *d)
{
    return d->bus;
}

zloop_t *daemon_loop(daemon_t *d)
{
    return d->loop;
}

void daemon_request_stop(daemon_t *d)
{
    d->stop_requested = true;
}

/* daemon_timer_destroy - zlistx destructor of a timer record. */
static void daemon_timer_destroy(void **item)
{
    free(*item);
    *item = NULL;
}

/* daemon_on_timer - run a daemon timer callback; -1 ends the loop. */
static int daemon_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    daemon_timer_t *t = arg;
    if (t->fn(t->daemon, t->arg) < 0)
        t->daemon->stop_requested = true;
    return t->daemon->stop_requested ? -1 : 0;
}

int daemon_add_timer(daemon_t *d, int64_t interval_ms, daemon_timer_fn fn, void *arg)
{
    daemon_timer_t *t = util_xcalloc(1, sizeof(*t)); /* freed with the daemon */
    t->daemon = d;
    t->fn = fn;
    t->arg = arg;
    int id = zloop_timer(d->loop, (size_t)interval_ms, 0, daemon_on_timer, t);
    if (id < 0) {
        free(t);
        return -1;
    }
    zlistx_add_end(d->timers, t);
    return id;
}

int daemon_decode(bus_t *bus, const bus_delivery_t *delivery, const record_desc_t *desc, void *record)
{
    char err[256];
    if (record_decode(desc, delivery->payload, delivery->len, record, err, sizeof(err)) == 0)
        return 0;
    bus_set_aside(bus, delivery, err);
    return -1;
}

/* daemon_on_signal - SIGTERM/SIGINT end the loop; SIGHUP reopens the logs. */
static int daemon_on_signal(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    daemon_t *d = arg;
    struct signalfd_siginfo info;
    while (read(d->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
        if (info.ssi_signo == SIGHUP) {
            if (log_reopen() < 0)
                log_warning("%s: cannot reopen the log files: %s", d->spec->program, strerror(errno));
            else
                log_info("%s: log files reopened", d->spec->program);
            if (d->spec->reopen)
                d->spec->reopen(d, d->state);
        } else {
            log_info("%s: signal %u received, stopping", d->spec->program, info.ssi_signo);
            d->stop_requested = true;
        }
    }
    return d->stop_requested ? -1 : 0;
}

static void daemon_usage(const daemon_spec_t *spec, FILE *out)
{
    fprintf(out,
            "usage: %s [-c FILE] [--redis URL] [--log-level LEVEL]\n"
            "%s\n\n"
            "  -c, --config FILE     configuration file (default %s if present)\n"
            "      --redis URL       Redis server, overrides [redis] url\n"
            "      --log-level LEVEL critical, warning, info, debug or trace\n"
            "  -h, --help            this text\n"
            "  -V, --version         print the version\n",
            spec->program, spec->summary, CONFIG_DEFAULT_PATH);
}

/* daemon_parse_options - 0 to run, 1 to exit 0 (help/version), 2 on bad usage. */
static int daemon_parse_options(int argc, char **argv, const daemon_spec_t *spec, program_options_t *opts)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                              {"redis", required_argument, NULL, 'r'},
                                              {"log-level", required_argument, NULL, 'l'},
                                              {"help", no_argument, NULL, 'h'},
                                              {"version", no_argument, NULL, 'V'},
                                              {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': opts->config_path = optarg; break;
        case 'r': opts->redis_url = optarg; break;
        case 'l': opts->log_level = optarg; break;
        case 'h': daemon_usage(spec, stdout); return 1;
        case 'V': printf("%s %s\n", spec->program, CLAWBACK_VERSION); return 1;
        default: daemon_usage(spec, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", spec->program, argv[optind]);
        daemon_usage(spec, stderr);
        return 2;
    }
    return 0;
}

/* daemon_wait_for_redis - PING until Redis answers or a stop signal arrives; 0 or -1. */
static int daemon_wait_for_redis(daemon_t *d, const sigset_t *signals)
{
    for (int attempt = 0;; attempt++) {
        redisReply *r = redis_conn_command(d->redis, "PING");
        if (r) {
            freeReplyObject(r);
            if (attempt)
                log_info("%s: Redis %s is up", d->spec->program, redis_conn_describe(d->redis));
            return 0;
        }
        if (attempt % 10 == 0)
            log_warning("%s: waiting for Redis: %s", d->spec->program, redis_conn_errstr(d->redis));
        struct timespec wait = {1, 0};
        int sig = sigtimedwait(signals, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("%s: signal %d received while waiting for Redis, stopping", d->spec->program, sig);
            return -1;
        }
    }
}

/* daemon_join_bus - produce and consume the edges topology.h gives this program. */
static int daemon_join_bus(daemon_t *d)
{
    size_t n;
    const topology_edge_t *edges = topology_edges(&n);
    for (size_t i = 0; i < n; i++) {
        if (topology_produces(&edges[i], d->spec->program) && bus_produce(d->bus, edges[i].edge) < 0) {
            log_critical("%s: cannot dispatch %s: %s", d->spec->program, edges[i].edge, bus_errstr(d->bus));
            return -1;
        }
        if (!topology_consumes(&edges[i], d->spec->program))
            continue;
        const daemon_input_t *input = NULL;
        for (size_t j = 0; j < d->spec->ninputs; j++)
            if (strcmp(d->spec->inputs[j].edge, edges[i].edge) == 0)
                input = &d->spec->inputs[j];
        if (!input) {
            log_critical("%s: no handler for the %s edge it consumes", d->spec->program, edges[i].edge);
            return -1;
        }
        if (bus_consume(d->bus, edges[i].edge, input->handler, d->state) < 0) {
            log_critical("%s: cannot consume %s: %s", d->spec->program, edges[i].edge, bus_errstr(d->bus));
            return -1;
        }
    }
    return 0;
}

int daemon_main(int argc, char **argv, const daemon_spec_t *spec, void *state)
{
    daemon_t d = {.spec = spec, .state = state, .signal_fd = -1};
    program_options_t opts = {0};
    int rc = daemon_parse_options(argc, argv, spec, &opts);
    if (rc)
        return rc == 1 ? 0 : 2;

    char err[512];
    d.cfg = program_load_config(&opts, err, sizeof(err));
    if (!d.cfg) {
        fprintf(stderr, "%s: %s\n", spec->program, err);
        return 1;
    }
    if (log_open(spec->program, d.cfg->log_level, d.cfg->log_file, d.cfg->log_json_file) < 0) {
        fprintf(stderr, "%s: cannot open log %s: %s\n", spec->program, d.cfg->log_file, strerror(errno));
        config_destroy(&d.cfg);
        return 1;
    }

    /* signals go through a signalfd the loop watches; czmq's own handler is not used */
    zsys_handler_set(NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    sigprocmask(SIG_BLOCK, &signals, NULL);

    rc = 1;
    d.timers = zlistx_new();
    zlistx_set_destructor(d.timers, daemon_timer_destroy);
    d.redis = program_redis(d.cfg, err, sizeof(err));
    if (!d.redis) {
        log_critical("%s: %s", spec->program, err);
        goto out;
    }
    log_info("%s %s starting (config %s, redis %s)", spec->program, CLAWBACK_VERSION,
             d.cfg->path ? d.cfg->path : "embedded defaults", redis_conn_describe(d.redis));
    if (!spec->redis_optional && daemon_wait_for_redis(&d, &signals) < 0) {
        rc = 0;
        goto out;
    }
    d.signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    d.loop = zloop_new();
    if (d.signal_fd < 0 || !d.loop) {
        log_critical("%s: cannot set up the event loop", spec->program);
        goto out;
    }
    zmq_pollitem_t item = {NULL, d.signal_fd, ZMQ_POLLIN, 0};
    zloop_poller(d.loop, &item, daemon_on_signal, &d);
    d.bus = bus_new(d.cfg, d.redis, d.loop, spec->program, err, sizeof(err));
    if (!d.bus) {
        log_critical("%s: %s", spec->program, err);
        goto out;
    }
    if (daemon_join_bus(&d) < 0)
        goto out;
    if (spec->start && spec->start(&d, state) < 0) {
        log_critical("%s: start-up failed", spec->program);
        goto out;
    }
    log_info("%s: started as %s", spec->program, bus_instance(d.bus));
    while (!d.stop_requested) {
        if (zloop_start(d.loop) != 0 || d.stop_requested)
            break;
    }
    if (spec->stop)
        spec->stop(&d, state);
    bus_stop(d.bus);
    log_info("%s: stopped", spec->program);
    rc = 0;
out:
    bus_destroy(&d.bus);
    zloop_destroy(&d.loop);
    zlistx_destroy(&d.timers);
    if (d.signal_fd >= 0)
        close(d.signal_fd);
    redis_conn_destroy(&d.redis);
    config_destroy(&d.cfg);
    log_close();
    return rc;
}
