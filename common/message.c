/*
 * message.c - the observables of one delivered message, from GMime's parse tree.
 *
 * The message bytes are handed to GMime without a copy (a memory stream over the caller's
 * buffer); parts are walked with our own bounded recursion; each leaf's content is read from
 * GMime's raw substream in chunks, transfer-decoded with GMime's incremental decoder, hashed
 * (attachments) and, for text, collected up to MESSAGE_MAX_TEXT_SCAN bytes, converted to
 * UTF-8 and searched for URLs.
 */
#include "message.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <iconv.h>
#include <idn2.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>

#include "url_canon.h"
#include "url_find.h"
#include "text.h"
#include "url_unwrap.h"
#include "util.h"

#define MESSAGE_CHUNK (64 * 1024)
#define MESSAGE_MAX_LIMIT_NOTES 32
#define MESSAGE_MAX_HEADER_VALUE 4096 /* subject, names kept at most this long */

/* The parse state that is not part of the result. */
typedef struct {
    message_t *msg;
    zhashx_t *seen_urls;  /* canonical URL -> (unused), for de-duplication */
    strbuf_t canon;       /* scratch for url_canon */
    bool parts_capped;
    bool urls_capped;
    bool bare_capped;
    size_t n_bare;        /* candidates without a scheme ("example.com/x") seen */
    bool attachments_capped;
} parse_state_t;

/* Buffers reused from one part and one message to the next, per thread: decoding chunks and
 * the text of a part. Storage above MESSAGE_SCRATCH_KEEP is released after each message. */
#define MESSAGE_SCRATCH_KEEP (1024 * 1024)
typedef struct {
    char *chunk_in, *chunk_out;
    size_t chunk_out_cap;
    strbuf_t text, utf8;
    bool ready;
} scratch_t;
static __thread scratch_t scratch;

static scratch_t *scratch_get(void)
{
    if (!scratch.ready) {
        scratch.chunk_in = util_xmalloc(MESSAGE_CHUNK);
        scratch.chunk_out_cap = 2 * MESSAGE_CHUNK + 64;
        scratch.chunk_out = util_xmalloc(scratch.chunk_out_cap);
        strbuf_init(&scratch.text, MESSAGE_MAX_TEXT_SCAN);
        strbuf_init(&scratch.utf8, (size_t)MESSAGE_MAX_TEXT_SCAN * 2);
        scratch.ready = true;
    }
    return &scratch;
}

/* scratch_trim - give back what one large message made the text buffers grow to. */
static void scratch_trim(void)
{
    if (scratch.text.cap > MESSAGE_SCRATCH_KEEP)
        strbuf_release(&scratch.text);
    if (scratch.utf8.cap > MESSAGE_SCRATCH_KEEP)
        strbuf_release(&scratch.utf8);
}

static void iconv_cache_release(void);

void message_thread_release(void)
{
    if (scratch.ready) {
        free(scratch.chunk_in);
        free(scratch.chunk_out);
        strbuf_release(&scratch.text);
        strbuf_release(&scratch.utf8);
        memset(&scratch, 0, sizeof(scratch));
    }
    iconv_cache_release();
}

static pthread_once_t library_once = PTHREAD_ONCE_INIT;

static void library_init_once(void)
{
    g_mime_init();
}

void message_library_init(void)
{
    pthread_once(&library_once, library_init_once);
}

/* strv_push - append a copy of s (n bytes) to v, at most max entries. */
static void strv_push(message_strv_t *v, const char *s, size_t n, size_t max)
{
    if (v->n >= max)
        return;
    v->v = util_xrealloc(v->v, (v->n + 1) * sizeof(*v->v));
    v->v[v->n++] = util_xstrndup(s, n);
}

static void strv_clear(message_strv_t *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

/* note_limit - record an operator-facing note (bounded count). */
static void note_limit(message_t *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_limit(message_t *msg, const char *fmt, ...)
{
    if (msg->limits.n >= MESSAGE_MAX_LIMIT_NOTES)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < msg->limits.n; i++)
        if (strcmp(msg->limits.v[i], line) == 0)
            return;
    strv_push(&msg->limits, line, strlen(line), MESSAGE_MAX_LIMIT_NOTES);
}

/* lowercase_dup - a lowercase copy of s (ASCII letters only). */
static char *lowercase_dup(const char *s)
{
    char *d = util_xstrdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* fold_whitespace_dup - s with control characters and whitespace runs folded into one space,
 * trimmed, at most max bytes (cut on a UTF-8 character boundary). */
static char *fold_whitespace_dup(const char *s, size_t max)
{
    size_t len = strlen(s);
    char *d = util_xmalloc(len + 1);
    size_t n = 0;
    bool space = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f) {
            space = n > 0;
            continue;
        }
        if (space) {
            d[n++] = ' ';
            space = false;
        }
        d[n++] = (char)c;
    }
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)d[n] & 0xC0) == 0x80)
            n--;
    }
    d[n] = '\0';
    return d;
}

/* ---- URLs ---- */

/* The layers of one URL candidate, outermost first (see url_unwrap_layers). */
typedef struct {
    char *url[URL_UNWRAP_MAX_DEPTH + 1];
    size_t len[URL_UNWRAP_MAX_DEPTH + 1];
    url_wrap_t via[URL_UNWRAP_MAX_DEPTH + 1];
    int n;
} layers_t;

static void collect_layer(void *arg, const char *url, size_t len, url_wrap_t via)
{
    layers_t *ls = arg;
    if (ls->n >= (int)UTIL_ARRAY_LEN(ls->url))
        return;
    ls->url[ls->n] = util_xstrndup(url, len);
    ls->len[ls->n] = len;
    ls->via[ls->n] = via;
    ls->n++;
}

