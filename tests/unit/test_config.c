/*
 * test_config.c - unit tests for common/config.c: defaults, loading, typed values, error
 * messages with file and line, config_set, the example file, config_destroy.
 *
 * config.c is included rather than linked so its static value parsers can be tested too
 * (no key is of type BOOL yet, so parse_bool is reachable no other way). The library's copy of
 * config.o is then not linked in: every config_* symbol is already defined here.
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

#include "config.c"

#define EXAMPLE_PATH "deploy/clawback.conf.example"

/* ---- helpers ---- */

/* write_temp - a new temporary file holding len bytes of content; returns its path (free it). */
static char *write_temp(const char *content, size_t len)
{
    char *path = strdup("/tmp/clawback-test-config-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* load_text - config_load a temporary file holding text; the path is returned in *pathp. */
static int load_text(config_t *cfg, const char *text, char **pathp, char *err, size_t errsize)
{
    char *path = write_temp(text, strlen(text));
    err[0] = '\0';
    int rc = config_load(cfg, path, err, errsize);
    unlink(path);
    *pathp = path;
    return rc;
}

/* example_text - what config_write_example() writes, as a string (free it). */
static char *example_text(size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    config_write_example(f);
    assert_int_equal(fclose(f), 0);
    *len = size;
    return buf;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t size = 0, cap = 0, n;
    do {
        if (size + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + size, 1, cap - size, f);
        size += n;
    } while (n > 0);
    fclose(f);
    *len = size;
    return buf;
}

/* Compare two configurations member by member, generated from CONFIG_KEYS. */
static void cmp_value_str(const char *member, const char *a, const char *b)
{
    if (!a || !b || strcmp(a, b) != 0)
        fail_msg("%s: '%s' != '%s'", member, a ? a : "(null)", b ? b : "(null)");
}
static void cmp_value_int(const char *member, int64_t a, int64_t b)
{
    if (a != b)
        fail_msg("%s: %lld != %lld", member, (long long)a, (long long)b);
}
#define CMP_STR(m, a, b) cmp_value_str(m, a, b)
#define CMP_REDIS_URL(m, a, b) cmp_value_str(m, a, b)
#define CMP_INT(m, a, b) cmp_value_int(m, a, b)
#define CMP_DURATION(m, a, b) cmp_value_int(m, a, b)
#define CMP_SIZE(m, a, b) cmp_value_int(m, a, b)
#define CMP_BOOL(m, a, b) cmp_value_int(m, a, b)
#define CMP_LEVEL(m, a, b) cmp_value_int(m, (int64_t)(a), (int64_t)(b))
#define CMP_MEMBER(section, key, type, member, def, min, max, doc) CMP_##type(#member, a->member, b->member);

static void cmp_config(const config_t *a, const config_t *b)
{
    CONFIG_KEYS(CMP_MEMBER)
}

/* expect_load_error - loading text fails with "PATH:LINE: " then a message containing sub. */
static void expect_load_error(const char *name, const char *text, int line, const char *sub)
{
    config_t *cfg = config_new();
    char err[512], *path;
    int rc = load_text(cfg, text, &path, err, sizeof(err));
    if (rc != -1)
        fail_msg("case '%s': loaded without error", name);
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("case '%s': error '%s' does not start with '%s'", name, err, prefix);
    if (sub && !strstr(err, sub))
        fail_msg("case '%s': error '%s' does not mention '%s'", name, err, sub);
    assert_null(cfg->path); /* a failed load does not claim the file */
    free(path);
    config_destroy(&cfg);
}

static void expect_load_ok(const char *name, const char *text, config_t *cfg)
{
    char err[512], *path;
    if (load_text(cfg, text, &path, err, sizeof(err)) != 0)
        fail_msg("case '%s': %s", name, err);
    assert_non_null(cfg->path);
    assert_string_equal(cfg->path, path);
    free(path);
}

/* ---- tests ---- */

static void test_defaults(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    assert_non_null(cfg);
    assert_string_equal(cfg->log_file, "-");
    assert_string_equal(cfg->log_json_file, "");
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg->redis_password_file, "");
    assert_int_equal(cfg->redis_timeout_ms, 2000);
    assert_string_equal(cfg->bus_bind, "tcp://127.0.0.1:*");
    assert_string_equal(cfg->bus_advertise, "");
    assert_int_equal(cfg->bus_capacity, 64);
    assert_int_equal(cfg->bus_ack_timeout_ms, 30000);
    assert_int_equal(cfg->bus_heartbeat_ms, 1000);
    assert_int_equal(cfg->bus_max_waiting, 100000);
    assert_int_equal(cfg->bus_max_record, 1048576);
    assert_int_equal(cfg->bus_dedup_window_ms, 8LL * 86400000);
    assert_null(cfg->path);
    config_destroy(&cfg);
}

static void test_load_sets_values(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    expect_load_ok("every key", "# a comment\n"
                                "; another comment\n"
                                "\n"
                                "[log]\n"
                                "file = /var/log/clawback/clawback.log\n"
                                "json_file=/var/log/clawback/clawback.json\n"
                                "level   =   debug   ; inline comment\n"
                                "[redis]\n"
                                "url = redis://:s3cret@db.example.com:6380/3\n"
                                "password_file = /etc/clawback/redis.pw\n"
                                "timeout = 250ms\n"
                                "\n"
                                "[bus]\n"
                                "bind = tcp://0.0.0.0:5555\n"
                                "advertise = tcp://10.0.0.5:5555\n"
                                "capacity = 128\n"
                                "ack_timeout = 5m\n"
                                "heartbeat = 2s\n"
                                "max_waiting = 5000\n"
                                "max_record = 64k\n"
                                "dedup_window: 7d\n",
                   cfg);
    assert_string_equal(cfg->log_file, "/var/log/clawback/clawback.log");
    assert_string_equal(cfg->log_json_file, "/var/log/clawback/clawback.json");
    assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(cfg->redis_url, "redis://:s3cret@db.example.com:6380/3");
    assert_string_equal(cfg->redis_password_file, "/etc/clawback/redis.pw");
    assert_int_equal(cfg->redis_timeout_ms, 250);
    assert_string_equal(cfg->bus_bind, "tcp://0.0.0.0:5555");
    assert_string_equal(cfg->bus_advertise, "tcp://10.0.0.5:5555");
    assert_int_equal(cfg->bus_capacity, 128);
    assert_int_equal(cfg->bus_ack_timeout_ms, 300000);
    assert_int_equal(cfg->bus_heartbeat_ms, 2000);
    assert_int_equal(cfg->bus_max_waiting, 5000);
    assert_int_equal(cfg->bus_max_record, 65536);
    assert_int_equal(cfg->bus_dedup_window_ms, 7LL * 86400000);

    /* a second file changes only what it names */
    expect_load_ok("partial", "[bus]\ncapacity = 3\n", cfg);
    assert_int_equal(cfg->bus_capacity, 3);
    assert_int_equal(cfg->bus_heartbeat_ms, 2000);
    assert_string_equal(cfg->log_file, "/var/log/clawback/clawback.log");
    /* an empty value is an empty string */
    expect_load_ok("empty value", "[log]\nfile =\n", cfg);
    assert_string_equal(cfg->log_file, "");
    /* the last of two assignments wins */
    expect_load_ok("twice", "[bus]\ncapacity = 5\ncapacity = 6\n", cfg);
    assert_int_equal(cfg->bus_capacity, 6);
    /* an empty file is fine */
    expect_load_ok("empty file", "", cfg);
    config_destroy(&cfg);
}

static void test_load_line_endings(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    expect_load_ok("CRLF", "[bus]\r\ncapacity = 77\r\nheartbeat = 3s\r\n", cfg);
    assert_int_equal(cfg->bus_capacity, 77);
    assert_int_equal(cfg->bus_heartbeat_ms, 3000);
    expect_load_ok("no final newline", "[bus]\ncapacity = 78", cfg);
    assert_int_equal(cfg->bus_capacity, 78);
    expect_load_ok("UTF-8 BOM", "\xEF\xBB\xBF[bus]\ncapacity = 79\n", cfg);
    assert_int_equal(cfg->bus_capacity, 79);
    config_destroy(&cfg);
}

typedef struct {
    const char *section, *key, *value;
    int64_t expect; /* -1: rejected */
} set_case_t;

static void run_set_cases(const set_case_t *cases, size_t n, size_t offset)
{
    for (size_t i = 0; i < n; i++) {
        const set_case_t *c = &cases[i];
        config_t *cfg = config_new();
        int64_t before = *(int64_t *)((char *)cfg + offset);
        char err[256] = "";
        int rc = config_set(cfg, c->section, c->key, c->value, err, sizeof(err));
        int64_t got = *(int64_t *)((char *)cfg + offset);
        if (c->expect < 0) {
            if (rc != -1)
                fail_msg("[%s] %s = '%s': accepted as %lld", c->section, c->key, c->value, (long long)got);
            if (got != before)
                fail_msg("[%s] %s = '%s': value changed by a rejected set", c->section, c->key, c->value);
            if (!strstr(err, c->key) || !strstr(err, c->value))
                fail_msg("[%s] %s = '%s': error '%s' names neither key nor value", c->section, c->key, c->value, err);
        } else {
            if (rc != 0)
                fail_msg("[%s] %s = '%s': %s", c->section, c->key, c->value, err);
            if (got != c->expect)
                fail_msg("[%s] %s = '%s': %lld, expected %lld", c->section, c->key, c->value, (long long)got,
                         (long long)c->expect);
        }
        config_destroy(&cfg);
    }
}

static void test_durations(void **state)
{
    (void)state;
    static const set_case_t ack[] = {
        {"bus", "ack_timeout", "250ms", 250},
        {"bus", "ack_timeout", "100ms", 100}, /* the minimum */
        {"bus", "ack_timeout", "30s", 30000},
        {"bus", "ack_timeout", "5m", 300000},
        {"bus", "ack_timeout", "2h", 7200000},
        {"bus", "ack_timeout", "1d", 86400000}, /* the maximum */
        {"bus", "ack_timeout", "45", 45000},    /* a bare number is seconds */
        {"bus", "ack_timeout", "007s", 7000},
        {"bus", "ack_timeout", "99ms", -1},     /* below the minimum */
        {"bus", "ack_timeout", "0", -1},
        {"bus", "ack_timeout", "2d", -1},       /* above the maximum */
        {"bus", "ack_timeout", "86401s", -1},
        {"bus", "ack_timeout", "", -1},
        {"bus", "ack_timeout", "s", -1},
        {"bus", "ack_timeout", "ms", -1},
        {"bus", "ack_timeout", "10x", -1},
        {"bus", "ack_timeout", "10 s", -1},
        {"bus", "ack_timeout", "-5s", -1},
        {"bus", "ack_timeout", "+5s", -1},
        {"bus", "ack_timeout", "1.5s", -1},
        {"bus", "ack_timeout", "5sec", -1},
        {"bus", "ack_timeout", "5w", -1},
        {"bus", "ack_timeout", "99999999999999999999ms", -1}, /* overflows int64 */
        {"bus", "ack_timeout", "9223372036854775807d", -1},   /* overflows when scaled */
    };
    run_set_cases(ack, sizeof(ack) / sizeof(ack[0]), offsetof(config_t, bus_ack_timeout_ms));
    static const set_case_t dedup[] = {
        {"bus", "dedup_window", "7d", 7LL * 86400000},
        {"bus", "dedup_window", "168h", 7LL * 86400000},
        {"bus", "dedup_window", "365d", 31536000000LL}, /* the maximum, beyond 32 bits */
        {"bus", "dedup_window", "366d", -1},
        {"bus", "dedup_window", "1", 1000},
        {"bus", "dedup_window", "999ms", -1},
    };
    run_set_cases(dedup, sizeof(dedup) / sizeof(dedup[0]), offsetof(config_t, bus_dedup_window_ms));
    static const set_case_t redis[] = {
        {"redis", "timeout", "10ms", 10},
        {"redis", "timeout", "9ms", -1},
        {"redis", "timeout", "10m", 600000},
        {"redis", "timeout", "11m", -1},
    };
    run_set_cases(redis, sizeof(redis) / sizeof(redis[0]), offsetof(config_t, redis_timeout_ms));

    /* the parser itself, without range checks */
    static const struct {
        const char *text;
        int rc;
        int64_t ms;
    } raw[] = {
        {"0", 0, 0},           {"0ms", 0, 0},      {"1ms", 0, 1},     {"1s", 0, 1000},
        {"1m", 0, 60000},      {"1h", 0, 3600000}, {"1d", 0, 86400000}, {"7d", 0, 604800000},
        {"12", 0, 12000},      {"3MS", 0, 3},      {"", -1, 0},       {"d", -1, 0},
        {" 1s", -1, 0},        {"1s ", -1, 0},     {"1y", -1, 0},     {"0x10", -1, 0},
        {"106751991167d", 0, 9223372036828800000LL}, {"106751991168d", -1, 0},
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        int64_t ms = -12345;
        int rc = parse_duration_ms(raw[i].text, &ms);
        if (rc != raw[i].rc || (rc == 0 && ms != raw[i].ms))
            fail_msg("parse_duration_ms('%s'): rc %d ms %lld", raw[i].text, rc, (long long)ms);
    }
}

static void test_sizes(void **state)
{
    (void)state;
    static const set_case_t cases[] = {
        {"bus", "max_record", "64k", 65536},
        {"bus", "max_record", "64K", 65536},
        {"bus", "max_record", "64kb", 65536},
        {"bus", "max_record", "1M", 1048576},
        {"bus", "max_record", "1m", 1048576},
        {"bus", "max_record", "2MB", 2097152},
        {"bus", "max_record", "1024", 1024}, /* the minimum; a bare number is bytes */
        {"bus", "max_record", "64M", 67108864}, /* the maximum */
        {"bus", "max_record", "1023", -1},
        {"bus", "max_record", "65M", -1},
        {"bus", "max_record", "1G", -1},
        {"bus", "max_record", "1T", -1},
        {"bus", "max_record", "k", -1},
        {"bus", "max_record", "-1k", -1},
        {"bus", "max_record", "1.5M", -1},
        {"bus", "max_record", "", -1},
        {"bus", "max_record", "64 k", -1},
        {"bus", "max_record", "64kib", -1},
    };
    run_set_cases(cases, sizeof(cases) / sizeof(cases[0]), offsetof(config_t, bus_max_record));
    static const struct {
        const char *text;
        int rc;
        int64_t bytes;
    } raw[] = {
        {"512", 0, 512}, {"2G", 0, 2147483648LL}, {"2gb", 0, 2147483648LL}, {"0", 0, 0},
        {"99999999999G", -1, 0}, {"G", -1, 0},
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        int64_t n = -12345;
        int rc = parse_size(raw[i].text, &n);
        if (rc != raw[i].rc || (rc == 0 && n != raw[i].bytes))
            fail_msg("parse_size('%s'): rc %d n %lld", raw[i].text, rc, (long long)n);
    }
}

static void test_integers(void **state)
{
    (void)state;
    static const set_case_t cases[] = {
        {"bus", "capacity", "1", 1},
        {"bus", "capacity", "128", 128},
        {"bus", "capacity", "100000", 100000},
        {"bus", "capacity", "0", -1},
        {"bus", "capacity", "100001", -1},
        {"bus", "capacity", "-5", -1},
        {"bus", "capacity", "lots", -1},
        {"bus", "capacity", "12x", -1},
        {"bus", "capacity", "1.0", -1},
        {"bus", "capacity", "", -1},
        {"bus", "capacity", "99999999999999999999", -1},
        {"bus", "max_waiting", "100000000", 100000000},
        {"bus", "max_waiting", "100000001", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_set_cases(&cases[i], 1,
                      strcmp(cases[i].key, "capacity") == 0 ? offsetof(config_t, bus_capacity)
                                                            : offsetof(config_t, bus_max_waiting));
}

static void test_booleans(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        bool value;
    } cases[] = {
        {"yes", 0, true},  {"no", 0, false},   {"true", 0, true},  {"false", 0, false},
        {"on", 0, true},   {"off", 0, false},  {"1", 0, true},     {"0", 0, false},
        {"YES", 0, true},  {"False", 0, false}, {"On", 0, true},   {"", -1, false},
        {"y", -1, false},  {"n", -1, false},   {"2", -1, false},   {"yess", -1, false},
        {"enable", -1, false}, {" yes", -1, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int start = 0; start < 2; start++) {
            bool v = start; /* a rejected value leaves the old one */
            int rc = parse_bool(cases[i].text, &v);
            if (rc != cases[i].rc)
                fail_msg("parse_bool('%s'): rc %d", cases[i].text, rc);
            if (rc == 0 && v != cases[i].value)
                fail_msg("parse_bool('%s'): %d", cases[i].text, v);
            if (rc < 0 && v != (bool)start)
                fail_msg("parse_bool('%s'): changed the value on failure", cases[i].text);
        }
    }
}

static void test_levels_strings_urls(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    char err[256];
    static const struct {
        const char *text;
        log_level_t level;
    } levels[] = {
        {"critical", LOG_LEVEL_CRITICAL}, {"warning", LOG_LEVEL_WARNING}, {"info", LOG_LEVEL_INFO},
        {"debug", LOG_LEVEL_DEBUG},       {"trace", LOG_LEVEL_TRACE},     {"TRACE", LOG_LEVEL_TRACE},
        {"Information", LOG_LEVEL_INFO},
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        cfg->log_level = levels[i].level == LOG_LEVEL_CRITICAL ? LOG_LEVEL_TRACE : LOG_LEVEL_CRITICAL;
        assert_int_equal(config_set(cfg, "log", "level", levels[i].text, err, sizeof(err)), 0);
        assert_int_equal(cfg->log_level, levels[i].level);
    }
    assert_int_equal(config_set(cfg, "log", "level", "loud", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "loud"));
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);

    assert_int_equal(config_set(cfg, "log", "file", "/tmp/x.log", err, sizeof(err)), 0);
    assert_string_equal(cfg->log_file, "/tmp/x.log");
    assert_int_equal(config_set(cfg, "log", "file", "", err, sizeof(err)), 0);
    assert_string_equal(cfg->log_file, "");

    static const char *const good_urls[] = {"redis://localhost", "redis://localhost:6380",
                                            "redis://:pw@10.0.0.1:6379/5", "redis://user:pw@host/0",
                                            "REDIS://host:1/"};
    for (size_t i = 0; i < sizeof(good_urls) / sizeof(good_urls[0]); i++) {
        if (config_set(cfg, "redis", "url", good_urls[i], err, sizeof(err)) != 0)
            fail_msg("url '%s': %s", good_urls[i], err);
        assert_string_equal(cfg->redis_url, good_urls[i]);
    }
    static const char *const bad_urls[] = {"http://localhost", "localhost:6379", "redis://", "redis://:6379",
                                           "redis://host:0", "redis://host:65536", "redis://host:port",
                                           "redis://host/db", "redis://host/-1", ""};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        err[0] = '\0';
        if (config_set(cfg, "redis", "url", bad_urls[i], err, sizeof(err)) != -1)
            fail_msg("url '%s' accepted", bad_urls[i]);
        if (strncmp(err, "[redis] url: ", 13) != 0)
            fail_msg("url '%s': error '%s'", bad_urls[i], err);
        assert_string_equal(cfg->redis_url, good_urls[sizeof(good_urls) / sizeof(good_urls[0]) - 1]);
    }
    config_destroy(&cfg);
}

