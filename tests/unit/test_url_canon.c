/*
 * test_url_canon.c - unit tests for common/url_canon.c: every canonicalization example of
 * Google's Safe Browsing v4 "URLs and hashing" page, then IPv4 forms, IDN, user info, IPv6
 * literals, refused schemes and hosts, hostile input (NUL bytes, stray '%', deep nesting,
 * 8 KB inputs, random bytes), idempotence and url_canon_host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "url_canon.h"
#include "util.h"

typedef struct {
    const char *in;
    size_t len;
    url_canon_status_t status;
    const char *out; /* expected canonical form when status is URL_CANON_OK */
} canon_case_t;

#define OK(in, out) {in, sizeof(in) - 1, URL_CANON_OK, out}
#define ERR(in, status) {in, sizeof(in) - 1, status, NULL}

/* The examples of https://developers.google.com/safe-browsing/v4/urls-hashing, in order. */
static const canon_case_t GOOGLE_CASES[] = {
    OK("http://host/%25%32%35", "http://host/%25"),
    OK("http://host/%25%32%35%25%32%35", "http://host/%25%25"),
    OK("http://host/%2525252525252525", "http://host/%25"),
    OK("http://host/asdf%25%32%35asd", "http://host/asdf%25asd"),
    OK("http://host/%%%25%32%35asd%%", "http://host/%25%25%25asd%25%25"),
    OK("http://www.google.com/", "http://www.google.com/"),
    OK("http://%31%36%38%2e%31%38%38%2e%39%39%2e%32%36/%2E%73%65%63%75%72%65/%77%77%77%2E%65%62%61%79%2E%63%6F%6D/",
       "http://168.188.99.26/.secure/www.ebay.com/"),
    OK("http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/",
       "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/"),
    OK("http://host%23.com/%257Ea%2521b%2540c%2523d%2524e%25f%255E00%252611%252A22%252833%252944_55%252B",
       "http://host%23.com/~a!b@c%23d$e%25f^00&11*22(33)44_55+"),
    OK("http://3279880203/blah", "http://195.127.0.11/blah"),
    OK("http://www.google.com/blah/..", "http://www.google.com/"),
    OK("www.google.com/", "http://www.google.com/"),
    OK("www.google.com", "http://www.google.com/"),
    OK("http://www.evil.com/blah#frag", "http://www.evil.com/blah"),
    OK("http://www.GOOgle.com/", "http://www.google.com/"),
    OK("http://www.google.com.../", "http://www.google.com/"),
    OK("http://www.google.com/foo\tbar\rbaz\n2", "http://www.google.com/foobarbaz2"),
    OK("http://www.google.com/q?", "http://www.google.com/q?"),
    OK("http://www.google.com/q?r?", "http://www.google.com/q?r?"),
    OK("http://www.google.com/q?r?s", "http://www.google.com/q?r?s"),
    OK("http://evil.com/foo#bar#baz", "http://evil.com/foo"),
    OK("http://evil.com/foo;", "http://evil.com/foo;"),
    OK("http://evil.com/foo?bar;", "http://evil.com/foo?bar;"),
    OK("http://\x01\x80.com/", "http://%01%80.com/"),
    OK("http://notrailingslash.com", "http://notrailingslash.com/"),
    OK("http://www.gotaport.com:1234/", "http://www.gotaport.com/"),
    OK("  http://www.google.com/  ", "http://www.google.com/"),
    OK("http:// leadingspace.com/", "http://%20leadingspace.com/"),
    OK("http://%20leadingspace.com/", "http://%20leadingspace.com/"),
    OK("%20leadingspace.com/", "http://%20leadingspace.com/"),
    OK("https://www.securesite.com/", "https://www.securesite.com/"),
    OK("http://host.com/ab%23cd", "http://host.com/ab%23cd"),
    OK("http://host.com//twoslashes?more//slashes", "http://host.com/twoslashes?more//slashes"),
};

