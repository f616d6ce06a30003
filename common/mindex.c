/*
 * mindex.c - the index of delivered messages in Redis; see mindex.h for the layout.
 *
 * Keys (all under cb:ix:, P = partition number = floor(time_ms / partition_ms)):
 *   cb:ix:meta                 hash: partition_ms, key (hex of the 16-byte hash key)
 *   cb:mid                     counter: MIDs are handed out by INCRBY in blocks
 *   cb:ix:<P>:x:<bucket>       string of 11-byte entries: tag (6 bytes), MID (5 bytes)
 *   cb:ix:<P>:r:<(MID-1)/64>   string of records: 2-byte length, msgpack record
 *   cb:ix:<P>:compacted        the lock of the partition's compaction
 * The hash covers a letter per kind (u d a i m s e h f) and the value; <bucket> is its top
 * bucket_bits bits in hex, the tag its low 48 bits.
 */
#include "mindex.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <glib.h>
#include <libpsl.h>
#include <msgpack.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "text.h"
#include "url_canon.h"
#include "util.h"

#define MINDEX_PARTITIONS_PER_WINDOW 24
#define MINDEX_ENTRY 11
#define MINDEX_RECORDS_PER_BUCKET 64
#define MINDEX_MID_BLOCK MINDEX_RECORDS_PER_BUCKET
#define MINDEX_RECORD_VERSION 3
#define MINDEX_MAX_RECORD 16777215 /* 3-byte length prefix */
#define MINDEX_EXPIRY_CACHE 200000 /* keys this instance knows have an expiry */

static const char KIND_LETTER[MINDEX_KINDS] = {'u', 'd', 'a', 'i', 'm', 's', 'e', 'h', 'f'};
static const char *const KIND_NAME[MINDEX_KINDS] = {"url",   "domain", "address", "ip",       "message_id",
                                                    "subject", "email_id", "sha256", "file_name"};

struct mindex {
    redis_conn_t *redis;
    int64_t retention_ms;
    int bucket_bits;
    bool ready;              /* meta read from Redis */
    int64_t partition_ms;
    unsigned char key[16];   /* SipHash key */
    EVP_MAC *mac;
    EVP_MAC_CTX *mac_ctx;
    bool mac_keyed; /* mac_ctx holds the key (value_hash) */
    int64_t mid_next, mid_end; /* the block of MIDs reserved, [next, end) */
    size_t queued_commands;  /* commands in the redis_conn pipeline */
    size_t queued_messages;
    zhashx_t *expiring;      /* keys given an expiry by this instance */
    int64_t last_part;       /* newest partition this instance has written */
    char block_keys[4][96];  /* record buckets written by the current MID block */
    int n_block_keys;
    char err[512];
};

const char *mindex_kind_name(mindex_kind_t kind)
{
    return kind < MINDEX_KINDS ? KIND_NAME[kind] : "?";
}

static int mindex_fail(mindex_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int mindex_fail(mindex_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->err, sizeof(self->err), fmt, ap);
    va_end(ap);
    return -1;
}

const char *mindex_errstr(const mindex_t *self)
{
    return self->err;
}

mindex_t *mindex_new(redis_conn_t *redis, const mindex_options_t *options)
{
    mindex_t *self = util_xcalloc(1, sizeof(*self));
    self->redis = redis;
    self->retention_ms = options && options->retention_ms > 0 ? options->retention_ms : 168LL * 3600 * 1000;
    self->bucket_bits = options && options->bucket_bits >= 4 && options->bucket_bits <= 20 ? options->bucket_bits : 8;
    self->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    self->mac_ctx = self->mac ? EVP_MAC_CTX_new(self->mac) : NULL;
    if (!self->mac_ctx)
        abort(); /* OpenSSL 3 always has SipHash: an allocation failure */
    self->expiring = zhashx_new();
    return self;
}

static void pipeline_abandon(mindex_t *self);

void mindex_destroy(mindex_t **pself)
{
    if (!pself || !*pself)
        return;
    mindex_t *self = *pself;
    pipeline_abandon(self); /* what was queued is sent; its replies are read and dropped */
    EVP_MAC_CTX_free(self->mac_ctx);
    EVP_MAC_free(self->mac);
    zhashx_destroy(&self->expiring);
    free(self);
    *pself = NULL;
}

/* mindex_ready - read the index's parameters from Redis; a writer (create) makes them first if
 * there are none (the first writer wins, later ones read what it wrote, whatever their own
 * configuration: the partition length, bucket count and key of an existing index never
 * change). 0 ready, 1 no index yet (a reader: nothing to find), -1 error. */
static int mindex_ready(mindex_t *self, bool create)
{
    if (self->ready)
        return 0;
    redisReply *r = NULL;
    if (create) {
        unsigned char fresh[16];
        if (RAND_bytes(fresh, sizeof(fresh)) != 1)
            return mindex_fail(self, "index: no random bytes for the hash key");
        char hex[33];
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", fresh[i]);
        int64_t partition_ms = self->retention_ms / MINDEX_PARTITIONS_PER_WINDOW;
        if (partition_ms < 1000)
            partition_ms = 1000;
        /* all three at once, only when the hash does not exist */
        static redis_script_t create_script = {
            .source = "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
                      "  redis.call('HSET', KEYS[1], 'partition_ms', ARGV[1], 'bucket_bits', ARGV[2], 'key', ARGV[3])\n"
                      "end\n"
                      "return 1\n",
        };
        char pms[24], bits[8];
        snprintf(pms, sizeof(pms), "%lld", (long long)partition_ms);
        snprintf(bits, sizeof(bits), "%d", self->bucket_bits);
        const char *argv[] = {"cb:ix:meta", pms, bits, hex};
        r = redis_conn_eval(self->redis, &create_script, 1, 4, argv, NULL);
        if (!r)
            return mindex_fail(self, "index: Redis %s: %s", redis_conn_describe(self->redis),
                               redis_conn_errstr(self->redis));
        freeReplyObject(r);
    }
    r = redis_conn_command(self->redis, "HMGET cb:ix:meta partition_ms bucket_bits key");
    if (!r)
        return mindex_fail(self, "index: Redis %s: %s", redis_conn_describe(self->redis),
                           redis_conn_errstr(self->redis));
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_NIL &&
        r->element[1]->type == REDIS_REPLY_NIL && r->element[2]->type == REDIS_REPLY_NIL && !create) {
        freeReplyObject(r);
        return 1;
    }
    int rc = -1;
    int64_t bits = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING && r->element[2]->type == REDIS_REPLY_STRING &&
        r->element[2]->len == 32 && util_parse_int64(r->element[0]->str, &self->partition_ms) == 0 &&
        self->partition_ms > 0 && util_parse_int64(r->element[1]->str, &bits) == 0 && bits >= 4 && bits <= 20) {
        rc = 0;
        self->bucket_bits = (int)bits;
        for (int i = 0; i < 16 && rc == 0; i++) {
            int hi = text_hex_value((unsigned char)r->element[2]->str[2 * i]);
            int lo = text_hex_value((unsigned char)r->element[2]->str[2 * i + 1]);
            if (hi < 0 || lo < 0)
                rc = -1;
            else
                self->key[i] = (unsigned char)(hi << 4 | lo);
        }
    }
    freeReplyObject(r);
    if (rc != 0)
        return mindex_fail(self, "index: cb:ix:meta in Redis is damaged (partition_ms, bucket_bits, key)");
    self->ready = true;
    self->mac_keyed = false; /* the key may have changed: value_hash sets it again */
    return 0;
}

