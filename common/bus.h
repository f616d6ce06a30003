/*
 * bus.h - the at-least-once transport between Clawback's stages (ZeroMQ + Redis).
 *
 * An edge (verdicts, jobs, results, events, ...) is a Redis stream, cb:bus:<edge>:q, with one
 * consumer group, "dispatch". A stage's output is durable once bus_commit_run() has added it
 * to the stream; a record stays there until a consumer has committed its own output for it.
 *
 *   producer instances                                   consumer instances
 *   ------------------                                   ------------------
 *   bus_commit_run() --XADD--> [ Redis stream ]
 *   dispatcher:  XREADGROUP / XAUTOCLAIM  ... ROUTER ==REC==> DEALER (one per dispatcher)
 *                                          <==GET (window)==
 *   consumer's bus_commit_run(input=d): one Lua script, atomically:
 *       duplicate? (record id in cb:bus:<edge>:done) -> ack and drop
 *       XADD outputs, ZADD done, XACK + XDEL the input
 *
 * Properties (docs/ARCHITECTURE.md has the full argument):
 *   1. at-least-once: an entry leaves the stream only inside the consumer's atomic commit; a
 *      dispatched entry not committed within ack_timeout is claimed again (XAUTOCLAIM) by any
 *      live dispatcher and sent to a live consumer. SIGKILL on either side loses nothing.
 *   2. duplicates: record ids committed on an edge are remembered for dedup_window; a record
 *      seen again is acknowledged without calling the handler.
 *   3. sharing: dispatchers announce their endpoints in Redis; consumers connect to every
 *      live one and ask for work; instances come and go without restarting others.
 *   4. backpressure: dispatchers only send what a consumer asked for (its window); a commit
 *      to an edge holding max_waiting records returns BUS_FULL and a consumer whose output is
 *      full asks for nothing, so the slow-down propagates upstream; memory stays bounded.
 *   5. depth: bus_edge_stats() (and `clawback queues`) reads waiting, in flight, oldest age.
 *   6. a malformed or oversized frame is counted (cb:bus:stats) and dropped.
 *
 * The bus runs inside the caller's zloop; it never blocks longer than one Redis command.
 */
#ifndef CLAWBACK_BUS_H
#define CLAWBACK_BUS_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "record.h"
#include "redis_conn.h"

#define BUS_MAX_EDGE 32

typedef enum {
    BUS_OK = 0,
    BUS_DUPLICATE = 1, /* the input was already committed: nothing was written */
    BUS_FULL = 2,      /* an output edge holds max_waiting records: nothing was written */
    BUS_FENCED = 5,    /* a guard (bus_commit_guard) did not hold: nothing was written */
    BUS_ERROR = -1,    /* Redis failed (see bus_errstr): nothing was written */
} bus_status_t;

typedef struct bus bus_t;

/* A record handed to a consumer's handler. Valid only during the call, unless kept. */
typedef struct {
    const char *edge;
    const char *entry_id;  /* the stream entry */
    const char *record_id; /* the record's id (duplicate detection) */
    const char *payload;   /* the encoded record */
    size_t len;
} bus_delivery_t;

/* bus_handler_fn - process one delivery. A delivery must be committed within ack_timeout of its
 * dispatch, and up to `capacity` deliveries may wait behind it at the consumer: keep
 * capacity x (handler time) well under ack_timeout, or keep the delivery (bus_delivery_keep,
 * claim renewed) and finish the work asynchronously. Otherwise it is dispatched again: its
 * second commit is refused as a duplicate, but the handler's side effects run twice.
 * Return 0 when the delivery was committed
 * (bus_commit_run with it as input), set aside (bus_set_aside) or kept (bus_delivery_keep);
 * -1 when it could not be processed now (the bus retries it with backoff while it holds it). */
typedef int (*bus_handler_fn)(bus_t *bus, const bus_delivery_t *delivery, void *arg);

/* bus_new - a bus endpoint for `program` using the [bus] settings of cfg, redis (not owned)
 * and loop (not owned). NULL with a reason in err on failure. Caller owns the result. */
bus_t *bus_new(const config_t *cfg, redis_conn_t *redis, zloop_t *loop, const char *program, char *err,
               size_t errsize);
/* bus_destroy - stop (see bus_stop) and free; accepts NULL, clears the pointer. */
void bus_destroy(bus_t **self);
/* bus_errstr - the last failure's message. */
const char *bus_errstr(const bus_t *self);
/* bus_instance - this endpoint's instance name (program:host:pid:random). */
const char *bus_instance(const bus_t *self);

/* bus_produce - dispatch the records of edge to its consumers (binds the dispatcher socket on
 * first use and announces it). 0 or -1. */
int bus_produce(bus_t *self, const char *edge);
/* bus_consume - receive records of edge, calling handler(arg) for each. 0 or -1. */
int bus_consume(bus_t *self, const char *edge, bus_handler_fn handler, void *arg);
/* bus_stop - graceful stop: ask for nothing more, hand back held deliveries (they are
 * dispatched again at once), withdraw the announcements, flush counters. */
void bus_stop(bus_t *self);

/* bus_edge_has_room - whether the edge holds fewer than max_waiting records (cached for one
 * heartbeat); producers without an input (the poller) check it before producing more. */
bool bus_edge_has_room(bus_t *self, const char *edge);

/* A commit: outputs and state written atomically, optionally consuming one input. */
typedef struct bus_commit bus_commit_t;

/* bus_commit_new - start a commit; input (may be NULL) is the delivery it consumes. Caller
 * owns the result (bus_commit_destroy). */
