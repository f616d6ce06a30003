/*
 * url_find.c - find URL candidates in plain text and HTML; see url_find.h.
 *
 * Plain text is read once, left to right. The scanner skips to the next byte that can start a
 * candidate (the ':' of a scheme, the 'w' of www., the 'B' of BLOCKED, the '<' of an
 * angle-bracket URL), decides there, and resumes after the candidate. Only angle-bracket URLs
 * are copied (to drop their line breaks); everything else is reported in place.
 *
 * HTML goes through libxml2's push parser in SAX mode. Two properties of libxml2 2.9 shape
 * this half:
 *   - Its work is not linear on hostile markup: every attribute of a start tag is compared
 *     with the earlier ones, and an end tag searches the element stack. So the parser is fed
 *     in small chunks, the work each chunk caused is estimated from the callbacks (attributes
 *     per tag, depth times end tags), a chunk that completes a large pending tag is priced
 *     before libxml2 sees it, and once the estimate passes a budget proportional to the input
 *     (or the element depth passes HTML_MAX_DEPTH) libxml2 is abandoned: the rest of the
 *     document is read by the small tokenizer at the end of this file, which is linear.
 *   - Its push parser stalls until the end of the input when a chunk ends inside a quoted
 *     attribute value (the resumed lookup for '>' forgets the quote character), so chunks are
 *     extended past quoted values.
 * Bytes libxml2 must not see (NUL, the C0 controls other than TAB, LF and CR, and bytes that
 * are not valid UTF-8) are replaced by spaces first. The replacement keeps the length, so
 * libxml2's position in its input is a position in ours.
 */
#include "url_find.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "strbuf.h"
#include "text.h"
#include "util.h"

/* How far an angle-bracket URL, with the whitespace of its line breaks, is looked for. */
#define BRACKET_SCAN_MAX (2 * URL_FIND_MAX_URL + 256)

/* Visible text and <style> content are scanned in runs of at most this many bytes. */
#define HTML_RUN_MAX 65536
/* Attribute values, base URLs and <meta> content are kept up to this many bytes. */
#define HTML_VALUE_MAX (2 * URL_FIND_MAX_URL)
/* libxml2 is fed this many bytes at a time (more to finish a quoted value). */
#define HTML_CHUNK 4096
/* Deeper element nesting than this is left to the fallback tokenizer. */
#define HTML_MAX_DEPTH 2048
/* Work allowed to libxml2, in string comparisons: a base plus so much per input byte. */
#define HTML_COST_BASE (16u << 20)
#define HTML_COST_PER_BYTE 8u

/* ---- reporting ------------------------------------------------------------------------ */

typedef struct {
    url_found_fn fn;
    void *ctx;
    size_t count;
} url_sink_t;

/* sink_full - the caller has had URL_FIND_MAX_PER_PART candidates. */
static bool sink_full(const url_sink_t *sink)
{
    return sink->count >= URL_FIND_MAX_PER_PART;
}

/* sink_report - hand one candidate to the caller, cut to URL_FIND_MAX_URL bytes at a UTF-8
 * character boundary. */
static void sink_report(url_sink_t *sink, const char *url, size_t len, url_origin_t origin)
{
    if (len == 0 || sink_full(sink))
        return;
    if (len > URL_FIND_MAX_URL) {
        len = URL_FIND_MAX_URL;
        while (len > 0 && ((unsigned char)url[len] & 0xC0) == 0x80)
            len--;
    }
    sink->count++;
    sink->fn(sink->ctx, url, len, origin);
}

/* ---- characters ----------------------------------------------------------------------- */

/* is_alpha, is_digit, is_alnum, to_lower - ASCII only, whatever the locale. */
static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

static unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* lower_eq - the n bytes at p equal the lower-case ASCII string s, ignoring case. */
static bool lower_eq(const void *p, const char *s, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (to_lower(b[i]) != (unsigned char)s[i])
            return false;
    return true;
}

/* html_space - whitespace as HTML and CSS know it. */
static bool html_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

enum { NONASCII_URL, NONASCII_END, NONASCII_DOT };

/* nonascii_class - whether a non-ASCII character belongs in a URL (letters and most symbols:
 * IRIs), ends it (spaces, invisible and direction controls, quotation marks, CJK brackets and
 * punctuation, U+FFFD), or is an ideographic full stop (a label separator in a host, the end
 * of a sentence after it). */
static int nonascii_class(uint32_t cp)
{
    static const struct {
        uint32_t lo, hi;
    } END[] = {
        {0x0080, 0x00A0}, /* C1 controls, no-break space */
        {0x00AB, 0x00AB}, /* « */
        {0x00BB, 0x00BB}, /* » */
        {0x1680, 0x1680}, /* ogham space */
        {0x180E, 0x180E}, /* Mongolian vowel separator */
        {0x2000, 0x200F}, /* spaces, zero-width characters, direction marks */
        {0x2013, 0x2014}, /* en and em dash */
        {0x2018, 0x201F}, /* quotation marks */
        {0x2022, 0x2022}, /* bullet */
        {0x2026, 0x2026}, /* ellipsis */
        {0x2028, 0x202F}, /* line and paragraph separators, embeddings, narrow no-break space */
        {0x2039, 0x203A}, /* single guillemets */
        {0x205F, 0x206F}, /* medium space, invisible operators, isolates */
        {0x3000, 0x3001}, /* ideographic space and comma */
        {0x3008, 0x3011}, /* CJK brackets */
        {0xFEFF, 0xFEFF}, /* zero-width no-break space */
        {0xFF01, 0xFF01}, /* fullwidth ! */
        {0xFF08, 0xFF09}, /* fullwidth ( ) */
        {0xFF0C, 0xFF0C}, /* fullwidth , */
        {0xFF1A, 0xFF1B}, /* fullwidth : ; */
        {0xFF1F, 0xFF1F}, /* fullwidth ? */
        {0xFFF9, 0xFFFF}, /* specials, U+FFFD */
    };
    if (cp == 0x3002 || cp == 0xFF0E || cp == 0xFF61)
        return NONASCII_DOT;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(END); i++)
        if (cp >= END[i].lo && cp <= END[i].hi)
            return NONASCII_END;
    return NONASCII_URL;
}

/* ascii_url_char - printable ASCII except space and < > " ` \, which never appear in a URL
 * in running text. */
static bool ascii_url_char(unsigned char c)
{
    return c > 0x20 && c < 0x7F && c != '<' && c != '>' && c != '"' && c != '`' && c != '\\';
}

/* url_char_at - byte length of the URL character at p[k] (k < len), 0 when p[k] ends a URL.
 * in_host tells whether the host is still being read (an ideographic full stop continues a
 * host but ends a path). */
static size_t url_char_at(const unsigned char *p, size_t len, size_t k, bool in_host)
{
    if (p[k] < 0x80)
        return ascii_url_char(p[k]) ? 1 : 0;
    uint32_t cp;
    size_t n = text_utf8_decode(p + k, len - k, &cp);
    if (n == 0)
        return 0;
    int cls = nonascii_class(cp);
    if (cls == NONASCII_END || (cls == NONASCII_DOT && !in_host))
        return 0;
    return n;
}

/* host_start_at - p[k] can begin a host name: an ASCII letter or digit, or a non-ASCII letter. */
static bool host_start_at(const unsigned char *p, size_t len, size_t k)
{
    if (k >= len)
        return false;
    if (p[k] < 0x80)
        return is_alnum(p[k]);
    return url_char_at(p, len, k, true) > 0;
}