/* value_hash - the keyed 64-bit hash (SipHash-2-4) of a value of one kind. */
static uint64_t value_hash(mindex_t *self, mindex_kind_t kind, const char *value, size_t len)
{
    unsigned char out[8];
    size_t outl = 0;
    char letter = KIND_LETTER[kind];
    int keyed;
    if (self->mac_keyed) {
        /* no key: the provider starts again from the keyed state it kept (cheap: hashed twice
         * per record read, 100,000 times in a fan-out) */
        keyed = EVP_MAC_init(self->mac_ctx, NULL, 0, NULL);
    } else {
        size_t outsize = 8;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outsize), OSSL_PARAM_END};
        keyed = EVP_MAC_init(self->mac_ctx, self->key, sizeof(self->key), params);
        self->mac_keyed = keyed == 1;
    }
    if (keyed != 1 || EVP_MAC_update(self->mac_ctx, (const unsigned char *)&letter, 1) != 1 ||
        EVP_MAC_update(self->mac_ctx, (const unsigned char *)value, len) != 1 ||
        EVP_MAC_final(self->mac_ctx, out, &outl, sizeof(out)) != 1 || outl != 8)
        abort(); /* cannot fail with a valid key and size */
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h = h << 8 | out[i];
    return h;
}

static int64_t partition_of(const mindex_t *self, int64_t time_ms)
{
    return time_ms / self->partition_ms;
}

/* bucket_key - every kind shares the buckets of a partition (the kind is part of the hashed
 * value, so entries of different kinds never match): fewer, larger strings cost less memory
 * per entry than a key family per kind. */
static void bucket_key(const mindex_t *self, char *out, size_t outlen, int64_t part, mindex_kind_t kind, uint64_t h)
{
    (void)kind;
    snprintf(out, outlen, "cb:ix:%lld:x:%llx", (long long)part, (unsigned long long)(h >> (64 - self->bucket_bits)));
}

/* record_key - MIDs are handed out in aligned blocks of MINDEX_MID_BLOCK (= records per
 * bucket): one instance alone writes a record bucket, and knows when it is complete. */
static void record_key(char *out, size_t outlen, int64_t part, int64_t mid)
{
    snprintf(out, outlen, "cb:ix:%lld:r:%llx", (long long)part,
             (unsigned long long)((mid - 1) / MINDEX_RECORDS_PER_BUCKET));
}

/* put_be, get_be - an n-byte big-endian unsigned number (entries: 6-byte tag, 5-byte MID). */
static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

char *mindex_subject_normalize(const char *subject)
{
    if (!subject || !g_utf8_validate(subject, -1, NULL))
        return NULL;
    gchar *folded = g_utf8_casefold(subject, -1);
    gchar *norm = folded ? g_utf8_normalize(folded, -1, G_NORMALIZE_NFKC) : NULL;
    g_free(folded);
    if (!norm)
        return NULL;
    size_t n = strlen(norm), w = 0;
    char *out = util_xmalloc(n + 1);
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)norm[i];
        if (c <= 0x20 || c == 0x7f) {
            space = w > 0;
            continue;
        }
        if (space)
            out[w++] = ' ';
        space = false;
        out[w++] = (char)c;
    }
    out[w] = '\0';
    g_free(norm);
    if (w == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- writing ---- */

/* The distinct (kind, value) pairs of one message: the message's own observables first, then
 * its URLs, so that no number of links can push them out; bounded by what the parser keeps
 * (MESSAGE_MAX_URLS URLs, three entries each at most, plus addresses and attachments). */
#define MINDEX_MAX_ENTRIES (3 * MESSAGE_MAX_URLS + 2 * MESSAGE_MAX_ATTACHMENTS + 2 * MESSAGE_MAX_ADDRESSES + 16)
typedef struct {
    mindex_kind_t *kind;
    char **value;
    size_t n, cap;
    zhashx_t *seen; /* "<kind letter><value>" */
} entries_t;

static void entries_add(entries_t *e, mindex_kind_t kind, const char *value, size_t len)
{
    if (!value || len == 0 || e->n >= MINDEX_MAX_ENTRIES)
        return;
    char *tagged = util_xmalloc(len + 2);
    tagged[0] = KIND_LETTER[kind];
    memcpy(tagged + 1, value, len);
    tagged[len + 1] = '\0';
    int fresh = zhashx_insert(e->seen, tagged, (void *)1) == 0;
    free(tagged);
    if (!fresh)
        return;
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->kind = util_xrealloc(e->kind, e->cap * sizeof(*e->kind));
        e->value = util_xrealloc(e->value, e->cap * sizeof(*e->value));
    }
    e->kind[e->n] = kind;
    e->value[e->n] = util_xstrndup(value, len);
    e->n++;
}

