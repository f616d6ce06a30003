/*
 * feed_status.h - where a feed's state lives in Redis, and reading it for operators.
 *
 *   cb:feed:<name>         hash: the feed's state and counters (FEED_FIELD_* below); the
 *                          cursor and counters move only inside the commit that hands the
 *                          verdicts they cover to the bus (bus_commit_hset / hincrby)
 *   cb:feed:<name>:lease   string: the poller instance polling the feed, with a TTL
 *   cb:feed:<name>:seen    sorted set: verdict keys already handed over (score: last seen,
 *                          ms), pruned after the index retention
 */
#ifndef CLAWBACK_FEED_STATUS_H
#define CLAWBACK_FEED_STATUS_H

#include <stdint.h>

#include "redis_conn.h"

#define FEED_FIELD_CURSOR "cursor"          /* retro: ms; taxii21: date added; misp: epoch s */
#define FEED_FIELD_TOKEN "token"            /* retro: the device token */
#define FEED_FIELD_REGION "region_uri"      /* retro: where to poll */
#define FEED_FIELD_LAST_POLL "last_poll_ms" /* start of the last poll */
#define FEED_FIELD_LAST_SUCCESS "last_success_ms"
#define FEED_FIELD_NEXT_POLL "next_poll_ms"
#define FEED_FIELD_LAST_ERROR "last_error"
#define FEED_FIELD_LAST_ERROR_MS "last_error_ms"
#define FEED_FIELD_FAILURES "failures" /* consecutive failed polls */
#define FEED_FIELD_VERDICTS "verdicts" /* verdicts handed over, ever */
#define FEED_FIELD_SKIPPED "skipped"   /* malformed items skipped, ever */
#define FEED_FIELD_WITHDRAWN "withdrawn"

/* feed_key - the key of a feed's part: NULL for the hash, "lease" or "seen". */
void feed_key(char *out, size_t size, const char *feed, const char *part);

typedef struct {
    char holder[192];     /* the instance holding the lease, "" when none */
    int64_t lease_ttl_ms; /* its remaining time, 0 when none */
    char cursor[128];
    int64_t last_poll_ms, last_success_ms, next_poll_ms, last_error_ms;
    char last_error[512];
    int64_t failures, verdicts, skipped, withdrawn;
    int64_t seen; /* verdict keys remembered */
} feed_status_t;

/* feed_status_read - read a feed's state (absent fields are 0 / ""). 0, or -1 when Redis
 * failed (redis_conn_errstr says why). */
int feed_status_read(redis_conn_t *redis, const char *feed, feed_status_t *out);

#endif
