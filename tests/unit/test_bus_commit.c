/*
 * test_bus_commit.c - unit tests of the atomic commits of common/bus.c (bus_commit_* and
 * bus_set_aside) against a real redis-server.
 *
 * The group setup starts one redis-server on a random free loopback port (20000-60000) in a
 * mkdtemp directory with persistence off, then builds the objects a stage has: a config_t
 * (embedded defaults, a few [bus] keys set), a zloop, a redis_conn_t and two bus_t: "bus"
 * (max_waiting 100000, room for thousands of records) and "small" (max_waiting 5, max_record
 * 1k: full edges and oversized records). Each test starts from FLUSHALL and CONFIG RESETSTAT
 * and checks what the commits left in Redis with a plain hiredis connection.
 *
 * What is checked: writes merged into one command (HSET, ZADD, RPUSH to one key, across writes
 * to other keys and across the BUS_OP_MAX_ARGS split) land with the sequential result; writes
 * of another kind to the same key keep their order; guards (GET, HMGET of many fields) fence
 * the whole commit; PEXPIRE runs after the writes and the last call wins; BUS_FULL and
 * BUS_FENCED (and, as bus.h promises, BUS_ERROR) write nothing; a commit consuming an input is
 * refused the second time; bus_set_aside moves a delivery to the dead letters once. Commits
 * sent ahead (bus_commit_send, then bus_commit_finish in order) all land, each atomic on its
 * own (a fenced, full or duplicate one does not undo the others); destroying a sent commit
 * finishes it; finish without a successful send is BUS_ERROR and writes nothing.
 *
 * The server counts as up when a PING answers on its port from the process named in its
 * pidfile. Every wait is a bounded loop of attempts 20 ms apart with a deadline. A watchdog
 * child stops the server if this process dies before its group teardown (a sanitizer abort).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "bus.h"
#include "config.h"
#include "redis_conn.h"

#define REDIS_SERVER_BIN "/usr/bin/redis-server"
#define PORT_MIN 20000
#define PORT_MAX 60000
#define START_TRIES 20
#define WAIT_MS 5000
#define POLL_MS 20
#define SMALL_MAX_WAITING 5
#define SMALL_MAX_RECORD 1024
#define TEXT_(x) #x
#define TEXT(x) TEXT_(x) /* a number macro as config_set text */

/* ---------------------------------------------------------------------------------------- */
/* redis-server management (as in test_redis_conn.c, one server)                             */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char dir[64]; /* "" until created */
    int port;     /* 0 until chosen */
    pid_t pid;    /* 0 when not running */
} server_t;

static server_t srv;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* port_is_free - nothing listens on 127.0.0.1:port and redis-server could bind it now. */
static int port_is_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* raw_connect - a plain hiredis connection to the server. */
static redisContext *raw_connect(void)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

static pid_t read_pidfile(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/redis.pid", srv.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

/* server_answers - the process answering on srv.port is the one of pidfile pid. */
static int server_answers(pid_t pid)
{
    redisContext *c = raw_connect();
    if (!c)
        return 0;
    int ok = 0;
    redisReply *r = redisCommand(c, "INFO server");
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "process_id:");
        ok = p && atol(p + strlen("process_id:")) == (long)pid;
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

static int log_says_failed(void)
{
    char path[128], line[512];
    snprintf(path, sizeof(path), "%s/redis.log", srv.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int failed = 0;
    for (int i = 0; i < 10000 && fgets(line, sizeof(line), f); i++)
        if (strstr(line, "Could not create server TCP") || strstr(line, "Address already in use") ||
            strstr(line, "Fatal"))
            failed = 1;
    fclose(f);
    return failed;
}

static int process_gone(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    /* reparented and not reaped (no init reaping in some containers): a zombie is gone too */
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    int zombie = 0;
    if (fgets(buf, sizeof(buf), f)) {
        const char *close_paren = strrchr(buf, ')');
        zombie = close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X');
    }
    fclose(f);
    return zombie;
}

/* server_stop - SIGTERM (no save points are configured), wait for the process to go, SIGKILL
 * after the deadline. */
static void server_stop(void)
{
    if (!srv.pid)
        return;
    kill(srv.pid, SIGTERM);
    int64_t deadline = now_ms() + WAIT_MS;
    while (!process_gone(srv.pid) && now_ms() < deadline)
        pause_ms(POLL_MS);
    if (!process_gone(srv.pid)) {
        kill(srv.pid, SIGKILL);
        deadline = now_ms() + WAIT_MS;
        while (!process_gone(srv.pid) && now_ms() < deadline)
            pause_ms(POLL_MS);
    }
    srv.pid = 0;
}

/* server_start_on - start redis-server on srv.port and wait until it answers; 0 or -1. */
static int server_start_on(void)
{
    char cmd[1024], path[128];
    snprintf(path, sizeof(path), "%s/redis.log", srv.dir);
    unlink(path);
    snprintf(cmd, sizeof(cmd),
             REDIS_SERVER_BIN " --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize yes"
                              " --pidfile %s/redis.pid --dir %s --logfile %s/redis.log",
             srv.port, srv.dir, srv.dir, srv.dir);
    if (system(cmd) != 0)
        return -1;
    int64_t deadline = now_ms() + WAIT_MS;
    for (int i = 0; i < WAIT_MS / POLL_MS + 1 && now_ms() < deadline; i++) {
        pid_t pid = read_pidfile();
        if (pid > 0 && server_answers(pid)) {
            srv.pid = pid;
            return 0;
        }
        if (log_says_failed())
            break;
        pause_ms(POLL_MS);
    }
    /* not ours or not up: make sure nothing of ours lingers */
    pid_t pid = read_pidfile();
    if (pid > 0) {
        srv.pid = pid;
        server_stop();
    }
    return -1;
}

/* server_start - a new server on a random free port (bounded tries). */
static int server_start(void)
{
    snprintf(srv.dir, sizeof(srv.dir), "/tmp/test_bus_commit.XXXXXX");
    if (!mkdtemp(srv.dir)) {
        srv.dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < START_TRIES; i++) {
        srv.port = PORT_MIN + rand() % (PORT_MAX - PORT_MIN + 1);
        if (port_is_free(srv.port) && server_start_on() == 0)
            return 0;
    }
    srv.port = 0;
    return -1;
}

static void server_cleanup(void)
{
    server_stop();
    if (!srv.dir[0])
        return;
    DIR *d = opendir(srv.dir);
    struct dirent *e;
    for (int i = 0; d && i < 1000 && (e = readdir(d)) != NULL; i++) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", srv.dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(srv.dir);
    srv.dir[0] = '\0';
}

/* The watchdog: a child process that stops the server and removes its directory when this
 * process ends without its group teardown (a sanitizer abort, a crash outside cmocka's
 * handlers, SIGKILL). It waits on a pipe: end of file means this process is gone; a byte
 * means the teardown has done the work. */
static int watchdog_fd = -1;
static pid_t watchdog_pid;

static int watchdog_start(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[1]);
        char byte;
        ssize_t n;
        while ((n = read(fds[0], &byte, 1)) < 0 && errno == EINTR)
            ;
        if (n == 0)
            server_cleanup();
        _exit(0);
    }
    close(fds[0]);
    watchdog_fd = fds[1];
    watchdog_pid = pid;
    return 0;
}