bus_commit_t *bus_commit_new(bus_t *self, const bus_delivery_t *input);
/* bus_commit_add - add an encoded record with the given id to edge. -1 (and the commit will
 * refuse to run) when the edge name or the id is bad (1 to 128 bytes) or the record is larger
 * than max_record: such a record could never be dispatched. */
int bus_commit_add(bus_commit_t *commit, const char *edge, const char *record_id, const void *payload, size_t len);
/* bus_commit_add_record - encode record (of type desc) and add it to edge; 0, or -1 when it
 * does not encode (err says why). */
int bus_commit_add_record(bus_commit_t *commit, const char *edge, const record_desc_t *desc, const void *record,
                          char *err, size_t errsize);
/* State written in the same atomic step as the outputs (cursors, counters, seen sets): HSET,
 * HINCRBY, ZADD, HSETNX, RPUSH, conditional HDEL, in the order added for each key. Writes in a
 * row to one key with HSET (or ZADD, or RPUSH) are sent as one command: a commit of thousands
 * of fields costs a few Redis calls. */
void bus_commit_hset(bus_commit_t *commit, const char *key, const char *field, const char *value);
void bus_commit_hincrby(bus_commit_t *commit, const char *key, const char *field, int64_t delta);
void bus_commit_zadd(bus_commit_t *commit, const char *key, int64_t score, const char *member);
/* bus_commit_hsetnx - HSETNX; bus_commit_rpush - RPUSH of len bytes (a list of held records). */
void bus_commit_hsetnx(bus_commit_t *commit, const char *key, const char *field, const char *value);
void bus_commit_rpush(bus_commit_t *commit, const char *key, const void *value, size_t len);
/* bus_commit_pexpire - set key's time to live once every write of the commit is done (the
 * last call for a key wins). */
void bus_commit_pexpire(bus_commit_t *commit, const char *key, int64_t ttl_ms);
/* bus_commit_hdel_if - delete hash field key.field when it holds value (release a claim). */
void bus_commit_hdel_if(bus_commit_t *commit, const char *key, const char *field, const char *value);
/* bus_commit_guard - the commit only runs while string key holds value (a lease: a holder that
 * lost it writes nothing); otherwise bus_commit_run returns BUS_FENCED. */
void bus_commit_guard(bus_commit_t *commit, const char *key, const char *value);
/* bus_commit_guard_field - the commit only runs while hash field key.field is absent or holds
 * value (a claim: work someone else claimed is not done twice); otherwise BUS_FENCED. Field
 * guards in a row on one key with one value are checked with one HMGET. */
void bus_commit_guard_field(bus_commit_t *commit, const char *key, const char *field, const char *value);
/* bus_commit_records - how many records the commit adds to edges. */
size_t bus_commit_records(const bus_commit_t *commit);
/* bus_commit_run - execute it. BUS_OK, BUS_DUPLICATE, BUS_FULL or BUS_ERROR; the commit can be
 * run again after BUS_FULL or BUS_ERROR. */
bus_status_t bus_commit_run(bus_commit_t *commit);
/* bus_commit_send, bus_commit_finish - bus_commit_run in two halves, so that the caller can
 * prepare its next commit while Redis runs this one: send returns at once (0, or -1 and
 * finish then returns BUS_ERROR); finish waits for the outcome. Several commits may be sent
 * before the first is finished; they are finished in the order sent, and until then nothing
 * else may use the bus's Redis connection (destroying a sent commit finishes it). Each commit
 * is atomic on its own: one that fails does not undo the others, which may land before it is
 * tried again. If the connection fails, every commit sent on it finishes with BUS_ERROR. */
int bus_commit_send(bus_commit_t *commit);
bus_status_t bus_commit_finish(bus_commit_t *commit);
/* bus_commit_destroy - free; accepts NULL, clears the pointer. */
void bus_commit_destroy(bus_commit_t **commit);

/* bus_set_aside - a delivery that can never be processed (malformed, wrong type): move it to
 * cb:bus:<edge>:dead with the reason, count it, and acknowledge it. 0 or -1. */
int bus_set_aside(bus_t *self, const bus_delivery_t *delivery, const char *reason);

/* bus_delivery_keep - keep a delivery beyond the handler call (asynchronous work). The bus
 * keeps it claimed so it is not dispatched elsewhere; the caller must end it with
 * bus_delivery_release after committing (or to hand it back). Caller owns the copy. */
bus_delivery_t *bus_delivery_keep(bus_t *self, const bus_delivery_t *delivery);
/* bus_delivery_release - end a kept delivery; hand_back true makes it dispatchable again at
 * once (not committed). Frees *delivery and clears the pointer. */
void bus_delivery_release(bus_t *self, bus_delivery_t **delivery, bool hand_back);

/* Counters and depth of one edge, for operators. */
typedef struct {
    int64_t waiting;          /* in the stream, not yet dispatched */
    int64_t in_flight;        /* dispatched, not yet committed */
    int64_t oldest_age_ms;    /* age of the oldest record in the edge, 0 when empty */
    int64_t dispatchers;      /* live dispatcher instances */
    int64_t consumers;        /* live consumer instances */
    int64_t dead;             /* records set aside */
    int64_t committed, duplicates, redispatched, malformed_frames, oversized_frames;
} bus_edge_stats_t;

/* bus_edge_stats - read edge's figures from Redis; 0 or -1 (redis_conn_errstr says why). */
int bus_edge_stats(redis_conn_t *redis, const char *edge, bus_edge_stats_t *out);

/* bus_key - write the Redis key of an edge's part ("q", "done", "dead", ...) into out. */
void bus_key(char *out, size_t size, const char *edge, const char *part);

#endif
