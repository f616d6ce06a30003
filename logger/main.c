/*
 * clawback-logger - the sink of every stage's events and of remediation results.
 *
 * Events: with [logger] directory set, each event's line goes to the seed gateway's log it
 * belongs to (ecs, mail_logs, remediation, url_rep_client: seed_logs.h) and, with [logger]
 * json_file, to a JSON-lines file for a SIEM; otherwise into the logger's own log. An event
 * may carry further lines (record.h, event v2), each handled as an event of its own; an
 * initiation record (a verdict batch's jobs, message by message) becomes each message's
 * tracking line and "was initiated" line (batch.h). A line
 * about a message (mail_logs or tracking, with a MID) is also added to that message's tracking
 * (cb:trk:<mid>, batch.h) in the commit that consumes the event.
 *
 * Results: each result becomes the seed's mail_logs line ("Message 6 was processed ...") and
 * remediation lines ("MID: 6 Message deleted successfully ...", "MID: 6 Remediation succeeded
 * ..."); the same commit records the final state of the copy (cb:copies, batch.h), the
 * job's state and counters in its batch, and the tracking line. A failed copy's claim is
 * released, so a later verdict may try it again.
 *
 * A line that cannot be written (disk full) or a commit that fails leaves the record on the
 * bus to be tried again: nothing is dropped (a line may then be written twice, never lost).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "event.h"
#include "daemon.h"
#include "log.h"
#include "seed_logs.h"
#include "strbuf.h"
#include "util.h"

#define LOGGER_PROGRAM "clawback-logger"

typedef struct {
    seed_logs_t *files; /* NULL: events go to this program's own log */
    int64_t ttl_ms;     /* how long tracking and state are kept: the index retention */
} logger_t;

/* logger_write - write one event's line where it belongs. 0 or -1 (logged). */
static int logger_write(logger_t *logger, const record_event_t *event)
{
    if (!logger->files) {
        log_level_t level = LOG_LEVEL_INFO;
        log_level_parse(event->level, &level);
        log_msg(level, "%s", event->message);
        return 0;
    }
    char err[512];
    if (seed_logs_write(logger->files, event, err, sizeof(err)) < 0) {
        log_warning("clawback-logger: %s; the record waits", err);
        return -1;
    }
    return 0;
}

/* logger_track - add a line to a message's tracking in commit c. */
static void logger_track(const logger_t *logger, bus_commit_t *c, int64_t mid, int64_t time_ms, const char *id,
                         const char *line)
{
    char key[48];
    batch_track_key(key, sizeof(key), mid);
    char *member = batch_track_member(id, line);
    bus_commit_zadd(c, key, time_ms, member);
    bus_commit_pexpire(c, key, logger->ttl_ms);
    free(member);
}

/* logger_commit - run c, consuming the delivery; 0 or -1 (logged). */
static int logger_commit(bus_t *bus, bus_commit_t **c, const bus_delivery_t *d)
{
    bus_status_t st = bus_commit_run(*c);
    bus_commit_destroy(c);
    if (st == BUS_OK || st == BUS_DUPLICATE)
        return 0;
    log_warning("clawback-logger: %s record %s: %s; tried again", d->edge, d->record_id, bus_errstr(bus));
    return -1;
}

static int logger_on_initiation(logger_t *logger, bus_t *bus, const bus_delivery_t *delivery);

/* logger_line - write one line where it belongs and, when it is about a message (mail_logs or
 * tracking, with a MID), add it to that message's tracking as member id, in *c (started, to
 * consume d, on first use). 0 or -1. */
static int logger_line(logger_t *logger, bus_t *bus, const bus_delivery_t *d, bus_commit_t **c,
                       const record_event_t *line, const char *id)
{
    if (logger_write(logger, line) != 0)
        return -1;
    if (line->mid > 0 && (!strcmp(line->log, "mail_logs") || !strcmp(line->log, "tracking"))) {
        if (!*c)
            *c = bus_commit_new(bus, d);
        logger_track(logger, *c, line->mid, line->time_ms, id, line->message);
    }
    return 0;
}

/* logger_on_event - write an event's line and its further lines (event v2), and track those
 * about a message. */
static int logger_on_event(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    logger_t *logger = state;
    char type[32];
    if (record_peek_type(delivery->payload, delivery->len, type, sizeof(type)) == 0 && !strcmp(type, "initiation"))
        return logger_on_initiation(logger, bus, delivery);
    record_event_t event;
    if (daemon_decode(bus, delivery, &RECORD_DESC_event, &event) < 0)
        return 0;
    bus_commit_t *c = NULL;
    int rc = 0;
    for (size_t i = 0; i <= event.lines.n && rc == 0; i++) {
        record_event_t line = event; /* a view: the event's header, line i's log, mid and message */
        line.lines = (record_linev_t){NULL, 0};
        char id[RECORD_MAX_ID + 24];
        snprintf(id, sizeof(id), "%s", event.id);
        if (i > 0) {
            const record_line_t *l = &event.lines.v[i - 1];
            line.log = l->log;
            line.mid = l->mid;
            line.message = l->message;
            snprintf(id, sizeof(id), "%s/%04zu", event.id, i); /* members of one time sort in line order */
        }
        rc = logger_line(logger, bus, delivery, &c, &line, id);
    }
    if (rc == 0 && c)
        rc = logger_commit(bus, &c, delivery);
    /* otherwise returning 0 without a commit acknowledges the event */
    bus_commit_destroy(&c);
    record_clear(&RECORD_DESC_event, &event);
    return rc;
}

