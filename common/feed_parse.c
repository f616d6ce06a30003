/*
 * feed_parse.c - threat feed bodies (retro, TAXII 2.1, MISP, URLhaus CSV, OpenPhish) into
 * verdict items; see feed_parse.h.
 *
 * Every parser walks the document once and hands each candidate item to the same few helpers:
 * page_skip() counts a malformed item and keeps the first reason, page_accept() applies the
 * value and FEED_MAX_ITEMS limits, feed_key() hashes the parts that identify a verdict, and
 * page_push() stores the item. JSON is read with jansson (JSON_ALLOW_NUL, so a string holding
 * "\u0000" costs one item rather than the whole document).
 */
#include "feed_parse.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "strbuf.h"
#include "text.h"
#include "util.h"

#define FEED_KEY_BYTES 16          /* key = hex of the first 16 bytes of SHA-256 */
#define FEED_MAX_EMAIL_ID 64       /* retro email_id */
#define FEED_STIX_MAX_DEPTH 32     /* nested parentheses in a STIX pattern */
#define FEED_CSV_MAX_FIELD 65536   /* one CSV field */
#define FEED_CSV_MAX_COLUMNS 64    /* columns in one CSV row */
#define FEED_MAX_EPOCH_S 253402300799LL /* 9999-12-31T23:59:59Z */

/* ---- errors, pages, keys ---------------------------------------------------------------- */

