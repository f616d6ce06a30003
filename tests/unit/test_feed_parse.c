/*
 * test_feed_parse.c - feed parsers (retro, TAXII 2.1, MISP, URLhaus CSV, OpenPhish), STIX
 * patterns, keys and times, table-driven.
 *
 * Keys are checked against SHA-256 computed here from the documented parts, and once against
 * a literal digest, so a change to how keys are formed cannot pass unnoticed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "feed_parse.h"
#include "util.h"

#define NOW_MS 1717200000000LL /* 2024-06-01T00:00:00Z */

typedef enum { F_RETRO, F_TAXII, F_MISP, F_URLHAUS, F_OPENPHISH } feed_fmt_t;

/* parse - run the parser for fmt over body (strlen bytes; TAXII at NOW_MS). */
static int parse(feed_fmt_t fmt, const char *body, feed_page_t *page, char *err, size_t errsize)
{
    size_t len = strlen(body);
    switch (fmt) {
    case F_RETRO:
        return feed_parse_retro(body, len, page, err, errsize);
    case F_TAXII:
        return feed_parse_taxii21(body, len, NOW_MS, page, err, errsize);
    case F_MISP:
        return feed_parse_misp(body, len, page, err, errsize);
    case F_URLHAUS:
        return feed_parse_urlhaus_csv(body, len, page, err, errsize);
    case F_OPENPHISH:
        return feed_parse_openphish(body, len, page, err, errsize);
    }
    return -2;
}

/* parse_ok - parse body, which must succeed. */
static void parse_ok(feed_fmt_t fmt, const char *body, feed_page_t *page)
{
    char err[256] = "";
    int rc = parse(fmt, body, page, err, sizeof(err));
    if (rc != 0)
        fail_msg("parse failed: %s", err);
}

/* expected_key - hex of the first 16 bytes of SHA-256 over parts joined by NUL, into out[33]. */
static void expected_key(const char *const *parts, size_t n, char out[33])
{
    unsigned char buf[4096], md[EVP_MAX_MD_SIZE];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        assert_true(len + l + 1 <= sizeof(buf));
        memcpy(buf + len, parts[i], l);
        len += l;
        if (i + 1 < n)
            buf[len++] = '\0';
    }
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL), 1);
    for (size_t i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* assert_key - key is the documented hash of parts. */
static void assert_key(const char *key, const char *const *parts, size_t n)
{
    char want[33];
    expected_key(parts, n, want);
    assert_non_null(key);
    assert_string_equal(key, want);
}

/* find_item - the item whose value is value (fails the test when there is none). */
static const feed_item_t *find_item(const feed_page_t *page, const char *value)
{
    for (size_t i = 0; i < page->count; i++)
        if (strcmp(page->items[i].value, value) == 0)
            return &page->items[i];
    fail_msg("no item with value %s", value);
    return NULL;
}

/* ---- times ------------------------------------------------------------------------------- */

static void test_parse_time(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t want;
    } cases[] = {
        {"2022-03-30T00:17:13Z", 1648599433000LL},
        {"2022-03-30T00:17:13.123Z", 1648599433123LL},
        {"2022-03-30T00:17:13.123456Z", 1648599433123LL},
        {"2022-03-30T00:17:13.5Z", 1648599433500LL},
        {"2022-03-30t00:17:13z", 1648599433000LL},
        {"2022-03-30T00:17:13+00:00", 1648599433000LL},
        {"2022-03-30T00:17:13-05:00", 1648617433000LL},
        {"2022-03-30T05:17:13+05:00", 1648599433000LL},
        {"2022-03-30T00:17:13.250-05:00", 1648617433250LL},
        {"2024-01-02 03:04:05", 1704164645000LL},
        {"2024-01-02 03:04:05Z", 1704164645000LL},
        {"2024-02-29T00:00:00Z", 1709164800000LL},
        {"1970-01-01T00:00:00Z", 0},
        {"", -1},
        {"garbage", -1},
        {"2022-03-30", -1},
        {"2022-03-30T00:17:13", -1},      /* no zone: local time somewhere */
        {"2022-03-30T00:17:13ZZ", -1},    /* trailing text */
        {"2022-03-30T00:17:13Z ", -1},
        {"2022-03-30T00:17:13.Z", -1},    /* empty fraction */
        {"2022-03-30T00:17:13.1234567890Z", -1},
        {"2022-03-30T00:17:13+0500", -1}, /* offset without colon */
        {"2022-03-30T00:17:13+24:00", -1},
        {"2022-13-01T00:00:00Z", -1},
        {"2022-00-01T00:00:00Z", -1},
        {"2023-02-29T00:00:00Z", -1},     /* not a leap year */
        {"2022-04-31T00:00:00Z", -1},
        {"2022-03-30T24:00:00Z", -1},
        {"2022-03-30T00:60:00Z", -1},
        {"2022-03-30T00:00:61Z", -1},
        {"22-03-30T00:17:13Z", -1},
        {"2022-3-30T00:17:13Z", -1},
        {"2022/03/30T00:17:13Z", -1},
        {"1969-12-31T23:59:59Z", -1},     /* before the epoch */
        {"1970-01-01T00:00:00+01:00", -1},
        {"-022-03-30T00:17:13Z", -1},
        {"2022-03-30T00:17:13\n", -1},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        int64_t got = feed_parse_time(cases[i].in);
        if (got != cases[i].want)
            fail_msg("case %zu \"%s\": got %lld, want %lld", i, cases[i].in, (long long)got,
                     (long long)cases[i].want);
    }
    assert_int_equal(feed_parse_time(NULL), -1);
}

