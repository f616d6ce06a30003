/*
 * test_milter.c - unit tests for clawback-milter's spool and indexer without sockets: the
 * spool file format (round trip, envelope escaping, rejects), header reconstruction (plain,
 * leading space, folded values), the size limit, arrival order, tmp/ cleared at open, the
 * direction from internal_networks (message_nets_contain), and a message that cannot be
 * parsed set aside into bad/ with its reason while the rest go on.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "indexer.h"
#include "message.h"
#include "spool.h"
#include "util.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/clawback-spool.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* count_files - regular files in dir/sub. */
static size_t count_files(const char *sub)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    DIR *d = opendir(path);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* spool_one - write a message with headers and body chunks, commit it; its ready name. */
static void spool_one(spool_t *s, int64_t max, bool leadspc, const char *const *hdrs, size_t nh, const char *body,
                      spool_envelope_t *env, char name[64])
{
    char err[256];
    spool_msg_t *m = spool_msg_new(s, max, leadspc, err, sizeof(err));
    assert_non_null(m);
    for (size_t i = 0; i + 1 < nh; i += 2)
        assert_int_equal(spool_msg_header(m, hdrs[i], hdrs[i + 1]), 0);
    assert_int_equal(spool_msg_end_headers(m), 0);
    /* the body in two chunks, as the MTA sends it */
    size_t half = strlen(body) / 2;
    assert_int_equal(spool_msg_body(m, body, half), 0);
    assert_int_equal(spool_msg_body(m, body + half, strlen(body) - half), 0);
    assert_int_equal(spool_msg_commit(&m, env, name, err, sizeof(err)), 0);
    assert_null(m);
}

static void test_round_trip(void **state)
{
    (void)state;
    char err[256], name[64];
    spool_t *s = spool_open(dir, SPOOL_SYNC_ALWAYS, err, sizeof(err));
    assert_non_null(s);
    const char *hdrs[] = {"From", "a@b.example", "Subject", "two\n\tlines", "X-Empty", ""};
    char *rcpts[] = {"x@y.example", "we ird%@y.example"};
    spool_envelope_t env = {.client_ip = "192.0.2.7", .helo = "evil\nhelo name%", .sender = "", .queue_id = "4AB1",
                            .time_ms = 1790000000123, .rcpts = rcpts, .n_rcpts = 2};
    spool_one(s, 0, false, hdrs, 6, "hello\r\nhttp://x.example/\r\n", &env, name);
    assert_int_equal(count_files("ready"), 1);
    assert_int_equal(count_files("tmp"), 0);

    spool_entry_t e;
    assert_int_equal(spool_read(s, name, &e, err, sizeof(err)), 0);
    const char *want = "From: a@b.example\r\nSubject: two\r\n\tlines\r\nX-Empty: \r\n\r\nhello\r\nhttp://x.example/\r\n";
    assert_int_equal(e.len, strlen(want));
    assert_memory_equal(e.data, want, e.len);
    assert_string_equal(e.env.client_ip, "192.0.2.7");
    assert_string_equal(e.env.helo, "evil\nhelo name%");
    assert_string_equal(e.env.sender, "");
    assert_string_equal(e.env.queue_id, "4AB1");
    assert_int_equal(e.env.time_ms, 1790000000123);
    assert_int_equal(e.env.size, (int64_t)strlen(want));
    assert_int_equal(e.env.truncated, 0);
    assert_int_equal(e.env.n_rcpts, 2);
    assert_string_equal(e.env.rcpts[0], "x@y.example");
    assert_string_equal(e.env.rcpts[1], "we ird%@y.example");
    /* the message parses as what the MTA received */
    message_t msg;
    assert_int_equal(message_parse(e.data, e.len, NULL, &msg, err, sizeof(err)), 0);
    assert_string_equal(msg.subject, "two lines");
    assert_int_equal(msg.urls.n, 1);
    message_clear(&msg);
    spool_entry_clear(&e);
    assert_int_equal(spool_remove(s, name), 0);
    assert_int_equal(count_files("ready"), 0);
    spool_close(&s);
    assert_null(s);
}

