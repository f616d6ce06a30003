/*
 * url_unwrap.c - refanging and gateway unwrapping; see url_unwrap.h.
 *
 * Each function makes a fixed number of left-to-right scans of its input and writes only into
 * the caller's strbuf, so the work is linear and the output is never longer than the input
 * (every rewrite here shrinks: an escape decodes to one byte, a Proofpoint v3 token is paid
 * for by at least as many bytes of its tail). A wrapper that does not decode cleanly (bad
 * base64, a tail that runs out, invalid UTF-8 in it, an empty result) is not unwrapped.
 *
 * Choices made here: a defanged scheme (hxxp, hXXps, hxxxp) counts only at the start of a
 * word and before ':' or "[:"; Safe Links and Proofpoint v1 values are percent-decoded once,
 * '+' is left alone; the Proofpoint v3 tail ends at the first '!' (or the end); Cisco's URL
 * is the first path segment after the token that starts with http%3A or https%3A, decoded
 * once, up to the end of the URL; BLOCKED's closing marker may be missing.
 *
 * Formats, as the gateways write them:
 *   Safe Links     https://<region>.safelinks.protection.outlook.com/?url=<%-encoded>&data=...
 *   Proofpoint v1  https://urldefense.proofpoint.com/v1/url?u=<%-encoded>&k=...
 *   Proofpoint v2  https://urldefense.proofpoint.com/v2/url?u=<'-' for '%', '_' for '/'>&d=...
 *   Proofpoint v3  https://urldefense.com/v3/__<url, '*' for removed chars>__;<base64url>!!...
 *   Cisco          https://secure-web.cisco.com/<token>/<%-encoded URL>
 *   Cisco defang   BLOCKED<defanged URL>BLOCKED
 * Proofpoint's hosts urldefense.com and urldefense.proofpoint.com are both accepted for all
 * three versions, as Proofpoint's own decoder does.
 */
#include "url_unwrap.h"

#include <stdint.h>
#include <string.h>

#include "text.h"
#include "util.h"

#define BLOCKED_MARK "BLOCKED"
#define BLOCKED_MARK_LEN (sizeof(BLOCKED_MARK) - 1)

/* the pieces of a URL that the wrappers are recognised by (slices of the input) */
typedef struct {
    const char *url; /* the whole URL */
    size_t len;
    const char *host; /* without user info and port */
    size_t host_len;
    const char *rest; /* everything after the host and port: path, query, fragment */
    size_t rest_len;
} url_view_t;

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ci_equal - s (n bytes) equals the lowercase literal lit, ignoring ASCII case. */
static bool ci_equal(const char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

/* ci_prefix - s (n bytes) starts with the lowercase literal lit, ignoring ASCII case. */
static bool ci_prefix(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && ci_equal(s, l, lit);
}

/* find - first occurrence of lit in s (n bytes) at or after from, or n. */
static size_t find(const char *s, size_t n, size_t from, const char *lit)
{
    size_t l = strlen(lit);
    for (size_t i = from; i + l <= n; i++)
        if (memcmp(s + i, lit, l) == 0)
            return i;
    return n;
}

/* view_url - host and rest of url; the scheme ("x://") is optional. */
static void view_url(const char *url, size_t len, url_view_t *v)
{
    size_t p = 0;
    size_t j = 0;
    while (j < len && (is_alnum((unsigned char)url[j]) || url[j] == '+' || url[j] == '-' ||
                       url[j] == '.'))
        j++;
    if (j > 0 && j + 3 <= len && memcmp(url + j, "://", 3) == 0)
        p = j + 3;
    size_t a_end = p;
    while (a_end < len && url[a_end] != '/' && url[a_end] != '?' && url[a_end] != '#' &&
           url[a_end] != '\\')
        a_end++;
    size_t h = p;
    for (size_t k = p; k < a_end; k++)
        if (url[k] == '@')
            h = k + 1;
    const char *colon = memchr(url + h, ':', a_end - h);
    v->url = url;
    v->len = len;
    v->host = url + h;
    v->host_len = colon ? (size_t)(colon - (url + h)) : a_end - h;
    v->rest = url + a_end;
    v->rest_len = len - a_end;
}

/* host_is - the host equals name, or (suffix) ends with "." name. */
static bool host_is(const url_view_t *v, const char *name, bool suffix)
{
    size_t l = strlen(name);
    if (ci_equal(v->host, v->host_len, name))
        return true;
    return suffix && v->host_len > l + 1 && v->host[v->host_len - l - 1] == '.' &&
           ci_equal(v->host + v->host_len - l, l, name);
}

/* query_param - the raw value of the first query parameter called name (ASCII case ignored)
 * in rest; false when there is none. */
static bool query_param(const url_view_t *v, const char *name, const char **val, size_t *val_len)
{
    const char *q = memchr(v->rest, '?', v->rest_len);
    if (!q)
        return false;
    const char *end = v->rest + v->rest_len;
    const char *hash = memchr(q, '#', (size_t)(end - q));
    if (hash)
        end = hash;
    size_t nl = strlen(name);
    const char *p = q + 1;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nl && p[nl] == '=' && ci_equal(p, nl, name)) {
            *val = p + nl + 1;
            *val_len = (size_t)(stop - p) - nl - 1;
            return true;
        }
        p = stop + 1;
    }
    return false;
}

