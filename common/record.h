/*
 * record.h - the records Clawback's stages exchange, each described once.
 *
 * Each record type is one X-macro list of fields below. From that list come the C struct,
 * the encoder and the decoder (record.c walks a descriptor table generated from the same
 * list), so sender and receiver cannot drift apart.
 *
 * Wire form: a msgpack map with string keys. Every record carries "type" (its name), "v"
 * (its schema version), "id" (a record id, unique per record: the bus detects duplicates
 * with it) and "time_ms" (creation time). Versioning rule: a new version may only add
 * fields; a field is never removed or given another meaning (that takes a new record
 * type). So a decoder accepts any version >= 1 and ignores keys it does not know.
 *
 * Decoding rejects: bytes that are not one well-formed msgpack map (checked without
 * allocating first, see msgpack_check.h), a "type" other than the one expected, a missing
 * required field, a field of the wrong msgpack type, a string longer than its maximum or
 * containing a NUL byte, an array longer than its maximum, a value outside the field's
 * allowed set, and a key present twice.
 *
 * Field kinds: STR (char *, NULL when absent), INT (int64_t, 0 when absent: optional
 * integers are omitted when 0), BOOL, STRV (record_strv_t: array of strings), ATTV (an array
 * of attachment sub-records), LINEV (of line sub-records) and INITV (of initiated sub-records).
 */
#ifndef CLAWBACK_RECORD_H
#define CLAWBACK_RECORD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_MAX_ID 128

typedef struct {
    char **v; /* each owned by the record */
    size_t n;
} record_strv_t;

struct record_attachment;
typedef struct {
    struct record_attachment *v;
    size_t n;
} record_attv_t;

struct record_line;
typedef struct {
    struct record_line *v;
    size_t n;
} record_linev_t;

struct record_initiated;
typedef struct {
    struct record_initiated *v;
    size_t n;
} record_initv_t;

/* X(kind, name, presence, max length or count, allowed values "a|b|c" or NULL) */
#define RECORD_HEADER_FIELDS(X)                                                                    \
    X(STR, id, REQUIRED, RECORD_MAX_ID, NULL)                                                      \
    X(INT, time_ms, REQUIRED, 0, NULL)

/* One attachment of a delivered message (a sub-record of delivery). */
#define RECORD_ATTACHMENT_FIELDS(X)                                                                \
    X(STR, name, OPTIONAL, 1024, NULL)                                                             \
    X(STR, content_type, OPTIONAL, 255, NULL)                                                      \
    X(INT, size, REQUIRED, 0, NULL)                                                                \
    X(STR, sha256, REQUIRED, 64, NULL)

/* delivery - a delivered message and its observables (from ingest or the milter). */
#define RECORD_DELIVERY_FIELDS(X)                                                                  \
    RECORD_HEADER_FIELDS(X)                                                                        \
    X(INT, mid, REQUIRED, 0, NULL)                                                                 \
    X(STR, email_id, REQUIRED, 64, NULL)                                                           \
    X(STR, message_id, OPTIONAL, 998, NULL)                                                        \
    X(STR, queue_id, OPTIONAL, 64, NULL)                                                           \
    X(STR, direction, REQUIRED, 16, "incoming|outgoing")                                           \
    X(STR, sender, OPTIONAL, 320, NULL)                                                            \
    X(STR, header_from, OPTIONAL, 998, NULL)                                                       \
    X(STR, sender_ip, OPTIONAL, 64, NULL)                                                          \
    X(STR, helo, OPTIONAL, 255, NULL)                                                              \
    X(STR, subject, OPTIONAL, 4096, NULL)                                                          \
    X(STRV, recipients, REQUIRED, 10000, NULL)                                                     \
    X(STRV, urls, OPTIONAL, 10000, NULL)                                                           \
    X(ATTV, attachments, OPTIONAL, 1000, NULL)

/* verdict - a feed's verdict on an observable (from the poller). */
#define RECORD_VERDICT_FIELDS(X)                                                                   \
    RECORD_HEADER_FIELDS(X)                                                                        \
    X(STR, feed, REQUIRED, 64, NULL)                                                               \
    X(STR, observable_type, REQUIRED, 16, "url|domain")                                            \
    X(STR, value, REQUIRED, 8192, NULL)                                                            \
    X(STR, disposition, REQUIRED, 16, "malicious|suspicious|clean")                                \
    X(STR, email_id, OPTIONAL, 64, NULL)                                                           \
    X(INT, observed_ms, OPTIONAL, 0, NULL)                                                         \
    X(STR, context, OPTIONAL, 1024, NULL)