/* state_url_add - canonicalize one URL and keep it if new; 1 when added. */
static size_t state_url_add(parse_state_t *st, const char *url, size_t len)
{
    if (url_canon(url, len, &st->canon) != URL_CANON_OK)
        return 0;
    if (zhashx_lookup(st->seen_urls, st->canon.data))
        return 0;
    if (st->msg->urls.n >= MESSAGE_MAX_URLS) {
        if (!st->urls_capped)
            note_limit(st->msg, "more than %d distinct URLs: the rest are not kept", MESSAGE_MAX_URLS);
        st->urls_capped = true;
        return 0;
    }
    zhashx_insert(st->seen_urls, st->canon.data, (void *)1);
    strv_push(&st->msg->urls, st->canon.data, st->canon.len, MESSAGE_MAX_URLS);
    return 1;
}

#define MESSAGE_MAX_EMBEDDED_DEPTH 3

static size_t state_url_collect_depth(parse_state_t *st, const char *url, size_t len, int depth);

/* embedded_urls - a redirector's target written in its path or query, e.g.
 * "http://rd.example/dir/?http://evil.example/x" or "...?u=https://evil.example/&x=1": each
 * "http://", "https://" or "ftp://" after the host starts a URL that runs to the next '&' (the
 * next parameter) or the end. canon is a canonical URL (escapes already undone). */
static size_t embedded_urls(parse_state_t *st, const char *canon, size_t len, int depth)
{
    if (depth >= MESSAGE_MAX_EMBEDDED_DEPTH)
        return 0;
    const char *host = strstr(canon, "://");
    if (!host)
        return 0;
    const char *p = host + 3, *end = canon + len;
    size_t added = 0;
    char buf[URL_CANON_MAX_INPUT + 8];
    while (p < end) {
        /* "scheme:/" : canonicalization collapses a path's "//" to "/", so a target written in
         * a path ("http://rd.example/r/https://evil.example/") reads "https:/evil.example/" */
        const char *hit = memmem(p, (size_t)(end - p), ":/", 2);
        if (!hit)
            break;
        const char *start = NULL;
        if (hit - p >= 5 && memcmp(hit - 5, "https", 5) == 0)
            start = hit - 5;
        else if (hit - p >= 4 && memcmp(hit - 4, "http", 4) == 0)
            start = hit - 4;
        else if (hit - p >= 3 && memcmp(hit - 3, "ftp", 3) == 0)
            start = hit - 3;
        if (!start) {
            p = hit + 2;
            continue;
        }
        const char *stop = memchr(hit, '&', (size_t)(end - hit));
        if (!stop)
            stop = end;
        size_t scheme = (size_t)(hit - start);
        const char *rest = hit + 1; /* the slash or slashes */
        while (rest < stop && *rest == '/')
            rest++;
        size_t rest_len = (size_t)(stop - rest);
        if (scheme + 3 + rest_len < sizeof(buf) && rest_len > 0) {
            memcpy(buf, start, scheme);
            memcpy(buf + scheme, "://", 3);
            memcpy(buf + scheme + 3, rest, rest_len);
            added += state_url_collect_depth(st, buf, scheme + 3 + rest_len, depth + 1);
        }
        p = stop;
    }
    return added;
}

/* defanged_host - the scheme or host of url is defanged (hxxp, [.], (.), {.}, [dot], [:]):
 * then url is an analyst's spelling, not a link; a "(.)" in a path is just a path. */
static bool defanged_host(const char *url, size_t len)
{
    if (len >= 4 && g_ascii_strncasecmp(url, "hxxp", 4) == 0)
        return true;
    const char *sep = memmem(url, len, "//", 2);
    size_t from = sep ? (size_t)(sep - url) + 2 : 0;
    size_t to = from;
    while (to < len && url[to] != '/' && url[to] != '?' && url[to] != '#')
        to++;
    for (size_t i = 0; i < to; i++)
        if (url[i] == '[' || url[i] == '(' || url[i] == '{')
            return !(i == from && url[i] == '['); /* an IPv6 literal is a host */
    return false;
}

/* state_url_collect - every layer of a candidate that is a URL in its own right: a layer
 * that had to be refanged or taken out of BLOCKED...BLOCKED is text, not a URL, and only what
 * came out of it is kept; a gateway's rewrite (Safe Links, Proofpoint, Cisco) is a real link
 * and is kept along with what it wraps. */
static size_t state_url_collect_depth(parse_state_t *st, const char *url, size_t len, int depth)
{
    layers_t ls = {.n = 0};
    size_t added = 0;
    if (depth == 0)
        st->msg->n_url_candidates++;
    url_unwrap_layers(url, len, collect_layer, &ls);
    for (int i = 0; i < ls.n; i++) {
        bool text_only = i + 1 < ls.n && (ls.via[i + 1] == URL_WRAP_BLOCKED ||
                                          (ls.via[i + 1] == URL_WRAP_DEFANG && defanged_host(ls.url[i], ls.len[i])));
        if (!text_only && state_url_add(st, ls.url[i], ls.len[i])) {
            added++;
            /* the URL just kept is the last one of the list: look inside it */
            const char *kept = st->msg->urls.v[st->msg->urls.n - 1];
            added += embedded_urls(st, kept, strlen(kept), depth);
        }
        free(ls.url[i]);
    }
    return added;
}

static size_t state_url_collect(parse_state_t *st, const char *url, size_t len)
{
    return state_url_collect_depth(st, url, len, 0);
}

static void found_url(void *arg, const char *url, size_t len, url_origin_t origin)
{
    parse_state_t *st = arg;
    /* budgets, so that cheap padding cannot push the link that matters out of the message's
     * URLs: bare host names from text are capped on their own, and the last tenth of the URL
     * budget is kept for links (HTML attributes) */
    if (origin == URL_FROM_TEXT) {
        bool schemed = memmem(url, len < 16 ? len : 16, ":/", 2) || memmem(url, len < 16 ? len : 16, "[:]", 3) ||
                       (len > 7 && memcmp(url, "BLOCKED", 7) == 0);
        if (!schemed && ++st->n_bare > MESSAGE_MAX_BARE_HOSTS) {
            if (!st->bare_capped)
                note_limit(st->msg, "more than %d bare host names in text: the rest are not kept", MESSAGE_MAX_BARE_HOSTS);
            st->bare_capped = true;
            return;
        }
        if (st->msg->urls.n >= MESSAGE_MAX_URLS - MESSAGE_MAX_URLS / 10) {
            if (!st->urls_capped)
                note_limit(st->msg, "more than %d URLs in text: the rest of the text's URLs are not kept",
                           MESSAGE_MAX_URLS - MESSAGE_MAX_URLS / 10);
            st->urls_capped = true;
            return;
        }
    }
    state_url_collect(st, url, len);
}

