/*
 * bus.c - dispatchers, consumers and atomic commits of the stage-to-stage transport; see
 * bus.h for the design and docs/ARCHITECTURE.md for the argument that it loses nothing.
 *
 * Wire protocol (ZeroMQ multipart; the consumer's DEALER connects to the dispatcher's ROUTER):
 *   consumer -> dispatcher:  "GET" <edge> <window> <received>
 *       window: records the consumer can take now; received: records it has received on this
 *       connection. The dispatcher's credit is window - (sent - received), so a GET never
 *       over-grants, whatever crossed it in flight.
 *   dispatcher -> consumer:  "REC" <edge> <entry id> <record id> <payload>
 * Anything else is counted as malformed (or oversized) and dropped.
 */
#include "bus.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

#define BUS_GROUP "dispatch"
#define BUS_MAX_EDGES 16
#define BUS_TICK_MS 20
#define BUS_READ_BATCH 128
#define BUS_DEAD_MAXLEN 10000
#define BUS_MAX_ENTRY_ID 48
#define BUS_NOT_DUPLICATE 3 /* internal commit status: a duplicate-only commit found none */
#define BUS_UNKNOWN_ENTRY 4 /* internal commit status: the entry is not in the stream */

typedef struct bus_edge bus_edge_t;

/* A consumer's connection to one dispatcher endpoint. */
typedef struct {
    struct bus *bus;
    bus_edge_t *edge;
    char *endpoint;
    zsock_t *sock;
    uint64_t received;
    uint64_t received_at_get;
    bool seen;        /* still announced (refresh bookkeeping) */
    bool get_pending; /* the last GET could not be sent (not connected yet): retried every tick */
} bus_peer_t;

/* A consumer connection known to this dispatcher. */
typedef struct {
    bus_edge_t *edge;
    zframe_t *identity;
    int64_t window;
    uint64_t sent;
    uint64_t reported_received;
    int64_t last_seen_ms;
} bus_remote_t;

/* A delivery the consumer holds: being retried, or kept by the handler. */
typedef struct {
    bus_delivery_t d; /* strings owned here */
    bus_edge_t *edge;
    void *handle; /* its place in bus_t.held (removal without a search: thousands are kept) */
    bool kept;
    int64_t next_attempt_ms;
    int64_t backoff_ms;
} bus_held_t;

typedef struct {
    int64_t committed, duplicates, redispatched, malformed_frames, oversized_frames, dead, dispatched;
} bus_counters_t;

struct bus_edge {
    char name[BUS_MAX_EDGE + 1];
    char stream_key[96], done_key[96], dead_key[96], dispatchers_key[96], consumers_key[96];
    bool producing, consuming;
    bus_handler_fn handler;
    void *arg;
    zlistx_t *peers;   /* bus_peer_t*, consumer side */
    zlistx_t *remotes; /* bus_remote_t*, dispatcher side */
    char claim_cursor[BUS_MAX_ENTRY_ID];
    int64_t next_claim_ms; /* monotonic time of the next XAUTOCLAIM */
    int64_t next_prune_ms; /* monotonic time of the next bus_prune */
    bool has_room;
    int64_t room_checked_ms;
    bus_counters_t counters;
};

struct bus {
    redis_conn_t *redis;
    zloop_t *loop;
    char program[64];
    char instance[160];
    int64_t capacity, ack_timeout_ms, heartbeat_ms, max_waiting, max_record, dedup_window_ms;
    char *bind, *advertise;
    zsock_t *router;
    char endpoint[256];
    int timer_id;
    int64_t next_heartbeat_ms, next_touch_ms;
    bus_edge_t edges[BUS_MAX_EDGES];
    size_t nedges;
    bus_counters_t unattributed; /* frames whose edge is unknown */
    zlistx_t *held;              /* bus_held_t* */
    const bus_delivery_t *current; /* the delivery being handled */
    bool current_done;
    bool current_failed; /* a commit consuming it failed during the handler call */
    bool stopped;
    int64_t next_redis_warning_ms; /* Redis failures are logged at most every 10 s */
    int64_t redis_failures;        /* since the last warning */
    char errstr[512];
};

/* An argument of a commit's operation: len bytes at off in the commit's arena. */
typedef struct {
    size_t off, len;
} bus_arg_t;

#define BUS_OP_MAX_ARGS 2000 /* arguments of one operation (one redis.call; Lua's stack is 8000) */

/* One Redis operation of a commit. Guards: 'g' GET key must equal args[0]; 'f' each hash field
 * args[1..] of key must be absent or equal args[0]. Outputs ('x'): args[0] the reason (dead
 * letters), then (record id, payload) pairs, XADDed to key (maxlen 0: capped by max_waiting;
 * > 0: trimmed, never full). Writes: 'h' HSET key (field, value)..., 'z' ZADD key (score,
 * member)..., 'r' RPUSH key value..., 'i' HINCRBY key field delta, 'n' HSETNX key field value,
 * 'd' HDEL key field when it holds value. Writes of one mergeable op to one key in a row join
 * one operation: exact, since operations on different keys commute. */
typedef struct {
    char op;
    size_t key; /* index into the commit's keys */
    int64_t maxlen;
    bus_arg_t *args;
    size_t nargs, cap;
} bus_op_t;

typedef struct {
    bus_op_t *v;
    size_t n, cap;
} bus_ops_t;

/* A key a commit touches (each passed to the script once). */
typedef struct {
    size_t name, name_len;                     /* in the arena */
    size_t last_guard, last_output, last_write; /* the key's latest operation of each list, or SIZE_MAX */
    int64_t ttl_ms;                            /* PEXPIRE after the writes; -1: none */
} bus_key_t;

struct bus_commit {
    bus_t *bus;
    bool duplicate_only; /* only acknowledge the input if it is a duplicate */
    bool invalid;        /* an output was refused: the commit cannot run */
    bool has_input;
    char input_edge[BUS_MAX_EDGE + 1];
    char *input_entry, *input_record;
    strbuf_t arena;       /* every key and argument */
    bus_key_t *keys;
    size_t nkeys_used, keys_cap;
    zhashx_t *key_index;  /* key -> index + 1 */
    bus_ops_t guards, outputs, writes;
    size_t nrecords;
    msgpack_sbuffer scratch; /* bus_commit_add_record's encoding */
    /* the script's arguments while it runs (bus_commit_send .. bus_commit_finish) */
    const char **argv;
    size_t *lens;
    size_t argc, nkeys;
    char (*numbers)[24];
    size_t nnum;
    char in_stream[96], in_done[96];
    bool sent;        /* sent; its outcome not read yet */
    bool send_failed; /* bus_commit_send failed and said why */
};

static void bus_set_error(bus_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bus_set_error(bus_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->errstr, sizeof(self->errstr), fmt, ap);
    va_end(ap);
}

/* bus_warn_redis - log a failed Redis command, at most once every 10 s (a Redis outage would
 * otherwise log on every tick), with the number of failures since the last line. */
static void bus_warn_redis(bus_t *self, const bus_edge_t *e, const char *what)
{
    int64_t now = util_monotonic_ms();
    self->redis_failures++;
    if (now < self->next_redis_warning_ms)
        return;
    log_warning("bus: %s: %s: %s (%lld Redis failures in the last 10 s)", e->name, what,
                redis_conn_errstr(self->redis), (long long)self->redis_failures);
    self->redis_failures = 0;
    self->next_redis_warning_ms = now + 10000;
}

const char *bus_errstr(const bus_t *self)
{
    return self->errstr;
}

const char *bus_instance(const bus_t *self)
{
    return self->instance;
}

void bus_key(char *out, size_t size, const char *edge, const char *part)
{
    snprintf(out, size, "cb:bus:%s:%s", edge, part);
}

/* bus_edge_name_valid - edge names are short and plain: [a-z0-9_-]{1,32}. */
static bool bus_edge_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > BUS_MAX_EDGE)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* bus_find_edge - the edge with that name (len bytes), or NULL. */
static bus_edge_t *bus_find_edge(bus_t *self, const char *name, size_t len)
{
    for (size_t i = 0; i < self->nedges; i++)
        if (strlen(self->edges[i].name) == len && memcmp(self->edges[i].name, name, len) == 0)
            return &self->edges[i];
    return NULL;
}

static void bus_peer_destroy(void **item);
static void bus_remote_destroy(void **item);
static int bus_on_tick(zloop_t *loop, int timer_id, void *arg);

/* bus_edge_get - the edge, created on first use; NULL when the name is bad or too many. */
static bus_edge_t *bus_edge_get(bus_t *self, const char *name)
{
    bus_edge_t *e = bus_find_edge(self, name, strlen(name));
    if (e)
        return e;
    if (!bus_edge_name_valid(name, strlen(name))) {
        bus_set_error(self, "bad edge name '%s'", name);
        return NULL;
    }
    if (self->nedges == BUS_MAX_EDGES) {
        bus_set_error(self, "too many edges");
        return NULL;
    }
    /* the tick starts with the first edge: a process without any (clawback-milter) is not woken
     * 50 times a second for nothing */
    if (self->timer_id < 0 && (self->timer_id = zloop_timer(self->loop, BUS_TICK_MS, 0, bus_on_tick, self)) < 0) {
        bus_set_error(self, "cannot start the bus timer");
        return NULL;
    }
    e = &self->edges[self->nedges++];
    memset(e, 0, sizeof(*e));
    util_strlcpy(e->name, name, sizeof(e->name));
    bus_key(e->stream_key, sizeof(e->stream_key), name, "q");
    bus_key(e->done_key, sizeof(e->done_key), name, "done");
    bus_key(e->dead_key, sizeof(e->dead_key), name, "dead");
    bus_key(e->dispatchers_key, sizeof(e->dispatchers_key), name, "dispatchers");
    bus_key(e->consumers_key, sizeof(e->consumers_key), name, "consumers");
    e->peers = zlistx_new();
    zlistx_set_destructor(e->peers, bus_peer_destroy);
    e->remotes = zlistx_new();
    zlistx_set_destructor(e->remotes, bus_remote_destroy);
    util_strlcpy(e->claim_cursor, "0-0", sizeof(e->claim_cursor));
    e->has_room = true;
    return e;
}

/* bus_snapshot - the items of a list in an array (caller frees), so that callbacks run while
 * walking it may add or delete items without invalidating the walk. */
static void **bus_snapshot(zlistx_t *list, size_t *count)
{
    void **items = util_xcalloc(zlistx_size(list) + 1, sizeof(*items));
    size_t n = 0;
    for (void *item = zlistx_first(list); item; item = zlistx_next(list))
        items[n++] = item;
    *count = n;
    return items;
}

