/*
 * test_record.c - unit tests for common/record.c.
 *
 * The test has its own msgpack writer (the "hand builder" below), generated from the same
 * X-macro field lists as record.h but written with msgpack_packer directly, so it can produce
 * the malformed records record_encode() refuses to write: a missing key, a value of the wrong
 * msgpack type, a duplicate key, an over-long string, a bad header, unknown keys. Every field
 * of every type, and of every sub-record (an attachment of a delivery, a line of an event, an
 * initiated message of an initiation), is driven through those cases from the field lists, so
 * a field added to record.h is covered without touching this file. The types and their
 * versions come from RECORD_TYPES.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>

#include "record.h"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */

static char *sdup(const char *s)
{
    char *p = strdup(s);
    assert_non_null(p);
    return p;
}

static char BIG[20000]; /* 'a' * 20000, for over-long strings */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift32 - a fixed-seed generator so failures reproduce. */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* ---------------------------------------------------------------------------------------- */
/* values the hand builder can write in place of a field's own value                         */

typedef enum {
    V_NONE = 0,
    V_NIL,
    V_TRUE,
    V_INT,
    V_UINT,
    V_FLOAT,
    V_STR,
    V_BIN,
    V_ARRAY_INTS,       /* n copies of i */
    V_ARRAY_STRS,       /* n copies of s/len */
    V_ARRAY_NILS,       /* n nils */
    V_ARRAY_EMPTY_MAPS, /* n empty maps */
    V_ARRAY_ATTS,       /* n minimal valid attachments */
    V_ARRAY_LINES,      /* n lines: "log" log (or "tracking"), "message" s/len (or "m") */
    V_ARRAY_INITS,      /* n initiated messages: "mid" i + j, "matched" s/len (or "url"),
                         * "action" log (or "delete") */
    V_MAP_EMPTY,
    V_RAW, /* s/len written as they are */
} vkind_t;

typedef struct {
    vkind_t k;
    int64_t i;
    uint64_t u;
    const char *s;
    size_t len;
    uint32_t n;
    const char *log;
    const char *what;
    const char *err; /* what the rejection must mention; NULL: "<owner>.<field>" */
} value_t;

static void pack_value(msgpack_packer *pk, const value_t *v)
{
    switch (v->k) {
    case V_NONE:
        fail_msg("V_NONE packed");
        break;
    case V_NIL:
        msgpack_pack_nil(pk);
        break;
    case V_TRUE:
        msgpack_pack_true(pk);
        break;
    case V_INT:
        msgpack_pack_int64(pk, v->i);
        break;
    case V_UINT:
        msgpack_pack_uint64(pk, v->u);
        break;
    case V_FLOAT:
        msgpack_pack_double(pk, 1.0);
        break;
    case V_STR:
        msgpack_pack_str_with_body(pk, v->s, v->len);
        break;
    case V_BIN:
        msgpack_pack_bin_with_body(pk, v->s, v->len);
        break;
    case V_ARRAY_INTS:
        msgpack_pack_array(pk, v->n);
        for (uint32_t j = 0; j < v->n; j++)
            msgpack_pack_int64(pk, v->i);
        break;
    case V_ARRAY_STRS:
        msgpack_pack_array(pk, v->n);
        for (uint32_t j = 0; j < v->n; j++)
            msgpack_pack_str_with_body(pk, v->s, v->len);
        break;
    case V_ARRAY_NILS:
        msgpack_pack_array(pk, v->n);
        for (uint32_t j = 0; j < v->n; j++)
            msgpack_pack_nil(pk);
        break;
    case V_ARRAY_EMPTY_MAPS:
        msgpack_pack_array(pk, v->n);
        for (uint32_t j = 0; j < v->n; j++)
            msgpack_pack_map(pk, 0);
        break;
    case V_ARRAY_ATTS:
        msgpack_pack_array(pk, v->n);
        for (uint32_t j = 0; j < v->n; j++) {
            msgpack_pack_map(pk, 2);
            msgpack_pack_str_with_body(pk, "size", 4);
            msgpack_pack_int(pk, 1);
            msgpack_pack_str_with_body(pk, "sha256", 6);
            msgpack_pack_str_with_body(pk, "00", 2);
        }
        break;
    case V_ARRAY_LINES:
        msgpack_pack_array(pk, v->n);
        for (uint32_t j = 0; j < v->n; j++) {
            const char *log = v->log ? v->log : "tracking";
            msgpack_pack_map(pk, 2);
            msgpack_pack_str_with_body(pk, "log", 3);
            msgpack_pack_str_with_body(pk, log, strlen(log));
            msgpack_pack_str_with_body(pk, "message", 7);
            if (v->s)
                msgpack_pack_str_with_body(pk, v->s, v->len);
            else
                msgpack_pack_str_with_body(pk, "m", 1);
        }
        break;
    case V_ARRAY_INITS:
        msgpack_pack_array(pk, v->n);
        for (uint32_t j = 0; j < v->n; j++) {
            const char *action = v->log ? v->log : "delete";
            msgpack_pack_map(pk, 3);
            msgpack_pack_str_with_body(pk, "mid", 3);
            msgpack_pack_int64(pk, v->i + j);
            msgpack_pack_str_with_body(pk, "matched", 7);
            if (v->s)
                msgpack_pack_str_with_body(pk, v->s, v->len);
            else
                msgpack_pack_str_with_body(pk, "url", 3);
            msgpack_pack_str_with_body(pk, "action", 6);
            msgpack_pack_str_with_body(pk, action, strlen(action));
        }
        break;
    case V_MAP_EMPTY:
        msgpack_pack_map(pk, 0);
        break;
    case V_RAW:
        pk->callback(pk->data, v->s, v->len);
        break;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* the hand builder                                                                          */

typedef struct {
    msgpack_sbuffer body; /* the key/value pairs */
    msgpack_packer pk;
    uint32_t n;        /* pairs written */
    const char *scope; /* NULL for a record, the sub-record's name ("line") for a sub-record */
} mapb_t;

/* mapb_init - start a map; scope as in mapb_t. */
static void mapb_init(mapb_t *m, const char *scope)
{
    msgpack_sbuffer_init(&m->body);
    msgpack_packer_init(&m->pk, &m->body, msgpack_sbuffer_write);
    m->n = 0;
    m->scope = scope;
}

static void mapb_key(mapb_t *m, const char *key)
{
    msgpack_pack_str_with_body(&m->pk, key, strlen(key));
    m->n++;
}

/* mapb_finish - write the map header and the pairs to out; m is released. */
static void mapb_finish(mapb_t *m, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, m->n);
    msgpack_sbuffer_write(out, m->body.data, m->body.size);
    msgpack_sbuffer_destroy(&m->body);
}

/* skip, dup and ov_key name a field of the record ("log") or of each of its sub-records, the
 * sub-record's name first ("line.log", "attachment.sha256"). */
typedef struct {
    const char *type;   /* value of "type"; NULL: the record's own type name */
    bool omit_type;     /* no "type" key */
    bool type_as_int;   /* "type": 1 */
    bool omit_v;        /* no "v" key */
    value_t v;          /* value of "v"; V_NONE: the type's version in RECORD_TYPES */
    const char *skip;   /* a field not written */
    const char *dup;    /* a key written twice: "type", "v" or a field */
    const char *ov_key; /* a field whose value is replaced by ov */
    value_t ov;
    bool extra;       /* add unknown keys, in the record and in each sub-record */
    bool int_key;     /* add a pair whose key is an integer */
    bool header_last; /* write "type" and "v" after the fields */
} hand_t;

/* hb_is - whether key (see hand_t) names field name of the map m is writing. */
static bool hb_is(const mapb_t *m, const char *key, const char *name)
{
    if (!key)
        return false;
    if (!m->scope)
        return strcmp(key, name) == 0;
    size_t n = strlen(m->scope);
    return strncmp(key, m->scope, n) == 0 && key[n] == '.' && strcmp(key + n + 1, name) == 0;
}

/* hb_times - how many times to write field name (0, 1 or 2). */
static int hb_times(const mapb_t *m, const hand_t *h, const char *name, bool present)
{
    if (hb_is(m, h->skip, name))
        return 0;
    if (hb_is(m, h->ov_key, name))
        return 1;
    if (!present)
        return 0;
    return hb_is(m, h->dup, name) ? 2 : 1;
}

static bool hb_override(mapb_t *m, const hand_t *h, const char *name)
{
    if (hb_is(m, h->ov_key, name)) {
        pack_value(&m->pk, &h->ov);
        return true;
    }
    return false;
}

static void hb_extra(mapb_t *m)
{
    mapb_key(m, "future_field");
    msgpack_pack_str_with_body(&m->pk, "some value", 10);
    mapb_key(m, "future_nested");
    msgpack_pack_map(&m->pk, 1);
    msgpack_pack_str_with_body(&m->pk, "list", 4);
    msgpack_pack_array(&m->pk, 3);
    msgpack_pack_int(&m->pk, 1);
    msgpack_pack_nil(&m->pk);
    msgpack_pack_double(&m->pk, 2.5);
    mapb_key(m, "future_number");
    msgpack_pack_int(&m->pk, -12);
}

static void hb_field_STR(mapb_t *m, const hand_t *h, const char *name, char *const *val)
{
    for (int t = hb_times(m, h, name, *val != NULL); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name))
            msgpack_pack_str_with_body(&m->pk, *val, strlen(*val));
    }
}

static void hb_field_INT(mapb_t *m, const hand_t *h, const char *name, const int64_t *val)
{
    for (int t = hb_times(m, h, name, true); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name))
            msgpack_pack_int64(&m->pk, *val);
    }
}

static void hb_field_BOOL(mapb_t *m, const hand_t *h, const char *name, const bool *val)
{
    for (int t = hb_times(m, h, name, true); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name)) {
            if (*val)
                msgpack_pack_true(&m->pk);
            else
                msgpack_pack_false(&m->pk);
        }
    }
}