static void entries_add_lower(entries_t *e, mindex_kind_t kind, const char *value)
{
    if (!value)
        return;
    char *low = util_xstrdup(value);
    for (char *p = low; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    entries_add(e, kind, low, strlen(low));
    free(low);
}

/* entries_add_domain - a host and its registrable domain (public suffix list). */
static void entries_add_domain(entries_t *e, const char *host, size_t len)
{
    if (len == 0 || len > 255)
        return;
    char buf[256];
    memcpy(buf, host, len);
    buf[len] = '\0';
    entries_add(e, MINDEX_DOMAIN, buf, len);
    if (buf[0] == '[')
        return;
    const char *reg = psl_registrable_domain(psl_builtin(), buf);
    if (reg && reg != buf)
        entries_add(e, MINDEX_DOMAIN, reg, strlen(reg));
}

static void entries_of(const message_t *msg, const mindex_delivery_t *d, const char *email_id, entries_t *e)
{
    e->n = 0;
    entries_add(e, MINDEX_EMAIL_ID, email_id, strlen(email_id));
    if (msg->message_id)
        entries_add(e, MINDEX_MESSAGE_ID, msg->message_id, strlen(msg->message_id));
    if (msg->sender_ip) {
        /* the same text form a query normalizes to (inet_ntop) */
        unsigned char a[16];
        char ip[INET6_ADDRSTRLEN];
        int family = inet_pton(AF_INET, msg->sender_ip, a) == 1 ? AF_INET : AF_INET6;
        if ((family == AF_INET || inet_pton(AF_INET6, msg->sender_ip, a) == 1) && inet_ntop(family, a, ip, sizeof(ip)))
            entries_add(e, MINDEX_IP, ip, strlen(ip));
    }
    char *subject = mindex_subject_normalize(msg->subject);
    if (subject)
        entries_add(e, MINDEX_SUBJECT, subject, strlen(subject));
    free(subject);
    entries_add_lower(e, MINDEX_ADDRESS, msg->sender);
    entries_add_lower(e, MINDEX_ADDRESS, msg->header_from);
    for (size_t i = 0; i < d->n_rcpts; i++)
        entries_add_lower(e, MINDEX_ADDRESS, d->rcpts[i]);
    if (msg->sender_domain)
        entries_add_domain(e, msg->sender_domain, strlen(msg->sender_domain));
    for (size_t i = 0; i < msg->n_attachments; i++) {
        entries_add(e, MINDEX_SHA256, msg->attachments[i].sha256, strlen(msg->attachments[i].sha256));
        if (msg->attachments[i].name && g_utf8_validate(msg->attachments[i].name, -1, NULL)) {
            gchar *folded = g_utf8_casefold(msg->attachments[i].name, -1);
            if (folded)
                entries_add(e, MINDEX_FILE_NAME, folded, strlen(folded));
            g_free(folded);
        }
    }
    for (size_t i = 0; i < msg->urls.n; i++) {
        entries_add(e, MINDEX_URL, msg->urls.v[i], strlen(msg->urls.v[i]));
        size_t hl = 0;
        const char *host = url_canon_host(msg->urls.v[i], &hl);
        if (host)
            entries_add_domain(e, host, hl);
    }
}

static void entries_clear(entries_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->value[i]);
    free(e->value);
    free(e->kind);
    zhashx_destroy(&e->seen);
    memset(e, 0, sizeof(*e));
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    if (!s) {
        msgpack_pack_nil(pk);
        return;
    }
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static const char *const STATE_NAME[] = {"delivered", "remediated", "not_found", "failed"}; /* < 16 bytes */

/* record_encode - the stored form of a message, kept small (it is most of the index's memory):
 * [version, MID offset in its bucket (0..63), delivery time offset in its partition (ms),
 * direction (0 incoming, 1 outgoing), message_id, subject, sender, sender IP (4 or 16 bytes),
 * queue_id, [rcpt...], [state index...]]. The email id is not stored: it is derived from the
 * MID (mindex_email_id). */
static void record_encode(msgpack_sbuffer *sb, int64_t mid, int64_t time_offset, const message_t *msg,
                          const mindex_delivery_t *d)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 11);
    msgpack_pack_int(&pk, MINDEX_RECORD_VERSION);
    msgpack_pack_int(&pk, (int)((mid - 1) % MINDEX_RECORDS_PER_BUCKET));
    msgpack_pack_int64(&pk, time_offset);
    msgpack_pack_int(&pk, d->direction && strcmp(d->direction, "outgoing") == 0 ? 1 : 0);
    pack_str(&pk, msg->message_id);
    pack_str(&pk, msg->subject);
    pack_str(&pk, msg->sender);
    unsigned char ip[16];
    if (msg->sender_ip && inet_pton(AF_INET, msg->sender_ip, ip) == 1) {
        msgpack_pack_bin(&pk, 4);
        msgpack_pack_bin_body(&pk, ip, 4);
    } else if (msg->sender_ip && inet_pton(AF_INET6, msg->sender_ip, ip) == 1) {
        msgpack_pack_bin(&pk, 16);
        msgpack_pack_bin_body(&pk, ip, 16);
    } else {
        msgpack_pack_nil(&pk);
    }
    pack_str(&pk, d->queue_id);
    msgpack_pack_array(&pk, d->n_rcpts);
    for (size_t i = 0; i < d->n_rcpts; i++) {
        char *low = util_xstrdup(d->rcpts[i]);
        for (char *p = low; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        pack_str(&pk, low);
        free(low);
    }
    msgpack_pack_array(&pk, d->n_rcpts);
    for (size_t i = 0; i < d->n_rcpts; i++)
        msgpack_pack_int(&pk, 0); /* delivered */
}

/* email_id_of - the email id of a MID: a version-4-shaped UUID made of the keyed hash of the
 * MID, so it needs no storage and cannot be guessed or forged without the index's key. */
static void email_id_of(mindex_t *self, int64_t mid, char out[37])
{
    char m[24];
    size_t n = util_put_int(m, mid);
    uint64_t a = value_hash(self, MINDEX_EMAIL_ID, m, n);
    m[n] = '#';
    uint64_t b = value_hash(self, MINDEX_EMAIL_ID, m, n + 1);
    unsigned char u[16];
    for (int i = 0; i < 8; i++) {
        u[i] = (unsigned char)(a >> (56 - 8 * i));
        u[8 + i] = (unsigned char)(b >> (56 - 8 * i));
    }
    u[6] = (unsigned char)(0x40 | (u[6] & 0x0F));
    u[8] = (unsigned char)(0x80 | (u[8] & 0x3F));
    util_uuid_text(u, out);
}

int mindex_email_id(mindex_t *self, int64_t mid, char out[37])
{
    int ready = mindex_ready(self, false);
    if (ready != 0)
        return ready < 0 ? -1 : mindex_fail(self, "index: no index in Redis yet");
    email_id_of(self, mid, out);
    return 0;
}

/* queue_expiry - EXPIREAT key (partition end + retention) NX, once per key per instance. */
static int queue_expiry(mindex_t *self, const char *key, int64_t part)
{
    if (zhashx_lookup(self->expiring, key))
        return 0;
    if (zhashx_size(self->expiring) >= MINDEX_EXPIRY_CACHE)
        zhashx_purge(self->expiring);
    zhashx_insert(self->expiring, key, (void *)1);
    int64_t expire_s = ((part + 1) * self->partition_ms + self->retention_ms) / 1000 + 1;
    if (redis_conn_append(self->redis, "EXPIREAT %s %lld NX", key, (long long)expire_s) != 0)
        return -1;
    self->queued_commands++;
    return 0;
}

/* APPEND grows a string greedily (to twice its length): a record bucket that will receive no
 * more records is rewritten at its exact size, which halves what records cost in memory. */
static redis_script_t compact_script = {
    .source = "local v = redis.call('GET', KEYS[1])\n"
              "if v then redis.call('SET', KEYS[1], v, 'KEEPTTL') end\n"
              "return 1\n",
};

/* Index buckets are appended to until their partition ends; then the first instance that
 * writes to the next partition rewrites every bucket of the closed one at its exact size (one
 * script per kind, 2^bucket_bits keys each), under a lock so that it happens once. */
static redis_script_t compact_partition_script = {
    .source = "local prefix, from, to = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
              "local done = 0\n"
              "for b = from, to - 1 do\n"
              "  local k = prefix .. string.format('%x', b)\n"
              "  local v = redis.call('GET', k)\n"
              "  if v then redis.call('SET', k, v, 'KEEPTTL'); done = done + 1 end\n"
              "end\n"
              "return done\n",
};

#define MINDEX_COMPACT_CHUNK 32 /* buckets per script call: Redis is never blocked for long */

/* compact_partition - rewrite the closed partition part (see above); best effort: a failure
 * only costs memory, so it is not reported to the writer. */
static void compact_partition(mindex_t *self, int64_t part)
{
    redisReply *r = redis_conn_command(self->redis, "SET cb:ix:%lld:compacted 1 NX PX %lld", (long long)part,
                                       (long long)(self->retention_ms + 2 * self->partition_ms));
    bool mine = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!mine)
        return;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "cb:ix:%lld:x:", (long long)part);
    int total = 1 << self->bucket_bits;
    for (int from = 0; from < total; from += MINDEX_COMPACT_CHUNK) {
        char a[16], b[16];
        snprintf(a, sizeof(a), "%d", from);
        snprintf(b, sizeof(b), "%d", from + MINDEX_COMPACT_CHUNK < total ? from + MINDEX_COMPACT_CHUNK : total);
        const char *argv[] = {prefix, a, b};
        r = redis_conn_eval(self->redis, &compact_partition_script, 0, 3, argv, NULL);
        if (!r)
            return;
        freeReplyObject(r);
    }
}