static const canon_case_t MORE_CASES[] = {
    /* IPv4 in every legal form */
    OK("http://0x7f.0.0.1/", "http://127.0.0.1/"),
    OK("http://0177.0.0.01/", "http://127.0.0.1/"),
    OK("http://0x7F000001/", "http://127.0.0.1/"),
    OK("http://017700000001/", "http://127.0.0.1/"),
    OK("http://127.1/", "http://127.0.0.1/"),
    OK("http://192.168.257/", "http://192.168.1.1/"),
    OK("http://10.0x10203/", "http://10.1.2.3/"),
    OK("http://4294967295/", "http://255.255.255.255/"),
    OK("http://0/", "http://0.0.0.0/"),
    OK("http://1.2.3.4./x", "http://1.2.3.4/x"),
    OK("http://..1..2..3..4../x", "http://1.2.3.4/x"),
    OK("http://%30%78%37%66.1/", "http://127.0.0.1/"),
    /* not an address: a host name, kept as written */
    OK("http://08.1.2.3/", "http://08.1.2.3/"),
    OK("http://0x7g.1.1.1/", "http://0x7g.1.1.1/"),
    OK("http://1.2.3.4.5/", "http://1.2.3.4.5/"),
    OK("http://1.2.3.com/", "http://1.2.3.com/"),
    OK("http://-1.2.3.4/", "http://-1.2.3.4/"),
    /* numeric but out of range: no such address */
    ERR("http://256.1.1.1/", URL_CANON_BAD_HOST),
    ERR("http://4294967296/", URL_CANON_BAD_HOST),
    ERR("http://1.2.65536/", URL_CANON_BAD_HOST),
    ERR("http://99999999999999999999999999/", URL_CANON_BAD_HOST),
    ERR("http://18446744073709551617/", URL_CANON_BAD_HOST), /* 2^64 + 1 must not wrap to 1 */
    /* IDN to punycode (libidn2, UTS #46 non-transitional) */
    OK("http://www.\xC3\xBCmlat.com/", "http://www.xn--mlat-zra.com/"),
    OK("http://B\xC3\x9C" "CHER.de/", "http://xn--bcher-kva.de/"),
    OK("http://%E4%BD%A0%E5%A5%BD\xE4\xBD\xA0\xE5\xA5\xBD/", "http://xn--6qqa088eba/"),
    OK("http://fa\xC3\x9F.de/", "http://xn--fa-hia.de/"),
    OK("http://\xD0\xBF\xD1\x80\xD0\xB8\xD0\xBC\xD0\xB5\xD1\x80.\xD1\x80\xD1\x84/",
       "http://xn--e1afmkfd.xn--p1ai/"),
    /* not UTF-8, or refused by IDNA: the bytes stay, escaped */
    OK("http://\xFF\xFE.com/", "http://%FF%FE.com/"),
    OK("http://\xC3.com/", "http://%C3.com/"),
    /* user info goes, the port goes whatever it is */
    OK("http://user:pass@www.google.com/", "http://www.google.com/"),
    OK("http://a@b@evil.com:8080/x", "http://evil.com/x"),
    OK("http://www.google.com@evil.com/", "http://evil.com/"),
    OK("http://host:99999999999999999999/", "http://host/"),
    OK("http://host:abc/p", "http://host/p"),
    OK("http://host:/p", "http://host/p"),
    OK("www.example.com:8080/x", "http://www.example.com/x"),
    OK("localhost:80", "http://localhost/"),
    /* IPv6 literals are kept, lowercased, in brackets */
    OK("http://[::1]/", "http://[::1]/"),
    OK("http://[2001:DB8::1]:8443/a", "http://[2001:db8::1]/a"),
    OK("http://[::ffff:1.2.3.4]/", "http://[::ffff:1.2.3.4]/"),
    ERR("http://[::1/", URL_CANON_BAD_HOST),
    ERR("http://[zz]/", URL_CANON_BAD_HOST),
    ERR("http://[]/", URL_CANON_BAD_HOST),
    ERR("http://[::1]x/", URL_CANON_BAD_HOST),
    ERR("http://.[::1]/", URL_CANON_BAD_HOST),
    /* schemes */
    OK("HTTPS://Example.COM", "https://example.com/"),
    OK("ftp://ftp.example.com/pub/file.txt", "ftp://ftp.example.com/pub/file.txt"),
    OK("HtTp://example.com/A/B", "http://example.com/A/B"),
    OK("%68ttp://example.com/", "http://example.com/"),
    OK("//cdn.example.com/x.js", "http://cdn.example.com/x.js"),
    OK("http:/example.com/x", "http://example.com/x"),
    OK("http:///example.com/x", "http://example.com/x"),
    OK("http:\\\\example.com\\a\\b", "http://example.com/a/b"),
    ERR("mailto:someone@example.com", URL_CANON_BAD_SCHEME),
    ERR("javascript:alert(1)", URL_CANON_BAD_SCHEME),
    ERR("data:text/html,<b>x</b>", URL_CANON_BAD_SCHEME),
    ERR("about:blank", URL_CANON_BAD_SCHEME),
    ERR("file:///etc/passwd", URL_CANON_BAD_SCHEME),
    ERR("JavaScript%3Aalert(1)", URL_CANON_BAD_SCHEME),
    /* nothing, or no host */
    ERR("", URL_CANON_EMPTY),
    ERR("   \t ", URL_CANON_EMPTY),
    ERR("#frag", URL_CANON_EMPTY),
    ERR("\r\n", URL_CANON_EMPTY),
    ERR("http://", URL_CANON_BAD_HOST),
    ERR("http:///", URL_CANON_BAD_HOST),
    ERR("http://.../x", URL_CANON_BAD_HOST),
    ERR("http://user@/x", URL_CANON_BAD_HOST),
    ERR("/relative/path", URL_CANON_BAD_HOST),
    /* paths */
    OK("http://a/b/c/./../../g", "http://a/g"),
    OK("http://a/../../x", "http://a/x"),
    OK("http://a/b/.", "http://a/b/"),
    OK("http://a/./", "http://a/"),
    OK("http://a/b/%2e%2E/c", "http://a/c"),
    OK("http://a/.../x", "http://a/.../x"),
    OK("http://a/..x/y", "http://a/..x/y"),
    OK("http://a///b//c//", "http://a/b/c/"),
    OK("http://a?x=1", "http://a/?x=1"),
    OK("http://a/b?c//d/../e#f", "http://a/b?c//d/../e"),
    OK("http://a/caf\xC3\xA9?q=\xC3\xA9 x", "http://a/caf%C3%A9?q=%C3%A9%20x"),
    OK("http://a/%7f%7F\x7f", "http://a/%7F%7F%7F"),
    OK("http://a/%0a%0D", "http://a/%0A%0D"),
    /* hostile escapes */
    OK("http://host/%", "http://host/%25"),
    OK("http://host/%%%", "http://host/%25%25%25"),
    OK("http://host/%2", "http://host/%252"),
    OK("http://host/%zz%g1", "http://host/%25zz%25g1"),
    OK("http://host/%%34%31", "http://host/A"),
    OK("http://host/%2%35", "http://host/%25"),
    OK("http://host/%23%2523", "http://host/%23%23"),
    /* NUL bytes are data */
    OK("http://a\0b.com/p\0q", "http://a%00b.com/p%00q"),
    OK("http://a.com/%00", "http://a.com/%00"),
    OK("\0http://a.com/\0", "http://a.com/"),
};

