/*
 * daemon.h - the one skeleton every Clawback daemon runs on.
 *
 * A daemon's main() fills a daemon_spec_t and calls daemon_main(). The skeleton owns, in
 * this order: options (-c FILE, --redis URL, --log-level LEVEL, --help, --version), the
 * configuration (the file given, else /etc/clawback/clawback.conf if present, else the
 * embedded defaults; a bad file refuses to start), logging, signals, the Redis connection
 * (waited for, not fatal, when Redis is not up yet; not waited for when redis_optional), the
 * bus (the daemon dispatches every edge it produces and consumes every edge it consumes, per
 * topology.h), then the daemon's
 * start callback and the event loop (czmq zloop) with its timers.
 *
 * Signals: SIGTERM and SIGINT stop gracefully: the loop ends, the daemon's stop callback
 * runs (finish or hand back in-flight work), the bus hands back what it holds and withdraws
 * its announcements. SIGHUP reopens the log files. Handlers only go through a signalfd the
 * loop watches; nothing runs in signal context.
 *
 * Exit status: 0 after a clean stop, 1 on a failure, 2 on bad usage.
 */
#ifndef CLAWBACK_DAEMON_H
#define CLAWBACK_DAEMON_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "config.h"
#include "redis_conn.h"

typedef struct daemon daemon_t;

typedef struct {
    const char *edge;       /* an edge the program consumes (topology.h) */
    bus_handler_fn handler; /* its handler; arg is the daemon's state */
} daemon_input_t;

typedef struct {
    const char *program; /* e.g. "clawback-poller": must match topology.h */
    const char *summary; /* one line for --help */
    /* start - after everything is up; register timers here. 0, or -1 to refuse to start. */
    int (*start)(daemon_t *daemon, void *state);
    /* stop - graceful stop, before the bus hands back what it holds. May be NULL. */
    void (*stop)(daemon_t *daemon, void *state);
    /* reopen - SIGHUP, after the skeleton reopened its own log files (logrotate). May be NULL. */
    void (*reopen)(daemon_t *daemon, void *state);
    const daemon_input_t *inputs;
    size_t ninputs;
    /* redis_optional - start without waiting for Redis (clawback-milter must answer the MTA
     * whether Redis is up or not; it keeps its own connection and retries). */
    bool redis_optional;
} daemon_spec_t;

/* daemon_main - run a daemon; returns the exit status for main() to return. */
int daemon_main(int argc, char **argv, const daemon_spec_t *spec, void *state);

/* Accessors for callbacks; the objects are owned by the skeleton. */
const config_t *daemon_config(daemon_t *daemon);
redis_conn_t *daemon_redis(daemon_t *daemon);
bus_t *daemon_bus(daemon_t *daemon);
zloop_t *daemon_loop(daemon_t *daemon);

typedef int (*daemon_timer_fn)(daemon_t *daemon, void *arg);
/* daemon_add_timer - call fn(arg) every interval_ms; -1 from fn stops the daemon. Returns
 * the timer id or -1. */
int daemon_add_timer(daemon_t *daemon, int64_t interval_ms, daemon_timer_fn fn, void *arg);
/* daemon_request_stop - stop gracefully after the current callback. */
void daemon_request_stop(daemon_t *daemon);

/* daemon_decode - decode a delivery as a record of type desc into record; on failure the
 * delivery is set aside with the reason and -1 is returned (the handler returns 0 then: if the
 * set-aside itself failed, the bus knows and retries the delivery instead of acknowledging). */
int daemon_decode(bus_t *bus, const bus_delivery_t *delivery, const record_desc_t *desc, void *record);

#endif