/* pct_next - the byte at s[*i] with a %XX escape decoded; advances *i. */
static unsigned char pct_next(const char *s, size_t n, size_t *i)
{
    int hi, lo;
    if (s[*i] == '%' && *i + 2 < n && (hi = text_hex_value((unsigned char)s[*i + 1])) >= 0 &&
        (lo = text_hex_value((unsigned char)s[*i + 2])) >= 0) {
        *i += 3;
        return (unsigned char)(hi * 16 + lo);
    }
    return (unsigned char)s[(*i)++];
}

/* pct_decode - append s with each %XX decoded once (a stray '%' stays as it is). */
static void pct_decode(const char *s, size_t n, strbuf_t *out)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = pct_next(s, n, &i);
        strbuf_append(out, &c, 1);
    }
}

/* html_entity - decode the entity at s[0] == '&' (n bytes available): the code point and
 * the entity's length, or 0 when it is not one we know. */
static size_t html_entity(const char *s, size_t n, uint32_t *cp)
{
    static const struct {
        const char *name;
        uint32_t cp;
    } named[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t k = 0; k < UTIL_ARRAY_LEN(named); k++) {
        size_t l = strlen(named[k].name);
        if (n >= l && memcmp(s, named[k].name, l) == 0) {
            *cp = named[k].cp;
            return l;
        }
    }
    if (n < 4 || s[1] != '#')
        return 0;
    size_t i = 2;
    unsigned base = 10;
    if (s[i] == 'x' || s[i] == 'X') {
        base = 16;
        i++;
    }
    size_t digits = i;
    uint32_t v = 0;
    while (i < n && text_hex_value((unsigned char)s[i]) >= 0 &&
           (unsigned)text_hex_value((unsigned char)s[i]) < base) {
        v = v * base + (unsigned)text_hex_value((unsigned char)s[i]);
        if (v > 0x10FFFF)
            return 0;
        i++;
    }
    if (i == digits || i >= n || s[i] != ';')
        return 0;
    if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return i + 1;
}

/* html_unescape_tail - HTML-unescape out from byte from onwards, in place (never grows). */
static void html_unescape_tail(strbuf_t *out, size_t from)
{
    if (!out->data)
        return;
    char *s = out->data;
    size_t n = out->len;
    size_t w = from;
    for (size_t r = from; r < n;) {
        uint32_t cp;
        size_t el = s[r] == '&' ? html_entity(s + r, n - r, &cp) : 0;
        if (el == 0) {
            s[w++] = s[r++];
            continue;
        }
        /* the UTF-8 of cp is never longer than the entity that spelled it */
        char b[4];
        size_t bl = text_utf8_encode(cp, b);
        memcpy(s + w, b, bl);
        w += bl;
        r += el;
    }
    out->len = w;
    s[w] = '\0';
}

/* ---------------------------------------------------------------------------- refanging */

/* scheme_defang - length of a defanged scheme at url[i] ("hxxp", "hXXps", "hxxxp", ...)
 * followed by ':' or "[:", and whether it ends in 's'; 0 when there is none. */
