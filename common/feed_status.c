/*
 * feed_status.c - a feed's Redis keys and its state for operators; see feed_status.h.
 */
#include "feed_status.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

void feed_key(char *out, size_t size, const char *feed, const char *part)
{
    if (part)
        snprintf(out, size, "cb:feed:%s:%s", feed, part);
    else
        snprintf(out, size, "cb:feed:%s", feed);
}

/* feed_status_int - an integer field's value, 0 when absent or not a number. */
static int64_t feed_status_int(const redisReply *value)
{
    int64_t n = 0;
    if (value && value->type == REDIS_REPLY_STRING && util_parse_int64(value->str, &n) == 0)
        return n;
    return 0;
}

int feed_status_read(redis_conn_t *redis, const char *feed, feed_status_t *out)
{
    memset(out, 0, sizeof(*out));
    char hash[128], lease[128], seen[128];
    feed_key(hash, sizeof(hash), feed, NULL);
    feed_key(lease, sizeof(lease), feed, "lease");
    feed_key(seen, sizeof(seen), feed, "seen");
    if (redis_conn_append(redis, "HGETALL %s", hash) < 0 || redis_conn_append(redis, "GET %s", lease) < 0 ||
        redis_conn_append(redis, "PTTL %s", lease) < 0 || redis_conn_append(redis, "ZCARD %s", seen) < 0)
        return -1;
    redisReply *r[4] = {0};
    if (redis_conn_pipeline_exec(redis, r, 4) < 0)
        return -1;
    if (r[0]->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < r[0]->elements; i += 2) {
            const char *name = r[0]->element[i]->str;
            const redisReply *v = r[0]->element[i + 1];
            if (!name || v->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(name, FEED_FIELD_CURSOR) == 0)
                util_strlcpy(out->cursor, v->str, sizeof(out->cursor));
            else if (strcmp(name, FEED_FIELD_LAST_ERROR) == 0)
                util_strlcpy(out->last_error, v->str, sizeof(out->last_error));
            else if (strcmp(name, FEED_FIELD_LAST_POLL) == 0)
                out->last_poll_ms = feed_status_int(v);
            else if (strcmp(name, FEED_FIELD_LAST_SUCCESS) == 0)
                out->last_success_ms = feed_status_int(v);
            else if (strcmp(name, FEED_FIELD_NEXT_POLL) == 0)
                out->next_poll_ms = feed_status_int(v);
            else if (strcmp(name, FEED_FIELD_LAST_ERROR_MS) == 0)
                out->last_error_ms = feed_status_int(v);
            else if (strcmp(name, FEED_FIELD_FAILURES) == 0)
                out->failures = feed_status_int(v);
            else if (strcmp(name, FEED_FIELD_VERDICTS) == 0)
                out->verdicts = feed_status_int(v);
            else if (strcmp(name, FEED_FIELD_SKIPPED) == 0)
                out->skipped = feed_status_int(v);
            else if (strcmp(name, FEED_FIELD_WITHDRAWN) == 0)
                out->withdrawn = feed_status_int(v);
        }
    }
    if (r[1]->type == REDIS_REPLY_STRING)
        util_strlcpy(out->holder, r[1]->str, sizeof(out->holder));
    if (r[2]->type == REDIS_REPLY_INTEGER && r[2]->integer > 0)
        out->lease_ttl_ms = r[2]->integer;
    if (r[3]->type == REDIS_REPLY_INTEGER)
        out->seen = r[3]->integer;
    for (size_t i = 0; i < 4; i++)
        freeReplyObject(r[i]);
    return 0;
}