static void test_format_time(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        bool millis;
        const char *want;
    } cases[] = {
        {0, false, "1970-01-01T00:00:00Z"},
        {0, true, "1970-01-01T00:00:00.000Z"},
        {1648599433000LL, false, "2022-03-30T00:17:13Z"},
        {1648599433123LL, false, "2022-03-30T00:17:13Z"}, /* seconds: truncated, not rounded */
        {1648599433123LL, true, "2022-03-30T00:17:13.123Z"},
        {1648599433999LL, true, "2022-03-30T00:17:13.999Z"},
        {1709164800007LL, true, "2024-02-29T00:00:00.007Z"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char out[32];
        feed_format_time(cases[i].ms, cases[i].millis, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
        int64_t back = feed_parse_time(out);
        assert_int_equal(back, cases[i].millis ? cases[i].ms : cases[i].ms / 1000 * 1000);
    }
    char small[8];
    feed_format_time(1648599433000LL, false, small, sizeof(small));
    assert_string_equal(small, "2022-03"); /* truncated, still terminated */
}

/* ---- STIX patterns ----------------------------------------------------------------------- */

static void test_stix_pattern_accepted(void **state)
{
    (void)state;
    static const struct {
        const char *pattern;
        size_t n;
        const char *values[3];
        feed_observable_t types[3];
    } cases[] = {
        {"[url:value = 'http://bad.example/x']", 1, {"http://bad.example/x"}, {FEED_OBSERVABLE_URL}},
        {"[domain-name:value = 'bad.example']", 1, {"bad.example"}, {FEED_OBSERVABLE_DOMAIN}},
        {"[url:value='http://a/']", 1, {"http://a/"}, {FEED_OBSERVABLE_URL}},
        {"  [ url:value\t=\n'http://a/' ]  ", 1, {"http://a/"}, {FEED_OBSERVABLE_URL}},
        {"[url:value = 'a' OR url:value = 'b']", 2, {"a", "b"}, {FEED_OBSERVABLE_URL, FEED_OBSERVABLE_URL}},
        {"[url:value = 'a'] OR [domain-name:value = 'b']", 2, {"a", "b"},
         {FEED_OBSERVABLE_URL, FEED_OBSERVABLE_DOMAIN}},
        {"[url:value = 'a' OR domain-name:value = 'b'] OR [url:value = 'c']", 3, {"a", "b", "c"},
         {FEED_OBSERVABLE_URL, FEED_OBSERVABLE_DOMAIN, FEED_OBSERVABLE_URL}},
        {"[url:value = 'it\\'s'] ", 1, {"it's"}, {FEED_OBSERVABLE_URL}},
        {"[url:value = 'back\\\\slash']", 1, {"back\\slash"}, {FEED_OBSERVABLE_URL}},
        {"[url:value = 'a,b]OR[c']", 1, {"a,b]OR[c"}, {FEED_OBSERVABLE_URL}}, /* syntax inside a string */
        {"([url:value = 'a'] OR [url:value = 'b'])", 2, {"a", "b"}, {FEED_OBSERVABLE_URL, FEED_OBSERVABLE_URL}},
        {"[(url:value = 'a' OR url:value = 'b')]", 2, {"a", "b"}, {FEED_OBSERVABLE_URL, FEED_OBSERVABLE_URL}},
        {"[url:value = '']", 1, {""}, {FEED_OBSERVABLE_URL}}, /* the caller rejects the empty value */
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char **values = NULL;
        feed_observable_t *types = NULL;
        size_t n = 99;
        if (feed_parse_stix_pattern(cases[i].pattern, &values, &types, &n) != 0)
            fail_msg("case %zu rejected: %s", i, cases[i].pattern);
        assert_int_equal(n, cases[i].n);
        for (size_t k = 0; k < n; k++) {
            assert_string_equal(values[k], cases[i].values[k]);
            assert_int_equal(types[k], cases[i].types[k]);
            free(values[k]);
        }
        free(values);
        free(types);
    }
}

static void test_stix_pattern_rejected(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "   ",
        "[]",
        "url:value = 'a'",                                   /* no brackets */
        "[url:value = 'a'",                                  /* unbalanced */
        "url:value = 'a']",
        "[url:value = 'a']]",
        "[[url:value = 'a']]",
        "([url:value = 'a']",
        "[url:value = 'a' AND url:value = 'b']",
        "[url:value = 'a'] AND [url:value = 'b']",
        "[url:value != 'a']",
        "[url:value == 'a']",
        "[url:value LIKE 'a%']",
        "[url:value MATCHES '^a']",
        "[url:value IN ('a', 'b')]",
        "[NOT url:value = 'a']",
        "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
        "[file:hashes.'SHA-256' = 'aa']",
        "[ipv4-addr:value = '1.2.3.4']",
        "[url:values = 'a']",
        "[URL:value = 'a']",
        "[url:value = 'a'] WITHIN 300 SECONDS",
        "[url:value = 'a'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
        "[url:value = 'a'] REPEATS 5 TIMES",
        "[url:value = 'a'] FOLLOWEDBY [url:value = 'b']",
        "[url:value = 'a'] or [url:value = 'b']",            /* keywords are upper case */
        "[url:value = 'a' OR]",
        "[url:value = 'a'] OR",
        "OR [url:value = 'a']",
        "[url:value = 'a' ORurl:value = 'b']",
        "[url:value = 'a'] garbage",
        "[url:value = 'a'];",
        "[url:value = 'unterminated]",
        "[url:value = 'bad \\n escape']",
        "[url:value = \"double quotes\"]",
        "[url:value = a]",
        "[url:value = 42]",
        "[url:value = 'a' 'b']",
        "[url:value = 'a'] [url:value = 'b']",
        "((((((((((((((((((((((((((((((((((([url:value = 'a']))))))))))))))))))))))))))))))))))",
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char **values = (char **)1;
        feed_observable_t *types = (feed_observable_t *)1;
        size_t n = 99;
        if (feed_parse_stix_pattern(cases[i], &values, &types, &n) != -1)
            fail_msg("case %zu accepted: %s", i, cases[i]);
        assert_null(values);
        assert_null(types);
        assert_int_equal(n, 0);
    }
}

/* ---- whole documents --------------------------------------------------------------------- */

