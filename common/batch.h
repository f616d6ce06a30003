/*
 * batch.h - remediation batches, the state of each (message, recipient), and the seed gateway's
 * remediation log lines: what the enricher, the logger and the clawback command share.
 *
 * A batch is every job one verdict (or one operator's request) creates: one job per (message,
 * recipient), each with a deterministic id, so a batch created twice (a verdict redelivered, an
 * approval re-run after a crash) puts the same ids on the bus, and the bus drops the repeats.
 *
 * Redis keys (all expire one enricher window after they were last written):
 *   cb:batch:<uuid>        hash   the batch: state, created_ms, reason, source, initiator,
 *                                 action, verdict/feed/observable (verdict batches), messages,
 *                                 jobs, counters remediated/not_found/failed, approved_by, ...
 *   cb:batch:<uuid>:jobs   hash   "<mid> <recipient>" -> job state (BATCH_JOB_*), and, from
 *                                 the enricher, "@<id>" -> the jobs one commit created, a
 *                                 "<mid> <recipient>" line each (state initiated, or held
 *                                 while the batch awaits approval, until a state is written)
 *   cb:batch:<uuid>:held   list   encoded job records of a batch waiting for approval
 *   cb:batches             zset   batch uuid, score = creation time (listing, trimmed)
 *   cb:copies:<mid / 128>  hash   the copies of 128 consecutive messages (a fan-out to
 *                                 thousands of messages writes a few keys, not thousands;
 *                                 small enough that Redis keeps each in its compact listpack
 *                                 form, whose look-ups scan: 1024 made them 10x slower):
 *                                 "<mid> job:<recipient>" -> uuid of the batch that claimed
 *                                 the copy (no other verdict makes a job for it while claimed);
 *                                 "<mid> state:<recipient>" -> its last job state (a claim
 *                                 without a state: the job is initiated)
 *   cb:trk:<mid>           zset   the message's tracking events: member "<event id> <line>",
 *                                 score = event time (ms)
 */
#ifndef CLAWBACK_BATCH_H
#define CLAWBACK_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "record.h"
#include "redis_conn.h"
#include "strbuf.h"

#define BATCH_UUID_LEN 36
#define BATCH_INDEX_KEY "cb:batches"
#define BATCH_INDEX_MAX 10000 /* batches listed at most (older ones only leave the list) */

/* Batch states (field "state" of cb:batch:<uuid>). */
#define BATCH_AWAITING_APPROVAL "awaiting_approval"
#define BATCH_INITIATED "initiated" /* its jobs are on the bus */
#define BATCH_REJECTED "rejected"

/* Job states (cb:batch:<uuid>:jobs and cb:copies "<mid> state:<rcpt>"); results add remediated,
 * not_found and failed (record.h). */
#define BATCH_JOB_HELD "held"           /* waiting for approval */
#define BATCH_JOB_INITIATED "initiated" /* on the bus */
#define BATCH_JOB_REJECTED "rejected"

/* Where verdict batches come from, as the seed's lines name it. */
#define BATCH_RETRO_INITIATOR "Mailbox Remediation"
#define BATCH_RETRO_SOURCE "URL retrospection"

/* batch_key - cb:batch:<uuid>; suffix NULL, or "jobs" / "held" for the batch's other keys. */
void batch_key(char *out, size_t size, const char *uuid, const char *suffix);
#define BATCH_COPIES_SHARD 128 /* messages per cb:copies key */
#define BATCH_JOB_LIST_PREFIX '@' /* a cb:batch:<uuid>:jobs field listing jobs */

/* batch_copies_key - cb:copies:<mid / 128>; batch_track_key - cb:trk:<mid>. */
void batch_copies_key(char *out, size_t size, int64_t mid);
void batch_track_key(char *out, size_t size, int64_t mid);
/* batch_job_field - "<mid> <recipient>" (cb:batch:<uuid>:jobs). Caller frees. */
char *batch_job_field(int64_t mid, const char *rcpt);
/* batch_claim_field, batch_state_field - "<mid> job:<recipient>", "<mid> state:<recipient>"
 * (cb:copies). Caller frees. */
char *batch_claim_field(int64_t mid, const char *rcpt);
char *batch_state_field(int64_t mid, const char *rcpt);

/* One copy of a message as cb:copies records it. */
typedef struct {
    char *rcpt;
    char *batch; /* the batch holding its claim, or NULL */
    char *state; /* its last job state, or NULL */
} batch_copy_t;

/* batch_copies_read - every copy of message mid that cb:copies names, sorted by recipient. 0,
 * or -1 (Redis failed: redis_conn_errstr). Free with batch_copies_free. */
int batch_copies_read(redis_conn_t *redis, int64_t mid, batch_copy_t **copies, size_t *n);
void batch_copies_free(batch_copy_t *copies, size_t n);

/* What batch_commit_copy does to a copy's claim (cb:copies "<mid> job:<rcpt>"). */
typedef enum {
    BATCH_CLAIM_KEEP,    /* leave it as it is */
    BATCH_CLAIM_GUARDED, /* take it, unless another batch holds it (then the commit is fenced) */
    BATCH_CLAIM_TAKE,    /* take it whoever holds it (an operator's batch) */
    BATCH_CLAIM_RELEASE, /* drop it if this batch holds it (rejected, failed) */
} batch_claim_t;

