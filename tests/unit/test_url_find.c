/*
 * test_url_find.c - unit tests for common/url_find.c: plain-text URL finding (schemes,
 * defanging, www., BLOCKED, angle brackets, punctuation, IRIs, limits) and HTML (attributes,
 * base resolution, text, meta refresh, CSS url(), broken and hostile input).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "strbuf.h"
#include "url_find.h"
#include "util.h"

/* ---- collecting candidates ------------------------------------------------------------ */

#define FOUND_KEEP 64

typedef struct {
    char *items[FOUND_KEEP]; /* "T url" (text) or "A url" (attribute), the first FOUND_KEEP */
    size_t n;
    size_t total;            /* every call */
    size_t last_len;         /* length of the last candidate */
} found_t;

static void collect(void *ctx, const char *url, size_t len, url_origin_t origin)
{
    found_t *f = ctx;
    f->total++;
    f->last_len = len;
    if (f->n < FOUND_KEEP) {
        char *s = util_xmalloc(len + 3);
        s[0] = origin == URL_FROM_TEXT ? 'T' : 'A';
        s[1] = ' ';
        memcpy(s + 2, url, len);
        s[len + 2] = '\0';
        f->items[f->n++] = s;
    }
}

static void found_release(found_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->items[i]);
    memset(f, 0, sizeof(*f));
}

/* found_has - some candidate equals want ("T url" or "A url"). */
static bool found_has(const found_t *f, const char *want)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->items[i], want) == 0)
            return true;
    return false;
}

#define WANT_MAX 8

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    const char *want[WANT_MAX + 1]; /* in order, NULL-terminated; text: bare URLs, HTML: "T url" / "A url" */
} find_case_t;

#define C(name, in, ...) {name, in, sizeof(in) - 1, {__VA_ARGS__, NULL}}
#define NONE NULL

/* run_cases - run every case through url_find_text (html false) or url_find_html and compare
 * the candidates with the expected list, exactly and in order. */
static void run_cases(const find_case_t *cases, size_t count, bool html)
{
    for (size_t i = 0; i < count; i++) {
        const find_case_t *c = &cases[i];
        found_t f = {0};
        size_t ret = html ? url_find_html(c->in, c->len, collect, &f)
                          : url_find_text(c->in, c->len, collect, &f);
        size_t want = 0;
        while (want < WANT_MAX && c->want[want])
            want++;
        strbuf_t got;
        strbuf_init(&got, 0);
        for (size_t k = 0; k < f.n; k++)
            strbuf_appendf(&got, "%s[%s]", k ? ", " : "", f.items[k]);
        if (ret != f.total)
            fail_msg("case '%s': returned %zu, reported %zu", c->name, ret, f.total);
        if (f.n != want)
            fail_msg("case '%s': %zu candidates, expected %zu: %s", c->name, f.n, want,
                     got.data ? got.data : "");
        for (size_t k = 0; k < want; k++) {
            const char *item = html ? f.items[k] : f.items[k] + 2;
            if (strcmp(item, c->want[k]) != 0 || (!html && f.items[k][0] != 'T'))
                fail_msg("case '%s': candidate %zu is [%s], expected [%s]; all: %s", c->name, k,
                         f.items[k], c->want[k], got.data);
        }
        strbuf_release(&got);
        found_release(&f);
    }
}

/* ---- plain text ----------------------------------------------------------------------- */