static void state_init(parse_state_t *st, message_t *msg)
{
    memset(st, 0, sizeof(*st));
    st->msg = msg;
    st->seen_urls = zhashx_new();
    strbuf_init(&st->canon, 0);
}

static void state_release(parse_state_t *st)
{
    zhashx_destroy(&st->seen_urls);
    strbuf_release(&st->canon);
}

size_t message_url_collect(message_t *msg, const char *url, size_t len)
{
    parse_state_t st;
    state_init(&st, msg);
    for (size_t i = 0; i < msg->urls.n; i++)
        zhashx_insert(st.seen_urls, msg->urls.v[i], (void *)1);
    size_t added = state_url_collect(&st, url, len);
    state_release(&st);
    return added;
}

/* ---- addresses ---- */

/* addresses_collect - every mailbox of list (groups flattened) into out, lowercase. */
static void addresses_collect(InternetAddressList *list, message_strv_t *out, int depth)
{
    if (!list || depth > 2)
        return;
    int n = internet_address_list_length(list);
    for (int i = 0; i < n && out->n < MESSAGE_MAX_ADDRESSES; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            addresses_collect(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out,
                              depth + 1);
        } else if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
            const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
            if (addr && *addr && strlen(addr) <= 320) {
                char *low = lowercase_dup(addr);
                strv_push(out, low, strlen(low), MESSAGE_MAX_ADDRESSES);
                free(low);
            }
        }
    }
}

/* domain_of - the domain of an address (lowercase, IDN to punycode), or NULL. */
static char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');
    if (!at || !at[1])
        return NULL;
    char *dom = lowercase_dup(at + 1);
    size_t n = strlen(dom);
    while (n > 0 && (dom[n - 1] == '.' || dom[n - 1] == '>'))
        dom[--n] = '\0';
    bool ascii = true;
    for (const char *p = dom; *p; p++)
        if ((unsigned char)*p >= 0x80)
            ascii = false;
    if (!ascii) {
        char *puny = NULL;
        if (idn2_to_ascii_8z(dom, &puny, IDN2_NONTRANSITIONAL) == IDN2_OK ||
            idn2_to_ascii_8z(dom, &puny, IDN2_TRANSITIONAL) == IDN2_OK) {
            free(dom);
            dom = util_xstrdup(puny);
            idn2_free(puny);
        }
    }
    if (!*dom) {
        free(dom);
        return NULL;
    }
    return dom;
}

/* collect_delivered_to - the recipients a delivery agent recorded in the headers. */
static void collect_delivered_to(GMimeObject *top, message_t *msg)
{
    static const char *const names[] = {"Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"};
    GMimeHeaderList *headers = g_mime_object_get_header_list(top);
    int count = g_mime_header_list_get_count(headers);
    zhashx_t *seen = zhashx_new();
    for (int i = 0; i < count && i < 1000 && msg->delivered_to.n < MESSAGE_MAX_DELIVERED_TO; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(headers, i);
        const char *name = g_mime_header_get_name(h);
        bool wanted = false;
        for (size_t k = 0; k < UTIL_ARRAY_LEN(names); k++)
            wanted |= g_ascii_strcasecmp(name, names[k]) == 0;
        if (!wanted)
            continue;
        InternetAddressList *list = internet_address_list_parse(NULL, g_mime_header_get_value(h));
        if (!list)
            continue;
        message_strv_t found = {0};
        addresses_collect(list, &found, 0);
        for (size_t k = 0; k < found.n && msg->delivered_to.n < MESSAGE_MAX_DELIVERED_TO; k++)
            if (zhashx_insert(seen, found.v[k], (void *)1) == 0)
                strv_push(&msg->delivered_to, found.v[k], strlen(found.v[k]), MESSAGE_MAX_DELIVERED_TO);
        strv_clear(&found);
        g_object_unref(list);
    }
    zhashx_destroy(&seen);
}

/* ---- trusted relays and Received ---- */

int message_net_parse(const char *text, message_net_t *net)
{
    char buf[80];
    if (!text || strlen(text) >= sizeof(buf))
        return -1;
    util_strlcpy(buf, text, sizeof(buf));
    char *slash = strchr(buf, '/');
    int64_t prefix = -1;
    if (slash) {
        *slash = '\0';
        if (util_parse_int64(slash + 1, &prefix) != 0)
            return -1;
    }
    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, buf, net->addr) == 1) {
        net->family = AF_INET;
        if (prefix < 0)
            prefix = 32;
        if (prefix > 32)
            return -1;
    } else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
        net->family = AF_INET6;
        if (prefix < 0)
            prefix = 128;
        if (prefix > 128)
            return -1;
    } else {
        return -1;
    }
    net->prefix = (int)prefix;
    return 0;
}

static bool net_contains(const message_net_t *net, int family, const unsigned char *addr)
{
    if (net->family != family)
        return false;
    int bits = net->prefix;
    for (int i = 0; bits > 0; i++, bits -= 8) {
        unsigned char mask = bits >= 8 ? 0xFF : (unsigned char)(0xFF << (8 - bits));
        if ((addr[i] & mask) != (net->addr[i] & mask))
            return false;
    }
    return true;
}

int message_nets_parse(const char *list, message_net_t *nets, size_t max, size_t *n, char *err, size_t errsize)
{
    char *copy = util_xstrdup(list ? list : "");
    char *save = NULL;
    int rc = 0;
    *n = 0;
    for (char *tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        if (*n >= max || message_net_parse(tok, &nets[*n]) != 0) {
            if (*n >= max)
                snprintf(err, errsize, "more than %zu networks", max);
            else
                snprintf(err, errsize, "bad network '%s'", tok);
            rc = -1;
            break;
        }
        (*n)++;
    }
    free(copy);
    return rc;
}