static size_t scheme_defang(const char *url, size_t len, size_t i, bool *secure)
{
    if (i > 0 && is_alnum((unsigned char)url[i - 1]))
        return 0;
    if (i >= len || lower((unsigned char)url[i]) != 'h')
        return 0;
    size_t j = i + 1;
    while (j < len && j - i <= 3 && lower((unsigned char)url[j]) == 'x')
        j++;
    size_t xs = j - i - 1;
    if (xs < 2 || xs > 3 || j >= len || lower((unsigned char)url[j]) != 'p')
        return 0;
    j++;
    *secure = j < len && lower((unsigned char)url[j]) == 's';
    if (*secure)
        j++;
    if (j < len && url[j] == ':')
        return j - i;
    if (j + 1 < len && url[j] == '[' && url[j + 1] == ':')
        return j - i;
    return 0;
}

bool url_refang(const char *url, size_t len, strbuf_t *out)
{
    static const struct {
        const char *from; /* lowercase; matched ignoring ASCII case */
        const char *to;
    } tokens[] = {
        {"[.]", "."},   {"(.)", "."},   {"{.}", "."},   {"[dot]", "."}, {"(dot)", "."},
        {"[://]", "://"}, {"[:]", ":"}, {"[@]", "@"},   {"[at]", "@"},
    };
    strbuf_reset(out);
    bool changed = false;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *to = NULL;
        size_t from_len = 0;
        bool secure;
        size_t sl = scheme_defang(url, len, i, &secure);
        if (sl) {
            to = secure ? "https" : "http";
            from_len = sl;
        } else if (url[i] == '[' || url[i] == '(' || url[i] == '{') {
            for (size_t k = 0; k < UTIL_ARRAY_LEN(tokens); k++) {
                if (ci_prefix(url + i, len - i, tokens[k].from)) {
                    to = tokens[k].to;
                    from_len = strlen(tokens[k].from);
                    break;
                }
            }
        }
        if (!to)
            continue;
        strbuf_append(out, url + run, i - run);
        strbuf_appends(out, to);
        run = i + from_len;
        i = run - 1;
        changed = true;
    }
    if (!changed || out->overflow) {
        strbuf_reset(out);
        return false;
    }
    strbuf_append(out, url + run, len - run);
    if (out->overflow) {
        strbuf_reset(out);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------- unwrapping */

/* unwrap_safelinks - the url parameter, percent-decoded once. */
static bool unwrap_safelinks(const url_view_t *v, strbuf_t *out)
{
    const char *val;
    size_t n;
    if (!host_is(v, "safelinks.protection.outlook.com", true) || !query_param(v, "url", &val, &n))
        return false;
    pct_decode(val, n, out);
    return true;
}

/* is_proofpoint - one of URL Defense's hosts. */
static bool is_proofpoint(const url_view_t *v)
{
    return host_is(v, "urldefense.proofpoint.com", false) || host_is(v, "urldefense.com", false);
}

/* unwrap_pp_v1 - /v1/url?u=<percent-encoded URL>. */
static bool unwrap_pp_v1(const url_view_t *v, strbuf_t *out)
{
    const char *val;
    size_t n;
    if (!is_proofpoint(v) || !ci_prefix(v->rest, v->rest_len, "/v1/url?") || !query_param(v, "u", &val, &n))
        return false;
    pct_decode(val, n, out);
    return true;
}

/* unwrap_pp_v2 - /v2/url?u=...: '-' -> '%', '_' -> '/', percent-decode, HTML-unescape. */
static bool unwrap_pp_v2(const url_view_t *v, strbuf_t *out)
{
    const char *val;
    size_t n;
    if (!is_proofpoint(v) || !ci_prefix(v->rest, v->rest_len, "/v2/url?") || !query_param(v, "u", &val, &n))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = val[i] == '-' ? '%' : val[i] == '_' ? '/' : val[i];
        int hi, lo;
        if (c == '%' && i + 2 < n && (hi = text_hex_value((unsigned char)val[i + 1])) >= 0 &&
            (lo = text_hex_value((unsigned char)val[i + 2])) >= 0) {
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        strbuf_append(out, &c, 1);
    }
    html_unescape_tail(out, 0);
    return true;
}

/* base64url reader for the Proofpoint v3 tail: bytes on demand, no buffer */
typedef struct {
    const char *s;
    size_t n, i;
    uint32_t acc;
    unsigned bits;
} b64_reader_t;

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* b64_next - the next decoded byte, or -1 at the end of the tail or on a bad character. */
static int b64_next(b64_reader_t *r)
{
    while (r->bits < 8) {
        if (r->i >= r->n || r->s[r->i] == '=')
            return -1;
        int v = b64_value((unsigned char)r->s[r->i++]);
        if (v < 0)
            return -1;
        r->acc = (r->acc << 6) | (uint32_t)v;
        r->bits += 6;
    }
    r->bits -= 8;
    return (int)((r->acc >> r->bits) & 0xFF);
}

/* b64_char - append the next UTF-8 character of the tail to out; false when there is none
 * or it is not valid UTF-8 (Proofpoint counts characters, not bytes). */
static bool b64_char(b64_reader_t *r, strbuf_t *out)
{
    int b0 = b64_next(r);
    if (b0 < 0)
        return false;
    size_t more;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b0 < 0x80) {
        more = 0;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
        more = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        more = 2;
        lo = b0 == 0xE0 ? 0xA0 : 0x80;
        hi = b0 == 0xED ? 0x9F : 0xBF;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        more = 3;
        lo = b0 == 0xF0 ? 0x90 : 0x80;
        hi = b0 == 0xF4 ? 0x8F : 0xBF;
    } else {
        return false;
    }
    char b[4] = {(char)b0};
    for (size_t k = 1; k <= more; k++) {
        int c = b64_next(r);
        unsigned min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
        if (c < 0 || (unsigned)c < min || (unsigned)c > max)
            return false;
        b[k] = (char)c;
    }
    strbuf_append(out, b, more + 1);
    return true;
}