static void test_documents(void **state)
{
    (void)state;
    static const struct {
        feed_fmt_t fmt;
        const char *body;
        int rc;
        size_t count, raw, skipped, withdrawn;
        bool more;
    } cases[] = {
        /* retro */
        {F_RETRO, "{}", 0, 0, 0, 0, 0, false},
        {F_RETRO, "{\"retros\": [], \"more\": true}", 0, 0, 0, 0, 0, true},
        {F_RETRO, "{\"retros\": [], \"more\": false, \"unknown\": {\"x\": 1}}", 0, 0, 0, 0, 0, false},
        {F_RETRO, "{\"more\": null}", 0, 0, 0, 0, 0, false},
        {F_RETRO, "", -1, 0, 0, 0, 0, false},
        {F_RETRO, "not json", -1, 0, 0, 0, 0, false},
        {F_RETRO, "{\"retros\": [", -1, 0, 0, 0, 0, false},
        {F_RETRO, "[]", -1, 0, 0, 0, 0, false},
        {F_RETRO, "\"retros\"", -1, 0, 0, 0, 0, false},
        {F_RETRO, "null", -1, 0, 0, 0, 0, false},
        {F_RETRO, "{\"retros\": {}}", -1, 0, 0, 0, 0, false},
        {F_RETRO, "{\"retros\": \"x\"}", -1, 0, 0, 0, 0, false},
        {F_RETRO, "{\"retros\": null}", -1, 0, 0, 0, 0, false},
        {F_RETRO, "{\"retros\": [], \"more\": \"true\"}", -1, 0, 0, 0, 0, false},
        {F_RETRO, "{\"retros\": [], \"more\": 1}", -1, 0, 0, 0, 0, false},
        {F_RETRO, "{\"retros\": [1, \"x\", null, []]}", 0, 0, 4, 4, 0, false},
        /* taxii21 */
        {F_TAXII, "{}", 0, 0, 0, 0, 0, false},
        {F_TAXII, "{\"more\": true, \"next\": \"abc\"}", 0, 0, 0, 0, 0, true},
        {F_TAXII, "{\"objects\": []}", 0, 0, 0, 0, 0, false},
        {F_TAXII, "{\"objects\": [{\"type\": \"malware\"}, {\"type\": \"report\"}]}", 0, 0, 2, 0, 0, false},
        {F_TAXII, "[]", -1, 0, 0, 0, 0, false},
        {F_TAXII, "{\"objects\": {}}", -1, 0, 0, 0, 0, false},
        {F_TAXII, "{\"objects\": null}", -1, 0, 0, 0, 0, false},
        {F_TAXII, "{\"more\": \"yes\"}", -1, 0, 0, 0, 0, false},
        {F_TAXII, "{\"next\": 5}", -1, 0, 0, 0, 0, false},
        {F_TAXII, "<html>", -1, 0, 0, 0, 0, false},
        /* misp */
        {F_MISP, "{\"response\": []}", 0, 0, 0, 0, 0, false},
        {F_MISP, "{\"response\": {}}", 0, 0, 0, 0, 0, false},
        {F_MISP, "{\"response\": {\"Attribute\": []}}", 0, 0, 0, 0, 0, false},
        {F_MISP, "{}", -1, 0, 0, 0, 0, false},
        {F_MISP, "[]", -1, 0, 0, 0, 0, false},
        {F_MISP, "{\"response\": [{\"Event\": {}}]}", -1, 0, 0, 0, 0, false},
        {F_MISP, "{\"response\": \"x\"}", -1, 0, 0, 0, 0, false},
        {F_MISP, "{\"response\": {\"Attribute\": {}}}", -1, 0, 0, 0, 0, false},
        {F_MISP, "{\"response\": {\"Attribute\": [", -1, 0, 0, 0, 0, false},
        /* urlhaus */
        {F_URLHAUS, "", -1, 0, 0, 0, 0, false},
        {F_URLHAUS, "# only a comment\n", -1, 0, 0, 0, 0, false},
        {F_URLHAUS, "# comment\n\"1\",\"2024-01-02 03:04:05\",\"http://x/\"\n", -1, 0, 0, 0, 0, false},
        {F_URLHAUS, "id,dateadded\n1,2024-01-02 03:04:05\n", -1, 0, 0, 0, 0, false},
        {F_URLHAUS, "# id,dateadded,url\n", 0, 0, 0, 0, 0, false},
        {F_URLHAUS, "id,dateadded,url\n", 0, 0, 0, 0, 0, false},
        {F_URLHAUS, "ID,DateAdded,URL\n1,,http://x/\n", 0, 1, 1, 0, 0, false},
        /* openphish */
        {F_OPENPHISH, "", 0, 0, 0, 0, 0, false},
        {F_OPENPHISH, "\n\n  \n# nothing\n", 0, 0, 0, 0, 0, false},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        feed_page_t page;
        char err[256] = "";
        int rc = parse(cases[i].fmt, cases[i].body, &page, err, sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, err);
        if (rc < 0) {
            assert_true(err[0] != '\0'); /* the reason is given */
            assert_null(page.items);     /* and the page left empty */
            assert_int_equal(page.count, 0);
            assert_null(page.next);
        }
        assert_int_equal(page.count, cases[i].count);
        assert_int_equal(page.raw_count, cases[i].raw);
        assert_int_equal(page.skipped, cases[i].skipped);
        assert_int_equal(page.withdrawn, cases[i].withdrawn);
        assert_int_equal(page.more, cases[i].more);
        feed_page_release(&page);
    }
}

/* ---- retro ------------------------------------------------------------------------------- */

#define RETRO_SAMPLE                                                                                 \
    "{\"retros\": ["                                                                                 \
    "{\"observable\": {\"observable_type\": \"url\", \"value\": "                                    \
    "\"http://phish.cua.com/test_url_2022032402rks\"}, \"context_tags\": [{\"taxonomy_id\": 4, "     \
    "\"taxonomy_entry_id\": 3, \"tag_type_id\": 1}], \"email_id\": "                                 \
    "\"d5feb7d4-fe00-4568-9bb7-769a5bc7886e\", \"timestamp\": \"2022-03-30T00:17:13Z\", \"org_id\": " \
    "\"cisco\", \"verdict\": {\"taxonomy_id\": 4, \"taxonomy_entry_id\": 3, \"tag_type_id\": 1}, "   \
    "\"taxonomy_map_version\": 1},"                                                                  \
    "{\"observable\": {\"observable_type\": \"domain\", \"value\": \"phish.cua.com\"}, "             \
    "\"email_id\": \"0b1c2d3e-0000-4000-8000-000000000001\", \"timestamp\": "                        \
    "\"2022-03-30T02:00:00Z\", \"org_id\": \"cisco\", \"verdict\": {\"taxonomy_id\": 4, "            \
    "\"taxonomy_entry_id\": 5, \"tag_type_id\": 1}, \"taxonomy_map_version\": 1},"                   \
    "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://phish.cua.com/other\"}, "   \
    "\"timestamp\": \"2022-03-30T00:17:13.500Z\", \"org_id\": \"cisco\"}"                            \
    "], \"more\": false}"

static void test_retro_seed_sample(void **state)
{
    (void)state;
    feed_page_t page;
    parse_ok(F_RETRO, RETRO_SAMPLE, &page);
    assert_int_equal(page.count, 3);
    assert_int_equal(page.raw_count, 3);
    assert_int_equal(page.skipped, 0);
    assert_int_equal(page.withdrawn, 0);
    assert_false(page.more);
    assert_null(page.next);
    assert_int_equal(page.max_time_ms, 1648605600000LL); /* the second retro's timestamp */

    const feed_item_t *a = &page.items[0], *b = &page.items[1], *c = &page.items[2];
    assert_int_equal(a->type, FEED_OBSERVABLE_URL);
    assert_string_equal(a->value, "http://phish.cua.com/test_url_2022032402rks");
    assert_string_equal(a->email_id, "d5feb7d4-fe00-4568-9bb7-769a5bc7886e");
    assert_int_equal(a->observed_ms, 1648599433000LL);
    assert_string_equal(a->context, "verdict taxonomy 4/3/1");
    assert_string_equal(a->key, "a33a782a1a8bf472bc9aeab5de860ceb"); /* pinned: see feed_parse.h */

    assert_int_equal(b->type, FEED_OBSERVABLE_DOMAIN);
    assert_string_equal(b->value, "phish.cua.com");
    assert_string_equal(b->context, "verdict taxonomy 4/5/1");
    assert_int_equal(b->observed_ms, 1648605600000LL);

    assert_int_equal(c->type, FEED_OBSERVABLE_URL);
    assert_null(c->email_id);
    assert_null(c->context); /* no verdict object */
    assert_int_equal(c->observed_ms, 1648599433500LL);
    feed_page_release(&page);
}