/* queue_compaction - compact the record buckets of the current MID block (it is complete, or
 * this instance leaves it); queued in the pipeline. */
static int queue_compaction(mindex_t *self)
{
    for (int i = 0; i < self->n_block_keys; i++) {
        const char *argv[] = {"EVAL", compact_script.source, "1", self->block_keys[i]};
        if (redis_conn_appendargv(self->redis, 4, argv, NULL) != 0)
            return -1;
        self->queued_commands++;
    }
    self->n_block_keys = 0;
    return 0;
}

static void note_block_key(mindex_t *self, const char *key)
{
    for (int i = 0; i < self->n_block_keys; i++)
        if (strcmp(self->block_keys[i], key) == 0)
            return;
    if (self->n_block_keys < (int)UTIL_ARRAY_LEN(self->block_keys))
        util_strlcpy(self->block_keys[self->n_block_keys++], key, sizeof(self->block_keys[0]));
}

int mindex_finish(mindex_t *self)
{
    if (queue_compaction(self) != 0)
        return mindex_fail(self, "index: cannot queue commands: %s", redis_conn_errstr(self->redis));
    self->mid_next = self->mid_end; /* the rest of the block is abandoned: its buckets are final */
    return mindex_flush(self);
}

/* pipeline_abandon - read and drop the replies of whatever is queued (when the connection
 * still works) and forget it. */
static void pipeline_abandon(mindex_t *self)
{
    if (self->queued_commands) {
        redisReply **replies = util_xcalloc(self->queued_commands, sizeof(*replies));
        if (redis_conn_pipeline_exec(self->redis, replies, self->queued_commands) == 0)
            for (size_t i = 0; i < self->queued_commands; i++)
                freeReplyObject(replies[i]);
        free(replies);
    }
    self->queued_commands = 0;
    self->queued_messages = 0;
    self->n_block_keys = 0;
    zhashx_purge(self->expiring);
}

/* reserve_mid - the next MID of this instance's block (a new block from Redis when used up). */
static int reserve_mid(mindex_t *self, int64_t *mid)
{
    if (self->mid_next >= self->mid_end) {
        /* the pipeline must be empty to read a reply now */
        if (self->queued_commands && mindex_flush(self) != 0)
            return -1;
        redisReply *r = redis_conn_command(self->redis, "INCRBY cb:mid %d", MINDEX_MID_BLOCK);
        if (!r)
            return mindex_fail(self, "index: cannot get MIDs from Redis %s: %s", redis_conn_describe(self->redis),
                               redis_conn_errstr(self->redis));
        int64_t end = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        if (end < MINDEX_MID_BLOCK || end >= (1LL << 40) || end % MINDEX_MID_BLOCK != 0)
            return mindex_fail(self, "index: cb:mid in Redis is not a usable counter (%lld)", (long long)end);
        self->mid_end = end + 1;
        self->mid_next = end + 1 - MINDEX_MID_BLOCK;
    }
    *mid = self->mid_next++;
    return 0;
}

static int mindex_add_delivery(mindex_t *self, const message_t *msg, const mindex_delivery_t *d, int64_t time_ms,
                               int64_t *mid_out, char email_id_out[37]);

int mindex_add(mindex_t *self, const message_t *msg, const mindex_delivery_t *d, int64_t *mid_out,
               char email_id_out[37])
{
    if (!d || d->n_rcpts == 0) {
        mindex_fail(self, "index: a delivery needs at least one recipient");
        return MINDEX_INVALID;
    }
    if (mindex_ready(self, true) != 0)
        return -1;
    int64_t now = util_now_ms();
    int64_t time_ms = d->time_ms > 0 ? d->time_ms : now;
    if (time_ms < now - self->retention_ms || time_ms > now + self->partition_ms) {
        /* an expiry in the past would delete what was just written */
        mindex_fail(self, "index: delivery time %lld is outside the retention window", (long long)time_ms);
        return MINDEX_INVALID;
    }
    /* recipients once each, lowercase */
    mindex_delivery_t dd = *d;
    char **rcpts = util_xcalloc(d->n_rcpts, sizeof(*rcpts));
    zhashx_t *seen_rcpt = zhashx_new();
    dd.n_rcpts = 0;
    for (size_t i = 0; i < d->n_rcpts; i++) {
        if (!d->rcpts[i] || !*d->rcpts[i])
            continue;
        char *low = util_xstrdup(d->rcpts[i]);
        for (char *p = low; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        if (zhashx_insert(seen_rcpt, low, (void *)1) == 0)
            rcpts[dd.n_rcpts++] = low;
        else
            free(low);
    }
    zhashx_destroy(&seen_rcpt);
    dd.rcpts = (const char *const *)rcpts;
    int rc = mindex_add_delivery(self, msg, &dd, time_ms, mid_out, email_id_out);
    for (size_t i = 0; i < dd.n_rcpts; i++)
        free(rcpts[i]);
    free(rcpts);
    return rc;
}

/* mindex_add_delivery - mindex_add once the delivery is checked (recipients unique). */
static int mindex_add_delivery(mindex_t *self, const message_t *msg, const mindex_delivery_t *d, int64_t time_ms,
                               int64_t *mid_out, char email_id_out[37])
{
    if (d->n_rcpts == 0) {
        mindex_fail(self, "index: a delivery needs at least one recipient");
        return MINDEX_INVALID;
    }
    int64_t mid = 0;
    if (reserve_mid(self, &mid) != 0)
        return -1;
    char email_id[37];
    email_id_of(self, mid, email_id);
    int64_t part = partition_of(self, time_ms);
    if (part > self->last_part) {
        /* what is queued for the old partition is written first; then its buckets are final */
        if (self->queued_commands && mindex_flush(self) != 0)
            return -1;
        compact_partition(self, part - 1);
        self->last_part = part;
    }

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    record_encode(&sb, mid, time_ms - part * self->partition_ms, msg, d);
    if (sb.size > MINDEX_MAX_RECORD) {
        msgpack_sbuffer_destroy(&sb);
        mindex_fail(self, "index: the record of MID %lld is larger than %d bytes", (long long)mid, MINDEX_MAX_RECORD);
        return MINDEX_INVALID;
    }
    entries_t *e = util_xcalloc(1, sizeof(*e));
    e->seen = zhashx_new();
    entries_of(msg, d, email_id, e);

    int rc = redis_conn_append(self->redis, "MULTI");
    self->queued_commands++;
    char key[128];
    for (size_t i = 0; i < e->n && rc == 0; i++) {
        uint64_t h = value_hash(self, e->kind[i], e->value[i], strlen(e->value[i]));
        unsigned char entry[MINDEX_ENTRY];
        put_be(entry, h, 6);
        put_be(entry + 6, (uint64_t)mid, 5);
        bucket_key(self, key, sizeof(key), part, e->kind[i], h);
        rc = redis_conn_append(self->redis, "APPEND %s %b", key, (const char *)entry, (size_t)MINDEX_ENTRY);
        self->queued_commands++;
        if (rc == 0)
            rc = queue_expiry(self, key, part);
    }
    if (rc == 0) {
        /* the record last: look-ups only return MIDs whose record exists */
        unsigned char *rec = util_xmalloc(sb.size + 3);
        rec[0] = (unsigned char)(sb.size >> 16);
        rec[1] = (unsigned char)(sb.size >> 8);
        rec[2] = (unsigned char)sb.size;
        memcpy(rec + 3, sb.data, sb.size);
        record_key(key, sizeof(key), part, mid);
        rc = redis_conn_append(self->redis, "APPEND %s %b", key, (const char *)rec, sb.size + 3);
        self->queued_commands++;
        free(rec);
        note_block_key(self, key);
        if (rc == 0)
            rc = queue_expiry(self, key, part);
    }
    if (rc == 0) {
        rc = redis_conn_append(self->redis, "EXEC");
        self->queued_commands++;
    }
    if (rc == 0 && mid % MINDEX_MID_BLOCK == 0)
        rc = queue_compaction(self);
    entries_clear(e);
    free(e);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        /* a transaction cut in the middle must never be completed by the next message's EXEC:
         * everything queued is abandoned (the connection is dropped by the failed append or
         * by the exec below), and the queued messages are reported as not written */
        mindex_fail(self, "index: cannot queue commands for Redis %s: %s", redis_conn_describe(self->redis),
                    redis_conn_errstr(self->redis));
        char saved[sizeof(self->err)];
        memcpy(saved, self->err, sizeof(saved));
        pipeline_abandon(self);
        memcpy(self->err, saved, sizeof(saved));
        return -1;
    }
    self->queued_messages++;
    if (mid_out)
        *mid_out = mid;
    if (email_id_out)
        memcpy(email_id_out, email_id, 37);
    if (self->queued_messages >= MINDEX_MAX_BATCH)
        return mindex_flush(self);
    return 0;
}