/* has_host_char - [from, to) holds a letter or digit, so it is more than punctuation. */
static bool has_host_char(const unsigned char *p, size_t from, size_t to)
{
    for (size_t k = from; k < to; k++)
        if (p[k] >= 0x80 || is_alnum(p[k]))
            return true;
    return false;
}

/* ---- plain text ----------------------------------------------------------------------- */

/* url_extent - end of the run of URL characters that starts at p[from]. */
static size_t url_extent(const unsigned char *p, size_t len, size_t from)
{
    bool in_host = true;
    size_t k = from;
    while (k < len) {
        unsigned char c = p[k];
        if (c == '/' || c == '?' || c == '#')
            in_host = false;
        size_t n = url_char_at(p, len, k, in_host);
        if (n == 0)
            break;
        k += n;
    }
    return k;
}

/* url_trim - end of the URL [start, end) without the punctuation that ends a sentence around
 * it: . , ; : ! ? ' " * and an ideographic full stop, and a closing ) ] } that has no opening
 * one inside the URL. */
static size_t url_trim(const unsigned char *p, size_t start, size_t end)
{
    static const char OPEN[] = "([{", CLOSE[] = ")]}";
    size_t open[3] = {0, 0, 0}, close[3] = {0, 0, 0};
    for (size_t k = start; k < end; k++) {
        for (int b = 0; b < 3; b++) {
            open[b] += p[k] == (unsigned char)OPEN[b];
            close[b] += p[k] == (unsigned char)CLOSE[b];
        }
    }
    while (end > start) {
        unsigned char c = p[end - 1];
        const char *closer = c ? strchr(CLOSE, c) : NULL;
        if (c && strchr(".,;:!?'\"*", c)) {
            end--;
        } else if (closer && close[closer - CLOSE] > open[closer - CLOSE]) {
            close[closer - CLOSE]--;
            end--;
        } else if (end - start >= 3 && (memcmp(p + end - 3, "\xE3\x80\x82", 3) == 0 ||
                                        memcmp(p + end - 3, "\xEF\xBC\x8E", 3) == 0 ||
                                        memcmp(p + end - 3, "\xEF\xBD\xA1", 3) == 0)) {
            end -= 3;
        } else {
            break;
        }
    }
    return end;
}

/* scheme_len - n is the length of a scheme this finder knows (http, https, ftp, and the
 * defanged hxxp, hxxps in any case) and the n bytes at p are it. */
static bool scheme_is(const unsigned char *p, size_t n)
{
    switch (n) {
    case 3:
        return lower_eq(p, "ftp", 3);
    case 4:
        return lower_eq(p, "http", 4) || lower_eq(p, "hxxp", 4);
    case 5:
        return lower_eq(p, "https", 5) || lower_eq(p, "hxxps", 5);
    default:
        return false;
    }
}

/* scheme_len_before - length of the known scheme that ends at p[end] (exclusive), not
 * reaching before min_start; 0 when there is none. Letters before the scheme are allowed. */
static size_t scheme_len_before(const unsigned char *p, size_t min_start, size_t end)
{
    size_t n = 0;
    while (n < 5 && end - n > min_start && is_alpha(p[end - n - 1]))
        n++;
    for (size_t len = n; len >= 3; len--)
        if (scheme_is(p + end - len, len))
            return len;
    return 0;
}

/* try_scheme - at the ':' of "scheme://" or "scheme[:]//" (p[i]), report the URL. Returns
 * where scanning resumes, 0 when there is no URL here. */
static size_t try_scheme(url_sink_t *sink, const unsigned char *p, size_t len,
                         size_t min_start, size_t i)
{
    size_t scheme_end, host;
    if (len - i >= 3 && p[i + 1] == '/' && p[i + 2] == '/') {
        scheme_end = i;
        host = i + 3;
    } else if (i > min_start && p[i - 1] == '[' && len - i >= 4 && p[i + 1] == ']' &&
               p[i + 2] == '/' && p[i + 3] == '/') {
        scheme_end = i - 1;
        host = i + 4;
    } else {
        return 0;
    }
    size_t slen = scheme_len_before(p, min_start, scheme_end);
    if (slen == 0)
        return 0;
    size_t start = scheme_end - slen;
    size_t end = url_extent(p, len, host);
    size_t cut = url_trim(p, start, end);
    /* "http://" followed by punctuation only is not a URL; nothing in it can start one */
    if (cut > host && has_host_char(p, host, cut))
        sink_report(sink, (const char *)p + start, cut - start, URL_FROM_TEXT);
    return end > host ? end : 0;
}

/* try_www - at a 'w' (p[i]): report a bare host "www.<host>..." that does not continue a word,
 * a host name, an e-mail address or a path. */
static size_t try_www(url_sink_t *sink, const unsigned char *p, size_t len, size_t i)
{
    if (len - i < 5 || to_lower(p[i + 1]) != 'w' || to_lower(p[i + 2]) != 'w' || p[i + 3] != '.')
        return 0;
    if (i > 0) {
        unsigned char prev = p[i - 1];
        if (is_alnum(prev) || prev == '.' || prev == '-' || prev == '_' || prev == '@' ||
            prev == '/' || prev == '\\')
            return 0;
    }
    if (!host_start_at(p, len, i + 4))
        return 0;
    size_t end = url_extent(p, len, i);
    sink_report(sink, (const char *)p + i, url_trim(p, i, end) - i, URL_FROM_TEXT);
    return end;
}

/* is_host_byte - an ASCII letter, digit or '-' (a byte of a host name label). */
static bool is_host_byte(unsigned char c)
{
    return is_alnum(c) || c == '-';
}

/* known_tld - the label (n bytes) is a top-level domain of the public suffix list (ICANN
 * section, without the implicit "*" rule, so "html" or "txt" are not). */
static bool known_tld(const unsigned char *label, size_t n)
{
    char tld[64];
    if (n < 2 || n >= sizeof(tld))
        return false;
    for (size_t k = 0; k < n; k++) {
        if (!is_alnum(label[k]) && label[k] != '-')
            return false;
        tld[k] = (char)to_lower(label[k]);
    }
    tld[n] = '\0';
    if (is_digit((unsigned char)tld[0]))
        return false;
    return psl_is_public_suffix2(psl_builtin(), tld, PSL_TYPE_ICANN | PSL_TYPE_NO_STAR_RULE) != 0;
}

/* try_bare_host - at a '.' (p[i]) inside a word: report a bare host name whose last label is
 * a known top-level domain ("example.com", "sf.net/x"), as mail readers link them. Not when
 * the name continues a word, a path or an address ('@' before or after it); "ftp." hosts are
 * reported with ftp://, the others as found (the caller's canonicalization adds http). */
