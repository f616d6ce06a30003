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

#define EVENT_EDGE "events"

/* event_level_name - the event record's level value for a log level ("info", ...). */
const char *event_level_name(log_level_t level);

/* event_commit_add - add an event (program, log name, level, message; mid 0 and batch NULL
 * when not about a message) to commit. 0, or -1 when it does not encode (err says why). */
int event_commit_add(bus_commit_t *commit, const char *program, const char *log, log_level_t level, int64_t mid,
                     const char *batch, const char *message, char *err, size_t errsize);

#endif