static void hb_field_STRV(mapb_t *m, const hand_t *h, const char *name, const record_strv_t *val)
{
    for (int t = hb_times(m, h, name, true); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name)) {
            msgpack_pack_array(&m->pk, val->n);
            for (size_t i = 0; i < val->n; i++)
                msgpack_pack_str_with_body(&m->pk, val->v[i], strlen(val->v[i]));
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* per-type functions generated from record.h's field lists                                  */

enum { K_STR, K_INT, K_BOOL, K_STRV, K_ATTV, K_LINEV, K_INITV };
#define FK_STR K_STR
#define FK_INT K_INT
#define FK_BOOL K_BOOL
#define FK_STRV K_STRV
#define FK_ATTV K_ATTV
#define FK_LINEV K_LINEV
#define FK_INITV K_INITV
#define RQ_REQUIRED true
#define RQ_OPTIONAL false

typedef struct {
    const char *name;
    int kind;
    bool required;
    size_t max;
    const char *allowed;
} finfo_t;

static void cmp_STR(const char *name, char *const *a, char *const *b)
{
    if (!*a && !*b)
        return;
    if (!*a || !*b || strcmp(*a, *b) != 0)
        fail_msg("field %s: '%s' != '%s'", name, *a ? *a : "(null)", *b ? *b : "(null)");
}

static void cmp_INT(const char *name, const int64_t *a, const int64_t *b)
{
    if (*a != *b)
        fail_msg("field %s: %lld != %lld", name, (long long)*a, (long long)*b);
}

static void cmp_BOOL(const char *name, const bool *a, const bool *b)
{
    if (*a != *b)
        fail_msg("field %s: %d != %d", name, *a, *b);
}

static void cmp_STRV(const char *name, const record_strv_t *a, const record_strv_t *b)
{
    if (a->n != b->n)
        fail_msg("field %s: %zu != %zu elements", name, a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            fail_msg("field %s[%zu]: '%s' != '%s'", name, i, a->v[i], b->v[i]);
}

#define HB_FIELD(kind, fname, presence, max, allowed) hb_field_##kind(m, h, #fname, &r->fname);
#define CMP_FIELD(kind, fname, presence, max, allowed) cmp_##kind(#fname, &a->fname, &b->fname);
#define FINFO_ENTRY(kind, fname, presence, max, allowed) {#fname, FK_##kind, RQ_##presence, max, allowed},
#define PTR_FIELD(kind, fname, presence, max, allowed)                                             \
    if (strcmp(name, #fname) == 0)                                                                 \
        return &r->fname;

#define DEFINE_TYPE_FUNCS(tname, FIELDS)                                                           \
    static void hand_fields_##tname(mapb_t *m, const void *rec, const hand_t *h)                   \
    {                                                                                              \
        const record_##tname##_t *r = rec;                                                         \
        FIELDS(HB_FIELD)                                                                           \
    }                                                                                              \
    static void cmp_##tname(const void *va, const void *vb)                                        \
    {                                                                                              \
        const record_##tname##_t *a = va, *b = vb;                                                 \
        FIELDS(CMP_FIELD)                                                                          \
    }                                                                                              \
    static const finfo_t FINFO_##tname[] = {FIELDS(FINFO_ENTRY)};                                  \
    static void *field_ptr_##tname(void *rec, const char *name)                                    \
    {                                                                                              \
        record_##tname##_t *r = rec;                                                               \
        FIELDS(PTR_FIELD)                                                                          \
        fail_msg("no field %s in %s", name, #tname);                                               \
        return NULL;                                                                               \
    }

DEFINE_TYPE_FUNCS(attachment, RECORD_ATTACHMENT_FIELDS)
DEFINE_TYPE_FUNCS(line, RECORD_LINE_FIELDS)
DEFINE_TYPE_FUNCS(initiated, RECORD_INITIATED_FIELDS)

/* A sub-record type: the elements of an ATTV, LINEV or INITV field. */
typedef struct {
    const char *name; /* "attachment": the owner its errors name */
    const record_desc_t *desc;
    void (*hand_fields)(mapb_t *, const void *, const hand_t *);
    void *(*field_ptr)(void *, const char *);
    const finfo_t *fields;
    size_t nfields;
} subinfo_t;

#define SUB_INFO(tname)                                                                            \
    {#tname, &RECORD_DESC_##tname, hand_fields_##tname, field_ptr_##tname, FINFO_##tname,          \
     sizeof(FINFO_##tname) / sizeof(FINFO_##tname[0])}

static const subinfo_t SUB_ATTACHMENT = SUB_INFO(attachment);
static const subinfo_t SUB_LINE = SUB_INFO(line);
static const subinfo_t SUB_INITIATED = SUB_INFO(initiated);

/* sub_info - the sub-record type of an array field's elements, or NULL. */
static const subinfo_t *sub_info(int kind)
{
    switch (kind) {
    case K_ATTV:
        return &SUB_ATTACHMENT;
    case K_LINEV:
        return &SUB_LINE;
    case K_INITV:
        return &SUB_INITIATED;
    }
    return NULL;
}

/* sub_count, sub_elem - the number of elements of array field p (of that kind), element i. */
static size_t sub_count(int kind, const void *p)
{
    switch (kind) {
    case K_ATTV:
        return ((const record_attv_t *)p)->n;
    case K_LINEV:
        return ((const record_linev_t *)p)->n;
    case K_INITV:
        return ((const record_initv_t *)p)->n;
    }
    fail_msg("kind %d is not a sub-record array", kind);
    return 0;
}

static void *sub_elem(int kind, void *p, size_t i)
{
    assert_true(i < sub_count(kind, p));
    if (kind == K_ATTV)
        return &((record_attv_t *)p)->v[i];
    if (kind == K_LINEV)
        return &((record_linev_t *)p)->v[i];
    return &((record_initv_t *)p)->v[i];
}

/* hand_sub - write one sub-record (an element of a kind array) as a map to out. */
static void hand_sub(msgpack_sbuffer *out, int kind, const void *elem, const hand_t *h)
{
    const subinfo_t *si = sub_info(kind);
    mapb_t m;
    mapb_init(&m, si->name);
    si->hand_fields(&m, elem, h);
    if (h->extra)
        hb_extra(&m);
    mapb_finish(&m, out);
}

static void hb_field_ATTV(mapb_t *m, const hand_t *h, const char *name, const record_attv_t *val)
{
    for (int t = hb_times(m, h, name, true); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name)) {
            msgpack_pack_array(&m->pk, val->n);
            for (size_t i = 0; i < val->n; i++)
                hand_sub(&m->body, K_ATTV, &val->v[i], h);
        }
    }
}

static void hb_field_LINEV(mapb_t *m, const hand_t *h, const char *name, const record_linev_t *val)
{
    for (int t = hb_times(m, h, name, true); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name)) {
            msgpack_pack_array(&m->pk, val->n);
            for (size_t i = 0; i < val->n; i++)
                hand_sub(&m->body, K_LINEV, &val->v[i], h);
        }
    }
}

static void hb_field_INITV(mapb_t *m, const hand_t *h, const char *name, const record_initv_t *val)
{
    for (int t = hb_times(m, h, name, true); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name)) {
            msgpack_pack_array(&m->pk, val->n);
            for (size_t i = 0; i < val->n; i++)
                hand_sub(&m->body, K_INITV, &val->v[i], h);
        }
    }
}

static void cmp_ATTV(const char *name, const record_attv_t *a, const record_attv_t *b)
{
    if (a->n != b->n)
        fail_msg("field %s: %zu != %zu elements", name, a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        cmp_attachment(&a->v[i], &b->v[i]);
}

static void cmp_LINEV(const char *name, const record_linev_t *a, const record_linev_t *b)
{
    if (a->n != b->n)
        fail_msg("field %s: %zu != %zu elements", name, a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        cmp_line(&a->v[i], &b->v[i]);
}

static void cmp_INITV(const char *name, const record_initv_t *a, const record_initv_t *b)
{
    if (a->n != b->n)
        fail_msg("field %s: %zu != %zu elements", name, a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        cmp_initiated(&a->v[i], &b->v[i]);
}

DEFINE_TYPE_FUNCS(delivery, RECORD_DELIVERY_FIELDS)
DEFINE_TYPE_FUNCS(verdict, RECORD_VERDICT_FIELDS)
DEFINE_TYPE_FUNCS(job, RECORD_JOB_FIELDS)
DEFINE_TYPE_FUNCS(result, RECORD_RESULT_FIELDS)
DEFINE_TYPE_FUNCS(event, RECORD_EVENT_FIELDS)
DEFINE_TYPE_FUNCS(initiation, RECORD_INITIATION_FIELDS)

/* ---------------------------------------------------------------------------------------- */
/* sample records: every field set                                                           */

#define SHA_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define SHA_B "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void fill_delivery(void *p)
{
    record_delivery_t *r = p;
    r->id = sdup("0f8fad5b-d9cb-469f-a165-70867728950e");
    r->time_ms = 1648585224123;
    r->mid = 987654321;
    r->email_id = sdup("AAMkAGI2TG93AAA=");
    r->message_id = sdup("<CAF=abc123@mail.example.com>");
    r->queue_id = sdup("4Fq2kL0xYz");
    r->direction = sdup("incoming");
    r->sender = sdup("alice@example.com");
    r->header_from = sdup("\"Alice \\\"A\\\" Smith\" <alice@example.com>");
    r->sender_ip = sdup("2001:db8::1");
    r->helo = sdup("mx.example.com");
    r->subject = sdup("Invoice \xE2\x82\xAC 42 - \"urgent\"");
    record_strv_push(&r->recipients, "bob@example.com");
    record_strv_push(&r->recipients, "carol@example.com");
    record_strv_push(&r->recipients, "dave+tag@example.org");
    record_strv_push(&r->urls, "https://evil.example/login?x=1&y=2");
    record_strv_push(&r->urls, "http://example.com/");
    r->attachments.v = calloc(2, sizeof(*r->attachments.v));
    assert_non_null(r->attachments.v);
    r->attachments.n = 2;
    r->attachments.v[0].name = sdup("invoice.pdf");
    r->attachments.v[0].content_type = sdup("application/pdf");
    r->attachments.v[0].size = 123456;
    r->attachments.v[0].sha256 = sdup(SHA_A);
    r->attachments.v[1].size = 0; /* only the required fields */
    r->attachments.v[1].sha256 = sdup(SHA_B);
}

static void fill_verdict(void *p)
{
    record_verdict_t *r = p;
    r->id = sdup("1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    r->time_ms = 1648585224999;
    r->feed = sdup("urlrep");
    r->observable_type = sdup("url");
    r->value = sdup("https://evil.example/login?user=x");
    r->disposition = sdup("malicious");
    r->email_id = sdup("AAMkAGI2TG93BBB=");
    r->observed_ms = -5; /* negative integers survive too */
    r->context = sdup("score=97; category=phishing");
}

static void fill_job(void *p)
{
    record_job_t *r = p;
    r->id = sdup("6fa459ea-ee8a-3ca4-894e-db77e160355e");
    r->time_ms = 1700000000000;
    r->batch = sdup("batch-2024-01-01");
    r->mid = 42;
    r->email_id = sdup("AAMkAGI2TG93CCC=");
    r->message_id = sdup("<msg-1@example.com>");
    r->recipient = sdup("bob@example.com");
    r->action = sdup("forward_delete");
    r->profile = sdup("quarantine");
    r->subject = sdup("Re: your account");
    r->reason = sdup("url_retrospection");
    r->initiator = sdup("admin@example.com");
    r->source = sdup("enricher");
}

static void fill_result(void *p)
{
    record_result_t *r = p;
    r->id = sdup("16fd2706-8baf-433b-82eb-8c7fada847da");
    r->time_ms = 1700000001234;
    r->job_id = sdup("6fa459ea-ee8a-3ca4-894e-db77e160355e");
    r->batch = sdup("batch-2024-01-01");
    r->mid = 42;
    r->recipient = sdup("bob@example.com");
    r->action = sdup("delete");
    r->profile = sdup("quarantine");
    r->status = sdup("not_found");
    r->detail = sdup("message not in mailbox\nretry=no");
    r->attempts = 3;
    r->reason = sdup("admin");
    r->forward_to = sdup("soc@example.com");
}

static void fill_event(void *p)
{
    record_event_t *r = p;
    r->id = sdup("a8098c1a-f86e-11da-bd1a-00112444be1e");
    r->time_ms = 1648585224000;
    r->program = sdup("clawback-remediator");
    r->log = sdup("remediation");
    r->level = sdup("warning");
    r->mid = 7;
    r->batch = sdup("b-7");
    r->message = sdup("Remediation \"delete\" failed:\n\ttimeout");
    /* two more lines: other logs, one for a message (mid), one not */
    record_linev_push(&r->lines, "mail_logs", 0, "batch b-7: 3 jobs queued\tretry=no");
    record_linev_push(&r->lines, "tracking", 987654321, "Remediation \xE2\x80\x94 delete: \"timeout\"");
}

/* initv_push - append a message to an initiation (copies of the strings; email_id may be NULL).
 * record.h has no push for these: the enricher fills its array in place. */
static void initv_push(record_initv_t *msgs, int64_t mid, const char *matched, const char *email_id,
                       const char *action)
{
    msgs->v = realloc(msgs->v, (msgs->n + 1) * sizeof(*msgs->v));
    assert_non_null(msgs->v);
    record_initiated_t *m = &msgs->v[msgs->n++];
    m->mid = mid;
    m->matched = matched ? sdup(matched) : NULL;
    m->email_id = email_id ? sdup(email_id) : NULL;
    m->action = action ? sdup(action) : NULL;
}

static void fill_initiation(void *p)
{
    record_initiation_t *r = p;
    r->id = sdup("3d813cbb-47fb-32ba-91df-831e1593ac29");
    r->time_ms = 1700000002345;
    r->program = sdup("clawback-enricher");
    r->batch = sdup("5c1f0e2a-7b3d-4e8f-9a6b-2d4c8e0f1a3b");
    r->held = true; /* false is the zero value: the sample must set every field */
    r->initiator = sdup("url_retrospection");
    r->source = sdup("enricher");
    r->feed = sdup("urlrep");
    r->observable_type = sdup("url");
    r->observable = sdup("https://evil.example/login?user=x&t=\"1\"");
    r->disposition = sdup("malicious");
    /* three messages, each matched another way, with another action; only the one matched by
     * email id names it */
    initv_push(&r->messages, 987654321, "url", NULL, "delete");
    initv_push(&r->messages, 42, "email_id", "AAMkAGI2TG93DDD=", "forward");
    initv_push(&r->messages, -7, "subject", NULL, "forward_delete");
}

typedef union {
    record_delivery_t delivery;
    record_verdict_t verdict;
    record_job_t job;
    record_result_t result;
    record_event_t event;
    record_initiation_t initiation;
} anyrec_t;

typedef struct {
    const char *name;
    const record_desc_t *desc;
    int version; /* from RECORD_TYPES */
    size_t size;
    void (*fill)(void *);
    void (*hand_fields)(mapb_t *, const void *, const hand_t *);
    void (*cmp)(const void *, const void *);
    void *(*field_ptr)(void *, const char *);
    const finfo_t *fields;
    size_t nfields;
} type_info_t;

/* One entry per RECORD_TYPES entry, with the version it states: a type added there needs a
 * fill_ function and a DEFINE_TYPE_FUNCS line here before this file compiles. */
#define TYPE_INFO(tname, tversion)                                                                 \
    {#tname,           &RECORD_DESC_##tname, tversion,      sizeof(record_##tname##_t),            \
     fill_##tname,     hand_fields_##tname,  cmp_##tname,                                          \
     field_ptr_##tname, FINFO_##tname,       sizeof(FINFO_##tname) / sizeof(FINFO_##tname[0])},

static const type_info_t TYPES[] = {RECORD_TYPES(TYPE_INFO)};
#define NTYPES (sizeof(TYPES) / sizeof(TYPES[0]))

/* type_info - the TYPES entry of a descriptor. */
static const type_info_t *type_info(const record_desc_t *desc)
{
    for (size_t t = 0; t < NTYPES; t++)
        if (TYPES[t].desc == desc)
            return &TYPES[t];
    fail_msg("no type info for %s", record_desc_name(desc));
    return NULL;
}
#define TI(tname) type_info(&RECORD_DESC_##tname)

/* A scope: the fields of a record, or those of the sub-records of one of its array fields. */
typedef struct {
    const char *owner; /* the name errors give: "event", "line" */
    const finfo_t *fields;
    size_t nfields;
    const finfo_t *array; /* the record's array field holding the sub-records; NULL: the record */
    void *(*field_ptr)(void *, const char *);
} scope_t;

#define MAX_SCOPES 8

/* type_scopes - the record's own scope, then one per sub-record array field; their number. */
static size_t type_scopes(const type_info_t *ti, scope_t *out)
{
    size_t n = 0;
    out[n++] = (scope_t){ti->name, ti->fields, ti->nfields, NULL, ti->field_ptr};
    for (size_t i = 0; i < ti->nfields; i++) {
        const subinfo_t *si = sub_info(ti->fields[i].kind);
        if (!si)
            continue;
        assert_true(n < MAX_SCOPES);
        out[n++] = (scope_t){si->name, si->fields, si->nfields, &ti->fields[i], si->field_ptr};
    }
    return n;
}

/* scope_key - the hand_t name of field f of scope sc ("log", "line.log"), written to buf. */
static const char *scope_key(const scope_t *sc, const finfo_t *f, char *buf, size_t size)
{
    if (sc->array)
        snprintf(buf, size, "%s.%s", sc->owner, f->name);
    else
        snprintf(buf, size, "%s", f->name);
    return buf;
}

/* scope_ptr - field name of rec's i-th element of the scope (the record itself for its own). */
static void *scope_ptr(const type_info_t *ti, const scope_t *sc, void *rec, size_t i, const char *name)
{
    if (!sc->array)
        return ti->field_ptr(rec, name);
    return sc->field_ptr(sub_elem(sc->array->kind, ti->field_ptr(rec, sc->array->name), i), name);
}

/* scope_count - how many elements rec has in the scope (1 for the record's own). */
static size_t scope_count(const type_info_t *ti, const scope_t *sc, void *rec)
{
    return sc->array ? sub_count(sc->array->kind, ti->field_ptr(rec, sc->array->name)) : 1;
}

/* ---------------------------------------------------------------------------------------- */
/* encode / decode wrappers                                                                  */

static void hand_build(const type_info_t *ti, const void *rec, const hand_t *h, msgpack_sbuffer *out)
{
    mapb_t m;
    mapb_init(&m, NULL);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == (h->header_last ? 1 : 0)) {
            if (!h->omit_type) {
                for (int t = h->dup && strcmp(h->dup, "type") == 0 ? 2 : 1; t > 0; t--) {
                    mapb_key(&m, "type");
                    if (h->type_as_int)
                        msgpack_pack_int(&m.pk, 1);
                    else {
                        const char *type = h->type ? h->type : ti->name;
                        msgpack_pack_str_with_body(&m.pk, type, strlen(type));
                    }
                }
            }
            if (!h->omit_v) {
                for (int t = h->dup && strcmp(h->dup, "v") == 0 ? 2 : 1; t > 0; t--) {
                    mapb_key(&m, "v");
                    if (h->v.k == V_NONE)
                        msgpack_pack_int(&m.pk, ti->version);
                    else
                        pack_value(&m.pk, &h->v);
                }
            }
        } else {
            ti->hand_fields(&m, rec, h);
        }
    }
    if (h->extra)
        hb_extra(&m);
    if (h->int_key) {
        msgpack_pack_int(&m.pk, 1);
        msgpack_pack_int(&m.pk, 2);
        m.n++;
    }
    mapb_finish(&m, out);
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* decode_copy - decode len bytes copied into an exactly-sized heap block (so ASan sees any
 * read past the end); on failure checks the promises: record zeroed, a reason given. */
static int decode_copy(const type_info_t *ti, const char *data, size_t len, anyrec_t *out, char *err,
                       size_t errsize)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, data, len);
    memset(out, 0xA5, sizeof(*out)); /* the decoder must zero it */
    err[0] = '\0';
    int rc = record_decode(ti->desc, copy, len, out, err, errsize);
    free(copy);
    if (rc != 0 && rc != -1)
        fail_msg("record_decode returned %d", rc);
    if (rc < 0) {
        if (!all_zero(out, ti->size))
            fail_msg("%s: rejected record not left zeroed", ti->name);
        if (err[0] == '\0')
            fail_msg("%s: rejected without a reason", ti->name);
    }
    return rc;
}

static void expect_reject_bytes(const type_info_t *ti, const char *data, size_t len, const char *errsub,
                                const char *what)
{
    anyrec_t rec;
    char err[512];
    if (decode_copy(ti, data, len, &rec, err, sizeof(err)) == 0) {
        record_clear(ti->desc, &rec);
        fail_msg("%s: %s: accepted, expected a rejection", ti->name, what);
    }
    if (errsub && !strstr(err, errsub))
        fail_msg("%s: %s: error '%s' does not mention '%s'", ti->name, what, err, errsub);
}

static void expect_reject(const type_info_t *ti, const void *sample, const hand_t *h, const char *errsub,
                          const char *what)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    hand_build(ti, sample, h, &b);
    expect_reject_bytes(ti, b.data, b.size, errsub, what);
    msgpack_sbuffer_destroy(&b);
}

/* expect_accept - decode must succeed; the decoded record is returned (caller clears). */
static void expect_accept(const type_info_t *ti, const void *sample, const hand_t *h, anyrec_t *out,
                          const char *what)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    hand_build(ti, sample, h, &b);
    char err[512];
    if (decode_copy(ti, b.data, b.size, out, err, sizeof(err)) != 0)
        fail_msg("%s: %s: rejected: %s", ti->name, what, err);
    msgpack_sbuffer_destroy(&b);
}

static void encode_ok(const type_info_t *ti, const void *rec, msgpack_sbuffer *out)
{
    char err[512] = "";
    if (record_encode(ti->desc, rec, out, err, sizeof(err)) != 0)
        fail_msg("%s: record_encode failed: %s", ti->name, err);
}

/* field_is_empty - whether a field holds its absent value (NULL, 0, no elements). */
static bool field_is_empty(const finfo_t *f, const void *p)
{
    switch (f->kind) {
    case K_STR:
        return *(char *const *)p == NULL;
    case K_INT:
        return *(const int64_t *)p == 0;
    case K_BOOL:
        return !*(const bool *)p;
    case K_STRV:
        return ((const record_strv_t *)p)->n == 0;
    case K_ATTV:
        return ((const record_attv_t *)p)->n == 0;
    case K_LINEV:
        return ((const record_linev_t *)p)->n == 0;
    case K_INITV:
        return ((const record_initv_t *)p)->n == 0;
    }
    return false;
}

/* field_size - the size of a field of that kind in its struct. */
static size_t field_size(int kind)
{
    switch (kind) {
    case K_STR:
        return sizeof(char *);
    case K_INT:
        return sizeof(int64_t);
    case K_BOOL:
        return sizeof(bool);
    case K_STRV:
        return sizeof(record_strv_t);
    case K_ATTV:
        return sizeof(record_attv_t);
    case K_LINEV:
        return sizeof(record_linev_t);
    case K_INITV:
        return sizeof(record_initv_t);
    }
    fail_msg("kind %d", kind);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* tests                                                                                     */

static void test_desc_lookup(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        assert_ptr_equal(record_desc_by_name(TYPES[t].name), TYPES[t].desc);
        assert_string_equal(record_desc_name(TYPES[t].desc), TYPES[t].name);
        /* each descriptor carries its own RECORD_TYPES version, not a common one */
        if (record_desc_version(TYPES[t].desc) != TYPES[t].version)
            fail_msg("%s: version %d, RECORD_TYPES says %d", TYPES[t].name, record_desc_version(TYPES[t].desc),
                     TYPES[t].version);
    }
    /* the versions this change introduced, spelled out */
    assert_int_equal(record_desc_version(&RECORD_DESC_result), 2);
    assert_int_equal(record_desc_version(&RECORD_DESC_event), 2);
    assert_int_equal(record_desc_version(&RECORD_DESC_delivery), 1);
    assert_ptr_equal(record_desc_by_name("initiation"), &RECORD_DESC_initiation);
    assert_string_equal(record_desc_name(&RECORD_DESC_initiation), "initiation");
    assert_int_equal(record_desc_version(&RECORD_DESC_initiation), 1);
    /* the sub-records' descriptors, which the decoder names in its errors */
    assert_string_equal(record_desc_name(SUB_ATTACHMENT.desc), "attachment");
    assert_string_equal(record_desc_name(SUB_LINE.desc), "line");
    assert_int_equal(record_desc_version(SUB_LINE.desc), 1);
    assert_ptr_equal(SUB_INITIATED.desc, &RECORD_DESC_initiated);
    assert_string_equal(record_desc_name(&RECORD_DESC_initiated), "initiated");
    assert_int_equal(record_desc_version(&RECORD_DESC_initiated), 1);
    assert_null(record_desc_by_name("initiated"));
    assert_null(record_desc_by_name("messages"));
    assert_null(record_desc_by_name("Initiation"));
    assert_null(record_desc_by_name("initiation "));
    assert_null(record_desc_by_name("initiations"));
    assert_null(record_desc_by_name("attachment")); /* sub-records, not top-level types */
    assert_null(record_desc_by_name("line"));
    assert_null(record_desc_by_name("lines"));
    assert_null(record_desc_by_name("Job"));
    assert_null(record_desc_by_name(""));
    assert_null(record_desc_by_name("jobs"));
}

/* The samples really set every field, so the round trips below compare real values. */
static void test_samples_complete(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t rec;
        memset(&rec, 0, sizeof(rec));
        ti->fill(&rec);
        for (size_t i = 0; i < ti->nfields; i++)
            if (field_is_empty(&ti->fields[i], ti->field_ptr(&rec, ti->fields[i].name)))
                fail_msg("sample %s leaves %s empty", ti->name, ti->fields[i].name);
        /* each sub-record field is set in some element, and some element leaves each
         * optional one empty (it is omitted on the wire) */
        scope_t scopes[MAX_SCOPES];
        size_t ns = type_scopes(ti, scopes);
        for (size_t s = 1; s < ns; s++) {
            const scope_t *sc = &scopes[s];
            size_t ne = scope_count(ti, sc, &rec);
            assert_true(ne >= 2);
            for (size_t i = 0; i < sc->nfields; i++) {
                const finfo_t *f = &sc->fields[i];
                size_t set = 0;
                for (size_t e = 0; e < ne; e++)
                    set += !field_is_empty(f, scope_ptr(ti, sc, &rec, e, f->name));
                if (set == 0)
                    fail_msg("sample %s leaves %s.%s empty in every element", ti->name, sc->owner, f->name);
                if (!f->required && set == ne)
                    fail_msg("sample %s sets %s.%s in every element", ti->name, sc->owner, f->name);
            }
        }
        record_clear(ti->desc, &rec);
        assert_true(all_zero(&rec, ti->size));
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t rec, back, again;
        memset(&rec, 0, sizeof(rec));
        ti->fill(&rec);

        /* record_encode appends to what the buffer holds */
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_sbuffer_write(&b, "XY", 2);
        encode_ok(ti, &rec, &b);
        assert_memory_equal(b.data, "XY", 2);
        char err[512];
        if (decode_copy(ti, b.data + 2, b.size - 2, &back, err, sizeof(err)) != 0)
            fail_msg("%s: decode of own encoding failed: %s", ti->name, err);
        ti->cmp(&rec, &back);
        ti->cmp(&back, &rec);

        /* the encoding is deterministic: re-encoding the decoded record gives the same bytes */
        msgpack_sbuffer b2;
        msgpack_sbuffer_init(&b2);
        encode_ok(ti, &back, &b2);
        assert_int_equal(b2.size, b.size - 2);
        assert_memory_equal(b2.data, b.data + 2, b2.size);

        /* the test's independent writer produces a record the decoder reads the same way,
         * so the wire names are those of record.h */
        hand_t h = {0};
        expect_accept(ti, &rec, &h, &again, "hand-built");
        ti->cmp(&rec, &again);

        record_clear(ti->desc, &again);
        record_clear(ti->desc, &back);
        record_clear(ti->desc, &rec);
        msgpack_sbuffer_destroy(&b2);
        msgpack_sbuffer_destroy(&b);
    }
}

