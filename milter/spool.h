/*
 * spool.h - clawback-milter's local spool: every message the MTA accepts is written here
 * before the milter answers, and stays until it is in the index.
 *
 * Layout under the spool directory:
 *   tmp/    messages being received (one file each; left-overs are removed at start: the MTA
 *           never had our answer for them, so it still holds them, see docs/milter.md)
 *   ready/  complete messages waiting to be indexed; names sort in arrival order
 *   bad/    messages that could not be parsed or indexed, each with NAME.reason
 *   free/   indexed files kept for reuse by the next messages (no inode allocated and freed
 *           per message); emptied at start
 *   status  the backlog (depth, oldest age), rewritten by the indexer (spool_status_write)
 *
 * A spool file is the message as the MTA received it (headers rebuilt as "Name: value\r\n",
 * then the body as sent), followed by the envelope written at end of message, then one fixed
 * trailer line giving where the envelope starts:
 *
 *   <message bytes><envelope: "key value\n" lines, values percent-encoded>
 *   "CLAWBACK-SPOOL 1 <20-digit offset of the envelope>\n"
 *
 * so the body goes to disk as it arrives (the message is in memory only once, when the
 * indexer maps the file) and the file becomes visible in ready/ whole, by one rename after
 * fsync. The envelope keys are SPOOL_FIELDS below plus "rcpt" (repeated); unknown keys are
 * ignored, so the format can grow.
 *
 * Thread safety: a spool_t may be used by several threads (writers and one reader) at once;
 * each spool_msg_t by one thread at a time.
 */
#ifndef CLAWBACK_MILTER_SPOOL_H
#define CLAWBACK_MILTER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_VERSION 1
#define SPOOL_TRAILER_LEN 38 /* "CLAWBACK-SPOOL 1 " + 20 digits + "\n" */
#define SPOOL_MAX_RCPTS 10000
#define SPOOL_MAX_ENVELOPE (4u * 1024 * 1024)

/* What the MTA told us besides the message. Strings may be NULL. */
typedef struct {
    char *client_ip; /* the connecting client's address; NULL for a local (unix) client */
    char *helo;
    char *sender;   /* MAIL FROM address without <>, "" for the null sender */
    char *queue_id; /* the MTA's queue id ({i}) */
    int64_t time_ms; /* when the message was accepted */
    int64_t size;    /* bytes the MTA sent (headers rebuilt, body), kept or not */
    int64_t truncated; /* 1 when only the first max_size bytes were kept */
    char **rcpts;
    size_t n_rcpts;
} spool_envelope_t;

/* X(key, kind, member): the scalar envelope fields, in file order. */
#define SPOOL_FIELDS(X)                                                                             \
    X(time_ms, INT, time_ms)                                                                        \
    X(client_ip, STR, client_ip)                                                                    \
    X(helo, STR, helo)                                                                              \
    X(sender, STR, sender)                                                                          \
    X(queue_id, STR, queue_id)                                                                      \
    X(size, INT, size)                                                                              \
    X(truncated, INT, truncated)

/* spool_envelope_clear - free what an envelope holds (a read one) and zero it. */
void spool_envelope_clear(spool_envelope_t *env);

typedef struct spool spool_t;
typedef struct spool_msg spool_msg_t;

/* When a committed message's file reaches the disk ([milter] sync). */
typedef enum {
    SPOOL_SYNC_ALWAYS,   /* fdatasync the file and fsync ready/ before spool_msg_commit returns
                          * (before the MTA hears accept): a machine crash loses nothing */
    SPOOL_SYNC_EVERYSEC, /* a spool thread syncs what was committed, once a second: a machine
                          * crash loses at most the last second's (as Redis's everysec) */
    SPOOL_SYNC_NO,       /* the kernel's write-back decides */
} spool_sync_t;

/* spool_sync_parse - "always", "everysec", "no" into *out. 0, or -1 for anything else. */
int spool_sync_parse(const char *text, spool_sync_t *out);

/* spool_open - the spool in dir (created with tmp/, ready/, bad/, free/ when missing; tmp/ and
 * free/ emptied), syncing as sync says (EVERYSEC starts the spool's syncer thread). NULL with
 * the reason in err. Caller destroys. */