/* feed_set_err - format the reason for a failed document into err (accepts NULL / 0). */
static void feed_set_err(char *err, size_t errsize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void feed_set_err(char *err, size_t errsize, const char *fmt, ...)
{
    if (!err || errsize == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

/* feed_sanitize - replace control bytes in s (len bytes) by spaces: text from a feed ends up
 * in log lines. */
static void feed_sanitize(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            s[i] = ' ';
}

/* page_init - an empty page. */
static void page_init(feed_page_t *page)
{
    memset(page, 0, sizeof(*page));
}

void feed_page_release(feed_page_t *page)
{
    if (!page)
        return;
    for (size_t i = 0; i < page->count; i++) {
        feed_item_t *it = &page->items[i];
        free(it->value);
        free(it->email_id);
        free(it->context);
        free(it->key);
    }
    free(page->items);
    free(page->next);
    memset(page, 0, sizeof(*page));
}

/* page_fail - release what a failing parser built, set err, return -1. */
static int page_fail(feed_page_t *page, char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int page_fail(feed_page_t *page, char *err, size_t errsize, const char *fmt, ...)
{
    feed_page_release(page);
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* page_skip - count one skipped item ("<what> <index>: <reason>"); the first reason is kept. */
static void page_skip(feed_page_t *page, const char *what, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void page_skip(feed_page_t *page, const char *what, size_t index, const char *fmt, ...)
{
    page->skipped++;
    if (page->skip_reason[0])
        return;
    int n = snprintf(page->skip_reason, sizeof(page->skip_reason), "%s %zu: ", what, index);
    if (n > 0 && (size_t)n < sizeof(page->skip_reason)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(page->skip_reason + n, sizeof(page->skip_reason) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    feed_sanitize(page->skip_reason, strlen(page->skip_reason));
}

/* page_note_time - remember the latest item time seen. */
static void page_note_time(feed_page_t *page, int64_t ms)
{
    if (ms > page->max_time_ms)
        page->max_time_ms = ms;
}

/* feed_value_problem - why value (len bytes) cannot be an item, or NULL when it can. */
static const char *feed_value_problem(const char *value, size_t len)
{
    if (len == 0)
        return "empty value";
    if (len > FEED_MAX_VALUE)
        return "value too long";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x20)
            return "value contains a control byte";
    return NULL;
}

/* page_accept - true when value may become an item; otherwise counts the skip. */
static bool page_accept(feed_page_t *page, const char *what, size_t index, const char *value, size_t len)
{
    const char *why = feed_value_problem(value, len);
    if (why) {
        page_skip(page, what, index, "%s", why);
        return false;
    }
    if (page->count >= FEED_MAX_ITEMS) {
        page_skip(page, what, index, "more than %d items", FEED_MAX_ITEMS);
        return false;
    }
    return true;
}

/* feed_key - lowercase hex of the first FEED_KEY_BYTES bytes of SHA-256 over the n parts
 * joined by single NUL bytes (none after the last); NULL if hashing fails. Caller frees. */
static char *feed_key(const char *const *parts, size_t n)
{
    size_t total = n ? n - 1 : 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(parts[i]);
    unsigned char *buf = util_xmalloc(total), *p = buf;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        memcpy(p, parts[i], l);
        p += l;
        if (i + 1 < n)
            *p++ = '\0';
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(buf, total, md, &mdlen, EVP_sha256(), NULL);
    free(buf);
    if (ok != 1 || mdlen < FEED_KEY_BYTES)
        return NULL;
    static const char hex[] = "0123456789abcdef";
    char *key = util_xmalloc(2 * FEED_KEY_BYTES + 1);
    for (size_t i = 0; i < FEED_KEY_BYTES; i++) {
        key[2 * i] = hex[md[i] >> 4];
        key[2 * i + 1] = hex[md[i] & 0x0F];
    }
    key[2 * FEED_KEY_BYTES] = '\0';
    return key;
}

/* feed_context - printf into a fresh string of less than FEED_MAX_CONTEXT bytes, control bytes
 * blanked, a UTF-8 sequence cut by the truncation dropped. Caller frees. */
static char *feed_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *feed_context(const char *fmt, ...)
{
    char buf[FEED_MAX_CONTEXT];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    size_t len = strlen(buf); /* a %s argument may hold a NUL of its own (CSV fields) */
    if ((size_t)n >= sizeof(buf)) {
        size_t i = len, back = 0;
        while (i > 0 && back < 3 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80) {
            i--;
            back++;
        }
        uint32_t cp;
        if (i > 0 && (unsigned char)buf[i - 1] >= 0xC0 &&
            text_utf8_decode((const unsigned char *)buf + i - 1, len - (i - 1), &cp) == 0)
            len = i - 1;
        buf[len] = '\0';
    }
    feed_sanitize(buf, len);
    return util_xstrndup(buf, len);
}

/* page_push - add an item; value and email_id are copied, context and key are taken over.
 * A NULL key (hashing failed) skips the item instead. */
static void page_push(feed_page_t *page, const char *what, size_t index, feed_observable_t type,
                      const char *value, const char *email_id, int64_t observed_ms, char *context, char *key)
{
    if (!key) {
        free(context);
        page_skip(page, what, index, "cannot hash the key");
        return;
    }
    if (page->count == page->cap) {
        page->cap = page->cap ? page->cap * 2 : 64;
        page->items = util_xrealloc(page->items, page->cap * sizeof(*page->items));
    }
    feed_item_t *it = &page->items[page->count++];
    it->type = type;
    it->value = util_xstrdup(value);
    it->email_id = util_xstrdup(email_id);
    it->observed_ms = observed_ms;
    it->context = context;
    it->key = key;
}

/* ---- JSON helpers ------------------------------------------------------------------------ */

/* feed_load_json - parse body as JSON; NULL with err set when it is not. */
static json_t *feed_load_json(const char *body, size_t len, const char *feed, char *err, size_t errsize)
{
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", body ? len : 0, JSON_ALLOW_NUL, &jerr);
    if (!root)
        feed_set_err(err, errsize, "%s: not JSON: %s (line %d column %d)", feed, jerr.text, jerr.line,
                     jerr.column);
    return root;
}

/* json_get_str - member key of obj as a C string: 1 and *out when it is a string without NUL,
 * 0 when absent or null, -1 when of another type or holding a NUL. */
static int json_get_str(const json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    *out = json_string_value(v);
    return 1;
}

/* json_get_id - member key of obj, a string or an integer, as text in out: 1, 0 when absent or
 * null or empty, -1 when of another type. */
static int json_get_id(const json_t *obj, const char *key, char *out, size_t size)
{
    json_t *v = json_object_get(obj, key);
    out[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 1;
    }
    const char *s;
    if (json_get_str(obj, key, &s) < 0)
        return -1;
    if (strlen(s) >= size)
        return -1;
    memcpy(out, s, strlen(s) + 1);
    return out[0] ? 1 : 0;
}

/* json_get_bool_member - an optional boolean member into *out (absent or null: false);
 * -1 when of another type. */
static int json_get_bool_member(const json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    *out = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

/* ---- retro ------------------------------------------------------------------------------- */

/* retro_item - one element of "retros". */
static void retro_item(feed_page_t *page, size_t i, const json_t *r)
{
    static const char what[] = "retro";
    if (!json_is_object(r)) {
        page_skip(page, what, i, "not an object");
        return;
    }
    const json_t *obs = json_object_get(r, "observable");
    if (!json_is_object(obs)) {
        page_skip(page, what, i, "no observable");
        return;
    }
    const char *otype, *ts, *email_id;
    if (json_get_str(obs, "observable_type", &otype) != 1) {
        page_skip(page, what, i, "no observable_type");
        return;
    }
    const json_t *jvalue = json_object_get(obs, "value");
    if (!json_is_string(jvalue)) {
        page_skip(page, what, i, "no observable value");
        return;
    }
    if (json_get_str(r, "timestamp", &ts) != 1) {
        page_skip(page, what, i, "no timestamp");
        return;
    }
    int64_t observed = feed_parse_time(ts);
    if (observed < 0) {
        page_skip(page, what, i, "bad timestamp");
        return;
    }
    page_note_time(page, observed);
    feed_observable_t type;
    if (strcmp(otype, "url") == 0) {
        type = FEED_OBSERVABLE_URL;
    } else if (strcmp(otype, "domain") == 0) {
        type = FEED_OBSERVABLE_DOMAIN;
    } else {
        page_skip(page, what, i, "observable_type \"%.32s\" not supported", otype);
        return;
    }
    int rc = json_get_str(r, "email_id", &email_id);
    if (rc == 1 && !email_id[0]) {
        email_id = NULL; /* "" is as good as absent */
    } else if (rc < 0 || (rc == 1 && (strlen(email_id) > FEED_MAX_EMAIL_ID ||
                                      feed_value_problem(email_id, strlen(email_id))))) {
        page_skip(page, what, i, "bad email_id");
        return;
    }
    const char *value = json_string_value(jvalue);
    if (!page_accept(page, what, i, value, json_string_length(jvalue)))
        return;

    char *context = NULL;
    const json_t *verdict = json_object_get(r, "verdict");
    const json_t *tx = json_object_get(verdict, "taxonomy_id");
    const json_t *te = json_object_get(verdict, "taxonomy_entry_id");
    const json_t *tt = json_object_get(verdict, "tag_type_id");
    if (json_is_integer(tx) && json_is_integer(te) && json_is_integer(tt))
        context = feed_context("verdict taxonomy %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                               "/%" JSON_INTEGER_FORMAT,
                               json_integer_value(tx), json_integer_value(te), json_integer_value(tt));
    const char *parts[] = {"retro", value, email_id ? email_id : "", ts};
    page_push(page, what, i, type, value, email_id, observed, context, feed_key(parts, UTIL_ARRAY_LEN(parts)));
}

int feed_parse_retro(const char *body, size_t len, feed_page_t *page, char *err, size_t errsize)
{
    page_init(page);
    json_t *root = feed_load_json(body, len, "retro", err, errsize);
    if (!root)
        return -1;
    int rc = 0;
    const json_t *retros = json_object_get(root, "retros");
    if (!json_is_object(root))
        rc = page_fail(page, err, errsize, "retro: top level is not an object");
    else if (json_get_bool_member(root, "more", &page->more) < 0)
        rc = page_fail(page, err, errsize, "retro: \"more\" is not a boolean");
    else if (retros && !json_is_array(retros))
        rc = page_fail(page, err, errsize, "retro: \"retros\" is not an array");
    if (rc == 0 && retros) {
        page->raw_count = json_array_size(retros);
        for (size_t i = 0; i < page->raw_count; i++)
            retro_item(page, i, json_array_get(retros, i));
    }
    json_decref(root);
    return rc;
}

/* ---- STIX patterns ----------------------------------------------------------------------- */

typedef struct {
    const char *p;
    char **values;
    feed_observable_t *types;
    size_t n, cap;
} stix_parser_t;

/* stix_space - skip whitespace. */
static void stix_space(stix_parser_t *sp)
{
    while (*sp->p == ' ' || *sp->p == '\t' || *sp->p == '\r' || *sp->p == '\n')
        sp->p++;
}

/* stix_keyword - consume the upper-case keyword kw (followed by a non-word byte) if next. */
static bool stix_keyword(stix_parser_t *sp, const char *kw)
{
    size_t n = strlen(kw);
    if (strncmp(sp->p, kw, n) != 0)
        return false;
    char c = sp->p[n];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')
        return false;
    sp->p += n;
    return true;
}

/* stix_comparison - "<object path> = '<string>'" for url:value or domain-name:value. */
static int stix_comparison(stix_parser_t *sp)
{
    feed_observable_t type;
    if (strncmp(sp->p, "url:value", 9) == 0) {
        type = FEED_OBSERVABLE_URL;
        sp->p += 9;
    } else if (strncmp(sp->p, "domain-name:value", 17) == 0) {
        type = FEED_OBSERVABLE_DOMAIN;
        sp->p += 17;
    } else {
        return -1;
    }
    stix_space(sp);
    if (*sp->p != '=')
        return -1; /* "==" fails below: the second '=' is not a quote */
    sp->p++;
    stix_space(sp);
    if (*sp->p != '\'')
        return -1;
    sp->p++;
    strbuf_t sb; /* unbounded: the pattern is; the caller rejects values past FEED_MAX_VALUE */
    strbuf_init(&sb, 0);
    for (;;) {
        const char *run = sp->p;
        while (*sp->p && *sp->p != '\'' && *sp->p != '\\')
            sp->p++;
        strbuf_append(&sb, run, (size_t)(sp->p - run));
        if (*sp->p == '\'')
            break;
        if (*sp->p == '\\' && (sp->p[1] == '\'' || sp->p[1] == '\\')) {
            strbuf_append(&sb, sp->p + 1, 1);
            sp->p += 2;
            continue;
        }
        strbuf_release(&sb); /* end of text inside the string, or an unknown escape */
        return -1;
    }
    sp->p++;
    if (sp->n == sp->cap) {
        sp->cap = sp->cap ? sp->cap * 2 : 4;
        sp->values = util_xrealloc(sp->values, sp->cap * sizeof(*sp->values));
        sp->types = util_xrealloc(sp->types, sp->cap * sizeof(*sp->types));
    }
    sp->values[sp->n] = strbuf_detach(&sb);
    sp->types[sp->n] = type;
    sp->n++;
    return 0;
}

/* stix_or_list - item (OR item)*, where an item is "(" list ")" or, inside brackets, a
 * comparison, outside them "[" comparisons "]". */
static int stix_or_list(stix_parser_t *sp, bool in_brackets, int depth)
{
    if (depth > FEED_STIX_MAX_DEPTH)
        return -1;
    do {
        stix_space(sp);
        if (*sp->p == '(') {
            sp->p++;
            if (stix_or_list(sp, in_brackets, depth + 1) < 0)
                return -1;
            if (*sp->p != ')')
                return -1;
            sp->p++;
        } else if (in_brackets) {
            if (stix_comparison(sp) < 0)
                return -1;
        } else {
            if (*sp->p != '[')
                return -1;
            sp->p++;
            if (stix_or_list(sp, true, depth + 1) < 0)
                return -1;
            if (*sp->p != ']')
                return -1;
            sp->p++;
        }
        stix_space(sp);
    } while (stix_keyword(sp, "OR"));
    return 0;
}

int feed_parse_stix_pattern(const char *pattern, char ***values, feed_observable_t **types, size_t *n)
{
    *values = NULL;
    *types = NULL;
    *n = 0;
    if (!pattern)
        return -1;
    stix_parser_t sp = {.p = pattern};
    int rc = stix_or_list(&sp, false, 0);
    if (rc == 0 && *sp.p != '\0')
        rc = -1; /* trailing text: a qualifier, AND, FOLLOWEDBY, a stray bracket */
    if (rc < 0) {
        for (size_t i = 0; i < sp.n; i++)
            free(sp.values[i]);
        free(sp.values);
        free(sp.types);
        return -1;
    }
    *values = sp.values;
    *types = sp.types;
    *n = sp.n;
    return 0;
}

/* ---- TAXII 2.1 --------------------------------------------------------------------------- */

/* taxii_object - one element of "objects". */
static void taxii_object(feed_page_t *page, size_t i, const json_t *o, int64_t now_ms)
{
    static const char what[] = "object";
    if (!json_is_object(o)) {
        page_skip(page, what, i, "not an object");
        return;
    }
    const char *type, *id, *modified, *created, *valid_from, *valid_until, *ptype, *pattern, *name;
    if (json_get_str(o, "type", &type) != 1) {
        page_skip(page, what, i, "no type");
        return;
    }
    int has_modified = json_get_str(o, "modified", &modified);
    int has_created = json_get_str(o, "created", &created);
    int64_t t = has_modified == 1 ? feed_parse_time(modified) : -1;
    if (t < 0 && has_created == 1)
        t = feed_parse_time(created);
    page_note_time(page, t);
    if (strcmp(type, "indicator") != 0)
        return; /* not ours: ignored, not skipped */

    if (json_get_str(o, "id", &id) != 1 || !id[0]) {
        page_skip(page, what, i, "indicator without id");
        return;
    }
    if (json_get_str(o, "pattern_type", &ptype) != 1) {
        page_skip(page, what, i, "no pattern_type");
        return;
    }
    if (strcmp(ptype, "stix") != 0) {
        page_skip(page, what, i, "pattern_type \"%.32s\" not supported", ptype);
        return;
    }
    if (json_get_str(o, "pattern", &pattern) != 1) {
        page_skip(page, what, i, "no pattern");
        return;
    }
    int64_t observed = 0;
    int rc = json_get_str(o, "valid_from", &valid_from);
    if (rc != 0 && (rc < 0 || (observed = feed_parse_time(valid_from)) < 0)) {
        page_skip(page, what, i, "bad valid_from");
        return;
    }
    if (rc == 0 && has_created == 1 && (observed = feed_parse_time(created)) < 0)
        observed = 0;
    int64_t until = -1;
    rc = json_get_str(o, "valid_until", &valid_until);
    if (rc != 0 && (rc < 0 || (until = feed_parse_time(valid_until)) < 0)) {
        page_skip(page, what, i, "bad valid_until");
        return;
    }
    bool revoked;
    if (json_get_bool_member(o, "revoked", &revoked) < 0) {
        page_skip(page, what, i, "\"revoked\" is not a boolean");
        return;
    }
    char **values;
    feed_observable_t *types;
    size_t n;
    if (feed_parse_stix_pattern(pattern, &values, &types, &n) < 0) {
        page_skip(page, what, i, "pattern is not a list of url/domain-name equalities");
        return;
    }
    if (revoked || (until >= 0 && until <= now_ms)) {
        page->withdrawn++; /* once per indicator, however many values it names */
    } else {
        const char *mod = has_modified == 1 ? modified : has_created == 1 ? created : "";
        bool named = json_get_str(o, "name", &name) == 1 && name[0];
        for (size_t k = 0; k < n; k++) {
            if (!page_accept(page, what, i, values[k], strlen(values[k])))
                continue;
            char *context = named ? feed_context("%s: %s", id, name) : feed_context("%s", id);
            const char *parts[] = {"taxii21", id, mod, values[k]};
            page_push(page, what, i, types[k], values[k], NULL, observed, context,
                      feed_key(parts, UTIL_ARRAY_LEN(parts)));
        }
    }
    for (size_t k = 0; k < n; k++)
        free(values[k]);
    free(values);
    free(types);
}

int feed_parse_taxii21(const char *body, size_t len, int64_t now_ms, feed_page_t *page, char *err, size_t errsize)
{
    page_init(page);
    json_t *root = feed_load_json(body, len, "taxii21", err, errsize);
    if (!root)
        return -1;
    int rc = 0;
    const char *next = NULL;
    const json_t *objects = json_object_get(root, "objects");
    if (!json_is_object(root))
        rc = page_fail(page, err, errsize, "taxii21: top level is not an object");
    else if (json_get_bool_member(root, "more", &page->more) < 0)
        rc = page_fail(page, err, errsize, "taxii21: \"more\" is not a boolean");
    else if (json_get_str(root, "next", &next) < 0)
        rc = page_fail(page, err, errsize, "taxii21: \"next\" is not a string");
    else if (objects && !json_is_array(objects))
        rc = page_fail(page, err, errsize, "taxii21: \"objects\" is not an array");
    if (rc == 0) {
        page->next = util_xstrdup(next);
        page->raw_count = json_array_size(objects);
        for (size_t i = 0; i < page->raw_count; i++)
            taxii_object(page, i, json_array_get(objects, i), now_ms);
    }
    json_decref(root);
    return rc;
}

/* ---- MISP -------------------------------------------------------------------------------- */

/* misp_timestamp - an attribute's "timestamp" (epoch seconds, string or number) in ms: 0 when
 * absent, -1 when malformed. */
static int64_t misp_timestamp(const json_t *a)
{
    const json_t *v = json_object_get(a, "timestamp");
    int64_t s;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v))
        s = json_integer_value(v);
    else if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
             util_parse_int64(json_string_value(v), &s) < 0)
        return -1;
    if (s < 0 || s > FEED_MAX_EPOCH_S)
        return -1;
    return s * 1000;
}

/* misp_to_ids - 1 (for detection), 0 (not), -1 (malformed); absent counts as 1. */
static int misp_to_ids(const json_t *a)
{
    const json_t *v = json_object_get(a, "to_ids");
    if (!v || json_is_null(v))
        return 1;
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
        return (int)json_integer_value(v);
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0)
        return 1;
    if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0)
        return 0;
    return -1;
}

/* misp_attribute - one element of "Attribute". */
static void misp_attribute(feed_page_t *page, size_t i, const json_t *a)
{
    static const char what[] = "attribute";
    if (!json_is_object(a)) {
        page_skip(page, what, i, "not an object");
        return;
    }
    int64_t observed = misp_timestamp(a);
    if (observed < 0) {
        page_skip(page, what, i, "bad timestamp");
        return;
    }
    page_note_time(page, observed);
    const char *type, *category;
    if (json_get_str(a, "type", &type) != 1) {
        page_skip(page, what, i, "no type");
        return;
    }
    feed_observable_t otype;
    if (strcmp(type, "url") == 0) {
        otype = FEED_OBSERVABLE_URL;
    } else if (strcmp(type, "domain") == 0 || strcmp(type, "hostname") == 0) {
        otype = FEED_OBSERVABLE_DOMAIN;
    } else {
        page_skip(page, what, i, "type \"%.32s\" not supported", type);
        return;
    }
    const json_t *jvalue = json_object_get(a, "value");
    if (!json_is_string(jvalue)) {
        page_skip(page, what, i, "no value");
        return;
    }
    char ident[128], event_id[32];
    if (json_get_id(a, "uuid", ident, sizeof(ident)) != 1 && json_get_id(a, "id", ident, sizeof(ident)) != 1) {
        page_skip(page, what, i, "neither uuid nor id");
        return;
    }
    int to_ids = misp_to_ids(a);
    if (to_ids < 0) {
        page_skip(page, what, i, "bad to_ids");
        return;
    }
    if (to_ids == 0) {
        page->withdrawn++;
        return;
    }
    const char *value = json_string_value(jvalue);
    if (!page_accept(page, what, i, value, json_string_length(jvalue)))
        return;
    bool has_event = json_get_id(a, "event_id", event_id, sizeof(event_id)) == 1;
    bool has_category = json_get_str(a, "category", &category) == 1 && category[0];
    char *context = NULL;
    if (has_event)
        context = feed_context("event %s%s%s", event_id, has_category ? " " : "", has_category ? category : "");
    else if (has_category)
        context = feed_context("%s", category);
    const char *parts[] = {"misp", ident, value};
    page_push(page, what, i, otype, value, NULL, observed, context, feed_key(parts, UTIL_ARRAY_LEN(parts)));
}

int feed_parse_misp(const char *body, size_t len, feed_page_t *page, char *err, size_t errsize)
{
    page_init(page);
    json_t *root = feed_load_json(body, len, "misp", err, errsize);
    if (!root)
        return -1;
    int rc = 0;
    const json_t *resp = json_object_get(root, "response");
    const json_t *attrs = json_object_get(resp, "Attribute");
    if (!json_is_object(root))
        rc = page_fail(page, err, errsize, "misp: top level is not an object");
    else if (!resp)
        rc = page_fail(page, err, errsize, "misp: no \"response\"");
    else if (json_is_array(resp) && json_array_size(resp) > 0)
        rc = page_fail(page, err, errsize, "misp: \"response\" is a list, not attributes");
    else if (!json_is_array(resp) && !json_is_object(resp))
        rc = page_fail(page, err, errsize, "misp: \"response\" is not an object");
    else if (attrs && !json_is_array(attrs))
        rc = page_fail(page, err, errsize, "misp: \"Attribute\" is not an array");
    if (rc == 0 && attrs) {
        page->raw_count = json_array_size(attrs);
        for (size_t i = 0; i < page->raw_count; i++)
            misp_attribute(page, i, json_array_get(attrs, i));
    }
    json_decref(root);
    return rc;
}

/* ---- URLhaus CSV ------------------------------------------------------------------------- */

typedef struct {
    char **field; /* NUL-terminated copies (a field may hold a NUL of its own: see flen) */
    size_t *flen;
    size_t n, cap;
    bool bad;     /* quoting broken, too many columns, or a field too long */
} csv_row_t;

/* csv_row_release - free the fields and the arrays. */
static void csv_row_release(csv_row_t *row)
{
    for (size_t i = 0; i < row->n; i++)
        free(row->field[i]);
    free(row->field);
    free(row->flen);
    memset(row, 0, sizeof(*row));
}

/* csv_row_add - append one field (taking over sb's contents). */
static void csv_row_add(csv_row_t *row, strbuf_t *sb)
{
    if (sb->overflow || row->n >= FEED_CSV_MAX_COLUMNS) {
        row->bad = true;
        strbuf_reset(sb);
        return;
    }
    if (row->n == row->cap) {
        row->cap = row->cap ? row->cap * 2 : 16;
        row->field = util_xrealloc(row->field, row->cap * sizeof(*row->field));
        row->flen = util_xrealloc(row->flen, row->cap * sizeof(*row->flen));
    }
    row->flen[row->n] = sb->len;
    row->field[row->n++] = strbuf_detach(sb);
}

/* csv_read_row - parse one RFC 4180 record starting at p into row (emptied first); returns
 * where the next record starts. Quoted fields may hold commas, "" and line breaks. */
static const char *csv_read_row(const char *p, const char *end, csv_row_t *row)
{
    for (size_t i = 0; i < row->n; i++)
        free(row->field[i]);
    row->n = 0;
    row->bad = false;
    strbuf_t sb;
    strbuf_init(&sb, FEED_CSV_MAX_FIELD);
    for (;;) {
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q) { /* unterminated: the rest of the body is this field */
                    row->bad = true;
                    p = end;
                    break;
                }
                strbuf_append(&sb, p, (size_t)(q - p));
                p = q + 1;
                if (p < end && *p == '"') {
                    strbuf_append(&sb, "\"", 1);
                    p++;
                    continue;
                }
                break;
            }
            if (p < end && *p != ',' && *p != '\n' && !(*p == '\r' && (p + 1 == end || p[1] == '\n'))) {
                row->bad = true; /* text after the closing quote */
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                p = nl ? nl : end;
            }
        } else {
            const char *s = p;
            while (p < end && *p != ',' && *p != '\n')
                p++;
            size_t n = (size_t)(p - s);
            if (n && s[n - 1] == '\r' && (p == end || *p == '\n'))
                n--;
            strbuf_append(&sb, s, n);
        }
        csv_row_add(row, &sb);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '\r')
            p++;
        if (p < end && *p == '\n')
            p++;
        strbuf_release(&sb);
        return p;
    }
}

