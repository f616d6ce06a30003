/*
 * test_query.c - unit tests for common/query.c: every field with its normalization, the seed
 * gateway's own examples, AND and case, escapes, unquoted values, every error with its column,
 * the limits, small error buffers, and random bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "query.h"
#include "util.h"

#define SHA_UPPER "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
#define SHA_LOWER "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct {
    const char *in;
    query_field_t field;
    const char *want;
} one_case_t;

/* parse_one - in must parse to exactly one term equal to (field, want). */
static void parse_one(const one_case_t *c)
{
    query_t q;
    char err[512];
    int rc = query_parse(c->in, &q, err, sizeof(err));
    if (rc != 0)
        fail_msg("'%s': %s", c->in, err);
    assert_int_equal(q.n, 1);
    assert_int_equal(q.terms[0].field, c->field);
    assert_string_equal(q.terms[0].value, c->want);
    query_clear(&q);
}

static void test_fields(void **state)
{
    (void)state;
    static const one_case_t cases[] = {
        {"ip:\"4.2.2.2\"", QUERY_IP, "4.2.2.2"},
        {"ip:\" 10.0.0.1 \"", QUERY_IP, "10.0.0.1"},
        {"ip:\"::FFFF:1.2.3.4\"", QUERY_IP, "::ffff:1.2.3.4"},
        {"ip:\"2001:0DB8:0000:0000:0000:0000:0000:0001\"", QUERY_IP, "2001:db8::1"},
        {"ip:\"::1\"", QUERY_IP, "::1"},
        {"domain:\"cisco.com\"", QUERY_DOMAIN, "cisco.com"},
        {"domain:\"CISCO.Com.\"", QUERY_DOMAIN, "cisco.com"},
        {"domain:\"@Cisco.com\"", QUERY_DOMAIN, "cisco.com"},
        {"domain:\" mail-1.example.org \"", QUERY_DOMAIN, "mail-1.example.org"},
        {"domain:\"_dmarc.example.org\"", QUERY_DOMAIN, "_dmarc.example.org"},
        {"domain:\"localhost\"", QUERY_DOMAIN, "localhost"},
        {"domain:\"bücher.de\"", QUERY_DOMAIN, "xn--bcher-kva.de"},
        {"domain:\"BÜCHER.DE.\"", QUERY_DOMAIN, "xn--bcher-kva.de"},
        {"domain:\"@bücher.de\"", QUERY_DOMAIN, "xn--bcher-kva.de"},
        {"domain:\"xn--bcher-kva.de\"", QUERY_DOMAIN, "xn--bcher-kva.de"},
        {"email:\"noreply@cisco.com\"", QUERY_EMAIL, "noreply@cisco.com"},
        {"email:\" NoReply@Cisco.COM \"", QUERY_EMAIL, "noreply@cisco.com"},
        {"email:\"Jörg@Bücher.de\"", QUERY_EMAIL, "jörg@bücher.de"},
        {"rcpt:\"Alice@Example.ORG\"", QUERY_RCPT, "alice@example.org"},
        {"rcpt:bob@example.org", QUERY_RCPT, "bob@example.org"},
        {"email_messageid:\"123-abc-456@cisco.com\"", QUERY_MESSAGE_ID, "123-abc-456@cisco.com"},
        {"email_messageid:\"<AbC.123@Mail.Example>\"", QUERY_MESSAGE_ID, "AbC.123@Mail.Example"},
        {"email_messageid:\"  < x@y >  \"", QUERY_MESSAGE_ID, "x@y"},
        {"email_messageid:\"<only-open@x\"", QUERY_MESSAGE_ID, "only-open@x"},
        {"email_subject:\"Invoice Due\"", QUERY_SUBJECT, "Invoice Due"},
        {"email_subject:\"  Invoice \t\n  Due  \"", QUERY_SUBJECT, "Invoice Due"},
        {"email_subject:\"invoice DUE\"", QUERY_SUBJECT, "invoice DUE"},
        {"email_subject:\"Rechnung fällig – 100 €\"", QUERY_SUBJECT, "Rechnung fällig – 100 €"},
        {"cisco_mid:\"12345\"", QUERY_MID, "12345"},
        {"mid:\"12345\"", QUERY_MID, "12345"},
        {"mid:\" 007 \"", QUERY_MID, "7"},
        {"mid:9223372036854775807", QUERY_MID, "9223372036854775807"},
        {"sha256:\"" SHA_UPPER "\"", QUERY_SHA256, SHA_LOWER},
        {"sha256:" SHA_LOWER, QUERY_SHA256, SHA_LOWER},
        {"file_name:\"invoice.pdf\"", QUERY_FILE_NAME, "invoice.pdf"},
        {"file_name:\" Report Q1.PDF \"", QUERY_FILE_NAME, " Report Q1.PDF "},
        {"file_name:\"Rechnung_März.pdf\"", QUERY_FILE_NAME, "Rechnung_März.pdf"},
        {"url:\"HTTP://Example.COM/A?b=1#x\"", QUERY_URL, "HTTP://Example.COM/A?b=1#x"},
        {"email_id:\"0F8FAD5B-D9CB-469F-A165-70867728950E\"", QUERY_EMAIL_ID,
         "0f8fad5b-d9cb-469f-a165-70867728950e"},
        {"email_id:0f8fad5b-d9cb-469f-a165-70867728950e", QUERY_EMAIL_ID, "0f8fad5b-d9cb-469f-a165-70867728950e"},
        /* field names in any case */
        {"IP:\"4.2.2.2\"", QUERY_IP, "4.2.2.2"},
        {"Domain:cisco.com", QUERY_DOMAIN, "cisco.com"},
        {"EMAIL_SUBJECT:\"Hi\"", QUERY_SUBJECT, "Hi"},
        {"Cisco_Mid:1", QUERY_MID, "1"},
        {"MID:2", QUERY_MID, "2"},
        {"Sha256:" SHA_LOWER, QUERY_SHA256, SHA_LOWER},
        {"FILE_NAME:a.pdf", QUERY_FILE_NAME, "a.pdf"},
        {"Url:http://x.example/", QUERY_URL, "http://x.example/"},
        {"Email_ID:0f8fad5b-d9cb-469f-a165-70867728950e", QUERY_EMAIL_ID, "0f8fad5b-d9cb-469f-a165-70867728950e"},
        {"RCPT:a@b", QUERY_RCPT, "a@b"},
        {"Email_MessageId:x@y", QUERY_MESSAGE_ID, "x@y"},
        {"eMail:a@b", QUERY_EMAIL, "a@b"},
        /* surrounding whitespace of the whole query */
        {"  \t ip:1.2.3.4 \n ", QUERY_IP, "1.2.3.4"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++)
        parse_one(&cases[i]);
}

/* the examples of the seed gateway's search syntax, exactly as it writes them */
static void test_seed_examples(void **state)
{
    (void)state;
    static const one_case_t cases[] = {
        {"ip:\"4.2.2.2\"", QUERY_IP, "4.2.2.2"},
        {"domain:\"cisco.com\"", QUERY_DOMAIN, "cisco.com"},
        {"email:\"noreply@cisco.com\"", QUERY_EMAIL, "noreply@cisco.com"},
        {"email_messageid:\"123-abc-456@cisco.com\"", QUERY_MESSAGE_ID, "123-abc-456@cisco.com"},
        {"email_subject:\"Invoice Due\"", QUERY_SUBJECT, "Invoice Due"},
        {"cisco_mid:\"12345\"", QUERY_MID, "12345"},
        {"mid:\"12345\"", QUERY_MID, "12345"},
        {"sha256:\"" SHA_LOWER "\"", QUERY_SHA256, SHA_LOWER},
        {"file_name:\"invoice.pdf\"", QUERY_FILE_NAME, "invoice.pdf"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++)
        parse_one(&cases[i]);
}

static void test_escapes_and_unquoted(void **state)
{
    (void)state;
    static const one_case_t cases[] = {
        {"email_subject:\"say \\\"hi\\\"\"", QUERY_SUBJECT, "say \"hi\""},
        {"file_name:\"a\\\\b.pdf\"", QUERY_FILE_NAME, "a\\b.pdf"},
        {"file_name:\"\\\\\\\"\"", QUERY_FILE_NAME, "\\\""},
        {"file_name:\"\\\"\"", QUERY_FILE_NAME, "\""},
        {"email_subject:\"a:b AND c\"", QUERY_SUBJECT, "a:b AND c"},
        {"email_subject:\"AND\"", QUERY_SUBJECT, "AND"},
        {"file_name:AND", QUERY_FILE_NAME, "AND"},
        {"file_name:a\\b", QUERY_FILE_NAME, "a\\b"}, /* unquoted: '\' is an ordinary character */
        {"file_name:a:b", QUERY_FILE_NAME, "a:b"},
        {"domain:cisco.com", QUERY_DOMAIN, "cisco.com"},
        {"mid:12345", QUERY_MID, "12345"},
        {"email:noreply@cisco.com", QUERY_EMAIL, "noreply@cisco.com"},
        {"url:https://x.example/a?b=c&d=e", QUERY_URL, "https://x.example/a?b=c&d=e"},
        {"email_subject:Invoice", QUERY_SUBJECT, "Invoice"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++)
        parse_one(&cases[i]);
}

typedef struct {
    const char *in;
    size_t n;
    struct {
        query_field_t field;
        const char *value;
    } terms[4];
} multi_case_t;

static void test_and(void **state)
{
    (void)state;
    static const multi_case_t cases[] = {
        {"ip:\"4.2.2.2\" domain:\"cisco.com\"", 2, {{QUERY_IP, "4.2.2.2"}, {QUERY_DOMAIN, "cisco.com"}}},
        {"ip:\"4.2.2.2\" AND domain:\"cisco.com\"", 2, {{QUERY_IP, "4.2.2.2"}, {QUERY_DOMAIN, "cisco.com"}}},
        {"ip:4.2.2.2 and domain:cisco.com AnD mid:1",
         3,
         {{QUERY_IP, "4.2.2.2"}, {QUERY_DOMAIN, "cisco.com"}, {QUERY_MID, "1"}}},
        {"  ip:1.2.3.4\tAND\n RCPT:A@B.c  ", 2, {{QUERY_IP, "1.2.3.4"}, {QUERY_RCPT, "a@b.c"}}},
        {"ip:1.1.1.1 ip:1.1.1.1", 2, {{QUERY_IP, "1.1.1.1"}, {QUERY_IP, "1.1.1.1"}}},
        {"mid:1 cisco_mid:1", 2, {{QUERY_MID, "1"}, {QUERY_MID, "1"}}},
        /* argv words joined with spaces by the caller */
        {"email_subject:\"Invoice Due\" AND email:noreply@cisco.com AND file_name:\"invoice.pdf\"",
         3,
         {{QUERY_SUBJECT, "Invoice Due"}, {QUERY_EMAIL, "noreply@cisco.com"}, {QUERY_FILE_NAME, "invoice.pdf"}}},
        {"email_subject:\"a AND b\" and url:x",
         2,
         {{QUERY_SUBJECT, "a AND b"}, {QUERY_URL, "x"}}},
        {"file_name:AND AND file_name:and", 2, {{QUERY_FILE_NAME, "AND"}, {QUERY_FILE_NAME, "and"}}},
        {"email_id:0f8fad5b-d9cb-469f-a165-70867728950e sha256:" SHA_UPPER " email_messageid:<a@b> rcpt:x@y",
         4,
         {{QUERY_EMAIL_ID, "0f8fad5b-d9cb-469f-a165-70867728950e"},
          {QUERY_SHA256, SHA_LOWER},
          {QUERY_MESSAGE_ID, "a@b"},
          {QUERY_RCPT, "x@y"}}},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        query_t q;
        char err[512];
        if (query_parse(cases[i].in, &q, err, sizeof(err)) != 0)
            fail_msg("'%s': %s", cases[i].in, err);
        assert_int_equal(q.n, cases[i].n);
        for (size_t k = 0; k < q.n; k++) {
            assert_int_equal(q.terms[k].field, cases[i].terms[k].field);
            assert_string_equal(q.terms[k].value, cases[i].terms[k].value);
        }
        query_clear(&q);
    }
}

typedef struct {
    const char *in;
    int column; /* 0: the message has no column */
    const char *msg; /* the message after "column N: " */
} error_case_t;

/* expect_error - in fails with exactly "column <column>: <msg>" (or msg alone), q left empty. */
static void expect_error(const char *in, int col, const char *msg)
{
    query_t q;
    char err[512], want[600];
    int rc = query_parse(in, &q, err, sizeof(err));
    if (rc != -1)
        fail_msg("'%s' parsed", in);
    assert_int_equal(q.n, 0);
    assert_null(q.terms);
    if (col)
        snprintf(want, sizeof(want), "column %d: %s", col, msg);
    else
        snprintf(want, sizeof(want), "%s", msg);
    if (strcmp(err, want) != 0)
        fail_msg("'%s': got \"%s\", want \"%s\"", in, err, want);
    query_clear(&q);
}

static void test_errors(void **state)
{
    (void)state;
    static const error_case_t cases[] = {
        {"", 0, "empty query"},
        {"  \t\n ", 0, "empty query"},
        /* structure */
        {"foo:\"x\"", 1,
         "unknown field 'foo' (known: ip, domain, email, email_messageid, email_subject, cisco_mid, mid, "
         "sha256, file_name, url, email_id, rcpt)"},
        {"ip:1.1.1.1 ANDroid:x", 12,
         "unknown field 'ANDroid' (known: ip, domain, email, email_messageid, email_subject, cisco_mid, "
         "mid, sha256, file_name, url, email_id, rcpt)"},
        {"email-subject:x", 1,
         "unknown field 'email-subject' (known: ip, domain, email, email_messageid, email_subject, "
         "cisco_mid, mid, sha256, file_name, url, email_id, rcpt)"},
        {"4.2.2.2", 1, "expected field:value, got '4.2.2.2'"},
        {"ip:1.1.1.1 cisco", 12, "expected field:value, got 'cisco'"},
        {"ip\"1.1.1.1\"", 3, "expected ':' after 'ip'"},
        {":x", 1, "expected a field name"},
        {"ip:1.1.1.1 \"x\"", 12, "expected a field name"},
        {"domain:\"cisco.com\" ip:", 23, "expected a value after 'ip:'"},
        {"ip: 1.2.3.4", 4, "expected a value after 'ip:'"},
        {"IP:", 4, "expected a value after 'IP:'"},
        {"ip:\"1.1.1.1", 4, "missing closing '\"'"},
        {"ip:\"1.1.1.1\\", 4, "missing closing '\"'"},
        {"ip:\"1.1.1.1\\\"", 4, "missing closing '\"'"},
        {"email_subject:\"a\\nb\"", 17, "'\\' must be followed by '\"' or '\\'"},
        {"email_subject:\"a\\ b\"", 17, "'\\' must be followed by '\"' or '\\'"},
        {"ip:\"1.1.1.1\"domain:x", 13, "expected whitespace after the closing '\"'"},
        {"ip:\"1.1.1.1\"\"", 13, "expected whitespace after the closing '\"'"},
        {"ip:1.1\"1.1\"", 7, "'\"' inside an unquoted value (quote the whole value)"},
        {"AND ip:1.1.1.1", 1, "'AND' must stand between two terms"},
        {"and", 1, "'AND' must stand between two terms"},
        {"ip:1.1.1.1 AND", 12, "'AND' must stand between two terms"},
        {"ip:1.1.1.1 AND  \t", 12, "'AND' must stand between two terms"},
        {"ip:1.1.1.1 AND and ip:2.2.2.2", 16, "'AND' must stand between two terms"},
        /* the text itself; columns count characters, not bytes */
        {"ip:1.1.1.1\x01", 11, "control character 0x01"},
        {"ip:1.1.1.1 \x7f", 12, "control character 0x7f"},
        {"email_subject:\"\xff\"", 16, "invalid UTF-8"},
        {"email_subject:\"f\xc3\xa4\xc3\"", 18, "invalid UTF-8"},
        {"email_subject:\"fällig\" ip:x", 27, "invalid value for 'ip:': not an IPv4 or IPv6 address"},
        {"email_subject:\"€€€\" foo:x", 21,
         "unknown field 'foo' (known: ip, domain, email, email_messageid, email_subject, cisco_mid, mid, "
         "sha256, file_name, url, email_id, rcpt)"},
        /* values */
        {"ip:\"4.2.2.256\"", 4, "invalid value for 'ip:': not an IPv4 or IPv6 address"},
        {"ip:\"\"", 4, "invalid value for 'ip:': not an IPv4 or IPv6 address"},
        {"ip:\"[::1]\"", 4, "invalid value for 'ip:': not an IPv4 or IPv6 address"},
        {"ip:\"1.2.3\"", 4, "invalid value for 'ip:': not an IPv4 or IPv6 address"},
        {"ip:cisco.com", 4, "invalid value for 'ip:': not an IPv4 or IPv6 address"},
        {"domain:\"\"", 8, "invalid value for 'domain:': empty"},
        {"domain:\".\"", 8, "invalid value for 'domain:': empty"},
        {"domain:\"@\"", 8, "invalid value for 'domain:': empty"},
        {"domain:\"cisco..com\"", 8, "invalid value for 'domain:': empty label (a leading dot or two dots in a row)"},
        {"domain:\"cisco.com..\"", 8, "invalid value for 'domain:': empty label (a leading dot or two dots in a row)"},
        {"domain:\".cisco.com\"", 8, "invalid value for 'domain:': empty label (a leading dot or two dots in a row)"},
        {"domain:\"cis co.com\"", 8, "invalid value for 'domain:': not a host name (labels of letters, digits, '-' and '_')"},
        {"domain:\"a/b\"", 8, "invalid value for 'domain:': not a host name (labels of letters, digits, '-' and '_')"},
        {"domain:\"x@cisco.com\"", 8, "invalid value for 'domain:': not a host name (labels of letters, digits, '-' and '_')"},
        {"domain:\"a b.bücher.de\"", 8, "invalid value for 'domain:': not a host name (labels of letters, digits, '-' and '_')"},
        {"domain:\"ü-.de\"", 8, "invalid value for 'domain:': not a valid internationalized domain name"},
        {"domain:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", 8,
         "invalid value for 'domain:': label longer than 63 characters"},
        {"email:\"noreply\"", 7, "invalid value for 'email:': no '@'"},
        {"email:\"a@b@c\"", 7, "invalid value for 'email:': more than one '@'"},
        {"rcpt:\"@cisco.com\"", 6, "invalid value for 'rcpt:': nothing before the '@'"},
        {"rcpt:\"x@\"", 6, "invalid value for 'rcpt:': nothing after the '@'"},
        {"email:\"  \"", 7, "invalid value for 'email:': no '@'"},
        {"email_messageid:\"<>\"", 17, "invalid value for 'email_messageid:': empty"},
        {"email_messageid:\" < > \"", 17, "invalid value for 'email_messageid:': empty"},
        {"email_subject:\"   \"", 15, "invalid value for 'email_subject:': empty"},
        {"email_subject:\"\"", 15, "invalid value for 'email_subject:': empty"},
        {"mid:\"0\"", 5, "invalid value for 'mid:': not positive"},
        {"cisco_mid:000", 11, "invalid value for 'cisco_mid:': not positive"},
        {"mid:\"-1\"", 5, "invalid value for 'mid:': not a decimal number (digits only, no sign)"},
        {"mid:\"+1\"", 5, "invalid value for 'mid:': not a decimal number (digits only, no sign)"},
        {"mid:12a", 5, "invalid value for 'mid:': not a decimal number (digits only, no sign)"},
        {"mid:\"1 2\"", 5, "invalid value for 'mid:': not a decimal number (digits only, no sign)"},
        {"mid:0x10", 5, "invalid value for 'mid:': not a decimal number (digits only, no sign)"},
        {"mid:\"\"", 5, "invalid value for 'mid:': empty"},
        {"mid:\"9223372036854775808\"", 5, "invalid value for 'mid:': larger than 9223372036854775807"},
        {"mid:99999999999999999999999", 5, "invalid value for 'mid:': larger than 9223372036854775807"},
        {"sha256:\"abc\"", 8, "invalid value for 'sha256:': not 64 hex digits"},
        {"sha256:\"" SHA_LOWER "0\"", 8, "invalid value for 'sha256:': not 64 hex digits"},
        {"sha256:\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g\"", 8,
         "invalid value for 'sha256:': not 64 hex digits"},
        {"file_name:\"\"", 11, "invalid value for 'file_name:': empty"},
        {"url:\"\"", 5, "invalid value for 'url:': empty"},
        {"email_id:\"not-a-uuid\"", 10, "invalid value for 'email_id:': not a UUID (8-4-4-4-12 hex digits)"},
        {"email_id:0f8fad5bd9cb469fa16570867728950e", 10,
         "invalid value for 'email_id:': not a UUID (8-4-4-4-12 hex digits)"},
        {"email_id:0f8fad5b-d9cb-469f-a165-70867728950g", 10,
         "invalid value for 'email_id:': not a UUID (8-4-4-4-12 hex digits)"},
        {"email_id:0f8fad5b-d9cb-469fa-165-70867728950e", 10,
         "invalid value for 'email_id:': not a UUID (8-4-4-4-12 hex digits)"},
        /* the first error wins, later terms are not looked at */
        {"ip:1.1.1.1 mid:0 foo:x", 16, "invalid value for 'mid:': not positive"},
        /* a quoted value ends at its closing quote */
        {"ip:\"\"4.2.2.2", 6, "expected whitespace after the closing '\"'"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++)
        expect_error(cases[i].in, cases[i].column, cases[i].msg);
}

/* repeat - a string of n copies of c (caller frees). */
static char *repeat(char c, size_t n)
{
    char *s = util_xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_limits(void **state)
{
    (void)state;
    char text[QUERY_MAX_TEXT + 64], err[512];
    query_t q;

    /* 32 terms, then 33: the 33rd is named */
    size_t len = 0, at33 = 0;
    for (int i = 1; i <= QUERY_MAX_TERMS + 1; i++) {
        if (i == QUERY_MAX_TERMS + 1)
            at33 = len + strlen(" AND ") + 1; /* columns count from 1 */
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%smid:%d", i > 1 ? " AND " : "", i);
        if (i == QUERY_MAX_TERMS) {
            assert_int_equal(query_parse(text, &q, err, sizeof(err)), 0);
            assert_int_equal(q.n, QUERY_MAX_TERMS);
            assert_string_equal(q.terms[31].value, "32");
            query_clear(&q);
        }
    }
    char want[64];
    snprintf(want, sizeof(want), "more than %d terms", QUERY_MAX_TERMS);
    expect_error(text, (int)at33, want);

    /* a value of exactly QUERY_MAX_VALUE bytes, quoted and not; one more is refused */
    char *v = repeat('a', QUERY_MAX_VALUE + 1);
    snprintf(want, sizeof(want), "value longer than %d bytes", QUERY_MAX_VALUE);
    for (int quoted = 0; quoted <= 1; quoted++) {
        const char *qs = quoted ? "\"" : "";
        snprintf(text, sizeof(text), "file_name:%s%.*s%s", qs, QUERY_MAX_VALUE, v, qs);
        assert_int_equal(query_parse(text, &q, err, sizeof(err)), 0);
        assert_int_equal(strlen(q.terms[0].value), QUERY_MAX_VALUE);
        query_clear(&q);
        snprintf(text, sizeof(text), "file_name:%s%s%s", qs, v, qs);
        expect_error(text, 11, want);
    }
    /* escapes count once: 8192 escaped quotes are 16384 bytes of text but an 8192-byte value
     * (the text limit applies first here, so use half the value and check the size) */
    len = (size_t)snprintf(text, sizeof(text), "file_name:\"");
    for (int i = 0; i < QUERY_MAX_VALUE / 2; i++) {
        text[len++] = '\\';
        text[len++] = '"';
    }
    text[len++] = '"';
    text[len] = '\0';
    assert_int_equal(query_parse(text, &q, err, sizeof(err)), 0);
    assert_int_equal(strlen(q.terms[0].value), QUERY_MAX_VALUE / 2);
    assert_int_equal(q.terms[0].value[0], '"');
    query_clear(&q);

    /* text of exactly QUERY_MAX_TEXT bytes (two 8192-byte terms), then one more byte */
    size_t half = QUERY_MAX_TEXT / 2 - strlen("file_name:");
    snprintf(text, sizeof(text), "file_name:%.*s file_name:%.*s", (int)half, v, (int)(half - 1), v);
    assert_int_equal(strlen(text), QUERY_MAX_TEXT);
    assert_int_equal(query_parse(text, &q, err, sizeof(err)), 0);
    assert_int_equal(q.n, 2);
    query_clear(&q);
    strcat(text, "a");
    snprintf(want, sizeof(want), "query longer than %d bytes", QUERY_MAX_TEXT);
    expect_error(text, 0, want);
    free(v);

    /* a huge text is refused without reading all of it */
    char *huge = repeat('x', 1 << 22);
    expect_error(huge, 0, want);
    free(huge);

    /* a long unknown field name is shown cut, on a character boundary */
    char *name = repeat('z', 100);
    snprintf(text, sizeof(text), "%s:1", name);
    assert_int_equal(query_parse(text, &q, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "column 1: unknown field 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...'"));
    free(name);
    snprintf(text, sizeof(text), "%s", "z");
    for (int i = 0; i < 30; i++)
        strcat(text, "é");
    strcat(text, ":1");
    assert_int_equal(query_parse(text, &q, err, sizeof(err)), -1);
    /* 1 + 19 * 2 = 39 bytes fit in 40; the 20th 'é' would be cut in half */
    char want_field[128] = "column 1: unknown field 'z";
    for (int i = 0; i < 19; i++)
        strcat(want_field, "é");
    strcat(want_field, "...'");
    assert_non_null(strstr(err, want_field));
}

static void test_err_buffer(void **state)
{
    (void)state;
    query_t q;
    char small[8];
    memset(small, 'X', sizeof(small));
    assert_int_equal(query_parse("ip:\"4.2.2.256\"", &q, small, sizeof(small)), -1);
    assert_string_equal(small, "column ");
    char one[1] = {'X'};
    assert_int_equal(query_parse("foo:1", &q, one, sizeof(one)), -1);
    assert_int_equal(one[0], '\0');
    assert_int_equal(query_parse("", &q, NULL, 0), -1);
    assert_int_equal(query_parse("foo:1", &q, NULL, 0), -1);
    assert_int_equal(query_parse("ip:1.1.1.1 AND", &q, NULL, 0), -1);
    assert_int_equal(query_parse("ip:1.1.1.1", &q, NULL, 0), 0);
    assert_int_equal(q.n, 1);
    query_clear(&q);
}

static void test_clear_and_names(void **state)
{
    (void)state;
    query_clear(NULL);
    query_t q;
    char err[256];
    assert_int_equal(query_parse("ip:1.1.1.1 mid:3", &q, err, sizeof(err)), 0);
    query_clear(&q);
    assert_null(q.terms);
    assert_int_equal(q.n, 0);
    query_clear(&q); /* twice is harmless */

    static const struct {
        query_field_t field;
        const char *name;
    } names[] = {
        {QUERY_IP, "ip"},
        {QUERY_DOMAIN, "domain"},
        {QUERY_EMAIL, "email"},
        {QUERY_MESSAGE_ID, "email_messageid"},
        {QUERY_SUBJECT, "email_subject"},
        {QUERY_MID, "cisco_mid"},
        {QUERY_SHA256, "sha256"},
        {QUERY_FILE_NAME, "file_name"},
        {QUERY_URL, "url"},
        {QUERY_EMAIL_ID, "email_id"},
        {QUERY_RCPT, "rcpt"},
        {(query_field_t)99, "unknown"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++)
        assert_string_equal(query_field_name(names[i].field), names[i].name);

    /* every canonical name parses back to its own field */
    for (int f = QUERY_IP; f <= QUERY_RCPT; f++) {
        char text[64];
        snprintf(text, sizeof(text), "%s:x", query_field_name((query_field_t)f));
        query_parse(text, &q, err, sizeof(err));
        if (q.n == 1)
            assert_int_equal(q.terms[0].field, f);
        else
            assert_non_null(strstr(err, "invalid value")); /* parsed as the field, value refused */
        query_clear(&q);
    }
}

/* next_random - xorshift64, so a failure can be replayed. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* check_result - the invariants of any parse, valid or not. */
static void check_result(const char *text, int rc, const query_t *q, const char *err)
{
    if (rc == 0) {
        assert_true(q->n >= 1 && q->n <= QUERY_MAX_TERMS);
        for (size_t k = 0; k < q->n; k++) {
            assert_true(q->terms[k].field <= QUERY_RCPT);
            assert_non_null(q->terms[k].value);
            assert_true(q->terms[k].value[0] != '\0');
            assert_true(strlen(q->terms[k].value) <= QUERY_MAX_VALUE);
        }
    } else {
        if (rc != -1 || q->n != 0 || q->terms || err[0] == '\0')
            fail_msg("bad failure for input of %zu bytes", strlen(text));
    }
}

static void test_random_bytes(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "ip:", "domain:", "email:", "mid:", "cisco_mid:", "sha256:", "file_name:", "url:", "email_id:",
        "rcpt:", "email_subject:", "email_messageid:", "AND", "and", " ", "\t", "\"", "\\", "\\\"", ":",
        "4.2.2.2", "::1", "cisco.com", "@", "<", ">", "é", "€", "\xff", "\xc3", "\x01", "0", "12345", "-",
        ".", "x",
    };
    static const char *const seeds[] = {
        "ip:\"4.2.2.2\" AND domain:\"cisco.com\"",
        "email_subject:\"say \\\"hi\\\"\" mid:12345",
        "email_id:0f8fad5b-d9cb-469f-a165-70867728950e sha256:" SHA_LOWER,
        "domain:\"bücher.de\" and rcpt:a@b email_messageid:<x@y>",
    };
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    char text[256], err[256];
    for (int iter = 0; iter < 30000; iter++) {
        size_t len = 0;
        int mode = (int)(next_random(&seed) % 3);
        if (mode == 2) {
            /* a valid query with a few bytes changed */
            len = (size_t)snprintf(text, sizeof(text), "%s", seeds[next_random(&seed) % UTIL_ARRAY_LEN(seeds)]);
            int flips = 1 + (int)(next_random(&seed) % 4);
            for (int k = 0; k < flips; k++) {
                char b = (char)(1 + next_random(&seed) % 255);
                text[next_random(&seed) % len] = b;
            }
        } else {
            size_t want = next_random(&seed) % 120;
            while (len < want) {
                if (mode == 0) {
                    text[len++] = (char)(1 + next_random(&seed) % 255); /* any byte but NUL */
                } else {
                    const char *p = pieces[next_random(&seed) % UTIL_ARRAY_LEN(pieces)];
                    size_t n = strlen(p);
                    if (len + n >= sizeof(text))
                        break;
                    memcpy(text + len, p, n);
                    len += n;
                }
            }
            text[len] = '\0';
        }
        query_t q;
        err[0] = '\0';
        int rc = query_parse(text, &q, err, sizeof(err));
        check_result(text, rc, &q, err);
        query_clear(&q);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_seed_examples),
        cmocka_unit_test(test_escapes_and_unquoted),
        cmocka_unit_test(test_and),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_err_buffer),
        cmocka_unit_test(test_clear_and_names),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