static const find_case_t TEXT_CASES[] = {
    /* schemes */
    C("http", "see http://example.com/a", "http://example.com/a"),
    C("https", "https://example.com", "https://example.com"),
    C("ftp", "get ftp://files.example.org/pub/x.tar", "ftp://files.example.org/pub/x.tar"),
    C("scheme case", "HTTP://EXAMPLE.COM/X and HtTpS://a.b", "HTTP://EXAMPLE.COM/X", "HtTpS://a.b"),
    C("several in order", "a http://one.com b https://two.com c ftp://three.com",
      "http://one.com", "https://two.com", "ftp://three.com"),
    C("letters before scheme", "xhttps://b.com/p", "https://b.com/p"),
    C("unknown scheme", "gopher://x.org/ and mailto:a@b.com and file://x/y", NONE),
    C("scheme without slashes", "http:example.com http:/x.com", NONE),
    C("scheme with nothing", "http:// and https://", NONE),
    C("scheme with punctuation only", "type http://... or http://?", NONE),
    C("scheme before a bracket", "http://<http://x.com>", "http://x.com"),
    C("user info and port", "http://user:pw@host.example:8080/p?q=1#frag",
      "http://user:pw@host.example:8080/p?q=1#frag"),
    C("IPv4 host", "go to http://1.2.3.4/login now", "http://1.2.3.4/login"),
    C("IPv6 host", "http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
    C("query and fragment characters", "http://a.com/?q=a|b&c={d}~e#!/x",
      "http://a.com/?q=a|b&c={d}~e#!/x"),
    C("percent escapes", "http://a.com/%7Euser/%E2%82%AC", "http://a.com/%7Euser/%E2%82%AC"),
    /* defanged */
    C("hxxp", "hxxp://evil[.]com/path", "hxxp://evil[.]com/path"),
    C("hxxps", "hxxps://evil[.]com", "hxxps://evil[.]com"),
    C("hXXp", "hXXp://evil[.]example[.]com/a", "hXXp://evil[.]example[.]com/a"),
    C("HXXPS", "HXXPS://EVIL[.]COM", "HXXPS://EVIL[.]COM"),
    C("bracketed colon", "http[:]//evil[.]com/a", "http[:]//evil[.]com/a"),
    C("bracketed colon defanged", "hxxps[:]//evil[.]com", "hxxps[:]//evil[.]com"),
    C("defanged host alone", "evil[.]com/path and phish[.]example", NONE),
    C("defanged dot in parentheses", "(hxxp://evil[.]com/x)", "hxxp://evil[.]com/x"),
    /* www. */
    C("www", "visit www.example.com/x, now", "www.example.com/x"),
    C("WWW", "WWW.EXAMPLE.COM.", "WWW.EXAMPLE.COM"),
    C("www at start", "www.a.com", "www.a.com"),
    C("www after =", "url=www.a.com/b", "www.a.com/b"),
    /* not www. URLs, but host names with a known top-level domain all the same */
    C("www in a word", "awww.a.com foo.www.b.com x-www.c.com", "awww.a.com", "foo.www.b.com", "x-www.c.com"),
    C("bare host", "This sf.net email is sponsored by", "sf.net"),
    C("bare host with path", "see example.org/a/b.html, then", "example.org/a/b.html"),
    C("bare host with port and query", "at intranet.example.co.uk:8080/x?y=1.", "intranet.example.co.uk:8080/x?y=1"),
    C("bare host, ftp", "get it from ftp.gnu.org/gnu/", "ftp://ftp.gnu.org/gnu/"),
    C("bare host, unknown top-level domain", "open index.html or notes.txt or a.b", NONE),
    C("bare host in an address", "mail john.smith@example.com now", NONE),
    C("bare host sentence end", "It is example.com.", "example.com"),
    C("bare host after a path or parameter", "/usr/lib/x.com a=b.com _c.com", NONE),
    C("bare host with empty label", "a..example.com", NONE),
    C("bare host, numbers", "version 1.2.3 costs 3.50", NONE),
    C("scheme glued after a non-host", "Sign in.https://evil.com/b file.pdf.https://evil.com/f",
      "https://evil.com/b", "https://evil.com/f"),
    C("www in an address", "mail a@www.example.com", NONE),
    C("www alone", "www. and www.. and www.-x", NONE),
    C("www after non-ASCII", "\xE3\x83\xAFwww.x.jp", "www.x.jp"),
    /* Cisco BLOCKED */
    C("blocked", "BLOCKEDphish[.]cua[.]com/pathBLOCKED.", "BLOCKEDphish[.]cua[.]com/pathBLOCKED"),
    C("blocked with scheme", "x BLOCKEDhttp://evil[.]com/BLOCKED y", "BLOCKEDhttp://evil[.]com/BLOCKED"),
    C("blocked twice", "BLOCKEDa[.]comBLOCKED,BLOCKEDb[.]comBLOCKED", "BLOCKEDa[.]comBLOCKED",
      "BLOCKEDb[.]comBLOCKED"),
    C("blocked word", "Your account is BLOCKED. BLOCKEDfoo", NONE),
    C("blocked empty", "BLOCKEDBLOCKED", NONE),
    C("blocked unterminated", "BLOCKEDa[.]com/x", NONE),
    C("blocked unterminated with scheme", "BLOCKEDhttp://evil.com/x", "http://evil.com/x"),
    /* angle brackets */
    C("angle", "text<https://a.com/x>more", "https://a.com/x"),
    C("angle URL:", "<URL:http://a.com/b>", "http://a.com/b"),
    C("angle URL: space", "<URL: http://a.com/b>", "http://a.com/b"),
    C("angle wrapped LF", "see <http://example.com/very/long/\n   path/here> ok",
      "http://example.com/very/long/path/here"),
    C("angle wrapped CRLF", "<http://example.com/a?b=1&\r\n\tc=2 \r\n d=3>",
      "http://example.com/a?b=1&c=2d=3"),
    C("angle wrapped URL:", "<URL:http://a.com/b\r\nc>", "http://a.com/bc"),
    C("angle www wrapped", "<www.x.com/a\n b>", "www.x.com/ab"),
    C("angle keeps punctuation", "<http://a.com/x.>.", "http://a.com/x."),
    C("angle defanged", "<hxxp://evil[.]com/a\n b>", "hxxp://evil[.]com/ab"),
    C("angle space without line break", "<http://a.com/ x>", "http://a.com/"),
    C("angle not closed", "<http://a.com/x\nmore text", "http://a.com/x"),
    C("angle empty", "<http://>", NONE),
    C("angle other", "<mailto:a@b.com> <b>bold</b>", NONE),
    /* trailing punctuation and brackets */
    C("paren and period", "(see http://a.com/x).", "http://a.com/x"),
    C("balanced parens", "http://en.wikipedia.org/wiki/Foo_(bar)",
      "http://en.wikipedia.org/wiki/Foo_(bar)"),
    C("balanced in parens", "(http://a.com/(x))", "http://a.com/(x)"),
    C("closing paren", "http://a.com/x)", "http://a.com/x"),
    C("square brackets", "[http://a.com/x]", "http://a.com/x"),
    C("braces", "{http://a.com}", "http://a.com"),
    C("sentence end", "Go to http://a.com/x. Then http://b.com/y, or http://c.com/z; or "
      "http://d.com/w: http://e.com/v! http://f.com/u? ok",
      "http://a.com/x", "http://b.com/y", "http://c.com/z", "http://d.com/w", "http://e.com/v",
      "http://f.com/u"),
    C("quotes", "'http://a.com/x' \"http://b.com/y\"", "http://a.com/x", "http://b.com/y"),
    C("inner apostrophe", "http://a.com/x'y", "http://a.com/x'y"),
    C("asterisks", "*http://a.com/x*", "http://a.com/x"),
    C("punctuation run", "http://a.com/x?!.).", "http://a.com/x"),
    C("port colon at end", "http://a.com:", "http://a.com"),
    /* what ends a URL */
    C("quote and equals", "url=\"http://x.com/q\"y and url=http://x.com/a",
      "http://x.com/q", "http://x.com/a"),
    C("ends at space tab newline", "http://a.com/1 http://a.com/2\thttp://a.com/3\nx",
      "http://a.com/1", "http://a.com/2", "http://a.com/3"),
    C("ends at < > backquote", "http://a.com/1<b> http://a.com/2>x `http://a.com/3`",
      "http://a.com/1", "http://a.com/2", "http://a.com/3"),
    C("ends at backslash", "http://a.com/x\\y", "http://a.com/x"),
    C("ends at control", "http://a.com/x\x01y http://b.com/\x7fz", "http://a.com/x", "http://b.com/"),
    C("NUL separates", "http://a.com/x\0http://b.com/y\0", "http://a.com/x", "http://b.com/y"),
    C("invalid UTF-8 ends", "http://a.com/x\xFF" "y http://b.com/\xC3(", "http://a.com/x",
      "http://b.com/"),
    /* IRIs */
    C("IRI host and path", "http://\xE4\xBE\x8B\xE3\x81\x88.jp/\xE3\x83\x91\xE3\x82\xB9 x",
      "http://\xE4\xBE\x8B\xE3\x81\x88.jp/\xE3\x83\x91\xE3\x82\xB9"),
    C("IRI Latin", "https://b\xC3\xBC" "cher.example/gr\xC3\xBC\xC3\x9F" "e.",
      "https://b\xC3\xBC" "cher.example/gr\xC3\xBC\xC3\x9F" "e"),
    C("guillemets end", "\xC2\xAB" "http://a.com/\xC3\xA9\xC2\xBB", "http://a.com/\xC3\xA9"),
    C("curly quotes end", "\xE2\x80\x9C" "http://a.com/x\xE2\x80\x9D", "http://a.com/x"),
    C("no-break space ends", "http://a.com/x\xC2\xA0y", "http://a.com/x"),
    C("zero-width space ends", "http://a.com/x\xE2\x80\x8By", "http://a.com/x"),
    C("ideographic full stop ends path", "http://ex.com/\xE6\x97\xA5\xE6\x9C\xAC\xE3\x80\x82\xE6\xAC\xA1",
      "http://ex.com/\xE6\x97\xA5\xE6\x9C\xAC"),
    C("ideographic full stop in host", "http://\xE4\xBE\x8B\xE3\x80\x82jp/x",
      "http://\xE4\xBE\x8B\xE3\x80\x82jp/x"),
    C("ideographic full stop after host", "http://\xE4\xBE\x8B.jp\xE3\x80\x82",
      "http://\xE4\xBE\x8B.jp"),
    C("plain text", "nothing here: just words, wow. W W W", NONE),
    C("empty", "", NONE),
};

static void test_text_table(void **state)
{
    (void)state;
    run_cases(TEXT_CASES, UTIL_ARRAY_LEN(TEXT_CASES), false);
}

static void test_text_null(void **state)
{
    (void)state;
    found_t f = {0};
    assert_int_equal(url_find_text(NULL, 10, collect, &f), 0);
    assert_int_equal(url_find_text("http://a.com/", 0, collect, &f), 0);
    assert_int_equal(f.total, 0);
}

/* A URL longer than URL_FIND_MAX_URL is cut there, and the rest of it yields nothing. */
static void test_text_long_url_cut(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "x http://long.example/");
    for (int i = 0; i < 3 * URL_FIND_MAX_URL; i++)
        strbuf_append(&sb, i % 100 == 0 ? "w" : "a", 1);
    strbuf_appends(&sb, "http://inside.example/ then http://next.example/ end");
    found_t f = {0};
    assert_int_equal(url_find_text(sb.data, sb.len, collect, &f), 2);
    assert_int_equal(strlen(f.items[0]) - 2, URL_FIND_MAX_URL);
    assert_memory_equal(f.items[0], "T http://long.example/waaa", 26);
    assert_string_equal(f.items[1], "T http://next.example/");
    found_release(&f);

    /* a cut never splits a UTF-8 character */
    strbuf_reset(&sb);
    strbuf_appends(&sb, "http://a.example/");
    while (sb.len < 2 * URL_FIND_MAX_URL)
        strbuf_appends(&sb, "\xE2\x82\xAC");
    assert_int_equal(url_find_text(sb.data, sb.len, collect, &f), 1);
    assert_true(f.last_len <= URL_FIND_MAX_URL && f.last_len > URL_FIND_MAX_URL - 3);
    assert_int_equal((f.last_len - strlen("http://a.example/")) % 3, 0);
    found_release(&f);

    /* a wrapped angle-bracket URL too */
    strbuf_reset(&sb);
    strbuf_appends(&sb, "<http://b.example/");
    for (int i = 0; i < URL_FIND_MAX_URL + 100; i++)
        strbuf_append(&sb, i == 50 ? "\n" : "b", 1);
    strbuf_appends(&sb, "> http://after.example/");
    assert_int_equal(url_find_text(sb.data, sb.len, collect, &f), 2);
    assert_int_equal(strlen(f.items[0]) - 2, URL_FIND_MAX_URL);
    assert_string_equal(f.items[1], "T http://after.example/");
    found_release(&f);
    strbuf_release(&sb);
}