typedef struct {
    size_t ncols;
    int url, dateadded, url_status, threat, tags; /* column index, -1 when absent */
} csv_header_t;

/* csv_trim_eq - field equals name (case-insensitive), surrounding blanks ignored. */
static bool csv_trim_eq(const char *field, const char *name)
{
    while (*field == ' ' || *field == '\t')
        field++;
    size_t n = strlen(name);
    if (strncasecmp(field, name, n) != 0)
        return false;
    for (field += n; *field; field++)
        if (*field != ' ' && *field != '\t')
            return false;
    return true;
}

/* csv_header_from - the column layout of a header row; -1 when it has no url column. */
static int csv_header_from(const csv_row_t *row, csv_header_t *h)
{
    *h = (csv_header_t){.ncols = row->n, .url = -1, .dateadded = -1, .url_status = -1, .threat = -1, .tags = -1};
    if (row->bad)
        return -1;
    for (size_t i = 0; i < row->n; i++) {
        int *slot = csv_trim_eq(row->field[i], "url")          ? &h->url
                    : csv_trim_eq(row->field[i], "dateadded")  ? &h->dateadded
                    : csv_trim_eq(row->field[i], "url_status") ? &h->url_status
                    : csv_trim_eq(row->field[i], "threat")     ? &h->threat
                    : csv_trim_eq(row->field[i], "tags")       ? &h->tags
                                                               : NULL;
        if (slot && *slot < 0)
            *slot = (int)i;
    }
    return h->url >= 0 ? 0 : -1;
}