/* job - one remediation to perform for one message and one recipient (from the enricher or
 * an operator's batch). initiator and source: who asked and from where; a url_retrospection
 * job without them was initiated by Mailbox Remediation from URL retrospection (the enricher
 * leaves them out: a fan-out's 100,000 jobs are smaller). email_id is no longer sent (the
 * remediator finds a message by its Message-ID; the MID names it everywhere else); it is still
 * read from older jobs. */
#define RECORD_JOB_FIELDS(X)                                                                       \
    RECORD_HEADER_FIELDS(X)                                                                        \
    X(STR, batch, REQUIRED, 64, NULL)                                                              \
    X(INT, mid, REQUIRED, 0, NULL)                                                                 \
    X(STR, email_id, OPTIONAL, 64, NULL)                                                           \
    X(STR, message_id, REQUIRED, 998, NULL)                                                        \
    X(STR, recipient, REQUIRED, 320, NULL)                                                         \
    X(STR, action, REQUIRED, 16, "delete|forward|forward_delete")                                  \
    X(STR, profile, OPTIONAL, 64, NULL)                                                            \
    X(STR, subject, OPTIONAL, 4096, NULL)                                                          \
    X(STR, reason, REQUIRED, 32, "url_retrospection|admin")                                        \
    X(STR, initiator, OPTIONAL, 128, NULL)                                                         \
    X(STR, source, OPTIONAL, 64, NULL)

/* result - the outcome of one job (from the remediator). v2: reason (copied from the job) and
 * forward_to (where a forward went). */
#define RECORD_RESULT_FIELDS(X)                                                                    \
    RECORD_HEADER_FIELDS(X)                                                                        \
    X(STR, job_id, REQUIRED, RECORD_MAX_ID, NULL)                                                  \
    X(STR, batch, REQUIRED, 64, NULL)                                                              \
    X(INT, mid, REQUIRED, 0, NULL)                                                                 \
    X(STR, recipient, REQUIRED, 320, NULL)                                                         \
    X(STR, action, REQUIRED, 16, "delete|forward|forward_delete")                                  \
    X(STR, profile, OPTIONAL, 64, NULL)                                                            \
    X(STR, status, REQUIRED, 16, "remediated|not_found|failed")                                    \
    X(STR, detail, OPTIONAL, 1024, NULL)                                                           \
    X(INT, attempts, OPTIONAL, 0, NULL)                                                            \
    X(STR, reason, OPTIONAL, 32, "url_retrospection|admin")                                        \
    X(STR, forward_to, OPTIONAL, 320, NULL)

/* The logs an event's line may go to: the seed gateway's, and "tracking" (a message's tracking
 * only, no file). */
#define RECORD_EVENT_LOGS "ecs|mail_logs|remediation|url_rep_client|tracking"

/* One more line of an event (a sub-record of event). */
#define RECORD_LINE_FIELDS(X)                                                                      \
    X(STR, log, REQUIRED, 32, RECORD_EVENT_LOGS)                                                   \
    X(INT, mid, OPTIONAL, 0, NULL)                                                                 \
    X(STR, message, REQUIRED, 8192, NULL)

/* event - a log or message-tracking event (from any stage, to the logger). v2: lines, further
 * lines of the same program, level and batch, each written to its own log after the event's
 * own message (the many lines of a batch travel as a few events). */
#define RECORD_EVENT_FIELDS(X)                                                                     \
    RECORD_HEADER_FIELDS(X)                                                                        \
    X(STR, program, REQUIRED, 64, NULL)                                                            \
    X(STR, log, REQUIRED, 32, RECORD_EVENT_LOGS)                                                   \
    X(STR, level, REQUIRED, 16, "critical|warning|info|debug|trace")                               \
    X(INT, mid, OPTIONAL, 0, NULL)                                                                 \
    X(STR, batch, OPTIONAL, 64, NULL)                                                              \
    X(STR, message, REQUIRED, 8192, NULL)                                                          \
    X(LINEV, lines, OPTIONAL, 1000, NULL)

/* One message of an initiation (a sub-record of initiation): how it matched the verdict, and
 * the action of its jobs. */
#define RECORD_INITIATED_FIELDS(X)                                                                 \
    X(INT, mid, REQUIRED, 0, NULL)                                                                 \
    X(STR, matched, REQUIRED, 16, "url|email_id|subject")                                          \
    X(STR, email_id, OPTIONAL, 64, NULL)                                                           \
    X(STR, action, REQUIRED, 16, "delete|forward|forward_delete")

/* initiation - the jobs a verdict's batch put on the bus (or holds for approval), message by
 * message (from the enricher, to the logger on the events edge). For each message the logger
 * writes the tracking line saying why it matched and, unless held, the seed's "was initiated"
 * line: the lines a fan-out to 100,000 messages needs, in a fraction of their bytes. */