int mindex_flush(mindex_t *self)
{
    if (self->queued_commands == 0)
        return 0;
    size_t count = self->queued_commands;
    size_t messages = self->queued_messages;
    self->queued_commands = 0;
    self->queued_messages = 0;
    redisReply **replies = util_xcalloc(count, sizeof(*replies));
    if (redis_conn_pipeline_exec(self->redis, replies, count) != 0) {
        free(replies);
        /* the expiry cache may name keys whose EXPIREAT never ran */
        zhashx_purge(self->expiring);
        return mindex_fail(self, "index: Redis %s failed while writing %zu messages (each is written whole "
                           "or not at all): %s",
                           redis_conn_describe(self->redis), messages, redis_conn_errstr(self->redis));
    }
    size_t failed = 0;
    const char *why = NULL;
    for (size_t i = 0; i < count; i++) {
        redisReply *r = replies[i];
        if (r && r->type == REDIS_REPLY_ERROR && !why)
            why = r->str;
        /* EXEC: an array of the transaction's replies (each checked), or nil/error when the
         * transaction was discarded */
        if (r && (r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_ERROR && strstr(r->str, "EXECABORT"))))
            failed++;
        if (r && r->type == REDIS_REPLY_ARRAY)
            for (size_t k = 0; k < r->elements; k++)
                if (r->element[k]->type == REDIS_REPLY_ERROR) {
                    failed++;
                    if (!why)
                        why = r->element[k]->str;
                    break;
                }
    }
    int rc = 0;
    if (failed || why)
        rc = mindex_fail(self, "index: Redis refused %zu of %zu messages: %s", failed ? failed : messages, messages,
                         why ? why : "transaction discarded");
    for (size_t i = 0; i < count; i++)
        freeReplyObject(replies[i]);
    free(replies);
    if (rc != 0)
        zhashx_purge(self->expiring);
    return rc;
}

/* ---- reading ---- */

/* window - the partitions to read: [*first, *last], and the oldest delivery time kept. */
static void window(const mindex_t *self, int64_t *first, int64_t *last, int64_t *oldest_ms)
{
    int64_t now = util_now_ms();
    *oldest_ms = now - self->retention_ms;
    *first = partition_of(self, *oldest_ms);
    *last = partition_of(self, now) + 1; /* a clock a little ahead on another host */
}

/* A bounded reader of the msgpack a stored record is made of (record_encode): each read checks
 * the type and that the bytes are there, so a damaged record is refused, never overrun. */
typedef struct {
    const unsigned char *p;
    size_t len, pos;
} mp_cursor_t;

/* mp_be - the n-byte big-endian number at the cursor (n bytes known to be there). */
static uint64_t mp_be(const mp_cursor_t *c, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | c->p[c->pos + i];
    return v;
}

/* mp_sized - skip a header byte and read the n-byte length after it; false when the bytes are
 * missing. */
static bool mp_sized(mp_cursor_t *c, size_t n, uint64_t *len)
{
    if (c->pos + 1 + n > c->len)
        return false;
    c->pos++;
    *len = mp_be(c, n);
    c->pos += n;
    return true;
}

static bool mp_array(mp_cursor_t *c, size_t *n)
{
    if (c->pos >= c->len)
        return false;
    unsigned char t = c->p[c->pos];
    uint64_t v;
    if (t >= 0x90 && t <= 0x9f) {
        c->pos++;
        v = t & 0x0f;
    } else if (!(t == 0xdc && mp_sized(c, 2, &v)) && !(t == 0xdd && mp_sized(c, 4, &v))) {
        return false;
    }
    if (v > c->len - c->pos) /* every element takes a byte at least */
        return false;
    *n = (size_t)v;
    return true;
}

/* mp_uint - a msgpack unsigned integer. */
static bool mp_uint(mp_cursor_t *c, uint64_t *v)
{
    if (c->pos >= c->len)
        return false;
    unsigned char t = c->p[c->pos];
    size_t n = t <= 0x7f ? 0 : t == 0xcc ? 1 : t == 0xcd ? 2 : t == 0xce ? 4 : t == 0xcf ? 8 : 9;
    if (n == 9 || c->pos + 1 + n > c->len)
        return false;
    c->pos++;
    *v = n == 0 ? t : mp_be(c, n);
    c->pos += n;
    return true;
}

/* record_head - the start of a stored record (record_encode): its array header (n_fields
 * elements), version, and its MID and delivery time from the offsets that follow. */
static bool record_head(const mindex_t *self, mp_cursor_t *c, int64_t part, int64_t bucket, size_t *n_fields,
                        int64_t *mid, int64_t *time_ms)
{
    uint64_t version, offset, ms;
    if (!mp_array(c, n_fields) || !mp_uint(c, &version) || version != MINDEX_RECORD_VERSION || !mp_uint(c, &offset) ||
        offset >= MINDEX_RECORDS_PER_BUCKET || !mp_uint(c, &ms) || ms > (uint64_t)self->partition_ms)
        return false;
    *mid = bucket * MINDEX_RECORDS_PER_BUCKET + 1 + (int64_t)offset;
    *time_ms = part * self->partition_ms + (int64_t)ms;
    return true;
}

/* record_peek - the MID and time of a stored record, read from its first fields without
 * decoding the rest (a look-up only needs to know the record is there). 0 or -1. */