/* watchdog_stop - the teardown stopped the server itself: let the watchdog go. */
static void watchdog_stop(void)
{
    if (watchdog_fd < 0)
        return;
    ssize_t n;
    while ((n = write(watchdog_fd, "x", 1)) < 0 && errno == EINTR)
        ;
    close(watchdog_fd);
    watchdog_fd = -1;
    while (waitpid(watchdog_pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------------------------------- */
/* the objects under test, and Redis checks                                                  */
/* ---------------------------------------------------------------------------------------- */

static struct {
    config_t *cfg, *small_cfg;
    zloop_t *loop;
    redis_conn_t *redis;
    bus_t *bus;   /* max_waiting 100000 */
    bus_t *small; /* max_waiting SMALL_MAX_WAITING, max_record SMALL_MAX_RECORD */
    redisContext *raw; /* the checks' own connection */
} g;

/* check_cmd - run a command on the raw connection; fails the test on an I/O or error reply. */
static redisReply *check_cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g.raw, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("redis: %s", g.raw->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", r->str);
        freeReplyObject(r);
        fail_msg("redis error: %s", msg);
    }
    return r;
}

/* check_int - an integer reply. */
static long long check_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g.raw, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("redis: %s", g.raw->errstr);
    if (r->type != REDIS_REPLY_INTEGER) {
        int type = r->type;
        freeReplyObject(r);
        fail_msg("expected an integer reply, got type %d", type);
    }
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* check_ok - run a command whose reply does not matter (but must not be an error). */
static void check_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g.raw, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("redis: %s", g.raw->errstr);
    int error = r->type == REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (error)
        fail_msg("redis error reply to %s", fmt);
}

/* expect_hget - key.field holds want (NULL: absent). */
static void expect_hget(const char *key, const char *field, const char *want)
{
    redisReply *r = check_cmd("HGET %s %s", key, field);
    if (!want) {
        if (r->type != REDIS_REPLY_NIL)
            fail_msg("%s.%s: expected absent, holds '%s'", key, field, r->type == REDIS_REPLY_STRING ? r->str : "?");
    } else {
        if (r->type != REDIS_REPLY_STRING)
            fail_msg("%s.%s: expected '%s', reply type %d", key, field, want, r->type);
        if (strcmp(r->str, want) != 0)
            fail_msg("%s.%s: expected '%s', holds '%s'", key, field, want, r->str);
    }
    freeReplyObject(r);
}

/* expect_absent - key does not exist. */
static void expect_absent(const char *key)
{
    if (check_int("EXISTS %s", key) != 0)
        fail_msg("key %s exists", key);
}

/* cmd_calls - how often the server ran cmd (scripts' calls included) since CONFIG RESETSTAT. */
static long long cmd_calls(const char *cmd)
{
    redisReply *r = check_cmd("INFO commandstats");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char key[64];
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, key);
    long long n = p ? atoll(p + strlen(key)) : 0;
    freeReplyObject(r);
    return n;
}

static const char *status_name(int st)
{
    switch (st) {
    case BUS_OK: return "BUS_OK";
    case BUS_DUPLICATE: return "BUS_DUPLICATE";
    case BUS_FULL: return "BUS_FULL";
    case BUS_FENCED: return "BUS_FENCED";
    case BUS_ERROR: return "BUS_ERROR";
    default: return "unknown";
    }
}

/* run_expect - run *c (a commit of bus), expect status want, destroy it. */
static void run_expect(bus_t *bus, bus_commit_t **c, bus_status_t want)
{
    bus_status_t st = bus_commit_run(*c);
    bus_commit_destroy(c);
    assert_null(*c);
    if (st != want)
        fail_msg("commit: %s (%d), expected %s; bus says: %s", status_name(st), (int)st, status_name(want),
                 bus_errstr(bus));
}

static void flush_all(void)
{
    check_ok("FLUSHALL");
}

/* ---------------------------------------------------------------------------------------- */
/* group setup / teardown                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int group_teardown(void **state)
{
    (void)state;
    bus_destroy(&g.bus);
    bus_destroy(&g.small);
    redis_conn_destroy(&g.redis);
    zloop_destroy(&g.loop);
    config_destroy(&g.cfg);
    config_destroy(&g.small_cfg);
    if (g.raw)
        redisFree(g.raw);
    g.raw = NULL;
    server_cleanup();
    watchdog_stop();
    return 0;
}

/* config_with - the defaults with [bus] max_waiting and max_record set; NULL on error. */
static config_t *config_with(const char *max_waiting, const char *max_record)
{
    config_t *cfg = config_new();
    char err[256];
    if (config_set(cfg, "bus", "max_waiting", max_waiting, err, sizeof(err)) < 0 ||
        config_set(cfg, "bus", "max_record", max_record, err, sizeof(err)) < 0) {
        fprintf(stderr, "test_bus_commit: config: %s\n", err);
        config_destroy(&cfg);
    }
    return cfg;
}

static int group_setup(void **state)
{
    (void)state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srand((unsigned)(ts.tv_nsec ^ ts.tv_sec ^ (long)getpid() << 16));
    if (access(REDIS_SERVER_BIN, X_OK) < 0) {
        fprintf(stderr, "test_bus_commit: %s is missing (apt-get install redis-server)\n", REDIS_SERVER_BIN);
        return -1;
    }
    if (server_start() < 0) {
        fprintf(stderr, "test_bus_commit: cannot start redis-server\n");
        server_cleanup();
        return -1;
    }
    if (watchdog_start() < 0) {
        fprintf(stderr, "test_bus_commit: cannot start the watchdog: %s\n", strerror(errno));
        server_cleanup();
        return -1;
    }
    char url[128], err[256] = "";
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", srv.port);
    g.cfg = config_with("100000", "1M");
    g.small_cfg = config_with(TEXT(SMALL_MAX_WAITING), TEXT(SMALL_MAX_RECORD));
    g.loop = zloop_new();
    g.redis = redis_conn_new(url, NULL, 10000, err, sizeof(err));
    g.raw = raw_connect();
    if (g.cfg && g.small_cfg && g.loop && g.redis && g.raw) {
        g.bus = bus_new(g.cfg, g.redis, g.loop, "test-bus", err, sizeof(err));
        g.small = g.bus ? bus_new(g.small_cfg, g.redis, g.loop, "test-small", err, sizeof(err)) : NULL;
    }
    if (!g.bus || !g.small) {
        fprintf(stderr, "test_bus_commit: setup failed: %s\n", err);
        group_teardown(state);
        return -1;
    }
    return 0;
}

/* test_setup - every test starts from an empty server with fresh command statistics. */
static int test_setup(void **state)
{
    (void)state;
    redisReply *r = redisCommand(g.raw, "FLUSHALL");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    r = redisCommand(g.raw, "CONFIG RESETSTAT");
    ok = ok && r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* merged writes                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* HSETs to three keys interleaved, half of A's fields written twice: every field holds the
 * last value written, and each key costs one HSET. */
static void test_hset_interleaved(void **state)
{
    (void)state;
    enum { N = 500 };
    char f[32], v[32];
    bus_commit_t *c = bus_commit_new(g.bus, NULL);
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "f%d", i);
        snprintf(v, sizeof(v), "a1-%d", i);
        bus_commit_hset(c, "t:a", f, v);
        snprintf(v, sizeof(v), "b-%d", i);
        bus_commit_hset(c, "t:b", f, v);
        if (i % 3 == 0) {
            snprintf(v, sizeof(v), "c-%d", i);
            bus_commit_hset(c, "t:c", f, v);
        }
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(f, sizeof(f), "f%d", i);
        snprintf(v, sizeof(v), "a2-%d", i);
        bus_commit_hset(c, "t:a", f, v);
    }
    bus_commit_hset(c, "t:b", "f7", "b-last"); /* the same field again, at the very end */
    assert_int_equal(bus_commit_records(c), 0);
    run_expect(g.bus, &c, BUS_OK);

    assert_int_equal(check_int("HLEN t:a"), N);
    assert_int_equal(check_int("HLEN t:b"), N);
    assert_int_equal(check_int("HLEN t:c"), (N + 2) / 3);
    char want[32];
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "f%d", i);
        snprintf(want, sizeof(want), "%s-%d", i % 2 == 0 ? "a2" : "a1", i);
        expect_hget("t:a", f, want);
        snprintf(want, sizeof(want), "b-%d", i);
        expect_hget("t:b", f, i == 7 ? "b-last" : want);
        snprintf(want, sizeof(want), "c-%d", i);
        expect_hget("t:c", f, i % 3 == 0 ? want : NULL);
    }
    /* merged: one HSET per key (each under BUS_OP_MAX_ARGS arguments) */
    assert_int_equal(cmd_calls("hset"), 3);
}

/* One step of a write sequence on one hash. */
typedef struct {
    char op; /* 'h' hset, 'd' hdel_if, 'i' hincrby (value: the delta), 'n' hsetnx */
    const char *field, *value;
} step_t;

typedef struct {
    const char *field, *value; /* value NULL: absent */
} field_t;

/* Writes of another kind to the same key keep the commit's order (a merge across them would
 * change the result); writes to another key in between change nothing. */
