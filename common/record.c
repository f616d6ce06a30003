/*
 * record.c - the generic encoder and decoder driven by the descriptors generated from
 * record.h's field lists.
 */
#include "record.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgpack_check.h"
#include "util.h"

typedef enum {
    RECORD_KIND_STR,
    RECORD_KIND_INT,
    RECORD_KIND_BOOL,
    RECORD_KIND_STRV,
    RECORD_KIND_ATTV,
    RECORD_KIND_LINEV,
    RECORD_KIND_INITV
} record_kind_t;

/* An array of sub-records: record_attv_t and record_linev_t have this layout. */
typedef struct {
    void *v;
    size_t n;
} record_subv_t;
_Static_assert(sizeof(record_subv_t) == sizeof(record_attv_t) && sizeof(record_subv_t) == sizeof(record_linev_t) &&
                   sizeof(record_subv_t) == sizeof(record_initv_t) &&
                   offsetof(record_subv_t, n) == offsetof(record_attv_t, n) &&
                   offsetof(record_subv_t, n) == offsetof(record_linev_t, n) &&
                   offsetof(record_subv_t, n) == offsetof(record_initv_t, n),
               "sub-record arrays share one layout");

typedef struct {
    const char *name;
    record_kind_t kind;
    size_t offset;
    bool required;
    size_t max;          /* bytes for STR, elements for arrays, unused for INT/BOOL */
    const char *allowed; /* "a|b|c" or NULL */
} record_field_t;

struct record_desc {
    const char *name;
    int version;
    size_t size;
    const record_field_t *fields;
    size_t nfields;
};