static void test_retro_items_skipped(void **state)
{
    (void)state;
    static const char body[] =
        "{\"retros\": ["
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://ok.example/1\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\"},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://no-time.example/\"}},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://bad-time.example/\"}, "
        "\"timestamp\": \"yesterday\"},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://num-time.example/\"}, "
        "\"timestamp\": 1648599433},"
        "{\"observable\": {\"observable_type\": \"ip\", \"value\": \"1.2.3.4\"}, "
        "\"timestamp\": \"2023-01-01T00:00:00Z\"},"
        "{\"observable\": {\"value\": \"http://no-type.example/\"}, \"timestamp\": \"2022-03-30T00:00:00Z\"},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": 7}, \"timestamp\": \"2022-03-30T00:00:00Z\"},"
        "{\"observable\": \"http://flat.example/\", \"timestamp\": \"2022-03-30T00:00:00Z\"},"
        "{\"timestamp\": \"2022-03-30T00:00:00Z\"},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"\"}, \"timestamp\": \"2022-03-30T00:00:00Z\"},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://x/\\nInjected: 1\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\"},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://x/\\u0000y\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\"},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://long-id.example/\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\", "
        "\"email_id\": \"0123456789012345678901234567890123456789012345678901234567890123456789\"},"
        "{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://num-id.example/\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\", \"email_id\": 12},"
        "{\"observable\": {\"observable_type\": \"domain\", \"value\": \"ok.example\"}, "
        "\"timestamp\": \"2022-03-30T00:00:01Z\", \"email_id\": \"\", \"verdict\": {\"taxonomy_id\": \"4\"}},"
        "42"
        "]}";
    feed_page_t page;
    parse_ok(F_RETRO, body, &page);
    assert_int_equal(page.raw_count, 16);
    assert_int_equal(page.count, 2);
    assert_int_equal(page.skipped, 14);
    assert_string_equal(page.skip_reason, "retro 1: no timestamp"); /* the first reason is kept */
    assert_string_equal(page.items[0].value, "http://ok.example/1");
    assert_string_equal(page.items[1].value, "ok.example");
    assert_null(page.items[1].email_id); /* "" is taken as absent */
    assert_null(page.items[1].context);  /* verdict ids that are not numbers give no context */
    /* the unsupported ip retro still moved the clock: the cursor must pass it */
    assert_int_equal(page.max_time_ms, feed_parse_time("2023-01-01T00:00:00Z"));
    feed_page_release(&page);

    /* an email_id of exactly 64 bytes is fine */
    static const char id64[] =
        "{\"retros\": [{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://a/\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\", "
        "\"email_id\": \"0123456789012345678901234567890123456789012345678901234567890123\"}]}";
    parse_ok(F_RETRO, id64, &page);
    assert_int_equal(page.count, 1);
    assert_int_equal(strlen(page.items[0].email_id), 64);
    feed_page_release(&page);
}

static void test_retro_keys(void **state)
{
    (void)state;
    feed_page_t first, again;
    parse_ok(F_RETRO, RETRO_SAMPLE, &first);
    parse_ok(F_RETRO, RETRO_SAMPLE, &again);
    assert_int_equal(first.count, 3);
    for (size_t i = 0; i < first.count; i++) {
        assert_string_equal(first.items[i].key, again.items[i].key); /* served again: same key */
        assert_int_equal(strlen(first.items[i].key), 32);
        assert_int_equal(strspn(first.items[i].key, "0123456789abcdef"), 32);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(first.items[i].key, first.items[k].key);
    }
    const char *const p0[] = {"retro", "http://phish.cua.com/test_url_2022032402rks",
                              "d5feb7d4-fe00-4568-9bb7-769a5bc7886e", "2022-03-30T00:17:13Z"};
    assert_key(first.items[0].key, p0, UTIL_ARRAY_LEN(p0));
    const char *const p2[] = {"retro", "http://phish.cua.com/other", "", "2022-03-30T00:17:13.500Z"};
    assert_key(first.items[2].key, p2, UTIL_ARRAY_LEN(p2)); /* no email_id: empty part */
    feed_page_release(&first);
    feed_page_release(&again);

    /* the same URL for another message, or at another time, is another verdict */
    static const char *const variants[] = {
        "{\"retros\": [{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://k/\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\", \"email_id\": \"m1\"}]}",
        "{\"retros\": [{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://k/\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\", \"email_id\": \"m2\"}]}",
        "{\"retros\": [{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://k/\"}, "
        "\"timestamp\": \"2022-03-30T00:00:01Z\", \"email_id\": \"m1\"}]}",
        "{\"retros\": [{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://k/2\"}, "
        "\"timestamp\": \"2022-03-30T00:00:00Z\", \"email_id\": \"m1\"}]}",
    };
    char keys[UTIL_ARRAY_LEN(variants)][33];
    for (size_t i = 0; i < UTIL_ARRAY_LEN(variants); i++) {
        feed_page_t page;
        parse_ok(F_RETRO, variants[i], &page);
        assert_int_equal(page.count, 1);
        util_strlcpy(keys[i], page.items[0].key, sizeof(keys[i]));
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(keys[i], keys[k]);
        feed_page_release(&page);
    }
}

/* ---- TAXII 2.1 --------------------------------------------------------------------------- */