/* bus_delete_item - remove an item (destroying it) from a list, if still there. */
static void bus_delete_item(zlistx_t *list, void *item)
{
    void *handle = zlistx_find(list, item);
    if (handle)
        zlistx_delete(list, handle);
}

/* ---------------------------------------------------------------- commits */

/* The commit script. Everything that could make Redis refuse a write midway (a key of another
 * type, HINCRBY of a field that is not a number) is checked before the first write: a script
 * is not rolled back, so a commit either happens whole or writes nothing. ARGV: group, input entry, input record id, now, max_waiting, number of
 * output groups, number of writes, duplicate-only, number of guards; then the guards, the
 * output groups and the writes, each "key index, op, n, n arguments" (an output group: "key
 * index, maxlen, why, n, n x (record id, payload)"). Every operation is one redis.call with all
 * its arguments (HSET of many fields, HMGET of many guarded fields, ...), so a commit of
 * thousands of records costs thousands of Redis calls, not tens of thousands. */
static redis_script_t BUS_COMMIT_SCRIPT = {
    .source =
        "local group, entry, rid = ARGV[1], ARGV[2], ARGV[3]\n"
        "local now, maxw = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
        "local nout, nset, nguard = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[9])\n"
        "if entry ~= '' and redis.call('ZSCORE', KEYS[2], rid) then\n"
        "  redis.call('XACK', KEYS[1], group, entry)\n"
        "  redis.call('XDEL', KEYS[1], entry)\n"
        "  return 1\n"
        "end\n"
        "if ARGV[8] == '1' then\n"
        "  if #redis.call('XRANGE', KEYS[1], entry, entry) == 0 then return 4 end\n"
        "  return 3\n"
        "end\n"
        "local o = 10\n"
        "for i = 1, nguard do\n"
        "  local k, op, n = KEYS[tonumber(ARGV[o])], ARGV[o + 1], tonumber(ARGV[o + 2])\n"
        "  local want = ARGV[o + 3]\n"
        "  if op == 'g' then\n"
        "    if redis.call('GET', k) ~= want then return 5 end\n"
        "  else\n"
        "    local got = redis.call('HMGET', k, unpack(ARGV, o + 4, o + 2 + n))\n"
        "    for j = 1, n - 1 do\n"
        "      if got[j] and got[j] ~= want then return 5 end\n"
        "    end\n"
        "  end\n"
        "  o = o + 3 + n\n"
        "end\n"
        "local outputs, checked = o, {}\n"
        "for i = 1, nout do\n"
        "  local k, maxlen, n = KEYS[tonumber(ARGV[o])], tonumber(ARGV[o + 1]), tonumber(ARGV[o + 3])\n"
        "  if maxlen == 0 and not checked[k] then\n"
        "    checked[k] = true\n"
        "    if redis.call('XLEN', k) >= maxw then return 2 end\n"
        "  end\n"
        "  o = o + 4 + 2 * n\n"
        "end\n"
        "local kinds, seen = {h = 'hash', i = 'hash', n = 'hash', d = 'hash', z = 'zset', r = 'list'}, {}\n"
        "local function clash(k, want)\n"
        "  if seen[k] then return seen[k] ~= want end\n"
        "  local t = redis.call('TYPE', k).ok\n"
        "  seen[k] = t == 'none' and want or t\n"
        "  return seen[k] ~= want\n"
        "end\n"
        "o = outputs\n"
        "for i = 1, nout do\n"
        "  local k = KEYS[tonumber(ARGV[o])]\n"
        "  if clash(k, 'stream') then return redis.error_reply('WRONGTYPE ' .. k .. ' is not a stream: nothing written') end\n"
        "  o = o + 4 + 2 * tonumber(ARGV[o + 3])\n"
        "end\n"
        "for i = 1, nset do\n"
        "  local k, op, n = KEYS[tonumber(ARGV[o])], ARGV[o + 1], tonumber(ARGV[o + 2])\n"
        "  if kinds[op] and clash(k, kinds[op]) then\n"
        "    return redis.error_reply('WRONGTYPE ' .. k .. ' is not a ' .. kinds[op] .. ': nothing written')\n"
        "  end\n"
        "  if op == 'i' then\n"
        "    local v = redis.call('HGET', k, ARGV[o + 3])\n"
        "    if v and not string.match(v, '^%-?%d+$') then\n"
        "      return redis.error_reply('ERR ' .. k .. ' field ' .. ARGV[o + 3] .. ' is not an integer: nothing written')\n"
        "    end\n"
        "  end\n"
        "  o = o + 3 + n\n"
        "end\n"
        "o = outputs\n"
        "for i = 1, nout do\n"
        "  local k, maxlen, why, n = KEYS[tonumber(ARGV[o])], tonumber(ARGV[o + 1]), ARGV[o + 2], tonumber(ARGV[o + 3])\n"
        "  for j = o + 4, o + 2 + 2 * n, 2 do\n"
        "    if maxlen > 0 then\n"
        "      redis.call('XADD', k, 'MAXLEN', '~', maxlen, '*', 'i', ARGV[j], 'r', ARGV[j + 1], 'why', why)\n"
        "    else\n"
        "      redis.call('XADD', k, '*', 'i', ARGV[j], 'r', ARGV[j + 1])\n"
        "    end\n"
        "  end\n"
        "  o = o + 4 + 2 * n\n"
        "end\n"
        "local ops = {h = 'HSET', i = 'HINCRBY', z = 'ZADD', n = 'HSETNX', r = 'RPUSH', e = 'PEXPIRE'}\n"
        "for i = 1, nset do\n"
        "  local k, op, n = KEYS[tonumber(ARGV[o])], ARGV[o + 1], tonumber(ARGV[o + 2])\n"
        "  if op == 'd' then\n"
        "    if redis.call('HGET', k, ARGV[o + 3]) == ARGV[o + 4] then redis.call('HDEL', k, ARGV[o + 3]) end\n"
        "  else\n"
        "    redis.call(ops[op], k, unpack(ARGV, o + 3, o + 2 + n))\n"
        "  end\n"
        "  o = o + 3 + n\n"
        "end\n"
        "if entry ~= '' then\n"
        "  redis.call('ZADD', KEYS[2], now, rid)\n"
        "  redis.call('XACK', KEYS[1], group, entry)\n"
        "  redis.call('XDEL', KEYS[1], entry)\n"
        "end\n"
        "return 0\n",
};

bus_commit_t *bus_commit_new(bus_t *self, const bus_delivery_t *input)
{
    bus_commit_t *c = util_xcalloc(1, sizeof(*c));
    c->bus = self;
    if (input) {
        c->has_input = true;
        util_strlcpy(c->input_edge, input->edge, sizeof(c->input_edge));
        c->input_entry = util_xstrdup(input->entry_id);
        c->input_record = util_xstrdup(input->record_id);
    }
    strbuf_init(&c->arena, 0);
    c->key_index = zhashx_new();
    msgpack_sbuffer_init(&c->scratch);
    return c;
}

static void bus_argv_free(bus_commit_t *c);

static void bus_ops_free(bus_ops_t *ops)
{
    for (size_t i = 0; i < ops->n; i++)
        free(ops->v[i].args);
    free(ops->v);
}

void bus_commit_destroy(bus_commit_t **cp)
{
    if (!cp || !*cp)
        return;
    bus_commit_t *c = *cp;
    if (c->sent)
        (void)bus_commit_finish(c); /* its reply must be read before the connection is used again */
    free(c->input_entry);
    free(c->input_record);
    strbuf_release(&c->arena);
    zhashx_destroy(&c->key_index);
    free(c->keys);
    bus_ops_free(&c->guards);
    bus_ops_free(&c->outputs);
    bus_ops_free(&c->writes);
    msgpack_sbuffer_destroy(&c->scratch);
    bus_argv_free(c);
    free(c);
    *cp = NULL;
}

/* bus_commit_key - the index of key among the commit's keys (added on first use). */
static size_t bus_commit_key(bus_commit_t *c, const char *key)
{
    void *found = zhashx_lookup(c->key_index, key);
    if (found)
        return (size_t)(uintptr_t)found - 1;
    if (c->nkeys_used == c->keys_cap) {
        c->keys_cap = c->keys_cap ? c->keys_cap * 2 : 16;
        c->keys = util_xrealloc(c->keys, c->keys_cap * sizeof(*c->keys));
    }
    bus_key_t *k = &c->keys[c->nkeys_used];
    memset(k, 0, sizeof(*k));
    k->name = c->arena.len;
    k->name_len = strlen(key);
    strbuf_append(&c->arena, key, k->name_len + 1);
    k->last_guard = k->last_output = k->last_write = SIZE_MAX;
    k->ttl_ms = -1;
    zhashx_insert(c->key_index, key, (void *)(uintptr_t)(c->nkeys_used + 1));
    return c->nkeys_used++;
}

/* bus_arena_add - copy n bytes into the arena; their place. */
static bus_arg_t bus_arena_add(bus_commit_t *c, const void *data, size_t n)
{
    bus_arg_t a = {c->arena.len, n};
    strbuf_append(&c->arena, data, n);
    return a;
}

/* bus_op_push - append an argument to op. */
static void bus_op_push(bus_op_t *op, bus_arg_t arg)
{
    if (op->nargs == op->cap) {
        op->cap = op->cap ? op->cap * 2 : 4;
        op->args = util_xrealloc(op->args, op->cap * sizeof(*op->args));
    }
    op->args[op->nargs++] = arg;
}

/* bus_ops_new - a new operation at the end of ops. */
static bus_op_t *bus_ops_new(bus_ops_t *ops, char op, size_t key)
{
    if (ops->n == ops->cap) {
        ops->cap = ops->cap ? ops->cap * 2 : 8;
        ops->v = util_xrealloc(ops->v, ops->cap * sizeof(*ops->v));
    }
    bus_op_t *o = &ops->v[ops->n++];
    memset(o, 0, sizeof(*o));
    o->op = op;
    o->key = key;
    return o;
}

/* bus_arg_equal - whether an argument holds s. */
static bool bus_arg_equal(const bus_commit_t *c, bus_arg_t a, const char *s, size_t n)
{
    return a.len == n && memcmp(c->arena.data + a.off, s, n) == 0;
}

/* bus_commit_write - add a write of op to key with its arguments; a write of a mergeable op
 * (HSET, ZADD, RPUSH) joins the key's previous write when that is the same op. */