static void run_cases(const canon_case_t *cases, size_t count)
{
    strbuf_t out;
    strbuf_init(&out, 0);
    for (size_t i = 0; i < count; i++) {
        const canon_case_t *c = &cases[i];
        url_canon_status_t st = url_canon(c->in, c->len, &out);
        if (st != c->status)
            fail_msg("case %zu [%s]: status %d (%s), expected %d; out [%s]", i, c->in, st,
                     url_canon_strerror(st), c->status, out.data ? out.data : "");
        if (st == URL_CANON_OK) {
            if (strcmp(out.data, c->out) != 0 || strlen(out.data) != out.len)
                fail_msg("case %zu [%s]: got [%s], expected [%s]", i, c->in, out.data, c->out);
        } else if (out.len != 0) {
            fail_msg("case %zu [%s]: failed but left output [%s]", i, c->in, out.data);
        }
    }
    strbuf_release(&out);
}

static void test_google_examples(void **state)
{
    (void)state;
    assert_int_equal(UTIL_ARRAY_LEN(GOOGLE_CASES), 33);
    run_cases(GOOGLE_CASES, UTIL_ARRAY_LEN(GOOGLE_CASES));
}

static void test_more_cases(void **state)
{
    (void)state;
    run_cases(MORE_CASES, UTIL_ARRAY_LEN(MORE_CASES));
}