static void test_config_set_unknown(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    config_t *ref = config_new();
    char err[256];
    assert_int_equal(config_set(cfg, "bus", "capacity", "9", err, sizeof(err)), 0);
    assert_int_equal(cfg->bus_capacity, 9);
    assert_int_equal(config_set(cfg, "bus", "capcity", "9", err, sizeof(err)), -1);
    assert_string_equal(err, "unknown key 'capcity' in section [bus]");
    assert_int_equal(config_set(cfg, "buss", "capacity", "9", err, sizeof(err)), -1);
    assert_string_equal(err, "unknown section [buss]");
    assert_int_equal(config_set(cfg, "log", "capacity", "9", err, sizeof(err)), -1); /* right key, wrong section */
    assert_string_equal(err, "unknown key 'capacity' in section [log]");
    assert_int_equal(config_set(cfg, "", "capacity", "9", err, sizeof(err)), -1);
    assert_int_equal(config_set(cfg, "BUS", "capacity", "9", err, sizeof(err)), -1); /* names are exact */
    assert_int_equal(config_set(cfg, "bus", "Capacity", "9", err, sizeof(err)), -1);
    /* nothing else moved */
    cfg->bus_capacity = ref->bus_capacity;
    cmp_config(cfg, ref);
    /* a NULL or zero-sized err is accepted */
    assert_int_equal(config_set(cfg, "bus", "nope", "1", NULL, 0), -1);
    assert_int_equal(config_set(cfg, "bus", "capacity", "x", err, 0), -1);
    config_destroy(&ref);
    config_destroy(&cfg);
}

