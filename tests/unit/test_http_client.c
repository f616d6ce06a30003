/*
 * test_http_client.c - unit tests of http_client against a scripted HTTP/1.1 stand-in server.
 *
 * The server is one pthread on 127.0.0.1 (port 0, read back with getsockname) that polls its
 * listening socket and up to SRV_MAX_CONNS keep-alive connections, parses each request
 * (headers + Content-Length body) and answers from a script chosen by the request path:
 *
 *   /ok          200 JSON body            /echo       method, target, X-Test, length, body
 *   /ua          the User-Agent           /throttle   429, Retry-After: 7
 *   /date        503, Retry-After ~30 s ahead as an HTTP date
 *   /past        503, Retry-After an hour ago      /bad-ra   503, Retry-After: soon
 *   /ws-ra       429, odd-case header with blanks  /hints    103 with Retry-After, then 200
 *   /status/N    status N                 /big/N      N bytes of 'x'
 *   /redirect    302 to /ok               /slow       headers, then stall (at most 3 s)
 *   /close       close without answering
 *
 * Anything that does not start like an HTTP request (a TLS ClientHello) gets a 400 and a
 * close. Every loop is bounded in iterations and time; the listening socket exists before the
 * thread starts, so no test waits for the server to become ready.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "util.h"

#define SRV_MAX_CONNS 16
#define SRV_BUF_SIZE 65536
#define SRV_LIFETIME_MS 120000
#define SRV_STALL_MS 3000
#define SRV_BIG_MAX (1024 * 1024)

/* ---------------------------------------------------------------------------------------- */
/* Stand-in server                                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    int fd; /* -1 when the slot is free */
    size_t len;
    char buf[SRV_BUF_SIZE];
} srv_conn_t;

typedef struct {
    char method[16];
    char target[512];
    char path[512]; /* target without the scheme://host of an absolute-form (proxy) request
                     * and without the query */
    char x_test[256];
    char user_agent[256];
    long content_length; /* -1 when absent */
    const char *body;
    size_t body_len;
} srv_request_t;

typedef struct {
    int listen_fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    atomic_int accepted; /* connections accepted so far */
    srv_conn_t conns[SRV_MAX_CONNS];
} test_server_t;

static test_server_t *g_srv;

