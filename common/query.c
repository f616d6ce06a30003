/*
 * query.c - the `clawback search` query language; see query.h.
 *
 * Three steps: the whole text is checked first (length, UTF-8, no control characters), so
 * later steps can show pieces of it in messages; then a left-to-right scan splits it into
 * terms (field name, ':', quoted or unquoted value) and the AND words between them; each
 * value is unescaped into a bounded buffer and handed to its field's normalizer, which
 * rewrites the buffer in place or returns a short reason.
 */
#include "query.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "strbuf.h"
#include "text.h"
#include "util.h"

/* longest domain given to libidn2 (a valid one is at most 253 characters of punycode) */
#define QUERY_IDN_MAX 1024
/* longest piece of the query quoted back in an error message, in bytes */
#define QUERY_SHOWN_MAX 40

/* a normalizer rewrites the value in place: NULL, or a short reason (static string) */
typedef const char *(*query_normalize_fn)(strbuf_t *v);

static const char *normalize_ip(strbuf_t *v);
static const char *normalize_domain(strbuf_t *v);
static const char *normalize_address(strbuf_t *v);
static const char *normalize_message_id(strbuf_t *v);
static const char *normalize_subject(strbuf_t *v);
static const char *normalize_mid(strbuf_t *v);
static const char *normalize_sha256(strbuf_t *v);
static const char *normalize_as_given(strbuf_t *v);
static const char *normalize_uuid(strbuf_t *v);

/* the fields, by enum value: canonical name and normalizer */
static const struct {
    const char *name;
    query_normalize_fn normalize;
} query_fields[] = {
    [QUERY_IP] = {"ip", normalize_ip},
    [QUERY_DOMAIN] = {"domain", normalize_domain},
    [QUERY_EMAIL] = {"email", normalize_address},
    [QUERY_MESSAGE_ID] = {"email_messageid", normalize_message_id},
    [QUERY_SUBJECT] = {"email_subject", normalize_subject},
    [QUERY_MID] = {"cisco_mid", normalize_mid},
    [QUERY_SHA256] = {"sha256", normalize_sha256},
    [QUERY_FILE_NAME] = {"file_name", normalize_as_given},
    [QUERY_URL] = {"url", normalize_as_given},
    [QUERY_EMAIL_ID] = {"email_id", normalize_uuid},
    [QUERY_RCPT] = {"rcpt", normalize_address},
};

/* the names a query may use, in the order error messages list them */
static const struct {
    const char *name;
    query_field_t field;
} query_names[] = {
    {"ip", QUERY_IP},
    {"domain", QUERY_DOMAIN},
    {"email", QUERY_EMAIL},
    {"email_messageid", QUERY_MESSAGE_ID},
    {"email_subject", QUERY_SUBJECT},
    {"cisco_mid", QUERY_MID},
    {"mid", QUERY_MID},
    {"sha256", QUERY_SHA256},
    {"file_name", QUERY_FILE_NAME},
    {"url", QUERY_URL},
    {"email_id", QUERY_EMAIL_ID},
    {"rcpt", QUERY_RCPT},
};

typedef struct {
    const char *text;
    size_t len;
    size_t pos;
    char *err;
    size_t errlen;
} query_parser_t;

/* ---- bytes ---- */

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static void lower_all(strbuf_t *v)
{
    for (size_t i = 0; i < v->len; i++)
        v->data[i] = (char)lower((unsigned char)v->data[i]);
}

/* trim - remove whitespace at both ends of v. */
static void trim(strbuf_t *v)
{
    size_t start = 0, end = v->len;
    while (start < end && is_space((unsigned char)v->data[start]))
        start++;
    while (end > start && is_space((unsigned char)v->data[end - 1]))
        end--;
    memmove(v->data, v->data + start, end - start);
    v->len = end - start;
    v->data[v->len] = '\0';
}

/* replace - make v hold the C string s (never longer than v's maximum here). */
static void replace(strbuf_t *v, const char *s)
{
    strbuf_reset(v);
    strbuf_appends(v, s);
}

/* ---- normalizers ---- */

static const char *normalize_ip(strbuf_t *v)
{
    trim(v);
    unsigned char addr[16];
    char out[INET6_ADDRSTRLEN];
    int af = AF_INET;
    if (inet_pton(AF_INET, v->data, addr) != 1) {
        af = AF_INET6;
        if (inet_pton(AF_INET6, v->data, addr) != 1)
            return "not an IPv4 or IPv6 address";
    }
    if (!inet_ntop(af, addr, out, sizeof(out)))
        return "not an IPv4 or IPv6 address";
    replace(v, out);
    return NULL;
}