static void bus_commit_write(bus_commit_t *c, char op, const char *key, const void *a, size_t alen, const char *b)
{
    size_t k = bus_commit_key(c, key);
    bus_key_t *kk = &c->keys[k];
    bool mergeable = op == 'h' || op == 'z' || op == 'r';
    bus_op_t *w = NULL;
    if (mergeable && kk->last_write != SIZE_MAX) {
        bus_op_t *last = &c->writes.v[kk->last_write];
        if (last->op == op && last->nargs + 2 <= BUS_OP_MAX_ARGS)
            w = last;
    }
    if (!w) {
        w = bus_ops_new(&c->writes, op, k);
        kk->last_write = c->writes.n - 1;
    }
    bus_op_push(w, bus_arena_add(c, a, alen));
    if (b)
        bus_op_push(w, bus_arena_add(c, b, strlen(b)));
}

/* bus_commit_add_to_key - add an output to a stream key (maxlen 0: a capped edge); outputs to
 * one stream with the same maxlen and reason form one group. */
static void bus_commit_add_to_key(bus_commit_t *c, const char *key, const char *record_id, const void *payload,
                                  size_t len, int64_t maxlen, const char *why)
{
    size_t k = bus_commit_key(c, key);
    bus_key_t *kk = &c->keys[k];
    why = why ? why : "";
    bus_op_t *o = NULL;
    if (kk->last_output != SIZE_MAX) {
        bus_op_t *last = &c->outputs.v[kk->last_output];
        if (last->maxlen == maxlen && bus_arg_equal(c, last->args[0], why, strlen(why)) &&
            last->nargs + 2 <= BUS_OP_MAX_ARGS)
            o = last;
    }
    if (!o) {
        o = bus_ops_new(&c->outputs, 'x', k);
        o->maxlen = maxlen;
        bus_op_push(o, bus_arena_add(c, why, strlen(why)));
        kk->last_output = c->outputs.n - 1;
    }
    bus_op_push(o, bus_arena_add(c, record_id, strlen(record_id)));
    bus_op_push(o, bus_arena_add(c, payload, len));
    c->nrecords++;
}

int bus_commit_add(bus_commit_t *c, const char *edge, const char *record_id, const void *payload, size_t len)
{
    size_t idlen = record_id ? strlen(record_id) : 0;
    if (!bus_edge_name_valid(edge, strlen(edge)) || idlen == 0 || idlen > RECORD_MAX_ID ||
        len > (size_t)c->bus->max_record) {
        bus_set_error(c->bus, "cannot add to %s: %s", edge,
                      len > (size_t)c->bus->max_record ? "record larger than max_record" : "bad edge or record id");
        c->invalid = true;
        return -1;
    }
    char key[96];
    bus_key(key, sizeof(key), edge, "q");
    bus_commit_add_to_key(c, key, record_id, payload, len, 0, NULL);
    return 0;
}

int bus_commit_add_record(bus_commit_t *c, const char *edge, const record_desc_t *desc, const void *record,
                          char *err, size_t errsize)
{
    msgpack_sbuffer_clear(&c->scratch);
    int rc = record_encode(desc, record, &c->scratch, err, errsize);
    if (rc == 0 && bus_commit_add(c, edge, ((const record_verdict_t *)record)->id, c->scratch.data, c->scratch.size) < 0) {
        snprintf(err, errsize, "%s", bus_errstr(c->bus));
        rc = -1;
    }
    return rc;
}

void bus_commit_hset(bus_commit_t *c, const char *key, const char *field, const char *value)
{
    bus_commit_write(c, 'h', key, field, strlen(field), value);
}

void bus_commit_hincrby(bus_commit_t *c, const char *key, const char *field, int64_t delta)
{
    char n[24];
    snprintf(n, sizeof(n), "%lld", (long long)delta);
    bus_commit_write(c, 'i', key, field, strlen(field), n);
}

void bus_commit_zadd(bus_commit_t *c, const char *key, int64_t score, const char *member)
{
    char n[24];
    snprintf(n, sizeof(n), "%lld", (long long)score);
    bus_commit_write(c, 'z', key, n, strlen(n), member);
}

void bus_commit_hsetnx(bus_commit_t *c, const char *key, const char *field, const char *value)
{
    bus_commit_write(c, 'n', key, field, strlen(field), value);
}

void bus_commit_rpush(bus_commit_t *c, const char *key, const void *value, size_t len)
{
    bus_commit_write(c, 'r', key, value, len, NULL);
}

void bus_commit_pexpire(bus_commit_t *c, const char *key, int64_t ttl_ms)
{
    size_t k = bus_commit_key(c, key); /* may move c->keys */
    c->keys[k].ttl_ms = ttl_ms;
}

void bus_commit_hdel_if(bus_commit_t *c, const char *key, const char *field, const char *value)
{
    bus_commit_write(c, 'd', key, field, strlen(field), value);
}

/* bus_commit_add_guard - a guard; field guards on one key with the same value form one HMGET. */
static void bus_commit_add_guard(bus_commit_t *c, char op, const char *key, const char *value, const char *field)
{
    size_t k = bus_commit_key(c, key);
    bus_key_t *kk = &c->keys[k];
    bus_op_t *g = NULL;
    if (op == 'f' && kk->last_guard != SIZE_MAX) {
        bus_op_t *last = &c->guards.v[kk->last_guard];
        if (last->op == 'f' && bus_arg_equal(c, last->args[0], value, strlen(value)) &&
            last->nargs + 1 <= BUS_OP_MAX_ARGS)
            g = last;
    }
    if (!g) {
        g = bus_ops_new(&c->guards, op, k);
        bus_op_push(g, bus_arena_add(c, value, strlen(value)));
        kk->last_guard = c->guards.n - 1;
    }
    if (field)
        bus_op_push(g, bus_arena_add(c, field, strlen(field)));
}

void bus_commit_guard(bus_commit_t *c, const char *key, const char *value)
{
    bus_commit_add_guard(c, 'g', key, value, NULL);
}

void bus_commit_guard_field(bus_commit_t *c, const char *key, const char *field, const char *value)
{
    bus_commit_add_guard(c, 'f', key, value, field);
}

size_t bus_commit_records(const bus_commit_t *c)
{
    return c->nrecords;
}

/* bus_note_failed_commit - remember that a commit consuming the delivery being handled failed,
 * so that a handler returning 0 anyway is not taken as "processed, nothing to write". */
static void bus_note_failed_commit(bus_t *self, const bus_commit_t *c)
{
    if (self->current && c->has_input && strcmp(self->current->entry_id, c->input_entry) == 0)
        self->current_failed = true;
}

/* bus_mark_no_room - remember that an edge was found full. */
static void bus_mark_no_room(bus_t *self, const char *key)
{
    for (size_t i = 0; i < self->nedges; i++) {
        if (strcmp(self->edges[i].stream_key, key) == 0) {
            self->edges[i].has_room = false;
            self->edges[i].room_checked_ms = util_monotonic_ms();
        }
    }
}

static void bus_argv_str(bus_commit_t *c, const char *s, size_t n)
{
    c->argv[c->argc] = s;
    c->lens[c->argc++] = n;
}

static void bus_argv_num(bus_commit_t *c, long long value)
{
    int n = snprintf(c->numbers[c->nnum], sizeof(c->numbers[0]), "%lld", value);
    bus_argv_str(c, c->numbers[c->nnum++], (size_t)n);
}

/* bus_argv_ops - the arguments of a list of operations (the guards or the writes). */
static void bus_argv_ops(bus_commit_t *c, const bus_ops_t *ops)
{
    for (size_t i = 0; i < ops->n; i++) {
        const bus_op_t *o = &ops->v[i];
        bus_argv_num(c, (long long)o->key + 3);
        bus_argv_str(c, &o->op, 1);
        bus_argv_num(c, (long long)o->nargs);
        for (size_t j = 0; j < o->nargs; j++)
            bus_argv_str(c, c->arena.data + o->args[j].off, o->args[j].len);
    }
}

/* bus_argv_free - drop the script's arguments. */
static void bus_argv_free(bus_commit_t *c)
{
    free(c->argv);
    free(c->lens);
    free(c->numbers);
    c->argv = NULL;
    c->lens = NULL;
    c->numbers = NULL;
    c->argc = c->nnum = c->nkeys = 0;
}

/* bus_argv_build - the script's keys and arguments for the commit. */
static void bus_argv_build(bus_commit_t *c)
{
    static const char expire_op = 'e'; /* the time-to-live changes run after every other write */
    bus_argv_free(c);
    size_t nexpire = 0;
    for (size_t k = 0; k < c->nkeys_used; k++)
        nexpire += c->keys[k].ttl_ms >= 0;
    size_t total = 2 + c->nkeys_used + 9 + nexpire * 4;
    size_t nops = c->guards.n + c->outputs.n + c->writes.n + nexpire;
    const bus_ops_t *lists[] = {&c->guards, &c->outputs, &c->writes};
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; i < lists[l]->n; i++)
            total += 4 + lists[l]->v[i].nargs;
    c->argv = util_xcalloc(total, sizeof(*c->argv));
    c->lens = util_xcalloc(total, sizeof(*c->lens));
    c->numbers = util_xcalloc(nops * 3 + 16, sizeof(*c->numbers)); /* at most 3 per operation */
    /* "-": unused placeholders */
    bus_key(c->in_stream, sizeof(c->in_stream), c->has_input ? c->input_edge : "-", "q");
    bus_key(c->in_done, sizeof(c->in_done), c->has_input ? c->input_edge : "-", "done");
    bus_argv_str(c, c->in_stream, strlen(c->in_stream));
    bus_argv_str(c, c->in_done, strlen(c->in_done));
    for (size_t k = 0; k < c->nkeys_used; k++)
        bus_argv_str(c, c->arena.data + c->keys[k].name, c->keys[k].name_len);
    c->nkeys = c->argc;
    bus_argv_str(c, BUS_GROUP, strlen(BUS_GROUP));
    bus_argv_str(c, c->has_input ? c->input_entry : "", c->has_input ? strlen(c->input_entry) : 0);
    bus_argv_str(c, c->has_input ? c->input_record : "", c->has_input ? strlen(c->input_record) : 0);
    bus_argv_num(c, (long long)util_now_ms());
    bus_argv_num(c, (long long)c->bus->max_waiting);
    bus_argv_num(c, (long long)c->outputs.n);
    bus_argv_num(c, (long long)(c->writes.n + nexpire));
    bus_argv_str(c, c->duplicate_only ? "1" : "0", 1);
    bus_argv_num(c, (long long)c->guards.n);
    bus_argv_ops(c, &c->guards);
    for (size_t i = 0; i < c->outputs.n; i++) {
        const bus_op_t *o = &c->outputs.v[i];
        bus_argv_num(c, (long long)o->key + 3);
        bus_argv_num(c, (long long)o->maxlen);
        for (size_t j = 0; j < o->nargs; j++) {
            bus_argv_str(c, c->arena.data + o->args[j].off, o->args[j].len);
            if (j == 0)
                bus_argv_num(c, (long long)(o->nargs - 1) / 2);
        }
    }
    bus_argv_ops(c, &c->writes);
    for (size_t k = 0; k < c->nkeys_used; k++) {
        if (c->keys[k].ttl_ms < 0)
            continue;
        bus_argv_num(c, (long long)k + 3);
        bus_argv_str(c, &expire_op, 1);
        bus_argv_num(c, 1);
        bus_argv_num(c, (long long)c->keys[k].ttl_ms);
    }
}