/* csv_col - the field of column c, "" when the header has no such column. */
static const char *csv_col(const csv_row_t *row, int c)
{
    return c >= 0 ? row->field[c] : "";
}

/* urlhaus_row - one data row (line is where it starts, for the skip reason). */
static void urlhaus_row(feed_page_t *page, size_t line, const csv_row_t *row, const csv_header_t *h)
{
    static const char what[] = "line";
    if (row->bad) {
        page_skip(page, what, line, "broken quoting");
        return;
    }
    if (row->n != h->ncols) {
        page_skip(page, what, line, "%zu columns, the header has %zu", row->n, h->ncols);
        return;
    }
    int64_t observed = 0;
    const char *added = csv_col(row, h->dateadded);
    if (added[0] && (observed = feed_parse_time(added)) < 0) {
        page_skip(page, what, line, "bad dateadded");
        return;
    }
    page_note_time(page, observed);
    const char *value = row->field[h->url];
    if (!page_accept(page, what, line, value, row->flen[h->url]))
        return;
    char *context = feed_context("threat=%s tags=%s status=%s", csv_col(row, h->threat), csv_col(row, h->tags),
                                 csv_col(row, h->url_status));
    const char *parts[] = {"url", value};
    page_push(page, what, line, FEED_OBSERVABLE_URL, value, NULL, observed, context,
              feed_key(parts, UTIL_ARRAY_LEN(parts)));
}

