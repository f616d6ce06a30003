/*
 * feed.h - one feed as the poller drives it: lease, schedule, pages, hand-over to the bus.
 *
 * A feed is polled by at most one poller instance at a time: the holder of its lease
 * (cb:feed:<name>:lease, renewed every lease/3; a dead holder's lease expires and another
 * instance takes the feed; a clean stop releases it at once). A poll is a sequence of pages
 * fetched on the feed's worker thread (fetch.h). Each page is handed over in chunks, each one
 * atomic commit (bus.h) that, only while the lease holds:
 *   - adds a verdict record per item not handed over before (cb:feed:<name>:seen),
 *   - adds the items' keys to the seen set,
 *   - and, with the page's last chunk, moves the cursor and the counters.
 * So a poller killed at any point restarts from the last committed cursor, and what was
 * already handed over is recognised by its key and not emitted again. Verdict record ids are
 * derived from the keys, so even a verdict emitted twice (seen set lost) is a duplicate to the
 * bus. When the verdicts edge is full the hand-over waits (backpressure): at most one fetched
 * page per feed is held in memory.
 *
 * Failures (network, timeout, TLS, 4xx/5xx, 429, a document that does not parse) end the poll;
 * the next one is scheduled after a capped exponential backoff with jitter (backoff_min doubling
 * up to backoff_max, or the server's Retry-After when later).
 */
#ifndef CLAWBACK_POLLER_FEED_H
#define CLAWBACK_POLLER_FEED_H

#include "config.h"
#include "daemon.h"

typedef struct poller_feed poller_feed_t;

/* poller_feed_new - drive feed (not owned) inside daemon. NULL when its worker cannot start. */
poller_feed_t *poller_feed_new(const config_feed_t *feed, daemon_t *daemon);
/* poller_feed_destroy - stop the worker (a request in progress is cancelled), release the lease
 * and free. A page not yet handed over is dropped: it is fetched again from the cursor. */
void poller_feed_destroy(poller_feed_t **self);
/* poller_feed_tick - the periodic step: lease, start a due poll, hand over pending items. */
void poller_feed_tick(poller_feed_t *self);

#endif