/* canon(canon(x)) == canon(x) for every case that canonicalizes */
static void check_idempotent(const canon_case_t *cases, size_t count)
{
    strbuf_t once, twice;
    strbuf_init(&once, 0);
    strbuf_init(&twice, 0);
    for (size_t i = 0; i < count; i++) {
        if (cases[i].status != URL_CANON_OK)
            continue;
        assert_int_equal(url_canon(cases[i].in, cases[i].len, &once), URL_CANON_OK);
        assert_int_equal(url_canon(once.data, once.len, &twice), URL_CANON_OK);
        if (strcmp(once.data, twice.data) != 0)
            fail_msg("[%s] -> [%s] -> [%s]", cases[i].in, once.data, twice.data);
    }
    strbuf_release(&once);
    strbuf_release(&twice);
}

static void test_idempotent(void **state)
{
    (void)state;
    check_idempotent(GOOGLE_CASES, UTIL_ARRAY_LEN(GOOGLE_CASES));
    check_idempotent(MORE_CASES, UTIL_ARRAY_LEN(MORE_CASES));
}

/* the output buffer is reset first, also when the call fails */
static void test_output_reset(void **state)
{
    (void)state;
    strbuf_t out;
    strbuf_init(&out, 0);
    assert_int_equal(strbuf_appends(&out, "junk"), 0);
    assert_int_equal(url_canon("a.com", 5, &out), URL_CANON_OK);
    assert_string_equal(out.data, "http://a.com/");
    assert_int_equal(url_canon("mailto:x@y", 10, &out), URL_CANON_BAD_SCHEME);
    assert_int_equal(out.len, 0);
    assert_string_equal(out.data, "");
    /* not NUL-terminated: only len bytes are read */
    assert_int_equal(url_canon("b.com/xyz", 5, &out), URL_CANON_OK);
    assert_string_equal(out.data, "http://b.com/");
    strbuf_release(&out);
}

/* an output buffer too small for the result: TOO_LONG, nothing left in it */
static void test_output_max(void **state)
{
    (void)state;
    strbuf_t out;
    strbuf_init(&out, 16);
    assert_int_equal(url_canon("http://example.com/", 19, &out), URL_CANON_TOO_LONG);
    assert_int_equal(out.len, 0);
    assert_false(out.data && out.data[0]);
    assert_int_equal(url_canon("a.co", 4, &out), URL_CANON_OK);
    assert_string_equal(out.data, "http://a.co/");
    strbuf_release(&out);
}

static void test_length_limit(void **state)
{
    (void)state;
    char *in = util_xmalloc(URL_CANON_MAX_INPUT + 1);
    memcpy(in, "http://a.com/", 13);
    memset(in + 13, 'x', URL_CANON_MAX_INPUT + 1 - 13);
    strbuf_t out;
    strbuf_init(&out, 0);
    assert_int_equal(url_canon(in, URL_CANON_MAX_INPUT, &out), URL_CANON_OK);
    assert_int_equal(out.len, URL_CANON_MAX_INPUT);
    assert_memory_equal(out.data, in, URL_CANON_MAX_INPUT);
    assert_int_equal(url_canon(in, URL_CANON_MAX_INPUT + 1, &out), URL_CANON_TOO_LONG);
    assert_int_equal(out.len, 0);
    strbuf_release(&out);
    free(in);
}