static int record_peek(const mindex_t *self, const char *buf, size_t len, int64_t part, int64_t bucket, int64_t *mid,
                       int64_t *time_ms)
{
    mp_cursor_t c = {(const unsigned char *)buf, len, 0};
    size_t n_fields;
    return record_head(self, &c, part, bucket, &n_fields, mid, time_ms) ? 0 : -1;
}

/* mp_bytes - a str (bin: a bin) or nil (*s NULL). */
static bool mp_bytes(mp_cursor_t *c, bool bin, const char **s, size_t *n)
{
    if (c->pos >= c->len)
        return false;
    unsigned char t = c->p[c->pos];
    uint64_t len;
    *s = NULL;
    *n = 0;
    if (t == 0xc0) {
        c->pos++;
        return true;
    }
    if (!bin && t >= 0xa0 && t <= 0xbf) {
        c->pos++;
        len = t & 0x1f;
    } else if (!(t == (bin ? 0xc4 : 0xd9) && mp_sized(c, 1, &len)) && !(t == (bin ? 0xc5 : 0xda) && mp_sized(c, 2, &len)) &&
               !(t == (bin ? 0xc6 : 0xdb) && mp_sized(c, 4, &len))) {
        return false;
    }
    if (len > c->len - c->pos)
        return false;
    *s = (const char *)c->p + c->pos;
    *n = (size_t)len;
    c->pos += (size_t)len;
    return true;
}

/* record_decode - one stored record (msgpack, see record_encode) of the record bucket `bucket`
 * of partition `part` into *rec (its email id is left to the caller); 0 or -1 (damaged). Read in
 * place, into one allocation: a fan-out reads 100,000 of them. */
static int record_decode(const mindex_t *self, const char *buf, size_t len, int64_t part, int64_t bucket,
                         mindex_record_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    mp_cursor_t c = {(const unsigned char *)buf, len, 0};
    size_t n_fields, n_rcpts, n_states;
    uint64_t dir;
    int64_t mid, time_ms;
    const char *str[5]; /* message_id, subject, sender, sender IP (bin), queue_id */
    size_t str_len[5];
    if (!record_head(self, &c, part, bucket, &n_fields, &mid, &time_ms) || n_fields < 11 || !mp_uint(&c, &dir))
        return -1;
    for (int i = 0; i < 5; i++)
        if (!mp_bytes(&c, i == 3, &str[i], &str_len[i]))
            return -1;
    if (!mp_array(&c, &n_rcpts))
        return -1;
    size_t first_rcpt = c.pos, rcpt_bytes = 0;
    for (size_t i = 0; i < n_rcpts; i++) {
        const char *r;
        size_t rl;
        if (!mp_bytes(&c, false, &r, &rl) || !r)
            return -1;
        rcpt_bytes += rl + 1 + 16; /* the address, and its state (a STATE_NAME) */
    }
    if (!mp_array(&c, &n_states))
        return -1;
    size_t first_state = c.pos;
    char ip[INET6_ADDRSTRLEN] = "";
    if (str[3] && (str_len[3] == 4 || str_len[3] == 16) &&
        !inet_ntop(str_len[3] == 4 ? AF_INET : AF_INET6, str[3], ip, sizeof(ip)))
        ip[0] = '\0';
    rec->mid = mid;
    rec->time_ms = time_ms;
    const char *direction = dir == 1 ? "outgoing" : "incoming";
    size_t bytes = (n_rcpts ? n_rcpts : 1) * sizeof(*rec->rcpts) + strlen(direction) + 1 + strlen(ip) + 1 + rcpt_bytes;
    for (int i = 0; i < 5; i++)
        bytes += str_len[i] + 1;
    rec->storage = util_xmalloc(bytes);
    rec->rcpts = (mindex_rcpt_t *)rec->storage;
    char *at = rec->storage + (n_rcpts ? n_rcpts : 1) * sizeof(*rec->rcpts);
#define MINDEX_PUT(dst, src, n)                                                                    \
    do {                                                                                           \
        (dst) = at;                                                                                \
        memcpy(at, (src), (n));                                                                    \
        at[(n)] = '\0';                                                                            \
        at += (n) + 1;                                                                             \
    } while (0)
    MINDEX_PUT(rec->direction, direction, strlen(direction));
    char **dst[] = {&rec->message_id, &rec->subject, &rec->sender, NULL, &rec->queue_id};
    for (int i = 0; i < 5; i++)
        if (dst[i] && str[i])
            MINDEX_PUT(*dst[i], str[i], str_len[i]);
    if (ip[0])
        MINDEX_PUT(rec->sender_ip, ip, strlen(ip));
    mp_cursor_t rc = {c.p, c.len, first_rcpt}, sc = {c.p, c.len, first_state};
    for (size_t i = 0; i < n_rcpts; i++) {
        const char *r;
        size_t rl;
        uint64_t state = 0;
        (void)mp_bytes(&rc, false, &r, &rl); /* read above */
        if (i < n_states && (!mp_uint(&sc, &state) || state >= UTIL_ARRAY_LEN(STATE_NAME)))
            state = 0;
        mindex_rcpt_t *rp = &rec->rcpts[rec->n_rcpts++];
        MINDEX_PUT(rp->address, r, rl);
        MINDEX_PUT(rp->state, STATE_NAME[state], strlen(STATE_NAME[state]));
    }
#undef MINDEX_PUT
    return 0;
}

void mindex_record_clear(mindex_record_t *rec)
{
    if (!rec)
        return;
    free(rec->storage);
    memset(rec, 0, sizeof(*rec));
}

/* record_length - the 3-byte big-endian length before each stored record. */
static size_t record_length(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (size_t)u[0] << 16 | (size_t)u[1] << 8 | u[2];
}

/* find_record - scan one record bucket for mid; 1 and *rec filled, 0 absent. The last record
 * of mid in the bucket wins (later ones carry state changes). */
static int find_record(const mindex_t *self, const char *buf, size_t len, int64_t part, int64_t mid,
                       mindex_record_t *rec)
{
    int found = 0;
    size_t off = 0;
    while (off + 3 <= len) {
        size_t n = record_length(buf + off);
        if (off + 3 + n > len)
            break;
        mindex_record_t r;
        if (record_decode(self, buf + off + 3, n, part, (mid - 1) / MINDEX_RECORDS_PER_BUCKET, &r) == 0) {
            if (r.mid == mid) {
                if (found)
                    mindex_record_clear(rec);
                *rec = r;
                found = 1;
            } else {
                mindex_record_clear(&r);
            }
        }
        off += 3 + n;
    }
    return found;
}

/* records_present - the MIDs of the records in one record bucket delivered at or after
 * oldest (at most max), in bucket order, and where each record starts (at). */
static size_t records_present(const mindex_t *self, const char *buf, size_t len, int64_t part, int64_t bucket,
                              int64_t oldest, int64_t *out, size_t *at, size_t max)
{
    size_t n = 0, off = 0;
    while (off + 3 <= len && n < max) {
        size_t rl = record_length(buf + off);
        if (off + 3 + rl > len)
            break;
        int64_t mid, time_ms;
        if (record_peek(self, buf + off + 3, rl, part, bucket, &mid, &time_ms) == 0 && time_ms >= oldest) {
            at[n] = off;
            out[n++] = mid;
        }
        off += 3 + rl;
    }
    return n;
}

