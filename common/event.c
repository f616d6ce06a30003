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

void event_lines_init(event_lines_t *lines, const char *program, log_level_t level, const char *batch)
{
    memset(lines, 0, sizeof(*lines));
    lines->program = program;
    lines->level = level;
    lines->batch = batch;
}

void event_lines_add(event_lines_t *lines, const char *log, int64_t mid, const char *message)
{
    if (lines->n == lines->cap) {
        lines->cap = lines->cap ? lines->cap * 2 : 64;
        lines->v = util_xrealloc(lines->v, lines->cap * sizeof(*lines->v));
    }
    record_line_t *l = &lines->v[lines->n++];
    l->log = util_xstrdup(log);
    l->mid = mid;
    l->message = util_xstrndup(message, strnlen(message, 8192));
}

/* event_lines_clear - free the lines' strings; keep the storage. */
static void event_lines_clear(event_lines_t *lines)
{
    for (size_t i = 0; i < lines->n; i++)
        record_clear(&RECORD_DESC_line, &lines->v[i]);
    lines->n = 0;
}

int event_lines_commit(event_lines_t *lines, bus_commit_t *commit, char *err, size_t errsize)
{
    int rc = 0;
    for (size_t i = 0; i < lines->n && rc == 0;) {
        /* an event: line i as its own message, the next ones as its lines */
        size_t j = i + 1, bytes = strlen(lines->v[i].message);
        while (j < lines->n && j - i - 1 < 1000 && bytes < EVENT_LINES_BYTES)
            bytes += strlen(lines->v[j++].message) + 32;
        const record_line_t *first = &lines->v[i];
        record_event_t ev;
        memset(&ev, 0, sizeof(ev));
        record_init(&RECORD_DESC_event, &ev);
        ev.program = (char *)lines->program;
        ev.log = first->log;
        ev.level = (char *)event_level_name(lines->level);
        ev.mid = first->mid;
        ev.batch = (char *)lines->batch;
        ev.message = first->message;
        ev.lines.v = &lines->v[i + 1]; /* borrowed */
        ev.lines.n = j - i - 1;
        rc = bus_commit_add_record(commit, EVENT_EDGE, &RECORD_DESC_event, &ev, err, errsize);
        free(ev.id);
        i = j;
    }
    event_lines_clear(lines);
    return rc;
}

void event_lines_release(event_lines_t *lines)
{
    event_lines_clear(lines);
    free(lines->v);
    memset(lines, 0, sizeof(*lines));
}
