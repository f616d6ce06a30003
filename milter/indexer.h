/*
 * indexer.h - clawback-milter's indexer: drains the spool's ready/ queue into the index, in
 * arrival order, through the same path as `clawback ingest` (common/ingest.h).
 *
 * One thread, with its own Redis connection and mindex_t (neither is thread-safe). Each round
 * takes up to [milter] batch messages: parse each (with the MTA's client IP, HELO, envelope
 * and the trusted relays), queue it (its envelope recipients, direction, queue id, the time
 * the MTA accepted it), then one flush; only after the flush succeeded are the files removed.
 * A message that cannot be parsed or indexed is moved to bad/ with the reason and a log line.
 *
 * Redis slow or down: the round fails, the files stay, the same batch is tried again after a
 * backoff (100 ms doubling to [milter] backoff_max); nothing is lost and the order is kept.
 *
 * Duplicates: a crash (or a Redis failure) between a flush that reached Redis and the removal
 * of the files would index those messages twice. So the first round after start-up and after
 * every failed round runs in "check" mode: each message whose Message-ID is already in the
 * index with the same queue id is taken as indexed and only removed. A message without a
 * Message-ID or queue id cannot be checked (at most one batch of such may be indexed twice).
 *
 * Direction: a client inside [milter] internal_networks makes the message "outgoing",
 * anything else (a local client included) "incoming".
 *
 * Backlog: every [milter] status_interval the indexer writes spool_dir/status and publishes
 * the same to Redis (MILTER_STATUS_KEY) when it can; `clawback queues` shows it.
 */
#ifndef CLAWBACK_MILTER_INDEXER_H
#define CLAWBACK_MILTER_INDEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "spool.h"

#define MILTER_STATUS_KEY "cb:milter:status" /* hash: instance -> "depth oldest_age_ms ..." */

typedef struct indexer indexer_t;

typedef struct {
    uint64_t indexed;    /* messages written to the index */
    uint64_t duplicates; /* found already indexed (check mode) and only removed */
    uint64_t bad;        /* set aside into bad/ */
    uint64_t failures;   /* rounds that failed on Redis */
} indexer_counts_t;

/* indexer_new - an indexer of spool (borrowed) with cfg's [milter], [index] and [redis]
 * settings (cfg borrowed, must outlive it). NULL with the reason in err. Caller destroys. */
indexer_t *indexer_new(const config_t *cfg, spool_t *spool, char *err, size_t errsize);
/* indexer_destroy - stop the thread if running, free; NULL-safe, clears the pointer. */
void indexer_destroy(indexer_t **self);

/* indexer_start - run the indexer in its own thread. 0 or -1. */
int indexer_start(indexer_t *self);
/* indexer_push - the milter committed ready/NAME (thread-safe): queued for the indexer, which
 * otherwise lists ready/ only at its first round and every minute when idle. */
void indexer_push(indexer_t *self, const char *name);
/* indexer_stop - ask the thread to stop after its current round and wait for it. */
void indexer_stop(indexer_t *self);

/* indexer_run_once - one round (no thread): up to batch messages from ready/. Sets *done to
 * the number of files handled (indexed, found indexed or set aside). 0, or -1 when Redis
 * failed (the files stay). */
int indexer_run_once(indexer_t *self, size_t *done);
/* indexer_publish_status - write spool_dir/status and publish it to Redis (best effort). */
void indexer_publish_status(indexer_t *self);

/* indexer_direction - "outgoing" when ip is in internal_networks, else "incoming". */
const char *indexer_direction(const indexer_t *self, const char *ip);
/* indexer_counts - counters since start (thread-safe). */
indexer_counts_t indexer_counts(indexer_t *self);

#endif