/* Optional fields left empty are omitted and come back empty. */
static void test_round_trip_minimal(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t rec, back;
        memset(&rec, 0, sizeof(rec));
        ti->fill(&rec);
        /* keep only the required fields */
        anyrec_t full;
        memcpy(&full, &rec, sizeof(rec));
        memset(&rec, 0, sizeof(rec));
        for (size_t i = 0; i < ti->nfields; i++) {
            const finfo_t *f = &ti->fields[i];
            if (!f->required)
                continue;
            void *dst = ti->field_ptr(&rec, f->name), *src = ti->field_ptr(&full, f->name);
            size_t sz = field_size(f->kind);
            memcpy(dst, src, sz);
            memset(src, 0, sz);
        }
        record_clear(ti->desc, &full);

        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(ti, &rec, &b);
        char err[512];
        if (decode_copy(ti, b.data, b.size, &back, err, sizeof(err)) != 0)
            fail_msg("%s: minimal decode failed: %s", ti->name, err);
        ti->cmp(&rec, &back);
        for (size_t i = 0; i < ti->nfields; i++)
            if (!ti->fields[i].required && !field_is_empty(&ti->fields[i], ti->field_ptr(&back, ti->fields[i].name)))
                fail_msg("%s.%s: absent optional field decoded non-empty", ti->name, ti->fields[i].name);
        /* the optional keys are not on the wire, except a BOOL's: record.c writes a BOOL
         * always, false included (field_present), so the key is there with false */
        for (size_t i = 0; i < ti->nfields; i++) {
            const finfo_t *f = &ti->fields[i];
            if (f->required)
                continue;
            size_t n = strlen(f->name);
            char key[64];
            key[0] = (char)(0xa0 | n); /* fixstr header + name */
            memcpy(key + 1, f->name, n);
            if (f->kind == K_BOOL) {
                key[n + 1] = (char)0xc2; /* false */
                if (!memmem(b.data, b.size, key, n + 2))
                    fail_msg("%s.%s: false not written", ti->name, f->name);
                continue;
            }
            assert_null(memmem(b.data, b.size, key, n + 1));
        }
        record_clear(ti->desc, &back);
        record_clear(ti->desc, &rec);
        msgpack_sbuffer_destroy(&b);
    }
}

static void test_round_trip_int_extremes(void **state)
{
    (void)state;
    static const int64_t values[] = {INT64_MIN, INT64_MIN + 1, -4294967296LL, -129, -1, 0, 1, 127, 128,
                                     65535, 4294967296LL, INT64_MAX};
    const type_info_t *ti = TI(job);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        record_job_t job = {0}, back;
        fill_job(&job);
        job.mid = values[i];
        job.time_ms = values[sizeof(values) / sizeof(values[0]) - 1 - i];
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(ti, &job, &b);
        char err[256];
        if (record_decode(&RECORD_DESC_job, b.data, b.size, &back, err, sizeof(err)) != 0)
            fail_msg("mid %lld: %s", (long long)values[i], err);
        assert_true(back.mid == job.mid);
        assert_true(back.time_ms == job.time_ms);
        record_clear(&RECORD_DESC_job, &back);
        record_clear(&RECORD_DESC_job, &job);
        msgpack_sbuffer_destroy(&b);
    }
    /* the same for a line's mid, inside a sub-record */
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        record_event_t ev = {0}, back;
        fill_event(&ev);
        ev.lines.v[0].mid = values[i];
        ev.lines.v[1].mid = values[sizeof(values) / sizeof(values[0]) - 1 - i];
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(TI(event), &ev, &b);
        char err[256];
        if (record_decode(&RECORD_DESC_event, b.data, b.size, &back, err, sizeof(err)) != 0)
            fail_msg("line mid %lld: %s", (long long)values[i], err);
        assert_int_equal(back.lines.n, 2);
        assert_true(back.lines.v[0].mid == ev.lines.v[0].mid);
        assert_true(back.lines.v[1].mid == ev.lines.v[1].mid);
        record_clear(&RECORD_DESC_event, &back);
        record_clear(&RECORD_DESC_event, &ev);
        msgpack_sbuffer_destroy(&b);
    }
    /* and for an initiated message's mid (required: 0 is written too) */
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        record_initiation_t in = {0}, back;
        fill_initiation(&in);
        in.messages.v[0].mid = values[i];
        in.messages.v[2].mid = values[sizeof(values) / sizeof(values[0]) - 1 - i];
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(TI(initiation), &in, &b);
        char err[256];
        if (record_decode(&RECORD_DESC_initiation, b.data, b.size, &back, err, sizeof(err)) != 0)
            fail_msg("initiated mid %lld: %s", (long long)values[i], err);
        assert_int_equal(back.messages.n, 3);
        assert_true(back.messages.v[0].mid == in.messages.v[0].mid);
        assert_true(back.messages.v[1].mid == 42);
        assert_true(back.messages.v[2].mid == in.messages.v[2].mid);
        record_clear(&RECORD_DESC_initiation, &back);
        record_clear(&RECORD_DESC_initiation, &in);
        msgpack_sbuffer_destroy(&b);
    }
}

/* Removing one required key (built by hand) is rejected, naming the field; removing an optional
 * one is accepted and the field decodes empty. A sub-record's fields are removed from each of
 * its elements (attachments of a delivery, lines of an event). */
static void test_missing_fields(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        scope_t scopes[MAX_SCOPES];
        size_t ns = type_scopes(ti, scopes);
        for (size_t s = 0; s < ns; s++) {
            const scope_t *sc = &scopes[s];
            for (size_t i = 0; i < sc->nfields; i++) {
                const finfo_t *f = &sc->fields[i];
                char key[128], sub[128];
                hand_t h = {.skip = scope_key(sc, f, key, sizeof(key))};
                snprintf(sub, sizeof(sub), "%s.%s: required field missing", sc->owner, f->name);
                if (f->required) {
                    expect_reject(ti, &sample, &h, sub, key);
                    continue;
                }
                anyrec_t back;
                expect_accept(ti, &sample, &h, &back, key);
                size_t ne = scope_count(ti, sc, &back);
                if (sc->array)
                    assert_int_equal(ne, scope_count(ti, sc, &sample));
                for (size_t e = 0; e < ne; e++)
                    if (!field_is_empty(f, scope_ptr(ti, sc, &back, e, f->name)))
                        fail_msg("%s: omitted %s decoded non-empty", ti->name, key);
                record_clear(ti->desc, &back);
            }
        }
        record_clear(ti->desc, &sample);
    }
}