/* read_keys - GET every key in one pipeline; replies[i] for keys[i] (caller frees). */
static int read_keys(mindex_t *self, char **keys, size_t n, redisReply **replies)
{
    for (size_t i = 0; i < n; i++)
        if (redis_conn_append(self->redis, "GET %s", keys[i]) != 0)
            return mindex_fail(self, "index: %s", redis_conn_errstr(self->redis));
    if (redis_conn_pipeline_exec(self->redis, replies, n) != 0)
        return mindex_fail(self, "index: Redis %s: %s", redis_conn_describe(self->redis), redis_conn_errstr(self->redis));
    return 0;
}

int mindex_get(mindex_t *self, int64_t mid, mindex_record_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    if (mid <= 0)
        return 0;
    if (self->queued_commands && mindex_flush(self) != 0)
        return -1;
    int ready = mindex_ready(self, false);
    if (ready != 0)
        return ready < 0 ? -1 : 0;
    int64_t first, last, oldest;
    window(self, &first, &last, &oldest);
    size_t n = (size_t)(last - first + 1);
    char **keys = util_xcalloc(n, sizeof(*keys));
    redisReply **replies = util_xcalloc(n, sizeof(*replies));
    for (size_t i = 0; i < n; i++) {
        keys[i] = util_xmalloc(96);
        record_key(keys[i], 96, last - (int64_t)i, mid);
    }
    int rc = read_keys(self, keys, n, replies);
    int found = 0;
    for (size_t i = 0; rc == 0 && i < n && !found; i++) {
        redisReply *r = replies[i];
        if (r && r->type == REDIS_REPLY_STRING && find_record(self, r->str, r->len, last - (int64_t)i, mid, rec) &&
            rec->time_ms >= oldest) {
            email_id_of(self, mid, rec->email_id);
            found = 1;
        }
        else if (rec->mid)
            mindex_record_clear(rec);
    }
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        if (replies[i])
            freeReplyObject(replies[i]);
    }
    free(keys);
    free(replies);
    return rc != 0 ? -1 : found;
}

/* A look-up's candidate: a MID whose entry carries the value's tag, in a partition. */
typedef struct {
    int64_t mid, part;
} mindex_candidate_t;

static int cmp_candidate_desc(const void *a, const void *b)
{
    const mindex_candidate_t *x = a, *y = b;
    if (x->mid != y->mid)
        return x->mid > y->mid ? -1 : 1;
    return x->part > y->part ? -1 : x->part < y->part;
}

static int cmp_mid_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int cmp_mid_asc(const void *a, const void *b)
{
    return -cmp_mid_desc(a, b);
}

#define MINDEX_GET_MANY_BUCKETS 32 /* record buckets (times partitions) per pipeline */

int mindex_get_many(mindex_t *self, const int64_t *mids_in, size_t n_in, mindex_record_t **recs_out,
                    size_t *n_out)
{
    *recs_out = NULL;
    *n_out = 0;
    if (self->queued_commands && mindex_flush(self) != 0)
        return -1;
    int ready = mindex_ready(self, false);
    if (ready != 0)
        return ready < 0 ? -1 : 0;
    /* the wanted MIDs, sorted and unique; recs[i] / have[i] belong to mids[i] */
    int64_t *mids = util_xcalloc(n_in + 1, sizeof(*mids));
    size_t n = 0;
    for (size_t i = 0; i < n_in; i++)
        if (mids_in[i] > 0)
            mids[n++] = mids_in[i];
    qsort(mids, n, sizeof(*mids), cmp_mid_asc);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || mids[u - 1] != mids[i])
            mids[u++] = mids[i];
    n = u;
    mindex_record_t *recs = util_xcalloc(n + 1, sizeof(*recs));
    bool *have = util_xcalloc(n + 1, sizeof(*have));
    int64_t first, last, oldest;
    window(self, &first, &last, &oldest);
    size_t nparts = (size_t)(last - first + 1);
    int rc = 0;
    /* walk the record buckets the MIDs fall in, a few at a time, each in every partition */
    size_t i = 0;
    while (rc == 0 && i < n) {
        int64_t buckets[MINDEX_GET_MANY_BUCKETS];
        size_t nb = 0, j = i;
        while (j < n && nb < MINDEX_GET_MANY_BUCKETS) {
            int64_t b = (mids[j] - 1) / MINDEX_RECORDS_PER_BUCKET;
            if (nb == 0 || buckets[nb - 1] != b)
                buckets[nb++] = b;
            j++;
        }
        size_t nkeys = nb * nparts;
        char **keys = util_xcalloc(nkeys, sizeof(*keys));
        redisReply **replies = util_xcalloc(nkeys, sizeof(*replies));
        for (size_t b = 0; b < nb; b++)
            for (size_t p = 0; p < nparts; p++) {
                keys[b * nparts + p] = util_xmalloc(96);
                record_key(keys[b * nparts + p], 96, first + (int64_t)p, buckets[b] * MINDEX_RECORDS_PER_BUCKET + 1);
            }
        rc = read_keys(self, keys, nkeys, replies);
        for (size_t k = 0; rc == 0 && k < nkeys; k++) {
            redisReply *r = replies[k];
            if (!r || r->type != REDIS_REPLY_STRING)
                continue;
            int64_t part = first + (int64_t)(k % nparts), bucket = buckets[k / nparts];
            size_t off = 0;
            while (off + 3 <= r->len) {
                size_t rl = record_length(r->str + off);
                if (off + 3 + rl > r->len)
                    break;
                mindex_record_t rec;
                if (record_decode(self, r->str + off + 3, rl, part, bucket, &rec) == 0) {
                    int64_t *hit = bsearch(&rec.mid, mids + i, j - i, sizeof(*mids), cmp_mid_asc);
                    if (hit && rec.time_ms >= oldest) {
                        size_t at = (size_t)(hit - mids);
                        if (have[at]) /* a later record of the same MID carries its newer state */
                            mindex_record_clear(&recs[at]);
                        recs[at] = rec;
                        have[at] = true;
                    } else {
                        mindex_record_clear(&rec);
                    }
                }
                off += 3 + rl;
            }
        }
        for (size_t k = 0; k < nkeys; k++) {
            free(keys[k]);
            if (replies[k])
                freeReplyObject(replies[k]);
        }
        free(keys);
        free(replies);
        i = j;
    }
    /* pack the found records, newest MID first */
    size_t found = 0;
    mindex_record_t *out = util_xcalloc(n + 1, sizeof(*out));
    for (size_t k = n; k-- > 0;) {
        if (!have[k])
            continue;
        if (rc == 0) {
            email_id_of(self, recs[k].mid, recs[k].email_id);
            out[found++] = recs[k];
        } else {
            mindex_record_clear(&recs[k]);
        }
    }
    free(recs);
    free(mids);
    free(have);
    if (rc != 0 || found == 0) {
        free(out);
        return rc != 0 ? -1 : 0;
    }
    *recs_out = out;
    *n_out = found;
    return 0;
}

/* lookup_core - mindex_lookup, and with recs_out the records too (decoded from the record
 * buckets the look-up reads anyway to confirm each MID). */