/* feed_skip_bom - past a UTF-8 byte order mark at the start of a text body. */
static const char *feed_skip_bom(const char *p, const char *end)
{
    if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        return p + 3;
    return p;
}

/* feed_count_lines - line breaks in [p, end). */
static size_t feed_count_lines(const char *p, const char *end)
{
    size_t n = 0;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

int feed_parse_urlhaus_csv(const char *body, size_t len, feed_page_t *page, char *err, size_t errsize)
{
    page_init(page);
    if (!body)
        return page_fail(page, err, errsize, "urlhaus: no body");
    const char *end = body + len, *p = feed_skip_bom(body, end);
    csv_row_t row = {0}, comment = {0};
    csv_header_t h = {0}, comment_h;
    bool seen_first = false, have_comment_header = false;
    size_t line = 1;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        if (*p == '#' || p == line_end || (*p == '\r' && p + 1 == line_end)) {
            if (*p == '#' && !seen_first) {
                const char *t = p + 1;
                while (t < line_end && (*t == ' ' || *t == '\t'))
                    t++;
                csv_read_row(t, line_end, &comment);
                if (csv_header_from(&comment, &comment_h) == 0) {
                    h = comment_h;
                    have_comment_header = true;
                }
            }
            p = eol ? eol + 1 : end;
            line++;
            continue;
        }
        const char *next = csv_read_row(p, end, &row);
        if (!seen_first) {
            seen_first = true;
            if (row.n >= 1 && csv_trim_eq(row.field[0], "id")) {
                if (csv_header_from(&row, &h) < 0) {
                    csv_row_release(&row);
                    csv_row_release(&comment);
                    return page_fail(page, err, errsize, "urlhaus: the header (line %zu) has no url column", line);
                }
                line += feed_count_lines(p, next);
                p = next;
                continue;
            }
            if (!have_comment_header) {
                csv_row_release(&row);
                csv_row_release(&comment);
                return page_fail(page, err, errsize, "urlhaus: no header line before line %zu", line);
            }
        }
        page->raw_count++;
        urlhaus_row(page, line, &row, &h);
        line += feed_count_lines(p, next);
        p = next;
    }
    csv_row_release(&row);
    csv_row_release(&comment);
    if (!seen_first && !have_comment_header)
        return page_fail(page, err, errsize, "urlhaus: no header");
    return 0;
}

