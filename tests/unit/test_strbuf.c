/*
 * test_strbuf.c - unit tests for common/strbuf.c: appends, the hard maximum, JSON string
 * escaping (control characters, invalid UTF-8 -> U+FFFD) and detach.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "strbuf.h"

#define FFFD "\xEF\xBF\xBD"

static void test_append_basic(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    assert_null(sb.data);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.max, SIZE_MAX / 2);
    assert_int_equal(strbuf_append(&sb, "abc", 3), 0);
    assert_int_equal(strbuf_appends(&sb, "def"), 0);
    assert_int_equal(strbuf_append(&sb, "", 0), 0);
    assert_int_equal(strbuf_append(&sb, "g\0h", 3), 0); /* binary-safe */
    assert_int_equal(sb.len, 9);
    assert_memory_equal(sb.data, "abcdefg\0h", 10); /* plus the terminating NUL */
    assert_false(sb.overflow);
    strbuf_release(&sb);
    assert_null(sb.data);
    assert_int_equal(sb.len, 0);
}

static void test_append_grows(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    char expect[10000];
    for (size_t i = 0; i < sizeof(expect); i++) {
        char c = (char)('a' + i % 26);
        expect[i] = c;
        assert_int_equal(strbuf_append(&sb, &c, 1), 0);
        assert_int_equal(sb.len, i + 1);
        assert_true(sb.cap > sb.len);
        assert_int_equal(sb.data[sb.len], '\0');
    }
    assert_memory_equal(sb.data, expect, sizeof(expect));
    strbuf_release(&sb);
}

static void test_appendf(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    assert_int_equal(strbuf_appendf(&sb, "%d-%s", 42, "x"), 0);
    assert_int_equal(strbuf_appendf(&sb, "%s", ""), 0);
    assert_int_equal(strbuf_appendf(&sb, "|%05.1f|%c", 2.5, 'z'), 0);
    assert_string_equal(sb.data, "42-x|002.5|z");
    assert_int_equal(sb.len, strlen("42-x|002.5|z"));
    /* a long formatted string forces growth in the middle of a format */
    char big[3000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(strbuf_appendf(&sb, "[%s]", big), 0);
    assert_int_equal(sb.len, 12 + 2 + 2999);
    assert_int_equal(sb.data[12], '[');
    assert_int_equal(sb.data[sb.len - 1], ']');
    assert_int_equal(sb.data[sb.len], '\0');
    strbuf_release(&sb);
}

static void test_max_enforced(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 10);
    assert_int_equal(strbuf_append(&sb, "12345678", 8), 0);
    /* 8 + 3 > 10: refused, nothing appended */
    assert_int_equal(strbuf_append(&sb, "abc", 3), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 8);
    assert_string_equal(sb.data, "12345678");
    /* exactly reaching the maximum is allowed */
    assert_int_equal(strbuf_append(&sb, "ab", 2), 0);
    assert_int_equal(sb.len, 10);
    assert_string_equal(sb.data, "12345678ab");
    assert_int_equal(strbuf_append(&sb, "x", 1), -1);
    assert_int_equal(strbuf_appends(&sb, "x"), -1);
    assert_int_equal(sb.len, 10);
    /* an append of more than max on an empty buffer */
    strbuf_reset(&sb);
    assert_false(sb.overflow);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.data, "");
    assert_int_equal(strbuf_append(&sb, "0123456789A", 11), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.data, "");
    /* a huge n must not wrap around the check */
    assert_int_equal(strbuf_append(&sb, "x", SIZE_MAX), -1);
    assert_int_equal(sb.len, 0);
    strbuf_release(&sb);
    assert_int_equal(sb.max, 10); /* release keeps the maximum */
    assert_false(sb.overflow);
    assert_int_equal(strbuf_append(&sb, "0123456789A", 11), -1);
    strbuf_release(&sb);
}

