/*
 * clawback-remediator - performs remediation jobs (Delete, Forward, Forward and Delete) in
 * users' mailboxes and reports each outcome.
 *
 * This version joins the bus and validates each job; the mailbox back-ends come with the
 * remediator issue. Until then a valid job is set aside (kept in cb:bus:jobs:dead), never
 * silently acknowledged.
 */
#include "daemon.h"
#include "log.h"

/* remediator_on_job - handle one job record. */
static int remediator_on_job(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    (void)state;
    record_job_t job;
    if (daemon_decode(bus, delivery, &RECORD_DESC_job, &job) < 0)
        return 0;
    log_warning("remediator: job %s (MID %lld, %s for %s): mailbox actions not implemented yet, set aside", job.id,
                (long long)job.mid, job.action, job.recipient);
    record_clear(&RECORD_DESC_job, &job);
    return bus_set_aside(bus, delivery, "remediator back-ends not implemented yet");
}

int main(int argc, char **argv)
{
    static const daemon_input_t inputs[] = {{"jobs", remediator_on_job}};
    static const daemon_spec_t spec = {
        .program = "clawback-remediator",
        .summary = "Deletes or forwards remediated messages in users' mailboxes.",
        .inputs = inputs,
        .ninputs = 1,
    };
    return daemon_main(argc, argv, &spec, NULL);
}
