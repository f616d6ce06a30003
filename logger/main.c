/*
 * clawback-logger - the sink of every stage's events and of remediation results.
 *
 * This version writes each event's line into its own log (seed format, level kept) and a
 * line per result; the seed's separate mail_logs / remediation / ecs files and message
 * tracking come with the logger issue.
 */
#include <string.h>

#include "daemon.h"
#include "log.h"

/* logger_on_event - write one event's line. */
static int logger_on_event(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    (void)state;
    record_event_t event;
    if (daemon_decode(bus, delivery, &RECORD_DESC_event, &event) < 0)
        return 0;
    log_level_t level = LOG_LEVEL_INFO;
    log_level_parse(event.level, &level);
    log_msg(level, "%s", event.message);
    record_clear(&RECORD_DESC_event, &event);
    return 0;
}

/* logger_on_result - write one result's line. */
static int logger_on_result(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    (void)state;
    record_result_t result;
    if (daemon_decode(bus, delivery, &RECORD_DESC_result, &result) < 0)
        return 0;
    log_info("MID: %lld %s for recipient %s in batch '%s': %s%s%s", (long long)result.mid, result.action,
             result.recipient, result.batch, result.status, result.detail ? ": " : "",
             result.detail ? result.detail : "");
    record_clear(&RECORD_DESC_result, &result);
    return 0;
}

int main(int argc, char **argv)
{
    static const daemon_input_t inputs[] = {{"events", logger_on_event}, {"results", logger_on_result}};
    static const daemon_spec_t spec = {
        .program = "clawback-logger",
        .summary = "Writes every stage's events and remediation results to the logs.",
        .inputs = inputs,
        .ninputs = 2,
    };
    return daemon_main(argc, argv, &spec, NULL);
}
