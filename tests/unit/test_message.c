/*
 * test_message.c - observables of whole messages: headers, encodings, charsets, nesting,
 * attachments, sender IP, URLs end to end, and hostile input staying bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "message.h"
#include "util.h"

static int parse(const char *text, const message_context_t *ctx, message_t *msg)
{
    char err[256];
    int rc = message_parse(text, strlen(text), ctx, msg, err, sizeof(err));
    if (rc != 0)
        print_message("parse failed: %s\n", err);
    return rc;
}

static bool has(const message_strv_t *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->v[i], s) == 0)
            return true;
    return false;
}

static void assert_urls(const message_t *msg, const char *const *expected, size_t n)
{
    for (size_t i = 0; i < msg->urls.n; i++)
        print_message("  url: %s\n", msg->urls.v[i]);
    assert_int_equal(msg->urls.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(msg->urls.v[i], expected[i]);
}

static void test_headers(void **state)
{
    (void)state;
    const char *text =
        "From fork-admin@xent.com  Tue Jul 30 08:30:04 2002\n"
        "Received: from mx.example.net (mx.example.net [10.0.0.5])\n"
        "\tby gw.example.com (Postfix) with ESMTP id 4F040440F0; Tue, 30 Jul 2002 03:30:01 -0400\n"
        "Received: from sender.example.org (HELO sender.example.org) (198.51.100.23)\n"
        "\tby mx.example.net with SMTP; Tue, 30 Jul 2002 03:30:00 -0400\n"
        "Message-ID: <123-abc-456@cisco.com>\n"
        "Date: Tue, 30 Jul 2002 03:30:04 -0500\n"
        "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <Juergen.Mueller@Example.COM>\n"
        "To: Alice <alice@example.com>, undisclosed: bob@example.com, carol@example.com;\n"
        "Cc: dave@example.com\n"
        "Reply-To: reply@example.org\n"
        "Subject: =?ISO-8859-1?Q?Invoice_Due_f=FCr?=\n"
        "   =?UTF-8?B?IE3DpHJ6?=\n"
        "\n"
        "body\n";
    message_net_t trusted[2];
    assert_int_equal(message_net_parse("127.0.0.0/8", &trusted[0]), 0);
    assert_int_equal(message_net_parse("10.0.0.0/8", &trusted[1]), 0);
    message_context_t ctx = {.trusted = trusted, .n_trusted = 2};
    message_t msg;
    assert_int_equal(parse(text, &ctx, &msg), 0);
    assert_string_equal(msg.message_id, "123-abc-456@cisco.com");
    assert_string_equal(msg.subject, "Invoice Due f\xc3\xbcr M\xc3\xa4rz");
    assert_string_equal(msg.date, "2002-07-30T08:30:04Z");
    assert_true(msg.date_ms == 1028017804000LL);
    assert_string_equal(msg.header_from, "juergen.mueller@example.com");
    assert_string_equal(msg.from_display, "J\xc3\xbcrgen M\xc3\xbcller");
    assert_string_equal(msg.sender, "juergen.mueller@example.com");
    assert_string_equal(msg.sender_domain, "example.com");
    /* 10.0.0.5 is a trusted relay: the first untrusted hop is the next one down */
    assert_string_equal(msg.sender_ip, "198.51.100.23");
    assert_string_equal(msg.helo, "sender.example.org");
    assert_int_equal(msg.to.n, 3);
    assert_true(has(&msg.to, "alice@example.com") && has(&msg.to, "bob@example.com") &&
                has(&msg.to, "carol@example.com"));
    assert_true(has(&msg.cc, "dave@example.com"));
    assert_true(has(&msg.reply_to, "reply@example.org"));
    message_clear(&msg);

    /* default trust (loopback only): the newest hop's client is the sender */
    assert_int_equal(parse(text, NULL, &msg), 0);
    assert_string_equal(msg.sender_ip, "10.0.0.5");
    message_clear(&msg);

    /* what the MTA says wins over the headers; the envelope sender is the sender */
    const char *rcpts[] = {"Alice@Example.com"};
    message_context_t mta = {.client_ip = "203.0.113.9", .helo = "evil.example",
                             .envelope_sender = "Bounce@Evil.Example", .envelope_rcpts = rcpts,
                             .n_envelope_rcpts = 1};
    assert_int_equal(parse(text, &mta, &msg), 0);
    assert_string_equal(msg.sender_ip, "203.0.113.9");
    assert_string_equal(msg.helo, "evil.example");
    assert_string_equal(msg.sender, "bounce@evil.example");
    assert_string_equal(msg.sender_domain, "evil.example");
    assert_int_equal(msg.envelope_rcpts.n, 1);
    assert_string_equal(msg.envelope_rcpts.v[0], "alice@example.com");
    message_clear(&msg);
}