static const char taxii_doc[] =
    "{\"more\": true, \"next\": \"tok-2\", \"objects\": ["
    /* 0: one URL, named */
    "{\"type\": \"indicator\", \"spec_version\": \"2.1\", \"id\": \"indicator--a1\", \"name\": \"Phishing URL\", "
    "\"pattern\": \"[url:value = 'http://bad.example/x']\", \"pattern_type\": \"stix\", "
    "\"valid_from\": \"2024-01-02T03:04:05Z\", \"created\": \"2024-01-01T00:00:00Z\", "
    "\"modified\": \"2024-01-03T00:00:00Z\"},"
    /* 1: two values, no name, no valid_from (observed = created) */
    "{\"type\": \"indicator\", \"id\": \"indicator--a2\", "
    "\"pattern\": \"[url:value = 'http://a.example/' OR domain-name:value = 'b.example']\", "
    "\"pattern_type\": \"stix\", \"created\": \"2024-02-29T00:00:00Z\", \"modified\": \"2024-02-29T00:00:00.250Z\"},"
    /* 2: revoked */
    "{\"type\": \"indicator\", \"id\": \"indicator--a3\", \"revoked\": true, "
    "\"pattern\": \"[url:value = 'http://revoked.example/']\", \"pattern_type\": \"stix\", "
    "\"valid_from\": \"2024-01-01T00:00:00Z\", \"modified\": \"2024-01-01T00:00:00Z\"},"
    /* 3: expired */
    "{\"type\": \"indicator\", \"id\": \"indicator--a4\", \"valid_until\": \"2024-01-01T00:00:00Z\", "
    "\"pattern\": \"[url:value = 'http://expired.example/']\", \"pattern_type\": \"stix\", "
    "\"valid_from\": \"2023-01-01T00:00:00Z\", \"modified\": \"2023-01-01T00:00:00Z\"},"
    /* 4: valid until later, revoked false */
    "{\"type\": \"indicator\", \"id\": \"indicator--a5\", \"valid_until\": \"2099-01-01T00:00:00Z\", "
    "\"revoked\": false, \"pattern\": \"[domain-name:value = 'future.example']\", \"pattern_type\": \"stix\", "
    "\"valid_from\": \"2024-01-01T00:00:00Z\", \"modified\": \"2024-01-01T00:00:00Z\"},"
    /* 5: not a STIX pattern */
    "{\"type\": \"indicator\", \"id\": \"indicator--a6\", \"pattern\": \"rule x { condition: true }\", "
    "\"pattern_type\": \"yara\", \"modified\": \"2024-01-01T00:00:00Z\"},"
    /* 6: a STIX pattern we cannot use */
    "{\"type\": \"indicator\", \"id\": \"indicator--a7\", \"pattern\": \"[file:hashes.MD5 = 'abc']\", "
    "\"pattern_type\": \"stix\", \"modified\": \"2024-01-01T00:00:00Z\"},"
    /* 7: not an indicator: ignored, but its time counts */
    "{\"type\": \"malware\", \"id\": \"malware--1\", \"modified\": \"2025-01-01T00:00:00Z\"},"
    /* 8: not an object */
    "42,"
    /* 9: no pattern */
    "{\"type\": \"indicator\", \"id\": \"indicator--a8\", \"pattern_type\": \"stix\"},"
    /* 10: bad valid_from */
    "{\"type\": \"indicator\", \"id\": \"indicator--a9\", \"pattern\": \"[url:value = 'http://c/']\", "
    "\"pattern_type\": \"stix\", \"valid_from\": \"soon\"},"
    /* 11: revoked but not a boolean */
    "{\"type\": \"indicator\", \"id\": \"indicator--a10\", \"pattern\": \"[url:value = 'http://d/']\", "
    "\"pattern_type\": \"stix\", \"revoked\": \"yes\"},"
    /* 12: valid_until exactly now: expired */
    "{\"type\": \"indicator\", \"id\": \"indicator--a11\", \"valid_until\": \"2024-06-01T00:00:00Z\", "
    "\"pattern\": \"[url:value = 'http://now.example/']\", \"pattern_type\": \"stix\"}"
    "]}";

static void test_taxii_indicators(void **state)
{
    (void)state;
    feed_page_t page;
    parse_ok(F_TAXII, taxii_doc, &page);
    assert_int_equal(page.raw_count, 13);
    assert_int_equal(page.count, 4);
    assert_int_equal(page.withdrawn, 3);
    assert_int_equal(page.skipped, 6);
    assert_true(page.more);
    assert_string_equal(page.next, "tok-2");
    assert_int_equal(page.max_time_ms, feed_parse_time("2025-01-01T00:00:00Z"));

    const feed_item_t *x = find_item(&page, "http://bad.example/x");
    assert_int_equal(x->type, FEED_OBSERVABLE_URL);
    assert_int_equal(x->observed_ms, 1704164645000LL); /* valid_from */
    assert_string_equal(x->context, "indicator--a1: Phishing URL");
    assert_null(x->email_id);

    const feed_item_t *a = find_item(&page, "http://a.example/");
    const feed_item_t *b = find_item(&page, "b.example");
    assert_int_equal(a->type, FEED_OBSERVABLE_URL);
    assert_int_equal(b->type, FEED_OBSERVABLE_DOMAIN);
    assert_int_equal(a->observed_ms, 1709164800000LL); /* created */
    assert_string_equal(a->context, "indicator--a2");
    assert_string_equal(b->context, "indicator--a2");
    assert_string_not_equal(a->key, b->key);

    const feed_item_t *f = find_item(&page, "future.example");
    assert_int_equal(f->type, FEED_OBSERVABLE_DOMAIN);
    for (size_t i = 0; i < page.count; i++) {
        assert_string_not_equal(page.items[i].value, "http://revoked.example/");
        assert_string_not_equal(page.items[i].value, "http://expired.example/");
        assert_string_not_equal(page.items[i].value, "http://now.example/");
    }
    assert_non_null(strstr(page.skip_reason, "object 5"));
    feed_page_release(&page);

    /* one millisecond earlier, the indicator whose valid_until is exactly now is still valid */
    feed_page_t later;
    assert_int_equal(feed_parse_taxii21(taxii_doc, strlen(taxii_doc), NOW_MS - 1, &later, NULL, 0), 0);
    assert_int_equal(later.withdrawn, 2); /* valid_until == now is past, now - 1 is not */
    assert_int_equal(later.count, 5);
    feed_page_release(&later);
}