/* Values of the wrong msgpack type, per field kind. */
static const value_t WRONG_FOR_STR[] = {
    {.k = V_INT, .i = 5, .what = "int"},
    {.k = V_NIL, .what = "nil"},
    {.k = V_TRUE, .what = "bool"},
    {.k = V_FLOAT, .what = "float"},
    {.k = V_BIN, .s = "abc", .len = 3, .what = "bin"},
    {.k = V_ARRAY_STRS, .s = "a", .len = 1, .n = 1, .what = "array"},
    {.k = V_MAP_EMPTY, .what = "map"},
};
static const value_t WRONG_FOR_INT[] = {
    {.k = V_STR, .s = "12", .len = 2, .what = "string"},
    {.k = V_NIL, .what = "nil"},
    {.k = V_TRUE, .what = "bool"},
    {.k = V_FLOAT, .what = "float"},
    {.k = V_ARRAY_INTS, .n = 1, .i = 1, .what = "array"},
    {.k = V_MAP_EMPTY, .what = "map"},
    {.k = V_UINT, .u = UINT64_MAX, .what = "uint64 max"},
    {.k = V_UINT, .u = (uint64_t)INT64_MAX + 1, .what = "INT64_MAX + 1"},
};
static const value_t WRONG_FOR_STRV[] = {
    {.k = V_STR, .s = "a", .len = 1, .what = "string"},
    {.k = V_INT, .i = 1, .what = "int"},
    {.k = V_NIL, .what = "nil"},
    {.k = V_MAP_EMPTY, .what = "map"},
    {.k = V_ARRAY_INTS, .n = 2, .i = 7, .what = "array of ints"},
    {.k = V_ARRAY_NILS, .n = 1, .what = "array of nil"},
    {.k = V_ARRAY_EMPTY_MAPS, .n = 1, .what = "array of maps"},
    {.k = V_ARRAY_STRS, .s = "a\0b", .len = 3, .n = 1, .what = "element with NUL"},
    {.k = V_ARRAY_STRS, .s = BIG, .len = 8193, .n = 1, .what = "element of 8193 bytes"},
};
static const value_t WRONG_FOR_ATTV[] = {
    {.k = V_STR, .s = "a", .len = 1, .what = "string"},
    {.k = V_INT, .i = 1, .what = "int"},
    {.k = V_NIL, .what = "nil"},
    {.k = V_MAP_EMPTY, .what = "map"},
    {.k = V_ARRAY_INTS, .n = 1, .i = 1, .what = "array of ints", .err = "attachment: not a map"},
    {.k = V_ARRAY_STRS, .s = "a", .len = 1, .n = 1, .what = "array of strings", .err = "attachment: not a map"},
    {.k = V_ARRAY_NILS, .n = 2, .what = "array of nil", .err = "attachment: not a map"},
    {.k = V_ARRAY_EMPTY_MAPS, .n = 1, .what = "array of empty maps (required fields missing)",
     .err = "required field missing"},
    {.k = V_ARRAY_LINES, .n = 1, .what = "array of lines", .err = "attachment.size: required field missing"},
    {.k = V_ARRAY_INITS, .n = 1, .what = "array of initiated messages",
     .err = "attachment.size: required field missing"},
};
static const value_t WRONG_FOR_LINEV[] = {
    {.k = V_STR, .s = "a", .len = 1, .what = "string"},
    {.k = V_INT, .i = 1, .what = "int"},
    {.k = V_NIL, .what = "nil"},
    {.k = V_TRUE, .what = "bool"},
    {.k = V_MAP_EMPTY, .what = "map"},
    {.k = V_ARRAY_INTS, .n = 1, .i = 1, .what = "array of ints", .err = "line: not a map"},
    {.k = V_ARRAY_STRS, .s = "a", .len = 1, .n = 1, .what = "array of strings", .err = "line: not a map"},
    {.k = V_ARRAY_NILS, .n = 2, .what = "array of nil", .err = "line: not a map"},
    {.k = V_ARRAY_EMPTY_MAPS, .n = 1, .what = "array of empty maps (required fields missing)",
     .err = "required field missing"},
    {.k = V_ARRAY_ATTS, .n = 1, .what = "array of attachments", .err = "line.log: required field missing"},
    {.k = V_ARRAY_INITS, .n = 1, .what = "array of initiated messages", .err = "line.log: required field missing"},
    {.k = V_ARRAY_LINES, .n = 2, .log = "explode", .what = "a line whose log is not allowed", .err = "line.log"},
    {.k = V_ARRAY_LINES, .n = 1, .log = "", .what = "a line whose log is empty", .err = "line.log"},
    {.k = V_ARRAY_LINES, .n = 1, .log = "Tracking", .what = "a line whose log is capitalised", .err = "line.log"},
    {.k = V_ARRAY_LINES, .n = 1, .s = BIG, .len = 8193, .what = "a line message of 8193 bytes",
     .err = "line.message: 8193 bytes, more than 8192"},
    {.k = V_ARRAY_LINES, .n = 1, .s = "a\0b", .len = 3, .what = "a line message with a NUL",
     .err = "line.message: contains a NUL"},
};

static const value_t WRONG_FOR_BOOL[] = {
    {.k = V_INT, .i = 0, .what = "int 0"},
    {.k = V_INT, .i = 1, .what = "int 1"},
    {.k = V_UINT, .u = 1, .what = "uint 1"},
    {.k = V_INT, .i = -1, .what = "int -1"},
    {.k = V_NIL, .what = "nil"},
    {.k = V_STR, .s = "true", .len = 4, .what = "string \"true\""},
    {.k = V_STR, .s = "false", .len = 5, .what = "string \"false\""},
    {.k = V_STR, .s = "", .len = 0, .what = "empty string"},
    {.k = V_FLOAT, .what = "float"},
    {.k = V_BIN, .s = "\x01", .len = 1, .what = "bin"},
    {.k = V_ARRAY_INTS, .n = 1, .i = 1, .what = "array"},
    {.k = V_MAP_EMPTY, .what = "map"},
    {.k = V_RAW, .s = "\x91\xc3", .len = 2, .what = "array [true]"},
};
/* one initiated message, all fields: mid 1, matched url, action delete */
#define INIT_ELEM "\x83\xa3mid\x01\xa7matched\xa3url\xa6" "action\xa6" "delete"
static const value_t WRONG_FOR_INITV[] = {
    {.k = V_STR, .s = "a", .len = 1, .what = "string"},
    {.k = V_INT, .i = 1, .what = "int"},
    {.k = V_NIL, .what = "nil"},
    {.k = V_TRUE, .what = "bool"},
    {.k = V_FLOAT, .what = "float"},
    {.k = V_MAP_EMPTY, .what = "map"},
    {.k = V_RAW, .s = INIT_ELEM, .len = sizeof(INIT_ELEM) - 1, .what = "one message, not in an array"},
    {.k = V_ARRAY_INTS, .n = 1, .i = 1, .what = "array of ints", .err = "initiated: not a map"},
    {.k = V_ARRAY_STRS, .s = "a", .len = 1, .n = 1, .what = "array of strings", .err = "initiated: not a map"},
    {.k = V_ARRAY_NILS, .n = 2, .what = "array of nil", .err = "initiated: not a map"},
    {.k = V_ARRAY_EMPTY_MAPS, .n = 1, .what = "array of empty maps", .err = "initiated.mid: required field missing"},
    {.k = V_ARRAY_ATTS, .n = 1, .what = "array of attachments", .err = "initiated.mid: required field missing"},
    {.k = V_ARRAY_LINES, .n = 2, .what = "array of lines", .err = "initiated.mid: required field missing"},
    {.k = V_RAW, .s = "\x92" INIT_ELEM "\xc0", .len = sizeof("\x92" INIT_ELEM "\xc0") - 1,
     .what = "a message, then nil", .err = "initiated: not a map"},
    {.k = V_RAW, .s = "\x92" INIT_ELEM "\x91" INIT_ELEM, .len = sizeof("\x92" INIT_ELEM "\x91" INIT_ELEM) - 1,
     .what = "a message, then an array holding one", .err = "initiated: not a map"},
    {.k = V_RAW, .s = "\x91\x81\x01\x02", .len = 4, .what = "a message with an integer key",
     .err = "initiated: a key is not a string"},
    {.k = V_ARRAY_INITS, .n = 2, .s = "domain", .len = 6, .what = "matched = domain (an observable type)",
     .err = "initiated.matched: 'domain' is not one of url|email_id|subject"},
    {.k = V_ARRAY_INITS, .n = 1, .s = "delete", .len = 6, .what = "matched = delete (an action)",
     .err = "initiated.matched"},
    {.k = V_ARRAY_INITS, .n = 1, .s = "email", .len = 5, .what = "matched = email", .err = "initiated.matched"},
    {.k = V_ARRAY_INITS, .n = 1, .s = BIG, .len = 17, .what = "matched of 17 bytes",
     .err = "initiated.matched: 17 bytes, more than 16"},
    {.k = V_ARRAY_INITS, .n = 3, .log = "url", .what = "action = url (a match)", .err = "initiated.action"},
    {.k = V_ARRAY_INITS, .n = 1, .log = "none", .what = "action = none (never initiated)",
     .err = "initiated.action: 'none' is not one of delete|forward|forward_delete"},
    {.k = V_ARRAY_INITS, .n = 1, .log = "Delete", .what = "action capitalised", .err = "initiated.action"},
    {.k = V_ARRAY_INITS, .n = 1, .log = "delete ", .what = "action with a space", .err = "initiated.action"},
};

static void wrong_values(int kind, const value_t **vals, size_t *n)
{
    switch (kind) {
    case K_STR:
        *vals = WRONG_FOR_STR, *n = sizeof(WRONG_FOR_STR) / sizeof(WRONG_FOR_STR[0]);
        return;
    case K_INT:
        *vals = WRONG_FOR_INT, *n = sizeof(WRONG_FOR_INT) / sizeof(WRONG_FOR_INT[0]);
        return;
    case K_STRV:
        *vals = WRONG_FOR_STRV, *n = sizeof(WRONG_FOR_STRV) / sizeof(WRONG_FOR_STRV[0]);
        return;
    case K_ATTV:
        *vals = WRONG_FOR_ATTV, *n = sizeof(WRONG_FOR_ATTV) / sizeof(WRONG_FOR_ATTV[0]);
        return;
    case K_LINEV:
        *vals = WRONG_FOR_LINEV, *n = sizeof(WRONG_FOR_LINEV) / sizeof(WRONG_FOR_LINEV[0]);
        return;
    case K_BOOL:
        *vals = WRONG_FOR_BOOL, *n = sizeof(WRONG_FOR_BOOL) / sizeof(WRONG_FOR_BOOL[0]);
        return;
    case K_INITV:
        *vals = WRONG_FOR_INITV, *n = sizeof(WRONG_FOR_INITV) / sizeof(WRONG_FOR_INITV[0]);
        return;
    }
    *vals = NULL, *n = 0;
}

static void test_wrong_field_types(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        scope_t scopes[MAX_SCOPES];
        size_t ns = type_scopes(ti, scopes);
        for (size_t s = 0; s < ns; s++) {
            const scope_t *sc = &scopes[s];
            for (size_t i = 0; i < sc->nfields; i++) {
                const finfo_t *f = &sc->fields[i];
                const value_t *vals;
                size_t nv;
                wrong_values(f->kind, &vals, &nv);
                assert_true(nv > 0);
                for (size_t j = 0; j < nv; j++) {
                    char key[128], errsub[128], what[256];
                    hand_t h = {.ov_key = scope_key(sc, f, key, sizeof(key)), .ov = vals[j]};
                    snprintf(errsub, sizeof(errsub), "%s.%s", sc->owner, f->name);
                    snprintf(what, sizeof(what), "%s.%s as %s", sc->owner, f->name, vals[j].what);
                    expect_reject(ti, &sample, &h, vals[j].err ? vals[j].err : errsub, what);
                }
            }
        }
        record_clear(ti->desc, &sample);
    }
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        scope_t scopes[MAX_SCOPES];
        size_t ns = type_scopes(ti, scopes);
        for (size_t s = 0; s < ns; s++)
            for (size_t i = 0; i < scopes[s].nfields; i++) {
                char key[128], errsub[128];
                hand_t h = {.dup = scope_key(&scopes[s], &scopes[s].fields[i], key, sizeof(key))};
                snprintf(errsub, sizeof(errsub), "%s.%s: key present twice", scopes[s].owner,
                         scopes[s].fields[i].name);
                expect_reject(ti, &sample, &h, errsub, key);
            }
        hand_t ht = {.dup = "type"}, hv = {.dup = "v"};
        expect_reject(ti, &sample, &ht, "type", "type twice");
        expect_reject(ti, &sample, &hv, "version", "v twice");
        record_clear(ti->desc, &sample);
    }
}

static void test_header(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample, back;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);

        /* every other type's real encoding is refused as this type */
        for (size_t o = 0; o < NTYPES; o++) {
            if (o == t)
                continue;
            anyrec_t other;
            memset(&other, 0, sizeof(other));
            TYPES[o].fill(&other);
            msgpack_sbuffer b;
            msgpack_sbuffer_init(&b);
            encode_ok(&TYPES[o], &other, &b);
            char what[64];
            snprintf(what, sizeof(what), "a %s decoded as %s", TYPES[o].name, ti->name);
            expect_reject_bytes(ti, b.data, b.size, "expected a", what);
            msgpack_sbuffer_destroy(&b);
            record_clear(TYPES[o].desc, &other);
            /* and this type's fields under another type name */
            hand_t h = {.type = TYPES[o].name};
            expect_reject(ti, &sample, &h, "expected a", what);
        }

        struct {
            hand_t h;
            const char *errsub;
            const char *what;
        } bad[] = {
            {{.omit_type = true}, "missing type", "no type"},
            {{.type_as_int = true}, "expected a", "type is an integer"},
            {{.type = ""}, "expected a", "empty type"},
            {{.type = "attachment"}, "expected a", "type attachment"},
            {{.omit_v = true}, "missing version", "no v"},
            {{.v = {.k = V_INT, .i = 0}}, "version", "v = 0"},
            {{.v = {.k = V_INT, .i = -1}}, "version", "v = -1"},
            {{.v = {.k = V_STR, .s = "1", .len = 1}}, "version", "v = \"1\""},
            {{.v = {.k = V_FLOAT}}, "version", "v = 1.0"},
            {{.v = {.k = V_NIL}}, "version", "v = nil"},
            {{.omit_type = true, .omit_v = true}, "missing", "no header"},
            {{.int_key = true}, "not a string", "integer key"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            expect_reject(ti, &sample, &bad[i].h, bad[i].errsub, bad[i].what);

        /* case matters, and so do surrounding spaces */
        char upper[32], spaced[34];
        snprintf(upper, sizeof(upper), "%s", ti->name);
        upper[0] = (char)(upper[0] - 'a' + 'A');
        snprintf(spaced, sizeof(spaced), "%s ", ti->name);
        hand_t hu = {.type = upper}, hs = {.type = spaced};
        expect_reject(ti, &sample, &hu, "expected a", "capitalised type");
        expect_reject(ti, &sample, &hs, "expected a", "type with a space");

        /* a newer version with every required field decodes; so does any order */
        struct {
            hand_t h;
            const char *what;
        } good[] = {
            {{.v = {.k = V_INT, .i = 1}}, "v = 1"},
            {{.v = {.k = V_INT, .i = ti->version}}, "v = the current version"},
            {{.v = {.k = V_INT, .i = ti->version + 1}}, "v = the next version"},
            {{.v = {.k = V_INT, .i = 7}}, "v = 7"},
            {{.v = {.k = V_UINT, .u = UINT64_MAX}}, "v = UINT64_MAX"},
            {{.v = {.k = V_INT, .i = 7}, .extra = true}, "v = 7 with new keys"},
            {{.header_last = true}, "header after the fields"},
        };
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
            expect_accept(ti, &sample, &good[i].h, &back, good[i].what);
            ti->cmp(&sample, &back);
            record_clear(ti->desc, &back);
        }
        record_clear(ti->desc, &sample);
    }
}

static void test_unknown_keys_ignored(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample, back;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        hand_t h = {.extra = true}; /* "future_field" etc., also inside each attachment */
        expect_accept(ti, &sample, &h, &back, "unknown keys");
        ti->cmp(&sample, &back);
        record_clear(ti->desc, &back);

        /* a lone "future_field" string key, as a minimal case */
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(ti, &sample, &b);
        /* rewrite the map header: fixmap or map16, add one pair at the end */
        const unsigned char *p = (const unsigned char *)b.data;
        msgpack_sbuffer b2;
        msgpack_sbuffer_init(&b2);
        size_t hdr;
        uint32_t n;
        if ((p[0] & 0xf0) == 0x80) {
            n = p[0] & 0x0f;
            hdr = 1;
        } else {
            assert_int_equal(p[0], 0xde);
            n = (uint32_t)p[1] << 8 | p[2];
            hdr = 3;
        }
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b2, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, n + 1);
        msgpack_sbuffer_write(&b2, b.data + hdr, b.size - hdr);
        msgpack_pack_str_with_body(&pk, "future_field", 12);
        msgpack_pack_str_with_body(&pk, "x", 1);
        char err[256];
        if (decode_copy(ti, b2.data, b2.size, &back, err, sizeof(err)) != 0)
            fail_msg("%s with future_field: %s", ti->name, err);
        ti->cmp(&sample, &back);
        record_clear(ti->desc, &back);
        msgpack_sbuffer_destroy(&b2);
        msgpack_sbuffer_destroy(&b);
        record_clear(ti->desc, &sample);
    }
}