/* ip_parse - ip as bytes into addr[16]; its family, or 0 when it is not an address. */
static int ip_parse(const char *ip, unsigned char addr[16])
{
    if (!ip)
        return 0;
    if (inet_pton(AF_INET, ip, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, ip, addr) == 1)
        return AF_INET6;
    return 0;
}

bool message_nets_contain(const message_net_t *nets, size_t n, const char *ip)
{
    unsigned char addr[16];
    int family = ip_parse(ip, addr);
    for (size_t i = 0; family && i < n; i++)
        if (net_contains(&nets[i], family, addr))
            return true;
    return false;
}

static bool ip_trusted(const message_context_t *ctx, const char *ip)
{
    if (!ctx || !ctx->trusted) {
        unsigned char addr[16];
        int family = ip_parse(ip, addr);
        static const unsigned char v6_loopback[16] = {[15] = 1};
        return family == AF_INET ? addr[0] == 127 : family == AF_INET6 && memcmp(addr, v6_loopback, 16) == 0;
    }
    return message_nets_contain(ctx->trusted, ctx->n_trusted, ip);
}

/* received_hop - the client IP and HELO name of one Received header's "from" clause. Returns
 * true when an IP address was found. */
static bool received_hop(const char *value, char *ip, size_t iplen, char *helo, size_t helolen)
{
    const char *p = value;
    while (*p && isspace((unsigned char)*p))
        p++;
    if (strncasecmp(p, "from", 4) != 0 || !isspace((unsigned char)p[4]))
        return false;
    p += 5;
    while (*p && isspace((unsigned char)*p))
        p++;
    size_t hn = strcspn(p, " \t\r\n(");
    helo[0] = '\0';
    if (hn > 0 && hn < helolen) {
        memcpy(helo, p, hn);
        helo[hn] = '\0';
    }
    /* the from clause ends at " by " */
    const char *end = p;
    while (*end && !(isspace((unsigned char)end[0]) && strncasecmp(end + 1, "by", 2) == 0 &&
                     isspace((unsigned char)end[3])))
        end++;
    /* the address the receiving MTA saw is in the comment after the HELO name ("from helo
     * (rdns [ip])"); the HELO itself may be an address literal the client chose, so it only
     * counts when there is nothing else; Exim's "(helo=[x])" is the client's word too */
    const char *found = NULL;
    size_t found_n = 0;
    for (int pass = 0; pass < 2 && !found; pass++) {
        const char *from = pass == 0 ? p + hn : p, *to = pass == 0 ? end : p + hn;
        for (const char *q = from; q < to && !found; q++) {
            if (*q != '[' && *q != '(')
                continue;
            if (q - value >= 5 && strncasecmp(q - 5, "helo=", 5) == 0)
                continue;
            const char *start = q + 1;
            if (strncasecmp(start, "IPv6:", 5) == 0)
                start += 5;
            size_t n = strspn(start, "0123456789abcdefABCDEF.:");
            if (n == 0 || n >= iplen || n >= 64)
                continue;
            char cand[64];
            memcpy(cand, start, n);
            cand[n] = '\0';
            unsigned char tmp[16];
            if (inet_pton(AF_INET, cand, tmp) == 1 || inet_pton(AF_INET6, cand, tmp) == 1) {
                found = start;
                found_n = n;
            }
        }
    }
    if (found) {
        memcpy(ip, found, found_n);
        ip[found_n] = '\0';
        /* "[1.2.3.4]" as the HELO itself is not a name */
        if (helo[0] == '[')
            helo[0] = '\0';
        return true;
    }
    /* "from 1.2.3.4 by ..." */
    char cand[64];
    if (hn > 0 && hn < sizeof(cand)) {
        memcpy(cand, p, hn);
        cand[hn] = '\0';
        unsigned char tmp[16];
        if (inet_pton(AF_INET, cand, tmp) == 1 && hn < iplen) {
            memcpy(ip, cand, hn + 1);
            return true;
        }
    }
    return false;
}

/* find_sender_ip - the first Received hop (newest first) whose client is not trusted; when
 * every hop is trusted, the oldest one seen. */
static void find_sender_ip(GMimeObject *top, const message_context_t *ctx, message_t *msg)
{
    GMimeHeaderList *headers = g_mime_object_get_header_list(top);
    int count = g_mime_header_list_get_count(headers);
    char ip[64] = "", helo[256] = "", last_ip[64] = "", last_helo[256] = "";
    int seen = 0;
    for (int i = 0; i < count && seen < 100; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(headers, i);
        if (g_ascii_strcasecmp(g_mime_header_get_name(h), "Received") != 0)
            continue;
        seen++;
        const char *value = g_mime_header_get_value(h);
        if (!value || !received_hop(value, ip, sizeof(ip), helo, sizeof(helo)))
            continue;
        if (!ip_trusted(ctx, ip)) {
            msg->sender_ip = util_xstrdup(ip);
            if (!msg->helo && helo[0])
                msg->helo = util_xstrdup(helo);
            return;
        }
        memcpy(last_ip, ip, sizeof(ip));
        memcpy(last_helo, helo, sizeof(helo));
    }
    if (last_ip[0]) {
        msg->sender_ip = util_xstrdup(last_ip);
        if (!msg->helo && last_helo[0])
            msg->helo = util_xstrdup(last_helo);
    }
}

/* ---- parts ---- */

/* iconv_cached - a conversion descriptor to UTF-8 from charset (an iconv name), from a small
 * per-thread cache, reset before use; (iconv_t)-1 when iconv does not know the charset. */
#define MESSAGE_ICONV_CACHE 8
static __thread struct {
    char name[64];
    iconv_t cd;
} iconv_cache[MESSAGE_ICONV_CACHE];
static __thread unsigned iconv_cache_next;

static void iconv_cache_release(void)
{
    for (int i = 0; i < MESSAGE_ICONV_CACHE; i++) {
        if (iconv_cache[i].name[0] && iconv_cache[i].cd != (iconv_t)-1)
            iconv_close(iconv_cache[i].cd);
        iconv_cache[i].name[0] = '\0';
    }
}

