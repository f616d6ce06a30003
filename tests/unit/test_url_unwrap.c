/*
 * test_url_unwrap.c - unit tests for common/url_unwrap.c: refanging, each gateway wrapper
 * (Safe Links, Proofpoint v1/v2/v3, Cisco secure-web, BLOCKED...BLOCKED) with real-looking
 * rewrites, lookalikes that must stay untouched, malformed wrappers, nesting and the depth
 * limit of url_unwrap_layers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "url_unwrap.h"
#include "util.h"

/* ------------------------------------------------------------------------------ refang */

typedef struct {
    const char *in;
    const char *out; /* NULL: unchanged */
} refang_case_t;

static const refang_case_t REFANG_CASES[] = {
    {"hxxp://evil[.]com/path", "http://evil.com/path"},
    {"hXXps://evil[.]example(.)com/a", "https://evil.example.com/a"},
    {"HXXPS://EVIL{.}COM", "https://EVIL.COM"},
    {"hxxxp://a{.}b/", "http://a.b/"},
    {"hxxps[:]//login[.]bank-secure[.]net/verify", "https://login.bank-secure.net/verify"},
    {"http[:]//evil.com", "http://evil.com"},
    {"hxxp[://]evil.com/x", "http://evil.com/x"},
    {"evil[dot]com", "evil.com"},
    {"evil(DOT)com/(dot)", "evil.com/."},
    {"user[@]evil.com", "user@evil.com"},
    {"ftp://user[at]files[.]example", "ftp://user@files.example"},
    {"phish[.]cua[.]com/test_url_2022032901_rks", "phish.cua.com/test_url_2022032901_rks"},
    {"BLOCKEDphish[.]cua[.]com/pathBLOCKED", "BLOCKEDphish.cua.com/pathBLOCKED"},
    {"[.]", "."},
    {"a[.][.]b", "a..b"},
    /* nothing to undo */
    {"http://example.com/", NULL},
    {"https://example.com/hxxp-guide?x=[1]", NULL},
    {"ahxxp://x.com", NULL},
    {"hxxp", NULL},
    {"hxp://x.com", NULL},
    {"hxxxxp://x.com", NULL},
    {"http://example.com/[.", NULL},
    {"http://example.com/[do]", NULL},
    {"", NULL},
};

static void test_refang(void **state)
{
    (void)state;
    strbuf_t out;
    strbuf_init(&out, 0);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(REFANG_CASES); i++) {
        const refang_case_t *c = &REFANG_CASES[i];
        assert_int_equal(strbuf_appends(&out, "junk"), 0);
        bool changed = url_refang(c->in, strlen(c->in), &out);
        if (!c->out) {
            if (changed || out.len != 0)
                fail_msg("[%s]: changed to [%s]", c->in, out.data);
            continue;
        }
        if (!changed || strcmp(out.data, c->out) != 0 || out.len != strlen(c->out))
            fail_msg("[%s]: got [%s], expected [%s]", c->in, changed ? out.data : "(unchanged)",
                     c->out);
    }
    /* only len bytes are read */
    assert_true(url_refang("a[.]b[.]c", 6, &out));
    assert_string_equal(out.data, "a.b[");
    strbuf_release(&out);
}

/* ------------------------------------------------------------------------------ unwrap */

typedef struct {
    const char *name;
    const char *in;
    url_wrap_t kind;
    const char *out; /* when kind != URL_WRAP_NONE */
} unwrap_case_t;