static size_t try_bare_host(url_sink_t *sink, const unsigned char *p, size_t len, size_t min_start,
                            size_t i)
{
    if (i == 0 || i + 2 >= len || !is_alnum(p[i - 1]) || !is_alnum(p[i + 1]))
        return 0;
    size_t start = i;
    while (start > min_start && i - start < 253 && (is_host_byte(p[start - 1]) || p[start - 1] == '.'))
        start--;
    if (start > 0) {
        unsigned char prev = p[start - 1];
        if (prev >= 0x80 || prev == '@' || prev == '/' || prev == '\\' || prev == '_' || prev == '%' ||
            prev == '=' || prev == '&' || prev == '?' || prev == '#' || prev == '+' || prev == '~' || prev == ':' ||
            is_host_byte(prev) || prev == '.')
            return 0;
    }
    if (!is_alnum(p[start]))
        return 0;
    size_t host_end = i;
    while (host_end < len && host_end - start < 253 && (is_host_byte(p[host_end]) || p[host_end] == '.'))
        host_end++;
    while (host_end > i && (p[host_end - 1] == '.' || p[host_end - 1] == '-'))
        host_end--;
    if (host_end < len && (p[host_end] == '@' || p[host_end] >= 0x80 || p[host_end] == '_'))
        return 0;
    /* the last label: a known top-level domain; no empty label on the way */
    size_t last = host_end;
    while (last > start && p[last - 1] != '.')
        last--;
    for (size_t k = start + 1; k < host_end; k++)
        if (p[k] == '.' && p[k - 1] == '.')
            return 0;
    /* not a host: nothing was reported, so nothing is consumed (a scheme glued after it, as
     * in "Sign in.https://x", must still be found) */
    if (last <= start || !known_tld(p + last, host_end - last))
        return 0;
    size_t end = host_end;
    if (host_end < len && (p[host_end] == '/' || p[host_end] == ':' || p[host_end] == '?'))
        end = url_trim(p, start, url_extent(p, len, start));
    if (end < host_end)
        end = host_end;
    if (end - start > 4 && lower_eq(p + start, "ftp.", 4) && end - start + 6 <= URL_FIND_MAX_URL) {
        char buf[URL_FIND_MAX_URL];
        memcpy(buf, "ftp://", 6);
        memcpy(buf + 6, p + start, end - start);
        sink_report(sink, buf, end - start + 6, URL_FROM_TEXT);
    } else {
        sink_report(sink, (const char *)p + start, end - start, URL_FROM_TEXT);
    }
    return end;
}

/* try_blocked - at a 'B' (p[i]): report Cisco's "BLOCKED<defanged URL>BLOCKED" whole, markers
 * included. */
static size_t try_blocked(url_sink_t *sink, const unsigned char *p, size_t len, size_t i)
{
    static const char MARK[] = "BLOCKED";
    const size_t mark_len = sizeof(MARK) - 1;
    if (len - i < 2 * mark_len + 1 || memcmp(p + i, MARK, mark_len) != 0)
        return 0;
    bool host = false;
    size_t k = i + mark_len;
    while (k < len && k - i <= URL_FIND_MAX_URL) {
        if (p[k] == 'B' && len - k >= mark_len && memcmp(p + k, MARK, mark_len) == 0) {
            if (!host)
                return 0;
            sink_report(sink, (const char *)p + i, k + mark_len - i, URL_FROM_TEXT);
            return k + mark_len;
        }
        size_t n = url_char_at(p, len, k, true);
        if (n == 0)
            return 0;
        host = host || n > 1 || is_alnum(p[k]);
        k += n;
    }
    return 0;
}

/* try_bracket - at a '<' (p[i]): report "<URL>" or "<URL:URL>" whose URL the mailer may have
 * wrapped over lines; the line breaks and the spaces and tabs around them are dropped. Other
 * whitespace, a character that cannot be in a URL, or no '>' in reach: no bracket URL (the
 * ordinary scan then finds what there is). */
static size_t try_bracket(url_sink_t *sink, const unsigned char *p, size_t len, size_t i)
{
    size_t j = i + 1, host;
    if (len - j >= 4 && lower_eq(p + j, "url:", 4)) {
        j += 4;
        while (j < len && (p[j] == ' ' || p[j] == '\t'))
            j++;
    }
    if (len - j >= 5 && lower_eq(p + j, "www.", 4) && host_start_at(p, len, j + 4)) {
        host = j;
    } else {
        size_t s = j;
        while (s < len && s - j < 6 && is_alpha(p[s]))
            s++;
        if (!scheme_is(p + j, s - j))
            return 0;
        if (len - s >= 3 && memcmp(p + s, "://", 3) == 0)
            host = s + 3;
        else if (len - s >= 5 && memcmp(p + s, "[:]//", 5) == 0)
            host = s + 5;
        else
            return 0;
    }
    char buf[URL_FIND_MAX_URL];
    size_t n = 0;
    bool full = false, in_host = true;
    size_t limit = len - i > BRACKET_SCAN_MAX ? i + BRACKET_SCAN_MAX : len;
    size_t k = j;
    while (k < limit && p[k] != '>') {
        unsigned char c = p[k];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            bool line_break = false;
            while (k < limit && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r' || p[k] == '\n')) {
                line_break = line_break || p[k] == '\r' || p[k] == '\n';
                k++;
            }
            if (!line_break)
                return 0;
            continue;
        }
        if (k >= host && (c == '/' || c == '?' || c == '#'))
            in_host = false;
        size_t m = url_char_at(p, len, k, in_host);
        if (m == 0)
            return 0;
        if (!full && n + m <= sizeof(buf)) {
            memcpy(buf + n, p + k, m);
            n += m;
        } else {
            full = true;
        }
        k += m;
    }
    if (k >= limit || !has_host_char((const unsigned char *)buf, host - j, n))
        return 0;
    sink_report(sink, buf, n, URL_FROM_TEXT);
    return k + 1;
}

/* The bytes at which a candidate can be recognised. */
static const bool TRIGGER[256] = {[':'] = true, ['w'] = true, ['W'] = true, ['B'] = true,
                                  ['<'] = true, ['.'] = true};

/* text_scan - report the candidates in text (len bytes) to sink. */
static void text_scan(url_sink_t *sink, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0, min_start = 0; /* bytes before min_start belong to a reported candidate */
    while (!sink_full(sink)) {
        while (i < len && !TRIGGER[p[i]])
            i++;
        if (i >= len)
            break;
        size_t next;
        switch (p[i]) {
        case ':':
            next = try_scheme(sink, p, len, min_start, i);
            break;
        case '<':
            next = try_bracket(sink, p, len, i);
            break;
        case 'B':
            next = try_blocked(sink, p, len, i);
            break;
        case '.':
            next = try_bare_host(sink, p, len, min_start, i);
            break;
        default:
            next = try_www(sink, p, len, i);
            break;
        }
        if (next > i)
            i = min_start = next;
        else
            i++;
    }
}

size_t url_find_text(const char *text, size_t len, url_found_fn fn, void *ctx)
{
    url_sink_t sink = {fn, ctx, 0};
    if (text)
        text_scan(&sink, text, len);
    return sink.count;
}

/* ---- HTML: references ----------------------------------------------------------------- */

enum { RAW_NONE, RAW_SCRIPT, RAW_STYLE };

/* One HTML document being read, by libxml2 and then perhaps by the fallback tokenizer. */
typedef struct {
    url_sink_t sink;
    htmlParserCtxtPtr parser; /* while libxml2 is reading ... */
    const char *input;        /* ... this (input_len bytes) */
    size_t input_len;
    strbuf_t run;             /* visible text not yet scanned */
    strbuf_t css;             /* <style> content not yet scanned */
    strbuf_t base;            /* the base URL, empty when none */
    strbuf_t value;           /* an attribute value being cleaned */
    strbuf_t resolved;        /* a reference resolved against base */
    strbuf_t scratch;         /* the merged path while resolving */
    strbuf_t meta_content;    /* content="..." of the current <meta> */
    strbuf_t decoded;         /* an attribute value decoded by the fallback tokenizer */
    bool meta_refresh;        /* the current <meta> has http-equiv="refresh" */
    bool meta_has_content;
    int raw;                  /* inside <script> or <style> */
    size_t depth;             /* libxml2's element depth */
    size_t chunk_depth;       /* the largest depth during the current chunk */
    size_t last_event;        /* input position after the previous callback */
    uint64_t cost;            /* estimated work libxml2 did so far */
    bool stop;                /* libxml2 is abandoned ... */
    size_t stop_at;           /* ... and the fallback resumes here */
} html_state_t;