#define RECORD_MAX_FIELDS 64 /* record_decode_map() tracks the keys seen in a bool[64] */
#define RECORD_PRESENCE_REQUIRED true
#define RECORD_PRESENCE_OPTIONAL false
#define RECORD_FIELD(kind, fname, presence, fmax, fallowed)                                        \
    {#fname, RECORD_KIND_##kind, offsetof(RECORD_CURRENT, fname), RECORD_PRESENCE_##presence, fmax, fallowed},

#define RECORD_DEFINE(type, ctype, version, FIELDS)                                                \
    static const record_field_t RECORD_FIELDS_##type[] = {FIELDS(RECORD_FIELD)};                   \
    _Static_assert(UTIL_ARRAY_LEN(RECORD_FIELDS_##type) <= RECORD_MAX_FIELDS, "too many fields");  \
    const record_desc_t RECORD_DESC_##type = {#type, version, sizeof(ctype), RECORD_FIELDS_##type, \
                                              UTIL_ARRAY_LEN(RECORD_FIELDS_##type)};

/* Each type's version, from RECORD_TYPES. */
enum {
#define RECORD_VERSION_ENUM(name, version) RECORD_VERSION_##name = version,
    RECORD_TYPES(RECORD_VERSION_ENUM)
#undef RECORD_VERSION_ENUM
};

#define RECORD_CURRENT record_attachment_t
RECORD_DEFINE(attachment, record_attachment_t, 1, RECORD_ATTACHMENT_FIELDS)
#undef RECORD_CURRENT
#define RECORD_CURRENT record_line_t
RECORD_DEFINE(line, record_line_t, 1, RECORD_LINE_FIELDS)
#undef RECORD_CURRENT
#define RECORD_CURRENT record_initiated_t
RECORD_DEFINE(initiated, record_initiated_t, 1, RECORD_INITIATED_FIELDS)
#undef RECORD_CURRENT
#define RECORD_CURRENT record_delivery_t
RECORD_DEFINE(delivery, record_delivery_t, RECORD_VERSION_delivery, RECORD_DELIVERY_FIELDS)
#undef RECORD_CURRENT
#define RECORD_CURRENT record_verdict_t
RECORD_DEFINE(verdict, record_verdict_t, RECORD_VERSION_verdict, RECORD_VERDICT_FIELDS)
#undef RECORD_CURRENT
#define RECORD_CURRENT record_job_t
RECORD_DEFINE(job, record_job_t, RECORD_VERSION_job, RECORD_JOB_FIELDS)
#undef RECORD_CURRENT
#define RECORD_CURRENT record_result_t
RECORD_DEFINE(result, record_result_t, RECORD_VERSION_result, RECORD_RESULT_FIELDS)
#undef RECORD_CURRENT
#define RECORD_CURRENT record_event_t
RECORD_DEFINE(event, record_event_t, RECORD_VERSION_event, RECORD_EVENT_FIELDS)
#undef RECORD_CURRENT
#define RECORD_CURRENT record_initiation_t
RECORD_DEFINE(initiation, record_initiation_t, RECORD_VERSION_initiation, RECORD_INITIATION_FIELDS)
#undef RECORD_CURRENT

static const record_desc_t *const RECORD_ALL[] = {
#define RECORD_LIST_ENTRY(name, version) &RECORD_DESC_##name,
    RECORD_TYPES(RECORD_LIST_ENTRY)
#undef RECORD_LIST_ENTRY
};

#define RECORD_VERSION_CHECK(name, version) _Static_assert(version >= 1, "record version");
RECORD_TYPES(RECORD_VERSION_CHECK)
#undef RECORD_VERSION_CHECK

/* sub_desc - the descriptor of the elements of a sub-record array. */
static const record_desc_t *sub_desc(record_kind_t kind)
{
    return kind == RECORD_KIND_ATTV ? &RECORD_DESC_attachment
           : kind == RECORD_KIND_LINEV ? &RECORD_DESC_line
                                       : &RECORD_DESC_initiated;
}

const char *record_desc_name(const record_desc_t *desc)
{
    return desc->name;
}

int record_desc_version(const record_desc_t *desc)
{
    return desc->version;
}

const record_desc_t *record_desc_by_name(const char *name)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(RECORD_ALL); i++)
        if (strcmp(RECORD_ALL[i]->name, name) == 0)
            return RECORD_ALL[i];
    return NULL;
}

static void record_error(char *err, size_t errsize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void record_error(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errsize)
        vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

void record_init(const record_desc_t *desc, void *record)
{
    (void)desc;
    /* every type starts with the header fields, so the layout of id/time_ms is common */
    record_verdict_t *hdr = record;
    char uuid[37];
    util_uuid(uuid);
    free(hdr->id);
    hdr->id = util_xstrdup(uuid);
    hdr->time_ms = util_now_ms();
}

void record_strv_push(record_strv_t *strv, const char *s)
{
    strv->v = util_xrealloc(strv->v, (strv->n + 1) * sizeof(*strv->v));
    strv->v[strv->n++] = util_xstrdup(s);
}

void record_linev_push(record_linev_t *lines, const char *log, int64_t mid, const char *message)
{
    lines->v = util_xrealloc(lines->v, (lines->n + 1) * sizeof(*lines->v));
    record_line_t *l = &lines->v[lines->n++];
    l->log = util_xstrdup(log);
    l->mid = mid;
    l->message = util_xstrdup(message);
}

/* allowed_contains - whether s is one of the '|'-separated values. */
static bool allowed_contains(const char *allowed, const char *s, size_t len)
{
    const char *p = allowed;
    while (*p) {
        size_t n = strcspn(p, "|");
        if (n == len && memcmp(p, s, n) == 0)
            return true;
        p += n;
        if (*p == '|')
            p++;
    }
    return false;
}

/* ---- encoding ---- */

static void pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

/* field_present - whether an optional field has a value to write. */
static bool field_present(const record_field_t *f, const void *slot)
{
    switch (f->kind) {
    case RECORD_KIND_STR:
        return *(char *const *)slot != NULL;
    case RECORD_KIND_INT:
        return f->required || *(const int64_t *)slot != 0;
    case RECORD_KIND_BOOL:
        return true;
    case RECORD_KIND_STRV:
        return f->required || ((const record_strv_t *)slot)->n > 0;
    case RECORD_KIND_ATTV:
    case RECORD_KIND_LINEV:
    case RECORD_KIND_INITV:
        return f->required || ((const record_subv_t *)slot)->n > 0;
    }
    return false;
}

static int record_encode_into(const record_desc_t *desc, const void *record, msgpack_packer *pk, bool top,
                              char *err, size_t errsize);

/* check_str - the limits a string value must respect, on both sides of the wire. */
static int check_str(const record_desc_t *desc, const record_field_t *f, const char *s, size_t len, char *err,
                     size_t errsize)
{
    if (f->max && len > f->max) {
        record_error(err, errsize, "%s.%s: %zu bytes, more than %zu", desc->name, f->name, len, f->max);
        return -1;
    }
    if (memchr(s, '\0', len)) {
        record_error(err, errsize, "%s.%s: contains a NUL byte", desc->name, f->name);
        return -1;
    }
    if (f->allowed && !allowed_contains(f->allowed, s, len)) {
        record_error(err, errsize, "%s.%s: '%.*s' is not one of %s", desc->name, f->name, (int)(len > 64 ? 64 : len),
                     s, f->allowed);
        return -1;
    }
    return 0;
}

static int encode_field(const record_desc_t *desc, const record_field_t *f, const void *slot, msgpack_packer *pk,
                        char *err, size_t errsize)
{
    switch (f->kind) {
    case RECORD_KIND_STR: {
        const char *s = *(char *const *)slot;
        size_t len = strlen(s);
        if (check_str(desc, f, s, len, err, errsize) < 0)
            return -1;
        pack_str(pk, s, len);
        return 0;
    }
    case RECORD_KIND_INT:
        msgpack_pack_int64(pk, *(const int64_t *)slot);
        return 0;
    case RECORD_KIND_BOOL:
        if (*(const bool *)slot)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        return 0;
    case RECORD_KIND_STRV: {
        const record_strv_t *strv = slot;
        if (strv->n > f->max) {
            record_error(err, errsize, "%s.%s: %zu elements, more than %zu", desc->name, f->name, strv->n, f->max);
            return -1;
        }
        msgpack_pack_array(pk, strv->n);
        for (size_t i = 0; i < strv->n; i++) {
            size_t len = strlen(strv->v[i]);
            if (len > 8192) {
                record_error(err, errsize, "%s.%s[%zu]: longer than 8192 bytes", desc->name, f->name, i);
                return -1;
            }
            pack_str(pk, strv->v[i], len);
        }
        return 0;
    }
    case RECORD_KIND_ATTV:
    case RECORD_KIND_LINEV:
    case RECORD_KIND_INITV: {
        const record_subv_t *subv = slot;
        const record_desc_t *sub = sub_desc(f->kind);
        if (subv->n > f->max) {
            record_error(err, errsize, "%s.%s: %zu elements, more than %zu", desc->name, f->name, subv->n, f->max);
            return -1;
        }
        msgpack_pack_array(pk, subv->n);
        for (size_t i = 0; i < subv->n; i++)
            if (record_encode_into(sub, (const char *)subv->v + i * sub->size, pk, false, err, errsize) < 0)
                return -1;
        return 0;
    }
    }
    return -1;
}

static int record_encode_into(const record_desc_t *desc, const void *record, msgpack_packer *pk, bool top,
                              char *err, size_t errsize)
{
    size_t count = top ? 2 : 0;
    for (size_t i = 0; i < desc->nfields; i++) {
        const record_field_t *f = &desc->fields[i];
        const void *slot = (const char *)record + f->offset;
        if (field_present(f, slot)) {
            count++;
        } else if (f->required) {
            record_error(err, errsize, "%s.%s: required field missing", desc->name, f->name);
            return -1;
        }
    }
    msgpack_pack_map(pk, count);
    if (top) {
        pack_str(pk, "type", 4);
        pack_str(pk, desc->name, strlen(desc->name));
        pack_str(pk, "v", 1);
        msgpack_pack_int(pk, desc->version);
    }
    for (size_t i = 0; i < desc->nfields; i++) {
        const record_field_t *f = &desc->fields[i];
        const void *slot = (const char *)record + f->offset;
        if (!field_present(f, slot))
            continue;
        pack_str(pk, f->name, strlen(f->name));
        if (encode_field(desc, f, slot, pk, err, errsize) < 0)
            return -1;
    }
    return 0;
}

int record_encode(const record_desc_t *desc, const void *record, msgpack_sbuffer *buf, char *err, size_t errsize)
{
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init(&scratch);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &scratch, msgpack_sbuffer_write);
    int rc = record_encode_into(desc, record, &pk, true, err, errsize);
    if (rc == 0)
        msgpack_sbuffer_write(buf, scratch.data, scratch.size);
    msgpack_sbuffer_destroy(&scratch);
    return rc;
}

/* ---- decoding ---- */

static const char *kind_name(record_kind_t kind)
{
    static const char *const names[] = {"string", "integer", "boolean", "array of strings", "array of maps",
                                        "array of maps", "array of maps"};
    return names[kind];
}

static bool key_is(const msgpack_object *key, const char *name)
{
    size_t len = strlen(name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == len && memcmp(key->via.str.ptr, name, len) == 0;
}

static int record_decode_map(const record_desc_t *desc, const msgpack_object *map, void *record, bool top,
                             char *err, size_t errsize);

static int decode_field(const record_desc_t *desc, const record_field_t *f, const msgpack_object *o, void *slot,
                        char *err, size_t errsize)
{
    switch (f->kind) {
    case RECORD_KIND_STR:
        if (o->type != MSGPACK_OBJECT_STR)
            break;
        if (check_str(desc, f, o->via.str.ptr, o->via.str.size, err, errsize) < 0)
            return -1;
        *(char **)slot = util_xstrndup(o->via.str.ptr, o->via.str.size);
        return 0;
    case RECORD_KIND_INT:
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            if (o->via.u64 > INT64_MAX) {
                record_error(err, errsize, "%s.%s: integer out of range", desc->name, f->name);
                return -1;
            }
            *(int64_t *)slot = (int64_t)o->via.u64;
            return 0;
        }
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            *(int64_t *)slot = o->via.i64;
            return 0;
        }
        break;
    case RECORD_KIND_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            break;
        *(bool *)slot = o->via.boolean;
        return 0;
    case RECORD_KIND_STRV: {
        if (o->type != MSGPACK_OBJECT_ARRAY)
            break;
        const msgpack_object_array *a = &o->via.array;
        if (a->size > f->max) {
            record_error(err, errsize, "%s.%s: %u elements, more than %zu", desc->name, f->name, a->size, f->max);
            return -1;
        }
        record_strv_t *strv = slot;
        strv->v = util_xcalloc(a->size, sizeof(*strv->v));
        for (uint32_t i = 0; i < a->size; i++) {
            const msgpack_object *e = &a->ptr[i];
            if (e->type != MSGPACK_OBJECT_STR || e->via.str.size > 8192 || memchr(e->via.str.ptr, '\0', e->via.str.size)) {
                record_error(err, errsize, "%s.%s[%u]: not a string of at most 8192 bytes without NUL", desc->name,
                             f->name, i);
                return -1;
            }
            strv->v[strv->n++] = util_xstrndup(e->via.str.ptr, e->via.str.size);
        }
        return 0;
    }
    case RECORD_KIND_ATTV:
    case RECORD_KIND_LINEV:
    case RECORD_KIND_INITV: {
        if (o->type != MSGPACK_OBJECT_ARRAY)
            break;
        const msgpack_object_array *a = &o->via.array;
        if (a->size > f->max) {
            record_error(err, errsize, "%s.%s: %u elements, more than %zu", desc->name, f->name, a->size, f->max);
            return -1;
        }
        record_subv_t *subv = slot;
        const record_desc_t *sub = sub_desc(f->kind);
        subv->v = util_xcalloc(a->size ? a->size : 1, sub->size);
        for (uint32_t i = 0; i < a->size; i++) {
            /* counted before it is decoded, so record_clear() frees the fields a failing
             * element had already decoded (the elements are zeroed by calloc) */
            subv->n++;
            if (record_decode_map(sub, &a->ptr[i], (char *)subv->v + i * sub->size, false, err, errsize) < 0)
                return -1;
        }
        return 0;
    }
    }
    record_error(err, errsize, "%s.%s: expected %s", desc->name, f->name, kind_name(f->kind));
    return -1;
}

static int record_decode_map(const record_desc_t *desc, const msgpack_object *map, void *record, bool top,
                             char *err, size_t errsize)
{
    if (map->type != MSGPACK_OBJECT_MAP) {
        record_error(err, errsize, "%s: not a map", desc->name);
        return -1;
    }
    bool seen[RECORD_MAX_FIELDS] = {false};
    bool seen_type = false, seen_version = false;
    const msgpack_object_map *m = &map->via.map;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *key = &m->ptr[i].key, *val = &m->ptr[i].val;
        if (key->type != MSGPACK_OBJECT_STR) {
            record_error(err, errsize, "%s: a key is not a string", desc->name);
            return -1;
        }
        if (top && key_is(key, "type")) {
            if (seen_type) {
                record_error(err, errsize, "%s: key \"type\" present twice", desc->name);
                return -1;
            }
            if (val->type != MSGPACK_OBJECT_STR || !key_is(val, desc->name)) {
                record_error(err, errsize, "expected a %s record", desc->name);
                return -1;
            }
            seen_type = true;
            continue;
        }
        if (top && key_is(key, "v")) {
            if (seen_version || val->type != MSGPACK_OBJECT_POSITIVE_INTEGER || val->via.u64 < 1) {
                record_error(err, errsize, "%s: bad or repeated version", desc->name);
                return -1;
            }
            seen_version = true;
            continue;
        }
        for (size_t j = 0; j < desc->nfields; j++) {
            const record_field_t *f = &desc->fields[j];
            if (!key_is(key, f->name))
                continue;
            if (seen[j]) {
                record_error(err, errsize, "%s.%s: key present twice", desc->name, f->name);
                return -1;
            }
            seen[j] = true;
            if (decode_field(desc, f, val, (char *)record + f->offset, err, errsize) < 0)
                return -1;
            break;
        } /* unknown keys are ignored */
    }
    if (top && (!seen_type || !seen_version)) {
        record_error(err, errsize, "%s: missing %s", desc->name, seen_type ? "version" : "type");
        return -1;
    }
    for (size_t j = 0; j < desc->nfields; j++) {
        if (desc->fields[j].required && !seen[j]) {
            record_error(err, errsize, "%s.%s: required field missing", desc->name, desc->fields[j].name);
            return -1;
        }
    }
    return 0;
}