static const unwrap_case_t UNWRAP_CASES[] = {
    /* Microsoft Safe Links */
    {"safelinks", "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example.com%2Flogin%3Fid%3D42%26lang%3Den&data=05%7C01%7Cjdoe%40contoso.com%7C3c1f8a2b%7C72f988bf%7C0%7C0%7C638123%7CUnknown&sdata=Zm9vYmFy%3D&reserved=0",
     URL_WRAP_SAFELINKS, "https://evil.example.com/login?id=42&lang=en"},
    {"safelinks upper-case, no scheme, lower-case escapes",
     "EUR03.SAFELINKS.PROTECTION.OUTLOOK.COM/?URL=http%3a%2f%2fa.example%2f&data=x",
     URL_WRAP_SAFELINKS, "http://a.example/"},
    {"safelinks url not first", "https://gcc02.safelinks.protection.outlook.com/?data=1&url=http%3A%2F%2Fb.example&reserved=0",
     URL_WRAP_SAFELINKS, "http://b.example"},
    {"safelinks decoded once only", "https://nam04.safelinks.protection.outlook.com/?url=http%3A%2F%2Fc.example%2F%2541&data=0",
     URL_WRAP_SAFELINKS, "http://c.example/%41"},
    {"safelinks truncated escape", "https://nam04.safelinks.protection.outlook.com/?url=http%3A%2F%2Fd.example%2",
     URL_WRAP_SAFELINKS, "http://d.example%2"},
    {"safelinks with port and fragment", "https://nam04.safelinks.protection.outlook.com:443/?url=http%3A%2F%2Fe.example#frag",
     URL_WRAP_SAFELINKS, "http://e.example"},
    {"safelinks without url", "https://nam12.safelinks.protection.outlook.com/?data=05%7C01", URL_WRAP_NONE, NULL},
    {"safelinks empty url", "https://nam12.safelinks.protection.outlook.com/?url=&data=1", URL_WRAP_NONE, NULL},
    {"safelinks lookalike suffix", "https://nam12.safelinks.protection.outlook.com.evil.example/?url=http%3A%2F%2Fx", URL_WRAP_NONE, NULL},
    {"safelinks lookalike prefix", "https://evilsafelinks.protection.outlook.com/?url=http%3A%2F%2Fx", URL_WRAP_NONE, NULL},
    {"safelinks host in path", "https://evil.example/nam12.safelinks.protection.outlook.com/?url=http%3A%2F%2Fx", URL_WRAP_NONE, NULL},
    {"safelinks urlx param", "https://nam12.safelinks.protection.outlook.com/?urlx=http%3A%2F%2Fx", URL_WRAP_NONE, NULL},

    /* Proofpoint URL Defense v1 */
    {"proofpoint v1", "https://urldefense.proofpoint.com/v1/url?u=http%3A%2F%2Fwww.bank.example%2Flogin%3Fa%3D1&k=oIvRg1%2BdGAgOoM1BIlLLqw%3D%3D%0A&r=abc%0A&m=def%0A&s=0123",
     URL_WRAP_PROOFPOINT_V1, "http://www.bank.example/login?a=1"},
    {"proofpoint v1 plain u", "https://urldefense.proofpoint.com/v1/url?u=http://www.bank.example/&k=x",
     URL_WRAP_PROOFPOINT_V1, "http://www.bank.example/"},

    /* Proofpoint URL Defense v2 */
    {"proofpoint v2", "https://urldefense.proofpoint.com/v2/url?u=http-3A__www.example.com_login.php-3Fuser-3Djdoe-26lang-3Den&d=DwMFAg&c=euGZstcaTDllvimEN8b7jXrwqOf-v5A_CdpgnVfiiMM&r=abcdef&m=ghijkl&s=mnopqr&e=",
     URL_WRAP_PROOFPOINT_V2, "http://www.example.com/login.php?user=jdoe&lang=en"},
    {"proofpoint v2 symbols", "https://urldefense.proofpoint.com/v2/url?u=https-3A__shop.example_-7Euser_a-2Bb-40c-21-2523&d=DwIF",
     URL_WRAP_PROOFPOINT_V2, "https://shop.example/~user/a+b@c!%23"},
    {"proofpoint v2 html entities", "https://urldefense.proofpoint.com/v2/url?u=https-3A__example.com_a-3Fx-3D1-26amp-3By-3D2-26-2360-3B-26-23x3e-3B&d=DwMF",
     URL_WRAP_PROOFPOINT_V2, "https://example.com/a?x=1&y=2<>"},
    {"proofpoint v2 unknown entity", "https://urldefense.proofpoint.com/v2/url?u=https-3A__example.com_-26nope-3B-26-230-3B&d=x",
     URL_WRAP_PROOFPOINT_V2, "https://example.com/&nope;&#0;"},
    {"proofpoint v2 on urldefense.com", "https://urldefense.com/v2/url?u=https-3A__www.example.com&d=&c=&r=&m=&s=&e=",
     URL_WRAP_PROOFPOINT_V2, "https://www.example.com"},
    {"proofpoint v2 truncated escape", "https://urldefense.proofpoint.com/v2/url?u=http-3A__a.example_x-3",
     URL_WRAP_PROOFPOINT_V2, "http://a.example/x%3"},
    {"proofpoint v2 without u", "https://urldefense.proofpoint.com/v2/url?d=DwMFAg&c=x", URL_WRAP_NONE, NULL},
    {"proofpoint unknown version", "https://urldefense.proofpoint.com/v9/url?u=http-3A__a.example", URL_WRAP_NONE, NULL},
    {"proofpoint v2 wrong host", "https://urldefense.example.com/v2/url?u=http-3A__a.example", URL_WRAP_NONE, NULL},

    /* Proofpoint URL Defense v3 */
    {"proofpoint v3 plain", "https://urldefense.com/v3/__https://example.com/path?a=1__;!!ABCdef!ghIJ-klm$",
     URL_WRAP_PROOFPOINT_V3, "https://example.com/path?a=1"},
    {"proofpoint v3 no scheme", "urldefense.com/v3/__http://www.example.com__;!!foo!bar$",
     URL_WRAP_PROOFPOINT_V3, "http://www.example.com"},
    {"proofpoint v3 stars", "https://urldefense.com/v3/__https://evil.example.com/login*php?next=*2Fhome__;LiU!!Q0ZB!x9Yz$",
     URL_WRAP_PROOFPOINT_V3, "https://evil.example.com/login.php?next=%2Fhome"},
    {"proofpoint v3 real-looking", "https://urldefense.com/v3/__https://storage.example.com/v0/b/app.appspot.com/o/owa*2Findex.html?alt=media&token=0249*victim@example.org__;JSM!!Fjc1LPEtn8I!abcdef$",
     URL_WRAP_PROOFPOINT_V3, "https://storage.example.com/v0/b/app.appspot.com/o/owa%2Findex.html?alt=media&token=0249#victim@example.org"},
    {"proofpoint v3 run of 4", "https://urldefense.com/v3/__https://a.example/x**Cy__;IyMjIw!!x$",
     URL_WRAP_PROOFPOINT_V3, "https://a.example/x####y"},
    {"proofpoint v3 run of 65 then 1", "https://urldefense.com/v3/__https://a.example/**_*z__;IyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMj!!x$",
     URL_WRAP_PROOFPOINT_V3, "https://a.example/##################################################################z"},
    {"proofpoint v3 multi-byte characters", "https://urldefense.com/v3/__https://caf*.example/**A__;w6lhYg!!x$",
     URL_WRAP_PROOFPOINT_V3, "https://caf\xC3\xA9.example/ab"},
    {"proofpoint v3 tail with padding", "https://urldefense.com/v3/__https://a.example/*__;Jg==!!x$",
     URL_WRAP_PROOFPOINT_V3, "https://a.example/&"},
    {"proofpoint v3 percent-encoded url", "https://urldefense.com/v3/__https:%2F%2Fa.example%2F*__;Jg!!x$",
     URL_WRAP_PROOFPOINT_V3, "https://a.example/&"},
    {"proofpoint v3 on urldefense.proofpoint.com", "https://urldefense.proofpoint.com/v3/__https://a.example/__;!!x$",
     URL_WRAP_PROOFPOINT_V3, "https://a.example/"},
    {"proofpoint v3 bad base64", "https://urldefense.com/v3/__https://a.example/*__;L$x!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 tail runs out", "https://urldefense.com/v3/__https://a.example/a*b*c*__;Lg!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 run longer than tail", "https://urldefense.com/v3/__https://a.example/**Z__;LiU!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 bad run character", "https://urldefense.com/v3/__https://a.example/**~__;LiU!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 run character missing", "https://urldefense.com/v3/__https://a.example/x**__;LiU!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 invalid utf-8", "https://urldefense.com/v3/__https://a.example/*__;_w!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 overlong utf-8", "https://urldefense.com/v3/__https://a.example/*__;wK8!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 surrogate in utf-8", "https://urldefense.com/v3/__https://a.example/*__;7aCA!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 star without tail", "https://urldefense.com/v3/__https://a.example/*__;!!x$", URL_WRAP_NONE, NULL},
    {"proofpoint v3 no terminator", "https://urldefense.com/v3/__https://a.example/", URL_WRAP_NONE, NULL},
    {"proofpoint v3 empty url", "https://urldefense.com/v3/____;Iw!!x$", URL_WRAP_NONE, NULL},

    /* Cisco secure-web */
    {"cisco", "https://secure-web.cisco.com/1kXq3Zr9d0bYw-TOKENtOkEn_abc123/https%3A%2F%2Fwww.example.com%2Fpay%3Finvoice%3D7%26amp%3Bx",
     URL_WRAP_CISCO, "https://www.example.com/pay?invoice=7&amp;x"},
    {"cisco lower-case escapes", "https://secure-web.cisco.com/1abc/http%3a%2f%2fwww.example.org%2F",
     URL_WRAP_CISCO, "http://www.example.org/"},
    {"cisco two token segments", "http://secure-web.cisco.com/1abc/def/https%3A%2F%2Fx.example",
     URL_WRAP_CISCO, "https://x.example"},
    {"cisco no encoded url", "https://secure-web.cisco.com/1abc/def", URL_WRAP_NONE, NULL},
    {"cisco bare", "https://secure-web.cisco.com/", URL_WRAP_NONE, NULL},
    {"cisco url in the first segment", "https://secure-web.cisco.com/https%3A%2F%2Fx.example", URL_WRAP_NONE, NULL},
    {"cisco lookalike", "https://secure-web.cisco.com.evil.example/1abc/https%3A%2F%2Fx.example", URL_WRAP_NONE, NULL},

    /* BLOCKED...BLOCKED (already refanged, as url_unwrap_once expects) */
    {"blocked", "BLOCKEDphish.cua.com/test_url_2022032901_rksBLOCKED", URL_WRAP_BLOCKED,
     "phish.cua.com/test_url_2022032901_rks"},
    {"blocked with scheme", "BLOCKEDhttp://evil.example/xBLOCKED", URL_WRAP_BLOCKED, "http://evil.example/x"},
    {"blocked without the closing marker", "BLOCKEDevil.example/x", URL_WRAP_BLOCKED, "evil.example/x"},
    {"blocked empty", "BLOCKEDBLOCKED", URL_WRAP_NONE, NULL},
    {"blocked marker alone", "BLOCKED", URL_WRAP_NONE, NULL},
    {"blocked lower case", "blockedevil.example/x", URL_WRAP_NONE, NULL},

    /* not wrappers */
    {"plain", "https://www.example.com/?url=http%3A%2F%2Fx.example&u=y", URL_WRAP_NONE, NULL},
    {"empty", "", URL_WRAP_NONE, NULL},
    {"just a host", "urldefense.com", URL_WRAP_NONE, NULL},
    {"mailto", "mailto:someone@safelinks.protection.outlook.com", URL_WRAP_NONE, NULL},
};