/* batch_commit_copy - in commit c: the state of the copy (mid, rcpt) of batch uuid, in
 * cb:copies ("<mid> state:<rcpt>") and in the batch's job list, and its claim. The keys' time to
 * live is ttl_ms from now. */
void batch_commit_copy(bus_commit_t *c, const char *uuid, int64_t mid, const char *rcpt, const char *state,
                       batch_claim_t claim, int64_t ttl_ms);

/* batch_commit_claim - in commit c: batch uuid's claim on the copy (mid, rcpt), guarded (the
 * commit is fenced when another batch holds it); the claim alone says the job is initiated.
 * The copy's state is written only with write_state (job_state: a state left by an earlier
 * batch, or a held job). The job is appended to list ("<mid> <recipient>" lines), which the
 * caller writes with batch_commit_job_list. Keys live ttl_ms from now. */
void batch_commit_claim(bus_commit_t *c, const char *uuid, int64_t mid, const char *rcpt, const char *job_state,
                        bool write_state, int64_t ttl_ms, strbuf_t *list);
/* batch_commit_job_list - in commit c: list (batch_commit_claim's lines) as the field "@<id>"
 * of batch uuid's jobs (id unique to the commit). */
void batch_commit_job_list(bus_commit_t *c, const char *uuid, const char *id, const strbuf_t *list, int64_t ttl_ms);

/* batch_uuid_from - a UUID (version 8, RFC 9562) derived from seed by SHA-256: the same seed
 * (a verdict's record id) always names the same batch. */
void batch_uuid_from(const char *seed, char out[BATCH_UUID_LEN + 1]);
/* batch_uuid_valid - whether s is a UUID in the 8-4-4-4-12 lowercase hex form. */
bool batch_uuid_valid(const char *s);
/* batch_job_id - the record id of the job of (batch, mid, recipient): "j:<mid>:<16 hex of
 * SHA-256(batch UUID, newline, recipient)>", at most 39 bytes. Unique per (batch, message,
 * recipient): a copy retried by a later batch gets a new id. */
void batch_job_id(const char *uuid, int64_t mid, const char *rcpt, char out[RECORD_MAX_ID + 1]);

/* batch_job_initiator, batch_job_source - who initiated a job and from where: its own fields,
 * or for a url_retrospection job without them, Mailbox Remediation and URL retrospection. */
const char *batch_job_initiator(const record_job_t *job);
const char *batch_job_source(const record_job_t *job);

/* batch_action_valid - delete, forward or forward_delete. batch_action_label - the seed's name
 * of an action: 'Delete', 'Forward', 'Forward and Delete' (static; the value itself when
 * unknown). */
bool batch_action_valid(const char *action);
const char *batch_action_label(const char *action);
/* batch_status_label - a result status as the seed's lines write it: Remediated, Not found,
 * Failed (static). */
const char *batch_status_label(const char *status);

/* The seed's lines (mail_logs, remediation), appended to out without a trailing newline. */

/* batch_line_initiated - "Message 640962 was initiated for 'Forward' remedial action by 'admin'
 * from source 'CTR' in batch '2b46dcac-...'." */
void batch_line_initiated(strbuf_t *out, int64_t mid, const char *action, const char *initiator, const char *source,
                          const char *uuid);
/* batch_line_matched - the tracking line saying why message m of an initiation is in its batch:
 * "Message 6 carries URL 'http://x/' that feed 'f' found malicious (URL retrospection);
 * remediation initiated in batch '...'." (or "(email id E) was named by feed ...", or "has the
 * subject of a message carrying ...", and "waits for approval" for a held batch). */
void batch_line_matched(strbuf_t *out, const record_initiation_t *in, const record_initiated_t *m);
/* batch_line_processed - the mail_logs line of a result: for reason admin "Message 640962 was
 * processed with 'Forward' remedial action for recipient 'ee@mexesa.com' in batch '...'.
 * Remediation status: Remediated."; for url_retrospection "Message 6 was processed due to URL
 * retrospection by Mailbox Remediation with 'Delete' remedial action for recipient a@b.
 * Profile used to remediate: bce_demo_com Remediation status: Remediated." */
void batch_line_processed(strbuf_t *out, const record_result_t *result);
/* batch_lines_remediation - the remediation log's lines of a result (1 to 3), each appended to
 * lines[i] (reset first); returns how many: "MID: 6 Message deleted successfully from a@b
 * mailbox." (or forwarded to ..., or not found in ...), then "MID: 6 Remediation succeeded with
 * `bce_demo_com` profile for recipient a@b." or "... failed with ...: <detail>". */
size_t batch_lines_remediation(const record_result_t *result, strbuf_t lines[3]);

/* batch_track_member - the cb:trk:<mid> member of an event: "<event id> <line>". Caller frees.
 * batch_track_line - the line of a member (a pointer into it). */
char *batch_track_member(const char *event_id, const char *line);
const char *batch_track_line(const char *member);

#endif