static int lookup_core(mindex_t *self, mindex_kind_t kind, const char *value, size_t max, int64_t **mids_out,
                       mindex_record_t **recs_out, size_t *n_out)
{
    *mids_out = NULL;
    if (recs_out)
        *recs_out = NULL;
    *n_out = 0;
    if (kind >= MINDEX_KINDS || !value)
        return mindex_fail(self, "index: bad look-up");
    if (self->queued_commands && mindex_flush(self) != 0)
        return -1;
    int ready = mindex_ready(self, false);
    if (ready != 0) {
        *mids_out = util_xmalloc(sizeof(**mids_out));
        return ready < 0 ? -1 : 0;
    }
    if (max == 0 || max > MINDEX_MAX_RESULTS)
        max = MINDEX_MAX_RESULTS;
    int64_t first, last, oldest;
    window(self, &first, &last, &oldest);
    uint64_t h = value_hash(self, kind, value, strlen(value));
    uint64_t tag = h & ((1ULL << 48) - 1);
    size_t nparts = (size_t)(last - first + 1);
    char **keys = util_xcalloc(nparts, sizeof(*keys));
    redisReply **replies = util_xcalloc(nparts, sizeof(*replies));
    for (size_t i = 0; i < nparts; i++) {
        keys[i] = util_xmalloc(128);
        bucket_key(self, keys[i], 128, last - (int64_t)i, kind, h);
    }
    int rc = read_keys(self, keys, nparts, replies);
    /* candidates: (partition, MID) of every entry with the value's tag */
    size_t cap = 64, n = 0;
    int64_t *cand_mid = util_xmalloc(cap * sizeof(*cand_mid));
    int64_t *cand_part = util_xmalloc(cap * sizeof(*cand_part));
    for (size_t i = 0; rc == 0 && i < nparts; i++) {
        redisReply *r = replies[i];
        if (!r || r->type != REDIS_REPLY_STRING)
            continue;
        const unsigned char *p = (const unsigned char *)r->str;
        for (size_t off = 0; off + MINDEX_ENTRY <= r->len && n < MINDEX_MAX_RESULTS; off += MINDEX_ENTRY) {
            if (get_be(p + off, 6) != tag)
                continue;
            if (n == cap) {
                cap *= 2;
                cand_mid = util_xrealloc(cand_mid, cap * sizeof(*cand_mid));
                cand_part = util_xrealloc(cand_part, cap * sizeof(*cand_part));
            }
            cand_mid[n] = (int64_t)get_be(p + off + 6, 5);
            cand_part[n] = last - (int64_t)i;
            n++;
        }
    }
    for (size_t i = 0; i < nparts; i++) {
        free(keys[i]);
        if (replies[i])
            freeReplyObject(replies[i]);
    }
    free(keys);
    free(replies);
    /* newest first, so that the verification below can stop once it has max */
    mindex_candidate_t *cands = util_xcalloc(n ? n : 1, sizeof(*cands));
    for (size_t c = 0; c < n; c++)
        cands[c] = (mindex_candidate_t){cand_mid[c], cand_part[c]};
    qsort(cands, n, sizeof(*cands), cmp_candidate_desc);
    for (size_t c = 0; c < n; c++) {
        cand_mid[c] = cands[c].mid;
        cand_part[c] = cands[c].part;
    }
    free(cands);
    /* keep the MIDs whose record exists and is inside the window: read each record bucket once */
    int64_t *mids = util_xmalloc((n ? n : 1) * sizeof(*mids));
    mindex_record_t *recs = recs_out ? util_xcalloc(n ? n : 1, sizeof(*recs)) : NULL;
    size_t kept = 0;
    size_t i = 0;
    while (rc == 0 && i < n && kept < max) {
        /* a batch of distinct record buckets */
        size_t batch_end = i, nb = 0;
        char **rkeys = util_xcalloc(256, sizeof(*rkeys));
        size_t *first_of = util_xcalloc(256, sizeof(*first_of));
        while (batch_end < n && nb < 256) {
            char k[96];
            record_key(k, sizeof(k), cand_part[batch_end], cand_mid[batch_end]);
            if (nb == 0 || strcmp(rkeys[nb - 1], k) != 0) {
                rkeys[nb] = util_xstrdup(k);
                first_of[nb] = batch_end;
                nb++;
            }
            batch_end++;
        }
        if (nb == 256 && batch_end < n)
            batch_end = first_of[nb - 1]; /* the last bucket may continue: next batch */
        redisReply **rr = util_xcalloc(nb, sizeof(*rr));
        rc = read_keys(self, rkeys, nb, rr);
        for (size_t b = 0; rc == 0 && b < nb; b++) {
            size_t end = b + 1 < nb ? first_of[b + 1] : batch_end;
            int64_t present[MINDEX_RECORDS_PER_BUCKET * 4];
            size_t at[MINDEX_RECORDS_PER_BUCKET * 4]; /* offset of each present record in the bucket */
            size_t np = 0;
            int64_t part = cand_part[first_of[b]], bucket = (cand_mid[first_of[b]] - 1) / MINDEX_RECORDS_PER_BUCKET;
            if (rr[b] && rr[b]->type == REDIS_REPLY_STRING)
                np = records_present(self, rr[b]->str, rr[b]->len, part, bucket, oldest, present, at,
                                     UTIL_ARRAY_LEN(present));
            for (size_t c = first_of[b]; c < end; c++) {
                /* the last record of a MID in its bucket carries its newest state */
                size_t k = np;
                while (k > 0 && present[k - 1] != cand_mid[c])
                    k--;
                if (k == 0 || (kept && mids[kept - 1] == cand_mid[c])) /* absent, or a value twice in a message */
                    continue;
                if (recs) {
                    const char *rec = rr[b]->str + at[k - 1];
                    if (record_decode(self, rec + 3, record_length(rec), part, bucket, &recs[kept]) != 0)
                        continue;
                    email_id_of(self, cand_mid[c], recs[kept].email_id);
                }
                mids[kept++] = cand_mid[c];
            }
        }
        for (size_t b = 0; b < nb; b++) {
            free(rkeys[b]);
            if (rr[b])
                freeReplyObject(rr[b]);
        }
        free(rr);
        free(rkeys);
        free(first_of);
        i = batch_end > i ? batch_end : n;
    }
    free(cand_mid);
    free(cand_part);
    /* kept in MID order, newest first, each once (candidates were sorted so) */
    size_t w = kept < max ? kept : max;
    for (size_t k = w; recs && k < kept; k++)
        mindex_record_clear(&recs[k]);
    if (rc != 0) {
        for (size_t k = 0; recs && k < w; k++)
            mindex_record_clear(&recs[k]);
        free(recs);
        free(mids);
        return -1;
    }
    *mids_out = mids;
    if (recs_out)
        *recs_out = recs;
    *n_out = w;
    return 0;
}

int mindex_lookup(mindex_t *self, mindex_kind_t kind, const char *value, size_t max, int64_t **mids_out,
                  size_t *n_out)
{
    return lookup_core(self, kind, value, max, mids_out, NULL, n_out);
}

int mindex_lookup_records(mindex_t *self, mindex_kind_t kind, const char *value, size_t max, int64_t **mids,
                          mindex_record_t **recs, size_t *n)
{
    return lookup_core(self, kind, value, max, mids, recs, n);
}