/* Count allowed values ("a|b|c") and copy the i-th into out. */
static size_t allowed_nth(const char *allowed, size_t idx, char *out, size_t outsize)
{
    size_t count = 0;
    const char *p = allowed;
    while (*p) {
        size_t n = strcspn(p, "|");
        if (count == idx && out)
            snprintf(out, outsize, "%.*s", (int)n, p);
        count++;
        p += n;
        if (*p == '|')
            p++;
    }
    return count;
}

static void test_string_and_array_limits(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample, back;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        scope_t scopes[MAX_SCOPES];
        size_t ns = type_scopes(ti, scopes);
        for (size_t s = 0; s < ns; s++) {
            const scope_t *sc = &scopes[s];
            for (size_t i = 0; i < sc->nfields; i++) {
                const finfo_t *f = &sc->fields[i];
                char key[128], sub_err[128], what[512];
                scope_key(sc, f, key, sizeof(key));
                snprintf(sub_err, sizeof(sub_err), "%s.%s", sc->owner, f->name);
                if (f->kind == K_STR) {
                    assert_true(f->max > 0 && f->max < sizeof(BIG));
                    /* one byte over the maximum */
                    hand_t over = {.ov_key = key, .ov = {.k = V_STR, .s = BIG, .len = f->max + 1}};
                    snprintf(what, sizeof(what), "%s of %zu bytes", sub_err, f->max + 1);
                    expect_reject(ti, &sample, &over, sub_err, what);
                    /* an embedded NUL */
                    hand_t nul = {.ov_key = key, .ov = {.k = V_STR, .s = "a\0b", .len = 3}};
                    snprintf(what, sizeof(what), "%s with a NUL", sub_err);
                    expect_reject(ti, &sample, &nul, "NUL", what);
                    if (!f->allowed) {
                        /* exactly the maximum is fine */
                        hand_t at = {.ov_key = key, .ov = {.k = V_STR, .s = BIG, .len = f->max}};
                        snprintf(what, sizeof(what), "%s of %zu bytes", sub_err, f->max);
                        expect_accept(ti, &sample, &at, &back, what);
                        for (size_t e = 0; e < scope_count(ti, sc, &back); e++) {
                            const char *got = *(char **)scope_ptr(ti, sc, &back, e, f->name);
                            assert_non_null(got);
                            assert_int_equal(strlen(got), f->max);
                        }
                        record_clear(ti->desc, &back);
                    } else {
                        /* every allowed value is accepted and kept */
                        size_t na = allowed_nth(f->allowed, 0, NULL, 0);
                        assert_true(na >= 2);
                        for (size_t a = 0; a < na; a++) {
                            char val[64];
                            allowed_nth(f->allowed, a, val, sizeof(val));
                            hand_t ok = {.ov_key = key, .ov = {.k = V_STR, .s = val, .len = strlen(val)}};
                            snprintf(what, sizeof(what), "%s = %s", sub_err, val);
                            expect_accept(ti, &sample, &ok, &back, what);
                            for (size_t e = 0; e < scope_count(ti, sc, &back); e++)
                                assert_string_equal(*(char **)scope_ptr(ti, sc, &back, e, f->name), val);
                            record_clear(ti->desc, &back);
                        }
                        /* and nothing else */
                        char first[64], upper[64], joined[130], prefix[64];
                        allowed_nth(f->allowed, 0, first, sizeof(first));
                        snprintf(upper, sizeof(upper), "%s", first);
                        upper[0] = (char)(upper[0] - 'a' + 'A');
                        snprintf(prefix, sizeof(prefix), "%.*s", (int)strlen(first) - 1, first);
                        char second[64];
                        allowed_nth(f->allowed, 1, second, sizeof(second));
                        snprintf(joined, sizeof(joined), "%s|%s", first, second);
                        const char *bogus[] = {"explode", "", upper, prefix, joined, " ", "a|"};
                        for (size_t b = 0; b < sizeof(bogus) / sizeof(bogus[0]); b++) {
                            hand_t no = {.ov_key = key, .ov = {.k = V_STR, .s = bogus[b], .len = strlen(bogus[b])}};
                            snprintf(what, sizeof(what), "%s = '%s'", sub_err, bogus[b]);
                            expect_reject(ti, &sample, &no, sub_err, what);
                        }
                        char withnul[80];
                        memcpy(withnul, first, strlen(first));
                        withnul[strlen(first)] = '\0';
                        hand_t tail = {.ov_key = key, .ov = {.k = V_STR, .s = withnul, .len = strlen(first) + 1}};
                        expect_reject(ti, &sample, &tail, "NUL", "allowed value plus NUL");
                    }
                } else if (f->kind == K_STRV) {
                    hand_t at = {.ov_key = key, .ov = {.k = V_ARRAY_STRS, .s = "x@y", .len = 3, .n = (uint32_t)f->max}};
                    snprintf(what, sizeof(what), "%s with %zu elements", sub_err, f->max);
                    expect_accept(ti, &sample, &at, &back, what);
                    assert_int_equal(((record_strv_t *)ti->field_ptr(&back, f->name))->n, f->max);
                    record_clear(ti->desc, &back);
                    hand_t over = {.ov_key = key,
                                   .ov = {.k = V_ARRAY_STRS, .s = "x@y", .len = 3, .n = (uint32_t)f->max + 1}};
                    snprintf(what, sizeof(what), "%s with %zu elements", sub_err, f->max + 1);
                    expect_reject(ti, &sample, &over, sub_err, what);
                    hand_t elem = {.ov_key = key, .ov = {.k = V_ARRAY_STRS, .s = BIG, .len = 8192, .n = 2}};
                    expect_accept(ti, &sample, &elem, &back, "elements of 8192 bytes");
                    record_clear(ti->desc, &back);
                    hand_t empty = {.ov_key = key, .ov = {.k = V_ARRAY_STRS, .n = 0}};
                    expect_accept(ti, &sample, &empty, &back, "empty array");
                    record_clear(ti->desc, &back);
                } else if (f->kind == K_BOOL) {
                    /* no limits: both values are accepted and kept */
                    static const value_t bools[] = {{.k = V_TRUE}, {.k = V_RAW, .s = "\xc2", .len = 1}};
                    for (size_t v = 0; v < 2; v++) {
                        hand_t hb = {.ov_key = key, .ov = bools[v]};
                        snprintf(what, sizeof(what), "%s = %s", sub_err, v == 0 ? "true" : "false");
                        expect_accept(ti, &sample, &hb, &back, what);
                        assert_int_equal(*(bool *)scope_ptr(ti, sc, &back, 0, f->name), v == 0);
                        record_clear(ti->desc, &back);
                    }
                } else if (f->kind == K_ATTV || f->kind == K_LINEV || f->kind == K_INITV) {
                    vkind_t elems = f->kind == K_ATTV    ? V_ARRAY_ATTS
                                    : f->kind == K_LINEV ? V_ARRAY_LINES
                                                         : V_ARRAY_INITS;
                    hand_t at = {.ov_key = key, .ov = {.k = elems, .n = (uint32_t)f->max}};
                    snprintf(what, sizeof(what), "%s with %zu elements", sub_err, f->max);
                    expect_accept(ti, &sample, &at, &back, what);
                    assert_int_equal(sub_count(f->kind, ti->field_ptr(&back, f->name)), f->max);
                    record_clear(ti->desc, &back);
                    hand_t over = {.ov_key = key, .ov = {.k = elems, .n = (uint32_t)f->max + 1}};
                    snprintf(what, sizeof(what), "%s with %zu elements", sub_err, f->max + 1);
                    char count_err[192];
                    snprintf(count_err, sizeof(count_err), "%s: %zu elements, more than %zu", sub_err, f->max + 1,
                             f->max);
                    expect_reject(ti, &sample, &over, count_err, what);
                    hand_t empty = {.ov_key = key, .ov = {.k = elems, .n = 0}};
                    expect_accept(ti, &sample, &empty, &back, "empty array");
                    assert_true(field_is_empty(f, ti->field_ptr(&back, f->name)));
                    record_clear(ti->desc, &back);
                }
            }
        }
        record_clear(ti->desc, &sample);
    }
}

/* The example the brief names, spelled out: job.action = "explode". */
static void test_job_action_explode(void **state)
{
    (void)state;
    record_job_t job = {0};
    fill_job(&job);
    hand_t h = {.ov_key = "action", .ov = {.k = V_STR, .s = "explode", .len = 7}};
    expect_reject(TI(job), &job, &h, "job.action", "job.action = explode");
    /* and record_encode will not write it either */
    free(job.action);
    job.action = sdup("explode");
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    char err[256] = "";
    assert_int_equal(record_encode(&RECORD_DESC_job, &job, &b, err, sizeof(err)), -1);
    assert_int_equal(b.size, 0);
    assert_non_null(strstr(err, "job.action"));
    msgpack_sbuffer_destroy(&b);
    record_clear(&RECORD_DESC_job, &job);
}

static void test_not_a_map(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } cases[] = {
        {"\x92\xa4type\xa3job", 10, "array [\"type\", \"job\"]"},
        {"\x90", 1, "empty array"},
        {"\xa3job", 4, "string"},
        {"\x01", 1, "integer"},
        {"\xc0", 1, "nil"},
        {"\x80", 1, "empty map"},
        {"", 0, "no bytes"},
        {"\x81\xc4\x04type\xa3job", 11, "bin key"},
    };
    for (size_t t = 0; t < NTYPES; t++)
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            expect_reject_bytes(&TYPES[t], cases[i].bytes, cases[i].len, NULL, cases[i].what);

    /* a real record wrapped in an array */
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_sbuffer_write(&b, "\x91", 1);
        encode_ok(ti, &sample, &b);
        expect_reject_bytes(ti, b.data, b.size, "not a map", "record inside an array");
        /* and a record followed by a byte */
        msgpack_sbuffer_write(&b, "\x00", 1);
        expect_reject_bytes(ti, b.data + 1, b.size - 1, "malformed", "trailing byte");
        msgpack_sbuffer_destroy(&b);
        record_clear(ti->desc, &sample);
    }
}

/* Every proper prefix of every type's encoding is rejected without a crash. */
static void test_truncated(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(ti, &sample, &b);
        for (size_t n = 0; n < b.size; n++) {
            char what[64];
            snprintf(what, sizeof(what), "prefix of %zu/%zu bytes", n, b.size);
            expect_reject_bytes(ti, b.data, n, NULL, what);
        }
        msgpack_sbuffer_destroy(&b);
        record_clear(ti->desc, &sample);
    }
}

/* decode_fuzz - decode buf as every type; the result is 0 or -1, the same both times, and an
 * accepted record re-encodes and decodes to an equal record. Returns how many accepted. */
static int decode_fuzz(const char *buf, size_t len)
{
    int accepted = 0;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t a, b;
        char err[512];
        int rc1 = decode_copy(ti, buf, len, &a, err, sizeof(err));
        int rc2 = decode_copy(ti, buf, len, &b, err, sizeof(err));
        assert_int_equal(rc1, rc2);
        if (rc1 == 0) {
            ti->cmp(&a, &b);
            msgpack_sbuffer enc;
            msgpack_sbuffer_init(&enc);
            encode_ok(ti, &a, &enc); /* whatever decodes is within the limits encode checks */
            anyrec_t c;
            if (decode_copy(ti, enc.data, enc.size, &c, err, sizeof(err)) != 0)
                fail_msg("%s: re-encoded record rejected: %s", ti->name, err);
            ti->cmp(&a, &c);
            record_clear(ti->desc, &c);
            msgpack_sbuffer_destroy(&enc);
            record_clear(ti->desc, &a);
            record_clear(ti->desc, &b);
            accepted++;
        }
    }
    return accepted;
}

static void test_random_garbage(void **state)
{
    (void)state;
    uint32_t seed = 0xC1A3BAC4u;
    char buf[256];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = rng_next(&seed) % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)rng_next(&seed);
        /* half of them start like a map, to get past the first byte more often */
        if (len && iter % 2)
            buf[0] = (char)(0x80 | (rng_next(&seed) % 16));
        decode_fuzz(buf, len);
    }
}

/* Valid encodings with a few bytes changed, dropped or inserted. */
static void test_mutated_encodings(void **state)
{
    (void)state;
    uint32_t seed = 0x5EEDF00Du;
    int accepted = 0;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(ti, &sample, &b);
        char *buf = malloc(b.size + 8);
        assert_non_null(buf);
        for (int iter = 0; iter < 2000; iter++) {
            memcpy(buf, b.data, b.size);
            size_t len = b.size;
            int edits = 1 + (int)(rng_next(&seed) % 3);
            for (int e = 0; e < edits; e++) {
                size_t pos = rng_next(&seed) % len;
                switch (rng_next(&seed) % 4) {
                case 0: /* flip a bit */
                    buf[pos] ^= (char)(1u << (rng_next(&seed) % 8));
                    break;
                case 1: /* any byte */
                    buf[pos] = (char)rng_next(&seed);
                    break;
                case 2: /* drop a byte */
                    if (len > 1) {
                        memmove(buf + pos, buf + pos + 1, len - pos - 1);
                        len--;
                    }
                    break;
                case 3: /* insert a byte */
                    if (len < b.size + 8) {
                        memmove(buf + pos + 1, buf + pos, len - pos);
                        buf[pos] = (char)rng_next(&seed);
                        len++;
                    }
                    break;
                }
            }
            accepted += decode_fuzz(buf, len);
        }
        free(buf);
        msgpack_sbuffer_destroy(&b);
        record_clear(ti->desc, &sample);
    }
    /* many mutations only change a string's content: the accepting path is exercised */
    assert_true(accepted > 100);
}

/* A 5-byte header claiming 4 billion elements is refused by the allocation-free pre-check
 * (the reason says so) and quickly, at the top level and inside a record. */