/* srv_send_all - write n bytes (MSG_NOSIGNAL); 0, or -1 once the peer is gone. */
static int srv_send_all(int fd, const char *data, size_t n)
{
    size_t off = 0;
    /* Each round either progresses or fails; SO_SNDTIMEO bounds a stuck peer. */
    for (int rounds = 0; off < n && rounds < 100000; rounds++) {
        ssize_t w = send(fd, data + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return off == n ? 0 : -1;
}

/* srv_respond - send a complete response; HEAD requests get the headers only. */
static int srv_respond(int fd, const srv_request_t *req, int status, const char *reason,
                       const char *extra_headers, const char *body, size_t body_len)
{
    char head[1024];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s\r\n",
                     status, reason, body_len, extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        return -1;
    if (srv_send_all(fd, head, (size_t)n) < 0)
        return -1;
    if (req && strcmp(req->method, "HEAD") == 0)
        return 0;
    return body_len ? srv_send_all(fd, body, body_len) : 0;
}

/* srv_http_date - format now + offset_s as an IMF-fixdate. */
static void srv_http_date(char *out, size_t outsize, long offset_s)
{
    time_t t = time(NULL) + offset_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outsize, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* srv_copy_value - copy a header value (trimmed) into out. */
static void srv_copy_value(const char *v, size_t n, char *out, size_t outsize)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= outsize)
        n = outsize - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

/* srv_parse - parse one request at buf; its total length, 0 if incomplete, -1 if malformed. */
static long srv_parse(const char *buf, size_t len, srv_request_t *req)
{
    memset(req, 0, sizeof(*req));
    req->content_length = -1;
    if (len > 0 && !isupper((unsigned char)buf[0]))
        return -1; /* not HTTP (e.g. a TLS ClientHello) */
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len >= SRV_BUF_SIZE ? -1 : 0;
    size_t head_len = (size_t)(end - buf) + 4;
    const char *line_end = memmem(buf, head_len, "\r\n", 2);
    char line[700];
    size_t ll = (size_t)(line_end - buf);
    if (ll >= sizeof(line))
        return -1;
    memcpy(line, buf, ll);
    line[ll] = '\0';
    char version[16];
    if (sscanf(line, "%15s %511s %15s", req->method, req->target, version) != 3)
        return -1;
    const char *path = req->target;
    if (strncmp(path, "http://", 7) == 0) {
        const char *slash = strchr(path + 7, '/');
        path = slash ? slash : "/";
    }
    size_t path_len = strcspn(path, "?#");
    memcpy(req->path, path, path_len);
    req->path[path_len] = '\0';
    strcpy(req->x_test, "-");
    const char *p = line_end + 2;
    for (int i = 0; i < 200 && p < end; i++) {
        const char *e = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (!e)
            break;
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (colon) {
            size_t name_len = (size_t)(colon - p);
            const char *v = colon + 1;
            size_t vn = (size_t)(e - v);
            if (name_len == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
                char num[32];
                srv_copy_value(v, vn, num, sizeof(num));
                req->content_length = strtol(num, NULL, 10);
            } else if (name_len == 6 && strncasecmp(p, "X-Test", 6) == 0) {
                srv_copy_value(v, vn, req->x_test, sizeof(req->x_test));
            } else if (name_len == 10 && strncasecmp(p, "User-Agent", 10) == 0) {
                srv_copy_value(v, vn, req->user_agent, sizeof(req->user_agent));
            }
        }
        p = e + 2;
    }
    size_t body_len = req->content_length > 0 ? (size_t)req->content_length : 0;
    if (body_len > SRV_BUF_SIZE - head_len)
        return -1;
    if (len < head_len + body_len)
        return 0;
    req->body = buf + head_len;
    req->body_len = body_len;
    return (long)(head_len + body_len);
}

/* srv_stall - after a partial answer, wait (at most SRV_STALL_MS) for the client to give up. */
static void srv_stall(int fd)
{
    int64_t deadline = util_monotonic_ms() + SRV_STALL_MS;
    char scratch[4096];
    for (int i = 0; i < 1000; i++) {
        int64_t left = deadline - util_monotonic_ms();
        if (left <= 0)
            return;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc <= 0)
            return;
        if (recv(fd, scratch, sizeof(scratch), 0) <= 0)
            return; /* the client closed: it timed out */
    }
}

/* srv_handle - answer one request; 0 to keep the connection, -1 to close it. */
static int srv_handle(int fd, const srv_request_t *req)
{
    const char *path = req->path;
    char headers[512];
    if (strcmp(path, "/ok") == 0) {
        static const char body[] = "{\"ok\":true}";
        return srv_respond(fd, req, 200, "OK", "Content-Type: application/json\r\n", body,
                           sizeof(body) - 1);
    }
    if (strcmp(path, "/echo") == 0) {
        char cl[32];
        if (req->content_length < 0)
            strcpy(cl, "-");
        else
            snprintf(cl, sizeof(cl), "%ld", req->content_length);
        size_t cap = req->body_len + 1024;
        char *out = malloc(cap);
        if (!out)
            return -1;
        int n = snprintf(out, cap, "method=%s\ntarget=%s\nx-test=%s\ncontent-length=%s\nbody=",
                         req->method, req->target, req->x_test, cl);
        if (n < 0 || (size_t)n + req->body_len > cap) {
            free(out);
            return -1;
        }
        if (req->body_len)
            memcpy(out + n, req->body, req->body_len);
        int rc = srv_respond(fd, req, 200, "OK", "Content-Type: text/plain\r\n", out,
                             (size_t)n + req->body_len);
        free(out);
        return rc;
    }
    if (strcmp(path, "/ua") == 0)
        return srv_respond(fd, req, 200, "OK", NULL, req->user_agent, strlen(req->user_agent));
    if (strcmp(path, "/throttle") == 0)
        return srv_respond(fd, req, 429, "Too Many Requests", "Retry-After: 7\r\n", "slow down",
                           9);
    if (strcmp(path, "/date") == 0 || strcmp(path, "/past") == 0) {
        char date[64];
        srv_http_date(date, sizeof(date), strcmp(path, "/date") == 0 ? 30 : -3600);
        snprintf(headers, sizeof(headers), "Retry-After: %s\r\n", date);
        return srv_respond(fd, req, 503, "Service Unavailable", headers, "busy", 4);
    }
    if (strcmp(path, "/bad-ra") == 0)
        return srv_respond(fd, req, 503, "Service Unavailable", "Retry-After: soon\r\n", "busy",
                           4);
    if (strcmp(path, "/ws-ra") == 0)
        return srv_respond(fd, req, 429, "Too Many Requests", "rEtRy-AfTeR:   12  \r\n", "", 0);
    if (strcmp(path, "/hints") == 0) {
        static const char hints[] = "HTTP/1.1 103 Early Hints\r\nRetry-After: 99\r\n\r\n";
        if (srv_send_all(fd, hints, sizeof(hints) - 1) < 0)
            return -1;
        return srv_respond(fd, req, 200, "OK", NULL, "final", 5);
    }
    if (strncmp(path, "/status/", 8) == 0) {
        int status = atoi(path + 8);
        if (status < 200 || status > 599)
            status = 400;
        if (status == 204 || status == 304) /* no body allowed */
            return srv_respond(fd, req, status, "Scripted", NULL, "", 0);
        return srv_respond(fd, req, status, "Scripted", NULL, "status", 6);
    }
    if (strncmp(path, "/big/", 5) == 0) {
        long n = strtol(path + 5, NULL, 10);
        if (n < 0 || n > SRV_BIG_MAX)
            return srv_respond(fd, req, 400, "Bad Request", NULL, "", 0);
        char *body = malloc((size_t)n + 1);
        if (!body)
            return -1;
        memset(body, 'x', (size_t)n);
        int rc = srv_respond(fd, req, 200, "OK", "Content-Type: text/plain\r\n", body,
                             (size_t)n);
        free(body);
        return rc;
    }
    if (strcmp(path, "/redirect") == 0)
        return srv_respond(fd, req, 302, "Found", "Location: /ok\r\n", "moved", 5);
    if (strcmp(path, "/slow") == 0) {
        static const char partial[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
        if (srv_send_all(fd, partial, sizeof(partial) - 1) == 0)
            srv_stall(fd);
        return -1;
    }
    if (strcmp(path, "/close") == 0)
        return -1;
    return srv_respond(fd, req, 404, "Not Found", NULL, "no such path", 12);
}

/* srv_close_conn - close a connection slot. */
static void srv_close_conn(srv_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* srv_on_readable - read from a connection and answer every complete request in its buffer. */
static void srv_on_readable(srv_conn_t *c)
{
    if (c->len >= sizeof(c->buf)) {
        srv_close_conn(c);
        return;
    }
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (r <= 0) {
        srv_close_conn(c);
        return;
    }
    c->len += (size_t)r;
    for (int i = 0; i < 64 && c->len > 0; i++) {
        srv_request_t req;
        long used = srv_parse(c->buf, c->len, &req);
        if (used == 0)
            return;
        if (used < 0) {
            static const char bad[] =
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            srv_send_all(c->fd, bad, sizeof(bad) - 1);
            srv_close_conn(c);
            return;
        }
        if (srv_handle(c->fd, &req) < 0) {
            srv_close_conn(c);
            return;
        }
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
    }
}

/* srv_main - the server thread: poll, accept, answer; bounded by SRV_LIFETIME_MS. */
static void *srv_main(void *arg)
{
    test_server_t *srv = arg;
    int64_t deadline = util_monotonic_ms() + SRV_LIFETIME_MS;
    for (long iter = 0; iter < 1000000 && !atomic_load(&srv->stop); iter++) {
        if (util_monotonic_ms() > deadline)
            break;
        struct pollfd pfds[1 + SRV_MAX_CONNS];
        int slot_of[1 + SRV_MAX_CONNS];
        nfds_t n = 0;
        pfds[n].fd = srv->listen_fd;
        pfds[n].events = POLLIN;
        slot_of[n++] = -1;
        for (int i = 0; i < SRV_MAX_CONNS; i++) {
            if (srv->conns[i].fd >= 0) {
                pfds[n].fd = srv->conns[i].fd;
                pfds[n].events = POLLIN;
                slot_of[n++] = i;
            }
        }
        if (poll(pfds, n, 50) <= 0)
            continue;
        for (nfds_t k = 1; k < n; k++)
            if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR))
                srv_on_readable(&srv->conns[slot_of[k]]);
        if (pfds[0].revents & POLLIN) {
            int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            atomic_fetch_add(&srv->accepted, 1);
            struct timeval tv = {.tv_sec = 3, .tv_usec = 0};
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            int slot = -1;
            for (int i = 0; i < SRV_MAX_CONNS && slot < 0; i++)
                if (srv->conns[i].fd < 0)
                    slot = i;
            if (slot < 0) {
                close(fd);
                continue;
            }
            srv->conns[slot].fd = fd;
            srv->conns[slot].len = 0;
        }
    }
    for (int i = 0; i < SRV_MAX_CONNS; i++)
        srv_close_conn(&srv->conns[i]);
    return NULL;
}

/* listen_on_loopback - a TCP socket bound to 127.0.0.1 on a free port (*port); -1 on error. */
static int listen_on_loopback(int *port, bool do_listen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t alen = sizeof(addr);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        (do_listen && listen(fd, 16) < 0) ||
        getsockname(fd, (struct sockaddr *)&addr, &alen) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

/* group_setup - clear proxy variables, start the stand-in server. */
static int group_setup(void **state)
{
    (void)state;
    static const char *const proxy_vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy",
                                             "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                             "no_proxy", "NO_PROXY"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(proxy_vars); i++)
        unsetenv(proxy_vars[i]);
    test_server_t *srv = util_xcalloc(1, sizeof(*srv));
    for (int i = 0; i < SRV_MAX_CONNS; i++)
        srv->conns[i].fd = -1;
    atomic_init(&srv->stop, false);
    atomic_init(&srv->accepted, 0);
    srv->listen_fd = listen_on_loopback(&srv->port, true);
    if (srv->listen_fd < 0) {
        free(srv);
        return -1;
    }
    if (pthread_create(&srv->thread, NULL, srv_main, srv) != 0) {
        close(srv->listen_fd);
        free(srv);
        return -1;
    }
    g_srv = srv;
    return 0;
}

/* group_teardown - stop and free the server. */
static int group_teardown(void **state)
{
    (void)state;
    if (!g_srv)
        return 0;
    atomic_store(&g_srv->stop, true);
    pthread_join(g_srv->thread, NULL);
    close(g_srv->listen_fd);
    free(g_srv);
    g_srv = NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* url_for - "http://127.0.0.1:<port><path>" into out. */
static void url_for(char *out, size_t outsize, const char *path)
{
    snprintf(out, outsize, "http://127.0.0.1:%d%s", g_srv->port, path);
}

/* new_client - a client with a short connect timeout and the given total timeout/max body. */
static http_client_t *new_client(int64_t total_timeout_ms, size_t max_body)
{
    http_client_options_t o = {
        .connect_timeout_ms = 2000,
        .total_timeout_ms = total_timeout_ms ? total_timeout_ms : 5000,
        .max_body = max_body,
    };
    http_client_t *c = http_client_new(&o);
    assert_non_null(c);
    return c;
}

/* get_path - GET path on the stand-in server. */
static int get_path(http_client_t *c, const char *path, http_response_t *resp)
{
    char url[256];
    url_for(url, sizeof(url), path);
    return http_client_request(c, "GET", url, NULL, NULL, 0, resp);
}

#define CASE_LL_EQ(name, actual, expected)                                                   \
    do {                                                                                     \
        long long a_ = (long long)(actual), e_ = (long long)(expected);                      \
        if (a_ != e_)                                                                        \
            fail_msg("case %s: %s is %lld, expected %lld", name, #actual, a_, e_);           \
    } while (0)

/* assert_failed_response - the shape of a failed request's response. */
static void assert_failed_response(const char *name, const http_response_t *r, int rc,
                                   http_error_t expected)
{
    CASE_LL_EQ(name, rc, -1);
    CASE_LL_EQ(name, r->error, expected);
    CASE_LL_EQ(name, r->status, 0);
    CASE_LL_EQ(name, r->retry_after_s, -1);
    if (r->body != NULL || r->content_type != NULL)
        fail_msg("case %s: failed response has a body or content type", name);
}

/* ---------------------------------------------------------------------------------------- */
/* Tests                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* test_get_ok - status, body, length and content type of a plain 200. */
static void test_get_ok(void **state)
{
    (void)state;
    http_client_t *c = new_client(0, 0);
    http_response_t r;
    assert_int_equal(get_path(c, "/ok", &r), 0);
    assert_int_equal(r.error, HTTP_ERROR_NONE);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ok\":true}");
    assert_int_equal(r.body_len, strlen("{\"ok\":true}"));
    assert_non_null(r.content_type);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.retry_after_s, -1);
    assert_false(http_error_retryable(&r));
    http_response_release(&r);
    assert_null(r.body);
    assert_null(r.content_type);
    assert_int_equal(r.retry_after_s, -1);
    http_response_release(&r); /* twice is fine */
    http_response_release(NULL);

    /* No Content-Type header: NULL; an empty body is "" with length 0. */
    assert_int_equal(get_path(c, "/big/0", &r), 0);
    assert_string_equal(r.body, "");
    assert_int_equal(r.body_len, 0);
    http_response_release(&r);
    assert_int_equal(get_path(c, "/status/204", &r), 0);
    assert_int_equal(r.status, 204);
    assert_null(r.content_type);
    http_response_release(&r);
    http_client_destroy(&c);
}

typedef struct {
    const char *name;
    const char *method;
    const char *x_test; /* header value or NULL for no header */
    const char *body;
    size_t body_len;
    const char *expected_cl; /* Content-Length the server saw, "-" when none */
} echo_case_t;

/* check_echo - send one echo case and compare the echoed request exactly. */
static void check_echo(http_client_t *c, const echo_case_t *tc)
{
    char url[256];
    url_for(url, sizeof(url), "/echo");
    char header[300];
    const char *headers[] = {header, NULL};
    if (tc->x_test)
        snprintf(header, sizeof(header), "X-Test: %s", tc->x_test);
    http_response_t r;
    int rc = http_client_request(c, tc->method, url, tc->x_test ? headers : NULL, tc->body,
                                 tc->body_len, &r);
    if (rc != 0)
        fail_msg("case %s: request failed: %s", tc->name, http_client_errstr(c));
    CASE_LL_EQ(tc->name, r.status, 200);
    char prefix[600];
    int n = snprintf(prefix, sizeof(prefix),
                     "method=%s\ntarget=/echo\nx-test=%s\ncontent-length=%s\nbody=", tc->method,
                     tc->x_test ? tc->x_test : "-", tc->expected_cl);
    size_t expected_len = (size_t)n + tc->body_len;
    if (r.body_len != expected_len || memcmp(r.body, prefix, (size_t)n) != 0 ||
        (tc->body_len && memcmp(r.body + n, tc->body, tc->body_len) != 0))
        fail_msg("case %s: echoed\n%.*s\nexpected\n%s(%zu body bytes)", tc->name,
                 (int)(r.body_len > 400 ? 400 : r.body_len), r.body, prefix, tc->body_len);
    CASE_LL_EQ(tc->name, r.body[r.body_len], '\0');
    http_response_release(&r);
}

/* test_methods_and_bodies - method, request body and custom header reach the server. */
static void test_methods_and_bodies(void **state)
{
    (void)state;
    static char large[20000];
    memset(large, 'L', sizeof(large));
    const echo_case_t cases[] = {
        {"get", "GET", "get-1", NULL, 0, "-"},
        {"get-no-header", "GET", NULL, NULL, 0, "-"},
        {"post", "POST", "post-1", "hello", 5, "5"},
        {"post-json", "POST", "json", "{\"a\":[1,2]}", 11, "11"},
        {"post-binary", "POST", "bin", "a\0b\r\n", 5, "5"},
        {"post-empty", "POST", "empty", NULL, 0, "0"},
        {"post-large", "POST", "large", large, sizeof(large), "20000"},
        {"put", "PUT", "put-1", "put-data", 8, "8"},
        {"put-empty", "PUT", "put-2", NULL, 0, "0"},
        {"patch", "PATCH", "patch-1", "{\"x\":1}", 7, "7"},
        {"delete", "DELETE", "del-1", NULL, 0, "-"},
        {"delete-body", "DELETE", "del-2", "why", 3, "3"},
    };
    http_client_t *c = new_client(0, 0);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++)
        check_echo(c, &cases[i]);
    /* HEAD: status and headers, no body. */
    char url[256];
    url_for(url, sizeof(url), "/echo");
    http_response_t r;
    assert_int_equal(http_client_request(c, "HEAD", url, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(r.body, "");
    http_response_release(&r);
    http_client_destroy(&c);
}

/* test_user_agent - default "clawback/..." and a configured one. */
static void test_user_agent(void **state)
{
    (void)state;
    http_client_t *c = http_client_new(NULL);
    assert_non_null(c);
    http_response_t r;
    assert_int_equal(get_path(c, "/ua", &r), 0);
    assert_true(strncmp(r.body, "clawback/", 9) == 0);
    http_response_release(&r);
    http_client_destroy(&c);

    http_client_options_t o = {.user_agent = "clawback-test/9.9"};
    c = http_client_new(&o);
    assert_non_null(c);
    assert_int_equal(get_path(c, "/ua", &r), 0);
    assert_string_equal(r.body, "clawback-test/9.9");
    http_response_release(&r);
    http_client_destroy(&c);
}

/* test_retry_after - delta seconds and HTTP dates, status and retryability. */
static void test_retry_after(void **state)
{
    (void)state;
    const struct {
        const char *path;
        long status;
        int64_t min_s, max_s;
        bool retryable;
    } cases[] = {
        {"/throttle", 429, 7, 7, true},
        {"/date", 503, 20, 40, true},
        {"/past", 503, 0, 0, true},
        {"/bad-ra", 503, -1, -1, true},
        {"/ws-ra", 429, 12, 12, true},
        {"/hints", 200, -1, -1, false}, /* an interim response's header does not count */
        {"/ok", 200, -1, -1, false},
    };
    http_client_t *c = new_client(0, 0);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        http_response_t r;
        const char *name = cases[i].path;
        if (get_path(c, name, &r) != 0)
            fail_msg("case %s: %s", name, http_client_errstr(c));
        CASE_LL_EQ(name, r.error, HTTP_ERROR_NONE);
        CASE_LL_EQ(name, r.status, cases[i].status);
        if (r.retry_after_s < cases[i].min_s || r.retry_after_s > cases[i].max_s)
            fail_msg("case %s: retry_after_s %lld not in [%lld, %lld]", name,
                     (long long)r.retry_after_s, (long long)cases[i].min_s,
                     (long long)cases[i].max_s);
        CASE_LL_EQ(name, http_error_retryable(&r), cases[i].retryable);
        http_response_release(&r);
    }
    http_client_destroy(&c);
}

/* test_status_codes - any status is a completed request; which ones are retryable. */
static void test_status_codes(void **state)
{
    (void)state;
    const struct {
        int status;
        bool retryable;
    } cases[] = {
        {200, false}, {204, false}, {400, false}, {401, false}, {404, false}, {408, false},
        {429, true},  {500, true},  {501, false}, {502, true},  {503, true},  {599, true},
    };
    http_client_t *c = new_client(0, 0);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char path[32], name[32];
        snprintf(path, sizeof(path), "/status/%d", cases[i].status);
        snprintf(name, sizeof(name), "%d", cases[i].status);
        http_response_t r;
        CASE_LL_EQ(name, get_path(c, path, &r), 0);
        CASE_LL_EQ(name, r.status, cases[i].status);
        CASE_LL_EQ(name, r.error, HTTP_ERROR_NONE);
        CASE_LL_EQ(name, http_error_retryable(&r), cases[i].retryable);
        http_response_release(&r);
    }
    http_client_destroy(&c);
}

/* test_retryable_table - http_error_retryable on constructed responses. */
static void test_retryable_table(void **state)
{
    (void)state;
    const struct {
        http_error_t error;
        long status;
        bool retryable;
    } cases[] = {
        {HTTP_ERROR_NETWORK, 0, true},    {HTTP_ERROR_TIMEOUT, 0, true},
        {HTTP_ERROR_TLS, 0, false},       {HTTP_ERROR_TOO_LARGE, 0, false},
        {HTTP_ERROR_OTHER, 0, false},     {HTTP_ERROR_NONE, 200, false},
        {HTTP_ERROR_NONE, 301, false},    {HTTP_ERROR_NONE, 404, false},
        {HTTP_ERROR_NONE, 428, false},    {HTTP_ERROR_NONE, 429, true},
        {HTTP_ERROR_NONE, 430, false},    {HTTP_ERROR_NONE, 499, false},
        {HTTP_ERROR_NONE, 500, true},     {HTTP_ERROR_NONE, 501, false},
        {HTTP_ERROR_NONE, 504, true},     {HTTP_ERROR_NONE, 599, true},
        {HTTP_ERROR_NONE, 600, false},    {HTTP_ERROR_NONE, 0, false},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        http_response_t r = {.status = cases[i].status, .error = cases[i].error,
                             .retry_after_s = -1};
        char name[48];
        snprintf(name, sizeof(name), "error %d status %ld", (int)cases[i].error,
                 cases[i].status);
        CASE_LL_EQ(name, http_error_retryable(&r), cases[i].retryable);
    }
    assert_false(http_error_retryable(NULL));
}

/* test_max_body - bodies up to max_body arrive whole, larger ones fail TOO_LARGE. */
static void test_max_body(void **state)
{
    (void)state;
    const struct {
        const char *path;
        size_t max_body;
        int rc;
        size_t len;
    } cases[] = {
        {"/big/1000", 1000, 0, 1000},
        {"/big/1001", 1000, -1, 0},
        {"/big/300000", 1000, -1, 0},
        {"/big/1", 1, 0, 1},
        {"/big/2", 1, -1, 0},
        {"/big/0", 1, 0, 0},
        {"/big/200000", 200000, 0, 200000},
        {"/big/200001", 200000, -1, 0},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        const char *name = cases[i].path;
        http_client_t *c = new_client(0, cases[i].max_body);
        http_response_t r;
        int rc = get_path(c, name, &r);
        if (cases[i].rc == 0) {
            if (rc != 0)
                fail_msg("case %s: %s", name, http_client_errstr(c));
            CASE_LL_EQ(name, r.status, 200);
            CASE_LL_EQ(name, r.body_len, cases[i].len);
            CASE_LL_EQ(name, strlen(r.body), cases[i].len);
            CASE_LL_EQ(name, strspn(r.body, "x"), cases[i].len);
        } else {
            assert_failed_response(name, &r, rc, HTTP_ERROR_TOO_LARGE);
            CASE_LL_EQ(name, http_error_retryable(&r), false);
            if (http_client_errstr(c)[0] == '\0')
                fail_msg("case %s: empty errstr", name);
        }
        http_response_release(&r);
        /* The client stays usable after an aborted transfer. */
        CASE_LL_EQ(name, get_path(c, "/big/1", &r), 0);
        CASE_LL_EQ(name, r.status, 200);
        CASE_LL_EQ(name, r.body_len, 1);
        http_response_release(&r);
        http_client_destroy(&c);
    }
}

/* test_timeout - a server that stalls after the headers hits the total timeout. */
static void test_timeout(void **state)
{
    (void)state;
    http_client_t *c = new_client(300, 0);
    http_response_t r;
    int64_t start = util_monotonic_ms();
    int rc = get_path(c, "/slow", &r);
    int64_t elapsed = util_monotonic_ms() - start;
    assert_failed_response("slow", &r, rc, HTTP_ERROR_TIMEOUT);
    assert_true(http_error_retryable(&r));
    assert_in_range(elapsed, 250, 2500);
    assert_true(strlen(http_client_errstr(c)) > 0);
    http_response_release(&r);
    /* Still usable. */
    assert_int_equal(get_path(c, "/ok", &r), 0);
    assert_int_equal(r.status, 200);
    http_response_release(&r);
    http_client_destroy(&c);
}

/* test_response_headers - header values by name, case-insensitive, trimmed; absent ones. */
static void test_response_headers(void **state)
{
    (void)state;
    http_client_t *c = new_client(0, 0);
    http_response_t r;
    char v[64];
    assert_int_equal(get_path(c, "/throttle", &r), 0);
    assert_non_null(r.headers);
    assert_int_equal(http_response_header(&r, "retry-after", v, sizeof(v)), 1);
    assert_string_equal(v, "7");
    assert_int_equal(http_response_header(&r, "RETRY-AFTER", v, sizeof(v)), 1);
    assert_int_equal(http_response_header(&r, "Retry", v, sizeof(v)), -1);        /* a prefix only */
    assert_int_equal(http_response_header(&r, "X-Absent", v, sizeof(v)), -1);
    assert_int_equal(http_response_header(&r, "Content-Length", v, 1), -1); /* does not fit */
    http_response_release(&r);
    assert_null(r.headers);
    http_client_destroy(&c);
}

/* test_cancel - a set cancel flag aborts a stalled request at once, and the client stays usable. */
static void test_cancel(void **state)
{
    (void)state;
    http_client_t *c = new_client(20000, 0);
    atomic_int cancel = 1;
    http_client_set_cancel(c, &cancel);
    http_response_t r;
    int64_t start = util_monotonic_ms();
    int rc = get_path(c, "/slow", &r);
    assert_int_equal(rc, -1);
    assert_true(util_monotonic_ms() - start < 5000);
    assert_non_null(strstr(http_client_errstr(c), "cancelled"));
    http_response_release(&r);
    atomic_store(&cancel, 0);
    assert_int_equal(get_path(c, "/ok", &r), 0);
    assert_int_equal(r.status, 200);
    http_response_release(&r);
    http_client_destroy(&c);
}

/* test_connection_refused - a bound port nobody listens on: NETWORK, retryable. */
static void test_connection_refused(void **state)
{
    (void)state;
    int port = 0;
    int fd = listen_on_loopback(&port, false); /* bound, not listening: connect is refused */
    assert_true(fd >= 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", port);
    http_client_t *c = new_client(0, 0);
    http_response_t r;
    int rc = http_client_request(c, "GET", url, NULL, NULL, 0, &r);
    close(fd);
    assert_failed_response("refused", &r, rc, HTTP_ERROR_NETWORK);
    assert_true(http_error_retryable(&r));
    assert_non_null(strstr(http_client_errstr(c), "127.0.0.1"));
    http_response_release(&r);
    http_client_destroy(&c);
}

/* test_closed_without_answer - the server hangs up: NETWORK, retryable. */
static void test_closed_without_answer(void **state)
{
    (void)state;
    http_client_t *c = new_client(0, 0);
    http_response_t r;
    int rc = get_path(c, "/close", &r);
    assert_failed_response("close", &r, rc, HTTP_ERROR_NETWORK);
    assert_true(http_error_retryable(&r));
    http_response_release(&r);
    http_client_destroy(&c);
}

/* test_handle_reuse - one client, many requests: one connection, no state carried over. */
static void test_handle_reuse(void **state)
{
    (void)state;
    http_client_t *c = new_client(0, 0);
    int before = atomic_load(&g_srv->accepted);
    const echo_case_t first[] = {
        {"delete", "DELETE", "a", NULL, 0, "-"},
        {"get-after-delete", "GET", NULL, NULL, 0, "-"},
        {"post", "POST", "b", "payload", 7, "7"},
        {"get-after-post", "GET", NULL, NULL, 0, "-"},
        {"patch", "PATCH", "c", "p", 1, "1"},
        {"get-after-patch", "GET", "d", NULL, 0, "-"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(first); i++)
        check_echo(c, &first[i]);
    http_response_t r;
    assert_int_equal(get_path(c, "/throttle", &r), 0);
    assert_int_equal(r.retry_after_s, 7);
    http_response_release(&r);
    assert_int_equal(get_path(c, "/ok", &r), 0);
    assert_int_equal(r.retry_after_s, -1); /* not carried over from the 429 */
    assert_string_equal(r.content_type, "application/json");
    http_response_release(&r);
    assert_int_equal(get_path(c, "/ua", &r), 0);
    assert_null(r.content_type); /* not carried over either */
    http_response_release(&r);
    /* All of the above on one kept-alive connection. */
    assert_int_equal(atomic_load(&g_srv->accepted) - before, 1);

    /* A failure in between does not poison the handle. */
    int rc = get_path(c, "/close", &r);
    assert_failed_response("close", &r, rc, HTTP_ERROR_NETWORK);
    http_response_release(&r);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get_path(c, "/ok", &r), 0);
        assert_int_equal(r.status, 200);
        http_response_release(&r);
    }
    http_client_destroy(&c);
}

/* test_destroy_null - destroy accepts NULL and a NULL client, and clears the pointer. */
static void test_destroy_null(void **state)
{
    (void)state;
    http_client_destroy(NULL);
    http_client_t *c = NULL;
    http_client_destroy(&c);
    assert_null(c);
    c = http_client_new(NULL);
    assert_non_null(c);
    assert_string_equal(http_client_errstr(c), "");
    http_client_destroy(&c);
    assert_null(c);
}

/* test_https_to_plain_server - TLS against a plain HTTP server fails cleanly. */
static void test_https_to_plain_server(void **state)
{
    (void)state;
    const struct {
        const char *name;
        bool insecure;
        const char *ca_file;
        bool tls_only;
    } cases[] = {
        {"verify", false, NULL, false},
        {"insecure", true, NULL, false},
        {"missing-ca-file", false, "/nonexistent/clawback-ca.pem", true},
    };
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/ok", g_srv->port);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        http_client_options_t o = {.connect_timeout_ms = 2000,
                                   .total_timeout_ms = 5000,
                                   .insecure = cases[i].insecure,
                                   .ca_file = cases[i].ca_file};
        http_client_t *c = http_client_new(&o);
        assert_non_null(c);
        http_response_t r;
        int rc = http_client_request(c, "GET", url, NULL, NULL, 0, &r);
        CASE_LL_EQ(cases[i].name, rc, -1);
        CASE_LL_EQ(cases[i].name, r.status, 0);
        if (r.error != HTTP_ERROR_TLS && (cases[i].tls_only || r.error != HTTP_ERROR_NETWORK))
            fail_msg("case %s: error class %d (%s)", cases[i].name, (int)r.error,
                     http_client_errstr(c));
        http_response_release(&r);
        http_client_destroy(&c);
    }
}