/* At most URL_FIND_MAX_PER_PART candidates per call. */
static void test_text_max_per_part(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    for (int i = 0; i < URL_FIND_MAX_PER_PART + 10; i++)
        strbuf_appendf(&sb, "http://h%d.example/ ", i);
    found_t f = {0};
    assert_int_equal(url_find_text(sb.data, sb.len, collect, &f), URL_FIND_MAX_PER_PART);
    assert_int_equal(f.total, URL_FIND_MAX_PER_PART);
    assert_string_equal(f.items[0], "T http://h0.example/");
    found_release(&f);
    assert_int_equal(url_find_html(sb.data, sb.len, collect, &f), URL_FIND_MAX_PER_PART);
    assert_int_equal(f.total, URL_FIND_MAX_PER_PART);
    found_release(&f);
    strbuf_release(&sb);
}

/* Hostile text completes and still finds what follows. */
static void test_text_hostile(void **state)
{
    (void)state;
    static const char *const JUNK[] = {"<http://a", "BLOCKED", "www.", "http://", "w", ":",
                                       "<URL:", "hxxp[:]//", "(", "\n", "\0"};
    for (size_t j = 0; j < UTIL_ARRAY_LEN(JUNK); j++) {
        size_t unit = strlen(JUNK[j]) ? strlen(JUNK[j]) : 1;
        strbuf_t sb;
        strbuf_init(&sb, 0);
        while (sb.len < 2000000)
            strbuf_append(&sb, JUNK[j], unit);
        strbuf_appends(&sb, " http://after.example/");
        found_t f = {0};
        url_find_text(sb.data, sb.len, collect, &f);
        if (!found_has(&f, "T http://after.example/") && f.total < URL_FIND_MAX_PER_PART)
            fail_msg("junk '%s': the URL after it was not found", JUNK[j]);
        found_release(&f);
        strbuf_release(&sb);
    }
}