static void test_idn_sender_and_ipv6_received(void **state)
{
    (void)state;
    const char *text = "Received: from client (client.example [IPv6:2001:db8::25])\n"
                       "  by mx.example with ESMTPS id abc\n"
                       "From: x@B\xc3\xbc" "cher.example\n"
                       "Subject: hi\n\nbody\n";
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    assert_string_equal(msg.sender_ip, "2001:db8::25");
    assert_string_equal(msg.sender_domain, "xn--bcher-kva.example");
    message_clear(&msg);
}

static void test_encodings_and_charsets(void **state)
{
    (void)state;
    const char *text =
        "From: a@example.com\n"
        "Subject: encodings\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"b1\"\n"
        "\n"
        "--b1\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Gr=FC=DFe, see http://qp.example.com/a-very-long-path/that-is-wrapped-by-the-soft-=\n"
        "line-break/index.html?x=3D1 now\n"
        "--b1\n"
        "Content-Type: text/html; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        /* <a href="http://b64.example.com/x?a=1&amp;b=2">http://text.example.net/</a> */
        "PGEgaHJlZj0iaHR0cDovL2I2NC5leGFtcGxlLmNvbS94P2E9MSZhbXA7Yj0yIj5odHRwOi8vdGV4\n"
        "dC5leGFtcGxlLm5ldC88L2E+\n"
        "--b1\n"
        "Content-Type: text/plain; charset=koi8-r\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "\xf0\xd2\xc9\xd7\xc5\xd4 http://\xd0\xd2\xc9\xcd\xc5\xd2.example/\n"
        "--b1--\n";
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    static const char *const urls[] = {
        "http://qp.example.com/a-very-long-path/that-is-wrapped-by-the-soft-line-break/index.html?x=1",
        "http://b64.example.com/x?a=1&b=2",
        "http://text.example.net/",
        "http://xn--e1afmkfd.example/",
    };
    assert_urls(&msg, urls, UTIL_ARRAY_LEN(urls));
    assert_int_equal(msg.n_attachments, 0);
    message_clear(&msg);
}

static void test_flowed_text(void **state)
{
    (void)state;
    const char *text = "From: a@example.com\n"
                       "Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\n"
                       "\n"
                       "Read https://flowed.example.com/some/long/pa \n"
                       "th/file today\n";
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    static const char *const urls[] = {"https://flowed.example.com/some/long/path/file"};
    assert_urls(&msg, urls, UTIL_ARRAY_LEN(urls));
    message_clear(&msg);
}

