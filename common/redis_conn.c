/*
 * redis_conn.c - lazy, self-healing hiredis connection; see redis_conn.h.
 */
#include "redis_conn.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

struct redis_conn {
    redis_conn_address_t addr;
    struct timeval timeout; /* {0, 0}: none */
    redisContext *ctx;
    size_t pending;   /* commands appended but not read */
    size_t evals;       /* script runs sent (redis_conn_eval_send), their replies not read */
    size_t evals_lost;  /* runs sent on a connection that failed: their replies never come */
    char describe[300];
    char errstr[512];
};

static void redis_conn_set_error(redis_conn_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void redis_conn_set_error(redis_conn_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->errstr, sizeof(self->errstr), fmt, ap);
    va_end(ap);
}

void redis_conn_address_release(redis_conn_address_t *addr)
{
    free(addr->host);
    free(addr->password);
    addr->host = addr->password = NULL;
}

/* redis_conn_url_redacted - url with everything before its last '@' after the scheme replaced
 * by "***", so an error message never carries a password. */
static void redis_conn_url_redacted(const char *url, char *out, size_t size)
{
    const char *start = strstr(url, "://");
    start = start ? start + 3 : url;
    const char *at = strrchr(start, '@');
    if (at)
        snprintf(out, size, "%.*s***%s", (int)(start - url), url, at);
    else
        snprintf(out, size, "%s", url);
}

static int redis_conn_url_error(const char *url, redis_conn_address_t *out, const char *reason, char *err,
                                size_t errsize)
{
    char shown[300];
    redis_conn_url_redacted(url, shown, sizeof(shown));
    snprintf(err, errsize, "'%s' %s", shown, reason);
    redis_conn_address_release(out);
    return -1;
}

/* redis_conn_parse_digits - a decimal number of 1 to 9 digits (no sign, no blanks) at p; the
 * value, or -1. *end is set past the digits. */
static long redis_conn_parse_digits(const char *p, const char **end)
{
    long value = 0;
    size_t n = 0;
    while (isdigit((unsigned char)p[n]) && n < 10)
        value = value * 10 + (p[n++] - '0');
    *end = p + n;
    return n == 0 || n > 9 ? -1 : value;
}

int redis_conn_parse_url(const char *url, redis_conn_address_t *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (!url || strncasecmp(url, "redis://", 8) != 0)
        return redis_conn_url_error(url ? url : "(null)", out, "is not a redis:// URL", err, errsize);
    const char *p = url + 8;
    /* the userinfo ends at the last '@' of the authority (a password may contain '@') */
    size_t authlen = strcspn(p, "/");
    const char *at = NULL;
    for (const char *q = p; q < p + authlen; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p; /* user:password or just password */
        if (at > pw)
            out->password = util_xstrndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t hostlen = strcspn(p, ":/");
    if (hostlen == 0 || hostlen > 253)
        return redis_conn_url_error(url, out, "has no host", err, errsize);
    for (size_t i = 0; i < hostlen; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '.' && p[i] != '_')
            return redis_conn_url_error(url, out, "has a bad host", err, errsize);
    out->host = util_xstrndup(p, hostlen);
    p += hostlen;
    if (*p == ':') {
        const char *end;
        long port = redis_conn_parse_digits(p + 1, &end);
        if (port < 1 || port > 65535 || (*end && *end != '/'))
            return redis_conn_url_error(url, out, "has a bad port", err, errsize);
        out->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        const char *end;
        long db = redis_conn_parse_digits(p + 1, &end);
        if (db < 0 || *end || db > 1000000)
            return redis_conn_url_error(url, out, "has a bad database number", err, errsize);
        out->db = (int)db;
    }
    return 0;
}

redis_conn_t *redis_conn_new(const char *url, const char *password, int64_t timeout_ms, char *err, size_t errsize)
{
    redis_conn_t *self = util_xcalloc(1, sizeof(*self));
    if (redis_conn_parse_url(url, &self->addr, err, errsize) < 0) {
        free(self);
        return NULL;
    }
    if (password) {
        free(self->addr.password);
        self->addr.password = util_xstrdup(password);
    }
    if (timeout_ms > 0) { /* 0 or less: no timeout (a zero timeval would fail every connect) */
        self->timeout.tv_sec = (time_t)(timeout_ms / 1000);
        self->timeout.tv_usec = (suseconds_t)((timeout_ms % 1000) * 1000);
    }
    snprintf(self->describe, sizeof(self->describe), "%s:%d/%d", self->addr.host, self->addr.port, self->addr.db);
    return self;
}

/*
 * SIGPIPE: hiredis writes with write(2), so a write to a connection the server has reset (a
 * restarted Redis, while a large command or pipeline is still being sent) raises SIGPIPE,
 * which kills a process that has not ignored it. Around each exchange the signal is blocked in
 * the calling thread and a SIGPIPE raised meanwhile is consumed; the write then fails with
 * EPIPE like any other I/O error. Nothing is done when the process already ignores SIGPIPE.
 */
typedef struct {
    int active;
    sigset_t old_mask;
} redis_conn_sigpipe_t;

static void redis_conn_sigpipe_block(redis_conn_sigpipe_t *g)
{
    g->active = 0;
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
        return;
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
        return; /* one is already pending (blocked by the caller): not ours to consume */
    if (pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old_mask) == 0)
        g->active = 1;
}