enum { REF_RELATIVE, REF_WEB, REF_OTHER };

/* ref_kind - a reference is relative (no scheme), a web URL (http, https, ftp) or anything
 * else (javascript:, mailto:, cid:, data:, tel:, ...). */
static int ref_kind(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_alpha((unsigned char)s[0]))
        return REF_RELATIVE;
    while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i == n || s[i] != ':')
        return REF_RELATIVE;
    if ((i == 4 && lower_eq(s, "http", 4)) || (i == 5 && lower_eq(s, "https", 5)) ||
        (i == 3 && lower_eq(s, "ftp", 3)))
        return REF_WEB;
    return REF_OTHER;
}

/* clean_value - v (n bytes) as a browser reads a URL from an attribute: without the controls
 * and spaces around it and without the TAB, LF and CR inside; into out, cut to HTML_VALUE_MAX. */
static void clean_value(strbuf_t *out, const char *v, size_t n)
{
    strbuf_reset(out);
    while (n > 0 && (unsigned char)v[0] <= 0x20) {
        v++;
        n--;
    }
    while (n > 0 && (unsigned char)v[n - 1] <= 0x20)
        n--;
    size_t i = 0;
    while (i < n && out->len < HTML_VALUE_MAX) {
        size_t j = i;
        while (j < n && v[j] != '\t' && v[j] != '\n' && v[j] != '\r')
            j++;
        size_t take = j - i, room = HTML_VALUE_MAX - out->len;
        strbuf_append(out, v + i, take < room ? take : room);
        i = j + 1;
    }
}

/* path_pop - remove the last segment and the '/' before it from out, not before root. */
static void path_pop(strbuf_t *out, size_t root)
{
    size_t k = out->len;
    while (k > root && out->data[k - 1] != '/')
        k--;
    if (k > root)
        k--;
    out->len = k;
    out->data[k] = '\0';
}

/* remove_dots - append path (n bytes, modified) to out without its "." and ".." segments
 * (RFC 3986 section 5.2.4). */
static void remove_dots(strbuf_t *out, char *in, size_t n)
{
    size_t root = out->len, i = 0;
    while (i < n) {
        size_t left = n - i;
        const char *s = in + i;
        if (left >= 3 && memcmp(s, "../", 3) == 0) {
            i += 3;
        } else if (left >= 2 && memcmp(s, "./", 2) == 0) {
            i += 2;
        } else if (left >= 3 && memcmp(s, "/./", 3) == 0) {
            i += 2;
        } else if (left == 2 && memcmp(s, "/.", 2) == 0) {
            in[i + 1] = '/';
            i += 1;
        } else if (left >= 4 && memcmp(s, "/../", 4) == 0) {
            i += 3;
            path_pop(out, root);
        } else if (left == 3 && memcmp(s, "/..", 3) == 0) {
            in[i + 2] = '/';
            i += 2;
            path_pop(out, root);
        } else if ((left == 1 && s[0] == '.') || (left == 2 && memcmp(s, "..", 2) == 0)) {
            i = n;
        } else {
            size_t j = i + (s[0] == '/');
            while (j < n && in[j] != '/')
                j++;
            strbuf_append(out, s, j - i);
            i = j;
        }
    }
}

/* uri_resolve - the target of the relative reference ref against the absolute URL base
 * (RFC 3986 section 5.2.2), into out; scratch is working space. */
static void uri_resolve(const strbuf_t *base, const char *ref, size_t rlen, strbuf_t *out,
                        strbuf_t *scratch)
{
    const char *b = base->data;
    size_t blen = base->len;
    size_t scheme_end = (size_t)((const char *)memchr(b, ':', blen) - b) + 1;
    size_t auth_end = scheme_end;
    if (blen - auth_end >= 2 && b[auth_end] == '/' && b[auth_end + 1] == '/') {
        auth_end += 2;
        while (auth_end < blen && b[auth_end] != '/' && b[auth_end] != '?' && b[auth_end] != '#')
            auth_end++;
    }
    size_t path_end = auth_end;
    while (path_end < blen && b[path_end] != '?' && b[path_end] != '#')
        path_end++;
    size_t query_end = path_end;
    while (query_end < blen && b[query_end] != '#')
        query_end++;
    size_t rpath_end = 0;
    while (rpath_end < rlen && ref[rpath_end] != '?' && ref[rpath_end] != '#')
        rpath_end++;

    strbuf_reset(out);
    strbuf_reset(scratch);
    if (rlen >= 2 && ref[0] == '/' && ref[1] == '/') {
        /* network-path reference: only the scheme comes from the base */
        size_t a = 2;
        while (a < rpath_end && ref[a] != '/')
            a++;
        strbuf_append(out, b, scheme_end);
        strbuf_append(out, ref, a);
        strbuf_append(scratch, ref + a, rpath_end - a);
    } else {
        strbuf_append(out, b, auth_end);
        if (rpath_end == 0) {
            strbuf_append(out, b + auth_end, path_end - auth_end);
            if (rlen == 0 || ref[0] != '?')
                strbuf_append(out, b + path_end, query_end - path_end);
        } else if (ref[0] == '/') {
            strbuf_append(scratch, ref, rpath_end);
        } else {
            /* merge with the directory of the base path */
            size_t dir = path_end;
            while (dir > auth_end && b[dir - 1] != '/')
                dir--;
            if (dir == auth_end && auth_end > scheme_end)
                strbuf_append(scratch, "/", 1);
            else
                strbuf_append(scratch, b + auth_end, dir - auth_end);
            strbuf_append(scratch, ref, rpath_end);
        }
    }
    if (scratch->len > 0)
        remove_dots(out, scratch->data, scratch->len);
    strbuf_append(out, ref + rpath_end, rlen - rpath_end);
}

/* report_ref - report the reference v (n bytes) from an HTML attribute: web URLs as they are,
 * relative references resolved against the base, bare "www." hosts when there is no base. */
static void report_ref(html_state_t *st, const char *v, size_t n)
{
    clean_value(&st->value, v, n);
    const char *s = st->value.data;
    size_t len = st->value.len;
    if (len == 0 || s[0] == '#')
        return;
    switch (ref_kind(s, len)) {
    case REF_WEB:
        sink_report(&st->sink, s, len, URL_FROM_HTML_ATTR);
        return;
    case REF_OTHER:
        return;
    default:
        break;
    }
    if (st->base.len > 0) {
        uri_resolve(&st->base, s, len, &st->resolved, &st->scratch);
        sink_report(&st->sink, st->resolved.data, st->resolved.len, URL_FROM_HTML_ATTR);
    } else if (len > 4 && lower_eq(s, "www.", 4) && host_start_at((const unsigned char *)s, len, 4)) {
        sink_report(&st->sink, s, len, URL_FROM_HTML_ATTR);
    }
}