static void test_taxii_keys(void **state)
{
    (void)state;
    feed_page_t page, again;
    parse_ok(F_TAXII, taxii_doc, &page);
    parse_ok(F_TAXII, taxii_doc, &again);
    assert_int_equal(page.count, again.count);
    for (size_t i = 0; i < page.count; i++)
        assert_string_equal(page.items[i].key, again.items[i].key);
    const char *const px[] = {"taxii21", "indicator--a1", "2024-01-03T00:00:00Z", "http://bad.example/x"};
    assert_key(find_item(&page, "http://bad.example/x")->key, px, UTIL_ARRAY_LEN(px));
    const char *const pb[] = {"taxii21", "indicator--a2", "2024-02-29T00:00:00.250Z", "b.example"};
    assert_key(find_item(&page, "b.example")->key, pb, UTIL_ARRAY_LEN(pb));
    feed_page_release(&page);
    feed_page_release(&again);

    /* a new version (modified) of the indicator is a new verdict; without modified, created */
    static const char *const versions[] = {
        "{\"objects\": [{\"type\": \"indicator\", \"id\": \"indicator--v\", \"pattern_type\": \"stix\", "
        "\"pattern\": \"[url:value = 'http://v/']\", \"created\": \"2024-01-01T00:00:00Z\", "
        "\"modified\": \"2024-01-01T00:00:00Z\"}]}",
        "{\"objects\": [{\"type\": \"indicator\", \"id\": \"indicator--v\", \"pattern_type\": \"stix\", "
        "\"pattern\": \"[url:value = 'http://v/']\", \"created\": \"2024-01-01T00:00:00Z\", "
        "\"modified\": \"2024-01-05T00:00:00Z\"}]}",
        "{\"objects\": [{\"type\": \"indicator\", \"id\": \"indicator--v\", \"pattern_type\": \"stix\", "
        "\"pattern\": \"[url:value = 'http://v/']\", \"created\": \"2024-01-07T00:00:00Z\"}]}",
    };
    static const char *const mods[] = {"2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z", "2024-01-07T00:00:00Z"};
    char keys[UTIL_ARRAY_LEN(versions)][33];
    for (size_t i = 0; i < UTIL_ARRAY_LEN(versions); i++) {
        feed_page_t v;
        parse_ok(F_TAXII, versions[i], &v);
        assert_int_equal(v.count, 1);
        const char *const parts[] = {"taxii21", "indicator--v", mods[i], "http://v/"};
        assert_key(v.items[0].key, parts, UTIL_ARRAY_LEN(parts));
        assert_int_equal(v.max_time_ms, feed_parse_time(mods[i]));
        util_strlcpy(keys[i], v.items[0].key, sizeof(keys[i]));
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(keys[i], keys[k]);
        feed_page_release(&v);
    }
}

static void test_taxii_context_bounded(void **state)
{
    (void)state;
    static const struct {
        const char *name_unit; /* repeated to make the indicator's name */
        size_t repeat;
        size_t want_len;
    } cases[] = {
        {"a", 2000, FEED_MAX_CONTEXT - 1},
        {"\xC3\xA9", 1000, FEED_MAX_CONTEXT - 2}, /* "indicator--x: " is 14 bytes: a cut é is dropped */
        {"bad\\nname", 1, 22},                    /* control bytes blanked */
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char body[8192];
        int n = snprintf(body, sizeof(body),
                         "{\"objects\": [{\"type\": \"indicator\", \"id\": \"indicator--x\", "
                         "\"pattern_type\": \"stix\", \"pattern\": \"[url:value = 'http://x/']\", \"name\": \"");
        for (size_t k = 0; k < cases[i].repeat; k++)
            n += snprintf(body + n, sizeof(body) - (size_t)n, "%s", cases[i].name_unit);
        snprintf(body + n, sizeof(body) - (size_t)n, "\"}]}");
        feed_page_t page;
        parse_ok(F_TAXII, body, &page);
        assert_int_equal(page.count, 1);
        const char *ctx = page.items[0].context;
        assert_int_equal(strlen(ctx), cases[i].want_len);
        assert_memory_equal(ctx, "indicator--x: ", 14);
        if (i == 1)
            assert_memory_equal(ctx + strlen(ctx) - 2, "\xC3\xA9", 2);
        if (i == 2)
            assert_string_equal(ctx, "indicator--x: bad name");
        feed_page_release(&page);
    }
}

/* ---- MISP -------------------------------------------------------------------------------- */

static void test_misp_attributes(void **state)
{
    (void)state;
    static const char body[] =
        "{\"response\": {\"Attribute\": ["
        /* 0 */ "{\"id\": \"12\", \"event_id\": \"3\", \"uuid\": \"5f0c-u0\", \"type\": \"url\", "
        "\"category\": \"Network activity\", \"to_ids\": true, \"value\": \"http://bad/x\", "
        "\"timestamp\": \"1700000000\", \"comment\": \"seen in campaign\"},"
        /* 1 */ "{\"id\": \"13\", \"event_id\": 3, \"type\": \"domain\", \"to_ids\": \"1\", "
        "\"value\": \"bad.example\", \"timestamp\": 1700000100},"
        /* 2 */ "{\"id\": \"14\", \"event_id\": \"4\", \"uuid\": \"5f0c-u2\", \"type\": \"hostname\", "
        "\"category\": \"Network activity\", \"to_ids\": 1, \"value\": \"www.bad.example\", "
        "\"timestamp\": \"1700000050\"},"
        /* 3 */ "{\"id\": \"15\", \"uuid\": \"5f0c-u3\", \"type\": \"ip-dst\", \"to_ids\": true, "
        "\"value\": \"192.0.2.1\", \"timestamp\": \"1700000000\"},"
        /* 4 */ "{\"id\": \"16\", \"uuid\": \"5f0c-u4\", \"type\": \"url\", \"to_ids\": false, "
        "\"value\": \"http://fp/1\", \"timestamp\": \"1700000000\"},"
        /* 5 */ "{\"id\": \"17\", \"uuid\": \"5f0c-u5\", \"type\": \"url\", \"to_ids\": \"0\", "
        "\"value\": \"http://fp/2\", \"timestamp\": \"1700000000\"},"
        /* 6 */ "{\"id\": \"18\", \"uuid\": \"5f0c-u6\", \"type\": \"url\", \"to_ids\": 0, "
        "\"value\": \"http://fp/3\", \"timestamp\": \"1800000000\"},"
        /* 7 */ "{\"id\": \"19\", \"uuid\": \"5f0c-u7\", \"type\": \"url\", \"to_ids\": true, "
        "\"value\": \"http://bad/t\", \"timestamp\": \"abc\"},"
        /* 8 */ "{\"id\": \"20\", \"uuid\": \"5f0c-u8\", \"type\": \"url\", \"to_ids\": true, \"value\": 5, "
        "\"timestamp\": \"1700000000\"},"
        /* 9 */ "{\"type\": \"url\", \"to_ids\": true, \"value\": \"http://anon/\", \"timestamp\": \"1700000000\"},"
        /* 10 */ "{\"id\": \"21\", \"uuid\": \"5f0c-u10\", \"type\": \"url\", \"to_ids\": \"maybe\", "
        "\"value\": \"http://bad/m\", \"timestamp\": \"1700000000\"},"
        /* 11 */ "[]"
        "]}}";
    feed_page_t page;
    parse_ok(F_MISP, body, &page);
    assert_int_equal(page.raw_count, 12);
    assert_int_equal(page.count, 3);
    assert_int_equal(page.withdrawn, 3);
    assert_int_equal(page.skipped, 6); /* ip-dst, bad timestamp, value 5, no id, to_ids maybe, [] */
    assert_string_equal(page.skip_reason, "attribute 3: type \"ip-dst\" not supported");
    assert_int_equal(page.max_time_ms, 1800000000000LL); /* withdrawn attributes move the clock too */

    const feed_item_t *u = find_item(&page, "http://bad/x");
    assert_int_equal(u->type, FEED_OBSERVABLE_URL);
    assert_int_equal(u->observed_ms, 1700000000000LL);
    assert_string_equal(u->context, "event 3 Network activity");
    const char *const pu[] = {"misp", "5f0c-u0", "http://bad/x"};
    assert_key(u->key, pu, UTIL_ARRAY_LEN(pu));

    const feed_item_t *d = find_item(&page, "bad.example");
    assert_int_equal(d->type, FEED_OBSERVABLE_DOMAIN);
    assert_int_equal(d->observed_ms, 1700000100000LL);
    assert_string_equal(d->context, "event 3");
    const char *const pd[] = {"misp", "13", "bad.example"}; /* no uuid: the id */
    assert_key(d->key, pd, UTIL_ARRAY_LEN(pd));

    const feed_item_t *h = find_item(&page, "www.bad.example");
    assert_int_equal(h->type, FEED_OBSERVABLE_DOMAIN);
    assert_string_equal(h->context, "event 4 Network activity");
    feed_page_release(&page);
}