/* Header reconstruction: the MTA sends name and value apart; folded values as bare "\n". */
static void test_headers(void **state)
{
    (void)state;
    static const struct {
        bool leadspc;
        const char *name, *value, *want;
    } cases[] = {
        {false, "Subject", "hi", "Subject: hi\r\n"},
        {true, "Subject", " hi", "Subject: hi\r\n"},
        {true, "Subject", "hi", "Subject:hi\r\n"},
        {false, "To", "a@x,\n\tb@x", "To: a@x,\r\n\tb@x\r\n"},
        {false, "To", "a@x,\r\n b@x", "To: a@x,\r\n b@x\r\n"},
        {false, "X-N", "", "X-N: \r\n"},
        {false, "X-Multi", "1\n 2\n 3", "X-Multi: 1\r\n 2\r\n 3\r\n"},
    };
    char err[256], name[64];
    spool_t *s = spool_open(dir, SPOOL_SYNC_NO, err, sizeof(err));
    assert_non_null(s);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *hdrs[] = {cases[i].name, cases[i].value};
        spool_envelope_t env = {.time_ms = 1};
        spool_one(s, 0, cases[i].leadspc, hdrs, 2, "", &env, name);
        spool_entry_t e;
        assert_int_equal(spool_read(s, name, &e, err, sizeof(err)), 0);
        char want[128];
        snprintf(want, sizeof(want), "%s\r\n", cases[i].want);
        assert_int_equal(e.len, strlen(want));
        assert_memory_equal(e.data, want, e.len);
        spool_entry_clear(&e);
        spool_remove(s, name);
    }
    spool_close(&s);
}