/* build - prefix, then unit repeated to fill URL_CANON_MAX_INPUT bytes, then suffix */
static size_t build(char *buf, const char *prefix, const char *unit, const char *suffix)
{
    size_t n = strlen(prefix), ul = strlen(unit), sl = strlen(suffix);
    memcpy(buf, prefix, n);
    while (n + ul + sl <= URL_CANON_MAX_INPUT) {
        memcpy(buf + n, unit, ul);
        n += ul;
    }
    memcpy(buf + n, suffix, sl);
    return n + sl;
}

/* 8 KB of the worst patterns: each must finish quickly with the expected result */
static void test_hostile_8k(void **state)
{
    (void)state;
    static const struct {
        const char *prefix, *unit, *suffix, *expect;
    } cases[] = {
        {"http://host/%", "25", "", "http://host/%25"},        /* 2700 rounds of unescaping */
        {"http://host/", "%", "", NULL},                       /* every byte re-escaped */
        {"http://", ".", "a.com/", "http://a.com/"},           /* absurdly many dots */
        {"http://a.com/", "../", "x", "http://a.com/x"},       /* climbing above the root */
        {"http://a.com/", "b/../", "x", "http://a.com/x"},
        {"http://a.com/", "/", "x", "http://a.com/x"},
        {"http://", "1.", "2/", NULL},                         /* many numeric labels */
        {"http://a.com/", "%2e%2e%2f", "y", "http://a.com/y"}, /* escaped dot segments */
        {"http://", "\xC3\xBC", ".de/", NULL},                 /* a huge non-ASCII host */
        {"http://", "@", "a.com/", "http://a.com/"},
        {"http://a.com:", "9", "/", "http://a.com/"},
    };
    char *buf = util_xmalloc(URL_CANON_MAX_INPUT + 1);
    strbuf_t out;
    strbuf_init(&out, 0);
    clock_t start = clock();
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
            size_t n = build(buf, cases[i].prefix, cases[i].unit, cases[i].suffix);
            assert_true(n <= URL_CANON_MAX_INPUT);
            url_canon_status_t st = url_canon(buf, n, &out);
            if (cases[i].expect) {
                assert_int_equal(st, URL_CANON_OK);
                assert_string_equal(out.data, cases[i].expect);
            } else {
                assert_true(st == URL_CANON_OK || st == URL_CANON_BAD_HOST);
            }
        }
    }
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    /* 220 canonicalizations of 8 KB; linear work takes milliseconds even under sanitizers */
    if (secs > 5.0)
        fail_msg("hostile inputs took %.2f s", secs);
    /* "%" repeated: every one of them escaped */
    size_t n = build(buf, "http://host/", "%", "");
    assert_int_equal(url_canon(buf, n, &out), URL_CANON_OK);
    assert_int_equal(out.len, 12 + 3 * (n - 12));
    strbuf_release(&out);
    free(buf);
}

static bool is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* check_canonical_shape - what every OK result must look like */
static void check_canonical_shape(const strbuf_t *out)
{
    assert_int_equal(strlen(out->data), out->len);
    assert_true(strncmp(out->data, "http://", 7) == 0 || strncmp(out->data, "https://", 8) == 0 ||
                strncmp(out->data, "ftp://", 6) == 0);
    size_t hl = 0;
    assert_non_null(url_canon_host(out->data, &hl));
    assert_true(hl > 0);
    for (size_t i = 0; i < out->len; i++) {
        unsigned char c = (unsigned char)out->data[i];
        assert_true(c > 0x20 && c < 0x7f && c != '#');
        if (c == '%') {
            assert_true(i + 2 < out->len);
            assert_true(is_upper_hex(out->data[i + 1]) && is_upper_hex(out->data[i + 2]));
        }
    }
}