/* ---- OpenPhish --------------------------------------------------------------------------- */

/* feed_is_blank - a byte trimmed from the ends of an OpenPhish line. */
static bool feed_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

int feed_parse_openphish(const char *body, size_t len, feed_page_t *page, char *err, size_t errsize)
{
    page_init(page);
    if (!body)
        return page_fail(page, err, errsize, "openphish: no body");
    const char *end = body + len, *p = feed_skip_bom(body, end);
    for (size_t line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = eol ? eol : end;
        p = eol ? eol + 1 : end;
        while (s < e && feed_is_blank(*s))
            s++;
        while (e > s && feed_is_blank(e[-1]))
            e--;
        if (s == e || *s == '#')
            continue;
        page->raw_count++;
        size_t n = (size_t)(e - s);
        if (!page_accept(page, "line", line, s, n))
            continue;
        char *value = util_xstrndup(s, n);
        const char *parts[] = {"url", value};
        page_push(page, "line", line, FEED_OBSERVABLE_URL, value, NULL, 0, NULL,
                  feed_key(parts, UTIL_ARRAY_LEN(parts)));
        free(value);
    }
    return 0;
}

/* ---- times ------------------------------------------------------------------------------- */

/* time_digits - exactly n ASCII digits at *p into *out. */
static bool time_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* time_expect - consume byte c if it is next. */
static bool time_expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* time_days_in_month - days in month mon (1-12) of year. */
static int time_days_in_month(int year, int mon)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mon == 2 && leap ? 29 : days[mon - 1];
}