static void redis_conn_sigpipe_restore(redis_conn_sigpipe_t *g)
{
    if (!g->active)
        return;
    int saved_errno = errno;
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        const struct timespec zero = {0, 0};
        for (int i = 0; i < 100 && sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR; i++)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
    errno = saved_errno;
}

/* redis_conn_drop - forget a broken connection; the next command reconnects. */
static void redis_conn_drop(redis_conn_t *self)
{
    if (self->ctx)
        redisFree(self->ctx);
    self->ctx = NULL;
    self->pending = 0;
    self->evals_lost += self->evals; /* their redis_conn_eval_recv fail, in order, before any new run */
    self->evals = 0;
}

void redis_conn_destroy(redis_conn_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    redis_conn_drop(*selfp);
    redis_conn_address_release(&(*selfp)->addr);
    free(*selfp);
    *selfp = NULL;
}

const char *redis_conn_errstr(const redis_conn_t *self)
{
    return self->errstr;
}

const char *redis_conn_describe(const redis_conn_t *self)
{
    return self->describe;
}

/* redis_conn_simple - run a setup command on a fresh context; 0 or -1. */
static int redis_conn_simple(redis_conn_t *self, redisReply *r, const char *what)
{
    if (!r) {
        redis_conn_set_error(self, "redis %s: %s during %s", self->describe, self->ctx->errstr, what);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        redis_conn_set_error(self, "redis %s: %s failed: %s", self->describe, what, r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* redis_conn_open - make sure a connection is up; 0 or -1. */
static int redis_conn_open(redis_conn_t *self)
{
    if (self->ctx)
        return 0;
    int has_timeout = self->timeout.tv_sec > 0 || self->timeout.tv_usec > 0;
    redisContext *c = has_timeout ? redisConnectWithTimeout(self->addr.host, self->addr.port, self->timeout)
                                  : redisConnect(self->addr.host, self->addr.port);
    if (!c || c->err) {
        redis_conn_set_error(self, "redis %s: cannot connect: %s", self->describe, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return -1;
    }
    if (has_timeout)
        redisSetTimeout(c, self->timeout);
    redisEnableKeepAlive(c);
    self->ctx = c;
    if (self->addr.password &&
        redis_conn_simple(self, redisCommand(c, "AUTH %s", self->addr.password), "AUTH") < 0) {
        redis_conn_drop(self);
        return -1;
    }
    if (self->addr.db &&
        redis_conn_simple(self, redisCommand(c, "SELECT %d", self->addr.db), "SELECT") < 0) {
        redis_conn_drop(self);
        return -1;
    }
    return 0;
}

/* redis_conn_check - turn a raw reply into the command result, recording failures. */
static redisReply *redis_conn_check(redis_conn_t *self, redisReply *r)
{
    if (!r) {
        redis_conn_set_error(self, "redis %s: %s", self->describe, self->ctx ? self->ctx->errstr : "not connected");
        redis_conn_drop(self);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        redis_conn_set_error(self, "redis %s: %s", self->describe, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisReply *redis_conn_command(redis_conn_t *self, const char *fmt, ...)
{
    if (self->pending) {
        redis_conn_set_error(self, "redis %s: command issued with a pipeline pending", self->describe);
        return NULL;
    }
    redis_conn_sigpipe_t guard;
    redis_conn_sigpipe_block(&guard);
    redisReply *r = NULL;
    if (redis_conn_open(self) == 0) {
        va_list ap;
        va_start(ap, fmt);
        r = redis_conn_check(self, redisvCommand(self->ctx, fmt, ap));
        va_end(ap);
    }
    redis_conn_sigpipe_restore(&guard);
    return r;
}

redisReply *redis_conn_commandargv(redis_conn_t *self, int argc, const char **argv, const size_t *argvlen)
{
    if (self->pending) {
        redis_conn_set_error(self, "redis %s: command issued with a pipeline pending", self->describe);
        return NULL;
    }
    redis_conn_sigpipe_t guard;
    redis_conn_sigpipe_block(&guard);
    redisReply *r = NULL;
    if (redis_conn_open(self) == 0)
        r = redis_conn_check(self, redisCommandArgv(self->ctx, argc, argv, argvlen));
    redis_conn_sigpipe_restore(&guard);
    return r;
}

/* redis_conn_open_guarded - redis_conn_open with SIGPIPE held off (AUTH and SELECT write). */
static int redis_conn_open_guarded(redis_conn_t *self)
{
    if (self->ctx)
        return 0;
    redis_conn_sigpipe_t guard;
    redis_conn_sigpipe_block(&guard);
    int rc = redis_conn_open(self);
    redis_conn_sigpipe_restore(&guard);
    return rc;
}

int redis_conn_append(redis_conn_t *self, const char *fmt, ...)
{
    if (redis_conn_open_guarded(self) < 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(self->ctx, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        redis_conn_set_error(self, "redis %s: cannot queue command: %s", self->describe, self->ctx->errstr);
        redis_conn_drop(self);
        return -1;
    }
    self->pending++;
    return 0;
}

int redis_conn_appendargv(redis_conn_t *self, int argc, const char **argv, const size_t *argvlen)
{
    if (redis_conn_open_guarded(self) < 0)
        return -1;
    if (redisAppendCommandArgv(self->ctx, argc, argv, argvlen) != REDIS_OK) {
        redis_conn_set_error(self, "redis %s: cannot queue command: %s", self->describe, self->ctx->errstr);
        redis_conn_drop(self);
        return -1;
    }
    self->pending++;
    return 0;
}

int redis_conn_pipeline_exec(redis_conn_t *self, redisReply **replies, size_t count)
{
    /* on any failure every slot is NULL, so a caller may free all count of them */
    for (size_t i = 0; i < count; i++)
        replies[i] = NULL;
    if (!self->ctx) {
        /* the connection failed while commands were queued (an earlier append set errstr) */
        if (!self->errstr[0])
            redis_conn_set_error(self, "redis %s: pipeline executed without a connection", self->describe);
        return -1;
    }
    if (count != self->pending) {
        redis_conn_set_error(self, "redis %s: pipeline holds %zu commands, %zu replies asked", self->describe,
                             self->pending, count);
        redis_conn_drop(self);
        return -1;
    }
    redis_conn_sigpipe_t guard;
    redis_conn_sigpipe_block(&guard);
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        void *r = NULL;
        if (redisGetReply(self->ctx, &r) != REDIS_OK || !r) {
            redis_conn_set_error(self, "redis %s: %s", self->describe,
                                 self->ctx->err ? self->ctx->errstr : "no reply");
            if (r)
                freeReplyObject(r);
            for (size_t j = 0; j < i; j++) {
                freeReplyObject(replies[j]);
                replies[j] = NULL;
            }
            redis_conn_drop(self);
            rc = -1;
            break;
        }
        replies[i] = r;
    }
    redis_conn_sigpipe_restore(&guard);
    if (rc == 0)
        self->pending = 0;
    return rc;
}

/* redis_script_hash - compute the script's SHA1 once. */
static void redis_script_hash(redis_script_t *script)
{
    if (script->sha1[0])
        return;
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script->source, strlen(script->source), digest);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(script->sha1 + 2 * i, 3, "%02x", digest[i]);
}

/* redis_eval_args - "EVALSHA sha nkeys" (or "EVAL source nkeys") followed by argv: a vector
 * the caller frees (both arrays), or NULL when the arguments are bad. */
static const char **redis_eval_args(redis_conn_t *self, redis_script_t *script, bool load, int nkeys, int argc,
                                    const char **argv, const size_t *argvlen, size_t **lensp, char nkeys_text[16])
{
    if (argc < 0 || nkeys < 0 || nkeys > argc) {
        redis_conn_set_error(self, "redis %s: bad script arguments (%d keys of %d)", self->describe, nkeys, argc);
        return NULL;
    }
    redis_script_hash(script);
    int total = argc + 3;
    const char **args = util_xcalloc((size_t)total, sizeof(*args));
    size_t *lens = util_xcalloc((size_t)total, sizeof(*lens));
    snprintf(nkeys_text, 16, "%d", nkeys);
    args[0] = load ? "EVAL" : "EVALSHA";
    args[1] = load ? script->source : script->sha1;
    args[2] = nkeys_text;
    for (int i = 0; i < argc; i++) {
        args[i + 3] = argv[i];
        lens[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(args[i]);
    *lensp = lens;
    return args;
}

redisReply *redis_conn_eval(redis_conn_t *self, redis_script_t *script, int nkeys, int argc,
                            const char **argv, const size_t *argvlen)
{
    if (self->pending) {
        /* the reply read would be the first pipelined command's */
        redis_conn_set_error(self, "redis %s: script run with a pipeline pending", self->describe);
        return NULL;
    }
    if (redis_conn_eval_send(self, script, nkeys, argc, argv, argvlen) != 0)
        return NULL;
    return redis_conn_eval_recv(self, script, nkeys, argc, argv, argvlen);
}

int redis_conn_eval_send(redis_conn_t *self, redis_script_t *script, int nkeys, int argc, const char **argv,
                         const size_t *argvlen)
{
    char nkeys_text[16];
    size_t *lens = NULL;
    const char **args = redis_eval_args(self, script, false, nkeys, argc, argv, argvlen, &lens, nkeys_text);
    if (!args)
        return -1;
    int rc = redis_conn_appendargv(self, argc + 3, args, lens);
    free(args);
    free(lens);
    if (rc != 0)
        return -1;
    /* written now, so that Redis runs it while the caller goes on */
    redis_conn_sigpipe_t guard;
    redis_conn_sigpipe_block(&guard);
    int done = 0;
    while (rc == 0 && !done)
        if (redisBufferWrite(self->ctx, &done) != REDIS_OK)
            rc = -1;
    redis_conn_sigpipe_restore(&guard);
    if (rc != 0) {
        redis_conn_set_error(self, "redis %s: %s", self->describe, self->ctx->err ? self->ctx->errstr : "write failed");
        self->pending--; /* this run was not sent: its caller knows (-1) */
        redis_conn_drop(self);
        return -1;
    }
    self->evals++;
    return 0;
}

redisReply *redis_conn_eval_recv(redis_conn_t *self, redis_script_t *script, int nkeys, int argc,
                                 const char **argv, const size_t *argvlen)
{
    if (self->evals_lost) {
        /* sent on a connection that failed since: its reply is gone (the next ones' are not) */
        self->evals_lost--;
        redis_conn_set_error(self, "redis %s: the connection failed before the script's reply", self->describe);
        return NULL;
    }
    if (!self->ctx || self->evals == 0) {
        redis_conn_set_error(self, "redis %s: no script run to wait for", self->describe);
        return NULL;
    }
    void *raw = NULL;
    redis_conn_sigpipe_t guard;
    redis_conn_sigpipe_block(&guard);
    int got = redisGetReply(self->ctx, &raw);
    redis_conn_sigpipe_restore(&guard);
    if (got != REDIS_OK || !raw) {
        redis_conn_set_error(self, "redis %s: %s", self->describe, self->ctx->err ? self->ctx->errstr : "no reply");
        if (raw)
            freeReplyObject(raw);
        self->evals--; /* this run's reply is lost with the connection, and reported now */
        redis_conn_drop(self);
        return NULL;
    }
    self->pending--;
    self->evals--;
    redisReply *r = raw;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        r = NULL;
        if (self->pending) {
            /* runs sent behind this one fail the same way; their callers try again */
            redis_conn_set_error(self, "redis %s: script not loaded (Redis restarted?); tried again", self->describe);
            return NULL;
        }
        /* a restarted (or flushed) Redis: the script did not run; load it and run it */
        char nkeys_text[16];
        size_t *lens = NULL;
        const char **args = redis_eval_args(self, script, true, nkeys, argc, argv, argvlen, &lens, nkeys_text);
        if (!args)
            return NULL;
        redis_conn_sigpipe_block(&guard);
        if (redis_conn_open(self) == 0)
            r = redisCommandArgv(self->ctx, argc + 3, args, lens);
        redis_conn_sigpipe_restore(&guard);
        free(args);
        free(lens);
    }
    return redis_conn_check(self, r);
}
