/*
 * event.h - log and tracking events sent to the logger over the bus ("events" edge).
 *
 * A stage writes a line in its own log and, through these helpers, hands the same line to
 * clawback-logger, which writes it into the seed gateway's log it belongs to (ecs, mail_logs,
 * remediation, ...). An event added to a commit travels with that commit's other outputs:
 * a line that records a state change is never separated from the change.
 */
#ifndef CLAWBACK_EVENT_H
#define CLAWBACK_EVENT_H

#include <stdint.h>

#include "bus.h"
#include "log.h"
#include "record.h"

#define EVENT_EDGE "events"

/* event_level_name - the event record's level value for a log level ("info", ...). */
const char *event_level_name(log_level_t level);

/* event_commit_add - add an event (program, log name, level, message; mid 0 and batch NULL
 * when not about a message) to commit. 0, or -1 when it does not encode (err says why). */
int event_commit_add(bus_commit_t *commit, const char *program, const char *log, log_level_t level, int64_t mid,
                     const char *batch, const char *message, char *err, size_t errsize);

/* event_lines_t - lines of one program, level and batch, gathered and added to a commit as a
 * few events (event v2 "lines": at most 1000 lines and about EVENT_LINES_BYTES each), so that
 * the thousands of lines of a batch do not cost an event each. */
#define EVENT_LINES_BYTES (256 * 1024)
typedef struct {
    const char *program, *batch; /* not owned */
    log_level_t level;
    record_line_t *v; /* owned */
    size_t n, cap;
} event_lines_t;

/* event_lines_init - no lines yet; program and batch (may be NULL) must outlive the lines. */
void event_lines_init(event_lines_t *lines, const char *program, log_level_t level, const char *batch);
/* event_lines_add - a line for log (a mid, or 0), cut at 8192 bytes. */
void event_lines_add(event_lines_t *lines, const char *log, int64_t mid, const char *message);
/* event_lines_commit - add the lines to commit as events, in order; the lines are emptied.
 * 0, or -1 when one does not encode (err says why). */
int event_lines_commit(event_lines_t *lines, bus_commit_t *commit, char *err, size_t errsize);
/* event_lines_release - free the lines. */
void event_lines_release(event_lines_t *lines);

#endif