spool_t *spool_open(const char *dir, spool_sync_t sync, char *err, size_t errsize);
/* spool_close - sync what is pending, stop the syncer, free; NULL-safe, clears the pointer. */
void spool_close(spool_t **self);
const char *spool_dir(const spool_t *self);

/* spool_msg_new - start a message (a file in tmp/). At most max_size bytes (0: no limit) of
 * it are kept; leading_space: header values are given with the space after the colon (the
 * MTA's SMFIP_HDR_LEADSPC), so none is added. NULL with the reason in err. */
spool_msg_t *spool_msg_new(spool_t *spool, int64_t max_size, bool leading_space, char *err, size_t errsize);
/* spool_msg_header - append one header as "Name: value\r\n"; a folded value's bare "\n" line
 * breaks become "\r\n". 0, or -1 on a write error (spool_msg_errstr). */
int spool_msg_header(spool_msg_t *m, const char *name, const char *value);
/* spool_msg_end_headers - the empty line after the headers. 0 or -1. */
int spool_msg_end_headers(spool_msg_t *m);
/* spool_msg_body - append a body chunk as the MTA sent it. 0 or -1. */
int spool_msg_body(spool_msg_t *m, const void *data, size_t len);
/* spool_msg_size - bytes given so far (kept or not). */
int64_t spool_msg_size(const spool_msg_t *m);
/* spool_msg_truncated - whether bytes past max_size were dropped. */
bool spool_msg_truncated(const spool_msg_t *m);
const char *spool_msg_errstr(const spool_msg_t *m);
/* spool_msg_commit - write env (its size and truncated are filled in here), fsync when the
 * spool syncs, and move the file into ready/; the message is destroyed and *m cleared either
 * way. The ready name goes to name (64 bytes) when not NULL. 0, or -1 with the reason in err
 * (the file is removed). */
int spool_msg_commit(spool_msg_t **m, spool_envelope_t *env, char name[64], char *err, size_t errsize);
/* spool_msg_abort - drop the message (its file is removed); NULL-safe, clears the pointer. */
void spool_msg_abort(spool_msg_t **m);

/* spool_list - the names in ready/ in arrival order, at most max (0: all). *names is
 * allocated (free each and the array). 0 or -1 (errno). */
int spool_list(spool_t *self, size_t max, char ***names, size_t *n);

/* A message read back from ready/: the file's bytes read into one buffer, the message the
 * start of it (read, not mapped: unmapping a file per message in a process of many threads
 * cost a TLB flush on every core each time, bench/milter.sh). */
typedef struct {
    spool_envelope_t env;
    const char *data; /* the message, in buf */
    size_t len;
    char *buf; /* the whole file (owned) */
} spool_entry_t;

/* spool_read - read ready/name into *e (clear it with spool_entry_clear). 0; -1 with the
 * reason in err when the file is not a complete spool file (set it aside); -2 when it could
 * not be opened or read (errno in err). */
int spool_read(spool_t *self, const char *name, spool_entry_t *e, char *err, size_t errsize);
void spool_entry_clear(spool_entry_t *e);

/* spool_parse - the spool file format alone: split data (len bytes) into message and
 * envelope. 0, or -1 with the reason in err. Exposed for tests. */
int spool_parse(const char *data, size_t len, spool_envelope_t *env, size_t *msg_len, char *err, size_t errsize);

/* spool_remove - take ready/name (indexed) away: moved to free/ for spool_msg_new to reuse
 * (up to 256 files of at most 1 MB), else deleted. 0 or -1. */
int spool_remove(spool_t *self, const char *name);
/* spool_set_aside - move ready/name to bad/name and write the reason beside it. 0 or -1. */
int spool_set_aside(spool_t *self, const char *name, const char *reason);

/* spool_backlog - messages in ready/ and the age of the oldest (0 when none), in ms. 0 or -1. */
int spool_backlog(spool_t *self, size_t *depth, int64_t *oldest_age_ms);
/* spool_status_write - replace spool_dir/status with text (atomically). 0 or -1. */
int spool_status_write(spool_t *self, const char *text);

#endif
