/*
 * test_text.c - hex digits and UTF-8 decoding/encoding, table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "text.h"
#include "util.h"

static void test_hex_value(void **state)
{
    (void)state;
    static const struct {
        unsigned char c;
        int want;
    } cases[] = {{'0', 0}, {'9', 9}, {'a', 10}, {'f', 15}, {'A', 10}, {'F', 15},
                 {'g', -1}, {'G', -1}, {'/', -1}, {':', -1}, {'@', -1}, {0, -1}, {0xFF, -1}};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++)
        assert_int_equal(text_hex_value(cases[i].c), cases[i].want);
}

static void test_utf8_decode(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n, want_len;
        uint32_t want_cp;
    } cases[] = {
        {"A", 1, 1, 'A'},
        {"\xC3\xA9", 2, 2, 0xE9},
        {"\xE2\x82\xAC", 3, 3, 0x20AC},
        {"\xF0\x9F\x98\x80", 4, 4, 0x1F600},
        {"\xF4\x8F\xBF\xBF", 4, 4, 0x10FFFF},
        {"\xC0\xAF", 2, 0, 0},         /* overlong */
        {"\xE0\x80\xAF", 3, 0, 0},     /* overlong */
        {"\xED\xA0\x80", 3, 0, 0},     /* surrogate */
        {"\xF4\x90\x80\x80", 4, 0, 0}, /* above U+10FFFF */
        {"\xE2\x82", 2, 0, 0},         /* truncated */
        {"\xC3(", 2, 0, 0},            /* bad continuation */
        {"\x80", 1, 0, 0},             /* lone continuation */
        {"\xFF", 1, 0, 0},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        uint32_t cp = 0;
        size_t len = text_utf8_decode((const unsigned char *)cases[i].in, cases[i].n, &cp);
        assert_int_equal(len, cases[i].want_len);
        if (len)
            assert_int_equal(cp, cases[i].want_cp);
    }
}

static void test_utf8_round_trip(void **state)
{
    (void)state;
    static const uint32_t cps[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cps); i++) {
        char buf[4];
        size_t n = text_utf8_encode(cps[i], buf);
        uint32_t back = 0xFFFFFFFF;
        assert_int_equal(text_utf8_decode((const unsigned char *)buf, n, &back), n);
        assert_int_equal(back, cps[i]);
    }
    char buf[4];
    assert_int_equal(text_utf8_encode(0x20AC, buf), 3);
    assert_memory_equal(buf, "\xE2\x82\xAC", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_value),
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_utf8_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