/* ---- HTML ----------------------------------------------------------------------------- */

static const find_case_t HTML_CASES[] = {
    /* a list server's footer after the end of the document */
    C("text after </html>", "<html><body><a href=\"http://in.com/\">x</a></body></html>\n<HTML>\n"
      "--\nhttps://lists.example.net/listinfo/x\n", "A http://in.com/", "T https://lists.example.net/listinfo/x"),
    /* attributes */
    C("href entity-decoded", "<a href=\"http://a.com/?a=1&amp;b=2\">x</a>", "A http://a.com/?a=1&b=2"),
    C("numeric references", "<a href=\"&#104;ttp&#x3a;//n.com/\">x</a>", "A http://n.com/"),
    C("unquoted and single-quoted", "<a href=http://u.com/x>u</a><a href='http://s.com/'>s</a>",
      "A http://u.com/x", "A http://s.com/"),
    C("whitespace trimmed", "<a href=\" \n http://trim.com/x \t\">t</a>", "A http://trim.com/x"),
    C("line breaks inside removed", "<a href=\"http://nl.com/a\nb\r\n\tc\">x</a>", "A http://nl.com/abc"),
    C("scheme case kept", "<a href=\"HTTPS://UP.COM/\">x</a>", "A HTTPS://UP.COM/"),
    C("link elements", "<area href=\"http://area.com/\"><link href=\"http://link.com/\">",
      "A http://area.com/", "A http://link.com/"),
    C("src elements", "<img src=\"http://img.com/\"><script src=\"http://js.com/\"></script>"
      "<iframe src=\"http://if.com/\"></iframe><frame src=\"http://fr.com/\">"
      "<embed src=\"http://emb.com/\"><input type=image src=\"http://in.com/\">"
      "<video><source src=\"http://so.com/\"></video>",
      "A http://img.com/", "A http://js.com/", "A http://if.com/", "A http://fr.com/",
      "A http://emb.com/", "A http://in.com/", "A http://so.com/"),
    C("forms", "<form action=\"http://form.com/\"><button formaction=\"http://fa.com/\">b</button></form>",
      "A http://form.com/", "A http://fa.com/"),
    C("background", "<body background=\"http://body.com/\"><table background=\"http://table.com/\">"
      "<tr><td background=\"http://td.com/\">x</td></tr></table>",
      "A http://body.com/", "A http://table.com/", "A http://td.com/"),
    C("object poster cite longdesc", "<object data=\"http://obj.com/\"></object>"
      "<video poster=\"http://poster.com/\"></video><blockquote cite=\"http://cite.com/\">q</blockquote>"
      "<img longdesc=\"http://ld.com/\">",
      "A http://obj.com/", "A http://poster.com/", "A http://cite.com/", "A http://ld.com/"),
    C("data only on object", "<div data=\"http://div.com/\">x</div>", NONE),
    C("srcset", "<img srcset=\"http://s1.com/a.jpg 1x, http://s2.com/b.jpg 2x,http://s3.com/c.jpg\">",
      "A http://s1.com/a.jpg", "A http://s2.com/b.jpg", "A http://s3.com/c.jpg"),
    C("other attributes ignored", "<img alt=\"http://alt.com/\" title=\"http://title.com/\">", NONE),
    C("ignored schemes", "<a href=\"javascript:alert(1)\">j</a><a href=\" java&#115;cript:x\">j</a>"
      "<a href=\"mailto:a@b.com\">m</a><img src=\"cid:part1\"><img src=\"data:image/png;base64,AAAA\">"
      "<a href=\"tel:+123\">t</a><a href=\"#top\">f</a><a href=\"gopher://g.org/\">g</a>", NONE),
    C("relative without base", "<a href=\"rel/x\">r</a><a href=\"/abs\">a</a><a href=\"//net.com/p\">n</a>",
      NONE),
    C("www href without base", "<a href=\"www.nobase.com/x\">w</a>", "A www.nobase.com/x"),
    C("ftp and defanged href", "<a href=\"ftp://f.com/\">f</a><a href=\"hxxp://x.com/\">h</a>", "A ftp://f.com/"),
    /* base */
    C("base resolves later references",
      "<a href=\"early\">e</a><base href=\"http://b.com/dir/page.html\"><a href=\"rel/x?q\">r</a>"
      "<a href=\"/abs\">a</a><a href=\"//other.org/p\">n</a><a href=\"../up\">u</a>"
      "<a href=\"?q2\">q</a><a href=\"#frag\">f</a><a href=\"http://abs.com/\">x</a>",
      "A http://b.com/dir/rel/x?q", "A http://b.com/abs", "A http://other.org/p", "A http://b.com/up",
      "A http://b.com/dir/page.html?q2", "A http://abs.com/"),
    C("base without path", "<base href=\"https://h.com\"><img src=\"i.png\">", "A https://h.com/i.png"),
    C("base relative to base", "<base href=\"http://h.com/a/b\"><base href=\"../c/\"><a href=\"d\">x</a>",
      "A http://h.com/c/d"),
    C("base replaced", "<base href=\"http://one.com/\"><a href=\"x\">1</a><base href=\"http://two.com/\">"
      "<a href=\"x\">2</a>", "A http://one.com/x", "A http://two.com/x"),
    C("relative base ignored", "<base href=\"/rel/\"><a href=\"x\">x</a>", NONE),
    C("base of other scheme ignored", "<base href=\"javascript:x\"><a href=\"y\">y</a>", NONE),
    C("base itself not reported", "<base href=\"http://b.com/\">", NONE),
    /* text */
    C("link text URL", "<a href=\"http://x.com/\">http://link.text.com/</a>", "A http://x.com/",
      "T http://link.text.com/"),
    C("text with entities", "<p>Visit http://a.com/pa&amp;th?x=1&lt;2 now</p>", "T http://a.com/pa&th?x=1"),
    C("text angle via entities", "<p>see &lt;http://angle.com/a&gt;</p>", "T http://angle.com/a"),
    C("text www and defanged", "<div>go to www.w.com or hxxp://evil[.]com</div>", "T www.w.com",
      "T hxxp://evil[.]com"),
    C("elements separate text", "<p>http://a.com</p><p>next</p><td>http://b.com/</td>x<br>y",
      "T http://a.com", "T http://b.com/"),
    C("wbr joins", "<p>http://split.com/a<wbr>b/c d</p>", "T http://split.com/ab/c"),
    C("script scanned, comment ignored", "<script>var u=\"http://script.com/\";</script>"
      "<!-- http://comment.com/ --><p>http://shown.com/</p>", "T http://script.com/", "T http://shown.com/"),
    C("title and textarea", "<title>http://title.com/</title><textarea>http://ta.com/</textarea>",
      "T http://title.com/", "T http://ta.com/"),
    C("document without tags", "just text http://plain.com/ here", "T http://plain.com/"),
    /* meta refresh */
    C("meta refresh", "<meta http-equiv=\"refresh\" content=\"0; url=http://meta.com/x\">",
      "A http://meta.com/x"),
    C("meta refresh forms", "<meta http-equiv=\"Refresh\" content=\"5;URL='http://q.com/'\">"
      "<meta content=\"0,http://nourl.com/\" http-equiv=\"REFRESH\">"
      "<meta http-equiv=\"refresh\" content=\"3\"><meta name=\"x\" content=\"0;url=http://no.com/\">",
      "A http://q.com/", "A http://nourl.com/"),
    C("meta refresh relative", "<base href=\"http://b.com/d/\"><meta http-equiv=refresh content=\"0;url=n.html\">",
      "A http://b.com/d/n.html"),
    /* CSS */
    C("style attribute", "<div style=\"background-image:url('http://css.com/i.png')\">x</div>",
      "A http://css.com/i.png"),
    C("style attribute forms", "<p style='a:URL( http://u.com/ );b:url(\"http://q.com/\");c:url(rel.png)'>",
      "A http://u.com/", "A http://q.com/"),
    C("style element", "<style>body{background:url(http://style.com/b.png)} a{b:url(\"rel.png\")}"
      "@import url(\"http://imp.com/x.css\");</style>",
      "A http://style.com/b.png", "A http://imp.com/x.css"),
    /* broken input */
    C("unclosed tags", "<p><b><i>http://a.com/<a href=\"http://b.com/\">x", "T http://a.com/",
      "A http://b.com/"),
    C("invalid UTF-8", "<p>bad \xFF\xFE http://a.com/\xC3x y</p><a href=\"http://b.com/\xE9\">z</a>"
      " http://after.com/", "T http://a.com/", "A http://b.com/", "T http://after.com/"),
    C("NUL bytes", "<p>a\0http://a.com/x\0y</p><a href=\"http://b.com/\0\">x</a>", "T http://a.com/x",
      "A http://b.com/"),
    C("charset declaration ignored", "<meta charset=\"iso-8859-1\"><a href=\"http://caf\xC3\xA9.com/\">x</a>"
      "<p>http://b\xC3\xBC" "cher.de/</p>", "A http://caf\xC3\xA9.com/", "T http://b\xC3\xBC" "cher.de/"),
    C("empty", "", NONE),
};