/* set_base - <base href=v>: a web URL, or a reference relative to the previous base. */
static void set_base(html_state_t *st, const char *v, size_t n)
{
    clean_value(&st->value, v, n);
    const char *s = st->value.data;
    size_t len = st->value.len;
    int kind = ref_kind(s, len);
    if (kind == REF_WEB) {
        strbuf_reset(&st->base);
        strbuf_append(&st->base, s, len);
    } else if (kind == REF_RELATIVE && len > 0 && s[0] != '#' && st->base.len > 0) {
        uri_resolve(&st->base, s, len, &st->resolved, &st->scratch);
        strbuf_reset(&st->base);
        strbuf_append(&st->base, st->resolved.data,
                      st->resolved.len < HTML_VALUE_MAX ? st->resolved.len : HTML_VALUE_MAX);
    }
}

/* css_scan - report the web URLs of url(...) in CSS text (n bytes). */
static void css_scan(html_state_t *st, const char *s, size_t n)
{
    for (size_t i = 0; n >= 4 && i <= n - 4 && !sink_full(&st->sink); i++) {
        if (to_lower((unsigned char)s[i]) != 'u' || !lower_eq(s + i, "url(", 4))
            continue;
        size_t j = i + 4, start, end;
        while (j < n && html_space((unsigned char)s[j]))
            j++;
        if (j < n && (s[j] == '"' || s[j] == '\'')) {
            char quote = s[j];
            start = ++j;
            while (j < n && s[j] != quote && s[j] != '\n')
                j++;
        } else {
            start = j;
            while (j < n && s[j] != ')' && !html_space((unsigned char)s[j]))
                j++;
        }
        end = j;
        clean_value(&st->value, s + start, end - start);
        if (ref_kind(st->value.data, st->value.len) == REF_WEB)
            sink_report(&st->sink, st->value.data, st->value.len, URL_FROM_HTML_ATTR);
        i = j > i ? j - 1 : i;
    }
}

/* meta_refresh - report the URL of <meta http-equiv="refresh" content="5; url=...">. */
static void meta_refresh(html_state_t *st, const char *c, size_t n)
{
    size_t i = 0;
    while (i < n && html_space((unsigned char)c[i]))
        i++;
    while (i < n && (is_digit((unsigned char)c[i]) || c[i] == '.'))
        i++;
    while (i < n && html_space((unsigned char)c[i]))
        i++;
    if (i < n && (c[i] == ';' || c[i] == ','))
        i++;
    while (i < n && html_space((unsigned char)c[i]))
        i++;
    if (n - i >= 3 && lower_eq(c + i, "url", 3)) {
        size_t j = i + 3;
        while (j < n && html_space((unsigned char)c[j]))
            j++;
        if (j < n && c[j] == '=') {
            j++;
            while (j < n && html_space((unsigned char)c[j]))
                j++;
            i = j;
        }
    }
    size_t end = n;
    if (i < n && (c[i] == '"' || c[i] == '\'')) {
        const char *q = memchr(c + i + 1, c[i], n - i - 1);
        i++;
        end = q ? (size_t)(q - c) : n;
    }
    report_ref(st, c + i, end - i);
}

/* srcset - report each URL of a srcset list ("a.jpg 1x, b.jpg 2x"). */
static void srcset(html_state_t *st, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && !sink_full(&st->sink)) {
        while (i < n && (html_space((unsigned char)v[i]) || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && !html_space((unsigned char)v[i]))
            i++;
        size_t end = i;
        while (end > start && v[end - 1] == ',')
            end--;
        if (end > start)
            report_ref(st, v + start, end - start);
        if (end == i) /* descriptors follow up to the next comma */
            while (i < n && v[i] != ',')
                i++;
    }
}

/* The attributes whose value is a URL, on any element. */
static const char *const URL_ATTRS[] = {"href",     "src",      "action", "formaction",
                                        "background", "poster", "cite",   "longdesc",
                                        "lowsrc",   "dynsrc",   "xlink:href"};

/* html_attribute - one attribute name=v (v: n bytes, entity-decoded) of element elem. */
static void html_attribute(html_state_t *st, const char *elem, const char *name, const char *v,
                           size_t n)
{
    if (strcmp(name, "style") == 0) {
        css_scan(st, v, n);
    } else if (strcmp(elem, "base") == 0) {
        if (strcmp(name, "href") == 0)
            set_base(st, v, n);
    } else if (strcmp(elem, "meta") == 0) {
        if (strcmp(name, "http-equiv") == 0) {
            clean_value(&st->value, v, n);
            st->meta_refresh = st->value.len == 7 && lower_eq(st->value.data, "refresh", 7);
        } else if (strcmp(name, "content") == 0) {
            strbuf_reset(&st->meta_content);
            strbuf_append(&st->meta_content, v, n < HTML_VALUE_MAX ? n : HTML_VALUE_MAX);
            st->meta_has_content = true;
        }
    } else if (strcmp(name, "srcset") == 0) {
        srcset(st, v, n);
    } else if (strcmp(name, "data") == 0) {
        if (strcmp(elem, "object") == 0)
            report_ref(st, v, n);
    } else {
        for (size_t i = 0; i < UTIL_ARRAY_LEN(URL_ATTRS); i++) {
            if (strcmp(name, URL_ATTRS[i]) == 0) {
                report_ref(st, v, n);
                break;
            }
        }
    }
}

/* ---- HTML: text runs ------------------------------------------------------------------ */

/* text_cut - how much of a full text run can be scanned now without splitting a candidate:
 * up to an unclosed '<' near the end (it may open a wrapped URL), else up to the last
 * whitespace or '>'. */
static size_t text_cut(const strbuf_t *run)
{
    const char *d = run->data;
    size_t n = run->len;
    for (size_t k = n; k > 0 && n - k < BRACKET_SCAN_MAX && d[k - 1] != '>'; k--)
        if (d[k - 1] == '<')
            return k - 1;
    for (size_t k = n; k > 0; k--)
        if (d[k - 1] == '>' || d[k - 1] == ' ' || d[k - 1] == '\t' || d[k - 1] == '\n' ||
            d[k - 1] == '\r')
            return k;
    return 0;
}

/* css_cut - how much of full <style> content can be scanned now: up to the last ) or }. */
static size_t css_cut(const strbuf_t *css)
{
    for (size_t k = css->len; k > 0; k--)
        if (css->data[k - 1] == ')' || css->data[k - 1] == '}')
            return k;
    return 0;
}

/* scan_run - report the candidates in the first n bytes of buf (text run or <style>). */
static void scan_run(html_state_t *st, strbuf_t *buf, size_t n)
{
    if (buf == &st->css)
        css_scan(st, buf->data, n);
    else
        text_scan(&st->sink, buf->data, n);
}

/* run_flush - scan all of buf (the text run or the <style> content) and empty it. */
static void run_flush(html_state_t *st, strbuf_t *buf)
{
    if (buf->len > 0)
        scan_run(st, buf, buf->len);
    strbuf_reset(buf);
}

/* run_feed - add s (n bytes) to buf, scanning what can be scanned when it is full. */
static void run_feed(html_state_t *st, strbuf_t *buf, const char *s, size_t n)
{
    while (n > 0) {
        if (buf->len >= HTML_RUN_MAX) {
            size_t cut = buf == &st->css ? css_cut(buf) : text_cut(buf);
            if (cut < buf->len / 2) {
                /* no place to cut between words: scan it all, and keep its last
                 * URL_FIND_MAX_URL bytes for the next scan so that a URL across the boundary
                 * is still found whole (one found twice is de-duplicated downstream) */
                size_t keep = URL_FIND_MAX_URL;
                size_t from = buf->len - keep;
                while (from < buf->len && ((unsigned char)buf->data[from] & 0xC0) == 0x80)
                    from++;
                scan_run(st, buf, buf->len);
                memmove(buf->data, buf->data + from, buf->len - from);
                buf->len -= from;
                buf->data[buf->len] = '\0';
            } else {
                scan_run(st, buf, cut);
                memmove(buf->data, buf->data + cut, buf->len - cut);
                buf->len -= cut;
                buf->data[buf->len] = '\0';
            }
        }
        size_t room = HTML_RUN_MAX - buf->len, k = n < room ? n : room;
        strbuf_append(buf, s, k);
        s += k;
        n -= k;
    }
}

