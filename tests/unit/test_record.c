/*
 * test_record.c - unit tests for common/record.c.
 *
 * The test has its own msgpack writer (the "hand builder" below), generated from the same
 * X-macro field lists as record.h but written with msgpack_packer directly, so it can produce
 * the malformed records record_encode() refuses to write: a missing key, a value of the wrong
 * msgpack type, a duplicate key, an over-long string, a bad header, unknown keys. Every field
 * of every type is driven through those cases from the field lists, so a field added to
 * record.h is covered without touching this file.
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
    const char *what;
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
    uint32_t n; /* pairs written */
} mapb_t;

static void mapb_init(mapb_t *m)
{
    msgpack_sbuffer_init(&m->body);
    msgpack_packer_init(&m->pk, &m->body, msgpack_sbuffer_write);
    m->n = 0;
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

typedef struct {
    const char *type;   /* value of "type"; NULL: the record's own type name */
    bool omit_type;     /* no "type" key */
    bool type_as_int;   /* "type": 1 */
    bool omit_v;        /* no "v" key */
    value_t v;          /* value of "v"; V_NONE: 1 */
    const char *skip;   /* a field not written (in attachments too) */
    const char *dup;    /* a key written twice: "type", "v" or a field */
    const char *ov_key; /* a field whose value is replaced by ov */
    value_t ov;
    bool extra;       /* add unknown keys, in the record and in each attachment */
    bool int_key;     /* add a pair whose key is an integer */
    bool header_last; /* write "type" and "v" after the fields */
} hand_t;

/* hb_times - how many times to write field name (0, 1 or 2). */
static int hb_times(const hand_t *h, const char *name, bool present)
{
    if (h->skip && strcmp(h->skip, name) == 0)
        return 0;
    if (h->ov_key && strcmp(h->ov_key, name) == 0)
        return 1;
    if (!present)
        return 0;
    return h->dup && strcmp(h->dup, name) == 0 ? 2 : 1;
}

static bool hb_override(mapb_t *m, const hand_t *h, const char *name)
{
    if (h->ov_key && strcmp(h->ov_key, name) == 0) {
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
    for (int t = hb_times(h, name, *val != NULL); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name))
            msgpack_pack_str_with_body(&m->pk, *val, strlen(*val));
    }
}

static void hb_field_INT(mapb_t *m, const hand_t *h, const char *name, const int64_t *val)
{
    for (int t = hb_times(h, name, true); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name))
            msgpack_pack_int64(&m->pk, *val);
    }
}