static void test_same_key_order(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        field_t before[2]; /* already in the hash */
        step_t steps[4];
        field_t after[3];
    } cases[] = {
        {"hdel between two fields", {{0}}, {{'h', "f", "a"}, {'d', "f", "a"}, {'h', "g", "b"}},
         {{"f", NULL}, {"g", "b"}}},
        {"hdel between one field", {{0}}, {{'h', "f", "a"}, {'d', "f", "a"}, {'h', "f", "c"}}, {{"f", "c"}}},
        {"hdel of the later value", {{0}}, {{'h', "f", "a"}, {'d', "f", "c"}, {'h', "f", "c"}}, {{"f", "c"}}},
        {"hdel not matching", {{0}}, {{'h', "f", "a"}, {'d', "f", "b"}}, {{"f", "a"}}},
        {"hdel of a stored value", {{"f", "x"}}, {{'d', "f", "x"}, {'h', "g", "b"}}, {{"f", NULL}, {"g", "b"}}},
        {"hdel of a missing field", {{0}}, {{'d', "f", "x"}, {'h', "g", "b"}}, {{"f", NULL}, {"g", "b"}}},
        {"hincrby between", {{0}}, {{'h', "n", "1"}, {'i', "n", "1"}, {'h', "n", "10"}}, {{"n", "10"}}},
        {"hincrby after", {{0}}, {{'h', "n", "1"}, {'h', "n", "10"}, {'i', "n", "5"}}, {{"n", "15"}}},
        {"hsetnx between", {{0}}, {{'n', "f", "z"}, {'h', "f", "b"}, {'n', "f", "y"}, {'h', "g", "c"}},
         {{"f", "b"}, {"g", "c"}}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        flush_all();
        for (size_t j = 0; j < 2 && cases[i].before[j].field; j++)
            check_ok("HSET t:k %s %s", cases[i].before[j].field, cases[i].before[j].value);
        bus_commit_t *c = bus_commit_new(g.bus, NULL);
        for (size_t j = 0; j < 4 && cases[i].steps[j].op; j++) {
            const step_t *s = &cases[i].steps[j];
            switch (s->op) {
            case 'h': bus_commit_hset(c, "t:k", s->field, s->value); break;
            case 'd': bus_commit_hdel_if(c, "t:k", s->field, s->value); break;
            case 'i': bus_commit_hincrby(c, "t:k", s->field, atoll(s->value)); break;
            case 'n': bus_commit_hsetnx(c, "t:k", s->field, s->value); break;
            default: fail_msg("bad step");
            }
            char other[16];
            snprintf(other, sizeof(other), "o%zu", j);
            bus_commit_hset(c, "t:other", other, s->field); /* another key in between */
        }
        bus_status_t st = bus_commit_run(c);
        bus_commit_destroy(&c);
        if (st != BUS_OK)
            fail_msg("case '%s': %s: %s", cases[i].name, status_name(st), bus_errstr(g.bus));
        for (size_t j = 0; j < 3 && cases[i].after[j].field; j++)
            expect_hget("t:k", cases[i].after[j].field, cases[i].after[j].value);
        long long fields = 0;
        for (size_t j = 0; j < 3 && cases[i].after[j].field; j++)
            fields += cases[i].after[j].value != NULL;
        if (check_int("HLEN t:k") != fields)
            fail_msg("case '%s': %lld fields, expected %lld", cases[i].name, check_int("HLEN t:k"), fields);
        for (size_t j = 0; j < 4 && cases[i].steps[j].op; j++) {
            char other[16];
            snprintf(other, sizeof(other), "o%zu", j);
            expect_hget("t:other", other, cases[i].steps[j].field);
        }
    }
}

/* list_value - list value i in out (16 bytes): i % 4 NULs, the index, a NUL, 0xff; every 100th
 * is empty. Its length. */
static size_t list_value(int i, unsigned char out[16])
{
    size_t len = 0;
    if (i % 100 == 99)
        return 0;
    for (int k = 0; k < i % 4; k++)
        out[len++] = 0;
    len += (size_t)snprintf((char *)out + len, 16 - len, "%d", i);
    out[len++] = 0;
    out[len++] = 0xff;
    return len;
}

/* ZADD of many members and RPUSH of many values (binary, empty, past BUS_OP_MAX_ARGS)
 * interleaved: every member with its last score, the list in order. */
static void test_zadd_rpush(void **state)
{
    (void)state;
    enum { NZ = 1500, NL = 2500 };
    char m[32];
    unsigned char val[16];
    bus_commit_t *c = bus_commit_new(g.bus, NULL);
    for (int i = 0; i < NL; i++) {
        if (i < NZ) {
            snprintf(m, sizeof(m), "m%d", i);
            bus_commit_zadd(c, "t:z", (int64_t)i * 7 - 1000, m);
        }
        bus_commit_rpush(c, "t:l", val, list_value(i, val));
    }
    bus_commit_zadd(c, "t:z", 123456789012LL, "m3"); /* a member again: the last score wins */
    bus_commit_zadd(c, "t:z", -5, "only-once");
    run_expect(g.bus, &c, BUS_OK);

    assert_int_equal(check_int("ZCARD t:z"), NZ + 1);
    redisReply *r = check_cmd("ZRANGE t:z 0 -1 WITHSCORES");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2 * (NZ + 1));
    size_t seen = 0;
    for (size_t i = 0; i < r->elements; i += 2) {
        const char *member = r->element[i]->str;
        long long score = atoll(r->element[i + 1]->str);
        if (strcmp(member, "only-once") == 0) {
            assert_int_equal(score, -5);
        } else if (strcmp(member, "m3") == 0) {
            assert_int_equal(score, 123456789012LL);
        } else {
            assert_int_equal(member[0], 'm');
            long long idx = atoll(member + 1);
            assert_in_range(idx, 0, NZ - 1);
            assert_int_equal(score, idx * 7 - 1000);
        }
        seen++;
    }
    assert_int_equal(seen, NZ + 1);
    freeReplyObject(r);

    assert_int_equal(check_int("LLEN t:l"), NL);
    r = check_cmd("LRANGE t:l 0 -1");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, NL);
    for (int i = 0; i < NL; i++) {
        size_t len = list_value(i, val);
        if (r->element[i]->len != len || memcmp(r->element[i]->str, val, len) != 0)
            fail_msg("list element %d: %zu bytes, expected %zu", i, r->element[i]->len, len);
    }
    freeReplyObject(r);
    /* merged: 1502 members and 2500 values cost a couple of ZADDs and RPUSHes (each operation
     * holds at most BUS_OP_MAX_ARGS arguments) */
    assert_in_range(cmd_calls("zadd"), 1, 2);
    assert_in_range(cmd_calls("rpush"), 2, 3);
}

/* ---------------------------------------------------------------------------------------- */
/* large commits and full edges                                                              */
/* ---------------------------------------------------------------------------------------- */

/* payload_of - the payload of record i (binary: it starts with a NUL); its length. */
static size_t payload_of(int i, char *buf, size_t size)
{
    buf[0] = '\0';
    return 1 + (size_t)snprintf(buf + 1, size - 1, "payload-%d", i);
}

/* 3000 HSET fields to one key and 2500 records to one edge in one commit: everything lands,
 * past the BUS_OP_MAX_ARGS split of both. */
static void test_large_commit(void **state)
{
    (void)state;
    enum { NF = 3000, NR = 2500 };
    char f[32], v[32], id[32], p[32];
    bus_commit_t *c = bus_commit_new(g.bus, NULL);
    for (int i = 0; i < NF; i++) {
        snprintf(f, sizeof(f), "f%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        bus_commit_hset(c, "t:big", f, v);
        if (i < NR) {
            snprintf(id, sizeof(id), "r%d", i);
            size_t len = payload_of(i, p, sizeof(p));
            assert_int_equal(bus_commit_add(c, "t1", id, p, len), 0);
        }
    }
    assert_int_equal(bus_commit_records(c), NR);
    run_expect(g.bus, &c, BUS_OK);

    char q[96];
    bus_key(q, sizeof(q), "t1", "q");
    assert_string_equal(q, "cb:bus:t1:q");
    assert_int_equal(check_int("XLEN cb:bus:t1:q"), NR);
    assert_int_equal(check_int("HLEN t:big"), NF);

    redisReply *r = check_cmd("HGETALL t:big");
    assert_int_equal(r->elements, 2 * NF);
    char *seen = calloc(NF, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < r->elements; i += 2) {
        const char *field = r->element[i]->str;
        assert_int_equal(field[0], 'f');
        long idx = atol(field + 1);
        assert_in_range(idx, 0, NF - 1);
        snprintf(v, sizeof(v), "v%ld", idx);
        assert_string_equal(r->element[i + 1]->str, v);
        seen[idx]++;
    }
    for (int i = 0; i < NF; i++)
        assert_int_equal(seen[i], 1);
    free(seen);
    freeReplyObject(r);

    /* the records in the order added, each with its id and payload */
    r = check_cmd("XRANGE cb:bus:t1:q - +");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, NR);
    for (int i = 0; i < NR; i++) {
        const redisReply *fields = r->element[i]->element[1];
        assert_int_equal(fields->elements, 4);
        snprintf(id, sizeof(id), "r%d", i);
        size_t len = payload_of(i, p, sizeof(p));
        assert_string_equal(fields->element[0]->str, "i");
        assert_string_equal(fields->element[1]->str, id);
        assert_string_equal(fields->element[2]->str, "r");
        assert_int_equal(fields->element[3]->len, len);
        assert_memory_equal(fields->element[3]->str, p, len);
    }
    freeReplyObject(r);
    /* a few HSETs for 3000 fields, one XADD per record */
    assert_in_range(cmd_calls("hset"), 2, 4);
    assert_int_equal(cmd_calls("xadd"), NR);
}

