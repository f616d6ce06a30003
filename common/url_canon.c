/*
 * url_canon.c - Google Safe Browsing v4 URL canonicalization; see url_canon.h.
 *
 * The steps, in the order the "URLs and hashing" page gives them:
 *
 *   1. drop tab, CR and LF bytes; cut the fragment at the first '#'; trim bytes <= 0x20 at
 *      both ends;
 *   2. percent-unescape until no escape is left (the whole URL, before it is split);
 *   3. split scheme, authority, path and query; drop user info and port;
 *   4. host: strip and collapse dots, lowercase, IDN to punycode, IPv4 to dotted decimal;
 *   5. path: resolve "." and "..", collapse slashes; the query is kept as it is;
 *   6. re-escape bytes <= 0x20, >= 0x7f, '#' and '%' as %XX (uppercase hex).
 *
 * Repeated unescaping is done in one pass: decoded bytes go onto a stack (the output) and
 * the top three bytes are decoded again whenever they form an escape. Escapes never overlap
 * ('%' is not a hex digit), so every order of decoding ends at the same string; this pass
 * reaches it in linear time, however deeply "%252525..." is nested.
 */
#include "url_canon.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "text.h"
#include "util.h"

/* hosts longer than this are not given to libidn2 (no DNS name is anywhere near it) */
#define URL_CANON_IDN_MAX 1024

/* a parsed URL: slices of the unescaped work buffer */
typedef struct {
    const char *scheme; /* "http", "https" or "ftp" (static) */
    const char *host;
    size_t host_len;
    const char *path; /* from the first '/' after the host, without the query */
    size_t path_len;
    const char *query; /* after '?', NULL when there is no '?' */
    size_t query_len;
} url_parts_t;

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* prepare - step 1 into buf (at least len bytes): returns the new length. */
static size_t prepare(const char *url, size_t len, char *buf)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = url[i];
        if (c == '#')
            break;
        if (c == '\t' || c == '\r' || c == '\n')
            continue;
        buf[n++] = c;
    }
    size_t start = 0;
    while (start < n && (unsigned char)buf[start] <= 0x20)
        start++;
    while (n > start && (unsigned char)buf[n - 1] <= 0x20)
        n--;
    memmove(buf, buf + start, n - start);
    return n - start;
}

/* unescape_all - step 2 in place: decode %XX until none is left; returns the new length. */
static size_t unescape_all(char *buf, size_t len)
{
    size_t w = 0;
    for (size_t r = 0; r < len; r++) {
        buf[w++] = buf[r];
        while (w >= 3 && buf[w - 3] == '%') {
            int hi = text_hex_value((unsigned char)buf[w - 2]);
            int lo = text_hex_value((unsigned char)buf[w - 1]);
            if (hi < 0 || lo < 0)
                break;
            buf[w - 3] = (char)(hi * 16 + lo);
            w -= 2;
        }
    }
    return w;
}

/* match_scheme - the canonical name of a supported scheme (s, n bytes), or NULL. */
static const char *match_scheme(const char *s, size_t n)
{
    static const char *const known[] = {"http", "https", "ftp"};
    for (size_t k = 0; k < UTIL_ARRAY_LEN(known); k++) {
        size_t kl = strlen(known[k]);
        if (kl != n)
            continue;
        size_t i = 0;
        while (i < n && lower((unsigned char)s[i]) == (unsigned char)known[k][i])
            i++;
        if (i == n)
            return known[k];
    }
    return NULL;
}

static bool ends_authority(char c)
{
    return c == '/' || c == '\\' || c == '?';
}

/* split - step 3: scheme, host (user info and port removed), path and query of s. */
static url_canon_status_t split(const char *s, size_t n, url_parts_t *u)
{
    memset(u, 0, sizeof(*u));
    u->scheme = "http";
    size_t p = 0;

    /* a scheme is letters, digits, + - . after a letter, then ':' */
    size_t j = 0;
    if (n > 0 && is_alpha((unsigned char)s[0])) {
        j = 1;
        while (j < n && (is_alpha((unsigned char)s[j]) || is_digit((unsigned char)s[j]) ||
                         s[j] == '+' || s[j] == '-' || s[j] == '.'))
            j++;
    }
    if (j > 0 && j < n && s[j] == ':') {
        const char *scheme = match_scheme(s, j);
        if (scheme) {
            u->scheme = scheme;
            p = j + 1;
            while (p < n && (s[p] == '/' || s[p] == '\\'))
                p++;
        } else {
            /* "host:8080/path" has no scheme; "mailto:x" has one we refuse */
            size_t k = j + 1;
            while (k < n && is_digit((unsigned char)s[k]))
                k++;
            if (k == j + 1 || (k < n && !ends_authority(s[k])))
                return URL_CANON_BAD_SCHEME;
        }
    } else if (n >= 2 && (s[0] == '/' || s[0] == '\\') && (s[1] == '/' || s[1] == '\\')) {
        while (p < n && (s[p] == '/' || s[p] == '\\'))
            p++; /* "//host/path": scheme-relative */
    } else if (n > 0 && (s[0] == '/' || s[0] == '\\')) {
        return URL_CANON_BAD_HOST; /* a path without a host */
    }

    size_t a_end = p;
    while (a_end < n && !ends_authority(s[a_end]))
        a_end++;
    size_t h = p;
    for (size_t k = p; k < a_end; k++)
        if (s[k] == '@')
            h = k + 1;

    /* host and port */
    size_t h_end;
    if (h < a_end && s[h] == '[') {
        const char *close = memchr(s + h, ']', a_end - h);
        if (!close)
            return URL_CANON_BAD_HOST;
        h_end = (size_t)(close - s) + 1;
        if (h_end < a_end && s[h_end] != ':')
            return URL_CANON_BAD_HOST;
    } else {
        const char *colon = memchr(s + h, ':', a_end - h);
        h_end = colon ? (size_t)(colon - s) : a_end;
    }
    u->host = s + h;
    u->host_len = h_end - h;

    size_t q = a_end;
    while (q < n && s[q] != '?')
        q++;
    u->path = s + a_end;
    u->path_len = q - a_end;
    if (q < n) {
        u->query = s + q + 1;
        u->query_len = n - q - 1;
    }
    return URL_CANON_OK;
}

