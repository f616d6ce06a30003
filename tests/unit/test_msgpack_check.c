/*
 * test_msgpack_check.c - unit tests for common/msgpack_check.c: a table of byte strings with
 * the expected verdict and reason, the depth and object limits, and a cross-check against
 * msgpack-c on pseudo-random inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "msgpack_check.h"

#define D MSGPACK_CHECK_DEFAULT_DEPTH
#define O MSGPACK_CHECK_DEFAULT_OBJECTS

#define OK NULL
#define TRUNC "truncated"
#define LEN "length exceeds the data"
#define COUNT "count exceeds the data"
#define DEEP "nested too deeply"
#define MANY "too many objects"
#define TRAIL "trailing bytes"
#define INVALID "invalid type byte"

typedef struct {
    const char *name;
    const char *bytes;
    size_t len;
    unsigned depth;
    size_t objects;
    const char *why; /* NULL: accepted */
} check_case_t;

/* C(name, "bytes", expected reason or OK) with the default limits */
#define C(name, bytes, why) {name, bytes, sizeof(bytes) - 1, D, O, why}
/* L(name, "bytes", depth, objects, why) with explicit limits */
#define L(name, bytes, depth, objects, why) {name, bytes, sizeof(bytes) - 1, depth, objects, why}

static const check_case_t CASES[] = {
    /* --- every fixed-size type, complete --- */
    C("positive fixint 0", "\x00", OK),
    C("positive fixint 127", "\x7f", OK),
    C("negative fixint -32", "\xe0", OK),
    C("negative fixint -1", "\xff", OK),
    C("nil", "\xc0", OK),
    C("false", "\xc2", OK),
    C("true", "\xc3", OK),
    C("uint8", "\xcc\xff", OK),
    C("uint16", "\xcd\x01\x00", OK),
    C("uint32", "\xce\x00\x01\x00\x00", OK),
    C("uint64", "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", OK),
    C("int8", "\xd0\x80", OK),
    C("int16", "\xd1\x80\x00", OK),
    C("int32", "\xd2\x80\x00\x00\x00", OK),
    C("int64", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", OK),
    C("float32", "\xca\x3f\x80\x00\x00", OK),
    C("float64", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", OK),
    /* --- fixed-size types with a byte missing --- */
    C("uint8 truncated", "\xcc", LEN),
    C("uint16 truncated", "\xcd\x01", LEN),
    C("uint32 truncated", "\xce\x00\x01\x00", LEN),
    C("uint64 truncated", "\xcf\x00\x00\x00\x01\x00\x00\x00", LEN),
    C("int8 truncated", "\xd0", LEN),
    C("int16 truncated", "\xd1\x80", LEN),
    C("int32 truncated", "\xd2\x80\x00\x00", LEN),
    C("int64 truncated", "\xd3\x80\x00\x00\x00\x00\x00\x00", LEN),
    C("float32 truncated", "\xca\x3f\x80\x00", LEN),
    C("float64 truncated", "\xcb\x3f\xf0\x00\x00\x00\x00\x00", LEN),
    /* --- strings --- */
    C("fixstr empty", "\xa0", OK),
    C("fixstr", "\xa3" "abc", OK),
    C("fixstr 31", "\xbf" "0123456789012345678901234567890", OK),
    C("fixstr longer than data", "\xa3" "ab", LEN),
    C("fixstr 31 longer than data", "\xbf" "012345678901234567890123456789", LEN),
    C("str8", "\xd9\x03" "abc", OK),
    C("str8 empty", "\xd9\x00", OK),
    C("str8 no length byte", "\xd9", TRUNC),
    C("str8 longer than data", "\xd9\x04" "abc", LEN),
    C("str8 255 with 3", "\xd9\xff" "abc", LEN),
    C("str16", "\xda\x00\x03" "abc", OK),
    C("str16 partial length", "\xda\x00", TRUNC),
    C("str16 longer than data", "\xda\x01\x00" "abc", LEN),
    C("str32", "\xdb\x00\x00\x00\x03" "abc", OK),
    C("str32 partial length", "\xdb\x00\x00\x00", TRUNC),
    C("str32 4G claimed", "\xdb\xff\xff\xff\xff" "abc", LEN),
    /* --- binary --- */
    C("bin8", "\xc4\x02\x00\xff", OK),
    C("bin8 longer than data", "\xc4\x05\x00", LEN),
    C("bin16", "\xc5\x00\x01\x00", OK),
    C("bin16 longer than data", "\xc5\x00\x02\x00", LEN),
    C("bin32", "\xc6\x00\x00\x00\x01\x00", OK),
    C("bin32 longer than data", "\xc6\x7f\xff\xff\xff\x00", LEN),
    /* --- ext types --- */
    C("fixext1", "\xd4\x01\xaa", OK),
    C("fixext1 truncated", "\xd4\x01", LEN),
    C("fixext2", "\xd5\x01\xaa\xbb", OK),
    C("fixext2 truncated", "\xd5\x01\xaa", LEN),
    C("fixext4", "\xd6\x01\x00\x00\x00\x00", OK),
    C("fixext4 truncated", "\xd6\x01\x00\x00\x00", LEN),
    C("fixext8", "\xd7\xff\x00\x00\x00\x00\x00\x00\x00\x00", OK),
    C("fixext8 truncated", "\xd7\xff\x00\x00\x00\x00\x00\x00\x00", LEN),
    C("fixext16", "\xd8\x05" "0123456789abcdef", OK),
    C("fixext16 truncated", "\xd8\x05" "0123456789abcde", LEN),
    C("ext8", "\xc7\x02\x05\xaa\xbb", OK),
    C("ext8 empty", "\xc7\x00\x05", OK),
    C("ext8 no type byte", "\xc7\x00", LEN),
    C("ext8 no length", "\xc7", TRUNC),
    C("ext8 longer than data", "\xc7\x03\x05\xaa\xbb", LEN),
    C("ext16", "\xc8\x00\x02\x05\xaa\xbb", OK),
    C("ext16 longer than data", "\xc8\x01\x00\x05\xaa\xbb", LEN),
    C("ext32", "\xc9\x00\x00\x00\x02\x05\xaa\xbb", OK),
    C("ext32 4G claimed", "\xc9\xff\xff\xff\xff\x05\xaa\xbb", LEN),
    /* --- arrays --- */
    C("fixarray empty", "\x90", OK),
    C("fixarray 2", "\x92\x01\x02", OK),
    C("fixarray count exceeds data", "\x93\x01\x02", COUNT),
    C("fixarray 15 with nothing", "\x9f", COUNT),
    C("array16", "\xdc\x00\x02\x01\x02", OK),
    C("array16 empty", "\xdc\x00\x00", OK),
    C("array16 partial header", "\xdc\x00", TRUNC),
    C("array16 count exceeds data", "\xdc\x00\x05\x01", COUNT),
    C("array32", "\xdd\x00\x00\x00\x02\x01\x02", OK),
    C("array32 4G elements claimed", "\xdd\xff\xff\xff\xff", COUNT),
    C("array32 4G elements, some data", "\xdd\xff\xff\xff\xff\x01\x02\x03", COUNT),
    C("array element truncated", "\x92\x01\xcd\x00", LEN),
    C("array of str longer than data", "\x91\xa5" "abc", LEN),
    /* --- maps --- */
    C("fixmap empty", "\x80", OK),
    C("fixmap 1", "\x81\xa1" "k" "\x01", OK),
    C("fixmap missing value", "\x81\xa1" "k", TRUNC),
    C("fixmap 2 pairs, 3 bytes", "\x82\x01\x02\x03", COUNT),
    C("map16", "\xde\x00\x01\xa1" "k" "\x01", OK),
    C("map16 count exceeds data", "\xde\x00\x02\xa1" "k" "\x01", COUNT),
    C("map32", "\xdf\x00\x00\x00\x01\xa1" "k" "\x01", OK),
    C("map32 4G pairs claimed", "\xdf\xff\xff\xff\xff", COUNT),
    C("map32 2G pairs, 8G children", "\xdf\x80\x00\x00\x00\x01\x01", COUNT),
    C("non-string key accepted", "\x81\x01\x02", OK),
    C("container key accepted", "\x81\x91\x01\x80", OK),
    /* --- valid nested structures --- */
    C("nested map/array", "\x82\xa1" "a" "\x92\x01\x93\xc0\xc2\xc3\xa1" "b" "\x81\xa1" "c" "\x80", OK),
    C("array of maps", "\x92\x81\xa1" "x" "\x01\x81\xa1" "y" "\xa2" "zz", OK),
    C("empty containers in array", "\x93\x90\x80\x91\x90", OK),
    /* --- whole-buffer rules --- */
    C("empty input", "", TRUNC),
    C("invalid byte 0xc1", "\xc1", INVALID),
    C("invalid byte 0xc1 inside array", "\x92\x01\xc1", INVALID),
    C("invalid byte 0xc1 as map key", "\x81\xc1\x01", INVALID),
    C("trailing byte after scalar", "\x01\x02", TRAIL),
    C("trailing byte after array", "\x91\x01\x00", TRAIL),
    C("trailing byte after map", "\x80\x80", TRAIL),
    C("two complete strings", "\xa1" "a" "\xa1" "b", TRAIL),
    /* --- nesting --- */
    L("depth 1: scalar, limit 0", "\x01", 0, O, OK),
    L("depth 1: array, limit 0", "\x91\x01", 0, O, DEEP),
    L("depth 1: array, limit 1", "\x91\x01", 1, O, OK),
    L("depth 2: limit 1", "\x91\x91\x01", 1, O, DEEP),
    L("depth 2: limit 2", "\x91\x91\x01", 2, O, OK),
    L("depth 3 of maps, limit 2", "\x81\x01\x81\x01\x81\x01\x01", 2, O, DEEP),
    L("depth 3 of maps, limit 3", "\x81\x01\x81\x01\x81\x01\x01", 3, O, OK),
    L("depth 8 arrays, limit 8", "\x91\x91\x91\x91\x91\x91\x91\x91\x01", 8, O, OK),
    L("depth 9 arrays, limit 8", "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x01", 8, O, DEEP),
    L("depth 8 with an empty innermost array, limit 8", "\x91\x91\x91\x91\x91\x91\x91\x90", 8, O, OK),
    L("depth 9 with an empty innermost array, limit 8", "\x91\x91\x91\x91\x91\x91\x91\x91\x90", 8, O, DEEP),
    L("depth 9 with an empty innermost map, limit 8", "\x91\x91\x91\x91\x91\x91\x91\x91\x80", 8, O, DEEP),
    L("empty array, limit 0", "\x90", 0, O, DEEP),
    L("empty array, limit 1", "\x90", 1, O, OK),
    L("depth 2 reached again after returning", "\x92\x91\x01\x91\x91\x01", 2, O, DEEP),
    L("siblings do not add depth", "\x93\x91\x01\x91\x01\x91\x01", 2, O, OK),
    /* --- object count --- */
    L("4 objects, limit 4", "\x93\x01\x02\x03", D, 4, OK),
    L("4 objects, limit 3", "\x93\x01\x02\x03", D, 3, MANY),
    L("map counts keys and values", "\x82\x01\x02\x03\x04", D, 4, MANY),
    L("map counts keys and values, enough", "\x82\x01\x02\x03\x04", D, 5, OK),
    L("one scalar, limit 1", "\x01", D, 1, OK),
    L("one scalar, limit 0", "\x01", D, 0, MANY),
};

static void test_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const check_case_t *c = &CASES[i];
        const char *why = NULL;
        int rc = msgpack_check(c->bytes, c->len, c->depth, c->objects, &why);
        int want = c->why ? -1 : 0;
        if (rc != want) {
            print_error("case '%s': returned %d, expected %d (why: %s)\n", c->name, rc, want, why ? why : "(null)");
            failures++;
            continue;
        }
        if (c->why && (!why || strcmp(why, c->why) != 0)) {
            print_error("case '%s': reason '%s', expected '%s'\n", c->name, why ? why : "(null)", c->why);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* Whatever the checker accepts, msgpack-c must unpack completely (the checker is a gate in
 * front of msgpack-c, so it must not accept what msgpack-c would choke on). */
static void test_accepted_cases_unpack(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const check_case_t *c = &CASES[i];
        if (c->why)
            continue;
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        msgpack_unpack_return r = msgpack_unpack_next(&u, c->bytes, c->len, &off);
        if (r != MSGPACK_UNPACK_SUCCESS || off != c->len)
            fail_msg("case '%s': msgpack-c returned %d, consumed %zu of %zu", c->name, (int)r, off, c->len);
        msgpack_unpacked_destroy(&u);
    }
}

/* A hostile 5-byte header must be answered from the header alone: the check reads no more than
 * the buffer (ASan would see it) and rejects in far less than the time a walk would take. */
static void test_hostile_headers(void **state)
{
    (void)state;
    static const unsigned char heads[][5] = {
        {0xdd, 0xff, 0xff, 0xff, 0xff}, /* array32 */
        {0xdf, 0xff, 0xff, 0xff, 0xff}, /* map32 */
        {0xdb, 0xff, 0xff, 0xff, 0xff}, /* str32 */
        {0xc6, 0xff, 0xff, 0xff, 0xff}, /* bin32 */
        {0xc9, 0xff, 0xff, 0xff, 0xff}, /* ext32 (needs a type byte too) */
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        char *buf = malloc(5); /* exact size so ASan catches any read beyond */
        assert_non_null(buf);
        memcpy(buf, heads[i], 5);
        const char *why = NULL;
        assert_int_equal(msgpack_check(buf, 5, D, O, &why), -1);
        assert_non_null(why);
        assert_true(strcmp(why, COUNT) == 0 || strcmp(why, LEN) == 0 || strcmp(why, TRUNC) == 0);
        free(buf);
    }
}

/* Every proper prefix of a valid nested encoding is rejected, reading only the prefix. */
static void test_prefixes_rejected(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "list", 4);
    msgpack_pack_array(&pk, 20);
    for (int i = 0; i < 20; i++)
        msgpack_pack_int64(&pk, (int64_t)i * 1000003 - 7);
    msgpack_pack_str_with_body(&pk, "bin", 3);
    msgpack_pack_bin_with_body(&pk, "\x00\x01\x02", 3);
    msgpack_pack_str_with_body(&pk, "f", 1);
    msgpack_pack_double(&pk, 1.5);
    const char *why;
    assert_int_equal(msgpack_check(sb.data, sb.size, D, O, &why), 0);
    for (size_t n = 0; n < sb.size; n++) {
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, sb.data, n);
        if (msgpack_check(copy, n, D, O, &why) != -1)
            fail_msg("prefix of %zu bytes of %zu accepted", n, sb.size);
        free(copy);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* xorshift32 - a fixed-seed generator so failures reproduce. */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Pseudo-random short buffers over an alphabet rich in headers: the checker never crashes and
 * agrees with msgpack-c (accepted => msgpack-c parses exactly the whole buffer; msgpack-c parses
 * the whole buffer => accepted, given limits that cannot be reached in 16 bytes). Buffers
 * rejected for a count exceeding the data are not given to msgpack-c. */
static void test_random_agrees_with_msgpack_c(void **state)
{
    (void)state;
    static const unsigned char alphabet[] = {0x00, 0x01, 0x7f, 0xe0, 0xff, 0xc0, 0xc1, 0xc2, 0xc3, 0xa0, 0xa1, 0xa2,
                                             0xbf, 0x90, 0x91, 0x92, 0x9f, 0x80, 0x81, 0x82, 0x8f, 0xcc, 0xcd, 0xce,
                                             0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xca, 0xcb, 0xd9, 0xda, 0xdb, 0xc4, 0xc5,
                                             0xc6, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9, 0xdc, 0xdd, 0xde,
                                             0xdf};
    uint32_t seed = 0x12345678u;
    unsigned accepted = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = rng_next(&seed) % 16;
        char *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        for (size_t i = 0; i < len; i++) {
            uint32_t r = rng_next(&seed);
            buf[i] = (char)((r & 0x100) ? alphabet[(r >> 9) % sizeof(alphabet)] : (r & 0x03));
        }
        const char *why = NULL;
        int rc = msgpack_check(buf, len, 32, O, &why);
        assert_true(rc == 0 || rc == -1);
        assert_non_null(why);
        if (rc < 0 && strcmp(why, COUNT) == 0) {
            /* A count larger than the bytes left can never be satisfied, and msgpack-c would
             * allocate for the count before finding that out (the very thing the check is for):
             * do not hand it these. */
            free(buf);
            continue;
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        msgpack_unpack_return r = len ? msgpack_unpack_next(&u, buf, len, &off) : MSGPACK_UNPACK_CONTINUE;
        bool whole = r == MSGPACK_UNPACK_SUCCESS && off == len;
        msgpack_unpacked_destroy(&u);
        if ((rc == 0) != whole) {
            char hex[64] = "";
            for (size_t i = 0; i < len; i++)
                snprintf(hex + 2 * i, 3, "%02x", (unsigned char)buf[i]);
            fail_msg("disagreement on %s: check %d (%s), msgpack-c %d consumed %zu", hex, rc, why, (int)r, off);
        }
        accepted += rc == 0;
        free(buf);
    }
    assert_true(accepted > 1000); /* the generator does exercise the accepting paths */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_accepted_cases_unpack),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_prefixes_rejected),
        cmocka_unit_test(test_random_agrees_with_msgpack_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