int64_t feed_parse_time(const char *text)
{
    if (!text)
        return -1;
    const char *p = text;
    int year, mon, day, hour, min, sec, ms = 0, offset_s = 0;
    if (!time_digits(&p, 4, &year) || !time_expect(&p, '-') || !time_digits(&p, 2, &mon) ||
        !time_expect(&p, '-') || !time_digits(&p, 2, &day))
        return -1;
    char sep = *p;
    if (sep != 'T' && sep != 't' && sep != ' ')
        return -1;
    p++;
    if (!time_digits(&p, 2, &hour) || !time_expect(&p, ':') || !time_digits(&p, 2, &min) ||
        !time_expect(&p, ':') || !time_digits(&p, 2, &sec))
        return -1;
    if (time_expect(&p, '.')) {
        int nd = 0;
        for (; *p >= '0' && *p <= '9'; p++, nd++)
            if (nd < 3)
                ms = ms * 10 + (*p - '0');
        if (nd == 0 || nd > 9)
            return -1;
        for (; nd < 3; nd++)
            ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!time_digits(&p, 2, &oh) || !time_expect(&p, ':') || !time_digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_s = sign * (oh * 3600 + om * 60);
    } else if (sep != ' ') {
        return -1; /* a "T" time without a zone is local time somewhere: not usable */
    }
    if (*p != '\0')
        return -1;
    if (year < 1 || mon < 1 || mon > 12 || day < 1 || day > time_days_in_month(year, mon) || hour > 23 ||
        min > 59 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
                    .tm_hour = hour, .tm_min = min, .tm_sec = sec};
    int64_t secs = (int64_t)timegm(&tm) - offset_s;
    if (secs < 0 || secs > FEED_MAX_EPOCH_S)
        return -1;
    return secs * 1000 + ms;
}

void feed_format_time(int64_t ms, bool millis, char *out, size_t size)
{
    if (!out || size == 0)
        return;
    int64_t secs = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        out[0] = '\0';
        return;
    }
    if (millis)
        snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
    else
        snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
}
