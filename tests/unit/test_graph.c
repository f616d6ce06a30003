/*
 * test_graph.c - unit tests of remediator/graph.c (BACKEND_GRAPH) against
 * tests/tools/graph_standin.py, a stand-in for Microsoft Graph and its token endpoint.
 *
 * The group setup starts the stand-in (python3, port read from the first line of its standard
 * output, within a deadline) and kills it at teardown; each test resets its state through its
 * control API (/_control/...), seeds the mailboxes it needs and drives the back-end through its
 * ops with a config_profile_t built here. Every wait is bounded: HTTP timeouts, a deadline on
 * the start, a bounded wait for the stand-in to exit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "http_client.h"
#include "util.h"

#define STANDIN_SCRIPT "graph_standin.py"
#define START_DEADLINE_MS 15000
#define STOP_DEADLINE_MS 5000
#define TENANT "contoso.onmicrosoft.com"
#define CLIENT_ID "11111111-2222-3333-4444-555555555555"
#define SECRET "standin-secret"
#define ALICE "alice@contoso.com"
#define SOC "soc@contoso.com"
#define CONC_THREADS 8

static pid_t g_pid = -1;
static int g_port;
static char g_base[64];
static char g_url[96];
static char g_token_url[160];
static char g_secret_path[64] = "";
static char g_bad_secret_path[64] = "";
static http_client_t *g_ctl;

/* ------------------------------------------------------------------ the stand-in */

/* script_path - tests/tools/graph_standin.py, found from this file's path (the tests run from
 * the source tree's root, as the Makefile compiles tests/unit/test_graph.c). */
static void script_path(char *out, size_t size)
{
    const char *env = getenv("GRAPH_STANDIN");
    if (env) {
        util_strlcpy(out, env, size);
        return;
    }
    char here[512];
    util_strlcpy(here, __FILE__, sizeof(here));
    char *slash = strrchr(here, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, size, "%s/../tools/%s", slash ? here : ".", STANDIN_SCRIPT);
}