static void test_unwrap_once(void **state)
{
    (void)state;
    strbuf_t out;
    strbuf_init(&out, 0);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(UNWRAP_CASES); i++) {
        const unwrap_case_t *c = &UNWRAP_CASES[i];
        assert_int_equal(strbuf_appends(&out, "junk"), 0);
        url_wrap_t kind = url_unwrap_once(c->in, strlen(c->in), &out);
        if (kind != c->kind)
            fail_msg("case '%s': kind %s, expected %s (out [%s])", c->name, url_wrap_name(kind),
                     url_wrap_name(c->kind), out.data ? out.data : "");
        if (kind == URL_WRAP_NONE) {
            if (out.len != 0)
                fail_msg("case '%s': NONE but output [%s]", c->name, out.data);
            continue;
        }
        if (strcmp(out.data, c->out) != 0 || out.len != strlen(c->out))
            fail_msg("case '%s': got [%s], expected [%s]", c->name, out.data, c->out);
    }
    strbuf_release(&out);
}

/* an output buffer too small for the inner URL: NONE, nothing written */
static void test_unwrap_output_max(void **state)
{
    (void)state;
    const char *in = "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example.com%2Flogin&data=0";
    strbuf_t out;
    strbuf_init(&out, 10);
    assert_int_equal(url_unwrap_once(in, strlen(in), &out), URL_WRAP_NONE);
    assert_int_equal(out.len, 0);
    strbuf_release(&out);
    strbuf_init(&out, 10);
    assert_false(url_refang("hxxp://evil[.]example[.]com/", 28, &out));
    assert_int_equal(out.len, 0);
    strbuf_release(&out);
}