static void test_hostile_headers(void **state)
{
    (void)state;
    static const char *const heads[] = {"\xdd\xff\xff\xff\xff", "\xdf\xff\xff\xff\xff", "\xdb\xff\xff\xff\xff"};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int rep = 0; rep < 2000; rep++)
        for (size_t t = 0; t < NTYPES; t++)
            for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
                expect_reject_bytes(&TYPES[t], heads[i], 5, "malformed msgpack (", "hostile header");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs < 5.0); /* 30000 rejections; an attempted 96 GB allocation each would not be */

    /* inside a valid record: recipients claims 0xFFFFFFFF elements */
    record_delivery_t d = {0};
    fill_delivery(&d);
    hand_t h = {.ov_key = "recipients", .ov = {.k = V_RAW, .s = "\xdd\xff\xff\xff\xff", .len = 5}};
    expect_reject(TI(delivery), &d, &h, "count exceeds the data", "recipients array32 0xFFFFFFFF");
    hand_t hm = {.ov_key = "attachments", .ov = {.k = V_RAW, .s = "\xdf\xff\xff\xff\xff", .len = 5}};
    expect_reject(TI(delivery), &d, &hm, "count exceeds the data", "attachments map32 0xFFFFFFFF");
    hand_t hs = {.ov_key = "subject", .ov = {.k = V_RAW, .s = "\xdb\xff\xff\xff\xff", .len = 5}};
    expect_reject(TI(delivery), &d, &hs, "length exceeds the data", "subject str32 0xFFFFFFFF");
    /* deeper than the decoder's nesting limit */
    char deep[40];
    memset(deep, 0x91, 30);
    deep[30] = 0x01;
    hand_t hn = {.ov_key = "urls", .ov = {.k = V_RAW, .s = deep, .len = 31}};
    expect_reject(TI(delivery), &d, &hn, "nested too deeply", "urls nested 30 deep");
    record_clear(&RECORD_DESC_delivery, &d);

    /* the same inside an event: lines claims 0xFFFFFFFF lines, or one line of 0xFFFFFFFF pairs */
    record_event_t ev = {0};
    fill_event(&ev);
    hand_t hl = {.ov_key = "lines", .ov = {.k = V_RAW, .s = "\xdd\xff\xff\xff\xff", .len = 5}};
    expect_reject(TI(event), &ev, &hl, "count exceeds the data", "lines array32 0xFFFFFFFF");
    hand_t hlm = {.ov_key = "lines", .ov = {.k = V_RAW, .s = "\x91\xdf\xff\xff\xff\xff", .len = 6}};
    expect_reject(TI(event), &ev, &hlm, "count exceeds the data", "a line map32 0xFFFFFFFF");
    hand_t hls = {.ov_key = "line.message", .ov = {.k = V_RAW, .s = "\xdb\xff\xff\xff\xff", .len = 5}};
    expect_reject(TI(event), &ev, &hls, "length exceeds the data", "line.message str32 0xFFFFFFFF");
    record_clear(&RECORD_DESC_event, &ev);

    /* and inside an initiation: messages, one message, one message's matched */
    record_initiation_t in = {0};
    fill_initiation(&in);
    hand_t hi = {.ov_key = "messages", .ov = {.k = V_RAW, .s = "\xdd\xff\xff\xff\xff", .len = 5}};
    expect_reject(TI(initiation), &in, &hi, "count exceeds the data", "messages array32 0xFFFFFFFF");
    hand_t him = {.ov_key = "messages", .ov = {.k = V_RAW, .s = "\x91\xdf\xff\xff\xff\xff", .len = 6}};
    expect_reject(TI(initiation), &in, &him, "count exceeds the data", "a message map32 0xFFFFFFFF");
    hand_t his = {.ov_key = "initiated.matched", .ov = {.k = V_RAW, .s = "\xdb\xff\xff\xff\xff", .len = 5}};
    expect_reject(TI(initiation), &in, &his, "length exceeds the data", "initiated.matched str32 0xFFFFFFFF");
    record_clear(&RECORD_DESC_initiation, &in);
}

typedef struct {
    const char *value; /* NULL: missing */
    bool should_fail;
    const char *what;
} enc_case_t;

/* record_encode refuses what record_decode would refuse, and leaves the buffer untouched. A
 * sub-record's string is set in its first element. */
static void test_encode_refuses(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        scope_t scopes[MAX_SCOPES];
        size_t ns = type_scopes(ti, scopes);
        for (size_t s = 0; s < ns; s++) {
            const scope_t *sc = &scopes[s];
            for (size_t i = 0; i < sc->nfields; i++) {
                const finfo_t *f = &sc->fields[i];
                if (f->kind != K_STR)
                    continue;
                enc_case_t cases[4];
                size_t nc = 0;
                char *over = malloc(f->max + 2);
                assert_non_null(over);
                memset(over, 'a', f->max + 1);
                over[f->max + 1] = '\0';
                if (f->required)
                    cases[nc++] = (enc_case_t){NULL, true, "missing"};
                cases[nc++] = (enc_case_t){over, true, "over the maximum"};
                if (f->allowed)
                    cases[nc++] = (enc_case_t){"explode", true, "not allowed"};
                else
                    cases[nc++] = (enc_case_t){over + 1, false, "at the maximum"};
                for (size_t c = 0; c < nc; c++) {
                    anyrec_t rec;
                    memset(&rec, 0, sizeof(rec));
                    ti->fill(&rec);
                    char **slot = scope_ptr(ti, sc, &rec, 0, f->name);
                    free(*slot);
                    *slot = cases[c].value ? sdup(cases[c].value) : NULL;
                    msgpack_sbuffer b;
                    msgpack_sbuffer_init(&b);
                    msgpack_sbuffer_write(&b, "XY", 2);
                    char err[512] = "";
                    int rc = record_encode(ti->desc, &rec, &b, err, sizeof(err));
                    char sub[128];
                    snprintf(sub, sizeof(sub), "%s.%s", sc->owner, f->name);
                    if (cases[c].should_fail) {
                        if (rc != -1)
                            fail_msg("%s %s: encoded", sub, cases[c].what);
                        assert_int_equal(b.size, 2);
                        if (!strstr(err, sub))
                            fail_msg("%s %s: error '%s'", sub, cases[c].what, err);
                    } else if (rc != 0) {
                        fail_msg("%s %s: refused: %s", sub, cases[c].what, err);
                    }
                    msgpack_sbuffer_destroy(&b);
                    record_clear(ti->desc, &rec);
                }
                free(over);
            }
        }
    }

    /* arrays */
    record_delivery_t d = {0};
    fill_delivery(&d);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    char err[512];
    char *long_elem = malloc(8194);
    assert_non_null(long_elem);
    memset(long_elem, 'u', 8193);
    long_elem[8193] = '\0';
    record_strv_push(&d.urls, long_elem);
    assert_int_equal(record_encode(&RECORD_DESC_delivery, &d, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "delivery.urls"));
    assert_int_equal(b.size, 0);
    free(d.urls.v[--d.urls.n]);
    long_elem[8192] = '\0';
    record_strv_push(&d.urls, long_elem); /* exactly 8192 is fine */
    assert_int_equal(record_encode(&RECORD_DESC_delivery, &d, &b, err, sizeof(err)), 0);
    free(long_elem);
    b.size = 0;
    while (d.recipients.n < 10001)
        record_strv_push(&d.recipients, "r@example.com");
    assert_int_equal(record_encode(&RECORD_DESC_delivery, &d, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "delivery.recipients"));
    assert_int_equal(b.size, 0);
    free(d.recipients.v[--d.recipients.n]);
    assert_int_equal(record_encode(&RECORD_DESC_delivery, &d, &b, err, sizeof(err)), 0); /* 10000 */
    b.size = 0;
    /* an attachment without its required sha256 */
    free(d.attachments.v[1].sha256);
    d.attachments.v[1].sha256 = NULL;
    assert_int_equal(record_encode(&RECORD_DESC_delivery, &d, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "attachment.sha256"));
    assert_int_equal(b.size, 0);
    d.attachments.v[1].sha256 = sdup("00");
    /* too many attachments */
    d.attachments.v = realloc(d.attachments.v, 1001 * sizeof(*d.attachments.v));
    assert_non_null(d.attachments.v);
    for (size_t i = d.attachments.n; i < 1001; i++) {
        memset(&d.attachments.v[i], 0, sizeof(d.attachments.v[i]));
        d.attachments.v[i].sha256 = sdup("11");
    }
    d.attachments.n = 1001;
    assert_int_equal(record_encode(&RECORD_DESC_delivery, &d, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "delivery.attachments"));
    assert_int_equal(b.size, 0);
    record_clear(&RECORD_DESC_delivery, &d);

    /* lines: a line without its required message or log, then the element-count limit */
    record_event_t ev = {0};
    fill_event(&ev);
    free(ev.lines.v[1].message);
    ev.lines.v[1].message = NULL;
    assert_int_equal(record_encode(&RECORD_DESC_event, &ev, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line.message: required field missing"));
    assert_int_equal(b.size, 0);
    ev.lines.v[1].message = sdup("back");
    free(ev.lines.v[0].log);
    ev.lines.v[0].log = NULL;
    assert_int_equal(record_encode(&RECORD_DESC_event, &ev, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line.log: required field missing"));
    assert_int_equal(b.size, 0);
    ev.lines.v[0].log = sdup("ecs");
    while (ev.lines.n < 1001)
        record_linev_push(&ev.lines, "tracking", (int64_t)ev.lines.n, "m");
    assert_int_equal(record_encode(&RECORD_DESC_event, &ev, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "event.lines: 1001 elements, more than 1000"));
    assert_int_equal(b.size, 0);
    record_clear(&RECORD_DESC_line, &ev.lines.v[--ev.lines.n]);
    assert_int_equal(record_encode(&RECORD_DESC_event, &ev, &b, err, sizeof(err)), 0); /* 1000 */
    record_event_t back;
    assert_int_equal(record_decode(&RECORD_DESC_event, b.data, b.size, &back, err, sizeof(err)), 0);
    assert_int_equal(back.lines.n, 1000);
    cmp_event(&ev, &back);
    record_clear(&RECORD_DESC_event, &back);
    record_clear(&RECORD_DESC_event, &ev);

    /* messages: a later message without its matched or action, or with a value another field
     * allows, then the element-count limit */
    b.size = 0;
    record_initiation_t in = {0};
    fill_initiation(&in);
    static const struct {
        size_t elem;
        const char *field; /* "matched" or "action" */
        const char *value; /* NULL: missing */
        const char *errsub;
    } bad[] = {
        {2, "matched", NULL, "initiated.matched: required field missing"},
        {1, "action", NULL, "initiated.action: required field missing"},
        {2, "action", NULL, "initiated.action: required field missing"},
        {1, "matched", "domain", "initiated.matched: 'domain' is not one of"},
        {2, "action", "url", "initiated.action: 'url' is not one of"},
        {2, "action", "none", "initiated.action: 'none' is not one of"},
        {1, "matched", "email_id_subject_", "initiated.matched: 17 bytes, more than 16"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        record_initiated_t *m = &in.messages.v[bad[i].elem];
        char **slot = strcmp(bad[i].field, "matched") == 0 ? &m->matched : &m->action;
        char *keep = *slot;
        char *value = bad[i].value ? sdup(bad[i].value) : NULL;
        *slot = value;
        msgpack_sbuffer_write(&b, "XY", 2);
        assert_int_equal(record_encode(&RECORD_DESC_initiation, &in, &b, err, sizeof(err)), -1);
        if (!strstr(err, bad[i].errsub))
            fail_msg("message %zu %s: error '%s', expected '%s'", bad[i].elem, bad[i].field, err, bad[i].errsub);
        assert_int_equal(b.size, 2); /* nothing appended */
        b.size = 0;
        free(value);
        *slot = keep;
    }
    /* an email id over 64 bytes in the one message that has it */
    char *keep_eid = in.messages.v[1].email_id;
    in.messages.v[1].email_id = calloc(66, 1);
    assert_non_null(in.messages.v[1].email_id);
    memset(in.messages.v[1].email_id, 'e', 65);
    assert_int_equal(record_encode(&RECORD_DESC_initiation, &in, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "initiated.email_id: 65 bytes, more than 64"));
    assert_int_equal(b.size, 0);
    in.messages.v[1].email_id[64] = '\0'; /* exactly 64 is fine */
    assert_int_equal(record_encode(&RECORD_DESC_initiation, &in, &b, err, sizeof(err)), 0);
    b.size = 0;
    free(in.messages.v[1].email_id);
    in.messages.v[1].email_id = keep_eid;
    /* 1001 messages are refused, 1000 are written and read back */
    while (in.messages.n < 1001)
        initv_push(&in.messages, (int64_t)in.messages.n * 1000, in.messages.n % 2 ? "subject" : "url", NULL,
                   in.messages.n % 3 ? "forward" : "delete");
    assert_int_equal(record_encode(&RECORD_DESC_initiation, &in, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "initiation.messages: 1001 elements, more than 1000"));
    assert_int_equal(b.size, 0);
    record_clear(&RECORD_DESC_initiated, &in.messages.v[--in.messages.n]);
    assert_int_equal(record_encode(&RECORD_DESC_initiation, &in, &b, err, sizeof(err)), 0); /* 1000 */
    record_initiation_t inback;
    assert_int_equal(record_decode(&RECORD_DESC_initiation, b.data, b.size, &inback, err, sizeof(err)), 0);
    assert_int_equal(inback.messages.n, 1000);
    assert_true(inback.messages.v[999].mid == 999000);
    assert_string_equal(inback.messages.v[999].matched, "subject");
    assert_string_equal(inback.messages.v[999].action, "delete");
    assert_string_equal(inback.messages.v[1].email_id, "AAMkAGI2TG93DDD=");
    cmp_initiation(&in, &inback);
    record_clear(&RECORD_DESC_initiation, &inback);
    record_clear(&RECORD_DESC_initiation, &in);
    msgpack_sbuffer_destroy(&b);
}

static void test_peek_type(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(ti, &sample, &b);
        char out[32];
        memset(out, 'Z', sizeof(out));
        assert_int_equal(record_peek_type(b.data, b.size, out, sizeof(out)), 0);
        assert_string_equal(out, ti->name);
        /* the name and its NUL must fit */
        size_t n = strlen(ti->name);
        assert_int_equal(record_peek_type(b.data, b.size, out, n), -1);
        assert_int_equal(record_peek_type(b.data, b.size, out, n + 1), 0);
        assert_string_equal(out, ti->name);
        /* type not first */
        hand_t h = {.header_last = true};
        msgpack_sbuffer b2;
        msgpack_sbuffer_init(&b2);
        hand_build(ti, &sample, &h, &b2);
        assert_int_equal(record_peek_type(b2.data, b2.size, out, sizeof(out)), 0);
        assert_string_equal(out, ti->name);
        /* truncated */
        assert_int_equal(record_peek_type(b.data, b.size - 1, out, sizeof(out)), -1);
        msgpack_sbuffer_destroy(&b2);
        msgpack_sbuffer_destroy(&b);
        record_clear(ti->desc, &sample);
    }
    char out[32];
    assert_int_equal(record_peek_type("\x81\xa1v\x01", 4, out, sizeof(out)), -1);          /* no type */
    assert_int_equal(record_peek_type("\x81\xa4type\x01", 7, out, sizeof(out)), -1);       /* not a string */
    assert_int_equal(record_peek_type("\x92\xa4type\xa3job", 10, out, sizeof(out)), -1);   /* array */
    assert_int_equal(record_peek_type("\xdd\xff\xff\xff\xff", 5, out, sizeof(out)), -1);   /* hostile */
    assert_int_equal(record_peek_type("", 0, out, sizeof(out)), -1);
    assert_int_equal(record_peek_type("\x81\xa4type\xa3job", 10, out, sizeof(out)), 0); /* only a type */
    assert_string_equal(out, "job");
}

static bool is_uuid_v4(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!strchr("0123456789abcdef", s[i])) {
            return false;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void test_init(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t rec;
        memset(&rec, 0, sizeof(rec));
        int64_t before = now_ms();
        record_init(ti->desc, &rec);
        int64_t after = now_ms();
        char **id = ti->field_ptr(&rec, "id");
        int64_t *time_ms = ti->field_ptr(&rec, "time_ms");
        assert_non_null(*id);
        assert_int_equal(strlen(*id), 36);
        assert_true(is_uuid_v4(*id));
        assert_true(*time_ms >= before - 1000 && *time_ms <= after + 1000);
        /* a second init replaces the id (the old one is freed: ASan would see a leak) */
        char first[37];
        memcpy(first, *id, 37);
        record_init(ti->desc, &rec);
        assert_true(is_uuid_v4(*id));
        assert_string_not_equal(*id, first);
        /* only the header is touched */
        for (size_t i = 0; i < ti->nfields; i++)
            if (strcmp(ti->fields[i].name, "id") != 0 && strcmp(ti->fields[i].name, "time_ms") != 0)
                assert_true(field_is_empty(&ti->fields[i], ti->field_ptr(&rec, ti->fields[i].name)));
        record_clear(ti->desc, &rec);
    }
    /* ids are unique */
    char seen[200][37];
    for (int i = 0; i < 200; i++) {
        record_event_t ev = {0};
        record_init(&RECORD_DESC_event, &ev);
        memcpy(seen[i], ev.id, 37);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
        record_clear(&RECORD_DESC_event, &ev);
    }
}

static void test_strv_push_and_clear(void **state)
{
    (void)state;
    record_delivery_t d = {0};
    char word[8] = "abc";
    record_strv_push(&d.recipients, word);
    word[0] = 'X'; /* push copied it */
    record_strv_push(&d.recipients, "");
    assert_int_equal(d.recipients.n, 2);
    assert_string_equal(d.recipients.v[0], "abc");
    assert_string_equal(d.recipients.v[1], "");
    record_clear(&RECORD_DESC_delivery, &d);
    assert_true(all_zero(&d, sizeof(d)));
    /* clearing an all-zero record is harmless */
    record_clear(&RECORD_DESC_delivery, &d);
    assert_true(all_zero(&d, sizeof(d)));
}

/* A failure in the second attachment, after the first decoded and the second is half done,
 * frees everything (ASan's leak check sees it) and leaves the record zeroed. */
static void test_attachment_failure_frees(void **state)
{
    (void)state;
    record_delivery_t d = {0};
    fill_delivery(&d);
    /* second attachment: name set, then a bad size */
    d.attachments.v[1].name = sdup("second.txt");
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    hand_t h = {0};
    hand_build(TI(delivery), &d, &h, &b);
    /* patch: replace the second attachment's sha256 key name so it is missing */
    char *p = memmem(b.data, b.size, SHA_B, 64);
    assert_non_null(p);
    /* p - 2 is the str8 header of the value, p - 9 the fixstr "sha256" key */
    assert_memory_equal(p - 9, "\xa6sha256\xd9\x40", 9);
    memcpy(p - 8, "sha257", 6);
    expect_reject_bytes(TI(delivery), b.data, b.size, "attachment.sha256", "second attachment lacks sha256");
    msgpack_sbuffer_destroy(&b);
    record_clear(&RECORD_DESC_delivery, &d);
}

/* The same for lines: the second line's log and mid decode, then its message is missing, or
 * has a NUL; everything is freed and the record left zeroed. */
static void test_line_failure_frees(void **state)
{
    (void)state;
    record_event_t ev = {0};
    fill_event(&ev);
    free(ev.lines.v[1].message);
    ev.lines.v[1].message = sdup("second-line");
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    hand_t h = {0};
    hand_build(TI(event), &ev, &h, &b);
    /* p - 1 is the fixstr header of the value, p - 9 the fixstr "message" key */
    char *p = memmem(b.data, b.size, "second-line", 11);
    assert_non_null(p);
    assert_memory_equal(p - 9, "\xa7message\xab", 9);
    memcpy(p - 8, "messagf", 7);
    expect_reject_bytes(TI(event), b.data, b.size, "line.message: required field missing",
                        "second line lacks message");
    memcpy(p - 8, "message", 7);
    p[6] = '\0'; /* "second\0line" */
    expect_reject_bytes(TI(event), b.data, b.size, "line.message: contains a NUL", "second line has a NUL");
    p[6] = '-';
    anyrec_t back;
    char err[256];
    assert_int_equal(decode_copy(TI(event), b.data, b.size, &back, err, sizeof(err)), 0); /* restored */
    cmp_event(&ev, &back);
    record_clear(&RECORD_DESC_event, &back);
    msgpack_sbuffer_destroy(&b);
    record_clear(&RECORD_DESC_event, &ev);
}

/* encoded_version - the "v" of an encoded record, or -1 when it is missing, repeated or not a
 * positive integer. */
static int64_t encoded_version(const char *buf, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int64_t v = -1;
    int seen = 0;
    if (msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key, *val = &m->ptr[i].val;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 1 && k->via.str.ptr[0] == 'v') {
                seen++;
                v = val->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)val->via.u64 : -1;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return seen == 1 ? v : -1;
}

/* has_key - whether the encoded record's top-level map has key. */
static bool has_key(const char *buf, size_t len, const char *key)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    bool found = false;
    if (msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
                memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
                found = true;
        }
    }
    msgpack_unpacked_destroy(&u);
    return found;
}

/* Each type's encoding carries the version RECORD_TYPES states, whatever version it was
 * decoded from; an event's is 2. */
static void test_encoded_version(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t rec, back;
        memset(&rec, 0, sizeof(rec));
        ti->fill(&rec);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        encode_ok(ti, &rec, &b);
        if (encoded_version(b.data, b.size) != ti->version)
            fail_msg("%s: encoded v %lld, RECORD_TYPES says %d", ti->name,
                     (long long)encoded_version(b.data, b.size), ti->version);
        /* read from a version-1 encoding, it is written back at the current version */
        hand_t h1 = {.v = {.k = V_INT, .i = 1}};
        expect_accept(ti, &rec, &h1, &back, "v = 1");
        msgpack_sbuffer b2;
        msgpack_sbuffer_init(&b2);
        encode_ok(ti, &back, &b2);
        assert_int_equal(encoded_version(b2.data, b2.size), ti->version);
        assert_int_equal(b2.size, b.size);
        assert_memory_equal(b2.data, b.data, b.size);
        record_clear(ti->desc, &back);
        msgpack_sbuffer_destroy(&b2);
        msgpack_sbuffer_destroy(&b);
        record_clear(ti->desc, &rec);
    }

    /* the event, spelled out: "v" is 2, with or without lines */
    record_event_t ev = {0};
    fill_event(&ev);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    encode_ok(TI(event), &ev, &b);
    assert_int_equal(encoded_version(b.data, b.size), 2);
    assert_true(has_key(b.data, b.size, "lines"));
    record_clear(&RECORD_DESC_line, &ev.lines.v[0]);
    record_clear(&RECORD_DESC_line, &ev.lines.v[1]);
    free(ev.lines.v);
    memset(&ev.lines, 0, sizeof(ev.lines));
    b.size = 0;
    encode_ok(TI(event), &ev, &b);
    assert_int_equal(encoded_version(b.data, b.size), 2);
    assert_false(has_key(b.data, b.size, "lines")); /* an empty optional array is omitted */
    msgpack_sbuffer_destroy(&b);
    record_clear(&RECORD_DESC_event, &ev);

    /* the initiation: "v" is 1; messages is required, so even an empty one is written, and
     * held is written when false */
    record_initiation_t in = {0};
    fill_initiation(&in);
    msgpack_sbuffer_init(&b);
    encode_ok(TI(initiation), &in, &b);
    assert_int_equal(encoded_version(b.data, b.size), 1);
    assert_true(has_key(b.data, b.size, "messages"));
    assert_true(has_key(b.data, b.size, "held"));
    record_clear(&RECORD_DESC_initiation, &in);
    fill_initiation(&in);
    for (size_t i = 0; i < in.messages.n; i++)
        record_clear(&RECORD_DESC_initiated, &in.messages.v[i]);
    free(in.messages.v);
    memset(&in.messages, 0, sizeof(in.messages));
    in.held = false;
    b.size = 0;
    encode_ok(TI(initiation), &in, &b);
    assert_int_equal(encoded_version(b.data, b.size), 1);
    assert_true(has_key(b.data, b.size, "messages"));
    assert_non_null(memmem(b.data, b.size, "\xa8messages\x90", 10)); /* an empty array */
    assert_true(has_key(b.data, b.size, "held"));
    record_initiation_t back;
    char err[256];
    assert_int_equal(record_decode(&RECORD_DESC_initiation, b.data, b.size, &back, err, sizeof(err)), 0);
    assert_int_equal(back.messages.n, 0);
    assert_false(back.held);
    cmp_initiation(&in, &back);
    record_clear(&RECORD_DESC_initiation, &back);
    msgpack_sbuffer_destroy(&b);
    record_clear(&RECORD_DESC_initiation, &in);
}

