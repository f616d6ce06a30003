/*
 * redis_conn.h - a Redis connection that returns errors instead of exiting (hiredis).
 *
 * The connection is opened lazily and re-opened by the next command after any I/O error, so
 * a Redis restart costs the caller one failed command, never a crash. Every failure leaves a
 * message on the connection (redis_conn_errstr) and is reported as NULL / -1. A Redis error
 * reply (-ERR ...) is a failure too for single commands; in a pipeline the caller gets every
 * reply and checks each.
 *
 * Scripts: redis_conn_eval() runs a Lua script by SHA1 (EVALSHA) and loads it (EVAL) on
 * NOSCRIPT, so a restarted Redis is handled transparently.
 */
#ifndef CLAWBACK_REDIS_CONN_H
#define CLAWBACK_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *host;
    int port;
    int db;
    char *password; /* NULL when none */
} redis_conn_address_t;

/* redis_conn_parse_url - parse redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]; 0, or -1 with a reason
 * in err (which never shows the password). USER is ignored (AUTH sends the password alone); the
 * password ends at the last '@' before the first '/', and is not percent-decoded. On success the
 * caller releases out with redis_conn_address_release(). */
int redis_conn_parse_url(const char *url, redis_conn_address_t *out, char *err, size_t errsize);
void redis_conn_address_release(redis_conn_address_t *addr);

typedef struct redis_conn redis_conn_t;

/* redis_conn_new - a connection to url (not yet opened); password, when non-NULL, overrides
 * the URL's. timeout_ms bounds connecting and each reply (0 or less: no timeout). Returns NULL
 * with a reason in err when the URL is bad. Caller owns the result. A SIGPIPE raised by a write
 * to a reset connection is absorbed (the command fails), so callers need not ignore SIGPIPE. */
redis_conn_t *redis_conn_new(const char *url, const char *password, int64_t timeout_ms, char *err,
                             size_t errsize);
/* redis_conn_destroy - close and free; accepts NULL, clears the pointer. */
void redis_conn_destroy(redis_conn_t **self);

/* redis_conn_errstr - the last failure's message. */
const char *redis_conn_errstr(const redis_conn_t *self);
/* redis_conn_describe - "HOST:PORT/DB" for log lines (no password). */
const char *redis_conn_describe(const redis_conn_t *self);

/* redis_conn_command - run one command (hiredis format); the reply (caller frees with
 * freeReplyObject) or NULL on an I/O or Redis error. */
redisReply *redis_conn_command(redis_conn_t *self, const char *fmt, ...);
redisReply *redis_conn_commandargv(redis_conn_t *self, int argc, const char **argv, const size_t *argvlen);

/* redis_conn_append, redis_conn_appendargv - queue a command for the pipeline; 0 or -1. */
int redis_conn_append(redis_conn_t *self, const char *fmt, ...);
int redis_conn_appendargv(redis_conn_t *self, int argc, const char **argv, const size_t *argvlen);
/* redis_conn_pipeline_exec - send the queued commands in one write and read their replies
 * into replies[0..count) (count must be the number queued). 0, or -1 on an I/O error (every
 * reply freed, the connection dropped). The caller frees each reply. */
int redis_conn_pipeline_exec(redis_conn_t *self, redisReply **replies, size_t count);

typedef struct {
    const char *source; /* Lua source, static */
    char sha1[41];      /* filled on first use */
} redis_script_t;

/* redis_conn_eval - run script with nkeys keys followed by arguments (argv holds keys then
 * args; argvlen may be NULL for C strings). The reply or NULL, as redis_conn_command. */
redisReply *redis_conn_eval(redis_conn_t *self, redis_script_t *script, int nkeys, int argc,
                            const char **argv, const size_t *argvlen);
/* redis_conn_eval_send - send a script run (EVALSHA) at once, without waiting: Redis works on it
 * while the caller prepares the next, and several may be sent before the first reply is read.
 * redis_conn_eval_recv - the reply of the oldest run sent, called with its arguments (on
 * NOSCRIPT with no other run pending, the script is loaded and run with them; with runs
 * pending, NULL: each is to be tried again). Nothing but these may use the connection while
 * runs are pending. send: 0 or -1; recv: the reply or NULL, as redis_conn_command. */
int redis_conn_eval_send(redis_conn_t *self, redis_script_t *script, int nkeys, int argc, const char **argv,
                         const size_t *argvlen);
redisReply *redis_conn_eval_recv(redis_conn_t *self, redis_script_t *script, int nkeys, int argc,
                                 const char **argv, const size_t *argvlen);

#endif