static void test_wrap_names(void **state)
{
    (void)state;
    static const struct {
        url_wrap_t kind;
        const char *name;
    } names[] = {
        {URL_WRAP_NONE, "none"},
        {URL_WRAP_DEFANG, "defang"},
        {URL_WRAP_SAFELINKS, "safelinks"},
        {URL_WRAP_PROOFPOINT_V1, "proofpoint_v1"},
        {URL_WRAP_PROOFPOINT_V2, "proofpoint_v2"},
        {URL_WRAP_PROOFPOINT_V3, "proofpoint_v3"},
        {URL_WRAP_CISCO, "cisco"},
        {URL_WRAP_BLOCKED, "blocked"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++)
        assert_string_equal(url_wrap_name(names[i].kind), names[i].name);
    assert_string_equal(url_wrap_name((url_wrap_t)42), "unknown");
}

/* ------------------------------------------------------------------------------ layers */

#define MAX_SEEN 16

typedef struct {
    int count;
    char *url[MAX_SEEN];
    url_wrap_t via[MAX_SEEN];
} seen_t;

static void collect(void *ctx, const char *url, size_t len, url_wrap_t via)
{
    seen_t *s = ctx;
    assert_true(s->count < MAX_SEEN);
    s->url[s->count] = util_xstrndup(url, len);
    s->via[s->count] = via;
    s->count++;
}

static void seen_free(seen_t *s)
{
    for (int i = 0; i < s->count; i++)
        free(s->url[i]);
    s->count = 0;
}

typedef struct {
    url_wrap_t via;
    const char *url;
} layer_t;

typedef struct {
    const char *name;
    const char *in;
    layer_t layers[URL_UNWRAP_MAX_DEPTH + 1]; /* ends with a NULL url */
} layers_case_t;

static const layers_case_t LAYER_CASES[] = {
    {"plain", "https://www.example.com/a?b=c", {{URL_WRAP_NONE, "https://www.example.com/a?b=c"}}},
    {"defanged", "hxxps://evil[.]com/x",
     {{URL_WRAP_NONE, "hxxps://evil[.]com/x"}, {URL_WRAP_DEFANG, "https://evil.com/x"}}},
    {"seed log BLOCKED", "BLOCKEDphish[.]cua[.]com/test_url_2022032901_rksBLOCKED",
     {{URL_WRAP_NONE, "BLOCKEDphish[.]cua[.]com/test_url_2022032901_rksBLOCKED"},
      {URL_WRAP_DEFANG, "BLOCKEDphish.cua.com/test_url_2022032901_rksBLOCKED"},
      {URL_WRAP_BLOCKED, "phish.cua.com/test_url_2022032901_rks"}}},
    /* "hxxp" right after a letter is not taken for a scheme: it is refanged one layer down */
    {"BLOCKED around a defanged scheme", "BLOCKEDhxxp://evil[.]example/BLOCKED",
     {{URL_WRAP_NONE, "BLOCKEDhxxp://evil[.]example/BLOCKED"},
      {URL_WRAP_DEFANG, "BLOCKEDhxxp://evil.example/BLOCKED"},
      {URL_WRAP_BLOCKED, "hxxp://evil.example/"},
      {URL_WRAP_DEFANG, "http://evil.example/"}}},
    {"safelinks around proofpoint v2",
     "https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Furldefense.proofpoint.com%2Fv2%2Furl%3Fu%3Dhttp-3A__evil.example.com_login-3Fid-3D7%26d%3DDwMFaQ%26c%3Dabc%26r%3Ddef%26m%3Dghi%26s%3Djkl%26e%3D&data=05%7C01%7Cjdoe%40contoso.com&sdata=abc%3D&reserved=0",
     {{URL_WRAP_NONE, "https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Furldefense.proofpoint.com%2Fv2%2Furl%3Fu%3Dhttp-3A__evil.example.com_login-3Fid-3D7%26d%3DDwMFaQ%26c%3Dabc%26r%3Ddef%26m%3Dghi%26s%3Djkl%26e%3D&data=05%7C01%7Cjdoe%40contoso.com&sdata=abc%3D&reserved=0"},
      {URL_WRAP_SAFELINKS, "https://urldefense.proofpoint.com/v2/url?u=http-3A__evil.example.com_login-3Fid-3D7&d=DwMFaQ&c=abc&r=def&m=ghi&s=jkl&e="},
      {URL_WRAP_PROOFPOINT_V2, "http://evil.example.com/login?id=7"}}},
    {"safelinks around proofpoint v3",
     "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Furldefense.com%2Fv3%2F__https%3A%2F%2Fevil.example%2Fa*php__%3BLg!!AbC!dEf%24&data=1",
     {{URL_WRAP_NONE, "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Furldefense.com%2Fv3%2F__https%3A%2F%2Fevil.example%2Fa*php__%3BLg!!AbC!dEf%24&data=1"},
      {URL_WRAP_SAFELINKS, "https://urldefense.com/v3/__https://evil.example/a*php__;Lg!!AbC!dEf$"},
      {URL_WRAP_PROOFPOINT_V3, "https://evil.example/a.php"}}},
    {"proofpoint v2 around cisco around a defanged URL",
     "https://urldefense.proofpoint.com/v2/url?u=https-3A__secure-2Dweb.cisco.com_1abc_http-253A-252F-252Fevil-255B.-255Dexample-252Fx&d=DwMF",
     {{URL_WRAP_NONE, "https://urldefense.proofpoint.com/v2/url?u=https-3A__secure-2Dweb.cisco.com_1abc_http-253A-252F-252Fevil-255B.-255Dexample-252Fx&d=DwMF"},
      {URL_WRAP_PROOFPOINT_V2, "https://secure-web.cisco.com/1abc/http%3A%2F%2Fevil%5B.%5Dexample%2Fx"},
      {URL_WRAP_CISCO, "http://evil[.]example/x"},
      {URL_WRAP_DEFANG, "http://evil.example/x"}}},
    {"defanged safelinks", "hxxps://nam12[.]safelinks[.]protection[.]outlook[.]com/?url=http%3A%2F%2Fx.example%2F&data=0",
     {{URL_WRAP_NONE, "hxxps://nam12[.]safelinks[.]protection[.]outlook[.]com/?url=http%3A%2F%2Fx.example%2F&data=0"},
      {URL_WRAP_DEFANG, "https://nam12.safelinks.protection.outlook.com/?url=http%3A%2F%2Fx.example%2F&data=0"},
      {URL_WRAP_SAFELINKS, "http://x.example/"}}},
    {"malformed inner wrapper stops the chain",
     "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Furldefense.com%2Fv3%2F__https%3A%2F%2Fa.example%2F*__%3B%21%21x&data=0",
     {{URL_WRAP_NONE, "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Furldefense.com%2Fv3%2F__https%3A%2F%2Fa.example%2F*__%3B%21%21x&data=0"},
      {URL_WRAP_SAFELINKS, "https://urldefense.com/v3/__https://a.example/*__;!!x"}}},
};

static void test_layers(void **state)
{
    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(LAYER_CASES); i++) {
        const layers_case_t *c = &LAYER_CASES[i];
        seen_t seen = {0};
        int n = url_unwrap_layers(c->in, strlen(c->in), collect, &seen);
        int expect = 0;
        while (expect <= URL_UNWRAP_MAX_DEPTH && c->layers[expect].url)
            expect++;
        if (n != seen.count || n != expect)
            fail_msg("case '%s': %d layers, %d reported, expected %d", c->name, n, seen.count, expect);
        for (int k = 0; k < n; k++) {
            if (seen.via[k] != c->layers[k].via || strcmp(seen.url[k], c->layers[k].url) != 0)
                fail_msg("case '%s' layer %d: %s [%s], expected %s [%s]", c->name, k,
                         url_wrap_name(seen.via[k]), seen.url[k], url_wrap_name(c->layers[k].via),
                         c->layers[k].url);
        }
        seen_free(&seen);
    }
}

