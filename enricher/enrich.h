/*
 * enrich.h - from one verdict to a batch of remediation jobs (clawback-enricher's work).
 *
 * For a verdict the policy acts on (disposition, age, allowlist: policy.h), enrich_verdict()
 * finds the delivered incoming messages of the window that carry its URL (or domain), the
 * message its email_id names, and, when [enricher] same_subject is on, every message with the
 * same subject as one of those (unless the subject is empty or carried by more than
 * subject_max messages). Each recipient's copy becomes one job, with the action and profile of
 * its domain's mapping, in the batch whose UUID derives from the verdict's id.
 *
 * Exactly once per (message, recipient): a job is created only for a copy no batch has claimed
 * (cb:copies "<mid> job:<rcpt>", batch.h) and that is not already remediated. The claims are
 * read first, then each commit re-checks them atomically (bus_commit_guard_field); a commit that
 * finds one taken by another enricher is planned again. Jobs go out in commits of ENRICH_CHUNK
 * messages, each built while Redis runs the one before; the verdict is consumed with the last. After a crash or a full edge the verdict is handled
 * again: the copies this batch already claimed are skipped, so nothing is created twice.
 *
 * A batch of more than approval_threshold messages is held: its jobs wait in
 * cb:batch:<uuid>:held until `clawback approve` puts them on the bus (or `clawback reject`
 * releases the claims).
 *
 * Log lines: a summary per verdict (ecs log, and the enricher's own log); per message, through
 * the chunk's initiation record (record.h), the logger writes a tracking line (cb:trk:<mid>)
 * saying why it matched, and the seed's "was initiated" line (mail_logs) when its jobs go out.
 */
#ifndef CLAWBACK_ENRICH_H
#define CLAWBACK_ENRICH_H

#include <stddef.h>

#include "bus.h"
#include "config.h"
#include "redis_conn.h"

#define ENRICH_CHUNK 500 /* messages per commit */

typedef struct enrich enrich_t;

/* enrich_new - the enricher's state for cfg and redis (both borrowed). NULL with the reason in
 * err (a bad policy: see policy_new). Caller destroys. */
enrich_t *enrich_new(const config_t *cfg, redis_conn_t *redis, char *err, size_t errsize);
void enrich_destroy(enrich_t **self);

/* enrich_verdict - handle one delivery of the verdicts edge (a bus handler's body): 0 when it
 * was committed or set aside, -1 when it must be tried again (Redis failed, an output edge is
 * full). */
int enrich_verdict(enrich_t *self, bus_t *bus, const bus_delivery_t *delivery);

#endif