static void test_attachments_and_nested_message(void **state)
{
    (void)state;
    const char *text =
        "From: a@example.com\n"
        "Subject: nested\n"
        "Content-Type: multipart/mixed; boundary=outer\n"
        "\n"
        "--outer\n"
        "Content-Type: text/plain\n"
        "\n"
        "see attached\n"
        "--outer\n"
        "Content-Type: application/pdf; name=\"ignored.pdf\"\n"
        "Content-Disposition: attachment; filename*=UTF-8''Rechnung%20f%C3%BCr%20M%C3%A4rz.pdf\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "UERGLTEuNCBmYWtlIGludm9pY2U=\n"
        "--outer\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "From: inner@example.org\n"
        "Subject: inner http://subject.example/\n"
        "Content-Type: multipart/mixed; boundary=inner\n"
        "\n"
        "--inner\n"
        "Content-Type: text/html\n"
        "\n"
        "<p><a href=\"https://inner.example.org/login\">log in</a></p>\n"
        "--inner\n"
        "Content-Type: text/plain; name=notes.txt\n"
        "Content-Disposition: attachment; filename=notes.txt\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "aGVsbG8K\n"
        "--inner--\n"
        "--outer--\n";
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    assert_int_equal(msg.n_attachments, 2);
    assert_string_equal(msg.attachments[0].name, "Rechnung f\xc3\xbcr M\xc3\xa4rz.pdf");
    assert_string_equal(msg.attachments[0].content_type, "application/pdf");
    assert_int_equal(msg.attachments[0].size, 20);
    assert_string_equal(msg.attachments[0].sha256,
                        "5b13db5029ae558ce8119f0e5ac8066ce232a3a60cab279b4805ac6ce33c9f1b");
    assert_string_equal(msg.attachments[1].name, "notes.txt");
    assert_string_equal(msg.attachments[1].content_type, "text/plain");
    assert_int_equal(msg.attachments[1].size, 6);
    assert_string_equal(msg.attachments[1].sha256,
                        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    static const char *const urls[] = {"http://subject.example/", "https://inner.example.org/login"};
    assert_urls(&msg, urls, UTIL_ARRAY_LEN(urls));
    assert_true(msg.n_parts >= 6);
    message_clear(&msg);
}

static void test_wrapped_urls_keep_both_layers(void **state)
{
    (void)state;
    const char *text =
        "From: a@example.com\n"
        "Content-Type: text/html\n"
        "\n"
        "<a href=\"https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fphish.example.com%2Flogin&amp;data=x\">x</a>\n"
        "<p>analyst note: hxxp://evil[.]example/payload and BLOCKEDphish[.]cua[.]com/pathBLOCKED</p>\n";
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    static const char *const urls[] = {
        "https://eur01.safelinks.protection.outlook.com/?url=https://phish.example.com/login&data=x",
        "https://phish.example.com/login",
        "http://evil.example/payload",
        "http://phish.cua.com/path",
    };
    assert_urls(&msg, urls, UTIL_ARRAY_LEN(urls));
    message_clear(&msg);
}

static void test_redirector_targets(void **state)
{
    (void)state;
    /* a redirector's target in its query or path is an observable of its own */
    const char *text = "From: a@example.com\nContent-Type: text/html\n\n"
                       "<a href=\"http://rd.yahoo.com/dir/?http://61.129.81.74/remove/remove.htm\">x</a>\n"
                       "<a href=\"http://www.cnet.com/go/to?tag=st&amp;destURL=https%3A%2F%2Fevil.example%2Fp%3Fa%3D1&amp;x=2\">y</a>\n";
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    static const char *const urls[] = {
        "http://rd.yahoo.com/dir/?http://61.129.81.74/remove/remove.htm",
        "http://61.129.81.74/remove/remove.htm",
        "http://www.cnet.com/go/to?tag=st&destURL=https://evil.example/p?a=1&x=2",
        "https://evil.example/p?a=1",
    };
    assert_urls(&msg, urls, UTIL_ARRAY_LEN(urls));
    message_clear(&msg);
}

static void test_not_a_message(void **state)
{
    (void)state;
    message_t msg;
    char err[256];
    assert_int_equal(message_parse("", 0, NULL, &msg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty"));
    const char *binary = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    assert_int_equal(message_parse(binary, 16, NULL, &msg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "header"));
    assert_int_equal(message_parse("From nobody", 11, NULL, &msg, err, sizeof(err)), -1);
}

/* hostile inputs: each parses (or fails cleanly) and stays within the documented caps */
static char *build_nested(int depth)
{
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "From: a@example.com\nContent-Type: multipart/mixed; boundary=b0\n\n");
    for (int i = 1; i <= depth; i++)
        strbuf_appendf(&sb, "--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i - 1, i);
    strbuf_appendf(&sb, "--b%d\nContent-Type: text/plain\n\nhttp://deep.example/\n", depth);
    return strbuf_detach(&sb);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    char *text = build_nested(5000);
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    assert_true(msg.limits.n >= 1);
    assert_true(msg.n_parts <= MESSAGE_MAX_DEPTH + 2);
    message_clear(&msg);
    free(text);
}

static void test_many_tiny_parts(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n");
    for (int i = 0; i < 30000; i++)
        strbuf_appendf(&sb, "--x\nContent-Type: application/octet-stream\n\n%d\n", i);
    strbuf_appends(&sb, "--x--\n");
    message_t msg;
    assert_int_equal(parse(sb.data, NULL, &msg), 0);
    assert_int_equal(msg.n_parts, 30001); /* all walked: their URLs count */
    assert_int_equal(msg.n_attachments, MESSAGE_MAX_ATTACHMENTS);
    assert_true(msg.limits.n >= 1);
    message_clear(&msg);
    strbuf_release(&sb);
}

static void test_millions_of_boundaries(void **state)
{
    (void)state;
    /* past MESSAGE_MAX_BOUNDARY_LINES, GMime is not given the rest (it would build an object
     * per part); the rest is still searched as raw text */
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n");
    for (int i = 0; i < MESSAGE_MAX_BOUNDARY_LINES + 20000; i++)
        strbuf_appends(&sb, "--x\n\n.\n");
    strbuf_appends(&sb, "--x\nContent-Type: text/plain\n\nhttp://after-the-cut.example/\n--x--\n");
    message_t msg;
    assert_int_equal(parse(sb.data, NULL, &msg), 0);
    static const char *const urls[] = {"http://after-the-cut.example/"};
    assert_urls(&msg, urls, UTIL_ARRAY_LEN(urls));
    bool noted = false;
    for (size_t i = 0; i < msg.limits.n; i++)
        noted |= strstr(msg.limits.v[i], "boundary lines") != NULL;
    assert_true(noted);
    message_clear(&msg);
    strbuf_release(&sb);
}

static void test_dash_lines_are_not_boundaries(void **state)
{
    (void)state;
    /* a text part of many "--" lines must not push the real parts out of the MIME parse */
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "From: a@example.com\nContent-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\n"
                        "Content-Type: text/plain\n\n");
    for (int i = 0; i < MESSAGE_MAX_BOUNDARY_LINES + 10; i++)
        strbuf_appends(&sb, "--\n");
    strbuf_appends(&sb, "--zz\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n"
                        /* <a href="https://hidden.example/x">x</a> */
                        "PGEgaHJlZj0iaHR0cHM6Ly9oaWRkZW4uZXhhbXBsZS94Ij54PC9hPg==\n--zz--\n");
    message_t msg;
    assert_int_equal(parse(sb.data, NULL, &msg), 0);
    static const char *const urls[] = {"https://hidden.example/x"};
    assert_urls(&msg, urls, UTIL_ARRAY_LEN(urls));
    message_clear(&msg);
    strbuf_release(&sb);
}

static void test_spoofed_received_helo(void **state)
{
    (void)state;
    /* the HELO is the client's word; the address in the comment is the MTA's */
    const char *text = "Received: from [9.9.9.9] (unknown [203.0.113.7])\n  by mx.example with ESMTP\n"
                       "Received: from evil (helo=[8.8.8.8]) (192.0.2.44) by mx2.example\n"
                       "From: a@example.com\n\nbody\n";
    message_t msg;
    message_net_t trusted[1];
    assert_int_equal(message_net_parse("127.0.0.1/32", &trusted[0]), 0);
    assert_int_equal(parse(text, NULL, &msg), 0);
    assert_string_equal(msg.sender_ip, "203.0.113.7");
    message_clear(&msg);
    message_net_t first;
    assert_int_equal(message_net_parse("203.0.113.7", &first), 0);
    message_context_t ctx = {.trusted = &first, .n_trusted = 1};
    assert_int_equal(parse(text, &ctx, &msg), 0);
    assert_string_equal(msg.sender_ip, "192.0.2.44");
    message_clear(&msg);
}

static void test_review_regressions(void **state)
{
    (void)state;
    /* a redirector's target in its path; "(.)" in a path is not defanging; one bad byte in a
     * UTF-8 part keeps its IDN */
    const char *text = "From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\n"
                       "http://rd.example/r/https://evil.com/c \xff\n"
                       "https://example.com/wiki/Foo_(.)\n"
                       "https://b\xc3\xbc" "cher.de/x\n";
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    static const char *const urls[] = {
        "http://rd.example/r/https:/evil.com/c", "https://evil.com/c",
        "https://example.com/wiki/Foo_(.)", "https://example.com/wiki/Foo_.",
        "https://xn--bcher-kva.de/x",
    };
    assert_urls(&msg, urls, UTIL_ARRAY_LEN(urls));
    message_clear(&msg);
}

static void test_padding_does_not_push_out_links(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "From: a@example.com\nContent-Type: text/html\n\n<p>");
    for (int i = 0; i < 12000; i++)
        strbuf_appendf(&sb, "a%d.io http://p%d.io/ ", i, i);
    strbuf_appends(&sb, "</p><a href=\"https://evil-cap.com/x\">x</a>\n");
    message_t msg;
    assert_int_equal(parse(sb.data, NULL, &msg), 0);
    bool found = false;
    for (size_t i = 0; i < msg.urls.n; i++)
        found |= strcmp(msg.urls.v[i], "https://evil-cap.com/x") == 0;
    assert_true(found);
    assert_true(msg.urls.n <= MESSAGE_MAX_URLS);
    message_clear(&msg);
    strbuf_release(&sb);
}

static void test_garbage_bytes(void **state)
{
    (void)state;
    /* NUL bytes, invalid UTF-8, a broken base64 body and a 2 MB header still give a result */
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "From: a@example.com\nX-Huge: ");
    for (int i = 0; i < 2 * 1024 * 1024 / 8; i++)
        strbuf_appends(&sb, "abcdefg ");
    strbuf_appends(&sb, "\nSubject: \xff\xfe bad \xc3\x28 utf8\n"
                        "Content-Type: text/plain; charset=utf-8\n"
                        "Content-Transfer-Encoding: base64\n\n"
                        "!!!!****aHR0cDovL2Jyb2tlbi5leGFtcGxlLw==~~~~\n");
    strbuf_append(&sb, "\0\0\0http://after-nul.example/\n", 28);
    message_t msg;
    char err[256];
    assert_int_equal(message_parse(sb.data, sb.len, NULL, &msg, err, sizeof(err)), 0);
    assert_non_null(msg.subject);
    strbuf_t json;
    strbuf_init(&json, 0);
    assert_int_equal(message_to_json(&msg, &json), 0);
    assert_non_null(strstr(json.data, "\"subject\":"));
    strbuf_release(&json);
    message_clear(&msg);
    strbuf_release(&sb);
}

