/*
 * clawback-remediator - performs remediation jobs (Delete, Forward, Forward and Delete) in
 * users' mailboxes and reports each outcome as a result record (to the logger).
 *
 * The work is in remediate.c (workers, profile chains, retries) and the mailbox back-ends
 * (backend.h: imap.c, graph.c); this file joins them to the daemon skeleton.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "remediate.h"

typedef struct {
    remediate_t *core; /* owned; created once the bus is up */
} remediator_t;

static int remediator_on_job(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    remediator_t *self = state;
    if (!self->core)
        return -1;
    return remediate_on_job(bus, delivery, self->core);
}

static int remediator_start(daemon_t *daemon, void *state)
{
    remediator_t *self = state;
    char err[512];
    srandom((unsigned)(time(NULL) ^ getpid())); /* backoff jitter */
    self->core = remediate_new(daemon_config(daemon), daemon_bus(daemon), daemon_loop(daemon), err, sizeof(err));
    if (!self->core) {
        log_critical("remediator: %s", err);
        return -1;
    }
    return 0;
}

static void remediator_stop(daemon_t *daemon, void *state)
{
    (void)daemon;
    remediator_t *self = state;
    remediate_destroy(&self->core); /* finishes or hands back its jobs while the bus is up */
}

int main(int argc, char **argv)
{
    static const daemon_input_t inputs[] = {{"jobs", remediator_on_job}};
    static const daemon_spec_t spec = {
        .program = REMEDIATE_PROGRAM,
        .summary = "Deletes or forwards remediated messages in users' mailboxes.",
        .start = remediator_start,
        .stop = remediator_stop,
        .inputs = inputs,
        .ninputs = 1,
    };
    remediator_t self = {0};
    return daemon_main(argc, argv, &spec, &self);
}