/* read_port - the first line the stand-in writes (its port), within the deadline; 0 if none. */
static int read_port(int fd)
{
    char line[32];
    size_t n = 0;
    int64_t deadline = util_monotonic_ms() + START_DEADLINE_MS;
    while (n < sizeof(line) - 1) {
        int64_t left = deadline - util_monotonic_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return 0;
        ssize_t r = read(fd, line + n, 1);
        if (r <= 0)
            return 0;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    return atoi(line);
}

static void write_file(char *path_template, const char *content)
{
    int fd = mkstemp(path_template);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
}

static int group_setup(void **state)
{
    (void)state;
    char script[600];
    script_path(script, sizeof(script));
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return -1;
    g_pid = fork();
    if (g_pid < 0)
        return -1;
    if (g_pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        execlp("python3", "python3", script, "--tenant", TENANT, "--client-id", CLIENT_ID, "--client-secret", SECRET,
               (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    g_port = read_port(pipefd[0]);
    close(pipefd[0]);
    if (g_port <= 0) {
        fprintf(stderr, "the stand-in (%s) did not start\n", script);
        return -1;
    }
    snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d", g_port);
    snprintf(g_url, sizeof(g_url), "%s/v1.0", g_base);
    snprintf(g_token_url, sizeof(g_token_url), "%s/%s/oauth2/v2.0/token", g_base, TENANT);
    strcpy(g_secret_path, "/tmp/clawback-test-graph-XXXXXX");
    write_file(g_secret_path, SECRET "\nsecond line ignored\n");
    strcpy(g_bad_secret_path, "/tmp/clawback-test-graph-XXXXXX");
    write_file(g_bad_secret_path, "Wr0ng-s3cret-value\n");
    g_ctl = http_client_new(&(http_client_options_t){.total_timeout_ms = 10000});
    return g_ctl ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    http_client_destroy(&g_ctl);
    if (*g_secret_path)
        unlink(g_secret_path);
    if (*g_bad_secret_path)
        unlink(g_bad_secret_path);
    if (g_pid > 0) {
        kill(g_pid, SIGTERM);
        int64_t deadline = util_monotonic_ms() + STOP_DEADLINE_MS;
        while (waitpid(g_pid, NULL, WNOHANG) == 0) {
            if (util_monotonic_ms() > deadline) {
                kill(g_pid, SIGKILL);
                waitpid(g_pid, NULL, 0);
                break;
            }
            poll(NULL, 0, 20);
        }
        g_pid = -1;
    }
    return 0;
}

/* ctl - a control call; the answer's JSON (caller decrefs). Fails the test on a non-200. */
static json_t *ctl(const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", g_base, path);
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    http_response_t resp;
    int rc = http_client_request(g_ctl, method, url, headers, body, body ? strlen(body) : 0, &resp);
    assert_int_equal(rc, 0);
    if (resp.status != 200)
        fprintf(stderr, "control %s %s -> %ld %s\n", method, path, resp.status, resp.body ? resp.body : "");
    assert_int_equal(resp.status, 200);
    json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
    assert_non_null(j);
    http_response_release(&resp);
    return j;
}

static void ctl_do(const char *method, const char *path, const char *body)
{
    json_decref(ctl(method, path, body));
}

/* seed - one message (folder, Message-ID, subject) in mailbox upn. */
static void seed(const char *upn, const char *folder, const char *message_id, const char *subject)
{
    json_t *req = json_pack("{s:[{s:s,s:[s],s:[{s:s,s:s,s:s}]}]}", "mailboxes", "upn", upn, "folders", "Quarantine",
                            "messages", "folder", folder, "internetMessageId", message_id, "subject", subject);
    char *body = json_dumps(req, JSON_COMPACT);
    ctl_do("POST", "/_control/mailboxes", body);
    free(body);
    json_decref(req);
}

/* in_folder - copies of message_id in the folder of upn named folder (well-known or display
 * name), as the stand-in has them; subject_out (optional) gets the last one's subject and
 * comment_out its forward comment. */
static int in_folder(const char *upn, const char *folder, const char *message_id, char *subject_out,
                     char *comment_out, size_t size)
{
    char path[256];
    snprintf(path, sizeof(path), "/_control/mailbox/%s", upn);
    json_t *mb = ctl("GET", path, NULL);
    int n = 0;
    size_t i, j;
    json_t *f, *m;
    json_array_foreach(json_object_get(mb, "folders"), i, f) {
        const char *wk = json_string_value(json_object_get(f, "wellKnownName"));
        const char *dn = json_string_value(json_object_get(f, "displayName"));
        if (!((wk && strcmp(wk, folder) == 0) || (dn && strcmp(dn, folder) == 0)))
            continue;
        json_array_foreach(json_object_get(f, "messages"), j, m) {
            const char *mid = json_string_value(json_object_get(m, "internetMessageId"));
            if (message_id && (!mid || strcmp(mid, message_id) != 0))
                continue;
            n++;
            const char *subject = json_string_value(json_object_get(m, "subject"));
            const char *comment = json_string_value(json_object_get(m, "comment"));
            if (subject_out)
                util_strlcpy(subject_out, subject ? subject : "", size);
            if (comment_out)
                util_strlcpy(comment_out, comment ? comment : "", size);
        }
    }
    json_decref(mb);
    return n;
}

/* stat_of - GET /_control/stats: key (token_requests) or key.upn (requests, throttled,
 * max_concurrency); 0 when absent. */
static int64_t stat_of(const char *key, const char *upn)
{
    json_t *st = ctl("GET", "/_control/stats", NULL);
    json_t *v = json_object_get(st, key);
    if (upn)
        v = json_object_get(v, upn);
    int64_t n = json_integer_value(v);
    json_decref(st);
    return n;
}

static int test_setup(void **state)
{
    (void)state;
    ctl_do("POST", "/_control/reset", NULL);
    ctl_do("POST", "/_control/config",
           "{\"latency_ms\": 0, \"mailbox_rate\": 10000, \"mailbox_concurrency\": 4, \"token_lifetime\": 3599}");
    return 0;
}

/* ------------------------------------------------------------------ the back-end under test */

typedef struct {
    config_profile_t profile;
    backend_t *be;
    backend_session_t *s;
    backend_outcome_t out;
} fixture_t;

/* fixture_open - a graph profile on the stand-in (delete mode, quarantine folder, rate and
 * secret file as given), opened, with a session on mailbox. */
static void fixture_open(fixture_t *fx, const char *delete_mode, const char *quarantine, int64_t rate,
                         const char *secret_path, const char *mailbox)
{
    memset(fx, 0, sizeof(*fx));
    config_profile_t *p = &fx->profile;
    strcpy(p->name, "test");
    p->type = (char *)"graph";
    p->url = g_url;
    p->tenant = (char *)TENANT;
    p->client_id = (char *)CLIENT_ID;
    p->secret_file = (char *)secret_path;
    p->token_url = g_token_url;
    p->delete_mode = (char *)delete_mode;
    p->quarantine = (char *)quarantine;
    p->forward_to = (char *)SOC;
    p->ca_file = (char *)"";
    p->tls_verify = false;
    p->timeout_ms = 10000;
    p->mailbox_concurrency = 4;
    p->mailbox_rate = rate;
    char err[256] = "";
    fx->be = BACKEND_GRAPH.open(p, err, sizeof(err));
    if (!fx->be)
        fprintf(stderr, "open: %s\n", err);
    assert_non_null(fx->be);
    fx->s = BACKEND_GRAPH.session(fx->be, mailbox, &fx->out);
    assert_non_null(fx->s);
}

static void fixture_close(fixture_t *fx)
{
    BACKEND_GRAPH.release(fx->be, fx->s, true);
    BACKEND_GRAPH.destroy(&fx->be);
    assert_null(fx->be);
}

static backend_job_t job_for(const char *message_id)
{
    return (backend_job_t){.id = "j:42:00112233deadbeef", .batch = "6f1c2e1a-0b7d-4b8e-9a51-3c2d1e0f9a88",
                           .mid = 42, .mailbox = ALICE, .message_id = message_id, .subject = NULL};
}

/* expect - the outcome has status st (the detail is printed when not). */
static void expect(const backend_outcome_t *out, backend_status_t st)
{
    if (out->status != st)
        fprintf(stderr, "status %d, expected %d: %s\n", out->status, st, out->detail);
    assert_int_equal(out->status, st);
}

/* ------------------------------------------------------------------ tests */

static void test_token_reused(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<t1@example.net>", "Token");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<t1@example.net>");
    for (int i = 0; i < 3; i++) {
        BACKEND_GRAPH.find(fx.s, &job, &fx.out);
        expect(&fx.out, BACKEND_OK);
    }
    assert_int_equal(stat_of("token_requests", NULL), 1);
    fixture_close(&fx);
}

static void test_token_expired_renewed_once(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<t2@example.net>", "Token");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<t2@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    ctl_do("POST", "/_control/expire_tokens", NULL);
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_int_equal(stat_of("token_requests", NULL), 2);
    /* a token that keeps being refused: one renewal, then FAILED (not a loop) */
    ctl_do("POST", "/_control/fail",
           "{\"path_regex\": \"/messages\", \"status\": 401, \"count\": 2, \"code\": \"InvalidAuthenticationToken\"}");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_FAILED);
    assert_non_null(strstr(fx.out.detail, "InvalidAuthenticationToken"));
    assert_int_equal(stat_of("token_requests", NULL), 3);
    fixture_close(&fx);
}

static void test_wrong_secret(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<t3@example.net>", "Secret");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_bad_secret_path, ALICE);
    backend_job_t job = job_for("<t3@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_FAILED);
    assert_non_null(strstr(fx.out.detail, "invalid_client"));
    assert_null(strstr(fx.out.detail, "Wr0ng"));
    assert_null(strstr(fx.out.detail, SECRET));
    fixture_close(&fx);
}

static void test_open_refuses_bad_profiles(void **state)
{
    (void)state;
    config_profile_t p = {.name = "bad", .url = (char *)"", .client_id = (char *)CLIENT_ID, .tenant = (char *)TENANT,
                          .secret_file = (char *)"/nonexistent/secret", .delete_mode = (char *)"quarantine"};
    char err[256] = "";
    assert_null(BACKEND_GRAPH.open(&p, err, sizeof(err)));
    assert_non_null(strstr(err, "secret_file"));
    p.secret_file = g_secret_path;
    p.delete_mode = (char *)"shred";
    assert_null(BACKEND_GRAPH.open(&p, err, sizeof(err)));
    assert_non_null(strstr(err, "delete"));
    p.delete_mode = (char *)"quarantine";
    p.client_id = (char *)"";
    assert_null(BACKEND_GRAPH.open(&p, err, sizeof(err)));
    assert_non_null(strstr(err, "client_id"));
    BACKEND_GRAPH.destroy(NULL);
}

static void test_find_exact_only(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<abc@example.net>", "Exact");
    seed(ALICE, "inbox", "<abc@example.net.evil>", "Longer");
    seed(ALICE, "inbox", "<xabc@example.net>", "Prefixed");
    seed(ALICE, "inbox", "<other@example.net>", "Other");
    fixture_t fx;
    fixture_open(&fx, "permanent", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<abc@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_non_null(strstr(fx.out.detail, "1 copy"));
    BACKEND_GRAPH.remove(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_int_equal(in_folder(ALICE, "inbox", "<abc@example.net>", NULL, NULL, 0), 0);
    assert_int_equal(in_folder(ALICE, "inbox", NULL, NULL, NULL, 0), 3); /* the others stay */
    backend_job_t none = job_for("<abc@example>");
    BACKEND_GRAPH.find(fx.s, &none, &fx.out);
    expect(&fx.out, BACKEND_NOT_FOUND);
    fixture_close(&fx);
}

static void test_find_special_characters(void **state)
{
    (void)state;
    static const char *const ids[] = {"<a+b@example.net>", "<o'brien/x@example.net>", "<q''q+/=%20?&#@x>"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ids); i++)
        seed(ALICE, "inbox", ids[i], "Odd");
    seed(ALICE, "inbox", "<a b@example.net>", "A space, as an unencoded + would read");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, ALICE);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ids); i++) {
        backend_job_t job = job_for(ids[i]);
        BACKEND_GRAPH.find(fx.s, &job, &fx.out);
        expect(&fx.out, BACKEND_OK);
        BACKEND_GRAPH.remove(fx.s, &job, &fx.out);
        expect(&fx.out, BACKEND_OK);
        assert_int_equal(in_folder(ALICE, "deleteditems", ids[i], NULL, NULL, 0), 1);
    }
    assert_int_equal(in_folder(ALICE, "inbox", "<a b@example.net>", NULL, NULL, 0), 1);
    fixture_close(&fx);
}

static void test_copies_in_two_folders(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<two@example.net>", "Twice");
    seed(ALICE, "archive", "<two@example.net>", "Twice");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<two@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_non_null(strstr(fx.out.detail, "2 copies"));
    BACKEND_GRAPH.remove(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_int_equal(in_folder(ALICE, "deleteditems", "<two@example.net>", NULL, NULL, 0), 2);
    assert_int_equal(in_folder(ALICE, "inbox", "<two@example.net>", NULL, NULL, 0), 0);
    assert_int_equal(in_folder(ALICE, "archive", "<two@example.net>", NULL, NULL, 0), 0);
    /* the copies now in the quarantine folder do not count any more */
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_NOT_FOUND);
    fixture_close(&fx);
}

static void test_find_follows_pages(void **state)
{
    (void)state;
    for (int i = 0; i < 12; i++) /* Graph answers 10 per page by default */
        seed(ALICE, i % 2 ? "inbox" : "archive", "<many@example.net>", "Many");
    fixture_t fx;
    fixture_open(&fx, "permanent", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<many@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_non_null(strstr(fx.out.detail, "12 copies"));
    assert_int_equal(stat_of("requests", ALICE), 2);
    fixture_close(&fx);
}

static void test_remove_permanent(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<perm@example.net>", "Gone");
    seed(ALICE, "deleteditems", "<perm@example.net>", "Gone");
    fixture_t fx;
    fixture_open(&fx, "permanent", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<perm@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_non_null(strstr(fx.out.detail, "2 copies")); /* permanent: deleteditems is searched too */
    BACKEND_GRAPH.remove(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    static const char *const folders[] = {"inbox", "deleteditems", "recoverableitemsdeletions"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(folders); i++)
        assert_int_equal(in_folder(ALICE, folders[i], "<perm@example.net>", NULL, NULL, 0), 0);
    fixture_close(&fx);
}

static void test_custom_quarantine_folder(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<cq@example.net>", "Custom");
    seed(ALICE, "inbox", "<cq2@example.net>", "Custom");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "Quarantine", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<cq@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    BACKEND_GRAPH.remove(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_int_equal(in_folder(ALICE, "Quarantine", "<cq@example.net>", NULL, NULL, 0), 1);
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_NOT_FOUND);
    /* the folder was looked up once for the mailbox */
    json_t *log = ctl("GET", "/_control/requests", NULL);
    size_t i, lookups = 0;
    json_t *r;
    json_array_foreach(log, i, r) {
        const char *path = json_string_value(json_object_get(r, "path"));
        lookups += path && strstr(path, "/mailFolders") != NULL;
    }
    json_decref(log);
    job = job_for("<cq2@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    BACKEND_GRAPH.remove(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    assert_int_equal(lookups, 1);
    fixture_close(&fx);

    /* a folder that does not exist: FAILED, nothing moved */
    seed(ALICE, "inbox", "<cq3@example.net>", "Custom");
    fixture_open(&fx, "quarantine", "No Such Folder", 10000, g_secret_path, ALICE);
    job = job_for("<cq3@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_FAILED);
    assert_non_null(strstr(fx.out.detail, "No Such Folder"));
    fixture_close(&fx);
}

static void test_not_found(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<gone@example.net>", "Gone");
    fixture_t a, b;
    fixture_open(&a, "permanent", "", 10000, g_secret_path, ALICE);
    fixture_open(&b, "permanent", "", 10000, g_secret_path, ALICE);
    backend_job_t unknown = job_for("<never@example.net>");
    BACKEND_GRAPH.find(a.s, &unknown, &a.out);
    expect(&a.out, BACKEND_NOT_FOUND);
    /* found by a, removed by b in between: a's remove finds it gone */
    backend_job_t job = job_for("<gone@example.net>");
    BACKEND_GRAPH.find(a.s, &job, &a.out);
    expect(&a.out, BACKEND_OK);
    BACKEND_GRAPH.find(b.s, &job, &b.out);
    expect(&b.out, BACKEND_OK);
    BACKEND_GRAPH.remove(b.s, &job, &b.out);
    expect(&b.out, BACKEND_OK);
    BACKEND_GRAPH.remove(a.s, &job, &a.out);
    expect(&a.out, BACKEND_NOT_FOUND);
    fixture_close(&a);
    fixture_close(&b);
}

static void test_forward(void **state)
{
    (void)state;
    seed(SOC, "inbox", "<unrelated@example.net>", "SOC mailbox");
    seed(ALICE, "inbox", "<fw@example.net>", "Invoice overdue");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<fw@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    BACKEND_GRAPH.forward(fx.s, &job, SOC, &fx.out);
    expect(&fx.out, BACKEND_OK);
    char subject[256] = "", comment[256] = "";
    assert_int_equal(in_folder(SOC, "inbox", NULL, NULL, NULL, 0), 2);
    assert_int_equal(in_folder(SOC, "inbox", NULL, subject, comment, sizeof(subject)), 2);
    assert_string_equal(subject, "[Message Remediated] Invoice overdue");
    assert_non_null(strstr(comment, "j:42:00112233deadbeef"));
    assert_non_null(strstr(comment, "MID 42"));
    assert_int_equal(in_folder(ALICE, "drafts", NULL, NULL, NULL, 0), 0);
    assert_int_equal(in_folder(ALICE, "inbox", "<fw@example.net>", NULL, NULL, 0), 1); /* forward keeps it */
    fixture_close(&fx);
}

static void test_throttled_with_retry_after(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<r@example.net>", "Retry");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<r@example.net>");
    ctl_do("POST", "/_control/fail",
           "{\"path_regex\": \"/messages\", \"status\": 429, \"retry_after\": 7, \"code\": \"ApplicationThrottled\"}");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_RETRY);
    assert_int_equal(fx.out.retry_after_ms, 7000);
    ctl_do("POST", "/_control/fail", "{\"path_regex\": \"/messages\", \"status\": 503, \"code\": \"ServiceUnavailable\"}");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_RETRY);
    assert_int_equal(fx.out.retry_after_ms, -1);
    ctl_do("POST", "/_control/fail", "{\"path_regex\": \"/move\", \"status\": 504, \"code\": \"GatewayTimeout\"}");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_OK);
    BACKEND_GRAPH.remove(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_RETRY);
    BACKEND_GRAPH.remove(fx.s, &job, &fx.out); /* tried again: done */
    expect(&fx.out, BACKEND_OK);
    /* the token endpoint unavailable: RETRY too */
    ctl_do("POST", "/_control/expire_tokens", NULL);
    ctl_do("POST", "/_control/fail", "{\"path_regex\": \"/token$\", \"status\": 503, \"retry_after\": 3}");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_RETRY);
    assert_int_equal(fx.out.retry_after_ms, 3000);
    fixture_close(&fx);
}

static void test_permanent_failures(void **state)
{
    (void)state;
    ctl_do("POST", "/_control/mailboxes", "{\"mailboxes\": [{\"upn\": \"locked@contoso.com\", \"access\": \"denied\"},"
                                          " {\"upn\": \"onprem@contoso.com\", \"rest_enabled\": false}]}");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, "locked@contoso.com");
    backend_job_t job = job_for("<p@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_FAILED);
    assert_non_null(strstr(fx.out.detail, "403 ErrorAccessDenied"));
    fixture_close(&fx);
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, "onprem@contoso.com");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_FAILED);
    assert_non_null(strstr(fx.out.detail, "MailboxNotEnabledForRESTAPI"));
    fixture_close(&fx);
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, "nobody@contoso.com");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_FAILED);
    assert_non_null(strstr(fx.out.detail, "404 ErrorInvalidUser"));
    fixture_close(&fx);
}