static void test_large_attachment_hashed(void **state)
{
    (void)state;
    /* 8 MB of base64 ("AAAA" decodes to three zero bytes): size and hash of the decoded bytes */
    size_t lines = 8 * 1024 * 1024 / 77;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, "From: a@example.com\nContent-Type: application/zip; name=big.zip\n"
                        "Content-Transfer-Encoding: base64\n\n");
    for (size_t i = 0; i < lines; i++)
        strbuf_appends(&sb, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    message_t msg;
    char err[256];
    assert_int_equal(message_parse(sb.data, sb.len, NULL, &msg, err, sizeof(err)), 0);
    assert_int_equal(msg.n_attachments, 1);
    assert_int_equal(msg.attachments[0].size, (int64_t)(lines * 57));
    assert_string_equal(msg.attachments[0].name, "big.zip");
    message_clear(&msg);
    strbuf_release(&sb);
}

static void test_json_shape(void **state)
{
    (void)state;
    const char *text = "Message-ID: <q\"uote@x>\nFrom: a@example.com\nSubject: tab\there\n\n"
                       "http://json.example/\n";
    message_t msg;
    assert_int_equal(parse(text, NULL, &msg), 0);
    strbuf_t json;
    strbuf_init(&json, 0);
    assert_int_equal(message_to_json(&msg, &json), 0);
    assert_non_null(strstr(json.data, "\"message_id\":\"q\\\"uote@x\""));
    assert_non_null(strstr(json.data, "\"subject\":\"tab here\""));
    assert_non_null(strstr(json.data, "\"urls\":[\"http://json.example/\"]"));
    assert_non_null(strstr(json.data, "\"attachments\":[]"));
    strbuf_release(&json);
    message_clear(&msg);
}