int bus_commit_send(bus_commit_t *c)
{
    bus_t *self = c->bus;
    if (c->sent) {
        bus_set_error(self, "commit already sent");
        return -1; /* the first send's outcome is still to be finished */
    }
    c->send_failed = true;
    if (c->invalid) {
        bus_note_failed_commit(self, c);
        return -1; /* bus_commit_add said why */
    }
    bus_argv_build(c);
    if (redis_conn_eval_send(self->redis, &BUS_COMMIT_SCRIPT, (int)c->nkeys, (int)c->argc, c->argv, c->lens) != 0) {
        bus_set_error(self, "commit failed: %s", redis_conn_errstr(self->redis));
        bus_note_failed_commit(self, c);
        bus_argv_free(c);
        return -1;
    }
    c->sent = true;
    c->send_failed = false;
    return 0;
}

bus_status_t bus_commit_finish(bus_commit_t *c)
{
    bus_t *self = c->bus;
    if (!c->sent) {
        if (!c->send_failed)
            bus_set_error(self, "commit finished without being sent");
        bus_note_failed_commit(self, c);
        return BUS_ERROR;
    }
    c->sent = false;
    bus_status_t status = BUS_ERROR;
    redisReply *r =
        redis_conn_eval_recv(self->redis, &BUS_COMMIT_SCRIPT, (int)c->nkeys, (int)c->argc, c->argv, c->lens);
    if (!r) {
        bus_set_error(self, "commit failed: %s", redis_conn_errstr(self->redis));
    } else if (r->type != REDIS_REPLY_INTEGER) {
        bus_set_error(self, "commit: unexpected reply type %d", r->type);
    } else {
        status = (bus_status_t)r->integer;
    }
    if (r)
        freeReplyObject(r);
    bus_argv_free(c);

    bus_edge_t *in_edge = c->has_input ? bus_find_edge(self, c->input_edge, strlen(c->input_edge)) : NULL;
    if (status == BUS_OK || status == BUS_DUPLICATE) {
        if (in_edge && status == BUS_OK)
            in_edge->counters.committed++;
        if (in_edge && status == BUS_DUPLICATE)
            in_edge->counters.duplicates++;
        if (self->current && c->has_input && strcmp(self->current->entry_id, c->input_entry) == 0)
            self->current_done = true;
    } else if ((int)status != BUS_NOT_DUPLICATE && (int)status != BUS_UNKNOWN_ENTRY) {
        bus_note_failed_commit(self, c);
    }
    if (status == BUS_FULL) {
        for (size_t i = 0; i < c->outputs.n; i++)
            if (c->outputs.v[i].maxlen == 0)
                bus_mark_no_room(self, c->arena.data + c->keys[c->outputs.v[i].key].name);
        bus_set_error(self, "an output edge is full (%lld records waiting)", (long long)self->max_waiting);
    }
    if (status == BUS_FENCED)
        bus_set_error(self, "commit refused: a guard no longer holds (a lease lost, or a claim taken)");
    return status;
}

bus_status_t bus_commit_run(bus_commit_t *c)
{
    if (bus_commit_send(c) != 0)
        return BUS_ERROR;
    return bus_commit_finish(c);
}

int bus_set_aside(bus_t *self, const bus_delivery_t *d, const char *reason)
{
    char key[96];
    bus_key(key, sizeof(key), d->edge, "dead");
    bus_commit_t *c = bus_commit_new(self, d);
    bus_commit_add_to_key(c, key, d->record_id, d->payload, d->len, BUS_DEAD_MAXLEN, reason);
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    bus_edge_t *e = bus_find_edge(self, d->edge, strlen(d->edge));
    if (st == BUS_OK && e) {
        e->counters.dead++;
        e->counters.committed--; /* counted as dead, not as committed */
    }
    if (st == BUS_OK || st == BUS_DUPLICATE) {
        log_warning("bus: %s record %s set aside: %s", d->edge, d->record_id, reason);
        return 0;
    }
    return -1;
}

/* ---------------------------------------------------------------- Redis helpers */

/* bus_ensure_group - create the stream and its consumer group if missing. */
static int bus_ensure_group(bus_t *self, bus_edge_t *e)
{
    redisReply *r = redis_conn_command(self->redis, "XGROUP CREATE %s %s 0 MKSTREAM", e->stream_key, BUS_GROUP);
    if (r) {
        freeReplyObject(r);
        return 0;
    }
    if (strstr(redis_conn_errstr(self->redis), "BUSYGROUP"))
        return 0;
    bus_set_error(self, "%s", redis_conn_errstr(self->redis));
    return -1;
}

/* bus_claim - claim entries of an edge for this instance (XCLAIM ... JUSTID); with idle_ms >= 0
 * their idle time is set to it, otherwise reset (a renewal). 0 or -1. */