/* html_text - text content: visible text and <script> are scanned as plain text (a script's
 * URLs are written into the page or navigated to: document.write, window.location), <style>
 * as CSS. */
static void html_text(html_state_t *st, const char *s, size_t n)
{
    if (st->raw == RAW_STYLE)
        run_feed(st, &st->css, s, n);
    else
        run_feed(st, &st->run, s, n);
}

/* html_start - a start tag begins: an element ends the text run, except <wbr> (which senders
 * put inside URLs). */
static void html_start(html_state_t *st, const char *elem)
{
    if (strcmp(elem, "wbr") != 0)
        run_flush(st, &st->run);
    st->meta_refresh = false;
    st->meta_has_content = false;
}

/* html_start_done - all attributes of a start tag were seen. */
static void html_start_done(html_state_t *st, const char *elem)
{
    if (strcmp(elem, "meta") == 0 && st->meta_refresh && st->meta_has_content)
        meta_refresh(st, st->meta_content.data, st->meta_content.len);
    if (strcmp(elem, "script") == 0)
        st->raw = RAW_SCRIPT;
    else if (strcmp(elem, "style") == 0)
        st->raw = RAW_STYLE;
}

/* html_end - an element ends. */
static void html_end(html_state_t *st, const char *elem)
{
    if (strcmp(elem, "wbr") != 0)
        run_flush(st, &st->run);
    if ((st->raw == RAW_SCRIPT && strcmp(elem, "script") == 0) ||
        (st->raw == RAW_STYLE && strcmp(elem, "style") == 0)) {
        run_flush(st, &st->css);
        st->raw = RAW_NONE;
    }
}

/* ---- HTML: libxml2 -------------------------------------------------------------------- */

/* parser_pos - libxml2's position in the input (everything before it was reported). */
static size_t parser_pos(const html_state_t *st)
{
    xmlParserInputPtr in = st->parser->input;
    if (!in || !in->cur || !in->base || in->cur < in->base)
        return 0;
    size_t pos = (size_t)in->consumed + (size_t)(in->cur - in->base);
    return pos < st->input_len ? pos : st->input_len;
}

/* parser_stop - abandon libxml2; the fallback tokenizer resumes at pos. */
static void parser_stop(html_state_t *st, size_t pos)
{
    if (st->stop)
        return;
    st->stop = true;
    st->stop_at = pos;
    xmlStopParser(st->parser);
}

/* count_tokens - whitespace-separated tokens in p (n bytes): an upper bound on the attributes
 * libxml2 can read there. */
static uint64_t count_tokens(const char *p, size_t n)
{
    uint64_t tokens = 0;
    bool space = true;
    for (size_t k = 0; k < n; k++) {
        bool s = p[k] == ' ' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r';
        tokens += space && !s;
        space = s;
    }
    return tokens;
}

/* sax_start, sax_end, sax_text, sax_comment, sax_pi - libxml2's SAX callbacks: hand the
 * document to the html_ functions, note where libxml2 is, and estimate its work. */
static void sax_start(void *ud, const xmlChar *name, const xmlChar **atts)
{
    html_state_t *st = ud;
    if (st->stop)
        return;
    const char *elem = (const char *)name;
    size_t pos = parser_pos(st), nattr = 0;
    html_start(st, elem);
    for (; atts && atts[0]; atts += 2, nattr++)
        if (atts[1])
            html_attribute(st, elem, (const char *)atts[0], (const char *)atts[1],
                           strlen((const char *)atts[1]));
    html_start_done(st, elem);
    /* libxml2 compared each attribute it read (at most one per token since the previous
     * callback) with each one it kept */
    if (pos > st->last_event)
        st->cost += count_tokens(st->input + st->last_event, pos - st->last_event) * nattr;
    st->last_event = pos;
    if (++st->depth > st->chunk_depth)
        st->chunk_depth = st->depth;
    if (st->depth > HTML_MAX_DEPTH || sink_full(&st->sink))
        parser_stop(st, pos);
}

static void sax_end(void *ud, const xmlChar *name)
{
    html_state_t *st = ud;
    if (st->stop)
        return;
    html_end(st, (const char *)name);
    if (st->depth > 0)
        st->depth--;
    st->last_event = parser_pos(st);
    if (sink_full(&st->sink))
        parser_stop(st, st->last_event);
}

static void sax_text(void *ud, const xmlChar *s, int len)
{
    html_state_t *st = ud;
    if (st->stop)
        return;
    html_text(st, (const char *)s, len > 0 ? (size_t)len : 0);
    st->last_event = parser_pos(st);
    if (sink_full(&st->sink))
        parser_stop(st, st->last_event);
}

static void sax_comment(void *ud, const xmlChar *s)
{
    html_state_t *st = ud;
    (void)s;
    if (!st->stop)
        st->last_event = parser_pos(st);
}

static void sax_pi(void *ud, const xmlChar *target, const xmlChar *data)
{
    (void)target;
    sax_comment(ud, data);
}

/* silent_structured, silent_generic - error handlers that print nothing. */
#if LIBXML_VERSION >= 21200
static void silent_structured(void *ud, const xmlError *err)
#else
static void silent_structured(void *ud, xmlErrorPtr err)
#endif
{
    (void)ud;
    (void)err;
}

