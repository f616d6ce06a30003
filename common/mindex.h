/*
 * mindex.h - the index of delivered messages in Redis (the retention window, 168 h by default).
 *
 * Every delivered message gets a MID (a positive integer unique across all instances, handed
 * out by Redis in blocks) and an email id (a UUID derived from the MID with a secret key, so
 * it needs no storage and cannot be guessed), and is stored as one record (its
 * observables for display and remediation, its recipients and their state) plus one index
 * entry per observable value: canonical URL, URL host and registrable domain and sender
 * domain, sender and recipient address, sender IP, Message-ID, normalized subject, email id,
 * attachment SHA-256 and file name.
 *
 * Layout (docs/ARCHITECTURE.md, "The index"): time is cut into partitions (retention / 24,
 * fixed when the index is first created); in each partition, the entries of one kind of value
 * are spread over 2^bucket_bits bucket strings, each a sequence of 11-byte entries (48 bits of
 * a keyed 64-bit hash of the value, 40-bit MID) appended with APPEND; records are appended
 * the same way, 64 MIDs to a bucket. Keys expire by themselves one retention after their
 * partition ends. A value shared by a huge number of messages costs 11 bytes per message
 * like any other and never makes a write slower; the hash is keyed with a secret kept in
 * Redis, so nobody can craft a URL whose entries collide with another's.
 *
 * Writes: mindex_add() queues a message; mindex_flush() sends the queue as one pipeline in
 * which every message is one MULTI/EXEC transaction, its record last, so a look-up never
 * sees a half-written message (look-ups only return MIDs whose record exists). A slow or
 * dead Redis makes mindex_flush fail with a clear error; the messages of that flush may or
 * may not be indexed, each one whole or not at all.
 *
 * Not thread-safe: one mindex_t per thread (each with its own redis_conn_t).
 */
#ifndef CLAWBACK_MINDEX_H
#define CLAWBACK_MINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "message.h"
#include "redis_conn.h"

#define MINDEX_MAX_BATCH 256           /* messages queued before mindex_add flushes by itself */
#define MINDEX_MAX_RESULTS 1000000     /* MIDs a look-up returns at most */

typedef enum {
    MINDEX_URL = 0,     /* canonical URL */
    MINDEX_DOMAIN,      /* URL host, URL registrable domain, sender domain */
    MINDEX_ADDRESS,     /* sender address, recipient addresses */
    MINDEX_IP,          /* sender IP */
    MINDEX_MESSAGE_ID,  /* Message-ID without brackets */
    MINDEX_SUBJECT,     /* normalized subject (mindex_subject_normalize) */
    MINDEX_EMAIL_ID,    /* email id (UUID) */
    MINDEX_SHA256,      /* attachment SHA-256, lowercase hex */
    MINDEX_FILE_NAME,   /* attachment file name, case-folded */
    MINDEX_KINDS
} mindex_kind_t;

typedef struct mindex mindex_t;

typedef struct {
    int64_t retention_ms; /* how long messages are kept; 0: 168 hours */
    int bucket_bits;      /* buckets per partition: 2^bits (4..20); 0: 8. Used only when the
                           * index is created; an existing index keeps its own (cb:ix:meta) */
} mindex_options_t;

/* One recipient of an indexed message and its state. */
typedef struct {
    char *address;
    char *state; /* "delivered", later "remediated", "not_found", "failed" (issue 7) */
} mindex_rcpt_t;

/* A stored message, as a look-up returns it. */
typedef struct {
    int64_t mid;
    char email_id[37];
    int64_t time_ms; /* delivery time */
    char *direction; /* "incoming" or "outgoing" */
    char *message_id, *subject, *sender, *sender_ip, *queue_id; /* each may be NULL */
    mindex_rcpt_t *rcpts;
    size_t n_rcpts;
    char *storage; /* owns every string above and rcpts (mindex_record_clear frees it) */
} mindex_record_t;

