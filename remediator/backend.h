/*
 * backend.h - one way into users' mailboxes (an account profile's type): the interface every
 * mailbox back-end implements, one file each (imap.c, graph.c; gmail and ews would be two
 * more). The remediator's core (remediate.c) owns the order of the steps, the profile chain,
 * retries, concurrency limits and the record of forwards; a back-end only talks to its server.
 *
 * Ownership and threads: a backend_t is created once per [profile NAME] at start and shared by
 * every worker thread, so everything it keeps across calls (cached connections, a token) is
 * guarded inside it. A session is one mailbox, checked out by one worker for one job and
 * returned with backend_ops.release; a back-end may keep it (an open IMAP connection) for the
 * next job of that mailbox. Strings handed in are borrowed for the call. A back-end may also
 * take several Delete jobs of one mailbox at once (find_many, remove_many): the core then
 * hands it the jobs of that mailbox that are waiting, together.
 *
 * Every call that talks to a server fills a backend_outcome_t:
 *   BACKEND_OK         done (find: at least one copy found);
 *   BACKEND_NOT_FOUND  the mailbox holds no copy (already gone: not an error);
 *   BACKEND_FAILED     permanent (access denied, no such mailbox, bad configuration): the
 *                      job is reported Failed with detail, not retried;
 *   BACKEND_RETRY      temporary (network, timeout, 5xx, 429, Graph MailboxConcurrency):
 *                      tried again later; retry_after_ms is the server's Retry-After, or -1
 *                      for the core's capped exponential backoff.
 * detail says what happened in words an operator reads in the logs (no secrets, no tokens).
 */
#ifndef CLAWBACK_REMEDIATOR_BACKEND_H
#define CLAWBACK_REMEDIATOR_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef enum {
    BACKEND_OK = 0,
    BACKEND_NOT_FOUND,
    BACKEND_FAILED,
    BACKEND_RETRY,
} backend_status_t;

typedef struct {
    backend_status_t status;
    int64_t retry_after_ms; /* BACKEND_RETRY: the server's delay, or -1 */
    char detail[512];
} backend_outcome_t;

/* What a back-end needs of a job. */
typedef struct {
    const char *id;         /* the job's record id (tags a forward so a repeat is recognised) */
    const char *batch;      /* batch UUID */
    int64_t mid;            /* the gateway's message id */
    const char *mailbox;    /* the recipient address whose mailbox is searched */
    const char *message_id; /* the Message-ID header value, with its <> as delivered */
    const char *subject;    /* as indexed, may be NULL (a back-end reads the real one) */
} backend_job_t;

typedef struct backend backend_t;                 /* one profile, shared by the workers */
typedef struct backend_session backend_session_t; /* one mailbox, one worker at a time */

typedef struct {
    const char *type; /* the profile type it implements: "imap", "graph" */
    /* open - the back-end of profile (credentials read now; nothing is connected yet). NULL
     * with a reason in err when the profile cannot work (unreadable secret file, ...). */
    backend_t *(*open)(const config_profile_t *profile, char *err, size_t errsize);
    /* destroy - close every connection and free; accepts NULL, clears the pointer. */
    void (*destroy)(backend_t **self);
    /* session - a session on mailbox: a kept one when there is one, else new (connect and log
     * in for IMAP: failures fill out). NULL when out says why (FAILED or RETRY). */
    backend_session_t *(*session)(backend_t *self, const char *mailbox, backend_outcome_t *out);
    /* release - end a session; reusable false when it must not serve another job (a
     * connection in an unknown state). */
    void (*release)(backend_t *self, backend_session_t *session, bool reusable);
    /* find - locate every copy of the job's message in the mailbox, in every folder, by its
     * Message-ID, confirming the exact header value (a substring search is not enough). The
     * copies found are kept in the session for forward and remove. OK, NOT_FOUND, FAILED or
     * RETRY. */
    void (*find)(backend_session_t *session, const backend_job_t *job, backend_outcome_t *out);
    /* forward - send one copy found to `to` with "[Message Remediated] " before its subject,
     * tagged with the job id (so a repeat can be recognised by the receiver). */
    void (*forward)(backend_session_t *session, const backend_job_t *job, const char *to, backend_outcome_t *out);
    /* remove - delete every copy found, as the profile's delete setting says (quarantine:
     * recoverable; permanent). NOT_FOUND when every copy was already gone. */
    void (*remove)(backend_session_t *session, const backend_job_t *job, backend_outcome_t *out);
    /* find_many - (optional) find for n jobs of the session's mailbox at once (n at most
     * BACKEND_MAX_MANY): the same as n finds, in fewer round trips (one search per folder for
     * all of them). outs[i] is jobs[i]'s outcome; the copies of every job are kept. */
    void (*find_many)(backend_session_t *session, const backend_job_t *jobs, size_t n, backend_outcome_t *outs);
    /* remove_many - (optional, with find_many) remove for the jobs of the last find_many whose
     * outs[i] is BACKEND_OK on entry (the others are left as they are): each copy of theirs
     * is removed once, in one command per folder; outs[i] becomes jobs[i]'s remove outcome.
     * When a command fails, the jobs whose copies it did not reach get its failure. */
    void (*remove_many)(backend_session_t *session, const backend_job_t *jobs, size_t n, backend_outcome_t *outs);
} backend_ops_t;

/* Jobs handed to find_many / remove_many at once. */
#define BACKEND_MAX_MANY 64

/* The back-ends compiled in. */
extern const backend_ops_t BACKEND_IMAP;
extern const backend_ops_t BACKEND_GRAPH;

/* backend_ops_for - the back-end of a profile type, or NULL (remediate.c holds the table). */
const backend_ops_t *backend_ops_for(const char *type);

/* backend_outcome_set - fill out (status, retry_after_ms, printf-style detail); returns
 * status, for `return backend_outcome_set(...)`. */
backend_status_t backend_outcome_set(backend_outcome_t *out, backend_status_t status, int64_t retry_after_ms,
                                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* backend_read_secret - the first line of the file at path (a password, a client secret) into
 * *out (free it with backend_free_secret); 0, or -1 with "[profile PROFILE] KEY: why" in err. */
int backend_read_secret(const char *profile, const char *key, const char *path, char **out, char *err,
                        size_t errsize);
/* backend_free_secret - cleanse and free a secret; accepts NULL, clears the pointer. */
void backend_free_secret(char **secret);

/* The prefix a forwarded message's subject gets (the seed gateway's). */
#define BACKEND_FORWARD_PREFIX "[Message Remediated] "
/* The header that tags a forwarded message with its job id. */
#define BACKEND_JOB_HEADER "X-Clawback-Job"

#endif