#define RECORD_INITIATION_FIELDS(X)                                                                \
    RECORD_HEADER_FIELDS(X)                                                                        \
    X(STR, program, REQUIRED, 64, NULL)                                                            \
    X(STR, batch, REQUIRED, 64, NULL)                                                              \
    X(BOOL, held, OPTIONAL, 0, NULL)                                                               \
    X(STR, initiator, REQUIRED, 128, NULL)                                                         \
    X(STR, source, REQUIRED, 64, NULL)                                                             \
    X(STR, feed, REQUIRED, 64, NULL)                                                               \
    X(STR, observable_type, REQUIRED, 16, "url|domain")                                            \
    X(STR, observable, REQUIRED, 8192, NULL)                                                       \
    X(STR, disposition, REQUIRED, 16, "malicious|suspicious|clean")                                \
    X(INITV, messages, REQUIRED, 1000, NULL)

/* Every top-level record type: X(name, version). */
#define RECORD_TYPES(X)                                                                            \
    X(delivery, 1)                                                                                 \
    X(verdict, 1)                                                                                  \
    X(job, 1)                                                                                      \
    X(result, 2)                                                                                   \
    X(event, 2)                                                                                    \
    X(initiation, 1)

#define RECORD_CTYPE_STR char *
#define RECORD_CTYPE_INT int64_t
#define RECORD_CTYPE_BOOL bool
#define RECORD_CTYPE_STRV record_strv_t
#define RECORD_CTYPE_ATTV record_attv_t
#define RECORD_CTYPE_LINEV record_linev_t
#define RECORD_CTYPE_INITV record_initv_t
#define RECORD_MEMBER(kind, name, presence, max, allowed) RECORD_CTYPE_##kind name;

typedef struct record_attachment {
    RECORD_ATTACHMENT_FIELDS(RECORD_MEMBER)
} record_attachment_t;
typedef struct record_line {
    RECORD_LINE_FIELDS(RECORD_MEMBER)
} record_line_t;
typedef struct record_initiated {
    RECORD_INITIATED_FIELDS(RECORD_MEMBER)
} record_initiated_t;
typedef struct {
    RECORD_DELIVERY_FIELDS(RECORD_MEMBER)
} record_delivery_t;
typedef struct {
    RECORD_VERDICT_FIELDS(RECORD_MEMBER)
} record_verdict_t;
typedef struct {
    RECORD_JOB_FIELDS(RECORD_MEMBER)
} record_job_t;
typedef struct {
    RECORD_RESULT_FIELDS(RECORD_MEMBER)
} record_result_t;
typedef struct {
    RECORD_EVENT_FIELDS(RECORD_MEMBER)
} record_event_t;
typedef struct {
    RECORD_INITIATION_FIELDS(RECORD_MEMBER)
} record_initiation_t;

typedef struct record_desc record_desc_t;

/* The descriptors, one per type (and one for each sub-record: attachment, line, initiated). */
#define RECORD_DECLARE_DESC(name, version) extern const record_desc_t RECORD_DESC_##name;
RECORD_TYPES(RECORD_DECLARE_DESC)
#undef RECORD_DECLARE_DESC
extern const record_desc_t RECORD_DESC_attachment;
extern const record_desc_t RECORD_DESC_line;
extern const record_desc_t RECORD_DESC_initiated;

/* record_desc_name, record_desc_version - a descriptor's type name and current version. */
const char *record_desc_name(const record_desc_t *desc);
int record_desc_version(const record_desc_t *desc);
/* record_desc_by_name - the descriptor of a top-level type, or NULL. */
const record_desc_t *record_desc_by_name(const char *name);

/* record_init - fill a new record's header: a fresh UUID id and the current time. */
void record_init(const record_desc_t *desc, void *record);

/* record_encode - append rec (of type desc) as a msgpack map to buf. 0, or -1 when a
 * required field is missing or a value breaks its limits (err says which). */
int record_encode(const record_desc_t *desc, const void *record, msgpack_sbuffer *buf, char *err, size_t errsize);

/* record_decode - decode buf[0..len) as a record of type desc into *record (zeroed first).
 * 0, or -1 with the reason in err (nothing to free then). On success the caller frees the
 * contents with record_clear(). */
int record_decode(const record_desc_t *desc, const char *buf, size_t len, void *record, char *err, size_t errsize);

/* record_peek_type - the "type" of an encoded record copied into out, 0 or -1. */
int record_peek_type(const char *buf, size_t len, char *out, size_t outsize);

/* record_clear - free every field of record and zero it. */
void record_clear(const record_desc_t *desc, void *record);

/* record_strv_push - append a copy of s to an array field. */
void record_strv_push(record_strv_t *strv, const char *s);
/* record_linev_push - append a line (copies of log and message) to an event's lines. */
void record_linev_push(record_linev_t *lines, const char *log, int64_t mid, const char *message);

#endif