/* test_errstr_has_no_secrets - failures never echo header values, bodies or URL secrets. */
static void test_errstr_has_no_secrets(void **state)
{
    (void)state;
    int refused_port = 0;
    int refused_fd = listen_on_loopback(&refused_port, false);
    assert_true(refused_fd >= 0);
    const struct {
        const char *name;
        const char *method;
        const char *scheme;
        int port; /* 0: the stand-in server */
        const char *path;
        size_t max_body;
        bool bad_header;
    } cases[] = {
        {"close", "POST", "http", 0, "/close", 0, false},
        {"timeout", "POST", "http", 0, "/slow", 0, false},
        {"refused", "POST", "http", refused_port, "/ok", 0, false},
        {"tls", "POST", "https", 0, "/ok", 0, false},
        {"too-large", "POST", "http", 0, "/big/5000", 100, false},
        {"method", "TRACE", "http", 0, "/ok", 0, false},
        {"header-injection", "POST", "http", 0, "/ok", 0, true},
    };
    static const char *const secrets[] = {"SECRET123", "KEY456", "BODYSECRET", "PASSWORD1",
                                          "QUERYSECRET", "alice"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        const char *name = cases[i].name;
        http_client_t *c = new_client(300, cases[i].max_body);
        char url[256];
        snprintf(url, sizeof(url), "%s://alice:PASSWORD1@127.0.0.1:%d%s?token=QUERYSECRET",
                 cases[i].scheme, cases[i].port ? cases[i].port : g_srv->port, cases[i].path);
        const char *headers[] = {"Authorization: Bearer SECRET123",
                                 cases[i].bad_header ? "X-Api-Key: KEY456\r\nX-Evil: 1"
                                                     : "X-Api-Key: KEY456",
                                 NULL};
        http_response_t r;
        int rc = http_client_request(c, cases[i].method, url, headers, "BODYSECRET", 10, &r);
        CASE_LL_EQ(name, rc, -1);
        const char *err = http_client_errstr(c);
        if (err[0] == '\0')
            fail_msg("case %s: empty errstr", name);
        for (size_t s = 0; s < UTIL_ARRAY_LEN(secrets); s++)
            if (strstr(err, secrets[s]))
                fail_msg("case %s: errstr leaks %s: %s", name, secrets[s], err);
        if (!strstr(err, "127.0.0.1"))
            fail_msg("case %s: errstr does not name the host: %s", name, err);
        http_response_release(&r);
        http_client_destroy(&c);
    }
    close(refused_fd);
}