#define LONG198                                                                                    \
    "#12345678901234567890123456789012345678901234567890123456789012345678901234567890"            \
    "12345678901234567890123456789012345678901234567890123456789012345678901234567890"            \
    "1234567890123456789012345678901234567"

/* [feed NAME] sections: several, defaults per feed, file order, the header's line kept. */
static void test_feed_sections(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    assert_int_equal(cfg->nfeeds, 0);
    expect_load_ok("feeds",
                   "[log]\nlevel = debug\n"
                   "[feed phish]\ntype = openphish\nurl = /var/lib/feeds/openphish.txt\ninterval = 10m\n"
                   "[feed retro-1.eu]\ntype = retro\nurl = https://register.example\ndevice_id = D1\n"
                   "org_id = cisco\npage_size = 10\ntls_verify = no\n",
                   cfg);
    assert_int_equal(cfg->nfeeds, 2);
    assert_string_equal(cfg->feeds[0].name, "phish");
    assert_int_equal(cfg->feeds[0].line, 3);
    assert_string_equal(cfg->feeds[0].type, "openphish");
    assert_int_equal(cfg->feeds[0].interval_ms, 600000);
    assert_int_equal(cfg->feeds[0].page_size, 20); /* default */
    assert_true(cfg->feeds[0].tls_verify);
    const config_feed_t *retro = config_feed_find(cfg, "retro-1.eu");
    assert_non_null(retro);
    assert_int_equal(retro->line, 7);
    assert_string_equal(retro->device_id, "D1");
    assert_int_equal(retro->page_size, 10);
    assert_int_equal(retro->interval_ms, 120000); /* the seed's two minutes */
    assert_int_equal(retro->initial_lookback_ms, 3600000);
    assert_false(retro->tls_verify);
    assert_int_equal(retro->max_size, 64LL * 1048576);
    assert_null(config_feed_find(cfg, "retro"));
    config_destroy(&cfg);
}

