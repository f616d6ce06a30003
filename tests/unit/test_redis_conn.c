/*
 * test_redis_conn.c - unit tests of common/redis_conn.c against real redis-server processes.
 *
 * The group setup starts two servers on random free loopback ports (20000-60000), each in its
 * own mkdtemp directory with persistence off: "main" (no password) and "auth" (--requirepass).
 * A third, "aux", is started and stopped by the tests that need an absent or restarting server
 * (lazy connect, reconnect, pipeline while down). The group teardown stops every server that
 * is still up and removes the directories.
 *
 * A server counts as up when a PING answers on its port and the answering process is the one
 * named in its pidfile (so a stranger on the same port is never mistaken for ours). Every wait
 * is a bounded loop of attempts 20 ms apart with a deadline; nothing sleeps blindly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "redis_conn.h"

#define REDIS_SERVER_BIN "/usr/bin/redis-server"
#define PORT_MIN 20000
#define PORT_MAX 60000
#define START_TRIES 20
#define WAIT_MS 5000
#define POLL_MS 20
#define AUTH_PASSWORD "s3cret-Pa55"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

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

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *hay_ = (hay);                                                                  \
        const char *needle_ = (needle);                                                            \
        if (!hay_ || !strstr(hay_, needle_))                                                       \
            fail_msg("'%s' does not contain '%s'", hay_ ? hay_ : "(null)", needle_);               \
    } while (0)

#define assert_not_contains(hay, needle)                                                           \
    do {                                                                                           \
        const char *hay_ = (hay);                                                                  \
        const char *needle_ = (needle);                                                            \
        if (hay_ && strstr(hay_, needle_))                                                         \
            fail_msg("'%s' contains '%s'", hay_, needle_);                                         \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* redis-server management                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *password; /* --requirepass, or NULL */
    char dir[64];         /* "" until created */
    int port;             /* 0 until chosen */
    pid_t pid;            /* 0 when not running */
} server_t;

static server_t main_srv = {.name = "main"};
static server_t auth_srv = {.name = "auth", .password = AUTH_PASSWORD};
static server_t aux_srv = {.name = "aux"};

/* port_is_free - nothing listens on 127.0.0.1:port and redis-server could bind it right now
 * (with SO_REUSEADDR, as redis-server does: connections in TIME_WAIT do not count). */
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

static int random_port(void)
{
    return PORT_MIN + rand() % (PORT_MAX - PORT_MIN + 1);
}

/* raw_connect - a plain hiredis connection to a server (authenticated when it needs it). */
static redisContext *raw_connect(const server_t *srv)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", srv->port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (srv->password) {
        redisReply *r = redisCommand(c, "AUTH %s", srv->password);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* raw_command - run one command on a fresh raw connection; the reply or NULL. */