static void test_size_limit(void **state)
{
    (void)state;
    char err[256], name[64];
    spool_t *s = spool_open(dir, SPOOL_SYNC_NO, err, sizeof(err));
    const char *hdrs[] = {"Subject", "big"}; /* "Subject: big\r\n\r\n": 16 bytes */
    char body[1000];
    memset(body, 'a', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    spool_envelope_t env = {.time_ms = 1};
    spool_one(s, 100, false, hdrs, 2, body, &env, name);
    assert_int_equal(env.truncated, 1);
    assert_int_equal(env.size, 16 + 999);
    spool_entry_t e;
    assert_int_equal(spool_read(s, name, &e, err, sizeof(err)), 0);
    assert_int_equal(e.len, 100); /* the headers and the first 84 bytes of the body */
    assert_memory_equal(e.data, "Subject: big\r\n\r\naaaa", 20);
    assert_int_equal(e.env.truncated, 1);
    assert_int_equal(e.env.size, 16 + 999);
    spool_entry_clear(&e);
    /* within the limit: kept whole */
    spool_envelope_t env2 = {.time_ms = 1};
    spool_one(s, 100, false, hdrs, 2, "short", &env2, name);
    assert_int_equal(env2.truncated, 0);
    assert_int_equal(spool_read(s, name, &e, err, sizeof(err)), 0);
    assert_int_equal(e.len, 21);
    spool_entry_clear(&e);
    spool_close(&s);
}

static void test_order_and_tmp(void **state)
{
    (void)state;
    char err[256], names[3][64];
    spool_t *s = spool_open(dir, SPOOL_SYNC_NO, err, sizeof(err));
    /* a message being received when the process died */
    char path[256];
    snprintf(path, sizeof(path), "%s/tmp/999.1", dir);
    FILE *f = fopen(path, "w");
    fputs("half", f);
    fclose(f);
    for (int i = 0; i < 3; i++) {
        spool_envelope_t env = {.time_ms = 1};
        const char *hdrs[] = {"Subject", "x"};
        spool_one(s, 0, false, hdrs, 2, "b", &env, names[i]);
    }
    char **list;
    size_t n;
    assert_int_equal(spool_list(s, 0, &list, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(list[i], names[i]);
        free(list[i]);
    }
    free(list);
    size_t depth;
    int64_t age;
    assert_int_equal(spool_backlog(s, &depth, &age), 0);
    assert_int_equal(depth, 3);
    assert_true(age >= 0 && age < 60000);
    assert_int_equal(count_files("tmp"), 1);
    spool_close(&s);
    s = spool_open(dir, SPOOL_SYNC_NO, err, sizeof(err));
    assert_int_equal(count_files("tmp"), 0); /* cleared at start */
    assert_int_equal(count_files("ready"), 3); /* kept */
    spool_close(&s);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        const char *why;
    } cases[] = {
        {"", "trailer"},
        {"Subject: x\r\n\r\nbody", "trailer"},
        {"Subject: x\r\n\r\ntime_ms 1\nCLAWBACK-SPOOL 1 00000000000000099999\n", "offset"},
        {"Subject: x\r\n\r\ntime_ms 1\nCLAWBACK-SPOOL 1 0000000000000000001x\n", "offset"},
        {"Subject: x\r\n\r\nhelo %zz\ntime_ms 1\nCLAWBACK-SPOOL 1 00000000000000000014\n", "envelope line"},
        {"Subject: x\r\n\r\nhelo a%00\ntime_ms 1\nCLAWBACK-SPOOL 1 00000000000000000014\n", "envelope line"},
        {"Subject: x\r\n\r\nhelo a\nhelo b\ntime_ms 1\nCLAWBACK-SPOOL 1 00000000000000000014\n", "envelope line"},
        {"Subject: x\r\n\r\ntime_ms\nCLAWBACK-SPOOL 1 00000000000000000014\n", "envelope line"},
        {"Subject: x\r\n\r\nhelo a\nCLAWBACK-SPOOL 1 00000000000000000014\n", "time_ms"},
        {"Subject: x\r\n\r\ntime_ms 1\nno newline at the end CLAWBACK-SPOOL 1 00000000000000000014", "trailer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        spool_envelope_t env;
        size_t len;
        char err[256] = "";
        assert_int_equal(spool_parse(cases[i].data, strlen(cases[i].data), &env, &len, err, sizeof(err)), -1);
        if (!strstr(err, cases[i].why))
            fail_msg("case %zu: '%s' does not mention '%s'", i, err, cases[i].why);
    }
    /* unknown keys are ignored (the format may grow) */
    const char *ok = "Subject: x\r\n\r\nfuture_key whatever\ntime_ms 5\nrcpt a%40b\nCLAWBACK-SPOOL 1 00000000000000000014\n";
    spool_envelope_t env;
    size_t len;
    char err[256];
    assert_int_equal(spool_parse(ok, strlen(ok), &env, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 14);
    assert_int_equal(env.time_ms, 5);
    assert_int_equal(env.n_rcpts, 1);
    assert_string_equal(env.rcpts[0], "a@b");
    spool_envelope_clear(&env);
}

static void test_direction(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    char err[256];
    assert_int_equal(config_set(cfg, "milter", "internal_networks", "10.0.0.0/8 192.0.2.128/25 2001:db8::/32", err,
                                sizeof(err)),
                     0);
    assert_int_equal(config_set(cfg, "redis", "url", "redis://127.0.0.1:1/0", err, sizeof(err)), 0);
    spool_t *s = spool_open(dir, SPOOL_SYNC_NO, err, sizeof(err));
    indexer_t *ix = indexer_new(cfg, s, err, sizeof(err)); /* connects lazily: no Redis needed */
    assert_non_null(ix);
    static const struct {
        const char *ip, *want;
    } cases[] = {
        {"10.1.2.3", "outgoing"},       {"11.0.0.1", "incoming"},     {"192.0.2.129", "outgoing"},
        {"192.0.2.127", "incoming"},    {"2001:db8::1", "outgoing"},  {"2001:db9::1", "incoming"},
        {"::ffff:10.1.2.3", "incoming"}, {"", "incoming"},            {"not an ip", "incoming"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (strcmp(indexer_direction(ix, cases[i].ip), cases[i].want) != 0)
            fail_msg("%s: expected %s", cases[i].ip, cases[i].want);
    assert_string_equal(indexer_direction(ix, NULL), "incoming"); /* a local (unix) client */
    indexer_destroy(&ix);
    /* a bad network refuses to start */
    assert_int_equal(config_set(cfg, "milter", "internal_networks", "10.0.0.0/33", err, sizeof(err)), 0);
    assert_null(indexer_new(cfg, s, err, sizeof(err)));
    assert_non_null(strstr(err, "internal_networks"));
    spool_close(&s);
    config_destroy(&cfg);
}

static void test_bad_set_aside(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    char err[256], name[64];
    assert_int_equal(config_set(cfg, "redis", "url", "redis://127.0.0.1:1/0", err, sizeof(err)), 0);
    spool_t *s = spool_open(dir, SPOOL_SYNC_NO, err, sizeof(err));
    /* a file that is not a spool file, with a ready name */
    char path[256];
    snprintf(path, sizeof(path), "%s/ready/000000000000001-000000000001", dir);
    FILE *f = fopen(path, "w");
    fputs("garbage", f);
    fclose(f);
    /* a spooled message with no header at all: message_parse refuses it */
    spool_msg_t *m = spool_msg_new(s, 0, false, err, sizeof(err));
    spool_envelope_t env = {.time_ms = util_now_ms(), .queue_id = "Q1"};
    assert_int_equal(spool_msg_commit(&m, &env, name, err, sizeof(err)), 0);
    indexer_t *ix = indexer_new(cfg, s, err, sizeof(err));
    size_t done = 0;
    assert_int_equal(indexer_run_once(ix, &done), 0); /* nothing to write: Redis is not needed */
    assert_int_equal(done, 2);
    assert_int_equal(count_files("ready"), 0);
    assert_int_equal(count_files("bad"), 4); /* each with its .reason */
    snprintf(path, sizeof(path), "%s/bad/000000000000001-000000000001.reason", dir);
    char *reason = NULL;
    size_t len;
    assert_int_equal(util_read_file(path, 4096, &reason, &len, err, sizeof(err)), 0);
    assert_non_null(strstr(reason, "spool"));
    free(reason);
    indexer_counts_t c = indexer_counts(ix);
    assert_int_equal(c.bad, 2);
    assert_int_equal(c.indexed, 0);
    indexer_destroy(&ix);
    spool_close(&s);
    config_destroy(&cfg);
}

/* the sync modes' names; an everysec spool (its syncer thread) commits, reuses an indexed
 * file from free/ for the next message (no new inode), and closes without hanging */
static void test_sync_and_reuse(void **state)
{
    (void)state;
    spool_sync_t mode;
    assert_int_equal(spool_sync_parse("always", &mode), 0);
    assert_int_equal(mode, SPOOL_SYNC_ALWAYS);
    assert_int_equal(spool_sync_parse("everysec", &mode), 0);
    assert_int_equal(mode, SPOOL_SYNC_EVERYSEC);
    assert_int_equal(spool_sync_parse("no", &mode), 0);
    assert_int_equal(mode, SPOOL_SYNC_NO);
    assert_int_equal(spool_sync_parse("yes", &mode), -1);
    assert_int_equal(spool_sync_parse(NULL, &mode), -1);

    char err[256], first[64], second[64], third[64];
    spool_t *s = spool_open(dir, SPOOL_SYNC_EVERYSEC, err, sizeof(err));
    assert_non_null(s);
    const char *hdrs[] = {"Subject", "one", "Message-ID", "<one@example.org>"};
    spool_envelope_t env = {.time_ms = util_now_ms(), .queue_id = "Q1"};
    spool_one(s, 0, false, hdrs, 4, "body one\r\n", &env, first);
    spool_one(s, 0, false, hdrs, 4, "body two\r\n", &env, second);
    assert_int_equal(count_files("ready"), 2);
    char path[256];
    snprintf(path, sizeof(path), "%s/ready/%s", dir, first);
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(spool_remove(s, first), 0); /* indexed: kept in free/ */
    assert_int_equal(count_files("ready"), 1);
    assert_int_equal(count_files("free"), 1);
    spool_one(s, 0, false, hdrs, 4, "body three, longer than the first\r\n", &env, third);
    assert_int_equal(count_files("free"), 0);
    assert_int_equal(count_files("ready"), 2);
    snprintf(path, sizeof(path), "%s/ready/%s", dir, third);
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino); /* the same file, reused */
    spool_entry_t e;
    assert_int_equal(spool_read(s, third, &e, err, sizeof(err)), 0);
    assert_non_null(memmem(e.data, e.len, "body three", 10));
    assert_null(memmem(e.data, e.len, "body one", 8));
    spool_entry_clear(&e);
    /* a shorter message into the reused longer file: cut to its own size, nothing of the old left */
    char fourth[64];
    assert_int_equal(spool_remove(s, third), 0);
    const char *short_hdrs[] = {"Subject", "4"};
    spool_one(s, 0, false, short_hdrs, 2, "b4\r\n", &env, fourth);
    snprintf(path, sizeof(path), "%s/ready/%s", dir, fourth);
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_true(before.st_size < after.st_size);
    assert_int_equal(spool_read(s, fourth, &e, err, sizeof(err)), 0);
    assert_int_equal(e.len, strlen("Subject: 4\r\n\r\nb4\r\n"));
    assert_memory_equal(e.data, "Subject: 4\r\n\r\nb4\r\n", e.len);
    assert_string_equal(e.env.queue_id, "Q1");
    spool_entry_clear(&e);
    assert_int_equal(spool_remove(s, "no-such-file"), -1);
    spool_close(&s);
    assert_null(s);
    s = spool_open(dir, SPOOL_SYNC_NO, err, sizeof(err)); /* reopened: free/ emptied, ready/ kept */
    assert_int_equal(count_files("ready"), 2);
    assert_int_equal(count_files("free"), 0);
    spool_close(&s);
}

int main(void)
{
    message_library_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_and_tmp, setup, teardown),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test_setup_teardown(test_direction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_and_reuse, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