/* logger_on_initiation - an initiation's lines: per message, the tracking line saying why it
 * matched and, unless its batch is held, the seed's "was initiated" line; each tracked. */
static int logger_on_initiation(logger_t *logger, bus_t *bus, const bus_delivery_t *delivery)
{
    record_initiation_t in;
    if (daemon_decode(bus, delivery, &RECORD_DESC_initiation, &in) < 0)
        return 0;
    bus_commit_t *c = NULL;
    strbuf_t text;
    strbuf_init(&text, 0);
    int rc = 0;
    for (size_t i = 0; i < in.messages.n && rc == 0; i++) {
        const record_initiated_t *m = &in.messages.v[i];
        for (int k = 0; k < (in.held ? 1 : 2) && rc == 0; k++) {
            strbuf_reset(&text);
            if (k == 0)
                batch_line_matched(&text, &in, m);
            else
                batch_line_initiated(&text, m->mid, m->action, in.initiator, in.source, in.batch);
            record_event_t line = {.id = in.id,
                                   .time_ms = in.time_ms,
                                   .program = in.program,
                                   .log = k == 0 ? (char *)"tracking" : (char *)"mail_logs",
                                   .level = (char *)"info",
                                   .mid = m->mid,
                                   .batch = in.batch,
                                   .message = text.data};
            char id[RECORD_MAX_ID + 24];
            snprintf(id, sizeof(id), "%s/%04zu", in.id, 2 * i + (size_t)k); /* one time: sorted in line order */
            rc = logger_line(logger, bus, delivery, &c, &line, id);
        }
    }
    if (rc == 0 && c)
        rc = logger_commit(bus, &c, delivery);
    bus_commit_destroy(&c);
    strbuf_release(&text);
    record_clear(&RECORD_DESC_initiation, &in);
    return rc;
}

/* logger_result_event - an event carrying one of a result's lines. */
static void logger_result_event(const record_result_t *r, const char *log, log_level_t level, const char *line,
                                record_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->id = (char *)r->id;
    ev->time_ms = r->time_ms;
    ev->program = (char *)"clawback-remediator";
    ev->log = (char *)log;
    ev->level = (char *)event_level_name(level);
    ev->mid = r->mid;
    ev->batch = (char *)r->batch;
    ev->message = (char *)line;
}

/* logger_on_result - a remediation's outcome: the seed's lines, the copy's state, the batch. */
static int logger_on_result(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    logger_t *logger = state;
    record_result_t r;
    if (daemon_decode(bus, delivery, &RECORD_DESC_result, &r) < 0)
        return 0;
    if (!batch_uuid_valid(r.batch)) {
        record_clear(&RECORD_DESC_result, &r);
        return bus_set_aside(bus, delivery, "result names no batch UUID");
    }
    bool ok = !strcmp(r.status, "remediated") || !strcmp(r.status, "not_found");
    strbuf_t processed, lines[3];
    strbuf_init(&processed, 0);
    for (int i = 0; i < 3; i++)
        strbuf_init(&lines[i], 0);
    batch_line_processed(&processed, &r);
    size_t n = batch_lines_remediation(&r, lines);
    int rc = 0;
    record_event_t ev;
    for (size_t i = 0; i < n && rc == 0; i++) {
        logger_result_event(&r, "remediation", ok ? LOG_LEVEL_INFO : LOG_LEVEL_WARNING, lines[i].data, &ev);
        rc = logger_write(logger, &ev);
    }
    if (rc == 0) {
        logger_result_event(&r, "mail_logs", LOG_LEVEL_INFO, processed.data, &ev);
        rc = logger_write(logger, &ev);
    }
    if (rc == 0) {
        char bkey[96];
        batch_key(bkey, sizeof(bkey), r.batch, NULL);
        bus_commit_t *c = bus_commit_new(bus, delivery);
        /* a failed copy's claim is released: a later verdict may try again */
        batch_commit_copy(c, r.batch, r.mid, r.recipient, r.status, ok ? BATCH_CLAIM_KEEP : BATCH_CLAIM_RELEASE,
                          logger->ttl_ms);
        bus_commit_hincrby(c, bkey, r.status, 1);
        bus_commit_pexpire(c, bkey, logger->ttl_ms);
        char id[RECORD_MAX_ID + 8];
        snprintf(id, sizeof(id), "r:%s", r.id);
        logger_track(logger, c, r.mid, r.time_ms, id, processed.data);
        rc = logger_commit(bus, &c, delivery);
    }
    strbuf_release(&processed);
    for (int i = 0; i < 3; i++)
        strbuf_release(&lines[i]);
    record_clear(&RECORD_DESC_result, &r);
    return rc;
}

static int logger_start(daemon_t *daemon, void *state)
{
    logger_t *logger = state;
    const config_t *cfg = daemon_config(daemon);
    logger->ttl_ms = cfg->index_retention_ms;
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
        .summary = "Writes every stage's events and remediation results to the logs and to message tracking.",
        .start = logger_start,
        .stop = logger_stop,
        .reopen = logger_reopen,
        .inputs = inputs,
        .ninputs = 2,
    };
    logger_t logger = {0};
    return daemon_main(argc, argv, &spec, &logger);
}