static iconv_t iconv_cached(const char *charset)
{
    if (strlen(charset) >= sizeof(iconv_cache[0].name))
        return (iconv_t)-1;
    for (int i = 0; i < MESSAGE_ICONV_CACHE; i++) {
        if (iconv_cache[i].name[0] && strcmp(iconv_cache[i].name, charset) == 0) {
            if (iconv_cache[i].cd != (iconv_t)-1)
                iconv(iconv_cache[i].cd, NULL, NULL, NULL, NULL);
            return iconv_cache[i].cd;
        }
    }
    unsigned slot = iconv_cache_next++ % MESSAGE_ICONV_CACHE;
    if (iconv_cache[slot].name[0] && iconv_cache[slot].cd != (iconv_t)-1)
        iconv_close(iconv_cache[slot].cd);
    util_strlcpy(iconv_cache[slot].name, charset, sizeof(iconv_cache[slot].name));
    iconv_cache[slot].cd = iconv_open("UTF-8", charset);
    return iconv_cache[slot].cd;
}

/* utf8_mostly_valid - text declared UTF-8 (declared) is read as UTF-8 whatever its bad bytes;
 * undeclared text is when its non-ASCII bytes are mostly valid UTF-8 sequences. */
static bool utf8_mostly_valid(const strbuf_t *text, bool declared)
{
    if (declared)
        return true;
    size_t valid = 0, invalid = 0;
    const unsigned char *p = (const unsigned char *)text->data;
    for (size_t i = 0; i < text->len;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = text_utf8_decode(p + i, text->len - i, &cp);
        if (n == 0) {
            invalid++;
            i++;
        } else {
            valid++;
            i += n;
        }
    }
    return valid > 4 * invalid;
}

/* to_utf8 - text (in charset) as UTF-8: text itself when it needs no conversion, else the
 * conversion written into out. Bytes that do not convert are replaced by a space. With no
 * charset, valid UTF-8 is kept and anything else read as windows-1252; an unknown charset
 * leaves the bytes as they are. */
static strbuf_t *to_utf8(const char *charset, strbuf_t *text, strbuf_t *out)
{
    const char *from = NULL;
    bool declared_utf8 = false;
    if (charset && *charset) {
        from = g_mime_charset_iconv_name(charset);
        declared_utf8 = from && g_ascii_strcasecmp(from, "UTF-8") == 0;
        if (from && (declared_utf8 || g_ascii_strcasecmp(from, "us-ascii") == 0 || g_ascii_strcasecmp(from, "ASCII") == 0))
            from = NULL;
    }
    if (!from && g_utf8_validate(text->data ? text->data : "", (gssize)text->len, NULL))
        return text;
    if (!from && utf8_mostly_valid(text, declared_utf8)) {
        /* UTF-8 with a few bad bytes: keep every valid sequence (an IDN stays an IDN) */
        unsigned char *p = (unsigned char *)text->data;
        for (size_t i = 0; i < text->len;) {
            uint32_t cp;
            size_t n = text_utf8_decode(p + i, text->len - i, &cp);
            if (n == 0) {
                p[i++] = ' ';
                continue;
            }
            i += n;
        }
        return text;
    }
    if (!from)
        from = "WINDOWS-1252";
    iconv_t cd = iconv_cached(from);
    if (cd == (iconv_t)-1)
        return text;
    strbuf_reset(out);
    char buf[16384];
    char *in = text->data;
    size_t inleft = text->len;
    while (inleft > 0) {
        char *o = buf;
        size_t oleft = sizeof(buf);
        size_t rc = iconv(cd, &in, &inleft, &o, &oleft);
        if (strbuf_append(out, buf, sizeof(buf) - oleft) != 0)
            break;
        if (rc == (size_t)-1) {
            if (errno == E2BIG)
                continue;
            /* an invalid or incomplete sequence: skip one byte */
            in++;
            inleft--;
            strbuf_append(out, " ", 1);
        }
    }
    return out;
}

/* unflow - undo format=flowed soft line breaks (RFC 3676) in place: a line ending in a
 * space continues on the next line (DelSp=yes: that space is removed too). */
static void unflow(strbuf_t *text, bool delsp)
{
    char *d = text->data;
    size_t n = 0;
    for (size_t i = 0; i < text->len; i++) {
        char c = text->data[i];
        if (c == '\n' && n > 0 && (d[n - 1] == ' ' || (n > 1 && d[n - 1] == '\r' && d[n - 2] == ' '))) {
            if (d[n - 1] == '\r')
                n--;
            if (delsp)
                n--;
            continue;
        }
        d[n++] = c;
    }
    text->len = n;
    if (d)
        d[n] = '\0';
}

static bool name_has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && g_ascii_strcasecmp(name + n - s, suffix) == 0;
}

/* walk_leaf - decode one leaf part: hash it when it is an attachment, search it for URLs
 * when it is text. */