static redisReply *raw_command(const server_t *srv, const char *fmt, ...)
{
    redisContext *c = raw_connect(srv);
    if (!c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static pid_t read_pidfile(const server_t *srv)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/redis.pid", srv->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

/* server_answers - the process answering PING on srv->port is the one of pidfile pid. */
static int server_answers(const server_t *srv, pid_t pid)
{
    redisContext *c = raw_connect(srv);
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

static int log_says_failed(const server_t *srv)
{
    char path[128], line[512];
    snprintf(path, sizeof(path), "%s/redis.log", srv->dir);
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

static void server_remove_files(const server_t *srv)
{
    DIR *d = opendir(srv->dir);
    if (!d)
        return;
    struct dirent *e;
    for (int i = 0; i < 1000 && (e = readdir(d)) != NULL; i++) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", srv->dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* server_stop - SIGTERM (no save points are configured), wait for the process to go, SIGKILL
 * after the deadline. */
static void server_stop(server_t *srv)
{
    if (!srv->pid)
        return;
    kill(srv->pid, SIGTERM);
    int64_t deadline = now_ms() + WAIT_MS;
    while (!process_gone(srv->pid) && now_ms() < deadline)
        pause_ms(POLL_MS);
    if (!process_gone(srv->pid)) {
        kill(srv->pid, SIGKILL);
        deadline = now_ms() + WAIT_MS;
        while (!process_gone(srv->pid) && now_ms() < deadline)
            pause_ms(POLL_MS);
    }
    srv->pid = 0;
    /* the port must refuse connections before a restart on it is attempted */
    deadline = now_ms() + WAIT_MS;
    while (!port_is_free(srv->port) && now_ms() < deadline)
        pause_ms(POLL_MS);
}

/* server_start_on - start redis-server on srv->port and wait until it answers; 0 or -1. */
static int server_start_on(server_t *srv)
{
    char cmd[1024];
    char pass[128] = "";
    if (srv->password)
        snprintf(pass, sizeof(pass), " --requirepass '%s'", srv->password);
    char path[128];
    snprintf(path, sizeof(path), "%s/redis.log", srv->dir);
    unlink(path);
    snprintf(cmd, sizeof(cmd),
             REDIS_SERVER_BIN " --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize yes"
                              " --pidfile %s/redis.pid --dir %s --logfile %s/redis.log%s",
             srv->port, srv->dir, srv->dir, srv->dir, pass);
    if (system(cmd) != 0)
        return -1;
    int64_t deadline = now_ms() + WAIT_MS;
    for (int i = 0; i < WAIT_MS / POLL_MS + 1 && now_ms() < deadline; i++) {
        pid_t pid = read_pidfile(srv);
        if (pid > 0 && server_answers(srv, pid)) {
            srv->pid = pid;
            return 0;
        }
        if (log_says_failed(srv))
            break;
        pause_ms(POLL_MS);
    }
    /* not ours or not up: make sure nothing of ours lingers */
    pid_t pid = read_pidfile(srv);
    if (pid > 0) {
        srv->pid = pid;
        server_stop(srv);
    }
    return -1;
}

static int server_make_dir(server_t *srv)
{
    if (srv->dir[0])
        return 0;
    snprintf(srv->dir, sizeof(srv->dir), "/tmp/test_redis_conn.XXXXXX");
    if (!mkdtemp(srv->dir)) {
        srv->dir[0] = '\0';
        return -1;
    }
    return 0;
}

/* server_pick_port - a random port that is free right now. */
static int server_pick_port(server_t *srv)
{
    for (int i = 0; i < 100; i++) {
        int port = random_port();
        if (port != main_srv.port && port != auth_srv.port && port != aux_srv.port && port_is_free(port)) {
            srv->port = port;
            return 0;
        }
    }
    return -1;
}

/* server_start - a new server on a random free port (bounded tries). */
static int server_start(server_t *srv)
{
    if (server_make_dir(srv) < 0)
        return -1;
    for (int i = 0; i < START_TRIES; i++) {
        if (server_pick_port(srv) < 0)
            continue;
        if (server_start_on(srv) == 0)
            return 0;
    }
    srv->port = 0;
    return -1;
}

static void server_cleanup(server_t *srv)
{
    server_stop(srv);
    if (srv->dir[0]) {
        server_remove_files(srv);
        rmdir(srv->dir);
        srv->dir[0] = '\0';
    }
}

/* aux_ensure_up - the aux server is running (a failed earlier test may have left it down). */
static void aux_ensure_up(void)
{
    if (aux_srv.pid)
        return;
    if (aux_srv.port) {
        if (server_start_on(&aux_srv) == 0)
            return;
    }
    assert_int_equal(server_start(&aux_srv), 0);
}

static void url_of(const server_t *srv, const char *userinfo, int db, char *buf, size_t size)
{
    snprintf(buf, size, "redis://%s%s127.0.0.1:%d/%d", userinfo ? userinfo : "", userinfo ? "@" : "", srv->port,
             db);
}

static redis_conn_t *conn_to(const server_t *srv, int db, int64_t timeout_ms)
{
    char url[256], err[256] = "";
    url_of(srv, srv->password ? ":" AUTH_PASSWORD : NULL, db, url, sizeof(url));
    redis_conn_t *c = redis_conn_new(url, NULL, timeout_ms, err, sizeof(err));
    if (!c)
        fail_msg("redis_conn_new(%s): %s", url, err);
    return c;
}

static void expect_status_reply(redisReply *r, const char *status)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, status);
    freeReplyObject(r);
}

static void expect_str_reply(redisReply *r, const char *s, size_t len)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, len);
    assert_memory_equal(r->str, s, len);
    freeReplyObject(r);
}

static void expect_ping(redis_conn_t *c)
{
    redisReply *r = redis_conn_command(c, "PING");
    if (!r)
        fail_msg("PING failed: %s", redis_conn_errstr(c));
    expect_status_reply(r, "PONG");
}

/* ---------------------------------------------------------------------------------------- */
/* group setup / teardown                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srand((unsigned)(ts.tv_nsec ^ ts.tv_sec ^ (long)getpid() << 16));
    if (access(REDIS_SERVER_BIN, X_OK) < 0) {
        fprintf(stderr, "test_redis_conn: %s is missing (apt-get install redis-server)\n", REDIS_SERVER_BIN);
        return -1;
    }
    if (server_start(&main_srv) < 0 || server_start(&auth_srv) < 0) {
        fprintf(stderr, "test_redis_conn: cannot start redis-server\n");
        server_cleanup(&main_srv);
        server_cleanup(&auth_srv);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_cleanup(&main_srv);
    server_cleanup(&auth_srv);
    server_cleanup(&aux_srv);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* URL parsing                                                                               */
/* ---------------------------------------------------------------------------------------- */

static void test_parse_url_valid(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *host;
        int port;
        int db;
        const char *password;
    } cases[] = {
        {"redis://localhost", "localhost", 6379, 0, NULL},
        {"redis://127.0.0.1:6380", "127.0.0.1", 6380, 0, NULL},
        {"redis://cache.example.com:1/5", "cache.example.com", 1, 5, NULL},
        {"redis://h:65535", "h", 65535, 0, NULL},
        {"redis://h/2", "h", 6379, 2, NULL},
        {"redis://h/", "h", 6379, 0, NULL},
        {"redis://h:7000/", "h", 7000, 0, NULL},
        {"redis://h:7000/15", "h", 7000, 15, NULL},
        {"redis://:pw@h:7000/1", "h", 7000, 1, "pw"},
        {"redis://:pw@h", "h", 6379, 0, "pw"},
        {"redis://user:pa:ss@h:1234", "h", 1234, 0, "pa:ss"},
        {"redis://user:password@redis-1/3", "redis-1", 6379, 3, "password"},
        {"redis://justpassword@h", "h", 6379, 0, "justpassword"},
        {"redis://:p@ss@h:1/2", "h", 1, 2, "p@ss"},
        {"redis://:@h", "h", 6379, 0, NULL},
        {"REDIS://H:10", "H", 10, 0, NULL},
        {"Redis://:x@my_host:10/4", "my_host", 10, 4, "x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        redis_conn_address_t a;
        char err[256] = "";
        if (redis_conn_parse_url(cases[i].url, &a, err, sizeof(err)) != 0)
            fail_msg("%s: rejected: %s", cases[i].url, err);
        assert_non_null(a.host);
        assert_string_equal(a.host, cases[i].host);
        assert_int_equal(a.port, cases[i].port);
        assert_int_equal(a.db, cases[i].db);
        if (cases[i].password) {
            if (!a.password)
                fail_msg("%s: no password", cases[i].url);
            assert_string_equal(a.password, cases[i].password);
        } else if (a.password) {
            fail_msg("%s: unexpected password '%s'", cases[i].url, a.password);
        }
        redis_conn_address_release(&a);
        assert_null(a.host);
        assert_null(a.password);
    }
}

static void test_parse_url_invalid(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "localhost:6379",
        "http://h",
        "redis:/h",
        "redis:h",
        "rediss://h", /* TLS is not supported */
        "redis://",
        "redis://:6379",
        "redis:///0",
        "redis://:topsecret@",
        "redis://:topsecret@:6379",
        "redis://h:0",
        "redis://h:70000",
        "redis://h:65536",
        "redis://h:-1",
        "redis://h:abc",
        "redis://h:",
        "redis://h:/1",
        "redis://h: 80",
        "redis://h:+80",
        "redis://h:6379x",
        "redis://h:6379 ",
        "redis://h:6379?db=1",
        "redis://h:99999999999999999999999",
        "redis://h/x",
        "redis://h/-1",
        "redis://h/ 1",
        "redis://h/+1",
        "redis://h/1x",
        "redis://h/1/2",
        "redis://h:6379/db",
        "redis://h x",
        "redis://h?x=1",
        "redis://:topsecret@h:0",
        "redis://user:topsecret@h:6379/x",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        redis_conn_address_t a;
        char err[256] = "";
        int rc = redis_conn_parse_url(cases[i], &a, err, sizeof(err));
        if (rc != -1) {
            fail_msg("'%s' accepted (host '%s' port %d db %d)", cases[i], a.host ? a.host : "", a.port, a.db);
        }
        if (!err[0])
            fail_msg("'%s': empty error", cases[i]);
        assert_not_contains(err, "topsecret"); /* never echo a password into logs */
        assert_null(a.host);
        assert_null(a.password);
        /* a tiny error buffer is truncated, not overrun */
        char small[8];
        memset(small, 'Z', sizeof(small));
        assert_int_equal(redis_conn_parse_url(cases[i], &a, small, 4), -1);
        assert_int_equal(small[3], '\0');
        assert_int_equal(small[4], 'Z');
    }
}

static void test_new_bad_url(void **state)
{
    (void)state;
    static const char *const cases[] = {"http://h", "redis://", "redis://h:0", "redis://h/zz", "redis://:pw@h:x"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        redis_conn_t *c = redis_conn_new(cases[i], "override", 1000, err, sizeof(err));
        if (c)
            fail_msg("redis_conn_new(%s) succeeded", cases[i]);
        assert_true(err[0] != '\0');
    }
}