/* v3_run_length - the length that X stands for in a "**X" token (A..Z a..z 0..9 - _ give
 * 2..65), or 0. */
static size_t v3_run_length(unsigned char c)
{
    int v = b64_value(c);
    return v < 0 ? 0 : (size_t)v + 2;
}

/* unwrap_pp_v3 - /v3/__<url>__;<tail>!...: percent-decode the url, then each '*' takes the
 * next character of the decoded tail and each "**X" the next run-length characters. */
static bool unwrap_pp_v3(const url_view_t *v, strbuf_t *out)
{
    if (!is_proofpoint(v) || !ci_prefix(v->rest, v->rest_len, "/v3/__"))
        return false;
    const char *s = v->rest;
    size_t n = v->rest_len;
    size_t u0 = 6;
    size_t u1 = find(s, n, u0 + 1, "__;");
    if (u1 >= n)
        return false;
    size_t t0 = u1 + 3;
    size_t t1 = t0;
    while (t1 < n && s[t1] != '!')
        t1++;
    b64_reader_t tail = {.s = s + t0, .n = t1 - t0};
    for (size_t i = u0; i < u1;) {
        unsigned char c = pct_next(s, u1, &i);
        if (c != '*') {
            strbuf_append(out, &c, 1);
            continue;
        }
        size_t count = 1;
        size_t j = i;
        if (j < u1 && pct_next(s, u1, &j) == '*') {
            if (j >= u1)
                return false; /* "**" with no run-length character */
            count = v3_run_length(pct_next(s, u1, &j));
            if (count == 0)
                return false;
            i = j;
        }
        for (size_t k = 0; k < count; k++)
            if (!b64_char(&tail, out))
                return false;
    }
    return true;
}

/* unwrap_cisco - the first path segment after the token that starts with http%3A or
 * https%3A, decoded once, to the end of the URL. */
static bool unwrap_cisco(const url_view_t *v, strbuf_t *out)
{
    if (!host_is(v, "secure-web.cisco.com", false))
        return false;
    const char *s = v->rest;
    size_t n = v->rest_len;
    for (size_t i = 0; i < n && s[i] != '?' && s[i] != '#'; i++) {
        if (s[i] != '/' || i == 0)
            continue;
        if (ci_prefix(s + i + 1, n - i - 1, "http%3a") || ci_prefix(s + i + 1, n - i - 1, "https%3a")) {
            pct_decode(s + i + 1, n - i - 1, out);
            return true;
        }
    }
    return false;
}

