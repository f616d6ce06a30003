/*
 * ingest.h - the one way a delivered message enters the index: `clawback ingest` (files) and
 * clawback-milter (live, at the gateway) both go through here, so both index the same
 * observables the same way.
 *
 * A message is parsed (message_parse, with what the caller knows of its delivery in a
 * message_context_t: client IP, HELO, envelope sender and recipients, trusted relays), then
 * queued in the index (mindex_add) as delivered to its envelope recipients, or when none are
 * given, to its delivery headers' addresses (Delivered-To, X-Original-To, Envelope-To), else
 * its To and Cc.
 */
#ifndef CLAWBACK_INGEST_H
#define CLAWBACK_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"
#include "mindex.h"

typedef enum {
    INGEST_OK = 0,       /* queued in the index */
    INGEST_SKIPPED = 1,  /* this message cannot be indexed (err says why); go on with the next */
    INGEST_FAILED = -1,  /* Redis failed (err says why); the index is not taking writes */
} ingest_status_t;

/* ingest_parse - parse len bytes (an RFC 5322 message) with ctx (may be NULL) into *msg (the
 * caller clears it with message_clear). INGEST_OK, or INGEST_SKIPPED with the reason in err
 * (*msg empty then). */
ingest_status_t ingest_parse(const char *data, size_t len, const message_context_t *ctx, message_t *msg,
                             char *err, size_t errsize);

/* ingest_add - queue the parsed msg in index as delivered per delivery (its rcpts may be
 * empty: then the message's delivery headers, else To and Cc). The MID goes to *mid when not
 * NULL. INGEST_OK; INGEST_SKIPPED (no recipient, or mindex refused it) or INGEST_FAILED
 * (Redis), with the reason in err. */
ingest_status_t ingest_add(mindex_t *index, const message_t *msg, const mindex_delivery_t *delivery, int64_t *mid,
                           char *err, size_t errsize);

#endif