/* random bytes drawn from an alphabet rich in URL syntax: a status every time, a canonical
 * shape when OK, and a fixed point */
static void test_random_inputs(void **state)
{
    (void)state;
    static const char alphabet[] = "%%%2523aAfF09.:/\\?#@[]x \t\0\x80\xC3\xBC\xFFhttp";
    strbuf_t out, again;
    strbuf_init(&out, 0);
    strbuf_init(&again, 0);
    srand(12345);
    char in[300];
    for (int iter = 0; iter < 30000; iter++) {
        size_t n = (size_t)(rand() % (int)sizeof(in));
        size_t start = 0;
        if (iter % 2 == 0) {
            memcpy(in, "http://", 7);
            start = 7;
            if (n < start)
                n = start;
        }
        for (size_t i = start; i < n; i++)
            in[i] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
        url_canon_status_t st = url_canon(in, n, &out);
        assert_true(st >= URL_CANON_OK && st <= URL_CANON_BAD_HOST);
        if (st != URL_CANON_OK) {
            assert_int_equal(out.len, 0);
            continue;
        }
        check_canonical_shape(&out);
        if (url_canon(out.data, out.len, &again) != URL_CANON_OK)
            fail_msg("[%s] does not canonicalize again", out.data);
        if (strcmp(out.data, again.data) != 0)
            fail_msg("not a fixed point: [%s] -> [%s]", out.data, again.data);
    }
    strbuf_release(&out);
    strbuf_release(&again);
}

static void test_host(void **state)
{
    (void)state;
    static const struct {
        const char *canon;
        const char *host; /* NULL: no host */
    } cases[] = {
        {"http://www.google.com/", "www.google.com"},
        {"https://1.2.3.4/x?y", "1.2.3.4"},
        {"ftp://[::1]/", "[::1]"},
        {"http://a.com?q", "a.com"},
        {"http://a.com", "a.com"},
        {"http://%20leadingspace.com/", "%20leadingspace.com"},
        {"http:///x", NULL},
        {"://a.com/", NULL},
        {"a.com/", NULL},
        {"http:/a.com/", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        size_t len = 12345;
        const char *h = url_canon_host(cases[i].canon, &len);
        if (!cases[i].host) {
            if (h)
                fail_msg("[%s]: expected no host", cases[i].canon);
            continue;
        }
        if (!h || len != strlen(cases[i].host) || memcmp(h, cases[i].host, len) != 0)
            fail_msg("[%s]: wrong host", cases[i].canon);
        assert_true(h > cases[i].canon && h < cases[i].canon + strlen(cases[i].canon));
    }
    size_t len = 0;
    assert_null(url_canon_host(NULL, &len));

    /* the host of url_canon's own output */
    strbuf_t out;
    strbuf_init(&out, 0);
    assert_int_equal(url_canon("HTTP://user@WWW.Example.COM:8080/a?b", 36, &out), URL_CANON_OK);
    const char *h = url_canon_host(out.data, &len);
    assert_non_null(h);
    assert_int_equal(len, 15);
    assert_memory_equal(h, "www.example.com", 15);
    strbuf_release(&out);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(url_canon_strerror(URL_CANON_OK), "ok");
    const char *seen[5];
    for (int s = URL_CANON_OK; s <= URL_CANON_BAD_HOST; s++) {
        const char *msg = url_canon_strerror((url_canon_status_t)s);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        for (int k = 0; k < s; k++)
            assert_string_not_equal(seen[k], msg);
        seen[s] = msg;
    }
    assert_string_equal(url_canon_strerror((url_canon_status_t)99), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_google_examples),
        cmocka_unit_test(test_more_cases),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_output_reset),
        cmocka_unit_test(test_output_max),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_hostile_8k),
        cmocka_unit_test(test_random_inputs),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
