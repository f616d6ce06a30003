/*
 * remediate.h - the remediator's core: jobs in, mailbox actions by worker threads, results out.
 *
 * The main thread (the daemon's loop) hands each job to remediate_submit, which keeps the bus
 * delivery (bus_delivery_keep: it stays claimed, nobody else gets it) and queues a task.
 * Worker threads ([remediator] workers) take tasks whose mailbox has room (at most
 * mailbox_concurrency jobs at once per mailbox: 1 for IMAP, one connection per mailbox) and
 * whose retry time has come, and run the job through its profile chain (backend.h): the first
 * profile that finds the message acts. Forward comes before delete, and delete only after the
 * forward succeeded; a forward is recorded in Redis (cb:copies "<mid> forwarded:<rcpt>" = job
 * id) as soon as the server accepted it, so a job redelivered after a crash does not forward
 * twice. A finished task goes back to the main thread, which commits its result record
 * (consuming the job) or, for a temporary failure, queues it again after a capped exponential
 * backoff (or the server's Retry-After) until [remediator] give_up_after.
 *
 * Ownership: remediate_t is owned by the remediator's main(); it owns the back-ends (one per
 * [profile]), the workers, their Redis connections and every queued task with its kept
 * delivery. The bus, the loop and the configuration are borrowed.
 */
#ifndef CLAWBACK_REMEDIATOR_REMEDIATE_H
#define CLAWBACK_REMEDIATOR_REMEDIATE_H

#include <czmq.h>
#include <stdint.h>

#include "backend.h"
#include "bus.h"
#include "config.h"

#define REMEDIATE_PROGRAM "clawback-remediator"

typedef struct remediate remediate_t;

/* remediate_new - open every [profile]'s back-end and start the workers; the loop gets a
 * reader for finished tasks and a timer for retried commits. NULL with a reason in err. */
remediate_t *remediate_new(const config_t *cfg, bus_t *bus, zloop_t *loop, char *err, size_t errsize);
/* remediate_stop - stop taking tasks: wait for the ones in a worker (bounded by the profiles'
 * timeouts), commit what finished, hand the queued ones back to the bus. */
void remediate_stop(remediate_t *self);
/* remediate_destroy - stop (when not yet) and free; accepts NULL, clears the pointer. */
void remediate_destroy(remediate_t **self);

/* remediate_on_job - the bus handler of the jobs edge (arg: the remediate_t). */
int remediate_on_job(bus_t *bus, const bus_delivery_t *delivery, void *arg);

/* Figures for operators (and tests). */
typedef struct {
    int64_t queued, running, waiting_retry; /* tasks now */
    int64_t remediated, not_found, failed, retries;
} remediate_stats_t;
void remediate_stats(remediate_t *self, remediate_stats_t *out);

#endif