static void test_destroy_null(void **state)
{
    (void)state;
    redis_conn_destroy(NULL);
    redis_conn_t *c = NULL;
    redis_conn_destroy(&c);
    assert_null(c);
    char err[256] = "";
    c = redis_conn_new("redis://127.0.0.1:1", NULL, 100, err, sizeof(err));
    assert_non_null(c);
    redis_conn_destroy(&c); /* never connected */
    assert_null(c);
    c = conn_to(&main_srv, 0, 1000);
    expect_ping(c);
    redis_conn_destroy(&c); /* connected */
    assert_null(c);
    redis_conn_destroy(&c); /* twice */
    assert_null(c);
}

static void test_describe(void **state)
{
    (void)state;
    char err[256] = "", url[256], want[64];
    snprintf(url, sizeof(url), "redis://someone:hunter2secret@127.0.0.1:%d/7", auth_srv.port);
    redis_conn_t *c = redis_conn_new(url, NULL, 1000, err, sizeof(err));
    assert_non_null(c);
    snprintf(want, sizeof(want), "127.0.0.1:%d/7", auth_srv.port);
    assert_string_equal(redis_conn_describe(c), want);
    assert_not_contains(redis_conn_describe(c), "hunter2");
    /* a wrong password is refused; the message does not carry it either */
    assert_null(redis_conn_command(c, "PING"));
    assert_true(redis_conn_errstr(c)[0] != '\0');
    assert_not_contains(redis_conn_errstr(c), "hunter2");
    assert_not_contains(redis_conn_describe(c), "hunter2");
    redis_conn_destroy(&c);

    c = redis_conn_new("redis://h", "override-secret", 1000, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(redis_conn_describe(c), "h:6379/0");
    redis_conn_destroy(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* commands                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void test_set_get(void **state)
{
    (void)state;
    redis_conn_t *c = conn_to(&main_srv, 0, 1000);
    expect_status_reply(redis_conn_command(c, "SET %s %s", "t:setget", "hello world"), "OK");
    expect_str_reply(redis_conn_command(c, "GET %s", "t:setget"), "hello world", 11);
    /* binary-safe %b and argv forms */
    expect_status_reply(redis_conn_command(c, "SET t:bin %b", "a\0b\r\nc", (size_t)6), "OK");
    expect_str_reply(redis_conn_command(c, "GET t:bin"), "a\0b\r\nc", 6);
    const char *argv[] = {"SET", "t:argv", "x\0y"};
    const size_t lens[] = {3, 6, 3};
    expect_status_reply(redis_conn_commandargv(c, 3, argv, lens), "OK");
    const char *get[] = {"GET", "t:argv"};
    redisReply *r = redis_conn_commandargv(c, 2, get, NULL);
    expect_str_reply(r, "x\0y", 3);
    /* a missing key is a nil reply, not a failure */
    r = redis_conn_command(c, "GET t:missing");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    redis_conn_destroy(&c);
}

static void test_error_reply(void **state)
{
    (void)state;
    redis_conn_t *c = conn_to(&main_srv, 0, 1000);
    expect_status_reply(redis_conn_command(c, "SET t:err notanumber"), "OK");
    for (int i = 0; i < 3; i++) {
        assert_null(redis_conn_command(c, "INCR t:err"));
        assert_contains(redis_conn_errstr(c), "not an integer");
        /* the connection stays usable */
        expect_str_reply(redis_conn_command(c, "GET t:err"), "notanumber", 10);
    }
    const char *argv[] = {"NOSUCHCOMMAND", "x"};
    assert_null(redis_conn_commandargv(c, 2, argv, NULL));
    assert_contains(redis_conn_errstr(c), "unknown command");
    expect_ping(c);
    redis_conn_destroy(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* lazy connect, reconnect                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_lazy_connect(void **state)
{
    (void)state;
    if (aux_srv.pid)
        server_stop(&aux_srv);
    assert_int_equal(server_make_dir(&aux_srv), 0);
    assert_int_equal(server_pick_port(&aux_srv), 0);
    char url[128], err[256] = "";
    url_of(&aux_srv, NULL, 0, url, sizeof(url));
    redis_conn_t *c = redis_conn_new(url, NULL, 1000, err, sizeof(err));
    assert_non_null(c); /* nothing listens yet: creating does not connect */
    int64_t t0 = now_ms();
    assert_null(redis_conn_command(c, "PING"));
    assert_contains(redis_conn_errstr(c), "cannot connect");
    assert_null(redis_conn_command(c, "PING")); /* still down: fails again, no crash */
    assert_contains(redis_conn_errstr(c), "cannot connect");
    assert_int_equal(redis_conn_append(c, "PING"), -1);
    assert_contains(redis_conn_errstr(c), "cannot connect");
    assert_true(now_ms() - t0 < 2000);

    assert_int_equal(server_start_on(&aux_srv), 0);
    expect_ping(c); /* the first command after the server came up works */
    expect_status_reply(redis_conn_command(c, "SET t:lazy 1"), "OK");
    redis_conn_destroy(&c);
}

static void test_reconnect_after_restart(void **state)
{
    (void)state;
    aux_ensure_up();
    redis_conn_t *c = conn_to(&aux_srv, 0, 1000);
    for (int round = 0; round < 3; round++) {
        expect_status_reply(redis_conn_command(c, "SET t:restart %d", round), "OK");
        server_stop(&aux_srv);
        assert_int_equal(server_start_on(&aux_srv), 0);
        int failures = 0;
        redisReply *r = NULL;
        for (int i = 0; i < 5 && !r; i++) {
            r = redis_conn_command(c, "PING");
            if (!r) {
                failures++;
                assert_true(redis_conn_errstr(c)[0] != '\0');
            }
        }
        if (!r)
            fail_msg("no recovery after restart: %s", redis_conn_errstr(c));
        expect_status_reply(r, "PONG");
        assert_true(failures <= 1); /* a restart costs at most one failed command */
        /* the restarted server has no data (persistence is off) */
        r = redis_conn_command(c, "GET t:restart");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_NIL);
        freeReplyObject(r);
    }

    /* commands while the server is down fail with a message, then recover */
    server_stop(&aux_srv);
    for (int i = 0; i < 3; i++) {
        assert_null(redis_conn_command(c, "PING"));
        assert_true(redis_conn_errstr(c)[0] != '\0');
    }
    assert_contains(redis_conn_errstr(c), "cannot connect");
    assert_int_equal(server_start_on(&aux_srv), 0);
    expect_ping(c);
    redis_conn_destroy(&c);
}

/* A big write after a restart (more than the socket buffer): the peer's reset arrives while
 * the client is still writing; that must be an error, not a SIGPIPE death. */
static void test_restart_big_write(void **state)
{
    (void)state;
    aux_ensure_up();
    redis_conn_t *c = conn_to(&aux_srv, 0, 2000);
    expect_ping(c);
    server_stop(&aux_srv);
    assert_int_equal(server_start_on(&aux_srv), 0);
    size_t big = 32u * 1024 * 1024;
    char *value = malloc(big);
    assert_non_null(value);
    memset(value, 'v', big);
    redisReply *r = NULL;
    for (int i = 0; i < 4 && !r; i++)
        r = redis_conn_command(c, "SET t:big %b", value, big);
    free(value);
    if (!r)
        fail_msg("no recovery: %s", redis_conn_errstr(c));
    expect_status_reply(r, "OK");
    r = redis_conn_command(c, "STRLEN t:big");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, (long long)big);
    freeReplyObject(r);
    redisReply *del = redis_conn_command(c, "DEL t:big");
    assert_non_null(del);
    freeReplyObject(del);
    redis_conn_destroy(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* SELECT, AUTH                                                                              */
/* ---------------------------------------------------------------------------------------- */

static void test_select_db(void **state)
{
    (void)state;
    redis_conn_t *c3 = conn_to(&main_srv, 3, 1000);
    redis_conn_t *c3b = conn_to(&main_srv, 3, 1000);
    redis_conn_t *c0 = conn_to(&main_srv, 0, 1000);
    redisReply *r = redis_conn_command(c0, "DEL t:select");
    assert_non_null(r);
    freeReplyObject(r);
    expect_status_reply(redis_conn_command(c3, "SET t:select in-db-3"), "OK");
    expect_str_reply(redis_conn_command(c3b, "GET t:select"), "in-db-3", 7);
    r = redis_conn_command(c0, "GET t:select");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    /* the server agrees: the key is in db 3 */
    r = raw_command(&main_srv, "INFO keyspace");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_contains(r->str, "db3:keys=");
    freeReplyObject(r);
    /* after a reconnect (forced by a timeout-free drop: server-side CLIENT KILL) still db 3 */
    r = raw_command(&main_srv, "CLIENT KILL TYPE normal SKIPME yes");
    if (r)
        freeReplyObject(r);
    r = NULL;
    for (int i = 0; i < 3 && !r; i++)
        r = redis_conn_command(c3, "GET t:select");
    expect_str_reply(r, "in-db-3", 7);
    r = redis_conn_command(c3, "DEL t:select");
    assert_non_null(r);
    freeReplyObject(r);
    redis_conn_destroy(&c3);
    redis_conn_destroy(&c3b);
    redis_conn_destroy(&c0);
}

static void test_auth(void **state)
{
    (void)state;
    static const struct {
        const char *userinfo; /* before '@' in the URL, or NULL */
        const char *override; /* redis_conn_new's password argument */
        int works;
        const char *message; /* expected in errstr when it does not work (one of, '|') */
    } cases[] = {
        {":" AUTH_PASSWORD, NULL, 1, NULL},
        {"default:" AUTH_PASSWORD, NULL, 1, NULL},
        {NULL, NULL, 0, "NOAUTH|uthentication"},
        {":wrong-pass", NULL, 0, "WRONGPASS|invalid password|AUTH"},
        {":wrong-pass", AUTH_PASSWORD, 1, NULL},   /* the override wins */
        {NULL, AUTH_PASSWORD, 1, NULL},            /* the override alone */
        {":" AUTH_PASSWORD, "wrong-pass", 0, "WRONGPASS|invalid password|AUTH"}, /* wins here too */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char url[256], err[256] = "";
        url_of(&auth_srv, cases[i].userinfo, 0, url, sizeof(url));
        redis_conn_t *c = redis_conn_new(url, cases[i].override, 1000, err, sizeof(err));
        assert_non_null(c);
        for (int attempt = 0; attempt < 2; attempt++) { /* a failure is repeatable, not sticky */
            redisReply *r = redis_conn_command(c, "PING");
            if (cases[i].works) {
                if (!r)
                    fail_msg("case %zu (%s): %s", i, url, redis_conn_errstr(c));
                expect_status_reply(r, "PONG");
            } else {
                if (r)
                    fail_msg("case %zu (%s): PING answered without the right password", i, url);
                const char *e = redis_conn_errstr(c);
                char alts[128];
                snprintf(alts, sizeof(alts), "%s", cases[i].message);
                int found = 0;
                for (char *save = NULL, *tok = strtok_r(alts, "|", &save); tok; tok = strtok_r(NULL, "|", &save))
                    found |= strstr(e, tok) != NULL;
                if (!found)
                    fail_msg("case %zu: '%s' mentions none of %s", i, e, cases[i].message);
                assert_not_contains(e, AUTH_PASSWORD);
                assert_not_contains(e, "wrong-pass");
            }
        }
        assert_not_contains(redis_conn_describe(c), AUTH_PASSWORD);
        redis_conn_destroy(&c);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* pipeline                                                                                  */
/* ---------------------------------------------------------------------------------------- */

#define PIPE_N 100

static void test_pipeline_in_order(void **state)
{
    (void)state;
    redis_conn_t *c = conn_to(&main_srv, 0, 2000);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < PIPE_N; i++) {
            if (i % 2)
                assert_int_equal(redis_conn_append(c, "ECHO item-%d", i), 0);
            else {
                char val[32];
                snprintf(val, sizeof(val), "item-%d", i);
                const char *argv[] = {"ECHO", val};
                assert_int_equal(redis_conn_appendargv(c, 2, argv, NULL), 0);
            }
        }
        redisReply *replies[PIPE_N];
        assert_int_equal(redis_conn_pipeline_exec(c, replies, PIPE_N), 0);
        for (int i = 0; i < PIPE_N; i++) {
            char want[32];
            int n = snprintf(want, sizeof(want), "item-%d", i);
            expect_str_reply(replies[i], want, (size_t)n);
        }
    }
    /* an error reply inside a pipeline is handed back, not a failure */
    assert_int_equal(redis_conn_append(c, "SET t:pipe str"), 0);
    assert_int_equal(redis_conn_append(c, "INCR t:pipe"), 0);
    assert_int_equal(redis_conn_append(c, "GET t:pipe"), 0);
    redisReply *r3[3];
    assert_int_equal(redis_conn_pipeline_exec(c, r3, 3), 0);
    expect_status_reply(r3[0], "OK");
    assert_non_null(r3[1]);
    assert_int_equal(r3[1]->type, REDIS_REPLY_ERROR);
    assert_contains(r3[1]->str, "not an integer");
    freeReplyObject(r3[1]);
    expect_str_reply(r3[2], "str", 3);
    /* an empty pipeline */
    assert_int_equal(redis_conn_pipeline_exec(c, r3, 0), 0);
    /* plain commands work after a pipeline */
    expect_ping(c);
    redis_conn_destroy(&c);
}

static void test_pipeline_count_mismatch(void **state)
{
    (void)state;
    redis_conn_t *c = conn_to(&main_srv, 0, 1000);
    redisReply *replies[4] = {0};
    for (size_t asked = 2; asked <= 4; asked += 2) { /* fewer and more than queued */
        for (int i = 0; i < 3; i++)
            assert_int_equal(redis_conn_append(c, "ECHO m%d", i), 0);
        assert_int_equal(redis_conn_pipeline_exec(c, replies, asked), -1);
        assert_contains(redis_conn_errstr(c), "pipeline");
        for (size_t i = 0; i < asked; i++)
            assert_null(replies[i]);
        /* nothing of the abandoned pipeline leaks into the next commands */
        expect_ping(c);
        expect_str_reply(redis_conn_command(c, "ECHO after"), "after", 5);
    }
    redis_conn_destroy(&c);
}

static void test_pipeline_server_down(void **state)
{
    (void)state;
    aux_ensure_up();
    redis_conn_t *c = conn_to(&aux_srv, 0, 1000);
    expect_ping(c); /* connected */
    server_stop(&aux_srv);
    /* queued on a stale connection: exec fails, every reply slot is NULL */
    redisReply *replies[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(redis_conn_append(c, "ECHO d%d", i), 0);
    for (int i = 0; i < 3; i++)
        replies[i] = (redisReply *)(uintptr_t)0x1; /* garbage the exec must overwrite */
    assert_int_equal(redis_conn_pipeline_exec(c, replies, 3), -1);
    for (int i = 0; i < 3; i++)
        assert_null(replies[i]);
    assert_true(redis_conn_errstr(c)[0] != '\0');
    /* nothing listens: append fails, exec fails */
    assert_int_equal(redis_conn_append(c, "ECHO x"), -1);
    assert_contains(redis_conn_errstr(c), "cannot connect");
    replies[0] = (redisReply *)(uintptr_t)0x1;
    assert_int_equal(redis_conn_pipeline_exec(c, replies, 1), -1);
    assert_null(replies[0]);
    /* the server comes back: pipelines and commands work again */
    assert_int_equal(server_start_on(&aux_srv), 0);
    int rc = -1;
    for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
        int queued = 0;
        for (int i = 0; i < 3; i++)
            queued += redis_conn_append(c, "ECHO u%d", i) == 0;
        rc = redis_conn_pipeline_exec(c, replies, (size_t)queued);
        if (rc == 0 && queued != 3) {
            for (int i = 0; i < queued; i++)
                freeReplyObject(replies[i]);
            rc = -1;
        }
    }
    assert_int_equal(rc, 0);
    for (int i = 0; i < 3; i++) {
        char want[8];
        snprintf(want, sizeof(want), "u%c", (char)('0' + i));
        expect_str_reply(replies[i], want, 2);
    }
    expect_ping(c);
    redis_conn_destroy(&c);
}

static void test_command_while_pipeline_pending(void **state)
{
    (void)state;
    static redis_script_t script = {.source = "return 'script-ran'"};
    redis_conn_t *c = conn_to(&main_srv, 0, 1000);
    assert_int_equal(redis_conn_append(c, "ECHO queued"), 0);
    assert_null(redis_conn_command(c, "ECHO direct"));
    assert_contains(redis_conn_errstr(c), "pipeline");
    const char *argv[] = {"ECHO", "direct"};
    assert_null(redis_conn_commandargv(c, 2, argv, NULL));
    assert_contains(redis_conn_errstr(c), "pipeline");
    assert_null(redis_conn_eval(c, &script, 0, 0, NULL, NULL));
    assert_contains(redis_conn_errstr(c), "pipeline");
    /* the pipeline itself is intact: exactly its own reply comes back */
    redisReply *r;
    assert_int_equal(redis_conn_pipeline_exec(c, &r, 1), 0);
    expect_str_reply(r, "queued", 6);
    expect_str_reply(redis_conn_command(c, "ECHO direct"), "direct", 6);
    expect_str_reply(redis_conn_eval(c, &script, 0, 0, NULL, NULL), "script-ran", 10);
    redis_conn_destroy(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* scripts                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* cmd_calls - how often the server ran a command since the last CONFIG RESETSTAT. */
static long long cmd_calls(const server_t *srv, const char *cmd)
{
    redisReply *r = raw_command(srv, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char key[64];
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, key);
    long long n = p ? atoll(p + strlen(key)) : 0;
    freeReplyObject(r);
    return n;
}

static void expect_keys_argv(redisReply *r, const char *const *want, const size_t *lens, size_t n)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r->element[i]->type, REDIS_REPLY_STRING);
        assert_int_equal(r->element[i]->len, lens[i]);
        assert_memory_equal(r->element[i]->str, want[i], lens[i]);
    }
    freeReplyObject(r);
}

static void test_eval(void **state)
{
    (void)state;
    static redis_script_t script = {.source = "return {KEYS[1], ARGV[1], ARGV[2], tostring(#KEYS), tostring(#ARGV)}"};
    redis_conn_t *c = conn_to(&main_srv, 0, 1000);
    redisReply *r = raw_command(&main_srv, "SCRIPT FLUSH");
    assert_non_null(r);
    freeReplyObject(r);
    r = raw_command(&main_srv, "CONFIG RESETSTAT");
    assert_non_null(r);
    freeReplyObject(r);

    const char *argv[] = {"k\0ey", "a\0b", "\0"};
    const size_t lens[] = {4, 3, 1};
    const char *want[] = {"k\0ey", "a\0b", "\0", "1", "2"};
    const size_t want_lens[] = {4, 3, 1, 1, 1};

    /* first use: not loaded, EVALSHA -> NOSCRIPT -> EVAL */
    r = redis_conn_eval(c, &script, 1, 3, argv, lens);
    if (!r)
        fail_msg("eval: %s", redis_conn_errstr(c));
    expect_keys_argv(r, want, want_lens, 5);
    assert_int_equal(strlen(script.sha1), 40);
    for (int i = 0; i < 40; i++)
        assert_non_null(strchr("0123456789abcdef", script.sha1[i]));
    r = raw_command(&main_srv, "SCRIPT EXISTS %s", script.sha1); /* the SHA1 is the server's */
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
    assert_int_equal(cmd_calls(&main_srv, "evalsha"), 1);
    assert_int_equal(cmd_calls(&main_srv, "eval"), 1);

    /* second use: EVALSHA alone */
    expect_keys_argv(redis_conn_eval(c, &script, 1, 3, argv, lens), want, want_lens, 5);
    assert_int_equal(cmd_calls(&main_srv, "evalsha"), 2);
    assert_int_equal(cmd_calls(&main_srv, "eval"), 1);

    /* after SCRIPT FLUSH: NOSCRIPT again, handled */
    r = raw_command(&main_srv, "SCRIPT FLUSH");
    assert_non_null(r);
    freeReplyObject(r);
    expect_keys_argv(redis_conn_eval(c, &script, 1, 3, argv, lens), want, want_lens, 5);
    assert_int_equal(cmd_calls(&main_srv, "evalsha"), 3);
    assert_int_equal(cmd_calls(&main_srv, "eval"), 2);

    /* C strings (argvlen NULL), no keys */
    const char *cargv[] = {"one", "two"};
    const char *cwant[] = {"one", "two", "0", "2"};
    const size_t cwant_lens[] = {3, 3, 1, 1};
    static redis_script_t argv_script = {.source = "return {ARGV[1], ARGV[2], tostring(#KEYS), tostring(#ARGV)}"};
    expect_keys_argv(redis_conn_eval(c, &argv_script, 0, 2, cargv, NULL), cwant, cwant_lens, 4);

    /* the script writes through KEYS */
    static redis_script_t write_script = {.source = "return redis.call('SET', KEYS[1], ARGV[1])"};
    const char *wargv[] = {"t:eval", "written"};
    expect_status_reply(redis_conn_eval(c, &write_script, 1, 2, wargv, NULL), "OK");
    expect_str_reply(redis_conn_command(c, "GET t:eval"), "written", 7);

    /* after a server restart the script is gone too: handled (aux server) */
    aux_ensure_up();
    redis_conn_t *a = conn_to(&aux_srv, 0, 1000);
    expect_keys_argv(redis_conn_eval(a, &script, 1, 3, argv, lens), want, want_lens, 5);
    server_stop(&aux_srv);
    assert_int_equal(server_start_on(&aux_srv), 0);
    r = NULL;
    for (int i = 0; i < 3 && !r; i++)
        r = redis_conn_eval(a, &script, 1, 3, argv, lens);
    expect_keys_argv(r, want, want_lens, 5);
    redis_conn_destroy(&a);
    redis_conn_destroy(&c);
}

static void test_eval_errors(void **state)
{
    (void)state;
    static redis_script_t custom = {.source = "return redis.error_reply('clawback test failure')"};
    static redis_script_t incr = {.source = "return redis.call('INCR', KEYS[1])"};
    static redis_script_t syntax = {.source = "return +"};
    redis_conn_t *c = conn_to(&main_srv, 0, 1000);
    for (int i = 0; i < 2; i++) { /* first (EVAL path) and second (EVALSHA path) */
        assert_null(redis_conn_eval(c, &custom, 0, 0, NULL, NULL));
        assert_contains(redis_conn_errstr(c), "clawback test failure");
        expect_status_reply(redis_conn_command(c, "SET t:evalerr text"), "OK");
        const char *keys[] = {"t:evalerr"};
        assert_null(redis_conn_eval(c, &incr, 1, 1, keys, NULL));
        assert_contains(redis_conn_errstr(c), "not an integer");
        assert_null(redis_conn_eval(c, &syntax, 0, 0, NULL, NULL));
        assert_true(redis_conn_errstr(c)[0] != '\0');
        expect_ping(c);
    }
    redis_conn_destroy(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* scripts sent without waiting (redis_conn_eval_send, redis_conn_eval_recv)                 */
/* ---------------------------------------------------------------------------------------- */

static redis_script_t incrby_script = {.source = "return redis.call('INCRBY', KEYS[1], ARGV[1])"};

static void expect_int_reply(redisReply *r, long long n)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, n);
    freeReplyObject(r);
}

/* expect_counter - key holds the number want (0: the key is absent), read through c. */
static void expect_counter(redis_conn_t *c, const char *key, long long want)
{
    redisReply *r = redis_conn_command(c, "GET %s", key);
    if (!r)
        fail_msg("GET %s: %s", key, redis_conn_errstr(c));
    if (want == 0) {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
        freeReplyObject(r);
        return;
    }
    char text[32];
    int n = snprintf(text, sizeof(text), "%lld", want);
    expect_str_reply(r, text, (size_t)n);
}

/* del_keys - delete key (and the NULL-ended others) through c. */
static void del_keys(redis_conn_t *c, const char *key, ...)
{
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k; k = va_arg(ap, const char *)) {
        redisReply *r = redis_conn_command(c, "DEL %s", k);
        if (!r)
            fail_msg("DEL %s: %s", k, redis_conn_errstr(c));
        freeReplyObject(r);
    }
    va_end(ap);
}

static void reset_stats(const server_t *srv)
{
    redisReply *r = raw_command(srv, "CONFIG RESETSTAT");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* send_incrby - send a run of incrby_script adding by to key; the send must succeed. */
static void send_incrby(redis_conn_t *c, const char *key, const char *by)
{
    const char *argv[] = {key, by};
    if (redis_conn_eval_send(c, &incrby_script, 1, 2, argv, NULL) != 0)
        fail_msg("eval_send INCRBY %s %s: %s", key, by, redis_conn_errstr(c));
}

/* recv_incrby - the reply of the oldest run sent, which was sent with key and by (or NULL). */
static redisReply *recv_incrby(redis_conn_t *c, const char *key, const char *by)
{
    const char *argv[] = {key, by};
    return redis_conn_eval_recv(c, &incrby_script, 1, 2, argv, NULL);
}

/* Several runs sent before the first reply is read: the replies come back oldest first, each
 * run ran exactly once, EVALSHA only (the script was loaded); other commands are refused while
 * runs are pending, without disturbing them. */
static void test_eval_send_in_order(void **state)
{
    (void)state;
    static redis_script_t echo_script = {.source = "return 'echo:' .. ARGV[1]"};
    redis_conn_t *c = conn_to(&main_srv, 0, 2000);
    del_keys(c, "t:es:a", "t:es:b", "t:es:n", "t:es:warm", NULL);
    const char *warm[] = {"t:es:warm", "1"};
    expect_int_reply(redis_conn_eval(c, &incrby_script, 1, 2, warm, NULL), 1); /* loads it */
    reset_stats(&main_srv);

    send_incrby(c, "t:es:a", "1");
    send_incrby(c, "t:es:b", "10");
    send_incrby(c, "t:es:a", "100");
    /* nothing else may use the connection meanwhile: refused, the runs stay pending */
    assert_null(redis_conn_command(c, "GET t:es:a"));
    assert_contains(redis_conn_errstr(c), "pipeline");
    assert_null(redis_conn_eval(c, &incrby_script, 1, 2, warm, NULL));
    assert_contains(redis_conn_errstr(c), "pipeline");
    expect_int_reply(recv_incrby(c, "t:es:a", "1"), 1);
    expect_int_reply(recv_incrby(c, "t:es:b", "10"), 10);
    expect_int_reply(recv_incrby(c, "t:es:a", "100"), 101); /* ran after the first: in order */
    expect_counter(c, "t:es:a", 101);
    expect_counter(c, "t:es:b", 10);
    expect_counter(c, "t:es:warm", 1); /* the refused eval did not run */
    assert_int_equal(cmd_calls(&main_srv, "evalsha"), 3);
    assert_int_equal(cmd_calls(&main_srv, "eval"), 0);

    /* two scripts mixed in one burst, each reply read with its own script (both loaded) */
    const char *eargv[] = {"x"};
    expect_str_reply(redis_conn_eval(c, &echo_script, 0, 1, eargv, NULL), "echo:x", 6);
    send_incrby(c, "t:es:b", "5");
    assert_int_equal(redis_conn_eval_send(c, &echo_script, 0, 1, eargv, NULL), 0);
    send_incrby(c, "t:es:b", "5");
    expect_int_reply(recv_incrby(c, "t:es:b", "5"), 15);
    expect_str_reply(redis_conn_eval_recv(c, &echo_script, 0, 1, eargv, NULL), "echo:x", 6);
    expect_int_reply(recv_incrby(c, "t:es:b", "5"), 20);

    /* a long burst: 200 runs pending at once */
    enum { BURST = 200 };
    for (int i = 0; i < BURST; i++)
        send_incrby(c, "t:es:n", "1");
    for (int i = 0; i < BURST; i++)
        expect_int_reply(recv_incrby(c, "t:es:n", "1"), i + 1);
    expect_counter(c, "t:es:n", BURST);

    /* the synchronous eval and plain commands work again once nothing is pending */
    expect_int_reply(redis_conn_eval(c, &incrby_script, 1, 2, warm, NULL), 2);
    expect_ping(c);
    redis_conn_destroy(&c);
}

/* recv with nothing pending, and a send refused for bad arguments: NULL (or -1) with a reason;
 * the connection stays usable. */
static void test_eval_recv_nothing_pending(void **state)
{
    (void)state;
    redis_conn_t *c = conn_to(&main_srv, 0, 1000);
    /* never connected: NULL, and why */
    assert_null(recv_incrby(c, "t:np", "1"));
    assert_contains(redis_conn_errstr(c), "no script run");

    expect_ping(c); /* connected */
    assert_null(recv_incrby(c, "t:np", "1"));
    assert_contains(redis_conn_errstr(c), "no script run");
    expect_ping(c);

    /* after a run was read: nothing left to read */
    del_keys(c, "t:np", NULL);
    send_incrby(c, "t:np", "1");
    expect_int_reply(recv_incrby(c, "t:np", "1"), 1);
    assert_null(recv_incrby(c, "t:np", "1"));
    assert_contains(redis_conn_errstr(c), "no script run");
    expect_counter(c, "t:np", 1);

    /* bad arguments (more keys than arguments): not sent, nothing pending */
    const char *argv[] = {"t:np", "1"};
    assert_int_equal(redis_conn_eval_send(c, &incrby_script, 3, 2, argv, NULL), -1);
    assert_contains(redis_conn_errstr(c), "bad script arguments");
    assert_int_equal(redis_conn_eval_send(c, &incrby_script, -1, 2, argv, NULL), -1);
    assert_contains(redis_conn_errstr(c), "bad script arguments");
    assert_null(recv_incrby(c, "t:np", "1"));
    assert_contains(redis_conn_errstr(c), "no script run");
    expect_ping(c);
    expect_counter(c, "t:np", 1);
    redis_conn_destroy(&c);
}

/* NOSCRIPT (after SCRIPT FLUSH): alone, recv loads the script and runs it with the same
 * arguments; with other runs pending, recv returns NULL ("tried again") and the caller runs it
 * again later. Every run counted: none lost, none twice. */
static void test_eval_send_noscript(void **state)
{
    (void)state;
    redis_conn_t *c = conn_to(&main_srv, 0, 2000);
    del_keys(c, "t:ns:a", "t:ns:b", "t:ns:c", "t:ns:one", NULL);

    /* alone: EVALSHA -> NOSCRIPT -> EVAL with the same key and argument */
    expect_status_reply(redis_conn_command(c, "SCRIPT FLUSH"), "OK");
    reset_stats(&main_srv);
    send_incrby(c, "t:ns:one", "5");
    expect_int_reply(recv_incrby(c, "t:ns:one", "5"), 5);
    expect_counter(c, "t:ns:one", 5);
    assert_int_equal(cmd_calls(&main_srv, "evalsha"), 1);
    assert_int_equal(cmd_calls(&main_srv, "eval"), 1);

    /* three pending after a flush: each EVALSHA gets NOSCRIPT (none ran). The first two are
     * read with a run still behind them: NULL, to be tried again. The last one has nothing
     * behind it when read, so (as redis_conn.h says: "with no other run pending") it is
     * loaded and run at once. */
    expect_status_reply(redis_conn_command(c, "SCRIPT FLUSH"), "OK");
    reset_stats(&main_srv);
    send_incrby(c, "t:ns:a", "1");
    send_incrby(c, "t:ns:b", "1");
    send_incrby(c, "t:ns:c", "1");
    assert_null(recv_incrby(c, "t:ns:a", "1"));
    assert_contains(redis_conn_errstr(c), "script not loaded");
    assert_contains(redis_conn_errstr(c), "tried again");
    assert_null(recv_incrby(c, "t:ns:b", "1"));
    assert_contains(redis_conn_errstr(c), "script not loaded");
    expect_int_reply(recv_incrby(c, "t:ns:c", "1"), 1);
    expect_counter(c, "t:ns:a", 0); /* NOSCRIPT: did not run */
    expect_counter(c, "t:ns:b", 0);
    expect_counter(c, "t:ns:c", 1);
    assert_int_equal(cmd_calls(&main_srv, "evalsha"), 3);
    assert_int_equal(cmd_calls(&main_srv, "eval"), 1);

    /* tried again (nothing pending): the script is loaded now, each runs once */
    send_incrby(c, "t:ns:a", "1");
    expect_int_reply(recv_incrby(c, "t:ns:a", "1"), 1);
    send_incrby(c, "t:ns:b", "1");
    expect_int_reply(recv_incrby(c, "t:ns:b", "1"), 1);
    assert_int_equal(cmd_calls(&main_srv, "evalsha"), 5);
    assert_int_equal(cmd_calls(&main_srv, "eval"), 1);

    /* two pending after a flush: the first NULL, the second loads; a fresh send after a
     * failure with the script flushed again loads it too */
    expect_status_reply(redis_conn_command(c, "SCRIPT FLUSH"), "OK");
    send_incrby(c, "t:ns:a", "10");
    send_incrby(c, "t:ns:b", "10");
    assert_null(recv_incrby(c, "t:ns:a", "10"));
    assert_contains(redis_conn_errstr(c), "script not loaded");
    expect_int_reply(recv_incrby(c, "t:ns:b", "10"), 11);
    expect_status_reply(redis_conn_command(c, "SCRIPT FLUSH"), "OK");
    send_incrby(c, "t:ns:a", "10");
    expect_int_reply(recv_incrby(c, "t:ns:a", "10"), 11);

    expect_counter(c, "t:ns:a", 11);
    expect_counter(c, "t:ns:b", 11);
    expect_counter(c, "t:ns:c", 1);
    expect_ping(c);
    redis_conn_destroy(&c);
}

/* The server goes away between send and recv (paused first, so the runs sent are never
 * executed): recv returns NULL with a reason, for every run pending; the next run reconnects
 * by itself, loads the script into the new server and runs once. */
static void test_eval_send_server_gone(void **state)
{
    (void)state;
    aux_ensure_up();
    redis_conn_t *c = conn_to(&aux_srv, 0, 1000);
    redis_conn_t *ctl = conn_to(&aux_srv, 0, 1000);
    const char *argv[] = {"t:gone", "1"};
    expect_int_reply(redis_conn_eval(c, &incrby_script, 1, 2, argv, NULL), 1); /* connected, loaded */

    expect_status_reply(redis_conn_command(ctl, "CLIENT PAUSE 20000 ALL"), "OK");
    send_incrby(c, "t:gone", "1");
    send_incrby(c, "t:gone", "1");
    server_stop(&aux_srv);
    assert_null(recv_incrby(c, "t:gone", "1"));
    assert_true(redis_conn_errstr(c)[0] != '\0');
    assert_null(recv_incrby(c, "t:gone", "1")); /* the second went down with the connection */
    assert_true(redis_conn_errstr(c)[0] != '\0');
    assert_null(recv_incrby(c, "t:gone", "1")); /* nothing pending any more */

    /* still down: the send fails at once */
    int64_t t0 = now_ms();
    assert_int_equal(redis_conn_eval_send(c, &incrby_script, 1, 2, argv, NULL), -1);
    assert_contains(redis_conn_errstr(c), "cannot connect");
    assert_true(now_ms() - t0 < 2000);
    assert_null(recv_incrby(c, "t:gone", "1"));

    /* back up (empty: no data, no scripts): the next send reconnects, recv loads and runs */
    assert_int_equal(server_start_on(&aux_srv), 0);
    send_incrby(c, "t:gone", "1");
    redisReply *r = recv_incrby(c, "t:gone", "1");
    if (!r)
        fail_msg("no recovery: %s", redis_conn_errstr(c));
    expect_int_reply(r, 1);
    expect_counter(c, "t:gone", 1);
    send_incrby(c, "t:gone", "1");
    send_incrby(c, "t:gone", "1");
    expect_int_reply(recv_incrby(c, "t:gone", "1"), 2);
    expect_int_reply(recv_incrby(c, "t:gone", "1"), 3);
    expect_counter(c, "t:gone", 3);
    redis_conn_destroy(&ctl);
    redis_conn_destroy(&c);
}

/* kill_client - close c's connection from the server side (CLIENT KILL ID through ctl). */
static void kill_client(redis_conn_t *c, redis_conn_t *ctl)
{
    redisReply *r = redis_conn_command(c, "CLIENT ID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long id = r->integer;
    freeReplyObject(r);
    expect_int_reply(redis_conn_command(ctl, "CLIENT KILL ID %lld", id), 1);
}

/* A send that fails (the connection was reset) while an earlier run is pending, then a new
 * send, which reconnects: the runs sent on the lost connection fail, in order (their replies
 * are gone), and the run sent after the reconnect gets its own reply. */
static void test_eval_send_fails_with_one_pending(void **state)
{
    (void)state;
    redis_conn_t *c = conn_to(&main_srv, 0, 1000);
    redis_conn_t *ctl = conn_to(&main_srv, 0, 1000);
    del_keys(c, "t:sf:a", "t:sf:b", "t:sf:c", NULL);
    const char *warm[] = {"t:sf:a", "1"};
    expect_int_reply(redis_conn_eval(c, &incrby_script, 1, 2, warm, NULL), 1); /* loaded */
    kill_client(c, ctl);
    /* the first write after the server closed the connection is accepted by the kernel (the
     * server answers it with a reset): A is "sent" but never runs */
    send_incrby(c, "t:sf:a", "1");
    /* B: a send fails once the reset has arrived (bounded attempts) */
    const char *bargv[] = {"t:sf:b", "1"};
    int sent_b = 0, rc = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    while ((rc = redis_conn_eval_send(c, &incrby_script, 1, 2, bargv, NULL)) == 0 && sent_b < 50 &&
           now_ms() < deadline) {
        sent_b++;
        pause_ms(POLL_MS);
    }
    if (rc == 0)
        fail_msg("no send failed on a connection the server closed");
    assert_true(redis_conn_errstr(c)[0] != '\0');
    /* C: reconnects and runs */
    send_incrby(c, "t:sf:c", "100");
    assert_null(recv_incrby(c, "t:sf:a", "1")); /* A never ran */
    assert_contains(redis_conn_errstr(c), "connection failed before");
    for (int i = 0; i < sent_b; i++) /* the B runs that were "sent" (none ran) */
        assert_null(recv_incrby(c, "t:sf:b", "1"));
    expect_int_reply(recv_incrby(c, "t:sf:c", "100"), 100); /* C's own reply */
    assert_null(recv_incrby(c, "t:sf:c", "100")); /* nothing left */
    assert_contains(redis_conn_errstr(c), "no script run");
    expect_counter(c, "t:sf:a", 1); /* A did not run */
    expect_counter(c, "t:sf:b", 0);
    expect_counter(c, "t:sf:c", 100); /* C ran, once */
    redis_conn_destroy(&ctl);
    redis_conn_destroy(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* timeouts                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void test_timeout(void **state)
{
    (void)state;
    redis_conn_t *fast = conn_to(&main_srv, 0, 200);
    redis_conn_t *other = conn_to(&main_srv, 0, 2000);
    expect_ping(fast); /* connected before the pause */
    expect_status_reply(redis_conn_command(other, "CLIENT PAUSE 1000 ALL"), "OK");
    int64_t t0 = now_ms();
    redisReply *r = redis_conn_command(fast, "PING");
    int64_t took = now_ms() - t0;
    if (r)
        fail_msg("PING answered during a pause (%lld ms)", (long long)took);
    assert_true(redis_conn_errstr(fast)[0] != '\0');
    assert_in_range(took, 150, 800);
    /* a pipeline times out as well */
    assert_int_equal(redis_conn_append(fast, "PING"), 0);
    redisReply *pr;
    t0 = now_ms();
    int rc = redis_conn_pipeline_exec(fast, &pr, 1);
    took = now_ms() - t0;
    if (rc == 0) { /* the pause may just have ended */
        freeReplyObject(pr);
    } else {
        assert_in_range(took, 0, 800);
    }
    /* the pause ends: commands work again (bounded retries) */
    int64_t deadline = now_ms() + WAIT_MS;
    r = NULL;
    for (int i = 0; i < 50 && !r && now_ms() < deadline; i++) {
        t0 = now_ms();
        r = redis_conn_command(fast, "PING");
        assert_true(now_ms() - t0 < 800); /* never hangs */
    }
    if (!r)
        fail_msg("no recovery after the pause: %s", redis_conn_errstr(fast));
    expect_status_reply(r, "PONG");
    expect_ping(other);
    redis_conn_destroy(&fast);
    redis_conn_destroy(&other);
}

/* a timeout of 0 (or less) means none: connecting and commands work */
static void test_no_timeout(void **state)
{
    (void)state;
    static const int64_t timeouts[] = {0, -1, 1, 1000};
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        redis_conn_t *c = conn_to(&main_srv, 0, timeouts[i]);
        redisReply *r = NULL;
        /* 1 ms may be too short for a loaded machine: allow a few tries there */
        for (int attempt = 0; attempt < (timeouts[i] == 1 ? 20 : 1) && !r; attempt++)
            r = redis_conn_command(c, "PING");
        if (!r)
            fail_msg("timeout %lld: %s", (long long)timeouts[i], redis_conn_errstr(c));
        expect_status_reply(r, "PONG");
        redis_conn_destroy(&c);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* main                                                                                      */
/* ---------------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url_valid),
        cmocka_unit_test(test_parse_url_invalid),
        cmocka_unit_test(test_new_bad_url),
        cmocka_unit_test(test_destroy_null),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_set_get),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_lazy_connect),
        cmocka_unit_test(test_reconnect_after_restart),
        cmocka_unit_test(test_restart_big_write),
        cmocka_unit_test(test_select_db),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_pipeline_in_order),
        cmocka_unit_test(test_pipeline_count_mismatch),
        cmocka_unit_test(test_pipeline_server_down),
        cmocka_unit_test(test_command_while_pipeline_pending),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_eval_errors),
        cmocka_unit_test(test_eval_send_in_order),
        cmocka_unit_test(test_eval_recv_nothing_pending),
        cmocka_unit_test(test_eval_send_noscript),
        cmocka_unit_test(test_eval_send_server_gone),
        cmocka_unit_test(test_eval_send_fails_with_one_pending),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_no_timeout),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