/* unwrap_blocked - BLOCKED<inner>BLOCKED (the closing marker may be missing). */
static bool unwrap_blocked(const url_view_t *v, strbuf_t *out)
{
    const char *url = v->url;
    size_t len = v->len;
    if (len <= BLOCKED_MARK_LEN || memcmp(url, BLOCKED_MARK, BLOCKED_MARK_LEN) != 0)
        return false;
    const char *in = url + BLOCKED_MARK_LEN;
    size_t n = len - BLOCKED_MARK_LEN;
    if (n >= BLOCKED_MARK_LEN && memcmp(in + n - BLOCKED_MARK_LEN, BLOCKED_MARK, BLOCKED_MARK_LEN) == 0)
        n -= BLOCKED_MARK_LEN;
    strbuf_append(out, in, n);
    return true;
}

/* the unwrappers, tried in this order; each false when the URL is not its wrapper */
static const struct {
    url_wrap_t kind;
    bool (*unwrap)(const url_view_t *v, strbuf_t *out);
} UNWRAPPERS[] = {
    {URL_WRAP_BLOCKED, unwrap_blocked},
    {URL_WRAP_SAFELINKS, unwrap_safelinks},
    {URL_WRAP_PROOFPOINT_V1, unwrap_pp_v1},
    {URL_WRAP_PROOFPOINT_V2, unwrap_pp_v2},
    {URL_WRAP_PROOFPOINT_V3, unwrap_pp_v3},
    {URL_WRAP_CISCO, unwrap_cisco},
};

url_wrap_t url_unwrap_once(const char *url, size_t len, strbuf_t *out)
{
    url_view_t v;
    view_url(url, len, &v);
    for (size_t k = 0; k < UTIL_ARRAY_LEN(UNWRAPPERS); k++) {
        strbuf_reset(out);
        if (UNWRAPPERS[k].unwrap(&v, out) && out->len > 0 && !out->overflow)
            return UNWRAPPERS[k].kind;
    }
    strbuf_reset(out);
    return URL_WRAP_NONE;
}

const char *url_wrap_name(url_wrap_t kind)
{
    switch (kind) {
    case URL_WRAP_NONE:
        return "none";
    case URL_WRAP_DEFANG:
        return "defang";
    case URL_WRAP_SAFELINKS:
        return "safelinks";
    case URL_WRAP_PROOFPOINT_V1:
        return "proofpoint_v1";
    case URL_WRAP_PROOFPOINT_V2:
        return "proofpoint_v2";
    case URL_WRAP_PROOFPOINT_V3:
        return "proofpoint_v3";
    case URL_WRAP_CISCO:
        return "cisco";
    case URL_WRAP_BLOCKED:
        return "blocked";
    }
    return "unknown";
}

int url_unwrap_layers(const char *url, size_t len, url_layer_fn fn, void *ctx)
{
    /* no layer is longer than the outer URL (see the top of this file) */
    strbuf_t buf[2];
    strbuf_init(&buf[0], len + 1);
    strbuf_init(&buf[1], len + 1);
    int layers = 1;
    fn(ctx, url, len, URL_WRAP_NONE);
    const char *cur = url;
    size_t cur_len = len;
    int next = 0;
    while (layers < URL_UNWRAP_MAX_DEPTH) {
        if (url_refang(cur, cur_len, &buf[next])) {
            cur = buf[next].data;
            cur_len = buf[next].len;
            fn(ctx, cur, cur_len, URL_WRAP_DEFANG);
            layers++;
            next ^= 1;
            if (layers >= URL_UNWRAP_MAX_DEPTH)
                break;
        }
        url_wrap_t kind = url_unwrap_once(cur, cur_len, &buf[next]);
        if (kind == URL_WRAP_NONE)
            break;
        cur = buf[next].data;
        cur_len = buf[next].len;
        fn(ctx, cur, cur_len, kind);
        layers++;
        next ^= 1;
    }
    strbuf_release(&buf[0]);
    strbuf_release(&buf[1]);
    return layers;
}