static void test_appendf_max(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 8);
    assert_int_equal(strbuf_appendf(&sb, "%d", 1234), 0);
    assert_int_equal(strbuf_appendf(&sb, "%s", "56789"), -1); /* 4 + 5 > 8 */
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 4);
    assert_string_equal(sb.data, "1234");
    assert_int_equal(strbuf_appendf(&sb, "%s", "5678"), 0); /* exactly 8 */
    assert_string_equal(sb.data, "12345678");
    assert_int_equal(sb.len, 8);
    strbuf_release(&sb);
}

static void test_reset_keeps_storage(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    assert_int_equal(strbuf_appends(&sb, "hello world"), 0);
    char *data = sb.data;
    size_t cap = sb.cap;
    strbuf_reset(&sb);
    assert_ptr_equal(sb.data, data);
    assert_int_equal(sb.cap, cap);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.data, "");
    assert_int_equal(strbuf_appends(&sb, "x"), 0);
    assert_string_equal(sb.data, "x");
    strbuf_release(&sb);
}

static void test_detach(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 100);
    assert_int_equal(strbuf_appends(&sb, "payload"), 0);
    char *s = strbuf_detach(&sb);
    assert_string_equal(s, "payload");
    assert_null(sb.data);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.cap, 0);
    assert_int_equal(sb.max, 100);
    free(s);
    /* an empty buffer detaches as an allocated "" */
    char *e = strbuf_detach(&sb);
    assert_non_null(e);
    assert_string_equal(e, "");
    free(e);
    /* still usable */
    assert_int_equal(strbuf_appends(&sb, "again"), 0);
    assert_string_equal(sb.data, "again");
    strbuf_release(&sb);
}

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    const char *out;
} json_case_t;

#define J(name, in, out) {name, in, sizeof(in) - 1, out}

static const json_case_t JSON_CASES[] = {
    J("empty", "", "\"\""),
    J("plain", "hello", "\"hello\""),
    J("quote and backslash", "a\"b\\c", "\"a\\\"b\\\\c\""),
    J("newline tab cr", "l1\nl2\t\r", "\"l1\\u000al2\\u0009\\u000d\""),
    J("control chars", "\x01\x1f", "\"\\u0001\\u001f\""),
    J("embedded NUL", "a\0b", "\"a\\u0000b\""),
    J("DEL passes", "\x7f", "\"\x7f\""),
    J("slash passes", "a/b", "\"a/b\""),
    J("2-byte", "caf\xC3\xA9", "\"caf\xC3\xA9\""),
    J("3-byte", "\xE2\x82\xAC", "\"\xE2\x82\xAC\""),
    J("4-byte", "\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\""),
    J("max code point", "\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\""),
    J("lone continuation", "\x80", "\"" FFFD "\""),
    J("invalid 0xFF", "a\xFF" "b", "\"a" FFFD "b\""),
    J("invalid 0xF5", "\xF5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""),
    J("overlong 2-byte C0", "\xC0\xAF", "\"" FFFD FFFD "\""),
    J("overlong 2-byte C1", "\xC1\xBF", "\"" FFFD FFFD "\""),
    J("overlong 3-byte", "\xE0\x80\xAF", "\"" FFFD FFFD FFFD "\""),
    J("overlong 4-byte", "\xF0\x8F\xBF\xBF", "\"" FFFD FFFD FFFD FFFD "\""),
    J("surrogate high", "\xED\xA0\x80", "\"" FFFD FFFD FFFD "\""),
    J("surrogate low", "\xED\xBF\xBF", "\"" FFFD FFFD FFFD "\""),
    J("last before surrogates", "\xED\x9F\xBF", "\"\xED\x9F\xBF\""),
    J("above U+10FFFF", "\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""),
    J("truncated 2-byte at end", "x\xC3", "\"x" FFFD "\""),
    J("truncated 3-byte at end", "\xE2\x82", "\"" FFFD FFFD "\""),
    J("truncated 4-byte at end", "\xF0\x9F\x98", "\"" FFFD FFFD FFFD "\""),
    J("truncated 3-byte then ascii", "\xE2\x82" "A", "\"" FFFD FFFD "A\""),
    J("bad continuation then quote", "\xC3\"", "\"" FFFD "\\\"\""),
};

static void test_json_escape_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(JSON_CASES) / sizeof(JSON_CASES[0]); i++) {
        const json_case_t *c = &JSON_CASES[i];
        strbuf_t sb;
        strbuf_init(&sb, 0);
        assert_int_equal(strbuf_appends(&sb, "P:"), 0);
        if (strbuf_append_json_string(&sb, c->in, c->len) != 0)
            fail_msg("case '%s': append failed", c->name);
        if (strlen(sb.data) != sb.len || sb.len != 2 + strlen(c->out) || strcmp(sb.data + 2, c->out) != 0)
            fail_msg("case '%s': got [%s], expected [%s]", c->name, sb.data + 2, c->out);
        strbuf_release(&sb);
    }
}