/* A version-1 event, as a v1 writer sent it (no "lines" key, "v": 1), still decodes: the
 * versioning rule of record.h. Its lines come back empty and it is re-encoded as v2 without
 * a "lines" key. */
static void test_event_version_1(void **state)
{
    (void)state;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    static const char *const strs[][2] = {
        {"id", "a8098c1a-f86e-11da-bd1a-00112444be1e"},
        {"program", "clawback-poller"},
        {"log", "url_rep_client"},
        {"level", "info"},
        {"batch", "b-1"},
        {"message", "feed urlrep: 12 verdicts"},
    };
    msgpack_pack_map(&pk, 4 + sizeof(strs) / sizeof(strs[0])); /* type, v, strs, time_ms, mid */
    msgpack_pack_str_with_body(&pk, "type", 4);
    msgpack_pack_str_with_body(&pk, "event", 5);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_int(&pk, 1);
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        msgpack_pack_str_with_body(&pk, strs[i][0], strlen(strs[i][0]));
        msgpack_pack_str_with_body(&pk, strs[i][1], strlen(strs[i][1]));
    }
    msgpack_pack_str_with_body(&pk, "time_ms", 7);
    msgpack_pack_int64(&pk, 1648585224000);
    msgpack_pack_str_with_body(&pk, "mid", 3);
    msgpack_pack_int64(&pk, 99);

    anyrec_t back;
    char err[256];
    if (decode_copy(TI(event), b.data, b.size, &back, err, sizeof(err)) != 0)
        fail_msg("v1 event rejected: %s", err);
    const record_event_t *ev = &back.event;
    assert_string_equal(ev->id, "a8098c1a-f86e-11da-bd1a-00112444be1e");
    assert_true(ev->time_ms == 1648585224000);
    assert_string_equal(ev->program, "clawback-poller");
    assert_string_equal(ev->log, "url_rep_client");
    assert_string_equal(ev->level, "info");
    assert_true(ev->mid == 99);
    assert_string_equal(ev->batch, "b-1");
    assert_string_equal(ev->message, "feed urlrep: 12 verdicts");
    assert_int_equal(ev->lines.n, 0);
    assert_null(ev->lines.v);

    msgpack_sbuffer b2;
    msgpack_sbuffer_init(&b2);
    encode_ok(TI(event), ev, &b2);
    assert_int_equal(encoded_version(b2.data, b2.size), 2);
    assert_false(has_key(b2.data, b2.size, "lines"));
    anyrec_t again;
    if (decode_copy(TI(event), b2.data, b2.size, &again, err, sizeof(err)) != 0)
        fail_msg("re-encoded v1 event rejected: %s", err);
    cmp_event(&back, &again);
    record_clear(&RECORD_DESC_event, &again);
    record_clear(&RECORD_DESC_event, &back);
    msgpack_sbuffer_destroy(&b2);

    /* a v1 event with an unknown key, and one with "v": 1 that does carry lines (a field is
     * never given another meaning, so the decoder does not look at the version) */
    record_event_t full = {0};
    fill_event(&full);
    hand_t h = {.v = {.k = V_INT, .i = 1}, .skip = "lines", .extra = true};
    expect_accept(TI(event), &full, &h, &back, "v1 event with unknown keys");
    assert_int_equal(back.event.lines.n, 0);
    record_clear(&RECORD_DESC_event, &back);
    hand_t hl = {.v = {.k = V_INT, .i = 1}};
    expect_accept(TI(event), &full, &hl, &back, "v1 event with lines");
    cmp_event(&full, &back);
    record_clear(&RECORD_DESC_event, &back);
    record_clear(&RECORD_DESC_event, &full);
    msgpack_sbuffer_destroy(&b);
}

static void test_linev_push_and_clear(void **state)
{
    (void)state;
    record_event_t ev = {0};
    char log[16] = "ecs", msg[16] = "hello";
    record_linev_push(&ev.lines, log, 0, msg);
    log[0] = 'X'; /* push copied them */
    msg[0] = 'X';
    record_linev_push(&ev.lines, "tracking", INT64_MIN, "");
    assert_int_equal(ev.lines.n, 2);
    assert_string_equal(ev.lines.v[0].log, "ecs");
    assert_true(ev.lines.v[0].mid == 0);
    assert_string_equal(ev.lines.v[0].message, "hello");
    assert_string_equal(ev.lines.v[1].log, "tracking");
    assert_true(ev.lines.v[1].mid == INT64_MIN);
    assert_string_equal(ev.lines.v[1].message, "");
    for (int i = 0; i < 100; i++) /* growth keeps the earlier lines */
        record_linev_push(&ev.lines, "mail_logs", i, "m");
    assert_int_equal(ev.lines.n, 102);
    assert_string_equal(ev.lines.v[0].message, "hello");
    assert_true(ev.lines.v[101].mid == 99);
    record_clear(&RECORD_DESC_event, &ev);
    assert_true(all_zero(&ev, sizeof(ev)));
    record_clear(&RECORD_DESC_event, &ev);
    assert_true(all_zero(&ev, sizeof(ev)));
    /* a line on its own */
    record_line_t line = {.log = sdup("remediation"), .mid = 5, .message = sdup("x")};
    record_clear(&RECORD_DESC_line, &line);
    assert_true(all_zero(&line, sizeof(line)));
}

/* find_once - the one occurrence of pat in buf; fails the test unless there is exactly one. */
static char *find_once(char *buf, size_t len, const char *pat, size_t plen)
{
    char *found = NULL;
    size_t count = 0;
    for (size_t off = 0; off + plen <= len; off++) {
        if (memcmp(buf + off, pat, plen) == 0) {
            found = buf + off;
            count++;
        }
    }
    if (count != 1)
        fail_msg("pattern of %zu bytes found %zu times, expected once", plen, count);
    return found;
}

/* An initiation written field by field by another writer: the keys in another order than
 * record_encode's, the messages' keys shuffled and an unknown key among them. It decodes to
 * the values written (held absent, false or true), and re-encoded it decodes to the same
 * record. */
