/*
 * test_strbuf.c - unit tests for common/strbuf.c: appends, the hard maximum, JSON string
 * escaping (control characters, invalid UTF-8 -> U+FFFD), detach, and the printf-free
 * appends (strbuf_append_int, strbuf_appendv).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* ---------------------------------------------------------------- strbuf_append_int */

static const struct {
    int64_t v;
    const char *text;
} INT_CASES[] = {
    {0, "0"},
    {1, "1"},
    {-1, "-1"},
    {9, "9"},
    {10, "10"},
    {-10, "-10"},
    {100, "100"},
    {-99, "-99"},
    {123456789, "123456789"},
    {INT64_C(1000000000000), "1000000000000"},
    {INT64_C(-4000000000), "-4000000000"},
    {INT64_MAX, "9223372036854775807"},
    {INT64_MAX - 1, "9223372036854775806"},
    {INT64_MIN, "-9223372036854775808"},
    {INT64_MIN + 1, "-9223372036854775807"},
};

static void test_append_escaped(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    assert_int_equal(strbuf_append_escaped(&sb, "aZ09-._~ +/=@'\xc3\xa9", NULL), 0);
    assert_string_equal(sb.data, "aZ09-._~%20%2B%2F%3D%40%27%C3%A9");
    strbuf_reset(&sb);
    assert_int_equal(strbuf_append_escaped(&sb, "soc@x.example/a", "@"), 0);
    assert_string_equal(sb.data, "soc@x.example%2Fa");
    strbuf_release(&sb);
    /* past the maximum: -1, and what fit stays */
    strbuf_init(&sb, 4);
    assert_int_equal(strbuf_append_escaped(&sb, "ab c", NULL), -1);
    assert_string_equal(sb.data, "ab");
    strbuf_release(&sb);
}

static void test_append_int_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(INT_CASES) / sizeof(INT_CASES[0]); i++) {
        strbuf_t sb;
        strbuf_init(&sb, 0);
        if (strbuf_append_int(&sb, INT_CASES[i].v) != 0)
            fail_msg("%s: refused", INT_CASES[i].text);
        if (sb.len != strlen(INT_CASES[i].text) || strcmp(sb.data, INT_CASES[i].text) != 0)
            fail_msg("%s: got [%s] (%zu bytes)", INT_CASES[i].text, sb.data, sb.len);
        assert_false(sb.overflow);
        strbuf_release(&sb);
    }
}

/* Every power of ten and its neighbours, both signs, agree with printf. */
static void test_append_int_matches_printf(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    char want[32];
    int64_t p = 1;
    for (int e = 0; e <= 18; e++) {
        if (e > 0)
            p *= 10; /* 10^18 is the last power that fits: no overflow past it */
        const int64_t values[] = {p - 1, p, p + 1, -(p - 1), -p, -(p + 1)};
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            strbuf_reset(&sb);
            assert_int_equal(strbuf_append_int(&sb, values[i]), 0);
            int n = snprintf(want, sizeof(want), "%" PRId64, values[i]);
            assert_int_equal(sb.len, (size_t)n);
            assert_string_equal(sb.data, want);
        }
    }
    strbuf_release(&sb);
}

/* Appended after existing text (and binary text), never replacing it. */
static void test_append_int_after_text(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    assert_int_equal(strbuf_appends(&sb, "n="), 0);
    assert_int_equal(strbuf_append_int(&sb, -42), 0);
    assert_int_equal(strbuf_append(&sb, " m=\0", 4), 0);
    assert_int_equal(strbuf_append_int(&sb, 0), 0);
    assert_int_equal(strbuf_append_int(&sb, INT64_MIN), 0);
    assert_int_equal(strbuf_append_int(&sb, INT64_MAX), 0);
    static const char want[] = "n=-42 m=\0" "0-92233720368547758089223372036854775807";
    assert_int_equal(sb.len, sizeof(want) - 1);
    assert_memory_equal(sb.data, want, sizeof(want)); /* with the terminating NUL */
    strbuf_release(&sb);
}

/* strbuf_append_int keeps strbuf_append's contract: a number that does not fit whole is
 * refused (-1), nothing of it is appended, overflow is set; exactly max is allowed. */