__attribute__((unused)) static void hb_field_BOOL(mapb_t *m, const hand_t *h, const char *name, const bool *val)
{
    for (int t = hb_times(h, name, true); t > 0; t--) {
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
    for (int t = hb_times(h, name, true); t > 0; t--) {
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

enum { K_STR, K_INT, K_BOOL, K_STRV, K_ATTV };
#define FK_STR K_STR
#define FK_INT K_INT
#define FK_BOOL K_BOOL
#define FK_STRV K_STRV
#define FK_ATTV K_ATTV
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

__attribute__((unused)) static void cmp_BOOL(const char *name, const bool *a, const bool *b)
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

static void hand_attachment(msgpack_sbuffer *out, const record_attachment_t *att, const hand_t *h)
{
    mapb_t m;
    mapb_init(&m);
    hand_fields_attachment(&m, att, h);
    if (h->extra)
        hb_extra(&m);
    mapb_finish(&m, out);
}

static void hb_field_ATTV(mapb_t *m, const hand_t *h, const char *name, const record_attv_t *val)
{
    for (int t = hb_times(h, name, true); t > 0; t--) {
        mapb_key(m, name);
        if (!hb_override(m, h, name)) {
            msgpack_pack_array(&m->pk, val->n);
            for (size_t i = 0; i < val->n; i++)
                hand_attachment(&m->body, &val->v[i], h);
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

DEFINE_TYPE_FUNCS(delivery, RECORD_DELIVERY_FIELDS)
DEFINE_TYPE_FUNCS(verdict, RECORD_VERDICT_FIELDS)
DEFINE_TYPE_FUNCS(job, RECORD_JOB_FIELDS)
DEFINE_TYPE_FUNCS(result, RECORD_RESULT_FIELDS)
DEFINE_TYPE_FUNCS(event, RECORD_EVENT_FIELDS)

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
}

typedef union {
    record_delivery_t delivery;
    record_verdict_t verdict;
    record_job_t job;
    record_result_t result;
    record_event_t event;
} anyrec_t;

typedef struct {
    const char *name;
    const record_desc_t *desc;
    size_t size;
    void (*fill)(void *);
    void (*hand_fields)(mapb_t *, const void *, const hand_t *);
    void (*cmp)(const void *, const void *);
    void *(*field_ptr)(void *, const char *);
    const finfo_t *fields;
    size_t nfields;
} type_info_t;

#define TYPE_INFO(tname)                                                                           \
    {#tname,           &RECORD_DESC_##tname,  sizeof(record_##tname##_t),                          \
     fill_##tname,     hand_fields_##tname,   cmp_##tname,                                         \
     field_ptr_##tname, FINFO_##tname,        sizeof(FINFO_##tname) / sizeof(FINFO_##tname[0])},

static const type_info_t TYPES[] = {
    TYPE_INFO(delivery) TYPE_INFO(verdict) TYPE_INFO(job) TYPE_INFO(result) TYPE_INFO(event)};
#define NTYPES (sizeof(TYPES) / sizeof(TYPES[0]))

static const finfo_t *const ATT_FIELDS = FINFO_attachment;
#define NATT_FIELDS (sizeof(FINFO_attachment) / sizeof(FINFO_attachment[0]))

/* ---------------------------------------------------------------------------------------- */
/* encode / decode wrappers                                                                  */

static void hand_build(const type_info_t *ti, const void *rec, const hand_t *h, msgpack_sbuffer *out)
{
    mapb_t m;
    mapb_init(&m);
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
                        msgpack_pack_int(&m.pk, 1);
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
    }
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* tests                                                                                     */

static void test_desc_lookup(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        assert_ptr_equal(record_desc_by_name(TYPES[t].name), TYPES[t].desc);
        assert_string_equal(record_desc_name(TYPES[t].desc), TYPES[t].name);
        assert_int_equal(record_desc_version(TYPES[t].desc), 1);
    }
    assert_null(record_desc_by_name("attachment")); /* a sub-record, not a top-level type */
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
            size_t sz = f->kind == K_STR ? sizeof(char *) : f->kind == K_INT ? sizeof(int64_t)
                      : f->kind == K_BOOL ? sizeof(bool) : f->kind == K_STRV ? sizeof(record_strv_t)
                      : sizeof(record_attv_t);
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
        /* the optional keys are not on the wire */
        for (size_t i = 0; i < ti->nfields; i++) {
            const finfo_t *f = &ti->fields[i];
            if (f->required)
                continue;
            size_t n = strlen(f->name);
            char key[64];
            key[0] = (char)(0xa0 | n); /* fixstr header + name */
            memcpy(key + 1, f->name, n);
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
    const type_info_t *ti = &TYPES[2]; /* job */
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
}

/* Removing one required key (built by hand) is rejected, naming the field; removing an optional
 * one is accepted and the field decodes empty. Attachment fields are checked inside delivery. */
static void test_missing_fields(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        anyrec_t sample;
        memset(&sample, 0, sizeof(sample));
        ti->fill(&sample);
        for (size_t i = 0; i < ti->nfields; i++) {
            const finfo_t *f = &ti->fields[i];
            hand_t h = {.skip = f->name};
            char sub[128];
            snprintf(sub, sizeof(sub), "%s.%s", ti->name, f->name);
            if (f->required) {
                expect_reject(ti, &sample, &h, sub, f->name);
            } else {
                anyrec_t back;
                expect_accept(ti, &sample, &h, &back, f->name);
                if (!field_is_empty(f, ti->field_ptr(&back, f->name)))
                    fail_msg("%s: omitted %s decoded non-empty", ti->name, f->name);
                record_clear(ti->desc, &back);
            }
        }
        if (ti->desc == &RECORD_DESC_delivery) {
            for (size_t i = 0; i < NATT_FIELDS; i++) {
                const finfo_t *f = &ATT_FIELDS[i];
                hand_t h = {.skip = f->name};
                char sub[128];
                snprintf(sub, sizeof(sub), "attachment.%s", f->name);
                if (f->required) {
                    expect_reject(ti, &sample, &h, sub, f->name);
                } else {
                    anyrec_t back;
                    expect_accept(ti, &sample, &h, &back, f->name);
                    assert_int_equal(back.delivery.attachments.n, 2);
                    assert_true(field_is_empty(f, field_ptr_attachment(&back.delivery.attachments.v[0], f->name)));
                    record_clear(ti->desc, &back);
                }
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
    {.k = V_ARRAY_INTS, .n = 1, .i = 1, .what = "array of ints"},
    {.k = V_ARRAY_STRS, .s = "a", .len = 1, .n = 1, .what = "array of strings"},
    {.k = V_ARRAY_NILS, .n = 2, .what = "array of nil"},
    {.k = V_ARRAY_EMPTY_MAPS, .n = 1, .what = "array of empty maps (required fields missing)"},
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
        for (int sub = 0; sub < 2; sub++) {
            const finfo_t *fields = sub ? ATT_FIELDS : ti->fields;
            size_t nf = sub ? NATT_FIELDS : ti->nfields;
            const char *owner = sub ? "attachment" : ti->name;
            if (sub && ti->desc != &RECORD_DESC_delivery)
                break;
            for (size_t i = 0; i < nf; i++) {
                const finfo_t *f = &fields[i];
                const value_t *vals;
                size_t nv;
                wrong_values(f->kind, &vals, &nv);
                assert_true(nv > 0);
                for (size_t j = 0; j < nv; j++) {
                    hand_t h = {.ov_key = f->name, .ov = vals[j]};
                    char errsub[128], what[128];
                    if (f->kind == K_ATTV)
                        snprintf(errsub, sizeof(errsub), "attachment");
                    else
                        snprintf(errsub, sizeof(errsub), "%s.%s", owner, f->name);
                    snprintf(what, sizeof(what), "%s.%s as %s", owner, f->name, vals[j].what);
                    expect_reject(ti, &sample, &h, errsub, what);
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
        for (size_t i = 0; i < ti->nfields; i++) {
            hand_t h = {.dup = ti->fields[i].name};
            expect_reject(ti, &sample, &h, "twice", ti->fields[i].name);
        }
        if (ti->desc == &RECORD_DESC_delivery)
            for (size_t i = 0; i < NATT_FIELDS; i++) {
                hand_t h = {.dup = ATT_FIELDS[i].name};
                expect_reject(ti, &sample, &h, "twice", ATT_FIELDS[i].name);
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
        for (int sub = 0; sub < 2; sub++) {
            if (sub && ti->desc != &RECORD_DESC_delivery)
                break;
            const finfo_t *fields = sub ? ATT_FIELDS : ti->fields;
            size_t nf = sub ? NATT_FIELDS : ti->nfields;
            const char *owner = sub ? "attachment" : ti->name;
            for (size_t i = 0; i < nf; i++) {
                const finfo_t *f = &fields[i];
                char sub_err[128], what[512];
                snprintf(sub_err, sizeof(sub_err), "%s.%s", owner, f->name);
                if (f->kind == K_STR) {
                    assert_true(f->max > 0 && f->max < sizeof(BIG));
                    /* one byte over the maximum */
                    hand_t over = {.ov_key = f->name, .ov = {.k = V_STR, .s = BIG, .len = f->max + 1}};
                    snprintf(what, sizeof(what), "%s of %zu bytes", sub_err, f->max + 1);
                    expect_reject(ti, &sample, &over, sub_err, what);
                    /* an embedded NUL */
                    hand_t nul = {.ov_key = f->name, .ov = {.k = V_STR, .s = "a\0b", .len = 3}};
                    snprintf(what, sizeof(what), "%s with a NUL", sub_err);
                    expect_reject(ti, &sample, &nul, "NUL", what);
                    if (!f->allowed) {
                        /* exactly the maximum is fine */
                        hand_t at = {.ov_key = f->name, .ov = {.k = V_STR, .s = BIG, .len = f->max}};
                        snprintf(what, sizeof(what), "%s of %zu bytes", sub_err, f->max);
                        expect_accept(ti, &sample, &at, &back, what);
                        const char *got = sub ? *(char **)field_ptr_attachment(&back.delivery.attachments.v[0], f->name)
                                              : *(char **)ti->field_ptr(&back, f->name);
                        assert_non_null(got);
                        assert_int_equal(strlen(got), f->max);
                        record_clear(ti->desc, &back);
                    } else {
                        /* every allowed value is accepted and kept */
                        size_t na = allowed_nth(f->allowed, 0, NULL, 0);
                        assert_true(na >= 2);
                        for (size_t a = 0; a < na; a++) {
                            char val[64];
                            allowed_nth(f->allowed, a, val, sizeof(val));
                            hand_t ok = {.ov_key = f->name, .ov = {.k = V_STR, .s = val, .len = strlen(val)}};
                            snprintf(what, sizeof(what), "%s = %s", sub_err, val);
                            expect_accept(ti, &sample, &ok, &back, what);
                            assert_string_equal(*(char **)ti->field_ptr(&back, f->name), val);
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
                            hand_t no = {.ov_key = f->name, .ov = {.k = V_STR, .s = bogus[b], .len = strlen(bogus[b])}};
                            snprintf(what, sizeof(what), "%s = '%s'", sub_err, bogus[b]);
                            expect_reject(ti, &sample, &no, sub_err, what);
                        }
                        char withnul[80];
                        memcpy(withnul, first, strlen(first));
                        withnul[strlen(first)] = '\0';
                        hand_t tail = {.ov_key = f->name, .ov = {.k = V_STR, .s = withnul, .len = strlen(first) + 1}};
                        expect_reject(ti, &sample, &tail, "NUL", "allowed value plus NUL");
                    }
                } else if (f->kind == K_STRV) {
                    hand_t at = {.ov_key = f->name, .ov = {.k = V_ARRAY_STRS, .s = "x@y", .len = 3, .n = (uint32_t)f->max}};
                    snprintf(what, sizeof(what), "%s with %zu elements", sub_err, f->max);
                    expect_accept(ti, &sample, &at, &back, what);
                    assert_int_equal(((record_strv_t *)ti->field_ptr(&back, f->name))->n, f->max);
                    record_clear(ti->desc, &back);
                    hand_t over = {.ov_key = f->name, .ov = {.k = V_ARRAY_STRS, .s = "x@y", .len = 3, .n = (uint32_t)f->max + 1}};
                    snprintf(what, sizeof(what), "%s with %zu elements", sub_err, f->max + 1);
                    expect_reject(ti, &sample, &over, sub_err, what);
                    hand_t elem = {.ov_key = f->name, .ov = {.k = V_ARRAY_STRS, .s = BIG, .len = 8192, .n = 2}};
                    expect_accept(ti, &sample, &elem, &back, "elements of 8192 bytes");
                    record_clear(ti->desc, &back);
                    hand_t empty = {.ov_key = f->name, .ov = {.k = V_ARRAY_STRS, .n = 0}};
                    expect_accept(ti, &sample, &empty, &back, "empty array");
                    record_clear(ti->desc, &back);
                } else if (f->kind == K_ATTV) {
                    hand_t at = {.ov_key = f->name, .ov = {.k = V_ARRAY_ATTS, .n = (uint32_t)f->max}};
                    snprintf(what, sizeof(what), "%s with %zu elements", sub_err, f->max);
                    expect_accept(ti, &sample, &at, &back, what);
                    assert_int_equal(((record_attv_t *)ti->field_ptr(&back, f->name))->n, f->max);
                    record_clear(ti->desc, &back);
                    hand_t over = {.ov_key = f->name, .ov = {.k = V_ARRAY_ATTS, .n = (uint32_t)f->max + 1}};
                    snprintf(what, sizeof(what), "%s with %zu elements", sub_err, f->max + 1);
                    expect_reject(ti, &sample, &over, sub_err, what);
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
    expect_reject(&TYPES[2], &job, &h, "job.action", "job.action = explode");
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
    expect_reject(&TYPES[0], &d, &h, "count exceeds the data", "recipients array32 0xFFFFFFFF");
    hand_t hm = {.ov_key = "attachments", .ov = {.k = V_RAW, .s = "\xdf\xff\xff\xff\xff", .len = 5}};
    expect_reject(&TYPES[0], &d, &hm, "count exceeds the data", "attachments map32 0xFFFFFFFF");
    hand_t hs = {.ov_key = "subject", .ov = {.k = V_RAW, .s = "\xdb\xff\xff\xff\xff", .len = 5}};
    expect_reject(&TYPES[0], &d, &hs, "length exceeds the data", "subject str32 0xFFFFFFFF");
    /* deeper than the decoder's nesting limit */
    char deep[40];
    memset(deep, 0x91, 30);
    deep[30] = 0x01;
    hand_t hn = {.ov_key = "urls", .ov = {.k = V_RAW, .s = deep, .len = 31}};
    expect_reject(&TYPES[0], &d, &hn, "nested too deeply", "urls nested 30 deep");
    record_clear(&RECORD_DESC_delivery, &d);
}

typedef struct {
    const char *value; /* NULL: missing */
    bool should_fail;
    const char *what;
} enc_case_t;

/* record_encode refuses what record_decode would refuse, and leaves the buffer untouched. */
static void test_encode_refuses(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        const type_info_t *ti = &TYPES[t];
        for (size_t i = 0; i < ti->nfields; i++) {
            const finfo_t *f = &ti->fields[i];
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
                char **slot = ti->field_ptr(&rec, f->name);
                free(*slot);
                *slot = cases[c].value ? sdup(cases[c].value) : NULL;
                msgpack_sbuffer b;
                msgpack_sbuffer_init(&b);
                msgpack_sbuffer_write(&b, "XY", 2);
                char err[512] = "";
                int rc = record_encode(ti->desc, &rec, &b, err, sizeof(err));
                char sub[128];
                snprintf(sub, sizeof(sub), "%s.%s", ti->name, f->name);
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
    hand_build(&TYPES[0], &d, &h, &b);
    /* patch: replace the second attachment's sha256 key name so it is missing */
    char *p = memmem(b.data, b.size, SHA_B, 64);
    assert_non_null(p);
    /* p - 2 is the str8 header of the value, p - 9 the fixstr "sha256" key */
    assert_memory_equal(p - 9, "\xa6sha256\xd9\x40", 9);
    memcpy(p - 8, "sha257", 6);
    expect_reject_bytes(&TYPES[0], b.data, b.size, "attachment.sha256", "second attachment lacks sha256");
    msgpack_sbuffer_destroy(&b);
    record_clear(&RECORD_DESC_delivery, &d);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