/* parse_ipv4_part - one dotted part in Chrome's syntax (0x hex, leading-0 octal, decimal);
 * false when it is not a number. *value saturates above 0xffffffff. */
static bool parse_ipv4_part(const char *s, size_t n, uint64_t *value)
{
    unsigned base = 10;
    size_t i = 0;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    } else if (n >= 2 && s[0] == '0') {
        base = 8;
        i = 1;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        int d = text_hex_value((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= base)
            return false;
        if (v <= UINT32_MAX)
            v = v * base + (unsigned)d;
    }
    *value = v;
    return true;
}

/* parse_ipv4 - host (dots already collapsed) as an IPv4 address in any legal form: 1 and the
 * address in *addr, 0 when it is not an address (a host name), -1 when it is numeric but out
 * of range. */
static int parse_ipv4(const char *h, size_t n, uint32_t *addr)
{
    uint64_t parts[4];
    size_t count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && h[i] != '.')
            continue;
        if (count == 4 || i == start)
            return 0;
        if (!parse_ipv4_part(h + start, i - start, &parts[count]))
            return 0;
        count++;
        start = i + 1;
    }
    if (count == 0)
        return 0;
    uint64_t v = 0;
    for (size_t k = 0; k + 1 < count; k++) {
        if (parts[k] > 255)
            return -1;
        v = (v << 8) | parts[k];
    }
    unsigned last_bits = 8 * (unsigned)(5 - count);
    uint64_t last = parts[count - 1];
    if (last >= ((uint64_t)1 << last_bits))
        return -1;
    *addr = (uint32_t)((v << last_bits) | last);
    return 1;
}

/* clean_dots - lowercase ASCII, strip leading and trailing dots, collapse runs of dots. */
static void clean_dots(const char *h, size_t n, strbuf_t *out)
{
    strbuf_reset(out);
    bool pending_dot = false;
    for (size_t i = 0; i < n; i++) {
        char c = (char)lower((unsigned char)h[i]);
        if (c == '.') {
            pending_dot = out->len > 0;
            continue;
        }
        if (pending_dot)
            strbuf_append(out, ".", 1);
        pending_dot = false;
        strbuf_append(out, &c, 1);
    }
}

/* to_punycode - replace a non-ASCII host in h by its IDNA form; left as it is on failure. */
static void to_punycode(strbuf_t *h)
{
    bool ascii = true;
    for (size_t i = 0; i < h->len; i++) {
        if ((unsigned char)h->data[i] >= 0x80)
            ascii = false;
        if (h->data[i] == '\0')
            return; /* libidn2 wants a C string */
    }
    if (ascii || h->len > URL_CANON_IDN_MAX)
        return;
    static const int flags[] = {IDN2_NONTRANSITIONAL, IDN2_TRANSITIONAL};
    for (size_t k = 0; k < UTIL_ARRAY_LEN(flags); k++) {
        char *ace = NULL;
        if (idn2_to_ascii_8z(h->data, &ace, flags[k]) == IDN2_OK && ace) {
            clean_dots(ace, strlen(ace), h);
            idn2_free(ace);
            return;
        }
        idn2_free(ace);
    }
}