static void test_initiation_hand_built(void **state)
{
    (void)state;
    static const char *const strs[][2] = {
        {"observable", "evil.example"},   {"disposition", "suspicious"},
        {"program", "clawback"},          {"batch", "b-42"},
        {"initiator", "admin@example.com"}, {"source", "cli"},
        {"feed", "manual"},               {"observable_type", "domain"},
        {"id", "7d444840-9dc0-11d1-b245-5ffdce74fad2"},
    };
    const size_t nstrs = sizeof(strs) / sizeof(strs[0]);
    for (int held = -1; held <= 1; held++) { /* -1: no "held" key */
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, (uint32_t)(4 + nstrs + (held >= 0))); /* messages, v, type, time_ms */
        msgpack_pack_str_with_body(&pk, "messages", 8);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "action", 6);
        msgpack_pack_str_with_body(&pk, "forward_delete", 14);
        msgpack_pack_str_with_body(&pk, "mid", 3);
        msgpack_pack_int64(&pk, 1);
        msgpack_pack_str_with_body(&pk, "matched", 7);
        msgpack_pack_str_with_body(&pk, "subject", 7);
        msgpack_pack_map(&pk, 5);
        msgpack_pack_str_with_body(&pk, "email_id", 8);
        msgpack_pack_str_with_body(&pk, "E-1", 3);
        msgpack_pack_str_with_body(&pk, "matched", 7);
        msgpack_pack_str_with_body(&pk, "email_id", 8);
        msgpack_pack_str_with_body(&pk, "future", 6); /* a later version's key */
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_nil(&pk);
        msgpack_pack_str_with_body(&pk, "mid", 3);
        msgpack_pack_int64(&pk, INT64_MAX);
        msgpack_pack_str_with_body(&pk, "action", 6);
        msgpack_pack_str_with_body(&pk, "delete", 6);
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "matched", 7);
        msgpack_pack_str_with_body(&pk, "url", 3);
        msgpack_pack_str_with_body(&pk, "action", 6);
        msgpack_pack_str_with_body(&pk, "forward", 7);
        msgpack_pack_str_with_body(&pk, "mid", 3);
        msgpack_pack_int64(&pk, -1);
        msgpack_pack_str_with_body(&pk, "v", 1);
        msgpack_pack_int(&pk, 1);
        for (size_t i = 0; i < nstrs; i++) {
            msgpack_pack_str_with_body(&pk, strs[i][0], strlen(strs[i][0]));
            msgpack_pack_str_with_body(&pk, strs[i][1], strlen(strs[i][1]));
        }
        if (held >= 0) {
            msgpack_pack_str_with_body(&pk, "held", 4);
            if (held)
                msgpack_pack_true(&pk);
            else
                msgpack_pack_false(&pk);
        }
        msgpack_pack_str_with_body(&pk, "type", 4);
        msgpack_pack_str_with_body(&pk, "initiation", 10);
        msgpack_pack_str_with_body(&pk, "time_ms", 7);
        msgpack_pack_int64(&pk, 1700000003000);

        anyrec_t back;
        char err[256];
        if (decode_copy(TI(initiation), b.data, b.size, &back, err, sizeof(err)) != 0)
            fail_msg("hand-built initiation (held %d) rejected: %s", held, err);
        const record_initiation_t *in = &back.initiation;
        assert_string_equal(in->id, "7d444840-9dc0-11d1-b245-5ffdce74fad2");
        assert_true(in->time_ms == 1700000003000);
        assert_string_equal(in->program, "clawback");
        assert_string_equal(in->batch, "b-42");
        assert_int_equal(in->held, held == 1);
        assert_string_equal(in->initiator, "admin@example.com");
        assert_string_equal(in->source, "cli");
        assert_string_equal(in->feed, "manual");
        assert_string_equal(in->observable_type, "domain");
        assert_string_equal(in->observable, "evil.example");
        assert_string_equal(in->disposition, "suspicious");
        assert_int_equal(in->messages.n, 3);
        const record_initiated_t *m = in->messages.v;
        assert_true(m[0].mid == 1);
        assert_string_equal(m[0].matched, "subject");
        assert_null(m[0].email_id);
        assert_string_equal(m[0].action, "forward_delete");
        assert_true(m[1].mid == INT64_MAX);
        assert_string_equal(m[1].matched, "email_id");
        assert_string_equal(m[1].email_id, "E-1");
        assert_string_equal(m[1].action, "delete");
        assert_true(m[2].mid == -1);
        assert_string_equal(m[2].matched, "url");
        assert_null(m[2].email_id);
        assert_string_equal(m[2].action, "forward");

        msgpack_sbuffer b2;
        msgpack_sbuffer_init(&b2);
        encode_ok(TI(initiation), in, &b2);
        assert_int_equal(encoded_version(b2.data, b2.size), 1);
        assert_false(has_key(b2.data, b2.size, "future"));
        find_once(b2.data, b2.size, held == 1 ? "\xa4held\xc3" : "\xa4held\xc2", 6);
        anyrec_t again;
        if (decode_copy(TI(initiation), b2.data, b2.size, &again, err, sizeof(err)) != 0)
            fail_msg("re-encoded initiation rejected: %s", err);
        cmp_initiation(&back, &again);
        record_clear(&RECORD_DESC_initiation, &again);
        record_clear(&RECORD_DESC_initiation, &back);
        msgpack_sbuffer_destroy(&b2);
        msgpack_sbuffer_destroy(&b);
    }
}

/* Every pairing of a match and an action, one message each (an email id only where the
 * message matched by it), survives both writers, in order. */
static void test_initiation_matched_and_actions(void **state)
{
    (void)state;
    static const char *const matched[] = {"url", "email_id", "subject"};
    static const char *const actions[] = {"delete", "forward", "forward_delete"};
    record_initiation_t in = {0};
    fill_initiation(&in);
    in.held = false;
    record_clear(&RECORD_DESC_initiated, &in.messages.v[0]);
    record_clear(&RECORD_DESC_initiated, &in.messages.v[1]);
    record_clear(&RECORD_DESC_initiated, &in.messages.v[2]);
    in.messages.n = 0;
    for (size_t i = 0; i < 3; i++)
        for (size_t a = 0; a < 3; a++) {
            char eid[32];
            snprintf(eid, sizeof(eid), "AAMk%zu%zu=", i, a);
            initv_push(&in.messages, (int64_t)(i * 3 + a) * 1000003, matched[i], i == 1 ? eid : NULL, actions[a]);
        }
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    encode_ok(TI(initiation), &in, &b);
    anyrec_t back;
    char err[256];
    if (decode_copy(TI(initiation), b.data, b.size, &back, err, sizeof(err)) != 0)
        fail_msg("nine messages: %s", err);
    cmp_initiation(&in, &back);
    assert_int_equal(back.initiation.messages.n, 9);
    for (size_t k = 0; k < 9; k++) {
        const record_initiated_t *m = &back.initiation.messages.v[k];
        assert_true(m->mid == (int64_t)k * 1000003);
        assert_string_equal(m->matched, matched[k / 3]);
        assert_string_equal(m->action, actions[k % 3]);
        if (k / 3 == 1)
            assert_non_null(m->email_id);
        else
            assert_null(m->email_id);
    }
    record_clear(&RECORD_DESC_initiation, &back);
    hand_t h = {.extra = true};
    expect_accept(TI(initiation), &in, &h, &back, "nine messages, hand-built with unknown keys");
    cmp_initiation(&in, &back);
    record_clear(&RECORD_DESC_initiation, &back);
    msgpack_sbuffer_destroy(&b);
    record_clear(&RECORD_DESC_initiation, &in);
}

/* held, the one BOOL field: written as a msgpack boolean, false included (an optional BOOL is
 * not omitted); read back as written; absent it reads false; a value of any other msgpack type,
 * or the key twice, is refused naming initiation.held. */
static void test_initiation_held(void **state)
{
    (void)state;
    const type_info_t *ti = TI(initiation);
    record_initiation_t in = {0};
    fill_initiation(&in);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    anyrec_t back;
    char err[256];
    for (int held = 1; held >= 0; held--) {
        in.held = held;
        b.size = 0;
        encode_ok(ti, &in, &b);
        char *p = find_once(b.data, b.size, held ? "\xa4held\xc3" : "\xa4held\xc2", 6);
        assert_int_equal(decode_copy(ti, b.data, b.size, &back, err, sizeof(err)), 0);
        assert_int_equal(back.initiation.held, held);
        cmp_initiation(&in, &back);
        record_clear(ti->desc, &back);
        /* the value byte replaced by one of another msgpack type: int 0 and 1, nil, an empty
         * string, float's and bin's first bytes are not booleans either */
        static const unsigned char others[] = {0x00, 0x01, 0xc0, 0xa0, 0x90, 0x80, 0xff};
        for (size_t i = 0; i < sizeof(others); i++) {
            p[5] = (char)others[i];
            char what[64];
            snprintf(what, sizeof(what), "held as 0x%02x", others[i]);
            expect_reject_bytes(ti, b.data, b.size, "initiation.held: expected boolean", what);
        }
        p[5] = (char)(held ? 0xc3 : 0xc2);
        /* without the key: false */
        hand_t skip = {.skip = "held"};
        expect_accept(ti, &in, &skip, &back, "held absent");
        assert_false(back.initiation.held);
        record_clear(ti->desc, &back);
        /* twice, even with the same value */
        hand_t dup = {.dup = "held"};
        expect_reject(ti, &in, &dup, "initiation.held: key present twice", "held twice");
    }
    /* true over a record that says false */
    hand_t t = {.ov_key = "held", .ov = {.k = V_TRUE}};
    expect_accept(ti, &in, &t, &back, "held true");
    assert_true(back.initiation.held);
    record_clear(ti->desc, &back);
    /* absent among unknown keys, still false */
    hand_t extra = {.skip = "held", .extra = true};
    expect_accept(ti, &in, &extra, &back, "held absent, unknown keys");
    assert_false(back.initiation.held);
    record_clear(ti->desc, &back);
    /* the key's case matters: "Held": true is an unknown key, so held stays false */
    in.held = true;
    b.size = 0;
    encode_ok(ti, &in, &b);
    char *p = find_once(b.data, b.size, "\xa4held\xc3", 6);
    p[1] = 'H';
    assert_int_equal(decode_copy(ti, b.data, b.size, &back, err, sizeof(err)), 0);
    assert_false(back.initiation.held);
    record_clear(ti->desc, &back);
    msgpack_sbuffer_destroy(&b);
    record_clear(ti->desc, &in);
}

/* A required field missing in one message only, the others having it, is refused naming the
 * sub-record's field; the optional email_id missing from the one message that had it is not. */
static void test_initiated_missing_in_one(void **state)
{
    (void)state;
    const type_info_t *ti = TI(initiation);
    static const struct {
        size_t elem;
        const char *field;
    } drops[] = {{0, "matched"}, {1, "matched"}, {2, "matched"}, {0, "action"}, {1, "action"}, {2, "action"}};
    for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
        record_initiation_t in = {0};
        fill_initiation(&in);
        record_initiated_t *m = &in.messages.v[drops[i].elem];
        char **slot = strcmp(drops[i].field, "matched") == 0 ? &m->matched : &m->action;
        free(*slot);
        *slot = NULL; /* the hand builder leaves a NULL string out */
        char errsub[64], what[64];
        snprintf(errsub, sizeof(errsub), "initiated.%s: required field missing", drops[i].field);
        snprintf(what, sizeof(what), "message %zu without %s", drops[i].elem, drops[i].field);
        hand_t h = {0};
        expect_reject(ti, &in, &h, errsub, what);
        record_clear(ti->desc, &in);
    }

    /* mid (an INT, always written) is taken out of one message by renaming its key */
    record_initiation_t in = {0};
    fill_initiation(&in);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    hand_t h = {0};
    hand_build(ti, &in, &h, &b);
    static const char *const mids[] = {"\xa3mid\x2a", "\xa3mid\xf9"}; /* 42 (second), -7 (third) */
    for (size_t i = 0; i < 2; i++) {
        char *p = find_once(b.data, b.size, mids[i], 5);
        p[3] = 'e';
        expect_reject_bytes(ti, b.data, b.size, "initiated.mid: required field missing", "a message without mid");
        p[3] = 'd';
    }
    anyrec_t back;
    char err[256];
    assert_int_equal(decode_copy(ti, b.data, b.size, &back, err, sizeof(err)), 0); /* restored */
    cmp_initiation(&in, &back);
    record_clear(ti->desc, &back);
    msgpack_sbuffer_destroy(&b);

    /* the second message's email_id left out: accepted, no message has one */
    free(in.messages.v[1].email_id);
    in.messages.v[1].email_id = NULL;
    expect_accept(ti, &in, &h, &back, "no email_id");
    for (size_t e = 0; e < 3; e++)
        assert_null(back.initiation.messages.v[e].email_id);
    cmp_initiation(&in, &back);
    record_clear(ti->desc, &back);
    record_clear(ti->desc, &in);
}

/* A message failing after earlier messages decoded, and after some of its own fields did,
 * frees all of it (ASan's leak check sees any leak) and leaves the record zeroed; so does a
 * record failing after all its messages decoded. */
static void test_initiated_failure_frees(void **state)
{
    (void)state;
    const type_info_t *ti = TI(initiation);
    record_initiation_t in = {0};
    fill_initiation(&in);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    hand_t h = {0};
    hand_build(ti, &in, &h, &b);
    /* the second message is mid 42, matched, email_id, then action "forward" */
    char *act = find_once(b.data, b.size, "\xa6" "action\xa7" "forward", 15);
    char *eid = find_once(b.data, b.size, "AAMkAGI2TG93DDD=", 16);
    char *mid = find_once(b.data, b.size, "\xa3mid\x2a", 5);
    char *act3 = find_once(b.data, b.size, "\xae" "forward_delete", 15);
    char *url = find_once(b.data, b.size, "\xa3url\xa6", 5);
    assert_true(url < mid && mid < eid && eid < act && act < act3);
    struct {
        char *at;
        char to;
        const char *errsub;
        const char *what;
    } cases[] = {
        {act + 6, 'o', "initiated.action: required field missing", "second message: action key misspelt"},
        {act + 14, 'X', "initiated.action: 'forwarX' is not one of", "second message: action not allowed"},
        {eid + 4, '\0', "initiated.email_id: contains a NUL", "second message: email_id with a NUL"},
        {mid + 3, 'e', "initiated.mid: required field missing", "second message: no mid, the rest decoded"},
        {act3 + 14, 'f', "initiated.action: 'forward_deletf' is not one of", "third message: action not allowed"},
        {url + 3, 'k', "initiated.matched: 'urk' is not one of", "first message: matched not allowed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char keep = *cases[i].at;
        *cases[i].at = cases[i].to;
        expect_reject_bytes(ti, b.data, b.size, cases[i].errsub, cases[i].what);
        *cases[i].at = keep;
    }
    anyrec_t back;
    char err[256];
    assert_int_equal(decode_copy(ti, b.data, b.size, &back, err, sizeof(err)), 0); /* restored */
    cmp_initiation(&in, &back);
    record_clear(ti->desc, &back);
    msgpack_sbuffer_destroy(&b);

    /* the record fails after every message decoded: its header comes last and is wrong */
    hand_t late[] = {
        {.header_last = true, .type = "verdict"},
        {.header_last = true, .v = {.k = V_INT, .i = 0}},
        {.header_last = true, .omit_v = true},
        {.header_last = true, .int_key = true},
    };
    for (size_t i = 0; i < sizeof(late) / sizeof(late[0]); i++)
        expect_reject(ti, &in, &late[i], NULL, "a bad header after the messages");
    /* or its messages come twice: the second copy fails after the first decoded */
    hand_t dup = {.dup = "messages"};
    expect_reject(ti, &in, &dup, "initiation.messages: key present twice", "messages twice");
    record_clear(ti->desc, &in);
}

int main(void)
{
    memset(BIG, 'a', sizeof(BIG));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_desc_lookup),
        cmocka_unit_test(test_samples_complete),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_minimal),
        cmocka_unit_test(test_round_trip_int_extremes),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_field_types),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_string_and_array_limits),
        cmocka_unit_test(test_job_action_explode),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_mutated_encodings),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_peek_type),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_strv_push_and_clear),
        cmocka_unit_test(test_attachment_failure_frees),
        cmocka_unit_test(test_line_failure_frees),
        cmocka_unit_test(test_encoded_version),
        cmocka_unit_test(test_event_version_1),
        cmocka_unit_test(test_linev_push_and_clear),
        cmocka_unit_test(test_initiation_hand_built),
        cmocka_unit_test(test_initiation_matched_and_actions),
        cmocka_unit_test(test_initiation_held),
        cmocka_unit_test(test_initiated_missing_in_one),
        cmocka_unit_test(test_initiated_failure_frees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