/* pct_encode - s percent-encoded as a query value (everything but unreserved characters) */
static char *pct_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = util_xmalloc(3 * n + 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return out;
}

/* Safe Links wrapped k times: every layer is reported until the depth limit */
static void test_depth_limit_safelinks(void **state)
{
    (void)state;
    for (int k = 1; k <= 10; k++) {
        char *url = util_xstrdup("http://final.example/");
        char *chain[11];
        chain[k] = util_xstrdup(url);
        for (int w = k - 1; w >= 0; w--) {
            char *enc = pct_encode(url);
            size_t len = strlen(enc) + 100;
            free(url);
            url = util_xmalloc(len);
            snprintf(url, len, "https://nam%02d.safelinks.protection.outlook.com/?url=%s&data=0", w, enc);
            free(enc);
            chain[w] = util_xstrdup(url);
        }
        seen_t seen = {0};
        int n = url_unwrap_layers(url, strlen(url), collect, &seen);
        int expect = k + 1 < URL_UNWRAP_MAX_DEPTH ? k + 1 : URL_UNWRAP_MAX_DEPTH;
        assert_int_equal(n, expect);
        assert_int_equal(seen.count, expect);
        for (int i = 0; i < n; i++) {
            assert_int_equal(seen.via[i], i == 0 ? URL_WRAP_NONE : URL_WRAP_SAFELINKS);
            assert_string_equal(seen.url[i], chain[i]);
        }
        if (k + 1 <= URL_UNWRAP_MAX_DEPTH)
            assert_string_equal(seen.url[n - 1], "http://final.example/");
        seen_free(&seen);
        for (int i = 0; i <= k; i++)
            free(chain[i]);
        free(url);
    }
}