/* ---- URLhaus ----------------------------------------------------------------------------- */

static const char urlhaus_dump[] =
    "################################################################\n"
    "# abuse.ch URLhaus Database Dump (CSV - recent URLs only)      #\n"
    "# Last updated: 2024-01-02 04:00:00 (UTC)                      #\n"
    "#                                                              #\n"
    "# Terms Of Use: https://urlhaus.abuse.ch/api/                  #\n"
    "# For questions please contact urlhaus [at] abuse.ch           #\n"
    "################################################################\n"
    "#\n"
    "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n"
    "\"2771234\",\"2024-01-02 03:04:05\",\"http://1.2.3.4:5678/i\",\"online\",\"2024-01-02 03:04:05\","
    "\"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/2771234/\",\"geenensp\"\n"
    "\"2771233\",\"2024-01-02 03:00:00\",\"http://evil.example/a,b?\"\"q\"\"\",\"offline\",\"\","
    "\"malware_download\",\"exe\",\"https://urlhaus.abuse.ch/url/2771233/\",\"abuse_ch\"\n";

static void test_urlhaus_dump(void **state)
{
    (void)state;
    feed_page_t page;
    parse_ok(F_URLHAUS, urlhaus_dump, &page);
    assert_int_equal(page.raw_count, 2);
    assert_int_equal(page.count, 2);
    assert_int_equal(page.skipped, 0);
    assert_int_equal(page.withdrawn, 0); /* offline is not withdrawn: it was malicious */
    assert_int_equal(page.max_time_ms, 1704164645000LL);

    const feed_item_t *a = &page.items[0], *b = &page.items[1];
    assert_int_equal(a->type, FEED_OBSERVABLE_URL);
    assert_string_equal(a->value, "http://1.2.3.4:5678/i");
    assert_int_equal(a->observed_ms, 1704164645000LL);
    assert_string_equal(a->context, "threat=malware_download tags=32-bit,elf,mips,Mozi status=online");
    assert_string_equal(a->key, "142f60b6970ce37cb8df3d870ad253d8"); /* pinned: SHA-256("url" NUL url) */
    assert_string_equal(b->value, "http://evil.example/a,b?\"q\"");
    assert_string_equal(b->context, "threat=malware_download tags=exe status=offline");
    assert_int_equal(b->observed_ms, 1704164400000LL);
    feed_page_release(&page);
}

static void test_urlhaus_variants(void **state)
{
    (void)state;
    static const struct {
        const char *name, *body;
        size_t count, raw, skipped;
        const char *value, *context; /* of the first item */
    } cases[] = {
        {"older dump without last_online",
         "# id,dateadded,url,url_status,threat,tags,urlhaus_link,reporter\n"
         "\"9\",\"2021-01-01 00:00:00\",\"http://old.example/\",\"online\",\"malware_download\",\"doc\","
         "\"https://urlhaus.abuse.ch/url/9/\",\"x\"\n",
         1, 1, 0, "http://old.example/", "threat=malware_download tags=doc status=online"},
        {"header as the first line, unquoted",
         "id,dateadded,url,url_status,threat,tags,urlhaus_link,reporter\n"
         "1,2024-01-02 03:04:05,http://plain.example/,online,malware_download,elf,https://u/1,me\n",
         1, 1, 0, "http://plain.example/", "threat=malware_download tags=elf status=online"},
        {"CRLF line ends",
         "# comment\r\n# id,dateadded,url,url_status,threat,tags\r\n"
         "\"1\",\"2024-01-02 03:04:05\",\"http://crlf.example/\",\"online\",\"t\",\"g\"\r\n"
         "2,2024-01-02 03:04:05,http://crlf2.example/,online,t,g\r\n",
         2, 2, 0, "http://crlf.example/", "threat=t tags=g status=online"},
        {"no final line end", "id,url\n1,http://last.example/", 1, 1, 0, "http://last.example/",
         "threat= tags= status="},
        {"byte order mark", "\xEF\xBB\xBFid,url\n1,http://bom.example/\n", 1, 1, 0, "http://bom.example/",
         "threat= tags= status="},
        {"columns in another order, blank lines",
         "# url,id,threat\n\n\"http://moved.example/\",\"1\",\"phishing\"\n\n", 1, 1, 0, "http://moved.example/",
         "threat=phishing tags= status="},
        {"later comment lines are not headers",
         "# id,url\n1,http://a.example/\n# id,dateadded,url\n2,http://b.example/\n", 2, 2, 0, "http://a.example/",
         "threat= tags= status="},
        {"quoted line break in a field",
         "id,url,tags\n1,http://nl.example/,\"a\nb\"\n2,http://after.example/,c\n", 2, 2, 0, "http://nl.example/",
         "threat= tags=a b status="},
        {"wrong column counts skipped",
         "id,dateadded,url\n1,2024-01-02 03:04:05\n2,2024-01-02 03:04:05,http://ok.example/\n"
         "3,2024-01-02 03:04:05,http://x/,extra\n",
         1, 3, 2, "http://ok.example/", "threat= tags= status="},
        {"empty url skipped", "id,url\n1,\n2,\"\"\n3,http://ok.example/\n", 1, 3, 2, "http://ok.example/",
         "threat= tags= status="},
        {"bad dateadded skipped", "id,dateadded,url\n1,yesterday,http://x/\n2,,http://ok.example/\n", 1, 2, 1,
         "http://ok.example/", "threat= tags= status="},
        {"text after a closing quote skipped", "id,url\n\"1\"x,http://x/\n2,http://ok.example/\n", 1, 2, 1,
         "http://ok.example/", "threat= tags= status="},
        {"unterminated quote swallows the rest", "id,url\n1,http://ok.example/\n2,\"http://x/\n3,http://y/\n", 1, 2,
         1, "http://ok.example/", "threat= tags= status="},
        {"control byte in url skipped", "id,url\n1,http://x/\ty\n2,http://ok.example/\n", 1, 2, 1,
         "http://ok.example/", "threat= tags= status="},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        feed_page_t page;
        char err[256] = "";
        if (feed_parse_urlhaus_csv(cases[i].body, strlen(cases[i].body), &page, err, sizeof(err)) != 0)
            fail_msg("%s: %s", cases[i].name, err);
        if (page.count != cases[i].count || page.raw_count != cases[i].raw || page.skipped != cases[i].skipped)
            fail_msg("%s: count %zu raw %zu skipped %zu (%s)", cases[i].name, page.count, page.raw_count,
                     page.skipped, page.skip_reason);
        if (cases[i].skipped)
            assert_true(page.skip_reason[0] != '\0');
        assert_string_equal(page.items[0].value, cases[i].value);
        assert_string_equal(page.items[0].context, cases[i].context);
        feed_page_release(&page);
    }
}