static void test_mailbox_rate(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<rate@example.net>", "Rate");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 3, g_secret_path, ALICE);
    backend_job_t job = job_for("<none@example.net>");
    for (int i = 0; i < 3; i++) {
        BACKEND_GRAPH.find(fx.s, &job, &fx.out);
        expect(&fx.out, BACKEND_NOT_FOUND);
    }
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_RETRY);
    assert_true(fx.out.retry_after_ms > 0 && fx.out.retry_after_ms <= 610000);
    assert_non_null(strstr(fx.out.detail, "mailbox_rate"));
    assert_int_equal(stat_of("requests", ALICE), 3);
    /* another mailbox has its own budget */
    BACKEND_GRAPH.release(fx.be, fx.s, true);
    fx.s = BACKEND_GRAPH.session(fx.be, SOC, &fx.out);
    assert_non_null(fx.s);
    seed(SOC, "inbox", "<x@example.net>", "x");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out);
    expect(&fx.out, BACKEND_NOT_FOUND);
    fixture_close(&fx);
}

typedef struct {
    backend_t *be;
    pthread_barrier_t *start;
    int ok, retry, other;
    int64_t retry_after_ms;
} worker_t;

static void *concurrent_finds(void *arg)
{
    worker_t *w = arg;
    backend_outcome_t out;
    backend_session_t *s = BACKEND_GRAPH.session(w->be, ALICE, &out);
    backend_job_t job = job_for("<conc@example.net>");
    pthread_barrier_wait(w->start);
    for (int i = 0; s && i < 3; i++) {
        BACKEND_GRAPH.find(s, &job, &out);
        if (out.status == BACKEND_OK) {
            w->ok++;
        } else if (out.status == BACKEND_RETRY) {
            w->retry++;
            w->retry_after_ms = out.retry_after_ms;
        } else {
            fprintf(stderr, "concurrent find: %d %s\n", out.status, out.detail);
            w->other++;
        }
    }
    if (!s)
        w->other++;
    BACKEND_GRAPH.release(w->be, s, true);
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    seed(ALICE, "inbox", "<conc@example.net>", "Concurrent");
    fixture_t fx;
    fixture_open(&fx, "quarantine", "", 10000, g_secret_path, ALICE);
    backend_job_t job = job_for("<conc@example.net>");
    BACKEND_GRAPH.find(fx.s, &job, &fx.out); /* the token and the folder id, before the race */
    expect(&fx.out, BACKEND_OK);
    ctl_do("POST", "/_control/config", "{\"latency_ms\": 300}");
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, CONC_THREADS);
    worker_t w[CONC_THREADS];
    pthread_t t[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        w[i] = (worker_t){.be = fx.be, .start = &start};
        assert_int_equal(pthread_create(&t[i], NULL, concurrent_finds, &w[i]), 0);
    }
    int ok = 0, retry = 0, other = 0;
    for (int i = 0; i < CONC_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
        retry += w[i].retry;
        other += w[i].other;
        if (w[i].retry)
            assert_int_equal(w[i].retry_after_ms, 1000);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(other, 0);
    assert_int_equal(ok + retry, CONC_THREADS * 3);
    assert_true(ok > 0);
    assert_true(retry > 0);
    assert_true(stat_of("max_concurrency", ALICE) <= 4);
    assert_int_equal(stat_of("token_requests", NULL), 1);
    fixture_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_token_reused, test_setup),
        cmocka_unit_test_setup(test_token_expired_renewed_once, test_setup),
        cmocka_unit_test_setup(test_wrong_secret, test_setup),
        cmocka_unit_test_setup(test_open_refuses_bad_profiles, test_setup),
        cmocka_unit_test_setup(test_find_exact_only, test_setup),
        cmocka_unit_test_setup(test_find_special_characters, test_setup),
        cmocka_unit_test_setup(test_copies_in_two_folders, test_setup),
        cmocka_unit_test_setup(test_find_follows_pages, test_setup),
        cmocka_unit_test_setup(test_remove_permanent, test_setup),
        cmocka_unit_test_setup(test_custom_quarantine_folder, test_setup),
        cmocka_unit_test_setup(test_not_found, test_setup),
        cmocka_unit_test_setup(test_forward, test_setup),
        cmocka_unit_test_setup(test_throttled_with_retry_after, test_setup),
        cmocka_unit_test_setup(test_permanent_failures, test_setup),
        cmocka_unit_test_setup(test_mailbox_rate, test_setup),
        cmocka_unit_test_setup(test_concurrency, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