static void test_html_table(void **state)
{
    (void)state;
    run_cases(HTML_CASES, UTIL_ARRAY_LEN(HTML_CASES), true);
}

/* RFC 3986 section 5.4: every example reference against its base. */
static void test_html_resolve_rfc3986(void **state)
{
    (void)state;
    static const char *const EXAMPLES[][2] = {
        {"g", "http://a/b/c/g"},          {"./g", "http://a/b/c/g"},
        {"g/", "http://a/b/c/g/"},        {"/g", "http://a/g"},
        {"//g", "http://g"},              {"?y", "http://a/b/c/d;p?y"},
        {"g?y", "http://a/b/c/g?y"},      {"g#s", "http://a/b/c/g#s"},
        {"g?y#s", "http://a/b/c/g?y#s"},  {";x", "http://a/b/c/;x"},
        {"g;x", "http://a/b/c/g;x"},      {"g;x?y#s", "http://a/b/c/g;x?y#s"},
        {".", "http://a/b/c/"},           {"./", "http://a/b/c/"},
        {"..", "http://a/b/"},            {"../", "http://a/b/"},
        {"../g", "http://a/b/g"},         {"../..", "http://a/"},
        {"../../", "http://a/"},          {"../../g", "http://a/g"},
        {"../../../g", "http://a/g"},     {"../../../../g", "http://a/g"},
        {"/./g", "http://a/g"},           {"/../g", "http://a/g"},
        {"g.", "http://a/b/c/g."},        {".g", "http://a/b/c/.g"},
        {"g..", "http://a/b/c/g.."},      {"..g", "http://a/b/c/..g"},
        {"./../g", "http://a/b/g"},       {"./g/.", "http://a/b/c/g/"},
        {"g/./h", "http://a/b/c/g/h"},    {"g/../h", "http://a/b/c/h"},
        {"g;x=1/./y", "http://a/b/c/g;x=1/y"}, {"g;x=1/../y", "http://a/b/c/y"},
        {"g?y/./x", "http://a/b/c/g?y/./x"},   {"g?y/../x", "http://a/b/c/g?y/../x"},
        {"g#s/./x", "http://a/b/c/g#s/./x"},   {"g#s/../x", "http://a/b/c/g#s/../x"},
        {"http:g", "http:g"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(EXAMPLES); i++) {
        char html[256], want[128];
        snprintf(html, sizeof(html), "<base href=\"http://a/b/c/d;p?q\"><a href=\"%s\">x</a>",
                 EXAMPLES[i][0]);
        snprintf(want, sizeof(want), "A %s", EXAMPLES[i][1]);
        found_t f = {0};
        url_find_html(html, strlen(html), collect, &f);
        if (f.n != 1 || strcmp(f.items[0], want) != 0)
            fail_msg("reference '%s': got %zu candidates, first [%s], expected [%s]",
                     EXAMPLES[i][0], f.n, f.n ? f.items[0] : "", want);
        found_release(&f);
    }
}

/* Text reaches the finder in several callbacks (entities, buffers); a long text run is
 * scanned in parts that never split a URL. */
static void test_html_long_text_run(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "<p>");
    int urls = 0;
    while (sb.len < 300000) {
        strbuf_appendf(&sb, "word&amp;word http://h%d.example/a&amp;b &lt;http://w%d.example/x\n y&gt; ",
                       urls, urls);
        urls++;
    }
    strbuf_appends(&sb, "</p>");
    found_t f = {0};
    size_t n = url_find_html(sb.data, sb.len, collect, &f);
    assert_int_equal(n, 2 * (size_t)urls);
    assert_string_equal(f.items[0], "T http://h0.example/a&b");
    assert_string_equal(f.items[1], "T http://w0.example/xy");
    found_release(&f);
    strbuf_release(&sb);
}

