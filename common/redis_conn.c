/*
 * redis_conn.c - lazy, self-healing hiredis connection; see redis_conn.h.
 */
#include "redis_conn.h"

#include <ctype.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

struct redis_conn {
    redis_conn_address_t addr;
    struct timeval timeout;
    redisContext *ctx;
    size_t pending;   /* commands appended but not read */
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

int redis_conn_parse_url(const char *url, redis_conn_address_t *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncasecmp(url, "redis://", 8) != 0) {
        snprintf(err, errsize, "'%s' is not a redis:// URL", url);
        return -1;
    }
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    const char *slash = strchr(p, '/');
    if (at && (!slash || at < slash)) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p; /* user:password or just password */
        if (at > pw)
            out->password = util_xstrndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t hostlen = strcspn(p, ":/");
    if (hostlen == 0 || hostlen > 253) {
        snprintf(err, errsize, "'%s' has no host", url);
        redis_conn_address_release(out);
        return -1;
    }
    out->host = util_xstrndup(p, hostlen);
    p += hostlen;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/')) {
            snprintf(err, errsize, "'%s' has a bad port", url);
            redis_conn_address_release(out);
            return -1;
        }
        out->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || db < 0 || db > 1000000) {
            snprintf(err, errsize, "'%s' has a bad database number", url);
            redis_conn_address_release(out);
            return -1;
        }
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
    self->timeout.tv_sec = timeout_ms / 1000;
    self->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    snprintf(self->describe, sizeof(self->describe), "%s:%d/%d", self->addr.host, self->addr.port, self->addr.db);
    return self;
}

/* redis_conn_drop - forget a broken connection; the next command reconnects. */
static void redis_conn_drop(redis_conn_t *self)
{
    if (self->ctx)
        redisFree(self->ctx);
    self->ctx = NULL;
    self->pending = 0;
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
    redisContext *c = redisConnectWithTimeout(self->addr.host, self->addr.port, self->timeout);
    if (!c || c->err) {
        redis_conn_set_error(self, "redis %s: cannot connect: %s", self->describe, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return -1;
    }
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
    if (redis_conn_open(self) < 0)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(self->ctx, fmt, ap);
    va_end(ap);
    return redis_conn_check(self, r);
}

redisReply *redis_conn_commandargv(redis_conn_t *self, int argc, const char **argv, const size_t *argvlen)
{
    if (self->pending) {
        redis_conn_set_error(self, "redis %s: command issued with a pipeline pending", self->describe);
        return NULL;
    }
    if (redis_conn_open(self) < 0)
        return NULL;
    return redis_conn_check(self, redisCommandArgv(self->ctx, argc, argv, argvlen));
}

int redis_conn_append(redis_conn_t *self, const char *fmt, ...)
{
    if (redis_conn_open(self) < 0)
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
    if (redis_conn_open(self) < 0)
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
    if (!self->ctx) {
        /* the connection failed while commands were queued (an earlier append set errstr) */
        for (size_t i = 0; i < count; i++)
            replies[i] = NULL;
        return -1;
    }
    if (count != self->pending) {
        redis_conn_set_error(self, "redis %s: pipeline holds %zu commands, %zu replies asked", self->describe,
                             self->pending, count);
        redis_conn_drop(self);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        void *r = NULL;
        if (redisGetReply(self->ctx, &r) != REDIS_OK || !r) {
            redis_conn_set_error(self, "redis %s: %s", self->describe, self->ctx->errstr);
            for (size_t j = 0; j < i; j++) {
                freeReplyObject(replies[j]);
                replies[j] = NULL;
            }
            redis_conn_drop(self);
            return -1;
        }
        replies[i] = r;
    }
    self->pending = 0;
    return 0;
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

redisReply *redis_conn_eval(redis_conn_t *self, redis_script_t *script, int nkeys, int argc,
                            const char **argv, const size_t *argvlen)
{
    redis_script_hash(script);
    int total = argc + 3;
    const char **args = util_xcalloc((size_t)total, sizeof(*args));
    size_t *lens = util_xcalloc((size_t)total, sizeof(*lens));
    char nkeys_text[16];
    snprintf(nkeys_text, sizeof(nkeys_text), "%d", nkeys);
    args[0] = "EVALSHA";
    args[1] = script->sha1;
    args[2] = nkeys_text;
    for (int i = 0; i < argc; i++) {
        args[i + 3] = argv[i];
        lens[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(args[i]);

    redisReply *r = NULL;
    if (redis_conn_open(self) == 0) {
        r = redisCommandArgv(self->ctx, total, args, lens);
        if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(r);
            args[0] = "EVAL";
            args[1] = script->source;
            lens[0] = 4;
            lens[1] = strlen(script->source);
            r = redisCommandArgv(self->ctx, total, args, lens);
        }
        r = redis_conn_check(self, r);
    }
    free(args);
    free(lens);
    return r;
}