/* test_protocols_and_redirects - only http/https; redirects are returned, not followed. */
static void test_protocols_and_redirects(void **state)
{
    (void)state;
    http_client_t *c = new_client(0, 0);
    http_response_t r;
    const char *const urls[] = {"file:///etc/hostname", "ftp://127.0.0.1:1/x",
                                "gopher://127.0.0.1:1/x", "dict://127.0.0.1:1/x"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(urls); i++) {
        int rc = http_client_request(c, "GET", urls[i], NULL, NULL, 0, &r);
        assert_failed_response(urls[i], &r, rc, HTTP_ERROR_OTHER);
        http_response_release(&r);
    }
    assert_int_equal(get_path(c, "/redirect", &r), 0);
    assert_int_equal(r.status, 302);
    assert_string_equal(r.body, "moved");
    http_response_release(&r);
    http_client_destroy(&c);
}

/* test_invalid_arguments - rejected before anything is sent, with a message. */
static void test_invalid_arguments(void **state)
{
    (void)state;
    http_client_t *c = new_client(0, 0);
    char url[256];
    url_for(url, sizeof(url), "/echo");
    const char *crlf[] = {"X-Test: a\r\nX-Other: b", NULL};
    const char *lf[] = {"X-Test: a\nb", NULL};
    const struct {
        const char *name;
        const char *method;
        const char *url;
        const char *const *headers;
        const char *body;
        size_t body_len;
    } cases[] = {
        {"null-method", NULL, url, NULL, NULL, 0},
        {"null-url", "GET", NULL, NULL, NULL, 0},
        {"empty-url", "GET", "", NULL, NULL, 0},
        {"trace", "TRACE", url, NULL, NULL, 0},
        {"lowercase", "get", url, NULL, NULL, 0},
        {"crlf-header", "GET", url, crlf, NULL, 0},
        {"lf-header", "GET", url, lf, NULL, 0},
        {"length-without-body", "POST", url, NULL, NULL, 5},
        {"head-with-body", "HEAD", url, NULL, "x", 1},
    };
    int before = atomic_load(&g_srv->accepted);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        http_response_t r;
        int rc = http_client_request(c, cases[i].method, cases[i].url, cases[i].headers,
                                     cases[i].body, cases[i].body_len, &r);
        assert_failed_response(cases[i].name, &r, rc, HTTP_ERROR_OTHER);
        if (http_client_errstr(c)[0] == '\0')
            fail_msg("case %s: empty errstr", cases[i].name);
        http_response_release(&r);
    }
    assert_int_equal(atomic_load(&g_srv->accepted), before);
    http_response_t r;
    assert_int_equal(http_client_request(NULL, "GET", url, NULL, NULL, 0, &r), -1);
    assert_int_equal(r.error, HTTP_ERROR_OTHER);
    assert_int_equal(http_client_request(c, "GET", url, NULL, NULL, 0, NULL), -1);
    http_client_destroy(&c);
}

/* test_proxy - a configured proxy receives the absolute-form request. */
static void test_proxy(void **state)
{
    (void)state;
    char proxy[64];
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", g_srv->port);
    http_client_options_t o = {.total_timeout_ms = 5000, .proxy = proxy};
    http_client_t *c = http_client_new(&o);
    assert_non_null(c);
    http_response_t r;
    assert_int_equal(
        http_client_request(c, "GET", "http://example.invalid/echo", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "method=GET\ntarget=http://example.invalid/echo\nx-test=-\n"
                                "content-length=-\nbody=");
    http_response_release(&r);
    http_client_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_ok),
        cmocka_unit_test(test_methods_and_bodies),
        cmocka_unit_test(test_user_agent),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_response_headers),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_retryable_table),
        cmocka_unit_test(test_max_body),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_closed_without_answer),
        cmocka_unit_test(test_handle_reuse),
        cmocka_unit_test(test_destroy_null),
        cmocka_unit_test(test_https_to_plain_server),
        cmocka_unit_test(test_errstr_has_no_secrets),
        cmocka_unit_test(test_protocols_and_redirects),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_proxy),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