static void walk_leaf(parse_state_t *st, GMimePart *part)
{
    message_t *msg = st->msg;
    GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
    const char *type = ct ? g_mime_content_type_get_media_type(ct) : "text";
    const char *subtype = ct ? g_mime_content_type_get_media_subtype(ct) : "plain";
    if (!type)
        type = "application";
    if (!subtype)
        subtype = "octet-stream";
    const char *filename = g_mime_part_get_filename(part);
    const char *disposition = g_mime_object_get_disposition(GMIME_OBJECT(part));
    bool is_text = g_ascii_strcasecmp(type, "text") == 0;
    bool is_html = is_text && g_ascii_strcasecmp(subtype, "html") == 0;
    if (filename && (name_has_suffix(filename, ".htm") || name_has_suffix(filename, ".html"))) {
        is_text = true;
        is_html = true;
    } else if (filename && name_has_suffix(filename, ".txt")) {
        is_text = true;
    }
    bool is_attachment = (filename && *filename) ||
                         (disposition && g_ascii_strcasecmp(disposition, "attachment") == 0) ||
                         (!is_text && g_ascii_strcasecmp(type, "multipart") != 0);

    GMimeDataWrapper *wrapper = g_mime_part_get_content(part);
    if (!wrapper)
        return;
    GMimeStream *raw = g_mime_data_wrapper_get_stream(wrapper);
    if (!raw)
        return;
    GMimeEncoding dec;
    g_mime_encoding_init_decode(&dec, g_mime_data_wrapper_get_encoding(wrapper));
    g_mime_stream_reset(raw);

    EVP_MD_CTX *sha = NULL;
    if (is_attachment) {
        sha = EVP_MD_CTX_new();
        if (!sha)
            abort(); /* as util_xmalloc does: an allocation failure is not recoverable here */
        EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
    }
    scratch_t *sc = scratch_get();
    strbuf_t *text = &sc->text;
    strbuf_reset(text);
    bool text_capped = false;
    int64_t size = 0;
    size_t need = g_mime_encoding_outlen(&dec, MESSAGE_CHUNK) + 64;
    if (need > sc->chunk_out_cap) {
        sc->chunk_out = util_xrealloc(sc->chunk_out, need);
        sc->chunk_out_cap = need;
    }
    char *in = sc->chunk_in, *out = sc->chunk_out;
    for (;;) {
        ssize_t got = g_mime_stream_read(raw, in, MESSAGE_CHUNK);
        size_t outlen;
        bool last = got <= 0;
        if (last)
            outlen = g_mime_encoding_flush(&dec, in, 0, out);
        else
            outlen = g_mime_encoding_step(&dec, in, (size_t)got, out);
        size += (int64_t)outlen;
        if (sha)
            EVP_DigestUpdate(sha, out, outlen);
        if (is_text && !text_capped && strbuf_append(text, out, outlen) != 0)
            text_capped = true;
        if (last)
            break;
    }
    if (sha) {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int dlen = 0;
        EVP_DigestFinal_ex(sha, digest, &dlen);
        EVP_MD_CTX_free(sha);
        if (msg->n_attachments < MESSAGE_MAX_ATTACHMENTS) {
            msg->attachments = util_xrealloc(msg->attachments,
                                             (msg->n_attachments + 1) * sizeof(*msg->attachments));
            message_attachment_t *a = &msg->attachments[msg->n_attachments++];
            memset(a, 0, sizeof(*a));
            if (filename && *filename)
                a->name = fold_whitespace_dup(filename, 1024);
            char ctype[300];
            snprintf(ctype, sizeof(ctype), "%.127s/%.127s", type, subtype);
            a->content_type = lowercase_dup(ctype);
            a->size = size;
            for (unsigned int i = 0; i < dlen && i < 32; i++)
                snprintf(a->sha256 + 2 * i, 3, "%02x", digest[i]);
        } else if (!st->attachments_capped) {
            st->attachments_capped = true;
            note_limit(msg, "more than %d attachments: the rest are not kept", MESSAGE_MAX_ATTACHMENTS);
        }
    }
    if (is_text) {
        if (text_capped)
            note_limit(msg, "a text part is larger than %u bytes: only its start was searched for URLs",
                       MESSAGE_MAX_TEXT_SCAN);
        const char *charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
        strbuf_t *utf8 = to_utf8(charset, text, &sc->utf8);
        if (!is_html) {
            const char *format = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "format");
            if (format && g_ascii_strcasecmp(format, "flowed") == 0) {
                const char *delsp = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "delsp");
                unflow(utf8, delsp && g_ascii_strcasecmp(delsp, "yes") == 0);
            }
        }
        if (utf8->len > 0) {
            if (is_html)
                url_find_html(utf8->data, utf8->len, found_url, st);
            else
                url_find_text(utf8->data, utf8->len, found_url, st);
        }
    }
}

static void walk(parse_state_t *st, GMimeObject *obj, int depth)
{
    if (!obj)
        return;
    if (st->msg->n_parts >= MESSAGE_MAX_PARTS) {
        if (!st->parts_capped)
            note_limit(st->msg, "more than %d MIME parts: the rest were not read", MESSAGE_MAX_PARTS);
        st->parts_capped = true;
        return;
    }
    if (depth > MESSAGE_MAX_DEPTH) {
        note_limit(st->msg, "MIME nesting deeper than %d: deeper parts were not read", MESSAGE_MAX_DEPTH);
        return;
    }
    st->msg->n_parts++;
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (inner) {
            const char *subject = g_mime_message_get_subject(inner);
            if (subject)
                url_find_text(subject, strlen(subject), found_url, st);
            walk(st, g_mime_message_get_mime_part(inner), depth + 1);
        }
    } else if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n && !st->parts_capped; i++)
            walk(st, g_mime_multipart_get_part(mp, i), depth + 1);
    } else if (GMIME_IS_PART(obj)) {
        walk_leaf(st, GMIME_PART(obj));
    }
}

/* ---- the message ---- */

typedef struct {
    message_t *msg;
    int notes;
} warning_ctx_t;

static void parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer user_data)
{
    (void)item;
    warning_ctx_t *w = user_data;
    const char *what = NULL;
    switch (code) {
    case GMIME_CRIT_NESTING_OVERFLOW: what = "MIME nesting too deep (parser)"; break;
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY: what = "multipart without a boundary"; break;
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT: what = "part without headers or content"; break;
    case GMIME_CRIT_INVALID_HEADER_NAME: what = "invalid header name"; break;
    case GMIME_CRIT_CONFLICTING_HEADER: what = "conflicting headers"; break;
    case GMIME_WARN_TRUNCATED_MESSAGE: what = "truncated message"; break;
    case GMIME_WARN_MALFORMED_MESSAGE: what = "malformed message"; break;
    case GMIME_WARN_MALFORMED_MULTIPART: what = "multipart without parts"; break;
    default: return;
    }
    if (w->notes++ >= 8)
        return;
    if (offset >= 0)
        note_limit(w->msg, "%s (at byte %lld)", what, (long long)offset);
    else
        note_limit(w->msg, "%s", what);
}

/* declared_boundaries - the values of the boundary= parameters written in data (at most max
 * distinct, each at most 70 bytes as RFC 2046 allows), for counting the lines that GMime
 * will take as part boundaries. */