static int bus_claim(bus_t *self, bus_edge_t *e, const char *const *entries, size_t n, int64_t idle_ms)
{
    if (n == 0)
        return 0;
    const char **argv = util_xcalloc(n + 9, sizeof(*argv));
    char idle[24];
    snprintf(idle, sizeof(idle), "%lld", (long long)idle_ms);
    size_t a = 0;
    argv[a++] = "XCLAIM";
    argv[a++] = e->stream_key;
    argv[a++] = BUS_GROUP;
    argv[a++] = self->instance;
    argv[a++] = "0";
    for (size_t i = 0; i < n; i++)
        argv[a++] = entries[i];
    if (idle_ms >= 0) {
        argv[a++] = "IDLE";
        argv[a++] = idle;
    }
    argv[a++] = "JUSTID";
    redisReply *r = redis_conn_commandargv(self->redis, (int)a, argv, NULL);
    free(argv);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* bus_hand_back - make entries of an edge dispatchable again at once (idle time set past the
 * acknowledgement timeout, so the next XAUTOCLAIM takes them). */
static void bus_hand_back(bus_t *self, bus_edge_t *e, const char *const *entries, size_t n)
{
    if (bus_claim(self, e, entries, n, self->ack_timeout_ms + 1) < 0)
        log_warning("bus: cannot hand back %zu %s records: %s (they return after %lld ms)", n, e->name,
                    redis_conn_errstr(self->redis), (long long)self->ack_timeout_ms);
}

/* bus_held_ids - the entry ids held for an edge (array owned by the caller, ids by the held
 * deliveries). */
static const char **bus_held_ids(bus_t *self, bus_edge_t *e, size_t *count)
{
    const char **ids = util_xcalloc(zlistx_size(self->held) + 1, sizeof(*ids));
    size_t n = 0;
    for (bus_held_t *h = zlistx_first(self->held); h; h = zlistx_next(self->held))
        if (h->edge == e)
            ids[n++] = h->d.entry_id;
    *count = n;
    return ids;
}

/* ---------------------------------------------------------------- dispatcher side */

static void bus_remote_destroy(void **item)
{
    bus_remote_t *r = *item;
    if (r) {
        zframe_destroy(&r->identity);
        free(r);
        *item = NULL;
    }
}

/* bus_remote_credit - how many more records this consumer connection may receive. */
static int64_t bus_remote_credit(const bus_remote_t *r)
{
    int64_t outstanding = (int64_t)(r->sent - r->reported_received);
    int64_t credit = r->window - outstanding;
    return credit > 0 ? credit : 0;
}

/* bus_send_record - send one entry to a remote; 0, or -1 if it could not be queued. One frame
 * after the routing identity ("REC", then edge, entry id and record id each after a length
 * byte, then the payload): a consumer never reads a message part by part, which libzmq cannot
 * do safely while the connection is being torn down (fq.cpp "!_more" assertion). */
static int bus_send_record(bus_t *self, bus_remote_t *r, const char *entry_id, const char *rid, size_t rid_len,
                           const char *payload, size_t len)
{
    void *sock = zsock_resolve(self->router);
    zmq_msg_t frame;
    size_t edge_len = strlen(r->edge->name), entry_len = strlen(entry_id);
    if (zmq_msg_init_size(&frame, 3 + 3 + edge_len + entry_len + rid_len + len) != 0)
        return -1;
    unsigned char *out = zmq_msg_data(&frame);
    memcpy(out, "REC", 3);
    out += 3;
    const char *fields[3] = {r->edge->name, entry_id, rid};
    size_t lens[3] = {edge_len, entry_len, rid_len};
    for (int i = 0; i < 3; i++) {
        *out++ = (unsigned char)lens[i]; /* each at most RECORD_MAX_ID bytes */
        memcpy(out, fields[i], lens[i]);
        out += lens[i];
    }
    memcpy(out, payload, len);
    if (zmq_send(sock, zframe_data(r->identity), zframe_size(r->identity), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return -1;
    }
    /* once the first frame is accepted the rest of the message is too */
    zmq_msg_send(&frame, sock, 0);
    r->sent++;
    return 0;
}

/* bus_reply_field - the value of a field in a stream entry's [f, v, f, v...] array. */
static const redisReply *bus_reply_field(const redisReply *fields, const char *name)
{
    if (!fields || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i];
        if (f->type == REDIS_REPLY_STRING && strcmp(f->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    }
    return NULL;
}

static void bus_set_aside_entry(bus_t *self, bus_edge_t *e, const redisReply *entry);

/* bus_dispatch_entries - send each [id, fields] entry to consumers with credit; entries that
 * cannot be sent are handed back. Returns how many were sent. */
static size_t bus_dispatch_entries(bus_t *self, bus_edge_t *e, const redisReply *entries, bool redispatch)
{
    size_t sent = 0;
    const char **unsent = util_xcalloc(entries->elements + 1, sizeof(*unsent));
    const redisReply **bad = util_xcalloc(entries->elements + 1, sizeof(*bad));
    size_t nunsent = 0, nbad = 0;
    bus_remote_t *r = zlistx_first(e->remotes);
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *entry = entries->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 || entry->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const char *id = entry->element[0]->str;
        const redisReply *rid = bus_reply_field(entry->element[1], "i");
        const redisReply *payload = bus_reply_field(entry->element[1], "r");
        if (!rid || !payload || rid->len == 0 || rid->len > RECORD_MAX_ID || memchr(rid->str, '\0', rid->len) ||
            payload->len > (size_t)self->max_record) {
            bad[nbad++] = entry; /* never sendable: set aside */
            continue;
        }
        bool done = false;
        for (size_t tries = zlistx_size(e->remotes); tries > 0 && !done; tries--) {
            if (!r)
                r = zlistx_first(e->remotes);
            if (r && bus_remote_credit(r) > 0 &&
                bus_send_record(self, r, id, rid->str, rid->len, payload->str, payload->len) == 0)
                done = true;
            r = zlistx_next(e->remotes);
        }
        if (done) {
            sent++;
            e->counters.dispatched++;
            if (redispatch)
                e->counters.redispatched++;
        } else {
            unsent[nunsent++] = id;
        }
    }
    bus_hand_back(self, e, unsent, nunsent);
    for (size_t i = 0; i < nbad; i++)
        bus_set_aside_entry(self, e, bad[i]);
    free(unsent);
    free(bad);
    return sent;
}

/* bus_set_aside_entry - move a stream entry that cannot be dispatched (no record fields, a bad
 * record id, larger than max_record) to the dead-letter stream, then remove it. */
static void bus_set_aside_entry(bus_t *self, bus_edge_t *e, const redisReply *entry)
{
    const char *id = entry->element[0]->str;
    const redisReply *rid = bus_reply_field(entry->element[1], "i");
    const redisReply *payload = bus_reply_field(entry->element[1], "r");
    const char *why = !rid || !payload ? "stream entry without record fields"
                      : payload && payload->len > (size_t)self->max_record ? "record larger than max_record"
                                                                           : "bad record id";
    char maxlen[24];
    snprintf(maxlen, sizeof(maxlen), "%d", BUS_DEAD_MAXLEN);
    const char *argv[] = {"XADD", e->dead_key, "MAXLEN", "~", maxlen, "*", "i", "", "r", "", "why", why, "entry", id};
    size_t lens[UTIL_ARRAY_LEN(argv)];
    for (size_t i = 0; i < UTIL_ARRAY_LEN(argv); i++)
        lens[i] = strlen(argv[i]);
    if (rid) {
        argv[7] = rid->str;
        lens[7] = rid->len > RECORD_MAX_ID ? RECORD_MAX_ID : rid->len;
    }
    if (payload) {
        argv[9] = payload->str;
        lens[9] = payload->len;
    }
    /* dead letter first: a failure in between leaves a copy, never a loss */
    redisReply *x = redis_conn_commandargv(self->redis, (int)UTIL_ARRAY_LEN(argv), argv, lens);
    if (!x) {
        bus_warn_redis(self, e, "cannot set an entry aside");
        return;
    }
    freeReplyObject(x);
    x = redis_conn_command(self->redis, "XACK %s %s %s", e->stream_key, BUS_GROUP, id);
    if (x)
        freeReplyObject(x);
    x = redis_conn_command(self->redis, "XDEL %s %s", e->stream_key, id);
    if (x)
        freeReplyObject(x);
    e->counters.dead++;
    log_warning("bus: %s: entry %s set aside: %s", e->name, id, why);
}

/* bus_total_credit - the sum of the credit of an edge's consumer connections. */
static int64_t bus_total_credit(bus_edge_t *e)
{
    int64_t total = 0;
    for (bus_remote_t *r = zlistx_first(e->remotes); r; r = zlistx_next(e->remotes))
        total += bus_remote_credit(r);
    return total;
}

static void bus_autoclaim(bus_t *self, bus_edge_t *e);

/* bus_pump - dispatch while consumers have credit: first what was not committed in time (so a
 * backlog of new records can never starve it), then new entries. */
static void bus_pump(bus_t *self, bus_edge_t *e)
{
    int64_t now = util_monotonic_ms();
    if (now >= e->next_claim_ms) {
        int64_t every = self->ack_timeout_ms / 4 < self->heartbeat_ms ? self->ack_timeout_ms / 4 : self->heartbeat_ms;
        e->next_claim_ms = now + (every > 10 ? every : 10);
        bus_autoclaim(self, e);
    }
    for (int rounds = 0; rounds < 64; rounds++) {
        int64_t credit = bus_total_credit(e);
        if (credit <= 0)
            return;
        int64_t count = credit < BUS_READ_BATCH ? credit : BUS_READ_BATCH;
        redisReply *r = redis_conn_command(self->redis, "XREADGROUP GROUP %s %s COUNT %lld STREAMS %s >", BUS_GROUP,
                                           self->instance, (long long)count, e->stream_key);
        if (!r) {
            if (strstr(redis_conn_errstr(self->redis), "NOGROUP"))
                bus_ensure_group(self, e);
            else
                bus_warn_redis(self, e, "cannot read");
            return;
        }
        size_t sent = 0, got = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements == 2) {
            const redisReply *entries = r->element[0]->element[1];
            got = entries->elements;
            sent = bus_dispatch_entries(self, e, entries, false);
        }
        freeReplyObject(r);
        if (got == 0 || sent < got)
            return;
    }
}

/* bus_autoclaim - take over entries whose consumer did not commit within ack_timeout. */
static void bus_autoclaim(bus_t *self, bus_edge_t *e)
{
    int64_t credit = bus_total_credit(e);
    if (credit <= 0)
        return;
    redisReply *r = redis_conn_command(self->redis, "XAUTOCLAIM %s %s %s %lld %s COUNT %lld", e->stream_key, BUS_GROUP,
                                       self->instance, (long long)self->ack_timeout_ms, e->claim_cursor,
                                       (long long)(credit < BUS_READ_BATCH ? credit : BUS_READ_BATCH));
    if (!r) {
        bus_warn_redis(self, e, "cannot claim");
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_ARRAY) {
        util_strlcpy(e->claim_cursor, r->element[0]->str, sizeof(e->claim_cursor));
        if (r->element[1]->elements)
            log_debug("bus: %s: %zu records not committed in time, dispatching again", e->name,
                      r->element[1]->elements);
        bus_dispatch_entries(self, e, r->element[1], true);
    }
    freeReplyObject(r);
}

/* bus_remote_find - the remote with this identity on edge, or NULL. */
static bus_remote_t *bus_remote_find(bus_edge_t *e, zframe_t *identity)
{
    for (bus_remote_t *r = zlistx_first(e->remotes); r; r = zlistx_next(e->remotes))
        if (zframe_eq(r->identity, identity))
            return r;
    return NULL;
}

/* bus_count_bad_frame - count a malformed or oversized message against its edge if known. */
static void bus_count_bad_frame(bus_t *self, zmsg_t *msg, const char *edge, size_t edge_len, bool oversized,
                                const char *why)
{
    bus_counters_t *c = &self->unattributed;
    const char *edge_name = "?";
    bus_edge_t *e = edge ? bus_find_edge(self, edge, edge_len) : NULL;
    if (e) {
        c = &e->counters;
        edge_name = e->name;
    }
    if (oversized)
        c->oversized_frames++;
    else
        c->malformed_frames++;
    log_warning("bus: dropped %s frame (%s edge %s, %zu parts, %zu bytes)", oversized ? "oversized" : "malformed",
                why, edge_name, zmsg_size(msg), zmsg_content_size(msg));
}

/* bus_get_parse - a consumer's request, one frame "GET <edge> <window> <received>". The edge
 * named (when the frame has one) is written to *edge and *edge_len even when the rest is bad. */
static int bus_get_parse(zframe_t *f, const char **edge, size_t *edge_len, uint64_t *window, uint64_t *received)
{
    const char *p = (const char *)zframe_data(f), *end = p + zframe_size(f);
    const char *tok[4];
    size_t len[4];
    int n = 0;
    *edge = NULL;
    while (p < end && n < 4) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        tok[n] = p;
        len[n] = (size_t)((sp ? sp : end) - p);
        n++;
        p = sp ? sp + 1 : end;
    }
    if (n >= 2) {
        *edge = tok[1];
        *edge_len = len[1];
    }
    if (n != 4 || p != end || len[0] != 3 || memcmp(tok[0], "GET", 3) != 0)
        return -1;
    for (int i = 2; i < 4; i++) {
        uint64_t v = 0;
        if (len[i] == 0 || len[i] > 19)
            return -1;
        for (size_t j = 0; j < len[i]; j++) {
            if (tok[i][j] < '0' || tok[i][j] > '9')
                return -1;
            v = v * 10 + (uint64_t)(tok[i][j] - '0');
        }
        *(i == 2 ? window : received) = v;
    }
    return 0;
}

/* bus_on_router - a consumer's GET (or garbage) arrived at the dispatcher socket. */
static int bus_on_router(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    bus_t *self = arg;
    for (int i = 0; i < 256; i++) {
        zmsg_t *msg = zmsg_recv_nowait(sock);
        if (!msg)
            break;
        zframe_t *identity = zmsg_pop(msg);
        zframe_t *get = zmsg_first(msg);
        const char *edge = NULL;
        size_t edge_len = 0;
        uint64_t window = 0, received = 0;
        bool bad = !get || zmsg_size(msg) != 1 || bus_get_parse(get, &edge, &edge_len, &window, &received) != 0;
        bus_edge_t *e = edge ? bus_find_edge(self, edge, edge_len) : NULL;
        if (zmsg_content_size(msg) > (size_t)self->max_record) {
            bus_count_bad_frame(self, msg, edge, edge_len, true, "larger than max_record,");
            zframe_destroy(&identity);
            zmsg_destroy(&msg);
            continue;
        }
        if (bad || !e || !e->producing || window > 1000000) {
            bus_count_bad_frame(self, msg, edge, edge_len, false, "not a GET for a produced");
            zframe_destroy(&identity);
            zmsg_destroy(&msg);
            continue;
        }
        bus_remote_t *r = bus_remote_find(e, identity);
        if (!r) {
            r = util_xcalloc(1, sizeof(*r));
            r->edge = e;
            r->identity = identity;
            r->sent = received; /* synchronise with what it already received */
            zlistx_add_end(e->remotes, r);
            identity = NULL;
            log_debug("bus: %s: consumer connection joined", e->name);
        }
        zframe_destroy(&identity);
        if (received > r->sent) /* cannot have received more than sent: resynchronise */
            r->sent = received;
        r->reported_received = received;
        r->window = (int64_t)window;
        r->last_seen_ms = util_monotonic_ms();
        zmsg_destroy(&msg);
        bus_pump(self, e);
    }
    return 0;
}