static void test_append_int_max(void **state)
{
    (void)state;
    strbuf_t sb;
    /* INT64_MIN is 20 bytes: fits a max of 20 exactly, not 19 */
    strbuf_init(&sb, 20);
    assert_int_equal(strbuf_append_int(&sb, INT64_MIN), 0);
    assert_int_equal(sb.len, 20);
    assert_string_equal(sb.data, "-9223372036854775808");
    assert_false(sb.overflow);
    assert_int_equal(strbuf_append_int(&sb, 0), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 20);
    assert_string_equal(sb.data, "-9223372036854775808");
    strbuf_release(&sb);

    strbuf_init(&sb, 19);
    assert_int_equal(strbuf_append_int(&sb, INT64_MIN), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 0);
    assert_null(sb.data); /* not even allocated */
    assert_int_equal(strbuf_append_int(&sb, INT64_MAX), 0); /* 19 bytes: exactly max */
    assert_string_equal(sb.data, "9223372036854775807");
    strbuf_release(&sb);

    /* after text: "ab" + "-1" > 3 is refused, "ab" + "7" fits exactly */
    strbuf_init(&sb, 3);
    assert_int_equal(strbuf_appends(&sb, "ab"), 0);
    assert_int_equal(strbuf_append_int(&sb, -1), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 2);
    assert_string_equal(sb.data, "ab");
    assert_int_equal(strbuf_append_int(&sb, 10), -1);
    assert_string_equal(sb.data, "ab");
    assert_int_equal(strbuf_append_int(&sb, 7), 0);
    assert_int_equal(sb.len, 3);
    assert_string_equal(sb.data, "ab7");
    assert_true(sb.overflow); /* stays set until a reset */
    strbuf_release(&sb);
}

/* ---------------------------------------------------------------- strbuf_appendv */

static void test_appendv(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    /* no parts: nothing appended, not even storage */
    assert_int_equal(strbuf_appendv(&sb, NULL, 0), 0);
    assert_int_equal(sb.len, 0);
    assert_null(sb.data);
    static const char *const parts[] = {"key", "=", "", "value", ";"};
    assert_int_equal(strbuf_appendv(&sb, parts, 5), 0);
    assert_int_equal(sb.len, 10);
    assert_string_equal(sb.data, "key=value;");
    /* after existing text, and a prefix of the array */
    assert_int_equal(strbuf_appendv(&sb, parts, 2), 0);
    assert_string_equal(sb.data, "key=value;key=");
    /* only empty parts */
    static const char *const empties[] = {"", "", ""};
    assert_int_equal(strbuf_appendv(&sb, empties, 3), 0);
    assert_int_equal(sb.len, 14);
    assert_string_equal(sb.data, "key=value;key=");
    assert_false(sb.overflow);
    /* a long part forces growth in the middle of the vector */
    char big[5000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *const grow[] = {"<", big, ">"};
    assert_int_equal(strbuf_appendv(&sb, grow, 3), 0);
    assert_int_equal(sb.len, 14 + 1 + 4999 + 1);
    assert_int_equal(sb.data[14], '<');
    assert_int_equal(sb.data[15], 'z');
    assert_int_equal(sb.data[sb.len - 2], 'z');
    assert_int_equal(sb.data[sb.len - 1], '>');
    assert_int_equal(sb.data[sb.len], '\0');
    strbuf_release(&sb);
}

/* strbuf_appendv against the maximum: parts that fit exactly are appended; a vector whose
 * first part does not fit appends nothing. */
static void test_appendv_max(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 10);
    assert_int_equal(strbuf_appends(&sb, "12345"), 0);
    static const char *const fit[] = {"ab", "", "cde"};
    assert_int_equal(strbuf_appendv(&sb, fit, 3), 0); /* 5 + 5 = 10: exactly max */
    assert_int_equal(sb.len, 10);
    assert_string_equal(sb.data, "12345abcde");
    assert_false(sb.overflow);
    static const char *const one[] = {"x"};
    assert_int_equal(strbuf_appendv(&sb, one, 1), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 10);
    assert_string_equal(sb.data, "12345abcde");
    /* the first part alone is over max */
    strbuf_reset(&sb);
    static const char *const first_too_big[] = {"0123456789A", "b"};
    assert_int_equal(strbuf_appendv(&sb, first_too_big, 2), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.data, "");
    strbuf_release(&sb);
}

/* A vector whose later part would pass the maximum appends nothing (as every append): -1,
 * overflow set, the buffer as it was. */
static void test_appendv_over_max_partial(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 10);
    assert_int_equal(strbuf_appends(&sb, "12345"), 0);
    static const char *const parts[] = {"ab", "cd", "ef"}; /* 7, 9, then 11 > 10 */
    assert_int_equal(strbuf_appendv(&sb, parts, 3), -1);
    assert_true(sb.overflow);
    assert_int_equal(sb.len, 5);
    assert_string_equal(sb.data, "12345");
    assert_true(sb.len <= sb.max);
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
        cmocka_unit_test(test_append_escaped),
        cmocka_unit_test(test_append_int_table),
        cmocka_unit_test(test_append_int_matches_printf),
        cmocka_unit_test(test_append_int_after_text),
        cmocka_unit_test(test_append_int_max),
        cmocka_unit_test(test_appendv),
        cmocka_unit_test(test_appendv_max),
        cmocka_unit_test(test_appendv_over_max_partial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