static void test_net_parse(void **state)
{
    (void)state;
    message_net_t net;
    assert_int_equal(message_net_parse("192.0.2.0/24", &net), 0);
    assert_int_equal(net.prefix, 24);
    assert_int_equal(message_net_parse("2001:db8::/32", &net), 0);
    assert_int_equal(message_net_parse("192.0.2.1", &net), 0);
    assert_int_equal(net.prefix, 32);
    assert_int_equal(message_net_parse("192.0.2.0/33", &net), -1);
    assert_int_equal(message_net_parse("example.com", &net), -1);
    assert_int_equal(message_net_parse("10.0.0.0/x", &net), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_idn_sender_and_ipv6_received),
        cmocka_unit_test(test_encodings_and_charsets),
        cmocka_unit_test(test_flowed_text),
        cmocka_unit_test(test_attachments_and_nested_message),
        cmocka_unit_test(test_wrapped_urls_keep_both_layers),
        cmocka_unit_test(test_redirector_targets),
        cmocka_unit_test(test_not_a_message),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_many_tiny_parts),
        cmocka_unit_test(test_millions_of_boundaries),
        cmocka_unit_test(test_dash_lines_are_not_boundaries),
        cmocka_unit_test(test_spoofed_received_helo),
        cmocka_unit_test(test_review_regressions),
        cmocka_unit_test(test_padding_does_not_push_out_links),
        cmocka_unit_test(test_garbage_bytes),
        cmocka_unit_test(test_large_attachment_hashed),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_net_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