#define MESSAGE_MAX_DECLARED_BOUNDARIES 64
typedef struct {
    char value[MESSAGE_MAX_DECLARED_BOUNDARIES][72];
    size_t len[MESSAGE_MAX_DECLARED_BOUNDARIES];
    size_t n;
} boundaries_t;

static void declared_boundaries(const char *data, size_t len, boundaries_t *b)
{
    b->n = 0;
    for (size_t i = 0; i + 9 < len && b->n < MESSAGE_MAX_DECLARED_BOUNDARIES; i++) {
        if ((data[i] != 'b' && data[i] != 'B') || g_ascii_strncasecmp(data + i, "boundary=", 9) != 0)
            continue;
        size_t k = i + 9, n = 0;
        char v[72];
        bool quoted = k < len && data[k] == '"';
        if (quoted)
            k++;
        while (k < len && n < 71 && (quoted ? data[k] != '"' : !strchr(" \t\r\n;\"", data[k])) &&
               data[k] != '\n')
            v[n++] = data[k++];
        if (n == 0)
            continue;
        bool dup = false;
        for (size_t j = 0; j < b->n && !dup; j++)
            dup = b->len[j] == n && memcmp(b->value[j], v, n) == 0;
        if (!dup) {
            memcpy(b->value[b->n], v, n);
            b->len[b->n++] = n;
        }
        i = k;
    }
}

/* message_part_cut - where to cut data so that GMime sees at most MESSAGE_MAX_BOUNDARY_LINES
 * boundary lines ("--" and a declared boundary): the start of the first line past the cap,
 * or len. Lines that merely start with "--" in a text part do not count. */
static size_t message_part_cut(const char *data, size_t len)
{
    boundaries_t *b = util_xmalloc(sizeof(*b));
    declared_boundaries(data, len, b);
    size_t count = 0, cut = len;
    const char *p = data, *end = data + len;
    while (p < end && b->n > 0) {
        const char *hit = memmem(p, (size_t)(end - p), "\n--", 3);
        if (!hit)
            break;
        const char *v = hit + 3;
        size_t left = (size_t)(end - v);
        for (size_t j = 0; j < b->n; j++) {
            if (left >= b->len[j] && memcmp(v, b->value[j], b->len[j]) == 0) {
                if (++count > MESSAGE_MAX_BOUNDARY_LINES)
                    cut = (size_t)(hit + 1 - data);
                break;
            }
        }
        if (cut < len)
            break;
        p = hit + 3;
    }
    free(b);
    return cut;
}

/* looks_like_header - the data starts with a header field ("Name:" with printable name). */
static bool looks_like_header(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && i < 1000) {
        unsigned char c = (unsigned char)data[i];
        if (c == ':')
            return i > 0;
        if (c <= 0x20 || c >= 0x7f)
            return false;
        i++;
    }
    return false;
}

static void format_date(message_t *msg, GDateTime *dt)
{
    if (!dt)
        return;
    gint64 unix_s = g_date_time_to_unix(dt);
    if (unix_s <= 0)
        return;
    GDateTime *utc = g_date_time_to_utc(dt);
    if (!utc)
        return;
    gchar *s = g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ");
    if (s) {
        msg->date = util_xstrdup(s);
        g_free(s);
        msg->date_ms = (int64_t)unix_s * 1000;
    }
    g_date_time_unref(utc);
}

int message_parse(const char *data, size_t len, const message_context_t *ctx, message_t *msg,
                  char *err, size_t errlen)
{
    memset(msg, 0, sizeof(*msg));
    message_library_init();
    if (!data || len == 0) {
        snprintf(err, errlen, "empty message");
        return -1;
    }
    if (len > MESSAGE_MAX_SIZE) {
        snprintf(err, errlen, "message of %zu bytes is larger than the limit of %u bytes", len,
                 MESSAGE_MAX_SIZE);
        return -1;
    }
    /* an mbox "From " separator line first (as in the SpamAssassin corpus) */
    if (len > 5 && memcmp(data, "From ", 5) == 0) {
        const char *nl = memchr(data, '\n', len);
        if (!nl) {
            snprintf(err, errlen, "no header: only an mbox From line");
            return -1;
        }
        len -= (size_t)(nl + 1 - data);
        data = nl + 1;
    }
    if (!looks_like_header(data, len)) {
        snprintf(err, errlen, "not a message: it does not start with a header field");
        return -1;
    }

    /* GMime builds an object per part before anything can be capped: a message made of
     * millions of tiny parts would cost gigabytes. Boundary-like lines are counted first and
     * GMime is given only the bytes before the one past the cap; the rest is searched for
     * URLs as raw text. */
    size_t parsed_len = message_part_cut(data, len);

    /* a memory stream over the caller's bytes, without a copy: the array is not owned */
    GByteArray *array = g_byte_array_new_take((guint8 *)data, parsed_len);
    GMimeStream *stream = g_mime_stream_mem_new_with_byte_array(array);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeParserOptions *options = g_mime_parser_options_new();
    warning_ctx_t wctx = {.msg = msg};
    g_mime_parser_options_set_warning_callback(options, parser_warning, &wctx);
    GMimeMessage *message = g_mime_parser_construct_message(parser, options);
    if (!message) {
        g_mime_parser_options_free(options);
        g_object_unref(parser);
        g_object_unref(stream);
        g_byte_array_free(array, FALSE);
        message_clear(msg);
        snprintf(err, errlen, "not a message: GMime found no message in it");
        return -1;
    }

    parse_state_t st;
    state_init(&st, msg);

    const char *mid = g_mime_message_get_message_id(message);
    if (mid && *mid)
        msg->message_id = fold_whitespace_dup(mid, 998);
    const char *subject = g_mime_message_get_subject(message);
    if (subject) {
        msg->subject = fold_whitespace_dup(subject, MESSAGE_MAX_HEADER_VALUE);
        url_find_text(msg->subject, strlen(msg->subject), found_url, &st);
    }
    format_date(msg, g_mime_message_get_date(message));

    message_strv_t from = {0};
    addresses_collect(g_mime_message_get_from(message), &from, 0);
    if (from.n > 0) {
        msg->header_from = util_xstrdup(from.v[0]);
        InternetAddressList *fl = g_mime_message_get_from(message);
        InternetAddress *first = internet_address_list_length(fl) > 0 ? internet_address_list_get_address(fl, 0) : NULL;
        const char *display = first ? internet_address_get_name(first) : NULL;
        if (display && *display)
            msg->from_display = fold_whitespace_dup(display, MESSAGE_MAX_HEADER_VALUE);
    }
    strv_clear(&from);
    addresses_collect(g_mime_message_get_to(message), &msg->to, 0);
    addresses_collect(g_mime_message_get_cc(message), &msg->cc, 0);
    addresses_collect(g_mime_message_get_reply_to(message), &msg->reply_to, 0);
    collect_delivered_to(GMIME_OBJECT(message), msg);

    if (ctx && ctx->envelope_sender && *ctx->envelope_sender)
        msg->sender = lowercase_dup(ctx->envelope_sender);
    else if (msg->header_from)
        msg->sender = util_xstrdup(msg->header_from);
    if (msg->sender)
        msg->sender_domain = domain_of(msg->sender);
    for (size_t i = 0; ctx && i < ctx->n_envelope_rcpts; i++) {
        if (!ctx->envelope_rcpts[i])
            continue;
        char *low = lowercase_dup(ctx->envelope_rcpts[i]);
        strv_push(&msg->envelope_rcpts, low, strlen(low), MESSAGE_MAX_ADDRESSES);
        free(low);
    }
    if (ctx && ctx->helo && *ctx->helo)
        msg->helo = util_xstrdup(ctx->helo);
    if (ctx && ctx->client_ip && *ctx->client_ip)
        msg->sender_ip = util_xstrdup(ctx->client_ip);
    else
        find_sender_ip(GMIME_OBJECT(message), ctx, msg);

    walk(&st, g_mime_message_get_mime_part(message), 0);
    if (parsed_len < len) {
        note_limit(msg, "more than %d MIME boundary lines: parts after byte %zu were searched as raw text",
                   MESSAGE_MAX_BOUNDARY_LINES, parsed_len);
        size_t rest = len - parsed_len;
        if (rest > MESSAGE_MAX_TEXT_SCAN * 4)
            rest = MESSAGE_MAX_TEXT_SCAN * 4;
        url_find_text(data + parsed_len, rest, found_url, &st);
    }

    state_release(&st);
    scratch_trim();
    g_object_unref(message);
    g_mime_parser_options_free(options);
    g_object_unref(parser);
    g_object_unref(stream);
    g_byte_array_free(array, FALSE);
    return 0;
}