/* canon_host - step 4 into out (raw bytes, escaped later). */
static url_canon_status_t canon_host(const char *h, size_t n, strbuf_t *out)
{
    strbuf_reset(out);
    if (n > 0 && h[0] == '[') {
        /* IPv6 literal: kept as written, lowercased; only hex digits, ':' and '.' inside */
        bool colon = false;
        for (size_t i = 1; i + 1 < n; i++) {
            unsigned char c = (unsigned char)h[i];
            if (text_hex_value(c) < 0 && c != ':' && c != '.')
                return URL_CANON_BAD_HOST;
            colon |= c == ':';
        }
        if (!colon)
            return URL_CANON_BAD_HOST;
        for (size_t i = 0; i < n; i++) {
            char c = (char)lower((unsigned char)h[i]);
            strbuf_append(out, &c, 1);
        }
        return URL_CANON_OK;
    }
    clean_dots(h, n, out);
    to_punycode(out);
    /* empty, or "..[x": a '[' that would read as the start of an IPv6 literal */
    if (out->len == 0 || out->data[0] == '[')
        return URL_CANON_BAD_HOST;
    uint32_t addr;
    int ip = parse_ipv4(out->data, out->len, &addr);
    if (ip < 0)
        return URL_CANON_BAD_HOST;
    if (ip > 0) {
        strbuf_reset(out);
        strbuf_appendf(out, "%u.%u.%u.%u", (unsigned)(addr >> 24), (unsigned)(addr >> 16) & 255,
                       (unsigned)(addr >> 8) & 255, (unsigned)addr & 255);
    }
    return URL_CANON_OK;
}

/* canon_path - step 5: '\' counts as '/', empty segments and "." go, ".." removes the segment
 * before it; the result starts with '/' and ends with one when the input did, or when its
 * last segment was "." or "..". */
static void canon_path(const char *p, size_t n, strbuf_t *out)
{
    strbuf_reset(out);
    strbuf_append(out, "/", 1);
    bool trailing = true; /* out ends with a '/' that belongs in the result */
    size_t i = 0;
    while (i < n) {
        if (p[i] == '/' || p[i] == '\\') {
            i++;
            continue;
        }
        size_t e = i;
        while (e < n && p[e] != '/' && p[e] != '\\')
            e++;
        size_t sl = e - i;
        if (sl == 1 && p[i] == '.') {
            trailing = true;
        } else if (sl == 2 && p[i] == '.' && p[i + 1] == '.') {
            if (out->len > 1) {
                size_t k = out->len - 1; /* the '/' after the last segment */
                while (k > 0 && out->data[k - 1] != '/')
                    k--;
                out->len = k;
                out->data[k] = '\0';
            }
            trailing = true;
        } else {
            strbuf_append(out, p + i, sl);
            strbuf_append(out, "/", 1);
            trailing = e < n;
        }
        i = e;
    }
    if (!trailing && out->len > 1) {
        out->len--;
        out->data[out->len] = '\0';
    }
}

/* append_escaped - step 6: append s with bytes <= 0x20, >= 0x7f, '#' and '%' as %XX. */
static void append_escaped(strbuf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0; /* bytes at the start of s not yet appended */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c < 0x7f && c != '#' && c != '%')
            continue;
        strbuf_append(out, s + run, i - run);
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        strbuf_append(out, esc, 3);
        run = i + 1;
    }
    strbuf_append(out, s + run, n - run);
}

url_canon_status_t url_canon(const char *url, size_t len, strbuf_t *out)
{
    strbuf_reset(out);
    if (len > URL_CANON_MAX_INPUT)
        return URL_CANON_TOO_LONG;
    char *work = util_xmalloc(len + 1);
    size_t n = prepare(url, len, work);
    url_canon_status_t st = URL_CANON_EMPTY;
    strbuf_t host, path;
    strbuf_init(&host, 0);
    strbuf_init(&path, 0);
    url_parts_t u;
    if (n == 0)
        goto done;
    n = unescape_all(work, n);
    st = split(work, n, &u);
    if (st != URL_CANON_OK)
        goto done;
    st = canon_host(u.host, u.host_len, &host);
    if (st != URL_CANON_OK)
        goto done;
    canon_path(u.path, u.path_len, &path);

    strbuf_appends(out, u.scheme);
    strbuf_append(out, "://", 3);
    append_escaped(out, host.data, host.len);
    append_escaped(out, path.data, path.len);
    if (u.query) {
        strbuf_append(out, "?", 1);
        append_escaped(out, u.query, u.query_len);
    }
    if (out->overflow) {
        strbuf_reset(out);
        st = URL_CANON_TOO_LONG;
    }
done:
    strbuf_release(&host);
    strbuf_release(&path);
    free(work);
    return st;
}

const char *url_canon_strerror(url_canon_status_t status)
{
    switch (status) {
    case URL_CANON_OK:
        return "ok";
    case URL_CANON_EMPTY:
        return "empty URL";
    case URL_CANON_TOO_LONG:
        return "URL too long";
    case URL_CANON_BAD_SCHEME:
        return "scheme is not http, https or ftp";
    case URL_CANON_BAD_HOST:
        return "no usable host";
    }
    return "unknown status";
}

const char *url_canon_host(const char *canon, size_t *host_len)
{
    if (!canon)
        return NULL;
    const char *p = canon;
    while (is_alpha((unsigned char)*p))
        p++;
    if (p == canon || strncmp(p, "://", 3) != 0)
        return NULL;
    const char *host = p + 3;
    size_t n = strcspn(host, "/?");
    if (n == 0)
        return NULL;
    *host_len = n;
    return host;
}