/* to_punycode - convert a non-ASCII domain in v to its IDNA form; -1 when IDNA refuses it. */
static int to_punycode(strbuf_t *v)
{
    bool ascii = true;
    for (size_t i = 0; i < v->len; i++)
        if ((unsigned char)v->data[i] >= 0x80)
            ascii = false;
    if (ascii)
        return 0;
    if (v->len > QUERY_IDN_MAX)
        return -1;
    static const int flags[] = {IDN2_NONTRANSITIONAL, IDN2_TRANSITIONAL};
    for (size_t k = 0; k < UTIL_ARRAY_LEN(flags); k++) {
        char *ace = NULL;
        int rc = idn2_to_ascii_8z(v->data, &ace, flags[k]);
        if (rc == IDN2_OK && ace && strlen(ace) <= QUERY_IDN_MAX) {
            replace(v, ace);
            idn2_free(ace);
            lower_all(v);
            return 0;
        }
        idn2_free(ace);
    }
    return -1;
}

static const char *normalize_domain(strbuf_t *v)
{
    trim(v);
    if (v->len > 0 && v->data[0] == '@') {
        memmove(v->data, v->data + 1, v->len);
        v->len--;
    }
    if (v->len > 0 && v->data[v->len - 1] == '.')
        v->data[--v->len] = '\0';
    lower_all(v);
    if (v->len == 0)
        return "empty";
    if (to_punycode(v) < 0)
        return "not a valid internationalized domain name";
    if (v->len > 253)
        return "longer than 253 characters";
    size_t label = 0;
    for (size_t i = 0; i <= v->len; i++) {
        unsigned char c = i < v->len ? (unsigned char)v->data[i] : '.';
        if (c == '.') {
            if (label == 0)
                return "empty label (a leading dot or two dots in a row)";
            if (label > 63)
                return "label longer than 63 characters";
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
            label++;
        } else {
            return "not a host name (labels of letters, digits, '-' and '_')";
        }
    }
    return NULL;
}

static const char *normalize_address(strbuf_t *v)
{
    trim(v);
    lower_all(v);
    const char *at = memchr(v->data, '@', v->len);
    if (!at)
        return "no '@'";
    size_t local = (size_t)(at - v->data);
    if (memchr(at + 1, '@', v->len - local - 1))
        return "more than one '@'";
    if (local == 0)
        return "nothing before the '@'";
    if (local + 1 == v->len)
        return "nothing after the '@'";
    return NULL;
}

static const char *normalize_message_id(strbuf_t *v)
{
    trim(v);
    if (v->len > 0 && v->data[v->len - 1] == '>')
        v->data[--v->len] = '\0';
    if (v->len > 0 && v->data[0] == '<') {
        memmove(v->data, v->data + 1, v->len);
        v->len--;
    }
    trim(v);
    return v->len ? NULL : "empty";
}

static const char *normalize_subject(strbuf_t *v)
{
    size_t w = 0;
    bool gap = false;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->data[i];
        if (is_space((unsigned char)c)) {
            gap = w > 0;
            continue;
        }
        if (gap)
            v->data[w++] = ' ';
        gap = false;
        v->data[w++] = c;
    }
    v->len = w;
    v->data[w] = '\0';
    return w ? NULL : "empty";
}

static const char *normalize_mid(strbuf_t *v)
{
    trim(v);
    if (v->len == 0)
        return "empty";
    for (size_t i = 0; i < v->len; i++)
        if (v->data[i] < '0' || v->data[i] > '9')
            return "not a decimal number (digits only, no sign)";
    int64_t mid;
    if (util_parse_int64(v->data, &mid) < 0)
        return "larger than 9223372036854775807";
    if (mid == 0)
        return "not positive";
    char out[24];
    snprintf(out, sizeof(out), "%" PRId64, mid);
    replace(v, out);
    return NULL;
}

static const char *normalize_sha256(strbuf_t *v)
{
    trim(v);
    if (v->len != 64)
        return "not 64 hex digits";
    for (size_t i = 0; i < v->len; i++)
        if (text_hex_value((unsigned char)v->data[i]) < 0)
            return "not 64 hex digits";
    lower_all(v);
    return NULL;
}