/* A long attribute value is cut at URL_FIND_MAX_URL like any candidate. */
static void test_html_long_attribute(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "<a href=\"http://long.example/");
    for (int i = 0; i < 3 * URL_FIND_MAX_URL; i++)
        strbuf_append(&sb, "x", 1);
    strbuf_appends(&sb, "\">t</a><a href=\"http://after.example/\">u</a>");
    found_t f = {0};
    assert_int_equal(url_find_html(sb.data, sb.len, collect, &f), 2);
    assert_int_equal(strlen(f.items[0]) - 2, URL_FIND_MAX_URL);
    assert_string_equal(f.items[1], "A http://after.example/");
    found_release(&f);
    strbuf_release(&sb);
}

/* Past the depth libxml2 is trusted with, the fallback tokenizer reads the rest with the
 * same rules: attributes, base, references, text, script, style, comments, meta refresh. */
/* a URL across the 64 KB boundary of a text run with no space to cut at is still found */
static void test_html_long_run_boundary(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "<p>");
    for (int i = 0; i < 65530; i++)
        strbuf_appends(&sb, "x");
    strbuf_appends(&sb, "https://straddle.com/path</p>");
    found_t f = {0};
    url_find_html(sb.data, sb.len, collect, &f);
    assert_true(found_has(&f, "T https://straddle.com/path"));
    found_release(&f);
    strbuf_release(&sb);
}