/* Every byte value alone and every pair must produce output with no raw control byte and no
 * invalid UTF-8 (checked by re-escaping: a valid JSON body passes through unchanged). */
static void test_json_escape_exhaustive_pairs(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            char in[2] = {(char)a, (char)b};
            strbuf_t sb;
            strbuf_init(&sb, 0);
            assert_int_equal(strbuf_append_json_string(&sb, in, 2), 0);
            assert_true(sb.len >= 2);
            assert_int_equal(sb.data[0], '"');
            assert_int_equal(sb.data[sb.len - 1], '"');
            for (size_t i = 1; i + 1 < sb.len; i++)
                assert_true((unsigned char)sb.data[i] >= 0x20);
            /* the body contains no quote/backslash except escaped, and is valid UTF-8: escaping
             * the body again leaves every non-ASCII byte as it was */
            strbuf_t again;
            strbuf_init(&again, 0);
            assert_int_equal(strbuf_append_json_string(&again, sb.data + 1, sb.len - 2), 0);
            size_t hi1 = 0, hi2 = 0;
            for (size_t i = 0; i < sb.len; i++)
                hi1 += (unsigned char)sb.data[i] >= 0x80;
            for (size_t i = 0; i < again.len; i++)
                hi2 += (unsigned char)again.data[i] >= 0x80;
            assert_int_equal(hi1, hi2);
            strbuf_release(&again);
            strbuf_release(&sb);
        }
    }
}

static void test_json_escape_overflow_rolls_back(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 12);
    assert_int_equal(strbuf_appends(&sb, "abc"), 0);
    /* "\"\\u0001\\u0002\"" is 14 bytes: does not fit, nothing of it may remain */
    assert_int_equal(strbuf_append_json_string(&sb, "\x01\x02", 2), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 3);
    assert_string_equal(sb.data, "abc");
    /* one that fits: 3 + 8 = 11 <= 12 */
    sb.overflow = false;
    assert_int_equal(strbuf_append_json_string(&sb, "\x01", 1), 0);
    assert_string_equal(sb.data, "abc\"\\u0001\"");
    assert_int_equal(sb.len, 11);
    assert_false(sb.overflow);
    strbuf_release(&sb);
    /* a buffer that cannot even hold the opening quote */
    strbuf_init(&sb, 1);
    assert_int_equal(strbuf_append_json_string(&sb, "x", 1), -1);
    assert_int_equal(sb.len, 0);
    assert_true(sb.overflow);
    strbuf_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_basic),
        cmocka_unit_test(test_append_grows),
        cmocka_unit_test(test_appendf),
        cmocka_unit_test(test_max_enforced),
        cmocka_unit_test(test_appendf_max),
        cmocka_unit_test(test_reset_keeps_storage),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_json_escape_table),
        cmocka_unit_test(test_json_escape_exhaustive_pairs),
        cmocka_unit_test(test_json_escape_overflow_rolls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