static void silent_generic(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

/* count_stack_walks - tags in p (n bytes, more input up to end) for which libxml2 may walk the
 * element stack: end tags and <body>. */
static uint64_t count_stack_walks(const char *p, size_t n, const char *end)
{
    uint64_t walks = 0;
    for (const char *q = p; (q = memchr(q, '<', (size_t)(p + n - q))) != NULL; q++)
        if (q + 1 < end && (q[1] == '/' || q[1] == 'b' || q[1] == 'B'))
            walks++;
    return walks;
}

/* Where chunk boundaries may fall: not inside a quoted value of a tag, as libxml2's push
 * parser looks for the end of a tag (any quote opens a value that only the same quote ends). */
typedef struct {
    size_t pos;  /* bytes before it were looked at */
    int state;   /* 0 text, 1 in a tag, 2 in a quoted value */
    char quote;
} chunk_state_t;

/* chunk_end - the end of the next chunk: at least min bytes after off (or the input end), then
 * on to a point outside any quoted value. */
static size_t chunk_end(chunk_state_t *cs, const char *in, size_t len, size_t off, size_t min)
{
    size_t end = len - off > min ? off + min : len;
    if (cs->pos < off)
        cs->pos = off;
    while (cs->pos < len && (cs->pos < end || cs->state == 2)) {
        char c = in[cs->pos++];
        if (cs->state == 0) {
            if (c == '<' && cs->pos < len && is_alpha((unsigned char)in[cs->pos]))
                cs->state = 1;
        } else if (cs->state == 1) {
            if (c == '"' || c == '\'') {
                cs->state = 2;
                cs->quote = c;
            } else if (c == '>') {
                cs->state = 0;
            }
        } else if (c == cs->quote) {
            cs->state = 1;
        }
    }
    return cs->pos > end ? cs->pos : end;
}

/* html_budget - the work libxml2 may do for the first n input bytes. */
static uint64_t html_budget(size_t n)
{
    return HTML_COST_BASE + (uint64_t)HTML_COST_PER_BYTE * n;
}

/* html_parse - read in (len bytes) with libxml2 while its work stays within budget. Returns
 * where the fallback tokenizer must resume (len when libxml2 read everything). */
static size_t html_parse(html_state_t *st, const char *in, size_t len)
{
    xmlInitParser();
    htmlSAXHandler sax;
    memset(&sax, 0, sizeof(sax));
    sax.startElement = sax_start;
    sax.endElement = sax_end;
    sax.characters = sax_text;
    sax.cdataBlock = sax_text;
    sax.ignorableWhitespace = sax_text;
    sax.comment = sax_comment;
    sax.processingInstruction = sax_pi;
    sax.warning = silent_generic;
    sax.error = silent_generic;
    sax.fatalError = silent_generic;
    sax.serror = silent_structured;
    sax.initialized = XML_SAX2_MAGIC; /* so that libxml2 reports errors through serror */

    /* errors raised without the parser context go to these per-thread handlers */
    xmlGenericErrorFunc old_generic = xmlGenericError;
    void *old_generic_ctx = xmlGenericErrorContext;
    xmlStructuredErrorFunc old_structured = xmlStructuredError;
    void *old_structured_ctx = xmlStructuredErrorContext;
    xmlSetGenericErrorFunc(NULL, silent_generic);
    xmlSetStructuredErrorFunc(NULL, silent_structured);

    htmlParserCtxtPtr parser = htmlCreatePushParserCtxt(&sax, st, NULL, 0, NULL,
                                                        XML_CHAR_ENCODING_UTF8);
    size_t resume = 0;
    if (parser) {
        htmlCtxtUseOptions(parser, HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |
                                       HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                                       HTML_PARSE_COMPACT | HTML_PARSE_IGNORE_ENC);
        st->parser = parser;
        st->input = in;
        st->input_len = len;
        chunk_state_t cs = {0, 0, 0};
        size_t off = 0, priced_from = SIZE_MAX, priced_to = 0;
        uint64_t priced_tokens = 0;
        for (;;) {
            size_t pos = parser_pos(st);
            size_t end = off < len ? chunk_end(&cs, in, len, off, HTML_CHUNK) : len;
            if (end > INT32_MAX + off)
                end = off + INT32_MAX;
            /* A start tag libxml2 is still waiting for, or a chunk made large by a quoted
             * value, is priced before libxml2 reads it: the attributes of one tag cost at
             * most tokens squared comparisons. */
            bool tag_pending = pos < off && len - pos >= 2 && in[pos] == '<' &&
                               is_alpha((unsigned char)in[pos + 1]);
            size_t from = tag_pending ? pos : off;
            if (end - from > 2 * HTML_CHUNK) {
                if (priced_from != from) {
                    priced_from = priced_to = from;
                    priced_tokens = 0;
                }
                priced_tokens += count_tokens(in + priced_to, end - priced_to);
                priced_to = end;
                if (st->cost + priced_tokens * priced_tokens > html_budget(end)) {
                    parser_stop(st, pos);
                    break;
                }
            }
            st->chunk_depth = st->depth;
            if (off == len) {
                htmlParseChunk(parser, NULL, 0, 1);
                break;
            }
            uint64_t walks = count_stack_walks(in + off, end - off, in + len);
            htmlParseChunk(parser, in + off, (int)(end - off), 0);
            off = end;
            st->cost += walks * st->chunk_depth;
            if (!st->stop && (parser->instate == XML_PARSER_EOF || sink_full(&st->sink)))
                parser_stop(st, parser_pos(st));
            if (!st->stop && st->cost > html_budget(off))
                parser_stop(st, parser_pos(st));
            if (st->stop)
                break;
        }
        resume = st->stop ? st->stop_at : len;
        st->parser = NULL;
        htmlFreeParserCtxt(parser);
    }

    xmlSetGenericErrorFunc(old_generic_ctx, old_generic);
    xmlSetStructuredErrorFunc(old_structured_ctx, old_structured);
    return resume;
}

/* ---- HTML: fallback tokenizer --------------------------------------------------------- */

/* char_ref - decode the character reference at s (s[0] == '&', n bytes) into out[4]; returns
 * the bytes it takes, 0 when s is not a reference known here. */
static size_t char_ref(const char *s, size_t n, char out[4], size_t *out_len)
{
    static const struct {
        const char *name;
        uint32_t cp;
    } NAMED[] = {
        {"amp;", '&'},  {"lt;", '<'},     {"gt;", '>'},     {"quot;", '"'},   {"apos;", '\''},
        {"nbsp;", 0xA0}, {"colon;", ':'}, {"sol;", '/'},    {"period;", '.'}, {"quest;", '?'},
        {"equals;", '='}, {"num;", '#'},  {"percnt;", '%'}, {"commat;", '@'}, {"Tab;", '\t'},
        {"NewLine;", '\n'},
    };
    if (n >= 3 && s[1] == '#') {
        bool hex = s[2] == 'x' || s[2] == 'X';
        size_t i = hex ? 3 : 2, start = i;
        uint32_t cp = 0;
        while (i < n && i - start < 8) {
            unsigned char c = (unsigned char)s[i];
            uint32_t d;
            if (is_digit(c))
                d = c - '0';
            else if (hex && to_lower(c) >= 'a' && to_lower(c) <= 'f')
                d = to_lower(c) - 'a' + 10;
            else
                break;
            cp = cp * (hex ? 16 : 10) + d;
            i++;
        }
        if (i == start)
            return 0;
        if (i < n && s[i] == ';')
            i++;
        if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            cp = 0xFFFD;
        *out_len = text_utf8_encode(cp, out);
        return i;
    }
    for (size_t k = 0; k < UTIL_ARRAY_LEN(NAMED); k++) {
        size_t m = strlen(NAMED[k].name);
        if (n - 1 >= m && memcmp(s + 1, NAMED[k].name, m) == 0) {
            *out_len = text_utf8_encode(NAMED[k].cp, out);
            return m + 1;
        }
    }
    return 0;
}

/* fb_text - text between tags, character references decoded. */
static void fb_text(html_state_t *st, const char *s, size_t n)
{
    while (n > 0) {
        const char *amp = memchr(s, '&', n);
        size_t plain = amp ? (size_t)(amp - s) : n;
        html_text(st, s, plain);
        s += plain;
        n -= plain;
        if (n == 0)
            break;
        char buf[4];
        size_t out_len = 0, used = char_ref(s, n, buf, &out_len);
        if (used == 0) {
            html_text(st, s, 1);
            used = 1;
        } else {
            html_text(st, buf, out_len);
        }
        s += used;
        n -= used;
    }
}

/* fb_decode - an attribute value with character references decoded, into out, cut to
 * HTML_VALUE_MAX bytes. */
static void fb_decode(strbuf_t *out, const char *s, size_t n)
{
    strbuf_reset(out);
    size_t i = 0;
    while (i < n && out->len + 4 <= HTML_VALUE_MAX) {
        if (s[i] != '&') {
            const char *amp = memchr(s + i, '&', n - i);
            size_t plain = (amp ? (size_t)(amp - s) : n) - i;
            size_t room = HTML_VALUE_MAX - out->len;
            strbuf_append(out, s + i, plain < room ? plain : room);
            i += plain;
            continue;
        }
        char buf[4];
        size_t out_len = 0, used = char_ref(s + i, n - i, buf, &out_len);
        if (used == 0) {
            strbuf_append(out, "&", 1);
            used = 1;
        } else {
            strbuf_append(out, buf, out_len);
        }
        i += used;
    }
}

/* fb_name - read a tag or attribute name at in[i] into name (lower case, cut to size - 1);
 * returns the index after it. */
static size_t fb_name(const char *in, size_t len, size_t i, char *name, size_t size,
                      bool attribute)
{
    size_t n = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (html_space(c) || c == '>' || c == '/' || (attribute && c == '=' && n > 0))
            break;
        if (n + 1 < size)
            name[n++] = (char)to_lower(c);
        i++;
    }
    name[n] = '\0';
    return i;
}