/* BLOCKED nested 12 deep: each layer peels one pair of markers, capped at the limit */
static void test_depth_limit_blocked(void **state)
{
    (void)state;
    char in[256] = "";
    for (int i = 0; i < 12; i++)
        strcat(in, "BLOCKED");
    strcat(in, "evil.example");
    for (int i = 0; i < 12; i++)
        strcat(in, "BLOCKED");
    seen_t seen = {0};
    int n = url_unwrap_layers(in, strlen(in), collect, &seen);
    assert_int_equal(n, URL_UNWRAP_MAX_DEPTH);
    assert_int_equal(seen.count, URL_UNWRAP_MAX_DEPTH);
    assert_int_equal(seen.via[0], URL_WRAP_NONE);
    for (int i = 1; i < n; i++) {
        assert_int_equal(seen.via[i], URL_WRAP_BLOCKED);
        assert_int_equal(strlen(seen.url[i]), strlen(in) - 14 * (size_t)i);
    }
    seen_free(&seen);

    /* defanging counts as a layer too */
    const char *d = "BLOCKEDBLOCKEDBLOCKEDBLOCKEDhxxp://a[.]bBLOCKEDBLOCKEDBLOCKEDBLOCKED";
    n = url_unwrap_layers(d, strlen(d), collect, &seen);
    assert_int_equal(n, 7);
    assert_int_equal(seen.via[1], URL_WRAP_DEFANG);
    assert_string_equal(seen.url[1], "BLOCKEDBLOCKEDBLOCKEDBLOCKEDhxxp://a.bBLOCKEDBLOCKEDBLOCKEDBLOCKED");
    assert_int_equal(seen.via[5], URL_WRAP_BLOCKED);
    assert_string_equal(seen.url[5], "hxxp://a.b");
    assert_int_equal(seen.via[6], URL_WRAP_DEFANG);
    assert_string_equal(seen.url[6], "http://a.b");
    seen_free(&seen);
}