/* bus_bind - bind the dispatcher socket and compute the endpoint to announce. */
static int bus_bind(bus_t *self)
{
    if (self->router)
        return 0;
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->router) {
        bus_set_error(self, "cannot create the dispatcher socket");
        return -1;
    }
    zsock_set_router_mandatory(self->router, 1);
    zsock_set_linger(self->router, 0);
    zsock_set_maxmsgsize(self->router, self->max_record + 4096);
    zsock_set_sndhwm(self->router, (int)(self->capacity * 4 + 100));
    int port = zsock_bind(self->router, "%s", self->bind);
    if (port < 0) {
        bus_set_error(self, "cannot bind %s: %s", self->bind, zmq_strerror(zmq_errno()));
        zsock_destroy(&self->router);
        return -1;
    }
    if (self->advertise && *self->advertise) {
        util_strlcpy(self->endpoint, self->advertise, sizeof(self->endpoint));
    } else {
        char *last = zsock_last_endpoint(self->router); /* caller owns it */
        util_strlcpy(self->endpoint, last ? last : self->bind, sizeof(self->endpoint));
        free(last);
        if (strstr(self->endpoint, "://0.0.0.0:") || strstr(self->endpoint, "://*:")) {
            char host[200];
            gethostname(host, sizeof(host));
            host[sizeof(host) - 1] = '\0';
            snprintf(self->endpoint, sizeof(self->endpoint), "tcp://%s:%d", host, port);
        }
    }
    zloop_reader(self->loop, self->router, bus_on_router, self);
    zloop_reader_set_tolerant(self->loop, self->router);
    log_info("bus: dispatching on %s", self->endpoint);
    return 0;
}

int bus_produce(bus_t *self, const char *edge)
{
    bus_edge_t *e = bus_edge_get(self, edge);
    if (!e || bus_bind(self) < 0)
        return -1;
    if (bus_ensure_group(self, e) < 0)
        return -1;
    e->producing = true;
    self->next_heartbeat_ms = 0; /* announce at the next tick */
    return 0;
}

/* ---------------------------------------------------------------- consumer side */

static void bus_peer_destroy(void **item)
{
    bus_peer_t *p = *item;
    if (p) {
        free(p->endpoint);
        zsock_destroy(&p->sock);
        free(p);
        *item = NULL;
    }
}

static bus_held_t *bus_held_new(bus_edge_t *e, const bus_delivery_t *d)
{
    bus_held_t *h = util_xcalloc(1, sizeof(*h));
    h->edge = e;
    h->d.edge = e->name;
    h->d.entry_id = util_xstrdup(d->entry_id);
    h->d.record_id = util_xstrdup(d->record_id);
    char *payload = util_xmalloc(d->len + 1);
    memcpy(payload, d->payload, d->len);
    h->d.payload = payload;
    h->d.len = d->len;
    return h;
}

static void bus_held_destroy(void **item)
{
    bus_held_t *h = *item;
    if (h) {
        free((char *)h->d.entry_id);
        free((char *)h->d.record_id);
        free((char *)h->d.payload);
        free(h);
        *item = NULL;
    }
}

/* bus_held_remove - take a held delivery off the list and free it. */
static void bus_held_remove(bus_t *self, bus_held_t *h)
{
    zlistx_delete(self->held, h->handle);
}

/* bus_held_count - deliveries held on behalf of an edge's handler. */
static int64_t bus_held_count(bus_t *self)
{
    return (int64_t)zlistx_size(self->held);
}

/* bus_outputs_have_room - whether every edge this process produces can take more. */
static bool bus_outputs_have_room(bus_t *self)
{
    for (size_t i = 0; i < self->nedges; i++)
        if (self->edges[i].producing && !bus_edge_has_room(self, self->edges[i].name))
            return false;
    return true;
}

/* bus_send_get - tell one dispatcher how many records this consumer can take now. */
static void bus_send_get(bus_t *self, bus_peer_t *p)
{
    int64_t window = self->stopped || !bus_outputs_have_room(self) ? 0 : self->capacity - bus_held_count(self);
    if (window < 0)
        window = 0;
    char wtext[24], rtext[24];
    snprintf(wtext, sizeof(wtext), "%lld", (long long)window);
    snprintf(rtext, sizeof(rtext), "%llu", (unsigned long long)p->received);
    char get[BUS_MAX_EDGE + 64];
    int n = snprintf(get, sizeof(get), "GET %s %s %s", p->edge->name, wtext, rtext);
    void *sock = zsock_resolve(p->sock);
    p->get_pending = zmq_send(sock, get, (size_t)n, ZMQ_DONTWAIT) < 0;
    if (p->get_pending)
        return; /* not connected yet (ZMQ_IMMEDIATE): the next tick retries */
    p->received_at_get = p->received;
}

/* bus_hold_for_retry - keep a delivery that could not be processed now and schedule the next
 * attempt with capped exponential backoff (100 ms doubling to 5 s). */
static void bus_hold_for_retry(bus_t *self, bus_edge_t *e, const bus_delivery_t *d, bus_held_t *held)
{
    if (!held) {
        held = bus_held_new(e, d);
        held->backoff_ms = 100;
        held->handle = zlistx_add_end(self->held, held);
    } else {
        held->backoff_ms = held->backoff_ms * 2 > 5000 ? 5000 : held->backoff_ms * 2;
    }
    held->next_attempt_ms = util_monotonic_ms() + held->backoff_ms;
    log_debug("bus: %s record %s not processed (%s); retry in %lld ms", e->name, d->record_id, bus_errstr(self),
              (long long)held->backoff_ms);
}

/* bus_handle - run the handler on a delivery; keeps it for a retry when it fails. */
static void bus_handle(bus_t *self, bus_edge_t *e, const bus_delivery_t *d, bus_held_t *held)
{
    self->current = d;
    self->current_done = false;
    self->current_failed = false;
    int rc = e->handler(self, d, e->arg);
    bool done = self->current_done;
    if (rc == 0 && !done && self->current_failed)
        rc = -1; /* it tried to commit and could not: not "nothing to write" */
    self->current = NULL;
    if (rc == 0 && !done) {
        /* processed with nothing to write: acknowledge with an empty commit */
        bus_commit_t *c = bus_commit_new(self, d);
        bus_status_t st = bus_commit_run(c);
        bus_commit_destroy(&c);
        done = st == BUS_OK || st == BUS_DUPLICATE;
        if (!done)
            rc = -1;
    }
    if (rc == 0) {
        if (held)
            bus_held_remove(self, held);
        return;
    }
    bus_hold_for_retry(self, e, d, held);
}

/* bus_deliver - a delivery received, or due for another attempt: acknowledged at once when its
 * record id was already committed on the edge (the handler is not called), handled otherwise. */
static void bus_deliver(bus_t *self, bus_edge_t *e, const bus_delivery_t *d, bus_held_t *held)
{
    bus_commit_t *c = bus_commit_new(self, d);
    c->duplicate_only = true;
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    if (st == BUS_DUPLICATE) {
        log_debug("bus: %s record %s is a duplicate; acknowledged", e->name, d->record_id);
        if (held)
            bus_held_remove(self, held);
    } else if ((int)st == BUS_NOT_DUPLICATE) {
        bus_handle(self, e, d, held);
    } else if ((int)st == BUS_UNKNOWN_ENTRY) {
        /* not (or no longer) in the stream: committed elsewhere, or never dispatched by us */
        e->counters.malformed_frames++;
        log_warning("bus: %s: record %s names entry %s, which is not in the stream; dropped", e->name, d->record_id,
                    d->entry_id);
        if (held)
            bus_held_remove(self, held);
    } else {
        bus_hold_for_retry(self, e, d, held);
    }
}

/* bus_entry_id_valid - a stream entry id: <ms>-<seq>, each a decimal 64-bit unsigned number. */
static bool bus_entry_id_valid(const char *p, size_t n)
{
    const char *dash = memchr(p, '-', n);
    if (n < 3 || n >= BUS_MAX_ENTRY_ID || !dash)
        return false;
    const char *parts[2] = {p, dash + 1};
    size_t lens[2] = {(size_t)(dash - p), n - (size_t)(dash - p) - 1};
    for (int i = 0; i < 2; i++) {
        if (lens[i] == 0 || lens[i] > 20)
            return false;
        uint64_t v = 0;
        for (size_t j = 0; j < lens[i]; j++) {
            unsigned digit = (unsigned char)parts[i][j] - '0';
            if (digit > 9 || v > (UINT64_MAX - digit) / 10)
                return false;
            v = v * 10 + digit;
        }
    }
    return true;
}

/* bus_on_peer - records (or garbage) from a dispatcher. */
static int bus_on_peer(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    bus_peer_t *p = arg;
    bus_edge_t *e = p->edge;
    bus_t *self = p->bus;
    /* a bounded batch, in count and time, so that timers (heartbeats, claim renewals) run
     * between slow handler calls; zloop calls again while messages remain */
    int64_t batch_deadline = util_monotonic_ms() + self->heartbeat_ms / 2;
    for (int i = 0; i < 64 && (i == 0 || util_monotonic_ms() < batch_deadline); i++) {
        zmsg_t *msg = zmsg_recv_nowait(p->sock);
        if (!msg)
            break;
        p->received++;
        if (zmsg_content_size(msg) > (size_t)self->max_record + 512) {
            bus_count_bad_frame(self, msg, e->name, strlen(e->name), true, "larger than max_record,");
            zmsg_destroy(&msg);
            continue;
        }
        /* one frame: "REC", then edge, entry id and record id each after a length byte, then
         * the payload (bus_send_record) */
        zframe_t *f = zmsg_first(msg);
        const unsigned char *q = zframe_data(f), *end = q + zframe_size(f);
        const char *field[3] = {NULL, NULL, NULL};
        size_t flen[3] = {0, 0, 0};
        bool ok = zmsg_size(msg) == 1 && zframe_size(f) >= 3 && memcmp(q, "REC", 3) == 0;
        if (ok)
            q += 3;
        for (int k = 0; k < 3 && ok; k++) {
            ok = q < end && (size_t)(end - q - 1) >= *q;
            if (ok) {
                flen[k] = *q;
                field[k] = (const char *)q + 1;
                q += 1 + flen[k];
            }
        }
        if (!ok || flen[0] != strlen(e->name) || memcmp(field[0], e->name, flen[0]) != 0 ||
            !bus_entry_id_valid(field[1], flen[1]) || flen[2] == 0 || flen[2] > RECORD_MAX_ID ||
            memchr(field[2], '\0', flen[2])) {
            bus_count_bad_frame(self, msg, e->name, strlen(e->name), false, "not a REC for the");
            zmsg_destroy(&msg);
            continue;
        }
        char *entry_id = util_xstrndup(field[1], flen[1]);
        if (self->stopped) { /* arrived while stopping: hand it back */
            const char *ids[1] = {entry_id};
            bus_hand_back(self, e, ids, 1);
            free(entry_id);
            zmsg_destroy(&msg);
            continue;
        }
        char *record_id = util_xstrndup(field[2], flen[2]);
        bus_delivery_t d = {e->name, entry_id, record_id, (const char *)q, (size_t)(end - q)};
        bus_deliver(self, e, &d, NULL);
        free(entry_id);
        free(record_id);
        zmsg_destroy(&msg);
    }
    if (p->received - p->received_at_get >= (uint64_t)(self->capacity / 2 > 0 ? self->capacity / 2 : 1))
        bus_send_get(self, p);
    return 0;
}