void message_clear(message_t *msg)
{
    if (!msg)
        return;
    free(msg->message_id);
    free(msg->subject);
    free(msg->date);
    free(msg->header_from);
    free(msg->from_display);
    free(msg->sender);
    free(msg->sender_domain);
    free(msg->sender_ip);
    free(msg->helo);
    strv_clear(&msg->envelope_rcpts);
    strv_clear(&msg->to);
    strv_clear(&msg->cc);
    strv_clear(&msg->reply_to);
    strv_clear(&msg->delivered_to);
    strv_clear(&msg->urls);
    strv_clear(&msg->limits);
    for (size_t i = 0; i < msg->n_attachments; i++) {
        free(msg->attachments[i].name);
        free(msg->attachments[i].content_type);
    }
    free(msg->attachments);
    memset(msg, 0, sizeof(*msg));
}

/* ---- JSON ---- */

static int json_str(strbuf_t *out, const char *key, const char *value, bool comma)
{
    int rc = strbuf_appendf(out, "%s\"%s\":", comma ? "," : "", key);
    if (!value)
        return rc | strbuf_appends(out, "null");
    return rc | strbuf_append_json_string(out, value, strlen(value));
}

static int json_strv(strbuf_t *out, const char *key, const message_strv_t *v)
{
    int rc = strbuf_appendf(out, ",\"%s\":[", key);
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            rc |= strbuf_appends(out, ",");
        rc |= strbuf_append_json_string(out, v->v[i], strlen(v->v[i]));
    }
    return rc | strbuf_appends(out, "]");
}

int message_to_json(const message_t *msg, strbuf_t *out)
{
    int rc = strbuf_appends(out, "{");
    rc |= json_str(out, "message_id", msg->message_id, false);
    rc |= json_str(out, "subject", msg->subject, true);
    rc |= json_str(out, "date", msg->date, true);
    rc |= json_str(out, "header_from", msg->header_from, true);
    rc |= json_str(out, "from_display", msg->from_display, true);
    rc |= json_str(out, "sender", msg->sender, true);
    rc |= json_str(out, "sender_domain", msg->sender_domain, true);
    rc |= json_str(out, "sender_ip", msg->sender_ip, true);
    rc |= json_str(out, "helo", msg->helo, true);
    rc |= json_strv(out, "envelope_recipients", &msg->envelope_rcpts);
    rc |= json_strv(out, "to", &msg->to);
    rc |= json_strv(out, "cc", &msg->cc);
    rc |= json_strv(out, "reply_to", &msg->reply_to);
    rc |= json_strv(out, "delivered_to", &msg->delivered_to);
    rc |= json_strv(out, "urls", &msg->urls);
    rc |= strbuf_appends(out, ",\"attachments\":[");
    for (size_t i = 0; i < msg->n_attachments; i++) {
        const message_attachment_t *a = &msg->attachments[i];
        rc |= strbuf_appends(out, i ? ",{" : "{");
        rc |= json_str(out, "name", a->name, false);
        rc |= json_str(out, "content_type", a->content_type, true);
        rc |= strbuf_appendf(out, ",\"size\":%lld", (long long)a->size);
        rc |= json_str(out, "sha256", a->sha256, true);
        rc |= strbuf_appends(out, "}");
    }
    rc |= strbuf_appendf(out, "],\"parts\":%zu,\"url_candidates\":%zu", msg->n_parts, msg->n_url_candidates);
    rc |= json_strv(out, "limits", &msg->limits);
    rc |= strbuf_appends(out, "}");
    return rc ? -1 : 0;
}