/* What the caller knows of a delivery besides the message's observables. */
typedef struct {
    const char *const *rcpts; /* recipients (required, at least one) */
    size_t n_rcpts;
    int64_t time_ms;       /* delivery time; 0: now */
    const char *direction; /* NULL: "incoming" */
    const char *queue_id;  /* the MTA's queue id, or NULL */
} mindex_delivery_t;

/* mindex_new - an index on redis (borrowed, must outlive it). Reads or creates the index's
 * parameters in Redis (partition length, hash key) on first use, not here. Caller destroys. */
mindex_t *mindex_new(redis_conn_t *redis, const mindex_options_t *options);
/* mindex_destroy - free the index; queued messages are sent without waiting for a verdict
 * on them (call mindex_finish first to know); NULL-safe. */
void mindex_destroy(mindex_t **self);

/* mindex_errstr - the last error, as a sentence. */
const char *mindex_errstr(const mindex_t *self);

#define MINDEX_INVALID (-2)

/* mindex_add - queue msg as delivered; its MID and email id are written to *mid and
 * email_id[37] (either may be NULL). Recipients are lowercased and kept once each. Flushes by
 * itself every MINDEX_MAX_BATCH messages. 0; MINDEX_INVALID when this delivery cannot be
 * indexed (no recipient, a time outside the window, a record over 16 MB; the index is fine:
 * go on with the next); -1 when Redis failed (see mindex_errstr for both). */
int mindex_add(mindex_t *self, const message_t *msg, const mindex_delivery_t *delivery, int64_t *mid,
               char email_id[37]);
/* mindex_flush - write every queued message. 0, or -1 (see mindex_errstr). */
int mindex_flush(mindex_t *self);
/* mindex_finish - flush, and rewrite at their exact size the record buckets this instance
 * will not write again (call when done indexing, e.g. at the end of an ingest). 0 or -1. */
int mindex_finish(mindex_t *self);

/* mindex_lookup - the MIDs of messages within the retention window that carry value as an
 * observable of kind, newest first, at most max (0: MINDEX_MAX_RESULTS); *mids is allocated
 * (caller frees, also when *n is 0). Values are matched as mindex_add stores them: the caller
 * passes canonical URLs, lowercase domains and addresses, normalized subjects. 0 or -1. */
int mindex_lookup(mindex_t *self, mindex_kind_t kind, const char *value, size_t max, int64_t **mids,
                  size_t *n);

/* mindex_lookup_records - mindex_lookup, with the records of the MIDs too: (*recs)[i] is the
 * record of (*mids)[i] (both allocated: clear each record, free both arrays). Cheaper than a
 * look-up then mindex_get_many: the look-up reads those records to confirm them anyway. */
int mindex_lookup_records(mindex_t *self, mindex_kind_t kind, const char *value, size_t max, int64_t **mids,
                          mindex_record_t **recs, size_t *n);

/* mindex_get - the record of mid; 1 found (fill *rec, caller clears with
 * mindex_record_clear), 0 not found (expired, never written, or outside the window), -1. */
int mindex_get(mindex_t *self, int64_t mid, mindex_record_t *rec);
void mindex_record_clear(mindex_record_t *rec);
/* mindex_get_many - the records of many MIDs at once (each record bucket is read once per
 * partition, in pipelines: for fan-out and search). *recs (newest MID first, *n of them; the
 * MIDs not found are left out) is allocated when *n > 0: clear each record and free the array.
 * 0 or -1. */
int mindex_get_many(mindex_t *self, const int64_t *mids, size_t n, mindex_record_t **recs, size_t *n_found);

/* mindex_email_id - the email id of a MID (derived from it with the index's key). 0 or -1. */
int mindex_email_id(mindex_t *self, int64_t mid, char out[37]);

/* mindex_subject_normalize - the form subjects are indexed and looked up in: Unicode
 * case-folded and NFKC-normalized, whitespace runs folded to one space, trimmed. Caller frees. */
char *mindex_subject_normalize(const char *subject);

/* mindex_kind_name - "url", "domain", ... (static). */
const char *mindex_kind_name(mindex_kind_t kind);

#endif