/* add_records - a commit of n records to edge on bus; its status. */
static bus_status_t add_records(bus_t *bus, const char *edge, int first, int n)
{
    bus_commit_t *c = bus_commit_new(bus, NULL);
    for (int i = first; i < first + n; i++) {
        char id[32], p[32];
        snprintf(id, sizeof(id), "r%d", i);
        size_t len = payload_of(i, p, sizeof(p));
        assert_int_equal(bus_commit_add(c, edge, id, p, len), 0);
    }
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    return st;
}

/* An edge holding max_waiting records refuses a commit adding to it: nothing of the commit is
 * written; the same commit runs once there is room. Below max_waiting a commit may add more. */
static void test_full(void **state)
{
    (void)state;
    /* 4 waiting (< 5): a commit of 3 goes through, the edge then holds 7 */
    assert_int_equal(add_records(g.small, "t2", 0, 4), BUS_OK);
    assert_int_equal(add_records(g.small, "t2", 4, 3), BUS_OK);
    assert_int_equal(check_int("XLEN cb:bus:t2:q"), 7);

    bus_commit_t *c = bus_commit_new(g.small, NULL);
    bus_commit_hset(c, "t:state", "cursor", "42");
    bus_commit_rpush(c, "t:list", "x", 1);
    assert_int_equal(bus_commit_add(c, "t1", "a1", "p", 1), 0); /* an edge with room */
    assert_int_equal(bus_commit_add(c, "t2", "a2", "p", 1), 0); /* the full one */
    bus_commit_pexpire(c, "t:state", 60000);
    assert_int_equal(bus_commit_records(c), 2);
    assert_int_equal(bus_commit_run(c), BUS_FULL);
    assert_non_null(strstr(bus_errstr(g.small), "full"));
    expect_absent("t:state");
    expect_absent("t:list");
    expect_absent("cb:bus:t1:q");
    assert_int_equal(check_int("XLEN cb:bus:t2:q"), 7);

    /* still full at exactly max_waiting */
    check_ok("XTRIM cb:bus:t2:q MAXLEN %d", SMALL_MAX_WAITING);
    assert_int_equal(check_int("XLEN cb:bus:t2:q"), SMALL_MAX_WAITING);
    assert_int_equal(bus_commit_run(c), BUS_FULL);
    expect_absent("t:state");
    expect_absent("cb:bus:t1:q");

    /* room again: the same commit runs, everything lands */
    check_ok("XTRIM cb:bus:t2:q MAXLEN %d", SMALL_MAX_WAITING - 1);
    run_expect(g.small, &c, BUS_OK);
    expect_hget("t:state", "cursor", "42");
    assert_in_range(check_int("PTTL t:state"), 1, 60000);
    assert_int_equal(check_int("LLEN t:list"), 1);
    assert_int_equal(check_int("XLEN cb:bus:t1:q"), 1);
    assert_int_equal(check_int("XLEN cb:bus:t2:q"), SMALL_MAX_WAITING);
}

/* A refused output (bad edge, bad id, larger than max_record) makes the commit fail as a whole
 * (BUS_ERROR, nothing written); a record of exactly max_record is fine. */
static void test_invalid_output(void **state)
{
    (void)state;
    const size_t max_record = SMALL_MAX_RECORD;
    char *big = calloc(max_record + 1, 1);
    assert_non_null(big);
    char long_id[RECORD_MAX_ID + 2];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    static const struct {
        const char *name, *edge;
        int id; /* 0 "r1", 1 "", 2 RECORD_MAX_ID + 1 bytes */
        size_t len;
    } cases[] = {
        {"upper-case edge", "T1", 0, 1},
        {"edge with a colon", "t:1", 0, 1},
        {"empty edge", "", 0, 1},
        {"edge too long", "abcdefghijklmnopqrstuvwxyz0123456", 0, 1},
        {"empty id", "t1", 1, 1},
        {"id too long", "t1", 2, 1},
        {"record too large", "t1", 0, SMALL_MAX_RECORD + 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *id = cases[i].id == 0 ? "r1" : cases[i].id == 1 ? "" : long_id;
        bus_commit_t *c = bus_commit_new(g.small, NULL);
        bus_commit_hset(c, "t:state", "f", "v");
        assert_int_equal(bus_commit_add(c, "t3", "ok", "p", 1), 0);
        if (bus_commit_add(c, cases[i].edge, id, big, cases[i].len) != -1)
            fail_msg("case '%s': accepted", cases[i].name);
        bus_status_t st = bus_commit_run(c);
        bus_commit_destroy(&c);
        if (st != BUS_ERROR)
            fail_msg("case '%s': %s", cases[i].name, status_name(st));
        expect_absent("t:state");
        expect_absent("cb:bus:t3:q");
    }
    /* the limits themselves are accepted */
    long_id[RECORD_MAX_ID] = '\0';
    bus_commit_t *c = bus_commit_new(g.small, NULL);
    assert_int_equal(bus_commit_add(c, "abcdefghijklmnopqrstuvwxyz012345", long_id, big, max_record), 0);
    run_expect(g.small, &c, BUS_OK);
    redisReply *r = check_cmd("XRANGE cb:bus:abcdefghijklmnopqrstuvwxyz012345:q - +");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[1]->element[1]->str, long_id);
    assert_int_equal(r->element[0]->element[1]->element[3]->len, max_record);
    freeReplyObject(r);
    free(big);
}

/* A commit that Redis refuses part-way (a write to a key of another type, HINCRBY of a field
 * that is not a number) returns BUS_ERROR and, as bus.h promises, writes nothing: neither its
 * records nor its earlier writes. */