/* bus_peer_connect - open a consumer connection to a dispatcher endpoint. */
static bus_peer_t *bus_peer_connect(bus_t *self, bus_edge_t *e, const char *endpoint)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_immediate(sock, 1);
    zsock_set_linger(sock, 0);
    zsock_set_maxmsgsize(sock, self->max_record + 4096);
    zsock_set_rcvhwm(sock, (int)(self->capacity * 4 + 100));
    if (zsock_connect(sock, "%s", endpoint) < 0) {
        log_warning("bus: %s: cannot connect to %s", e->name, endpoint);
        zsock_destroy(&sock);
        return NULL;
    }
    bus_peer_t *p = util_xcalloc(1, sizeof(*p));
    p->bus = self;
    p->edge = e;
    p->endpoint = util_xstrdup(endpoint);
    p->sock = sock;
    zloop_reader(self->loop, sock, bus_on_peer, p);
    zloop_reader_set_tolerant(self->loop, sock);
    log_info("bus: %s: connected to dispatcher %s", e->name, endpoint);
    return p;
}

/* bus_refresh_peers - connect to newly announced dispatchers, drop the ones gone. */
static void bus_refresh_peers(bus_t *self, bus_edge_t *e, int64_t now)
{
    redisReply *r = redis_conn_command(self->redis, "HGETALL %s", e->dispatchers_key);
    if (!r) {
        bus_warn_redis(self, e, "cannot read dispatchers");
        return;
    }
    for (bus_peer_t *p = zlistx_first(e->peers); p; p = zlistx_next(e->peers))
        p->seen = false;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const char *endpoint = r->element[i]->str;
        int64_t expiry = 0;
        if (!endpoint || !r->element[i + 1]->str || util_parse_int64(r->element[i + 1]->str, &expiry) < 0)
            continue;
        if (expiry < now)
            continue;
        bus_peer_t *p;
        for (p = zlistx_first(e->peers); p; p = zlistx_next(e->peers))
            if (strcmp(p->endpoint, endpoint) == 0)
                break;
        if (!p) {
            p = bus_peer_connect(self, e, endpoint);
            if (!p)
                continue;
            zlistx_add_end(e->peers, p);
        }
        p->seen = true;
    }
    freeReplyObject(r);
    size_t n;
    void **items = bus_snapshot(e->peers, &n);
    for (size_t i = 0; i < n; i++) {
        bus_peer_t *p = items[i];
        if (!p->seen) {
            log_info("bus: %s: dispatcher %s gone", e->name, p->endpoint);
            bus_on_peer(self->loop, p->sock, p); /* what it sent before leaving is still good */
            zloop_reader_end(self->loop, p->sock);
            bus_delete_item(e->peers, p);
        }
    }
    free(items);
}

int bus_consume(bus_t *self, const char *edge, bus_handler_fn handler, void *arg)
{
    bus_edge_t *e = bus_edge_get(self, edge);
    if (!e)
        return -1;
    if (bus_ensure_group(self, e) < 0)
        return -1;
    e->consuming = true;
    e->handler = handler;
    e->arg = arg;
    self->next_heartbeat_ms = 0;
    return 0;
}

bool bus_edge_has_room(bus_t *self, const char *edge)
{
    bus_edge_t *e = bus_edge_get(self, edge);
    if (!e)
        return false;
    int64_t now = util_monotonic_ms();
    if (e->room_checked_ms && now - e->room_checked_ms < self->heartbeat_ms)
        return e->has_room;
    redisReply *r = redis_conn_command(self->redis, "XLEN %s", e->stream_key);
    if (!r)
        return false; /* Redis down: producing would fail anyway */
    e->has_room = r->type == REDIS_REPLY_INTEGER && r->integer < self->max_waiting;
    e->room_checked_ms = now;
    freeReplyObject(r);
    return e->has_room;
}

bus_delivery_t *bus_delivery_keep(bus_t *self, const bus_delivery_t *d)
{
    bus_edge_t *e = bus_find_edge(self, d->edge, strlen(d->edge));
    if (!e)
        return NULL;
    bus_held_t *h = bus_held_new(e, d);
    h->kept = true;
    h->handle = zlistx_add_end(self->held, h);
    if (self->current && strcmp(self->current->entry_id, d->entry_id) == 0)
        self->current_done = true;
    return &h->d;
}

void bus_delivery_release(bus_t *self, bus_delivery_t **dp, bool hand_back)
{
    if (!dp || !*dp)
        return;
    bus_held_t *h = (bus_held_t *)((char *)*dp - offsetof(bus_held_t, d));
    if (hand_back) {
        const char *ids[1] = {h->d.entry_id};
        bus_hand_back(self, h->edge, ids, 1);
    }
    bus_held_remove(self, h);
    *dp = NULL;
    for (size_t i = 0; i < self->nedges; i++) /* a slot was freed: ask for more */
        for (bus_peer_t *p = zlistx_first(self->edges[i].peers); p; p = zlistx_next(self->edges[i].peers))
            bus_send_get(self, p);
}

/* ---------------------------------------------------------------- timers */

/* bus_touch_held - keep held deliveries claimed so no one dispatches them again. */
static void bus_touch_held(bus_t *self)
{
    for (size_t i = 0; i < self->nedges; i++) {
        size_t n;
        const char **ids = bus_held_ids(self, &self->edges[i], &n);
        if (bus_claim(self, &self->edges[i], ids, n, -1) < 0)
            log_warning("bus: %s: cannot renew the claim on %zu held records: %s", self->edges[i].name, n,
                        redis_conn_errstr(self->redis));
        free(ids);
    }
}

/* bus_retry_held - run the handler again on deliveries whose backoff has passed. */
static void bus_retry_held(bus_t *self, int64_t now)
{
    /* the due ones first (a handler call may release others; kept ones are never due) */
    size_t n = 0;
    bus_held_t **due = util_xcalloc(zlistx_size(self->held) + 1, sizeof(*due));
    for (bus_held_t *h = zlistx_first(self->held); h; h = zlistx_next(self->held))
        if (!h->kept && h->next_attempt_ms <= now)
            due[n++] = h;
    for (size_t i = 0; i < n; i++)
        if (zlistx_find(self->held, due[i])) /* not released by an earlier handler call */
            bus_deliver(self, due[i]->edge, &due[i]->d, due[i]);
    free(due);
}

/* bus_flush_counters - add this process's counter deltas to cb:bus:stats. */
static void bus_flush_counters(bus_t *self)
{
    static const char *const names[] = {"committed",        "duplicates",      "redispatched", "malformed_frames",
                                        "oversized_frames", "dead",            "dispatched"};
    size_t queued = 0;
    for (size_t i = 0; i <= self->nedges; i++) {
        bus_counters_t *c = i < self->nedges ? &self->edges[i].counters : &self->unattributed;
        const char *edge = i < self->nedges ? self->edges[i].name : "?";
        int64_t *values = (int64_t *)c;
        for (size_t j = 0; j < UTIL_ARRAY_LEN(names); j++) {
            if (values[j] == 0)
                continue;
            char field[96];
            snprintf(field, sizeof(field), "%s.%s", edge, names[j]);
            if (redis_conn_append(self->redis, "HINCRBY cb:bus:stats %s %lld", field, (long long)values[j]) < 0)
                return; /* keep the deltas for the next flush */
            queued++;
        }
    }
    if (queued == 0)
        return;
    redisReply **replies = util_xcalloc(queued, sizeof(*replies));
    if (redis_conn_pipeline_exec(self->redis, replies, queued) == 0) {
        for (size_t i = 0; i < queued; i++)
            freeReplyObject(replies[i]);
        for (size_t i = 0; i < self->nedges; i++)
            memset(&self->edges[i].counters, 0, sizeof(bus_counters_t));
        memset(&self->unattributed, 0, sizeof(self->unattributed));
    }
    free(replies);
}

static redis_script_t BUS_DELCONSUMER_SCRIPT = {
    .source = "if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then\n"
              "  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])\n"
              "end\n"
              "return -1\n",
};

/* bus_prune_announcements - remove the expired fields of an announcement hash (crashed
 * instances never withdraw theirs). */
static void bus_prune_announcements(bus_t *self, const char *key, int64_t now)
{
    redisReply *r = redis_conn_command(self->redis, "HGETALL %s", key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        int64_t expiry;
        if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i + 1]->type != REDIS_REPLY_STRING)
            continue;
        if (util_parse_int64(r->element[i + 1]->str, &expiry) < 0 || expiry < now) {
            redisReply *x = redis_conn_command(self->redis, "HDEL %s %b", key, r->element[i]->str,
                                               (size_t)r->element[i]->len);
            if (x)
                freeReplyObject(x);
        }
    }
    if (r)
        freeReplyObject(r);
}

/* bus_prune - keep an edge's bookkeeping bounded: forget record ids older than the dedup
 * window, expired announcements, and group consumers (crashed instances) that hold nothing and
 * have been idle for ten acknowledgement timeouts. Run by dispatchers once a minute. */
static void bus_prune(bus_t *self, bus_edge_t *e, int64_t now)
{
    redisReply *r = redis_conn_command(self->redis, "ZREMRANGEBYSCORE %s -inf %lld", e->done_key,
                                       (long long)(now - self->dedup_window_ms));
    if (r)
        freeReplyObject(r);
    bus_prune_announcements(self, e->dispatchers_key, now);
    bus_prune_announcements(self, e->consumers_key, now);
    r = redis_conn_command(self->redis, "XINFO CONSUMERS %s %s", e->stream_key, BUS_GROUP);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *c = r->element[i];
        const char *name = NULL;
        long long pending = -1, idle = -1;
        for (size_t j = 0; c->type == REDIS_REPLY_ARRAY && j + 1 < c->elements; j += 2) {
            const redisReply *k = c->element[j], *v = c->element[j + 1];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                name = v->str;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(k->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER)
                idle = v->integer;
        }
        if (name && pending == 0 && idle > 10 * self->ack_timeout_ms && strcmp(name, self->instance) != 0) {
            /* atomically: only if it still holds nothing (it may have claimed since XINFO) */
            const char *argv[] = {e->stream_key, BUS_GROUP, name};
            redisReply *x = redis_conn_eval(self->redis, &BUS_DELCONSUMER_SCRIPT, 1, 3, argv, NULL);
            if (x)
                freeReplyObject(x);
        }
    }
    if (r)
        freeReplyObject(r);
}