/* fb_find - index of the first case-insensitive occurrence of the lower-case needle in
 * in[i, len), or len. */
static size_t fb_find(const char *in, size_t len, size_t i, const char *needle)
{
    size_t m = strlen(needle);
    for (; i < len; i++) {
        const char *p = memchr(in + i, needle[0], len - i);
        if (!p || len - (size_t)(p - in) < m)
            return len;
        i = (size_t)(p - in);
        if (lower_eq(p, needle, m))
            return i;
    }
    return len;
}

/* fb_start_tag - the start tag at in[i] == '<' (a letter follows); returns the index after it. */
static size_t fb_start_tag(html_state_t *st, const char *in, size_t len, size_t i)
{
    char elem[32], name[32];
    i = fb_name(in, len, i + 1, elem, sizeof(elem), false);
    html_start(st, elem);
    while (i < len && !sink_full(&st->sink)) {
        while (i < len && (html_space((unsigned char)in[i]) || in[i] == '/'))
            i++;
        if (i >= len)
            break;
        if (in[i] == '>') {
            i++;
            break;
        }
        i = fb_name(in, len, i, name, sizeof(name), true);
        while (i < len && html_space((unsigned char)in[i]))
            i++;
        size_t vs = i, ve = i;
        if (i < len && in[i] == '=') {
            i++;
            while (i < len && html_space((unsigned char)in[i]))
                i++;
            if (i < len && (in[i] == '"' || in[i] == '\'')) {
                const char *q = memchr(in + i + 1, in[i], len - i - 1);
                vs = i + 1;
                ve = q ? (size_t)(q - in) : len;
                i = q ? ve + 1 : len;
            } else {
                vs = i;
                while (i < len && !html_space((unsigned char)in[i]) && in[i] != '>')
                    i++;
                ve = i;
            }
            fb_decode(&st->decoded, in + vs, ve - vs);
            html_attribute(st, elem, name, st->decoded.data, st->decoded.len);
        }
    }
    html_start_done(st, elem);
    return i;
}

/* fb_markup - the markup at in[i] == '<'; returns the index after it. */
static size_t fb_markup(html_state_t *st, const char *in, size_t len, size_t i)
{
    if (len - i >= 4 && memcmp(in + i, "<!--", 4) == 0) {
        size_t e = fb_find(in, len, i + 4, "-->");
        return e < len ? e + 3 : len;
    }
    if (len - i >= 2 && (in[i + 1] == '!' || in[i + 1] == '?')) {
        const char *gt = memchr(in + i, '>', len - i);
        return gt ? (size_t)(gt - in) + 1 : len;
    }
    if (len - i >= 3 && in[i + 1] == '/' && is_alpha((unsigned char)in[i + 2])) {
        char elem[32];
        fb_name(in, len, i + 2, elem, sizeof(elem), false);
        html_end(st, elem);
        const char *gt = memchr(in + i, '>', len - i);
        return gt ? (size_t)(gt - in) + 1 : len;
    }
    if (len - i >= 2 && is_alpha((unsigned char)in[i + 1]))
        return fb_start_tag(st, in, len, i);
    html_text(st, "<", 1);
    return i + 1;
}

/* html_fallback - read in[i, len) with the small tokenizer: tags and attributes, text with
 * character references, comments skipped, <script> scanned as text, <style> as CSS. */
static void html_fallback(html_state_t *st, const char *in, size_t len, size_t i)
{
    while (i < len && !sink_full(&st->sink)) {
        if (st->raw != RAW_NONE) {
            const char *close = st->raw == RAW_SCRIPT ? "</script" : "</style";
            size_t e = fb_find(in, len, i, close);
            html_text(st, in + i, e - i);
            if (e >= len)
                break;
            i = fb_markup(st, in, len, e);
            continue;
        }
        const char *lt = memchr(in + i, '<', len - i);
        size_t t = lt ? (size_t)(lt - in) : len;
        fb_text(st, in + i, t - i);
        if (t >= len)
            break;
        i = fb_markup(st, in, len, t);
    }
}

/* ---- HTML: entry point ---------------------------------------------------------------- */

/* html_sanitize - a copy of html with NUL, the C0 controls but TAB, LF and CR, and the bytes
 * of invalid UTF-8 replaced by spaces (same length); NULL when there is nothing to replace. */
static char *html_sanitize(const char *html, size_t len)
{
    const unsigned char *p = (const unsigned char *)html;
    char *out = NULL;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n = 1;
        bool bad;
        if (c < 0x80) {
            bad = c < 0x20 && c != '\t' && c != '\n' && c != '\r';
        } else {
            uint32_t cp;
            n = text_utf8_decode(p + i, len - i, &cp);
            bad = n == 0;
            n = n ? n : 1;
        }
        if (bad) {
            if (!out) {
                out = util_xmalloc(len);
                memcpy(out, html, len);
            }
            out[i] = ' ';
        }
        i += n;
    }
    return out;
}

/* html_after_end - offset just past the last "</html" end tag (and its '>'), or len. */
static size_t html_after_end(const char *html, size_t len)
{
    const unsigned char *p = (const unsigned char *)html;
    for (size_t i = len; i >= 7; i--) {
        size_t k = i - 7;
        if (p[k] == '<' && p[k + 1] == '/' && lower_eq(p + k + 2, "html", 4) &&
            (p[k + 6] == '>' || html_space(p[k + 6]))) {
            const unsigned char *gt = memchr(p + k + 6, '>', len - (k + 6));
            return gt ? (size_t)(gt - p) + 1 : len;
        }
    }
    return len;
}

size_t url_find_html(const char *html, size_t len, url_found_fn fn, void *ctx)
{
    html_state_t st;
    memset(&st, 0, sizeof(st));
    st.sink = (url_sink_t){fn, ctx, 0};
    strbuf_t *bufs[] = {&st.run, &st.css, &st.base, &st.value, &st.resolved, &st.scratch,
                        &st.meta_content, &st.decoded};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bufs); i++)
        strbuf_init(bufs[i], 0);
    if (!html)
        len = 0;
    char *clean = html_sanitize(html, len);
    const char *in = clean ? clean : html;

    size_t resume = len > 0 ? html_parse(&st, in, len) : len;
    if (resume < len)
        html_fallback(&st, in, len, resume);
    run_flush(&st, &st.run);
    run_flush(&st, &st.css);
    /* libxml2 reports nothing after </html>, but mailers and list servers append footers
     * there (and browsers show them): scan what follows the last </html> as text */
    size_t tail = html_after_end(in, len);
    if (tail < len)
        text_scan(&st.sink, in + tail, len - tail);

    free(clean);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bufs); i++)
        strbuf_release(bufs[i]);
    return st.sink.count;
}
