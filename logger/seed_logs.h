/*
 * seed_logs.h - the seed gateway's log files, written by clawback-logger for every stage.
 *
 * An event record names its log (ecs, mail_logs, remediation, url_rep_client, tracking). Its
 * line goes to DIR/<log>, in the seed's format ("Tue Mar 29 20:20:24 2022 Info: ECS: ...", at
 * the event's own time), so existing parsers of those logs keep working; and, when a JSON file
 * is configured, as one JSON object per line: {"time", "log", "level", "program", "mid",
 * "batch", "message"}. Tracking events have no seed text log: they go to the JSON file only.
 * Files are opened O_APPEND on first use; seed_logs_reopen() reopens them (logrotate).
 */
#ifndef CLAWBACK_SEED_LOGS_H
#define CLAWBACK_SEED_LOGS_H

#include "record.h"

typedef struct seed_logs seed_logs_t;

/* seed_logs_new - write into directory dir (created if missing) and json_path ("": none).
 * NULL with the reason in err. Caller owns the result. */
seed_logs_t *seed_logs_new(const char *dir, const char *json_path, char *err, size_t errsize);
/* seed_logs_destroy - close and free; NULL-safe, clears the pointer. */
void seed_logs_destroy(seed_logs_t **self);
/* seed_logs_write - write one event. 0, or -1 with the reason in err when a file cannot be
 * opened or written (the caller retries the event later: nothing is dropped). */
int seed_logs_write(seed_logs_t *self, const record_event_t *event, char *err, size_t errsize);
/* seed_logs_reopen - close every file; each is opened again by its next line. */
void seed_logs_reopen(seed_logs_t *self);

#endif