static void test_error_writes_nothing(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        char op; /* the failing write: 'h' HSET on a string key, 'i' HINCRBY of a text field */
    } cases[] = {
        {"hset on a string key", 'h'},
        {"hincrby of a text field", 'i'},
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        flush_all();
        check_ok("SET t:str text");
        check_ok("HSET t:num n text");
        bus_commit_t *c = bus_commit_new(g.bus, NULL);
        assert_int_equal(bus_commit_add(c, "t1", "e1", "p", 1), 0);
        bus_commit_hset(c, "t:before", "f", "v");
        if (cases[i].op == 'h')
            bus_commit_hset(c, "t:str", "f", "v");
        else
            bus_commit_hincrby(c, "t:num", "n", 1);
        bus_commit_hset(c, "t:after", "f", "v");
        bus_status_t st = bus_commit_run(c);
        bus_commit_destroy(&c);
        if (st != BUS_ERROR)
            fail_msg("case '%s': %s, expected BUS_ERROR", cases[i].name, status_name(st));
        assert_true(bus_errstr(g.bus)[0] != '\0');
        expect_absent("t:after");
        long long xlen = check_int("XLEN cb:bus:t1:q");
        long long before = check_int("EXISTS t:before");
        if (xlen != 0 || before != 0) {
            print_error("case '%s': BUS_ERROR, yet %lld record(s) added and t:before %s\n", cases[i].name, xlen,
                        before ? "written" : "absent");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* guards                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* guarded_commit - a commit guarding fields f0..f<n-1> of t:claims with value "u", writing a
 * record, a hash field and a list value; its status. */
static bus_status_t guarded_commit(int n)
{
    bus_commit_t *c = bus_commit_new(g.bus, NULL);
    for (int i = 0; i < n; i++) {
        char f[32];
        snprintf(f, sizeof(f), "f%d", i);
        bus_commit_guard_field(c, "t:claims", f, "u");
        if (i == n / 2) {
            assert_int_equal(bus_commit_add(c, "t1", "g1", "payload", 7), 0);
            bus_commit_hset(c, "t:out", "done", "yes");
        }
    }
    bus_commit_rpush(c, "t:outlist", "v", 1);
    bus_commit_hset(c, "t:claims", "f0", "u"); /* claim what was guarded */
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    return st;
}

/* expect_guarded_effects - the effects of guarded_commit are all there (or none of them). */
static void expect_guarded_effects(bool written)
{
    assert_int_equal(check_int("EXISTS cb:bus:t1:q"), written);
    assert_int_equal(check_int("EXISTS t:out"), written);
    assert_int_equal(check_int("EXISTS t:outlist"), written);
    if (written) {
        assert_int_equal(check_int("XLEN cb:bus:t1:q"), 1);
        expect_hget("t:out", "done", "yes");
        expect_hget("t:claims", "f0", "u");
    }
}

/* Field guards on one key with one value (one HMGET, or several past BUS_OP_MAX_ARGS): absent
 * or holding the value passes; any field holding another value fences the whole commit. */
static void test_guard_fields(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int n;             /* fields guarded */
        const char *field; /* set before the commit, or NULL */
        const char *value;
        bus_status_t want;
    } cases[] = {
        {"all absent", 100, NULL, NULL, BUS_OK},
        {"one holds the value", 100, "f50", "u", BUS_OK},
        {"the first holds the value", 100, "f0", "u", BUS_OK},
        {"one holds another value", 100, "f50", "other", BUS_FENCED},
        {"the last holds another value", 100, "f99", "other", BUS_FENCED},
        {"the first holds another value", 100, "f0", "other", BUS_FENCED},
        {"an unguarded field holds another value", 100, "f100", "other", BUS_OK},
        {"a prefix of the value", 100, "f7", "", BUS_FENCED},
        {"2500 fields, all absent", 2500, NULL, NULL, BUS_OK},
        {"2500 fields, the last holds the value", 2500, "f2499", "u", BUS_OK},
        {"2500 fields, another value past the first HMGET", 2500, "f2400", "other", BUS_FENCED},
        {"2500 fields, another value in the first HMGET", 2500, "f3", "other", BUS_FENCED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        flush_all();
        if (cases[i].field)
            check_ok("HSET t:claims %s %s", cases[i].field, cases[i].value);
        bus_status_t st = guarded_commit(cases[i].n);
        if (st != cases[i].want)
            fail_msg("case '%s': %s, expected %s", cases[i].name, status_name(st), status_name(cases[i].want));
        expect_guarded_effects(st == BUS_OK);
        /* the claims hash is untouched by a fenced commit */
        if (st != BUS_OK) {
            assert_non_null(strstr(bus_errstr(g.bus), "guard"));
            assert_int_equal(check_int("HLEN t:claims"), 1);
            expect_hget("t:claims", cases[i].field, cases[i].value);
        }
    }
}

/* Field guards of two values on one key (u, v, u: three checks, in the right groups) and
 * GET guards on a string key. */
static void test_guard_mixed(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *lease; /* t:lease, or NULL */
        field_t claims[3]; /* t:claims before */
        bus_status_t want;
    } cases[] = {
        {"all hold", "L1", {{"a1", "u"}, {"b1", "v"}, {"a2", "u"}}, BUS_OK},
        {"all absent but the lease", "L1", {{0}}, BUS_OK},
        {"v field holds u", "L1", {{"b1", "u"}}, BUS_FENCED},
        {"u field holds v", "L1", {{"a2", "v"}}, BUS_FENCED},
        {"first u field holds v", "L1", {{"a1", "v"}, {"b1", "v"}}, BUS_FENCED},
        {"lease held by another", "L2", {{"a1", "u"}}, BUS_FENCED},
        {"lease a prefix", "L", {{0}}, BUS_FENCED},
        {"lease absent", NULL, {{0}}, BUS_FENCED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        flush_all();
        if (cases[i].lease)
            check_ok("SET t:lease %s", cases[i].lease);
        for (size_t j = 0; j < 3 && cases[i].claims[j].field; j++)
            check_ok("HSET t:claims %s %s", cases[i].claims[j].field, cases[i].claims[j].value);
        bus_commit_t *c = bus_commit_new(g.bus, NULL);
        bus_commit_guard_field(c, "t:claims", "a1", "u");
        bus_commit_guard_field(c, "t:claims", "b1", "v");
        bus_commit_guard_field(c, "t:claims", "a2", "u");
        bus_commit_guard(c, "t:lease", "L1");
        bus_commit_hset(c, "t:out", "done", "yes");
        assert_int_equal(bus_commit_add(c, "t1", "m1", "p", 1), 0);
        bus_status_t st = bus_commit_run(c);
        bus_commit_destroy(&c);
        if (st != cases[i].want)
            fail_msg("case '%s': %s, expected %s", cases[i].name, status_name(st), status_name(cases[i].want));
        assert_int_equal(check_int("EXISTS t:out"), st == BUS_OK);
        assert_int_equal(check_int("EXISTS cb:bus:t1:q"), st == BUS_OK);
        if (cases[i].lease) {
            redisReply *r = check_cmd("GET t:lease");
            assert_string_equal(r->str, cases[i].lease);
            freeReplyObject(r);
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* time to live, counters                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* PEXPIRE runs after every write (so it applies to keys the commit creates) and the last call
 * for a key wins. The commit's first key comes from a write: a key first named by
 * bus_commit_pexpire is test_pexpire_first_key's and test_pexpire_new_key_grows' case. */
static void test_pexpire(void **state)
{
    (void)state;
    check_ok("SET t:old x");
    bus_commit_t *c = bus_commit_new(g.bus, NULL);
    bus_commit_hset(c, "t:plain", "f", "v");
    bus_commit_pexpire(c, "t:h", 60000); /* before the key exists */
    bus_commit_hset(c, "t:h", "f", "v");
    bus_commit_pexpire(c, "t:l", 600000);
    bus_commit_pexpire(c, "t:l", 5000); /* shorter, last */
    bus_commit_rpush(c, "t:l", "a", 1);
    bus_commit_rpush(c, "t:l", "b", 1);
    bus_commit_pexpire(c, "t:z", 5000);
    bus_commit_zadd(c, "t:z", 1, "m");
    bus_commit_pexpire(c, "t:z", 600000); /* longer, last */
    bus_commit_hincrby(c, "t:n", "count", 1);
    bus_commit_pexpire(c, "t:n", 30000); /* after the write */
    bus_commit_pexpire(c, "t:old", 20000);  /* no write in the commit */
    bus_commit_pexpire(c, "t:none", 20000); /* no key at all */
    run_expect(g.bus, &c, BUS_OK);

    expect_hget("t:h", "f", "v");
    assert_in_range(check_int("PTTL t:h"), 1, 60000);
    assert_int_equal(check_int("LLEN t:l"), 2);
    assert_in_range(check_int("PTTL t:l"), 1, 5000);
    assert_in_range(check_int("PTTL t:z"), 5001, 600000);
    assert_in_range(check_int("PTTL t:n"), 1, 30000);
    assert_int_equal(check_int("PTTL t:plain"), -1);
    assert_in_range(check_int("PTTL t:old"), 1, 20000);
    expect_absent("t:none");

    /* a later commit without pexpire leaves a TTL alone; with one, replaces it */
    c = bus_commit_new(g.bus, NULL);
    bus_commit_hset(c, "t:h", "g", "w");
    bus_commit_hset(c, "t:plain", "g", "w");
    bus_commit_pexpire(c, "t:plain", 9000);
    run_expect(g.bus, &c, BUS_OK);
    assert_in_range(check_int("PTTL t:h"), 1, 60000);
    assert_in_range(check_int("PTTL t:plain"), 1, 9000);
}

/* bus_commit_pexpire as the very first call of a commit (its first key): the TTL is set. */
static void test_pexpire_first_key(void **state)
{
    (void)state;
    bus_commit_t *c = bus_commit_new(g.bus, NULL);
    bus_commit_pexpire(c, "t:h", 60000);
    bus_commit_hset(c, "t:h", "f", "v");
    run_expect(g.bus, &c, BUS_OK);
    expect_hget("t:h", "f", "v");
    assert_in_range(check_int("PTTL t:h"), 1, 60000);
}

/* bus_commit_pexpire naming the key that makes the commit's key table grow (the 17th, 33rd,
 * 65th): the TTL is set like any other. */
static void test_pexpire_new_key_grows(void **state)
{
    (void)state;
    for (int nkeys = 16; nkeys <= 64; nkeys *= 2) {
        flush_all();
        bus_commit_t *c = bus_commit_new(g.bus, NULL);
        char key[32];
        for (int i = 0; i < nkeys; i++) {
            snprintf(key, sizeof(key), "t:k%d", i);
            bus_commit_hset(c, key, "f", "v");
        }
        bus_commit_pexpire(c, "t:grow", 60000); /* key number nkeys + 1 */
        bus_commit_hset(c, "t:grow", "f", "v");
        run_expect(g.bus, &c, BUS_OK);
        expect_hget("t:grow", "f", "v");
        long long ttl = check_int("PTTL t:grow");
        if (ttl < 1 || ttl > 60000)
            fail_msg("pexpire as key %d of a commit: PTTL %lld", nkeys + 1, ttl);
        assert_int_equal(check_int("PTTL t:k0"), -1);
    }
}

/* HINCRBY twice on one field sums (from absent and from a stored value); HSETNX does not
 * overwrite, neither a stored field nor one set earlier in the commit. */
static void test_hincrby_hsetnx(void **state)
{
    (void)state;
    check_ok("HSET t:c stored 10 kept old");
    bus_commit_t *c = bus_commit_new(g.bus, NULL);
    bus_commit_hincrby(c, "t:c", "fresh", 5);
    bus_commit_hincrby(c, "t:c", "stored", 7);
    bus_commit_hincrby(c, "t:c", "fresh", -2);
    bus_commit_hincrby(c, "t:c", "stored", 1);
    bus_commit_hincrby(c, "t:c", "big", INT64_C(4000000000));
    bus_commit_hincrby(c, "t:c", "big", INT64_C(4000000000));
    bus_commit_hsetnx(c, "t:c", "kept", "new");
    bus_commit_hsetnx(c, "t:c", "first", "1");
    bus_commit_hsetnx(c, "t:c", "first", "2");
    bus_commit_hset(c, "t:c", "set", "a");
    bus_commit_hsetnx(c, "t:c", "set", "b");
    run_expect(g.bus, &c, BUS_OK);
    expect_hget("t:c", "fresh", "3");
    expect_hget("t:c", "stored", "18");
    expect_hget("t:c", "big", "8000000000");
    expect_hget("t:c", "kept", "old");
    expect_hget("t:c", "first", "1");
    expect_hget("t:c", "set", "a");
    assert_int_equal(check_int("HLEN t:c"), 6);
    assert_int_equal(cmd_calls("hincrby"), 6);
}

/* ---------------------------------------------------------------------------------------- */
/* commits consuming an input                                                                */
/* ---------------------------------------------------------------------------------------- */

/* xadd_entry - add a record to edge's stream as a producer would; its entry id in out. */
static void xadd_entry(const char *edge, const char *record_id, const char *payload, char *out, size_t size)
{
    char q[96];
    bus_key(q, sizeof(q), edge, "q");
    redisReply *r = check_cmd("XADD %s * i %s r %s", q, record_id, payload);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(out, size, "%s", r->str);
    freeReplyObject(r);
}

/* A commit consuming an input removes it from its stream and remembers it; the same input
 * again is a duplicate that writes nothing. */
static void test_input_commit(void **state)
{
    (void)state;
    char entry[64];
    xadd_entry("t1", "rec-1", "data", entry, sizeof(entry));
    bus_delivery_t d = {.edge = "t1", .entry_id = entry, .record_id = "rec-1", .payload = "data", .len = 4};
    bus_commit_t *c = bus_commit_new(g.bus, &d);
    assert_int_equal(bus_commit_add(c, "t2", "rec-1.out", "out", 3), 0);
    bus_commit_hset(c, "t:state", "f", "1");
    run_expect(g.bus, &c, BUS_OK);
    assert_int_equal(check_int("XLEN cb:bus:t1:q"), 0);
    assert_int_equal(check_int("XLEN cb:bus:t2:q"), 1);
    redisReply *r = check_cmd("ZSCORE cb:bus:t1:done rec-1");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    expect_hget("t:state", "f", "1");

    /* delivered again (a redispatch): nothing is written */
    xadd_entry("t1", "rec-1", "data", entry, sizeof(entry));
    c = bus_commit_new(g.bus, &d);
    assert_int_equal(bus_commit_add(c, "t2", "rec-1.out", "out", 3), 0);
    bus_commit_hset(c, "t:state", "f", "2");
    bus_commit_hset(c, "t:state2", "f", "2");
    run_expect(g.bus, &c, BUS_DUPLICATE);
    assert_int_equal(check_int("XLEN cb:bus:t1:q"), 0); /* acknowledged and deleted all the same */
    assert_int_equal(check_int("XLEN cb:bus:t2:q"), 1);
    expect_hget("t:state", "f", "1");
    expect_absent("t:state2");
}

/* bus_set_aside moves a delivery to the edge's dead letters with its reason, once. */
static void test_set_aside(void **state)
{
    (void)state;
    char entry[64];
    xadd_entry("t1", "bad-1", "junk", entry, sizeof(entry));
    xadd_entry("t1", "good-1", "fine", (char[64]){0}, 64);
    bus_delivery_t d = {.edge = "t1", .entry_id = entry, .record_id = "bad-1", .payload = "junk", .len = 4};
    assert_int_equal(bus_set_aside(g.bus, &d, "wrong type"), 0);
    assert_int_equal(check_int("XLEN cb:bus:t1:q"), 1); /* only good-1 is left */
    redisReply *r = check_cmd("XRANGE cb:bus:t1:q - +");
    assert_string_equal(r->element[0]->element[1]->element[1]->str, "good-1");
    freeReplyObject(r);
    r = check_cmd("XRANGE cb:bus:t1:dead - +");
    assert_int_equal(r->elements, 1);
    const redisReply *f = r->element[0]->element[1];
    assert_int_equal(f->elements, 6);
    assert_string_equal(f->element[0]->str, "i");
    assert_string_equal(f->element[1]->str, "bad-1");
    assert_string_equal(f->element[2]->str, "r");
    assert_string_equal(f->element[3]->str, "junk");
    assert_string_equal(f->element[4]->str, "why");
    assert_string_equal(f->element[5]->str, "wrong type");
    freeReplyObject(r);
    /* set aside again (delivered twice): acknowledged, not added a second time */
    assert_int_equal(bus_set_aside(g.bus, &d, "wrong type"), 0);
    assert_int_equal(check_int("XLEN cb:bus:t1:dead"), 1);
}

/* ---------------------------------------------------------------------------------------- */
/* commits sent ahead (bus_commit_send, bus_commit_finish)                                   */
/* ---------------------------------------------------------------------------------------- */

/* step_commit - a commit of bus adding record id to edge, setting t:state.cursor to cursor and
 * counting itself in t:count.n. Caller destroys it. */
static bus_commit_t *step_commit(bus_t *bus, const char *edge, const char *id, const char *cursor)
{
    bus_commit_t *c = bus_commit_new(bus, NULL);
    assert_int_equal(bus_commit_add(c, edge, id, cursor, strlen(cursor)), 0);
    bus_commit_hset(c, "t:state", "cursor", cursor);
    bus_commit_hincrby(c, "t:count", "n", 1);
    return c;
}

/* send_ok - send c; the send must succeed. */
static void send_ok(bus_t *bus, bus_commit_t *c)
{
    if (bus_commit_send(c) != 0)
        fail_msg("bus_commit_send: %s", bus_errstr(bus));
}

/* finish_expect - finish *c, expect want, destroy it. */
static void finish_expect(bus_t *bus, bus_commit_t **c, bus_status_t want)
{
    bus_status_t st = bus_commit_finish(*c);
    bus_commit_destroy(c);
    assert_null(*c);
    if (st != want)
        fail_msg("finish: %s (%d), expected %s; bus says: %s", status_name(st), (int)st, status_name(want),
                 bus_errstr(bus));
}

/* expect_stream_ids - edge's stream holds exactly the records ids[0..n), in that order. */
static void expect_stream_ids(const char *edge, const char *const *ids, size_t n)
{
    char q[96];
    bus_key(q, sizeof(q), edge, "q");
    redisReply *r = check_cmd("XRANGE %s - +", q);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    if (r->elements != n) {
        size_t got = r->elements;
        freeReplyObject(r);
        fail_msg("%s: %zu records, expected %zu", q, got, n);
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = r->element[i]->element[1];
        assert_int_equal(f->elements, 4);
        assert_string_equal(f->element[0]->str, "i");
        assert_string_equal(f->element[1]->str, ids[i]);
    }
    freeReplyObject(r);
}

/* Three commits sent before the first is finished, finished in order: all land, once each, in
 * the order sent (the last cursor wins); the connection refuses other commands meanwhile. */
static void test_send_ahead(void **state)
{
    (void)state;
    bus_commit_t *c1 = step_commit(g.bus, "t1", "s1", "1");
    bus_commit_t *c2 = step_commit(g.bus, "t1", "s2", "2");
    bus_commit_t *c3 = step_commit(g.bus, "t1", "s3", "3");
    send_ok(g.bus, c1);
    send_ok(g.bus, c2);
    send_ok(g.bus, c3);
    assert_null(redis_conn_command(g.redis, "PING")); /* the replies are not read yet */
    assert_non_null(strstr(redis_conn_errstr(g.redis), "pending"));
    finish_expect(g.bus, &c1, BUS_OK);
    finish_expect(g.bus, &c2, BUS_OK);
    finish_expect(g.bus, &c3, BUS_OK);
    static const char *const ids[] = {"s1", "s2", "s3"};
    expect_stream_ids("t1", ids, 3);
    expect_hget("t:state", "cursor", "3");
    expect_hget("t:count", "n", "3");
    assert_int_equal(cmd_calls("xadd"), 3);
    assert_int_equal(cmd_calls("hincrby"), 3);

    /* the connection is free again: a plain run works, and sending ahead again too */
    bus_commit_t *c = step_commit(g.bus, "t1", "s4", "4");
    run_expect(g.bus, &c, BUS_OK);
    c1 = step_commit(g.bus, "t1", "s5", "5");
    c2 = step_commit(g.bus, "t1", "s6", "6");
    send_ok(g.bus, c1);
    send_ok(g.bus, c2);
    finish_expect(g.bus, &c1, BUS_OK);
    finish_expect(g.bus, &c2, BUS_OK);
    static const char *const all[] = {"s1", "s2", "s3", "s4", "s5", "s6"};
    expect_stream_ids("t1", all, 6);
    expect_hget("t:state", "cursor", "6");
    expect_hget("t:count", "n", "6");
}

/* Commits sent ahead consuming inputs: each input is consumed by its own commit; the same
 * input twice in a row is committed once, the second a duplicate that writes nothing. */
static void test_send_ahead_inputs(void **state)
{
    (void)state;
    char e1[64], e2[64], e1again[64];
    xadd_entry("t1", "in-1", "d1", e1, sizeof(e1));
    xadd_entry("t1", "in-2", "d2", e2, sizeof(e2));
    xadd_entry("t1", "in-1", "d1", e1again, sizeof(e1again)); /* redispatched copy */
    bus_delivery_t d1 = {.edge = "t1", .entry_id = e1, .record_id = "in-1", .payload = "d1", .len = 2};
    bus_delivery_t d2 = {.edge = "t1", .entry_id = e2, .record_id = "in-2", .payload = "d2", .len = 2};
    bus_delivery_t d1again = {.edge = "t1", .entry_id = e1again, .record_id = "in-1", .payload = "d1", .len = 2};
    bus_commit_t *c[3] = {bus_commit_new(g.bus, &d1), bus_commit_new(g.bus, &d2), bus_commit_new(g.bus, &d1again)};
    assert_int_equal(bus_commit_add(c[0], "t2", "in-1.out", "o1", 2), 0);
    assert_int_equal(bus_commit_add(c[1], "t2", "in-2.out", "o2", 2), 0);
    assert_int_equal(bus_commit_add(c[2], "t2", "in-1.out", "o1", 2), 0);
    bus_commit_hset(c[2], "t:dup", "f", "written");
    for (int i = 0; i < 3; i++)
        send_ok(g.bus, c[i]);
    finish_expect(g.bus, &c[0], BUS_OK);
    finish_expect(g.bus, &c[1], BUS_OK);
    finish_expect(g.bus, &c[2], BUS_DUPLICATE); /* in-1 was committed by the first */
    assert_int_equal(check_int("XLEN cb:bus:t1:q"), 0); /* all three entries acknowledged */
    static const char *const ids[] = {"in-1.out", "in-2.out"};
    expect_stream_ids("t2", ids, 2);
    assert_int_equal(check_int("ZCARD cb:bus:t1:done"), 2);
    expect_absent("t:dup");
}

/* Each commit sent ahead is atomic on its own: a fenced (or full) one writes nothing and does
 * not undo the ones before or after it, which see each other's writes. */
static void test_send_ahead_fenced(void **state)
{
    (void)state;
    /* the first fenced, the second goes through */
    check_ok("SET t:lease L2");
    bus_commit_t *c1 = step_commit(g.bus, "t1", "f1", "1");
    bus_commit_guard(c1, "t:lease", "L1");
    bus_commit_hset(c1, "t:fenced", "f", "v");
    bus_commit_t *c2 = step_commit(g.bus, "t1", "ok2", "2");
    bus_commit_guard(c2, "t:lease", "L2");
    send_ok(g.bus, c1);
    send_ok(g.bus, c2);
    finish_expect(g.bus, &c1, BUS_FENCED);
    assert_non_null(strstr(bus_errstr(g.bus), "guard"));
    finish_expect(g.bus, &c2, BUS_OK);
    expect_absent("t:fenced");
    static const char *const ids[] = {"ok2"};
    expect_stream_ids("t1", ids, 1);
    expect_hget("t:state", "cursor", "2");
    expect_hget("t:count", "n", "1");

    /* ok, fenced, ok: the third is not undone by the second, nor the first by either */
    flush_all();
    check_ok("SET t:lease L1");
    bus_commit_t *c[3] = {step_commit(g.bus, "t1", "a", "1"), step_commit(g.bus, "t1", "b", "2"),
                          step_commit(g.bus, "t1", "c", "3")};
    bus_commit_guard(c[1], "t:lease", "other");
    for (int i = 0; i < 3; i++)
        send_ok(g.bus, c[i]);
    finish_expect(g.bus, &c[0], BUS_OK);
    finish_expect(g.bus, &c[1], BUS_FENCED);
    finish_expect(g.bus, &c[2], BUS_OK);
    static const char *const ac[] = {"a", "c"};
    expect_stream_ids("t1", ac, 2);
    expect_hget("t:state", "cursor", "3");
    expect_hget("t:count", "n", "2");

    /* a commit sent ahead sees the ones before it: the first fills the small edge to
     * max_waiting, so the second is BUS_FULL; the third (another edge) goes through */
    flush_all();
    bus_commit_t *fill = bus_commit_new(g.small, NULL);
    for (int i = 0; i < SMALL_MAX_WAITING; i++) {
        char id[16];
        snprintf(id, sizeof(id), "w%d", i);
        assert_int_equal(bus_commit_add(fill, "t2", id, "p", 1), 0);
    }
    bus_commit_t *over = step_commit(g.small, "t2", "over", "over");
    bus_commit_t *other = step_commit(g.small, "t3", "t3-1", "t3");
    send_ok(g.small, fill);
    send_ok(g.small, over);
    send_ok(g.small, other);
    finish_expect(g.small, &fill, BUS_OK);
    finish_expect(g.small, &over, BUS_FULL);
    finish_expect(g.small, &other, BUS_OK);
    assert_int_equal(check_int("XLEN cb:bus:t2:q"), SMALL_MAX_WAITING);
    static const char *const t3[] = {"t3-1"};
    expect_stream_ids("t3", t3, 1);
    expect_hget("t:state", "cursor", "t3");
    expect_hget("t:count", "n", "1");
}

/* Destroying a sent commit finishes it: it lands, and the connection is usable at once. */
static void test_destroy_sent(void **state)
{
    (void)state;
    bus_commit_t *c1 = step_commit(g.bus, "t1", "d1", "1");
    send_ok(g.bus, c1);
    bus_commit_destroy(&c1);
    assert_null(c1);
    bus_commit_t *c2 = step_commit(g.bus, "t1", "d2", "2");
    run_expect(g.bus, &c2, BUS_OK);
    static const char *const ids[] = {"d1", "d2"};
    expect_stream_ids("t1", ids, 2);
    expect_hget("t:count", "n", "2");

    /* two sent, destroyed in the order sent; then a plain command on the connection */
    bus_commit_t *c3 = step_commit(g.bus, "t1", "d3", "3");
    bus_commit_t *c4 = step_commit(g.bus, "t1", "d4", "4");
    send_ok(g.bus, c3);
    send_ok(g.bus, c4);
    bus_commit_destroy(&c3);
    bus_commit_destroy(&c4);
    redisReply *r = redis_conn_command(g.redis, "PING");
    if (!r)
        fail_msg("PING after destroying sent commits: %s", redis_conn_errstr(g.redis));
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    static const char *const all[] = {"d1", "d2", "d3", "d4"};
    expect_stream_ids("t1", all, 4);
    expect_hget("t:state", "cursor", "4");
    expect_hget("t:count", "n", "4");
}

/* bus_commit_finish without a send, or a second time: BUS_ERROR with a reason, nothing
 * written, nothing read from the connection (the commit can still run). */
static void test_finish_unsent(void **state)
{
    (void)state;
    bus_commit_t *c = step_commit(g.bus, "t1", "u1", "1");
    assert_int_equal(bus_commit_finish(c), BUS_ERROR);
    assert_non_null(strstr(bus_errstr(g.bus), "without being sent"));
    expect_absent("cb:bus:t1:q");
    expect_absent("t:state");
    /* a commit sent ahead is not disturbed by another's finish without a send */
    bus_commit_t *sent = step_commit(g.bus, "t1", "u2", "2");
    send_ok(g.bus, sent);
    assert_int_equal(bus_commit_finish(c), BUS_ERROR);
    finish_expect(g.bus, &sent, BUS_OK);
    /* finished once already: a second finish is an error too */
    send_ok(g.bus, c);
    assert_int_equal(bus_commit_finish(c), BUS_OK);
    assert_int_equal(bus_commit_finish(c), BUS_ERROR);
    assert_non_null(strstr(bus_errstr(g.bus), "without being sent"));
    bus_commit_destroy(&c);
    static const char *const ids[] = {"u2", "u1"};
    expect_stream_ids("t1", ids, 2);
    expect_hget("t:count", "n", "2");
    expect_hget("t:state", "cursor", "1");
}

/* A commit refused by bus_commit_add: send returns -1 without touching the connection, finish
 * is BUS_ERROR, nothing of it is written; commits sent around it are not disturbed. */
static void test_send_invalid(void **state)
{
    (void)state;
    bus_commit_t *bad = step_commit(g.bus, "t1", "bad", "bad");
    assert_int_equal(bus_commit_add(bad, "Bad-Edge", "x", "p", 1), -1);
    bus_commit_hset(bad, "t:bad", "f", "v");
    assert_int_equal(bus_commit_send(bad), -1);
    assert_non_null(strstr(bus_errstr(g.bus), "cannot add"));
    assert_int_equal(bus_commit_finish(bad), BUS_ERROR);
    assert_non_null(strstr(bus_errstr(g.bus), "cannot add")); /* the reason is kept */
    expect_absent("cb:bus:t1:q");
    expect_absent("t:bad");
    expect_absent("t:state");

    /* between two commits sent ahead */
    bus_commit_t *c1 = step_commit(g.bus, "t1", "v1", "1");
    bus_commit_t *c2 = step_commit(g.bus, "t1", "v2", "2");
    send_ok(g.bus, c1);
    assert_int_equal(bus_commit_send(bad), -1);
    send_ok(g.bus, c2);
    finish_expect(g.bus, &c1, BUS_OK);
    finish_expect(g.bus, &bad, BUS_ERROR);
    finish_expect(g.bus, &c2, BUS_OK);
    static const char *const ids[] = {"v1", "v2"};
    expect_stream_ids("t1", ids, 2);
    expect_hget("t:state", "cursor", "2");
    expect_hget("t:count", "n", "2");
    expect_absent("t:bad");
    /* an invalid commit that is destroyed unsent leaves the connection alone */
    bad = step_commit(g.small, "t1", "big", "big");
    char *big = calloc(SMALL_MAX_RECORD + 1, 1);
    assert_non_null(big);
    assert_int_equal(bus_commit_add(bad, "t1", "big2", big, SMALL_MAX_RECORD + 1), -1);
    free(big);
    assert_int_equal(bus_commit_send(bad), -1);
    bus_commit_destroy(&bad);
    bus_commit_t *c3 = step_commit(g.bus, "t1", "v3", "3");
    run_expect(g.bus, &c3, BUS_OK);
    expect_hget("t:count", "n", "3");
}

/* Commits sent ahead while the script is not loaded (SCRIPT FLUSH; a restarted Redis): every
 * EVALSHA gets NOSCRIPT; the commits finished with another still pending are BUS_ERROR (none
 * ran), the last one loads the script and runs. Run again, the failed ones land too; nothing
 * lands twice. Note the order: the retried first commit now runs after the second, so the
 * cursor ends at the first's value. */
static void test_send_ahead_noscript(void **state)
{
    (void)state;
    check_ok("SCRIPT FLUSH");
    bus_commit_t *c1 = step_commit(g.bus, "t1", "n1", "1");
    bus_commit_t *c2 = step_commit(g.bus, "t1", "n2", "2");
    send_ok(g.bus, c1);
    send_ok(g.bus, c2);
    assert_int_equal(bus_commit_finish(c1), BUS_ERROR);
    assert_non_null(strstr(bus_errstr(g.bus), "script not loaded"));
    finish_expect(g.bus, &c2, BUS_OK);
    static const char *const first[] = {"n2"};
    expect_stream_ids("t1", first, 1);
    expect_hget("t:count", "n", "1");
    run_expect(g.bus, &c1, BUS_OK); /* the caller tries it again */
    static const char *const both[] = {"n2", "n1"};
    expect_stream_ids("t1", both, 2);
    expect_hget("t:count", "n", "2");
    expect_hget("t:state", "cursor", "1"); /* the first commit's write came last */
    assert_int_equal(cmd_calls("eval"), 1);
    assert_int_equal(cmd_calls("evalsha"), 3);
}

/* A send that fails (the connection was reset) while an earlier commit is pending, then
 * another commit sent, which reconnects: the commits sent on the lost connection finish with
 * BUS_ERROR (nothing of them was written), the one sent after the reconnect with BUS_OK. */
static void test_send_fails_with_one_pending(void **state)
{
    (void)state;
    enum { MAX_B = 50 };
    redisReply *r = redis_conn_command(g.redis, "CLIENT ID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long id = r->integer;
    freeReplyObject(r);
    assert_int_equal(check_int("CLIENT KILL ID %lld", id), 1);
    /* the first write after the server closed the connection is accepted by the kernel */
    bus_commit_t *c1 = step_commit(g.bus, "t1", "k1", "1");
    send_ok(g.bus, c1);
    /* then a send fails, once the server's reset has arrived (bounded attempts) */
    bus_commit_t *b[MAX_B] = {0};
    int nb = 0, rc = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    do {
        b[nb] = step_commit(g.bus, "t1", "k2", "2");
        rc = bus_commit_send(b[nb++]);
        if (rc == 0)
            pause_ms(POLL_MS);
    } while (rc == 0 && nb < MAX_B && now_ms() < deadline);
    if (rc == 0)
        fail_msg("no send failed on a connection the server closed");
    bus_commit_t *c3 = step_commit(g.bus, "t1", "k3", "3");
    send_ok(g.bus, c3); /* reconnects */
    finish_expect(g.bus, &c1, BUS_ERROR); /* k1 was never written */
    for (int i = 0; i < nb; i++)
        finish_expect(g.bus, &b[i], BUS_ERROR);
    finish_expect(g.bus, &c3, BUS_OK); /* k3 was written */
    static const char *const ids[] = {"k3"};
    expect_stream_ids("t1", ids, 1);
    expect_hget("t:state", "cursor", "3");
    expect_hget("t:count", "n", "1");
    /* the connection is usable afterwards */
    bus_commit_t *c4 = step_commit(g.bus, "t1", "k4", "4");
    run_expect(g.bus, &c4, BUS_OK);
    expect_hget("t:count", "n", "2");
}

/* ---------------------------------------------------------------------------------------- */
/* main                                                                                      */
/* ---------------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hset_interleaved, test_setup),
        cmocka_unit_test_setup(test_same_key_order, test_setup),
        cmocka_unit_test_setup(test_zadd_rpush, test_setup),
        cmocka_unit_test_setup(test_large_commit, test_setup),
        cmocka_unit_test_setup(test_full, test_setup),
        cmocka_unit_test_setup(test_invalid_output, test_setup),
        cmocka_unit_test_setup(test_guard_fields, test_setup),
        cmocka_unit_test_setup(test_guard_mixed, test_setup),
        cmocka_unit_test_setup(test_pexpire, test_setup),
        cmocka_unit_test_setup(test_hincrby_hsetnx, test_setup),
        cmocka_unit_test_setup(test_input_commit, test_setup),
        cmocka_unit_test_setup(test_set_aside, test_setup),
        cmocka_unit_test_setup(test_error_writes_nothing, test_setup),
        cmocka_unit_test_setup(test_send_ahead, test_setup),
        cmocka_unit_test_setup(test_send_ahead_inputs, test_setup),
        cmocka_unit_test_setup(test_send_ahead_fenced, test_setup),
        cmocka_unit_test_setup(test_destroy_sent, test_setup),
        cmocka_unit_test_setup(test_finish_unsent, test_setup),
        cmocka_unit_test_setup(test_send_invalid, test_setup),
        cmocka_unit_test_setup(test_send_ahead_noscript, test_setup),
        cmocka_unit_test_setup(test_send_fails_with_one_pending, test_setup),
        /* last: a crash in these ends a sanitizer run */
        cmocka_unit_test_setup(test_pexpire_new_key_grows, test_setup),
        cmocka_unit_test_setup(test_pexpire_first_key, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
