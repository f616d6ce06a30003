/*
 * clawback-enricher - turns a verdict into remediation jobs for the delivered messages that
 * carry its URL (and share their subject).
 *
 * This version joins the bus and validates each verdict; the matching against the index
 * comes with the enricher issue. Until then a valid verdict is set aside (kept in
 * cb:bus:verdicts:dead, visible in `clawback queues`), never silently acknowledged.
 */
#include "daemon.h"
#include "log.h"

/* enricher_on_verdict - handle one verdict record. */
static int enricher_on_verdict(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    (void)state;
    record_verdict_t verdict;
    if (daemon_decode(bus, delivery, &RECORD_DESC_verdict, &verdict) < 0)
        return 0;
    log_warning("enricher: verdict %s on %s '%s' from %s: matching not implemented yet, set aside", verdict.id,
                verdict.observable_type, verdict.value, verdict.feed);
    record_clear(&RECORD_DESC_verdict, &verdict);
    return bus_set_aside(bus, delivery, "enricher matching not implemented yet");
}

int main(int argc, char **argv)
{
    static const daemon_input_t inputs[] = {{"verdicts", enricher_on_verdict}};
    static const daemon_spec_t spec = {
        .program = "clawback-enricher",
        .summary = "Finds the delivered messages a verdict concerns and creates remediation jobs.",
        .inputs = inputs,
        .ninputs = 1,
    };
    return daemon_main(argc, argv, &spec, NULL);
}