static void test_html_fallback_rules(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    for (int i = 0; i < 5000; i++)
        strbuf_appends(&sb, "<div>");
    strbuf_appends(&sb,
                   "<base href='http://b.com/d/'><a class=x href=\"r?a=1&amp;b=2\" title='>'>"
                   "http://t.com/p&amp;q</a><script>x='<a href=\"http://no1.com/\">'</script>"
                   "<STYLE>p{background:url(http://css.com/i.png)}</STYLE><!-- <a href=http://no2.com/> -->"
                   "<meta http-equiv=Refresh content='0; url=http://m.com/'>"
                   "<img src=&#104;ttp://i.com/ srcset=\"a.png 1x, http://s.com/b.png 2x\">"
                   "<p style=\"background:url('http://st.com/')\">&lt;http://w.com/a\n b&gt;</p>"
                   "<a href='javascript:x'>j</a>1 < 2 http://end.com/");
    found_t f = {0};
    url_find_html(sb.data, sb.len, collect, &f);
    static const char *const WANT[] = {
        "A http://b.com/d/r?a=1&b=2", "T http://t.com/p&q", "T http://no1.com/", "A http://css.com/i.png",
        "A http://m.com/",            "A http://i.com/",    "A http://b.com/d/a.png",
        "A http://s.com/b.png",       "A http://st.com/",   "T http://w.com/ab",
        "T http://end.com/",
    };
    strbuf_t got;
    strbuf_init(&got, 0);
    for (size_t k = 0; k < f.n; k++)
        strbuf_appendf(&got, "[%s] ", f.items[k]);
    if (f.n != UTIL_ARRAY_LEN(WANT))
        fail_msg("%zu candidates: %s", f.n, got.data ? got.data : "");
    for (size_t k = 0; k < UTIL_ARRAY_LEN(WANT); k++)
        if (strcmp(f.items[k], WANT[k]) != 0)
            fail_msg("candidate %zu: expected [%s]; all: %s", k, WANT[k], got.data);
    strbuf_release(&got);
    found_release(&f);
    strbuf_release(&sb);
}

/* ---- hostile HTML: every input completes and still finds the URL after the junk -------- */

#define AFTER "<a href=\"http://after.example/\">x</a> http://text.example/"

typedef enum { JUNK_REPEAT, JUNK_ATTRS } junk_kind_t;

typedef struct {
    const char *name;
    const char *head;   /* once */
    const char *unit;   /* repeated */
    size_t unit_len;    /* 0: strlen(unit) */
    size_t bytes;       /* of repeated junk */
    const char *tail;   /* once, before AFTER */
    bool want_after;    /* AFTER is reachable (not inside an unterminated construct) */
} hostile_case_t;