/* random bytes around wrapper prefixes: no crash, every layer no longer than the input */
static void test_random_wrappers(void **state)
{
    (void)state;
    static const char *const prefixes[] = {
        "https://nam1.safelinks.protection.outlook.com/?url=",
        "https://urldefense.proofpoint.com/v1/url?u=",
        "https://urldefense.proofpoint.com/v2/url?u=",
        "https://urldefense.com/v3/__",
        "https://secure-web.cisco.com/x/",
        "BLOCKED",
        "",
    };
    static const char alphabet[] = "%%2533aF-_*__;!!&=/:[.]()hxxpBLOCKEDu\0\x80\xFF";
    char in[400];
    srand(777);
    for (int iter = 0; iter < 20000; iter++) {
        const char *p = prefixes[iter % UTIL_ARRAY_LEN(prefixes)];
        size_t n = strlen(p);
        memcpy(in, p, n);
        size_t extra = (size_t)(rand() % 300);
        for (size_t i = 0; i < extra; i++)
            in[n + i] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
        n += extra;
        seen_t seen = {0};
        int layers = url_unwrap_layers(in, n, collect, &seen);
        assert_true(layers >= 1 && layers <= URL_UNWRAP_MAX_DEPTH);
        assert_int_equal(layers, seen.count);
        seen_free(&seen);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refang),
        cmocka_unit_test(test_unwrap_once),
        cmocka_unit_test(test_unwrap_output_max),
        cmocka_unit_test(test_wrap_names),
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_depth_limit_safelinks),
        cmocka_unit_test(test_depth_limit_blocked),
        cmocka_unit_test(test_random_wrappers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