/* [domains NAME] sections and the mapping of a recipient domain: exact, parent, wildcard. */
static void test_domains_sections(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    assert_null(config_domains_find(cfg, "example.com", 11, false));
    expect_load_ok("domains",
                   "[domains corp]\ndomains = example.com example.org\nprofile = o365 onprem\n"
                   "[domains lab]\ndomains = lab.example.com\naction = forward\nprofile = imap1\n"
                   "[domains rest]\ndomains = *\naction = none\n",
                   cfg);
    assert_int_equal(cfg->ndomains, 3);
    assert_string_equal(cfg->domains[0].action, "delete"); /* default */
    assert_int_equal(cfg->domains[1].line, 4);
    static const struct {
        const char *domain, *mapping;
    } cases[] = {
        {"example.com", "corp"},     {"a.b.example.com", "corp"}, {"example.org", "corp"},
        {"lab.example.com", "lab"},  {"x.lab.example.com", "lab"}, {"other.net", "rest"},
        {"com", "rest"},             {"xexample.com", "rest"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const config_domains_t *m = config_domains_find(cfg, cases[i].domain, strlen(cases[i].domain), false);
        assert_non_null(m);
        if (strcmp(m->name, cases[i].mapping) != 0)
            fail_msg("%s: mapped by %s, expected %s", cases[i].domain, m->name, cases[i].mapping);
    }
    assert_null(config_domains_find(cfg, "a.example.com", 13, true));
    config_destroy(&cfg);

    static const struct {
        const char *name, *text;
        int line;
        const char *sub;
    } errors[] = {
        {"no domains", "[domains a]\nprofile = p\n", 1, "domains: missing"},
        {"upper case", "[domains a]\ndomains = Example.com\nprofile = p\n", 1, "'Example.com' is not a lowercase"},
        {"empty label", "[domains a]\ndomains = a..b\nprofile = p\n", 1, "'a..b'"},
        {"twice", "[domains a]\ndomains = x.com\nprofile = p\n[domains b]\ndomains = y.com x.com\nprofile = p\n", 4,
         "'x.com' is also in [domains a]"},
        {"two wildcards", "[domains a]\ndomains = *\nprofile = p\n[domains b]\ndomains = *\nprofile = p\n", 4,
         "also in"},
        {"bad action", "[domains a]\ndomains = x.com\naction = purge\nprofile = p\n", 1, "action: 'purge'"},
        {"no profile", "[domains a]\ndomains = x.com\n", 1, "profile: missing"},
        {"long profile",
         "[domains a]\ndomains = x.com\nprofile = p123456789 p123456789 p123456789 p123456789 p123456789 p123456789\n",
         1, "longer than 64"},
        {"bad name", "[domains a/b]\n", 1, "bad domains name"},
        {"unknown key", "[domains a]\ncolour = red\n", 2, "unknown key 'colour' in section [domains a]"},
    };
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        expect_load_error(errors[i].name, errors[i].text, errors[i].line, errors[i].sub);
}

static void test_feed_section_errors(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text;
        int line;
        const char *sub;
    } cases[] = {
        {"bad name", "[feed a b]\n", 1, "bad feed name"},
        {"empty name", "[log]\n[feed ]\n", 2, "unknown section"},
        {"long name", "[feed aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", 1, "bad feed name"},
        {"41 characters", "[feed aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", 1, "bad feed name"},
        {"twice", "[feed a]\ntype = misp\nurl = http://m\n[feed a]\n", 4, "appears twice"},
        {"unknown key", "[feed a]\ntype = misp\nurl = http://m\ncolour = red\n", 4, "unknown key 'colour' in section [feed a]"},
        {"bad value", "[feed a]\ntype = misp\nurl = http://m\ninterval = 0\n", 4, "[feed a] interval: '0' is out of range"},
        {"no type", "[log]\n[feed a]\nurl = http://m\n", 2, "type: '' is not one of"},
        {"bad type", "[feed a]\ntype = rss\nurl = http://m\n", 1, "type: 'rss' is not one of"},
        {"no url", "[feed a]\ntype = urlhaus\n", 1, "url: missing"},
        {"retro without device", "[feed a]\ntype = retro\nurl = http://r\norg_id = o\n", 1, "needs device_id"},
        {"backoff", "[feed a]\ntype = misp\nurl = http://m\nbackoff_min = 1h\nbackoff_max = 1m\n", 1, "backoff_min"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_load_error(cases[i].name, cases[i].text, cases[i].line, cases[i].sub);
}

static void test_load_errors(void **state)
{
    (void)state;
    assert_int_equal(strlen(LONG198), 198);
    static const struct {
        const char *name;
        const char *text;
        int line;
        const char *sub;
    } cases[] = {
        {"unknown key", "[bus]\ncapacity = 5\nbogus = 1\n", 3, "unknown key 'bogus' in section [bus]"},
        {"unknown section", "# c\n[log]\nlevel = info\n\n[bogus]\nx = 1\n", 5, "unknown section [bogus]"},
        {"empty unknown section", "[log]\n[nosuch]\n[bus]\ncapacity = 5\n", 2, "unknown section [nosuch]"},
        {"indented unknown section", "  [nosuch]\n", 1, "unknown section [nosuch]"},
        {"key before any section", "\ncapacity = 5\n", 2, "unknown section []"},
        {"bad integer", "[bus]\ncapacity = lots\n", 2, "[bus] capacity: 'lots' is not an integer"},
        {"out of range", "[bus]\n\ncapacity = 0\n", 3, "[bus] capacity: '0' is out of range (1 to 100000)"},
        {"duration out of range", "[bus]\nheartbeat = 2m\n", 2, "out of range (10 to 60000 ms)"},
        {"size out of range", "[bus]\nmax_record = 1G\n", 2, "out of range (1024 to 67108864 bytes)"},
        {"bad duration", "[redis]\ntimeout = 5 parsecs\n", 2, "[redis] timeout: '5 parsecs' is not a duration"},
        {"bad size", "[bus]\n\n\nmax_record = 1T\n", 4, "is not a size"},
        {"bad level", "[log]\nlevel = loud\n", 2, "[log] level: 'loud' is not a log level"},
        {"bad redis url", "[log]\n[redis]\nurl = http://localhost\n", 3, "[redis] url: "},
        {"bad redis port", "[redis]\nurl = redis://h:99999/0\n", 2, "bad port"},
        {"long comment line", "[log]\n" LONG198 "9\nlevel = info\n", 2, "line longer than 198 characters"},
        {"long key line", "[log]\nlevel = info\nfile = " LONG198 "\n", 3, "line longer than 198 characters"},
        {"long last line, no newline", "[log]\n" LONG198 "9", 2, "line longer than 198 characters"},
        {"long CRLF line", "[log]\r\n" LONG198 "9\r\n", 2, "line longer than 198 characters"},
        {"syntax: no '='", "[log]\nlevel info\n", 2, "syntax error"},
        {"syntax: unclosed section", "[log\nlevel = info\n", 1, "syntax error"},
        /* the earliest error is the one reported */
        {"syntax before bad value", "[bus]\nnonsense\n\ncapacity = 0\n", 2, "syntax error"},
        {"bad value before syntax", "[bus]\ncapacity = 0\n\nnonsense\n", 2, "out of range"},
        {"bad value before long line", "[bus]\ncapacity = 0\n" LONG198 "99\n", 2, "out of range"},
        {"long line before bad value", "[bus]\n" LONG198 "99\ncapacity = 0\n", 2, "line longer than"},
        {"long line before syntax", "[bus]\n" LONG198 "99\nnonsense\n", 2, "line longer than"},
        {"syntax before long line", "[bus]\nnonsense\n" LONG198 "99\n", 2, "syntax error"},
        {"unknown section before syntax", "[bus]\n[zzz]\nnonsense\n", 2, "unknown section [zzz]"},
        {"syntax before unknown section", "[bus]\nnonsense\n[zzz]\n", 2, "syntax error"},
        {"bad value before unknown section", "[bus]\ncapacity = x\n[zzz]\n", 2, "not an integer"},
        {"unknown section before its keys", "[zzz]\ncapacity = x\n", 1, "unknown section [zzz]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_load_error(cases[i].name, cases[i].text, cases[i].line, cases[i].sub);
}

/* Lines up to the limit load; one character more does not (limit 198, terminator excluded). */
static void test_line_limit(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    expect_load_ok("198 characters", "[log]\n" LONG198 "\nlevel = debug\n", cfg);
    assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
    expect_load_ok("198 characters, CRLF", "[log]\r\n" LONG198 "\r\nlevel = trace\r\n", cfg);
    assert_int_equal(cfg->log_level, LOG_LEVEL_TRACE);
    expect_load_ok("198 characters at the end", "[log]\nlevel = info\n" LONG198, cfg);
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
    /* a value near the limit is kept whole */
    char text[400], value[200];
    memset(value, 'v', 191);
    value[0] = '/';
    value[191] = '\0';
    snprintf(text, sizeof(text), "[log]\nfile = %s\n", value); /* 7 + 191 = 198 */
    expect_load_ok("long value", text, cfg);
    assert_string_equal(cfg->log_file, value);
    config_destroy(&cfg);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    char err[256];
    assert_int_equal(config_load(cfg, "/nonexistent/clawback.conf", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/clawback.conf: cannot open"));
    assert_null(cfg->path);
    /* a directory cannot be read as a configuration */
    assert_int_equal(config_load(cfg, "/tmp", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/tmp"));
    assert_null(cfg->path);
    config_destroy(&cfg);
}

static void test_example_file_matches(void **state)
{
    (void)state;
    size_t elen = 0, flen = 0;
    char *expect = example_text(&elen);
    char *file = read_file(EXAMPLE_PATH, &flen);
    if (!file)
        fail_msg("cannot read %s (tests run from the repository root)", EXAMPLE_PATH);
    if (flen != elen || memcmp(file, expect, elen) != 0) {
        size_t i = 0;
        while (i < flen && i < elen && file[i] == expect[i])
            i++;
        fail_msg("%s differs from config_write_example() at byte %zu; regenerate it with "
                 "`clawback config example > %s`",
                 EXAMPLE_PATH, i, EXAMPLE_PATH);
    }
    free(file);
    free(expect);
}

/* The example names every key in its section, with its default and its documentation, and
 * loading it restores every default. */
static void test_example_documents_every_key(void **state)
{
    (void)state;
    size_t len;
    char *text = example_text(&len);
    assert_int_equal(strlen(text), len);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_TABLE); i++) {
        const config_key_t *k = &CONFIG_TABLE[i];
        char header[64], line[256], doc_first[128];
        snprintf(header, sizeof(header), "\n[%s]\n", k->section);
        const char *sec = strstr(text, header);
        if (!sec)
            fail_msg("no section [%s]", k->section);
        const char *next = strstr(sec + 1, "\n[");
        snprintf(line, sizeof(line), "\n%s =%s%s\n", k->key, *k->def ? " " : "", k->def);
        const char *at = strstr(sec, line);
        if (!at || (next && at > next))
            fail_msg("[%s] %s: no line '%s' in its section", k->section, k->key, line + 1);
        /* the comment right above it is the first line of its documentation */
        size_t dl = strcspn(k->doc, "\n");
        snprintf(doc_first, sizeof(doc_first), "# %.*s\n", (int)dl, k->doc);
        if (!strstr(sec, doc_first) || strstr(sec, doc_first) > at)
            fail_msg("[%s] %s: documentation missing", k->section, k->key);
    }
    /* every non-comment, non-blank line is a section or one of the keys */
    size_t keys = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        if (n && *p != '#' && *p != '[')
            keys++;
        p += n + (p[n] == '\n');
    }
    assert_int_equal(keys, UTIL_ARRAY_LEN(CONFIG_TABLE));

    config_t *cfg = config_new(), *ref = config_new();
    char err[256];
    assert_int_equal(config_set(cfg, "bus", "capacity", "5", err, sizeof(err)), 0);
    assert_int_equal(config_set(cfg, "log", "json_file", "/x", err, sizeof(err)), 0);
    assert_int_equal(config_set(cfg, "log", "level", "trace", err, sizeof(err)), 0);
    assert_int_equal(config_set(cfg, "bus", "dedup_window", "1d", err, sizeof(err)), 0);
    expect_load_ok("example", text, cfg);
    cmp_config(cfg, ref);
    config_destroy(&ref);
    config_destroy(&cfg);
    free(text);
}

static void test_destroy(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    char err[256], *path;
    assert_int_equal(load_text(cfg, "[log]\nfile = /x\n", &path, err, sizeof(err)), 0);
    free(path);
    config_destroy(&cfg);
    assert_null(cfg);
    config_destroy(&cfg); /* already NULL */
    assert_null(cfg);
    config_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_sets_values),
        cmocka_unit_test(test_load_line_endings),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_levels_strings_urls),
        cmocka_unit_test(test_config_set_unknown),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_feed_sections),
        cmocka_unit_test(test_feed_section_errors),
        cmocka_unit_test(test_domains_sections),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_example_file_matches),
        cmocka_unit_test(test_example_documents_every_key),
        cmocka_unit_test(test_destroy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