static const char *normalize_as_given(strbuf_t *v)
{
    return v->len ? NULL : "empty";
}

static const char *normalize_uuid(strbuf_t *v)
{
    trim(v);
    if (v->len != 36)
        return "not a UUID (8-4-4-4-12 hex digits)";
    for (size_t i = 0; i < v->len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? v->data[i] != '-' : text_hex_value((unsigned char)v->data[i]) < 0)
            return "not a UUID (8-4-4-4-12 hex digits)";
    }
    lower_all(v);
    return NULL;
}

/* ---- errors ---- */

/* column - the column of byte offset off: characters before it plus one. */
static size_t column(const query_parser_t *p, size_t off)
{
    size_t col = 1;
    for (size_t i = 0; i < off; i++)
        if (((unsigned char)p->text[i] & 0xC0) != 0x80)
            col++;
    return col;
}

/* fail - write "column N: <message>" for byte offset off into the caller's err; returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(query_parser_t *p, size_t off, const char *fmt, ...)
{
    if (!p->err || p->errlen == 0)
        return -1;
    int n = snprintf(p->err, p->errlen, "column %zu: ", column(p, off));
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* shown - how many of the n bytes at s to quote in a message: whole characters, bounded. */
static int shown(const char *s, size_t n)
{
    if (n <= QUERY_SHOWN_MAX)
        return (int)n;
    size_t k = QUERY_SHOWN_MAX;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return (int)k;
}

/* known_names - "ip, domain, ..." into out. */
static void known_names(char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < UTIL_ARRAY_LEN(query_names) && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? ", " : "", query_names[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* ---- scanning ---- */

/* check_text - the whole text is UTF-8 without control characters other than whitespace. */
static int check_text(query_parser_t *p)
{
    const unsigned char *t = (const unsigned char *)p->text;
    for (size_t i = 0; i < p->len;) {
        if (t[i] >= 0x80) {
            uint32_t cp;
            size_t n = text_utf8_decode(t + i, p->len - i, &cp);
            if (n == 0)
                return fail(p, i, "invalid UTF-8");
            i += n;
            continue;
        }
        if ((t[i] < 0x20 && !is_space(t[i])) || t[i] == 0x7F)
            return fail(p, i, "control character 0x%02x", t[i]);
        i++;
    }
    return 0;
}

/* at_and - whether the word at p->pos is AND (any case). */
static bool at_and(const query_parser_t *p)
{
    const char *s = p->text + p->pos;
    if (p->len - p->pos < 3 || lower((unsigned char)s[0]) != 'a' || lower((unsigned char)s[1]) != 'n' ||
        lower((unsigned char)s[2]) != 'd')
        return false;
    return p->pos + 3 == p->len || is_space((unsigned char)s[3]);
}

/* find_field - the field named by the n bytes at s (any case); -1 when unknown. */
static int find_field(const char *s, size_t n, query_field_t *field)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(query_names); i++) {
        const char *name = query_names[i].name;
        if (strlen(name) != n)
            continue;
        size_t k = 0;
        while (k < n && lower((unsigned char)s[k]) == (unsigned char)name[k])
            k++;
        if (k == n) {
            *field = query_names[i].field;
            return 0;
        }
    }
    return -1;
}

/* read_value - the value at p->pos, unescaped, into v; p->pos moves past it. */
static int read_value(query_parser_t *p, strbuf_t *v)
{
    const char *t = p->text;
    size_t start = p->pos, i = p->pos;
    if (t[i] != '"') {
        for (; i < p->len && !is_space((unsigned char)t[i]); i++) {
            if (t[i] == '"')
                return fail(p, i, "'\"' inside an unquoted value (quote the whole value)");
            if (strbuf_append(v, &t[i], 1) < 0)
                return fail(p, start, "value longer than %d bytes", QUERY_MAX_VALUE);
        }
        p->pos = i;
        return 0;
    }
    for (i++;;) {
        if (i >= p->len)
            return fail(p, start, "missing closing '\"'");
        char c = t[i];
        if (c == '"')
            break;
        if (c == '\\') {
            if (i + 1 >= p->len)
                return fail(p, start, "missing closing '\"'");
            c = t[i + 1];
            if (c != '"' && c != '\\')
                return fail(p, i, "'\\' must be followed by '\"' or '\\'");
            i++;
        }
        if (strbuf_append(v, &c, 1) < 0)
            return fail(p, start, "value longer than %d bytes", QUERY_MAX_VALUE);
        i++;
    }
    i++;
    if (i < p->len && !is_space((unsigned char)t[i]))
        return fail(p, i, "expected whitespace after the closing '\"'");
    p->pos = i;
    return 0;
}