static const hostile_case_t HOSTILE[] = {
    {"nested div", "<html><body>", "<div>", 0, 50000000, "", true},
    {"million attributes", "<a ", "", 0, 0, ">", true}, /* built below */
    {"duplicate attributes", "<a ", " x=1", 0, 8000000, ">", true},
    {"end tags on a deep stack", "<body>", "</zzz>", 0, 8000000, "", true},
    {"body tags on a deep stack", "<body>", "<body>", 0, 8000000, "", true},
    {"10 MB attribute", "<a title=\"", "x", 0, 10000000, "\">", true},
    {"10 MB attribute with spaces", "<a title=\"", "x ", 0, 10000000, "\">", true},
    {"unterminated tag", "<a href=\"http://a.com/ ", "x", 0, 10000000, "", false},
    {"unterminated quote", "<a title='", "<b>\"x\" ", 0, 5000000, "'>", true},
    {"NUL bytes", "<p>", "a\0", 2, 5000000, "</p>", true},
    {"invalid UTF-8", "<p>", "\xFF\xC3(\xED\xA0\x80\xF4\x90\x80\x80 ", 0, 5000000, "</p>", true},
    {"less-than signs", "", "<", 0, 5000000, "", true},
    {"comments", "", "<!-- a -- > --> ", 0, 5000000, "", true},
    {"scripts", "<script>", "if(a<b){x=\"</sc\"}", 0, 5000000, "</script>", true},
    {"many tags with many attributes", "", "", 0, 0, "", true}, /* built below */
};

static void build_hostile(const hostile_case_t *h, strbuf_t *sb)
{
    strbuf_appends(sb, h->head);
    if (strcmp(h->name, "million attributes") == 0) {
        for (int i = 0; i < 1000000; i++)
            strbuf_appendf(sb, " a%d=1", i);
    } else if (strcmp(h->name, "many tags with many attributes") == 0) {
        while (sb->len < 20000000) {
            strbuf_appends(sb, "<a");
            for (int i = 0; i < 300; i++)
                strbuf_appendf(sb, " b%d=%d", i, i);
            strbuf_appends(sb, ">x</a>");
        }
    } else if (strcmp(h->name, "end tags on a deep stack") == 0 ||
               strcmp(h->name, "body tags on a deep stack") == 0) {
        for (int i = 0; i < 2000; i++)
            strbuf_appends(sb, "<span>");
    }
    size_t unit_len = h->unit_len ? h->unit_len : strlen(h->unit);
    size_t start = sb->len;
    while (unit_len && sb->len - start < h->bytes)
        strbuf_append(sb, h->unit, unit_len);
    strbuf_appends(sb, h->tail);
    strbuf_appends(sb, AFTER);
}

static void test_html_hostile(void **state)
{
    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(HOSTILE); i++) {
        const hostile_case_t *h = &HOSTILE[i];
        strbuf_t sb;
        strbuf_init(&sb, 0);
        build_hostile(h, &sb);
        found_t f = {0};
        url_find_html(sb.data, sb.len, collect, &f);
        bool after = found_has(&f, "A http://after.example/") && found_has(&f, "T http://text.example/");
        if (h->want_after && !after)
            fail_msg("hostile '%s' (%zu bytes): the URLs after the junk were not found (%zu found)",
                     h->name, sb.len, f.total);
        found_release(&f);
        strbuf_release(&sb);
    }
}

/* libxml2 prints nothing, whatever the input. */
static void test_html_silent(void **state)
{
    (void)state;
#define B(s) {s, sizeof(s) - 1}
    static const struct {
        const char *s;
        size_t len;
    } BROKEN[] = {
        B("<a href=\"x\" href=\"y\"><p></div></zzz><!DOCTYPE><?pi?><![CDATA[x]]>&bogus;&#0;&#xFFFFFFF;"),
        B("<html><html><body><body><head></head><frameset><table><td></table>"),
        B("<a \"x\"=y ===><b <i <u"),
        B("\xFF\xFE<\0p>\x01\x02\x03<!--"),
        B("<meta charset=\"utf-16\"><p>x</p>"
          "<meta http-equiv=\"content-type\" content=\"text/html; charset=bogus\">"),
    };
#undef B
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *capture = tmpfile();
    assert_non_null(capture);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
    found_t f = {0};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(BROKEN); i++) {
        url_find_html(BROKEN[i].s, BROKEN[i].len, collect, &f);
        found_release(&f);
    }
    strbuf_t sb;
    strbuf_init(&sb, 0);
    build_hostile(&HOSTILE[2], &sb);
    url_find_html(sb.data, sb.len, collect, &f);
    found_release(&f);
    strbuf_release(&sb);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fseek(capture, 0, SEEK_END);
    long size = ftell(capture);
    fclose(capture);
    assert_int_equal(size, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_table),
        cmocka_unit_test(test_text_null),
        cmocka_unit_test(test_text_long_url_cut),
        cmocka_unit_test(test_text_max_per_part),
        cmocka_unit_test(test_text_hostile),
        cmocka_unit_test(test_html_table),
        cmocka_unit_test(test_html_resolve_rfc3986),
        cmocka_unit_test(test_html_long_text_run),
        cmocka_unit_test(test_html_long_attribute),
        cmocka_unit_test(test_html_fallback_rules),
        cmocka_unit_test(test_html_long_run_boundary),
        cmocka_unit_test(test_html_hostile),
        cmocka_unit_test(test_html_silent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