/* ---- OpenPhish --------------------------------------------------------------------------- */

static void test_openphish(void **state)
{
    (void)state;
    static const char body[] = "http://a.example/1\n"
                               "\n"
                               "   \n"
                               "# comment\n"
                               "  http://b.example/2  \r\n"
                               "http://c.example/\tx\n"
                               "\t# indented comment\n"
                               "http://d.example/3";
    feed_page_t page;
    parse_ok(F_OPENPHISH, body, &page);
    assert_int_equal(page.raw_count, 4);
    assert_int_equal(page.count, 3);
    assert_int_equal(page.skipped, 1);
    assert_string_equal(page.skip_reason, "line 6: value contains a control byte");
    static const char *const want[] = {"http://a.example/1", "http://b.example/2", "http://d.example/3"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(want); i++) {
        assert_string_equal(page.items[i].value, want[i]);
        assert_int_equal(page.items[i].type, FEED_OBSERVABLE_URL);
        assert_int_equal(page.items[i].observed_ms, 0);
        assert_null(page.items[i].context);
        assert_null(page.items[i].email_id);
        const char *const parts[] = {"url", want[i]};
        assert_key(page.items[i].key, parts, UTIL_ARRAY_LEN(parts));
    }
    assert_int_equal(page.max_time_ms, 0);
    feed_page_release(&page);

    /* a NUL inside the body costs its line only */
    static const char nul[] = "http://a/\nhttp://b\0c/\nhttp://d/\n";
    assert_int_equal(feed_parse_openphish(nul, sizeof(nul) - 1, &page, NULL, 0), 0);
    assert_int_equal(page.count, 2);
    assert_int_equal(page.skipped, 1);
    feed_page_release(&page);
}

static void test_same_url_same_key_across_url_feeds(void **state)
{
    (void)state;
    feed_page_t csv, op, retro;
    parse_ok(F_URLHAUS, "id,url\n1,http://shared.example/\n", &csv);
    parse_ok(F_OPENPHISH, "http://shared.example/\n", &op);
    parse_ok(F_RETRO,
             "{\"retros\": [{\"observable\": {\"observable_type\": \"url\", \"value\": \"http://shared.example/\"}, "
             "\"timestamp\": \"2022-03-30T00:00:00Z\"}]}",
             &retro);
    assert_string_equal(csv.items[0].key, op.items[0].key);
    assert_string_not_equal(csv.items[0].key, retro.items[0].key);
    feed_page_release(&csv);
    feed_page_release(&op);
    feed_page_release(&retro);
}

/* ---- limits and lifecycle ---------------------------------------------------------------- */

static void test_value_limits(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        char fill;
        size_t count, skipped;
    } cases[] = {
        {FEED_MAX_VALUE, 'a', 1, 0},
        {FEED_MAX_VALUE + 1, 'a', 0, 1},
        {1, 'a', 1, 0},
        {3, '\x01', 0, 1},
        {3, '\x7f', 1, 0}, /* only bytes below 0x20 are refused */
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char *body = util_xmalloc(cases[i].len + 2);
        memset(body, cases[i].fill, cases[i].len);
        memcpy(body + cases[i].len, "\n", 2);
        feed_page_t page;
        assert_int_equal(feed_parse_openphish(body, cases[i].len + 1, &page, NULL, 0), 0);
        assert_int_equal(page.count, cases[i].count);
        assert_int_equal(page.skipped, cases[i].skipped);
        if (page.count)
            assert_int_equal(strlen(page.items[0].value), cases[i].len);
        feed_page_release(&page);
        free(body);
    }
}

static void test_max_items(void **state)
{
    (void)state;
    size_t lines = FEED_MAX_ITEMS + 3;
    char *body = util_xmalloc(lines * 2 + 1);
    for (size_t i = 0; i < lines; i++)
        memcpy(body + 2 * i, "x\n", 2);
    body[lines * 2] = '\0';
    feed_page_t page;
    assert_int_equal(feed_parse_openphish(body, lines * 2, &page, NULL, 0), 0);
    assert_int_equal(page.count, FEED_MAX_ITEMS);
    assert_int_equal(page.raw_count, lines);
    assert_int_equal(page.skipped, 3);
    assert_non_null(strstr(page.skip_reason, "more than"));
    feed_page_release(&page);
    free(body);
}

static void test_page_release(void **state)
{
    (void)state;
    feed_page_release(NULL);
    feed_page_t page;
    parse_ok(F_OPENPHISH, "http://a/\n", &page);
    assert_int_equal(page.count, 1);
    feed_page_release(&page);
    assert_null(page.items);
    assert_int_equal(page.count, 0);
    assert_int_equal(page.cap, 0);
    feed_page_release(&page); /* twice is harmless */

    /* a failing parse leaves an empty page, and a NULL err is allowed */
    memset(&page, 0xA5, sizeof(page));
    assert_int_equal(feed_parse_retro("[]", 2, &page, NULL, 0), -1);
    assert_null(page.items);
    assert_int_equal(page.skipped, 0);
    feed_page_release(&page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_stix_pattern_accepted),
        cmocka_unit_test(test_stix_pattern_rejected),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_retro_seed_sample),
        cmocka_unit_test(test_retro_items_skipped),
        cmocka_unit_test(test_retro_keys),
        cmocka_unit_test(test_taxii_indicators),
        cmocka_unit_test(test_taxii_keys),
        cmocka_unit_test(test_taxii_context_bounded),
        cmocka_unit_test(test_misp_attributes),
        cmocka_unit_test(test_urlhaus_dump),
        cmocka_unit_test(test_urlhaus_variants),
        cmocka_unit_test(test_openphish),
        cmocka_unit_test(test_same_url_same_key_across_url_feeds),
        cmocka_unit_test(test_value_limits),
        cmocka_unit_test(test_max_items),
        cmocka_unit_test(test_page_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
