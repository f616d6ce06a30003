/*
 * edge_dump - print the records held in a bus stream as JSON lines, for integration tests.
 *
 *   edge_dump --redis URL STREAM_KEY
 *
 * Each entry of STREAM_KEY (e.g. cb:bus:verdicts:q, cb:bus:sink:q) is decoded as a verdict or
 * an event record and printed as one JSON object with the record's fields; an entry that does
 * not decode prints {"error": "..."}. Exit 1 when Redis cannot be read.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "record.h"
#include "redis_conn.h"

/* dump_record - one decoded record as a JSON object (caller decrefs). */
static json_t *dump_record(const char *payload, size_t len)
{
    char type[32], err[256];
    if (record_peek_type(payload, len, type, sizeof(type)) < 0)
        return json_pack("{s:s}", "error", "no type");
    if (strcmp(type, "verdict") == 0) {
        record_verdict_t v;
        if (record_decode(&RECORD_DESC_verdict, payload, len, &v, err, sizeof(err)) < 0)
            return json_pack("{s:s}", "error", err);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "type", "verdict", "id", v.id, "feed", v.feed,
                              "observable_type", v.observable_type, "value", v.value, "disposition", v.disposition,
                              "observed_ms", (json_int_t)v.observed_ms);
        if (v.email_id)
            json_object_set_new(o, "email_id", json_string(v.email_id));
        if (v.context)
            json_object_set_new(o, "context", json_string(v.context));
        record_clear(&RECORD_DESC_verdict, &v);
        return o;
    }
    if (strcmp(type, "event") == 0) {
        record_event_t e;
        if (record_decode(&RECORD_DESC_event, payload, len, &e, err, sizeof(err)) < 0)
            return json_pack("{s:s}", "error", err);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "event", "id", e.id, "program", e.program,
                              "log", e.log, "level", e.level, "message", e.message);
        record_clear(&RECORD_DESC_event, &e);
        return o;
    }
    return json_pack("{s:s, s:s}", "type", type, "error", "not shown");
}

int main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[1], "--redis") != 0) {
        fprintf(stderr, "usage: edge_dump --redis URL STREAM_KEY\n");
        return 2;
    }
    char err[256];
    redis_conn_t *redis = redis_conn_new(argv[2], NULL, 5000, err, sizeof(err));
    if (!redis) {
        fprintf(stderr, "edge_dump: %s\n", err);
        return 1;
    }
    redisReply *r = redis_conn_command(redis, "XRANGE %s - +", argv[3]);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "edge_dump: %s\n", r ? "unexpected reply" : redis_conn_errstr(redis));
        if (r)
            freeReplyObject(r);
        redis_conn_destroy(&redis);
        return 1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *fields = r->element[i]->element[1];
        const redisReply *payload = NULL;
        for (size_t j = 0; j + 1 < fields->elements; j += 2)
            if (strcmp(fields->element[j]->str, "r") == 0)
                payload = fields->element[j + 1];
        json_t *o = payload ? dump_record(payload->str, payload->len) : json_pack("{s:s}", "error", "no payload");
        char *line = json_dumps(o, JSON_COMPACT);
        puts(line);
        free(line);
        json_decref(o);
    }
    freeReplyObject(r);
    redis_conn_destroy(&redis);
    return 0;
}