/* bus_heartbeat - announcements, peers, windows, expiry of silent consumers, reclaiming. */
static void bus_heartbeat(bus_t *self, int64_t now_mono)
{
    int64_t now = util_now_ms();
    /* announcements outlive a few missed heartbeats and one slow handler call */
    int64_t expiry = now + 3 * self->heartbeat_ms + self->ack_timeout_ms;
    for (size_t i = 0; i < self->nedges; i++) {
        bus_edge_t *e = &self->edges[i];
        if (e->producing) {
            redisReply *r = redis_conn_command(self->redis, "HSET %s %s %lld", e->dispatchers_key, self->endpoint,
                                               (long long)expiry);
            if (r)
                freeReplyObject(r);
            size_t n;
            void **items = bus_snapshot(e->remotes, &n);
            for (size_t j = 0; j < n; j++) {
                bus_remote_t *rm = items[j];
                int64_t silent = now_mono - rm->last_seen_ms;
                /* silent: send it nothing more, but keep its counts, so that when it speaks
                 * again (a slow handler, not a dead process) the window still accounts for
                 * what is in transit to it; long silent: a dead consumer, forget it */
                if (silent > 10 * (self->ack_timeout_ms + 3 * self->heartbeat_ms)) {
                    log_debug("bus: %s: consumer connection silent for %lld ms, forgotten", e->name,
                              (long long)silent);
                    bus_delete_item(e->remotes, rm);
                } else if (silent > 3 * self->heartbeat_ms) {
                    rm->window = 0;
                }
            }
            free(items);
            if (now_mono >= e->next_prune_ms) {
                e->next_prune_ms = now_mono + 60000;
                bus_prune(self, e, now);
            }
        }
        if (e->consuming) {
            redisReply *r = redis_conn_command(self->redis, "HSET %s %s %lld", e->consumers_key, self->instance,
                                               (long long)expiry);
            if (r)
                freeReplyObject(r);
            bus_refresh_peers(self, e, now);
            for (bus_peer_t *p = zlistx_first(e->peers); p; p = zlistx_next(e->peers))
                bus_send_get(self, p);
        }
    }
    bus_flush_counters(self);
}

static int bus_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    bus_t *self = arg;
    if (self->stopped)
        return 0;
    int64_t now = util_monotonic_ms();
    if (now >= self->next_heartbeat_ms) {
        self->next_heartbeat_ms = now + self->heartbeat_ms;
        bus_heartbeat(self, now);
    }
    if (now >= self->next_touch_ms) {
        self->next_touch_ms = now + self->ack_timeout_ms / 3;
        bus_touch_held(self);
    }
    bus_retry_held(self, now);
    for (size_t i = 0; i < self->nedges; i++) {
        bus_edge_t *e = &self->edges[i];
        if (e->producing)
            bus_pump(self, e);
        if (e->consuming)
            for (bus_peer_t *p = zlistx_first(e->peers); p; p = zlistx_next(e->peers))
                if (p->get_pending)
                    bus_send_get(self, p);
    }
    return 0;
}

/* ---------------------------------------------------------------- life cycle */

bus_t *bus_new(const config_t *cfg, redis_conn_t *redis, zloop_t *loop, const char *program, char *err,
               size_t errsize)
{
    bus_t *self = util_xcalloc(1, sizeof(*self));
    self->redis = redis;
    self->loop = loop;
    util_strlcpy(self->program, program, sizeof(self->program));
    char host[128] = "";
    gethostname(host, sizeof(host) - 1);
    char uuid[37];
    util_uuid(uuid);
    snprintf(self->instance, sizeof(self->instance), "%s:%s:%ld:%.8s", program, host, (long)getpid(), uuid);
    self->capacity = cfg->bus_capacity;
    self->ack_timeout_ms = cfg->bus_ack_timeout_ms;
    self->heartbeat_ms = cfg->bus_heartbeat_ms;
    self->max_waiting = cfg->bus_max_waiting;
    self->max_record = cfg->bus_max_record;
    self->dedup_window_ms = cfg->bus_dedup_window_ms;
    self->bind = util_xstrdup(cfg->bus_bind);
    self->advertise = util_xstrdup(cfg->bus_advertise);
    self->held = zlistx_new();
    zlistx_set_destructor(self->held, bus_held_destroy);
    self->timer_id = -1; /* started with the first edge (bus_edge_get) */
    (void)err;
    (void)errsize;
    return self;
}

void bus_stop(bus_t *self)
{
    if (self->stopped)
        return;
    self->stopped = true;
    for (size_t i = 0; i < self->nedges; i++) {
        bus_edge_t *e = &self->edges[i];
        /* tell dispatchers to send nothing more, then hand back what is held or arrives */
        for (bus_peer_t *p = zlistx_first(e->peers); p; p = zlistx_next(e->peers)) {
            bus_send_get(self, p);
            bus_on_peer(self->loop, p->sock, p);
        }
    }
    for (size_t i = 0; i < self->nedges; i++) {
        bus_edge_t *e = &self->edges[i];
        size_t n;
        const char **ids = bus_held_ids(self, e, &n);
        if (n)
            log_info("bus: %s: handing back %zu records not finished", e->name, n);
        bus_hand_back(self, e, ids, n);
        free(ids);
        redisReply *r = NULL;
        if (e->producing)
            r = redis_conn_command(self->redis, "HDEL %s %s", e->dispatchers_key, self->endpoint);
        if (r)
            freeReplyObject(r);
        r = e->consuming ? redis_conn_command(self->redis, "HDEL %s %s", e->consumers_key, self->instance) : NULL;
        if (r)
            freeReplyObject(r);
    }
    zlistx_purge(self->held);
    bus_flush_counters(self);
}

void bus_destroy(bus_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    bus_t *self = *selfp;
    bus_stop(self);
    if (self->timer_id >= 0)
        zloop_timer_end(self->loop, self->timer_id);
    for (size_t i = 0; i < self->nedges; i++) {
        bus_edge_t *e = &self->edges[i];
        for (bus_peer_t *p = zlistx_first(e->peers); p; p = zlistx_next(e->peers))
            zloop_reader_end(self->loop, p->sock);
        zlistx_destroy(&e->peers);
        zlistx_destroy(&e->remotes);
    }
    if (self->router) {
        zloop_reader_end(self->loop, self->router);
        zsock_destroy(&self->router);
    }
    zlistx_destroy(&self->held);
    free(self->bind);
    free(self->advertise);
    free(self);
    *selfp = NULL;
}

/* ---------------------------------------------------------------- operators */

int bus_edge_stats(redis_conn_t *redis, const char *edge, bus_edge_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    char q[96], dead[96], disp[96], cons[96];
    bus_key(q, sizeof(q), edge, "q");
    bus_key(dead, sizeof(dead), edge, "dead");
    bus_key(disp, sizeof(disp), edge, "dispatchers");
    bus_key(cons, sizeof(cons), edge, "consumers");
    int64_t now = util_now_ms();
    if (redis_conn_append(redis, "XLEN %s", q) < 0 || redis_conn_append(redis, "XPENDING %s %s", q, BUS_GROUP) < 0 ||
        redis_conn_append(redis, "XRANGE %s - + COUNT 1", q) < 0 || redis_conn_append(redis, "XLEN %s", dead) < 0 ||
        redis_conn_append(redis, "HGETALL %s", disp) < 0 || redis_conn_append(redis, "HGETALL %s", cons) < 0 ||
        redis_conn_append(redis, "HGETALL cb:bus:stats") < 0) {
        redisReply *none[7];
        redis_conn_pipeline_exec(redis, none, 7); /* clears the queue */
        return -1;
    }
    redisReply *r[7];
    if (redis_conn_pipeline_exec(redis, r, 7) < 0)
        return -1;
    int64_t len = r[0]->type == REDIS_REPLY_INTEGER ? r[0]->integer : 0;
    if (r[1]->type == REDIS_REPLY_ARRAY && r[1]->elements >= 1 && r[1]->element[0]->type == REDIS_REPLY_INTEGER)
        out->in_flight = r[1]->element[0]->integer;
    out->waiting = len - out->in_flight > 0 ? len - out->in_flight : 0;
    if (r[2]->type == REDIS_REPLY_ARRAY && r[2]->elements == 1 && r[2]->element[0]->type == REDIS_REPLY_ARRAY &&
        r[2]->element[0]->elements >= 1 && r[2]->element[0]->element[0]->type == REDIS_REPLY_STRING) {
        long long ms = atoll(r[2]->element[0]->element[0]->str);
        out->oldest_age_ms = now - ms > 0 ? now - ms : 0;
    }
    out->dead = r[3]->type == REDIS_REPLY_INTEGER ? r[3]->integer : 0;
    for (int j = 4; j <= 5; j++) {
        int64_t live = 0;
        for (size_t i = 0; r[j]->type == REDIS_REPLY_ARRAY && i + 1 < r[j]->elements; i += 2) {
            int64_t expiry;
            if (r[j]->element[i + 1]->str && util_parse_int64(r[j]->element[i + 1]->str, &expiry) == 0 && expiry >= now)
                live++;
        }
        if (j == 4)
            out->dispatchers = live;
        else
            out->consumers = live;
    }
    struct {
        const char *name;
        int64_t *slot;
    } counters[] = {{"committed", &out->committed},
                    {"duplicates", &out->duplicates},
                    {"redispatched", &out->redispatched},
                    {"malformed_frames", &out->malformed_frames},
                    {"oversized_frames", &out->oversized_frames}};
    size_t elen = strlen(edge);
    for (size_t i = 0; r[6]->type == REDIS_REPLY_ARRAY && i + 1 < r[6]->elements; i += 2) {
        const char *field = r[6]->element[i]->str;
        if (!field || strncmp(field, edge, elen) != 0 || field[elen] != '.')
            continue;
        for (size_t k = 0; k < UTIL_ARRAY_LEN(counters); k++)
            if (strcmp(field + elen + 1, counters[k].name) == 0)
                *counters[k].slot = atoll(r[6]->element[i + 1]->str ? r[6]->element[i + 1]->str : "0");
    }
    for (int j = 0; j < 7; j++)
        freeReplyObject(r[j]);
    return 0;
}