/* parse_term - the term at p->pos, appended to q. */
static int parse_term(query_parser_t *p, query_t *q)
{
    const char *t = p->text;
    size_t start = p->pos, end = p->pos;
    while (end < p->len && !is_space((unsigned char)t[end]) && t[end] != ':' && t[end] != '"')
        end++;
    size_t n = end - start;
    if (n == 0)
        return fail(p, start, "expected a field name");
    int shown_n = shown(t + start, n);
    const char *more = (size_t)shown_n < n ? "..." : "";
    if (end == p->len || is_space((unsigned char)t[end]))
        return fail(p, start, "expected field:value, got '%.*s%s'", shown_n, t + start, more);
    if (t[end] == '"')
        return fail(p, end, "expected ':' after '%.*s%s'", shown_n, t + start, more);
    query_field_t field;
    if (find_field(t + start, n, &field) < 0) {
        char known[256];
        known_names(known, sizeof(known));
        return fail(p, start, "unknown field '%.*s%s' (known: %s)", shown_n, t + start, more, known);
    }
    if (q->n == QUERY_MAX_TERMS)
        return fail(p, start, "more than %d terms", QUERY_MAX_TERMS);
    p->pos = end + 1;
    size_t value_at = p->pos;
    if (p->pos == p->len || is_space((unsigned char)t[p->pos]))
        return fail(p, value_at, "expected a value after '%.*s:'", (int)n, t + start);
    strbuf_t v;
    strbuf_init(&v, QUERY_MAX_VALUE);
    strbuf_append(&v, "", 0); /* data is never NULL from here on */
    if (read_value(p, &v) < 0) {
        strbuf_release(&v);
        return -1;
    }
    const char *why = query_fields[field].normalize(&v);
    if (why) {
        strbuf_release(&v);
        return fail(p, value_at, "invalid value for '%.*s:': %s", (int)n, t + start, why);
    }
    q->terms = util_xrealloc(q->terms, (q->n + 1) * sizeof(*q->terms));
    q->terms[q->n].field = field;
    q->terms[q->n].value = strbuf_detach(&v);
    q->n++;
    return 0;
}

/* ---- public ---- */

int query_parse(const char *text, query_t *q, char *err, size_t errlen)
{
    assert(text && q);
    q->terms = NULL;
    q->n = 0;
    if (err && errlen)
        err[0] = '\0';
    query_parser_t p = {.text = text, .len = strnlen(text, QUERY_MAX_TEXT + 1), .err = err, .errlen = errlen};
    if (p.len > QUERY_MAX_TEXT) {
        if (err && errlen)
            snprintf(err, errlen, "query longer than %d bytes", QUERY_MAX_TEXT);
        return -1;
    }
    if (check_text(&p) < 0)
        return -1;
    bool after_and = false; /* an AND was read and no term after it yet */
    size_t and_at = 0;
    for (;;) {
        while (p.pos < p.len && is_space((unsigned char)text[p.pos]))
            p.pos++;
        if (p.pos == p.len)
            break;
        if (at_and(&p)) {
            if (q->n == 0 || after_and) {
                query_clear(q);
                return fail(&p, p.pos, "'AND' must stand between two terms");
            }
            after_and = true;
            and_at = p.pos;
            p.pos += 3;
            continue;
        }
        if (parse_term(&p, q) < 0) {
            query_clear(q);
            return -1;
        }
        after_and = false;
    }
    if (after_and) {
        query_clear(q);
        return fail(&p, and_at, "'AND' must stand between two terms");
    }
    if (q->n == 0) {
        if (err && errlen)
            snprintf(err, errlen, "empty query");
        return -1;
    }
    return 0;
}

void query_clear(query_t *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->terms[i].value);
    free(q->terms);
    q->terms = NULL;
    q->n = 0;
}

const char *query_field_name(query_field_t field)
{
    if ((size_t)field >= UTIL_ARRAY_LEN(query_fields))
        return "unknown";
    return query_fields[field].name;
}