int record_decode(const record_desc_t *desc, const char *buf, size_t len, void *record, char *err, size_t errsize)
{
    memset(record, 0, desc->size);
    const char *why;
    if (msgpack_check(buf, len, MSGPACK_CHECK_DEFAULT_DEPTH, MSGPACK_CHECK_DEFAULT_OBJECTS, &why) < 0) {
        record_error(err, errsize, "%s: malformed msgpack (%s)", desc->name, why);
        return -1;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&unpacked, buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
        record_error(err, errsize, "%s: malformed msgpack", desc->name);
    else
        rc = record_decode_map(desc, &unpacked.data, record, true, err, errsize);
    msgpack_unpacked_destroy(&unpacked);
    if (rc < 0)
        record_clear(desc, record);
    return rc;
}

int record_peek_type(const char *buf, size_t len, char *out, size_t outsize)
{
    const char *why;
    if (msgpack_check(buf, len, MSGPACK_CHECK_DEFAULT_DEPTH, MSGPACK_CHECK_DEFAULT_OBJECTS, &why) < 0)
        return -1;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&unpacked, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        unpacked.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &unpacked.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *v = &m->ptr[i].val;
            if (key_is(&m->ptr[i].key, "type") && v->type == MSGPACK_OBJECT_STR && v->via.str.size < outsize) {
                memcpy(out, v->via.str.ptr, v->via.str.size);
                out[v->via.str.size] = '\0';
                rc = 0;
                break;
            }
        }
    }
    msgpack_unpacked_destroy(&unpacked);
    return rc;
}

void record_clear(const record_desc_t *desc, void *record)
{
    for (size_t i = 0; i < desc->nfields; i++) {
        const record_field_t *f = &desc->fields[i];
        void *slot = (char *)record + f->offset;
        if (f->kind == RECORD_KIND_STR) {
            free(*(char **)slot);
        } else if (f->kind == RECORD_KIND_STRV) {
            record_strv_t *strv = slot;
            for (size_t j = 0; j < strv->n; j++)
                free(strv->v[j]);
            free(strv->v);
        } else if (f->kind == RECORD_KIND_ATTV || f->kind == RECORD_KIND_LINEV || f->kind == RECORD_KIND_INITV) {
            record_subv_t *subv = slot;
            const record_desc_t *sub = sub_desc(f->kind);
            for (size_t j = 0; j < subv->n; j++)
                record_clear(sub, (char *)subv->v + j * sub->size);
            free(subv->v);
        }
    }
    memset(record, 0, desc->size);
}
