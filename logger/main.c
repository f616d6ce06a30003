/*
 * clawback-logger - the sink of every stage's events and of remediation results.
 *
 * With [logger] directory set, each event's line goes to the seed gateway's log it belongs to
 * (ecs, mail_logs, remediation, url_rep_client: seed_logs.h) and, with [logger] json_file, to
 * a JSON-lines file for a SIEM; otherwise into the logger's own log. An event whose line
 * cannot be written (disk full) stays on the bus and is tried again: nothing is dropped.
 * Message tracking and the remediation results' seed lines come with the logger issue.
 */
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "seed_logs.h"

typedef struct {
    seed_logs_t *files; /* NULL: events go to this program's own log */
} logger_t;

/* logger_on_event - write one event's line. */
static int logger_on_event(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    logger_t *logger = state;
    record_event_t event;
    if (daemon_decode(bus, delivery, &RECORD_DESC_event, &event) < 0)
        return 0;
    int rc = 0;
    if (logger->files) {
        char err[512];
        if (seed_logs_write(logger->files, &event, err, sizeof(err)) < 0) {
            log_warning("clawback-logger: %s; the event waits", err);
            rc = -1;
        }
    } else {
        log_level_t level = LOG_LEVEL_INFO;
        log_level_parse(event.level, &level);
        log_msg(level, "%s", event.message);
    }
    record_clear(&RECORD_DESC_event, &event);
    return rc;
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

static int logger_start(daemon_t *daemon, void *state)
{
    logger_t *logger = state;
    const config_t *cfg = daemon_config(daemon);
    if (!*cfg->logger_directory)
        return 0;
    char err[512];
    logger->files = seed_logs_new(cfg->logger_directory, cfg->logger_json_file, err, sizeof(err));
    if (!logger->files) {
        log_critical("clawback-logger: %s", err);
        return -1;
    }
    log_info("clawback-logger: writing the seed's logs into %s", cfg->logger_directory);
    return 0;
}

static void logger_stop(daemon_t *daemon, void *state)
{
    (void)daemon;
    seed_logs_destroy(&((logger_t *)state)->files);
}

static void logger_reopen(daemon_t *daemon, void *state)
{
    (void)daemon;
    logger_t *logger = state;
    if (logger->files)
        seed_logs_reopen(logger->files);
}

int main(int argc, char **argv)
{
    static const daemon_input_t inputs[] = {{"events", logger_on_event}, {"results", logger_on_result}};
    static const daemon_spec_t spec = {
        .program = "clawback-logger",
        .summary = "Writes every stage's events and remediation results to the logs.",
        .start = logger_start,
        .stop = logger_stop,
        .reopen = logger_reopen,
        .inputs = inputs,
        .ninputs = 2,
    };
    logger_t logger = {0};
    return daemon_main(argc, argv, &spec, &logger);
}
