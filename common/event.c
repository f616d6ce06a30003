/*
 * event.c - events for the logger; see event.h.
 */
#include "event.h"

#include <string.h>

#include "record.h"
#include "util.h"

const char *event_level_name(log_level_t level)
{
    static const char *const names[] = {"critical", "warning", "info", "debug", "trace"};
    return (size_t)level < UTIL_ARRAY_LEN(names) ? names[level] : "info";
}

int event_commit_add(bus_commit_t *commit, const char *program, const char *log, log_level_t level, int64_t mid,
                     const char *batch, const char *message, char *err, size_t errsize)
{
    record_event_t ev;
    memset(&ev, 0, sizeof(ev));
    record_init(&RECORD_DESC_event, &ev);
    ev.program = util_xstrdup(program);
    ev.log = util_xstrdup(log);
    ev.level = util_xstrdup(event_level_name(level));
    ev.mid = mid;
    ev.batch = batch ? util_xstrdup(batch) : NULL;
    ev.message = util_xstrndup(message, strnlen(message, 8192));
    int rc = bus_commit_add_record(commit, EVENT_EDGE, &RECORD_DESC_event, &ev, err, errsize);
    record_clear(&RECORD_DESC_event, &ev);
    return rc;
}
