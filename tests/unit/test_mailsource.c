/*
 * test_mailsource.c - unit tests for common/mailsource.c: single files and mboxes (table-driven:
 * separators, empty lines, ">From " escapes, CRLF), maildirs, directory trees in byte order,
 * size limits, empty files, stopping early, missing paths, FIFOs, symbolic links, the depth cap,
 * unreadable directories and a mbox large enough for pages to be dropped as the walk goes.
 *
 * Each test works in its own mkdtemp() directory under /tmp, removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailsource.h"
#include "util.h"

#define MAX_SEEN 64
#define NO_LIMIT ((size_t)1 << 40)

/* ---- helpers ---- */

typedef struct {
    char dir[64];
} fixture_t;

/* collect_t - what a walk handed over and reported; stop_after > 0 stops the walk (rc 7). */
typedef struct {
    size_t n, stop_after, total;
    char *origin[MAX_SEEN];
    char *data[MAX_SEEN];
    size_t len[MAX_SEEN];
    size_t nerr;
    char *err_origin[MAX_SEEN];
    char *err_reason[MAX_SEEN];
} collect_t;

static int collect_fn(void *ctx, const char *origin, const char *data, size_t len)
{
    collect_t *c = ctx;
    c->total++;
    if (c->n < MAX_SEEN) {
        c->origin[c->n] = util_xstrdup(origin);
        c->data[c->n] = util_xstrndup(data, len);
        c->len[c->n] = len;
        c->n++;
    }
    return c->stop_after && c->total == c->stop_after ? 7 : 0;
}

static void collect_error(void *ctx, const char *origin, const char *reason)
{
    collect_t *c = ctx;
    if (c->nerr < MAX_SEEN) {
        c->err_origin[c->nerr] = util_xstrdup(origin);
        c->err_reason[c->nerr] = util_xstrdup(reason);
        c->nerr++;
    }
}

static void collect_free(collect_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->origin[i]);
        free(c->data[i]);
    }
    for (size_t i = 0; i < c->nerr; i++) {
        free(c->err_origin[i]);
        free(c->err_reason[i]);
    }
    memset(c, 0, sizeof(*c));
}

/* walk - mailsource_walk into c; the error text (if any) printed. */
static int walk(const char *path, size_t max_file, size_t max_message, collect_t *c,
                mailsource_stats_t *st)
{
    char err[256];
    int rc = mailsource_walk(path, max_file, max_message, collect_fn, collect_error, c, st, err,
                             sizeof(err));
    if (rc == -1)
        print_message("walk: %s\n", err);
    for (size_t i = 0; i < c->nerr; i++)
        print_message("reported: %s\n", c->err_reason[i]);
    return rc;
}

static int fixture_setup(void **state)
{
    fixture_t *f = util_xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/clawback-test-mailsource-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
        return rmdir(path) < 0 ? -1 : 0;
    return unlink(path) < 0 ? -1 : 0;
}

/* open_up - make every directory readable again so the tree can be removed. */
static int open_up(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_D || type == FTW_DNR || (st && S_ISDIR(st->st_mode)))
        chmod(path, 0700);
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture_t *f = *state;
    nftw(f->dir, open_up, 64, FTW_PHYS);
    int rc = nftw(f->dir, remove_one, 64, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

/* at - dir/rel into out (PATH_MAX bytes). */
static char *at(const fixture_t *f, const char *rel, char *out)
{
    snprintf(out, PATH_MAX, "%s/%s", f->dir, rel);
    return out;
}

/* make_dirs - create dir/rel and the directories above it (mkdir -p). */
static void make_dirs(const fixture_t *f, const char *rel)
{
    char path[PATH_MAX];
    at(f, rel, path);
    for (char *p = path + strlen(f->dir) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
            *p = '/';
        }
    }
    assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
}

/* put - write len bytes to dir/rel, creating the directories above it. */
static void put(const fixture_t *f, const char *rel, const char *data, size_t len)
{
    char path[PATH_MAX];
    const char *slash = strrchr(rel, '/');
    if (slash) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rel), rel);
        make_dirs(f, parent);
    }
    FILE *fp = fopen(at(f, rel, path), "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void puts_file(const fixture_t *f, const char *rel, const char *text)
{
    put(f, rel, text, strlen(text));
}

/* assert_origins - the origins seen are dir/want[i], in order. */
static void assert_origins(const fixture_t *f, const collect_t *c, const char *const *want,
                           size_t n)
{
    for (size_t i = 0; i < c->n; i++)
        print_message("  origin: %s\n", c->origin[i]);
    assert_int_equal(c->n, n);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        assert_string_equal(c->origin[i], at(f, want[i], path));
    }
}

/* ---- single files and mboxes ---- */

static void test_files_and_mboxes(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *name, *input;
        size_t n;
        struct {
            const char *suffix, *bytes; /* origin is path + suffix */
        } want[4];
    } cases[] = {
        {"plain message", "Subject: hi\n\nbody\nFrom here\n", 1,
         {{"", "Subject: hi\n\nbody\nFrom here\n"}}},
        {"message without a final newline", "Subject: hi\n\nbody", 1,
         {{"", "Subject: hi\n\nbody"}}},
        {"one-message mbox (SpamAssassin corpus style)",
         "From someone@example.com  Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n",
         1,
         {{"#1", "Subject: x\n\nbody\n"}}},
        {"three messages",
         "From a@example.com Mon Jan  1 00:00:00 2024\n"
         "Subject: 1\n\nline\nFrom inside a paragraph does not split\n>From escaped\n>>From twice\n"
         "x >From mid-line\n>From\n\n"
         "From b@example.com Tue Jan  2 00:00:00 2024\n"
         "Subject: 2\n\nbody 2\n\n"
         "From c@example.com Wed Jan  3 00:00:00 2024\n"
         ">From at the start\nSubject: 3\n\nend\n",
         3,
         {{"#1", "Subject: 1\n\nline\nFrom inside a paragraph does not split\nFrom escaped\n"
                 ">From twice\nx >From mid-line\n>From\n"},
          {"#2", "Subject: 2\n\nbody 2\n"},
          {"#3", "From at the start\nSubject: 3\n\nend\n"}}},
        {"CRLF mbox",
         "From a Mon\r\nSubject: 1\r\n\r\nb1\r\nFrom not split\r\n\r\n"
         "From b Tue\r\nSubject: 2\r\n\r\n>From b2\r\n\r\n",
         2,
         {{"#1", "Subject: 1\r\n\r\nb1\r\nFrom not split\r\n"},
          {"#2", "Subject: 2\r\n\r\nFrom b2\r\n"}}},
        {"garbage before the first From line: one message",
         "garbage\n\nFrom a Mon\nSubject: x\n\nFrom b Tue\n",
         1,
         {{"", "garbage\n\nFrom a Mon\nSubject: x\n\nFrom b Tue\n"}}},
        {"mbox without a final newline", "From a\nS: 1\n\nFrom b\nS: 2", 2,
         {{"#1", "S: 1\n"}, {"#2", "S: 2"}}},
        {"empty messages are skipped but numbered",
         "From a\n\nFrom b\nS: 2\n\nFrom c", 1, {{"#2", "S: 2\n"}}},
        {"From line immediately after a From line", "From a\nFrom b\nS: 1\n", 1,
         {{"#1", "From b\nS: 1\n"}}},
        {"mbox of only a From line", "From a\n", 0, {{NULL, NULL}}},
        {"From: header is not a separator", "From: a@example.com\n\nFrom: b\n", 1,
         {{"", "From: a@example.com\n\nFrom: b\n"}}},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        print_message("case: %s\n", cases[i].name);
        char path[PATH_MAX];
        puts_file(f, "msg", cases[i].input);
        at(f, "msg", path);
        collect_t c = {0};
        mailsource_stats_t st;
        assert_int_equal(walk(path, NO_LIMIT, NO_LIMIT, &c, &st), 0);
        assert_int_equal(c.n, cases[i].n);
        assert_int_equal(st.messages, cases[i].n);
        assert_int_equal(st.skipped, 0);
        assert_int_equal(c.nerr, 0);
        for (size_t m = 0; m < cases[i].n; m++) {
            char origin[MAILSOURCE_ORIGIN_MAX];
            snprintf(origin, sizeof(origin), "%s%s", path, cases[i].want[m].suffix);
            assert_string_equal(c.origin[m], origin);
            assert_int_equal(c.len[m], strlen(cases[i].want[m].bytes));
            assert_memory_equal(c.data[m], cases[i].want[m].bytes, c.len[m]);
        }
        collect_free(&c);
    }
}

static void test_mbox_message_limit(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX];
    puts_file(f, "mbox",
              "From a\nS: 1\n\nFrom b\nS: 2 is much longer than the limit\n\nFrom c\nS: 3\n");
    collect_t c = {0};
    mailsource_stats_t st;
    assert_int_equal(walk(at(f, "mbox", path), NO_LIMIT, 10, &c, &st), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.data[0], "S: 1\n");
    assert_string_equal(c.data[1], "S: 3\n");
    assert_int_equal(st.messages, 2);
    assert_int_equal(st.skipped, 1);
    assert_int_equal(c.nerr, 1);
    char want[MAILSOURCE_ORIGIN_MAX + 64];
    snprintf(want, sizeof(want), "%s#2", path);
    assert_string_equal(c.err_origin[0], want);
    snprintf(want, sizeof(want), "%s#2: larger than the limit of 10 bytes", path);
    assert_string_equal(c.err_reason[0], want);
    collect_free(&c);

    /* the limit applies to single message files as well */
    puts_file(f, "one.eml", "Subject: longer than ten bytes\n");
    assert_int_equal(walk(at(f, "one.eml", path), NO_LIMIT, 10, &c, &st), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(st.skipped, 1);
    collect_free(&c);
}

/* ---- directories ---- */

static void test_maildir(void **state)
{
    fixture_t *f = *state;
    puts_file(f, "Maildir/cur/2:2,S", "S: cur 2\n");
    puts_file(f, "Maildir/cur/1:2,S", "S: cur 1\n");
    puts_file(f, "Maildir/cur/.hidden", "S: hidden\n");
    puts_file(f, "Maildir/new/3", "S: new 3\n");
    puts_file(f, "Maildir/tmp/4", "S: tmp 4\n");
    puts_file(f, "Maildir/.Sent/cur/5", "S: dot folder\n");
    puts_file(f, "Maildir/other/6", "S: not cur or new\n");
    puts_file(f, "Maildir/dovecot-uidlist", "3 V1 N2\n");
    collect_t c = {0};
    mailsource_stats_t st;
    char path[PATH_MAX];
    assert_int_equal(walk(at(f, "Maildir", path), NO_LIMIT, NO_LIMIT, &c, &st), 0);
    static const char *const want[] = {"Maildir/cur/1:2,S", "Maildir/cur/2:2,S", "Maildir/new/3"};
    assert_origins(f, &c, want, UTIL_ARRAY_LEN(want));
    assert_string_equal(c.data[0], "S: cur 1\n");
    assert_string_equal(c.data[2], "S: new 3\n");
    assert_int_equal(st.messages, 3);
    assert_int_equal(st.skipped, 0);
    collect_free(&c);

    /* a maildir inside a tree is recognized as one */
    puts_file(f, "a.eml", "S: a\n");
    assert_int_equal(walk(f->dir, NO_LIMIT, NO_LIMIT, &c, &st), 0);
    static const char *const want_tree[] = {"Maildir/cur/1:2,S", "Maildir/cur/2:2,S",
                                            "Maildir/new/3", "a.eml"};
    assert_origins(f, &c, want_tree, UTIL_ARRAY_LEN(want_tree));
    collect_free(&c);
}

static void test_nested_sorted(void **state)
{
    fixture_t *f = *state;
    puts_file(f, "tree/b/2.eml", "S: b2\n");
    puts_file(f, "tree/a/z.eml", "S: az\n");
    puts_file(f, "tree/a/b/1.eml", "S: ab1\n");
    puts_file(f, "tree/c.mbox", "From x\nS: c1\n\nFrom y\nS: c2\n");
    puts_file(f, "tree/A.eml", "S: A\n");
    puts_file(f, "tree/.hidden.eml", "S: hidden\n");
    puts_file(f, "tree/.git/x.eml", "S: dot dir\n");
    puts_file(f, "tree/empty.eml", "");
    char path[PATH_MAX], target[PATH_MAX];
    assert_int_equal(symlink(at(f, "tree/a", target), at(f, "tree/link", path)), 0);
    static const char *const want[] = {"tree/A.eml",   "tree/a/b/1.eml", "tree/a/z.eml",
                                       "tree/b/2.eml", "tree/c.mbox#1",  "tree/c.mbox#2"};
    /* with and without a trailing slash */
    static const char *const roots[] = {"tree", "tree/"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(roots); i++) {
        collect_t c = {0};
        mailsource_stats_t st;
        assert_int_equal(walk(at(f, roots[i], path), NO_LIMIT, NO_LIMIT, &c, &st), 0);
        assert_origins(f, &c, want, UTIL_ARRAY_LEN(want));
        assert_string_equal(c.data[4], "S: c1\n");
        assert_int_equal(st.messages, UTIL_ARRAY_LEN(want));
        assert_int_equal(st.skipped, 1); /* the symbolic link */
        assert_int_equal(c.nerr, 1);
        assert_string_equal(c.err_origin[0], at(f, "tree/link", path));
        assert_non_null(strstr(c.err_reason[0], "symbolic link"));
        collect_free(&c);
    }
}

static void test_max_file(void **state)
{
    fixture_t *f = *state;
    puts_file(f, "dir/big.eml", "Subject: this one is larger than the limit\n\nbody\n");
    puts_file(f, "dir/small.eml", "S: ok\n");
    char path[PATH_MAX], want[PATH_MAX + 64];
    collect_t c = {0};
    mailsource_stats_t st;
    assert_int_equal(walk(at(f, "dir", path), 20, NO_LIMIT, &c, &st), 0);
    static const char *const want_seen[] = {"dir/small.eml"};
    assert_origins(f, &c, want_seen, 1);
    assert_int_equal(st.skipped, 1);
    assert_int_equal(c.nerr, 1);
    assert_string_equal(c.err_origin[0], at(f, "dir/big.eml", path));
    snprintf(want, sizeof(want), "%s: larger than the limit of 20 bytes", path);
    assert_string_equal(c.err_reason[0], want);
    collect_free(&c);

    /* named directly: reported too, not an error */
    assert_int_equal(walk(path, 20, NO_LIMIT, &c, &st), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(c.nerr, 1);
    assert_int_equal(st.skipped, 1);
    collect_free(&c);
}

static void test_empty_file(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX];
    puts_file(f, "empty", "");
    collect_t c = {0};
    mailsource_stats_t st = {5, 5};
    assert_int_equal(walk(at(f, "empty", path), NO_LIMIT, NO_LIMIT, &c, &st), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(c.nerr, 0);
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.skipped, 0);
}

static void test_stop(void **state)
{
    fixture_t *f = *state;
    puts_file(f, "dir/1", "S: 1\n");
    puts_file(f, "dir/2", "S: 2\n");
    puts_file(f, "dir/3", "S: 3\n");
    puts_file(f, "mbox", "From a\nS: 1\n\nFrom b\nS: 2\n\nFrom c\nS: 3\n");
    static const struct {
        const char *rel, *last;
    } cases[] = {{"dir", "dir/2"}, {"mbox", "mbox#2"}};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char path[PATH_MAX];
        collect_t c = {.stop_after = 2};
        mailsource_stats_t st;
        assert_int_equal(walk(at(f, cases[i].rel, path), NO_LIMIT, NO_LIMIT, &c, &st), 7);
        assert_int_equal(c.n, 2);
        assert_int_equal(st.messages, 2);
        assert_string_equal(c.origin[1], at(f, cases[i].last, path));
        collect_free(&c);
    }
}

static void test_missing_path(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX], err[PATH_MAX + 64];
    collect_t c = {0};
    mailsource_stats_t st = {5, 5};
    at(f, "no/such/file", path);
    int rc = mailsource_walk(path, NO_LIMIT, NO_LIMIT, collect_fn, collect_error, &c, &st, err,
                             sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));
    assert_int_equal(c.n, 0);
    assert_int_equal(c.nerr, 0);
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.skipped, 0);

    /* NULL callbacks for errors and stats are fine; err is emptied on success */
    puts_file(f, "a.eml", "S: a\n");
    rc = mailsource_walk(at(f, "a.eml", path), NO_LIMIT, NO_LIMIT, collect_fn, NULL, &c, NULL,
                         err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    assert_int_equal(c.n, 1);
    collect_free(&c);
}

static void test_fifo(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX], err[PATH_MAX + 64];
    puts_file(f, "dir/a.eml", "S: a\n");
    assert_int_equal(mkfifo(at(f, "dir/b.fifo", path), 0600), 0);
    puts_file(f, "dir/c.eml", "S: c\n");
    collect_t c = {0};
    mailsource_stats_t st;
    assert_int_equal(walk(at(f, "dir", path), NO_LIMIT, NO_LIMIT, &c, &st), 0);
    static const char *const want[] = {"dir/a.eml", "dir/c.eml"};
    assert_origins(f, &c, want, UTIL_ARRAY_LEN(want));
    assert_int_equal(st.skipped, 1);
    assert_int_equal(c.nerr, 1);
    assert_string_equal(c.err_origin[0], at(f, "dir/b.fifo", path));
    assert_non_null(strstr(c.err_reason[0], "not a regular file"));
    collect_free(&c);

    /* named directly: an error, and never opened (which could block) */
    int rc = mailsource_walk(path, NO_LIMIT, NO_LIMIT, collect_fn, collect_error, &c, &st, err,
                             sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(c.n, 0);
}

static void test_depth_cap(void **state)
{
    fixture_t *f = *state;
    char rel[PATH_MAX] = "deep";
    make_dirs(f, rel);
    for (int level = 1; level <= MAILSOURCE_MAX_DEPTH + 1; level++) {
        char file[PATH_MAX + 16];
        size_t n = strlen(rel);
        snprintf(rel + n, sizeof(rel) - n, "/d");
        snprintf(file, sizeof(file), "%s/m.eml", rel);
        puts_file(f, file, "S: deep\n");
    }
    char path[PATH_MAX];
    collect_t c = {0};
    mailsource_stats_t st;
    assert_int_equal(walk(at(f, "deep", path), NO_LIMIT, NO_LIMIT, &c, &st), 0);
    assert_int_equal(st.messages, MAILSOURCE_MAX_DEPTH);
    assert_int_equal(st.skipped, 1);
    assert_int_equal(c.nerr, 1);
    assert_non_null(strstr(c.err_reason[0], "nested deeper"));
    assert_string_equal(c.err_origin[0], at(f, rel, path));
    collect_free(&c);
}

static void test_unreadable(void **state)
{
    if (geteuid() == 0) {
        print_message("running as root: permissions are not enforced\n");
        skip();
    }
    fixture_t *f = *state;
    puts_file(f, "dir/a/secret.eml", "S: secret\n");
    puts_file(f, "dir/b.eml", "S: b\n");
    puts_file(f, "dir/c.eml", "S: c\n");
    char path[PATH_MAX];
    assert_int_equal(chmod(at(f, "dir/a", path), 0), 0);
    assert_int_equal(chmod(at(f, "dir/c.eml", path), 0), 0);
    collect_t c = {0};
    mailsource_stats_t st;
    assert_int_equal(walk(at(f, "dir", path), NO_LIMIT, NO_LIMIT, &c, &st), 0);
    static const char *const want[] = {"dir/b.eml"};
    assert_origins(f, &c, want, 1);
    assert_int_equal(st.skipped, 2);
    assert_string_equal(c.err_origin[0], at(f, "dir/a", path));
    assert_string_equal(c.err_origin[1], at(f, "dir/c.eml", path));
    collect_free(&c);
}

/* count_fn - counts messages and keeps the last one's bytes. */
typedef struct {
    size_t n;
    char last[64];
} count_t;

static int count_fn(void *ctx, const char *origin, const char *data, size_t len)
{
    (void)origin;
    count_t *c = ctx;
    c->n++;
    snprintf(c->last, sizeof(c->last), "%.*s", (int)len, data);
    return 0;
}

static void test_large_mbox(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX];
    FILE *fp = fopen(at(f, "large.mbox", path), "wb");
    assert_non_null(fp);
    char body[1000];
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    const size_t n = 80 * 1000; /* about 80 MB: pages are dropped behind the walk */
    for (size_t i = 1; i <= n; i++)
        fprintf(fp, "From m%zu\nS: %zu\n\n%s\n>From x\n\n", i, i, i == n ? "last" : body);
    assert_int_equal(fclose(fp), 0);
    count_t c = {0};
    mailsource_stats_t st;
    char err[256];
    int rc = mailsource_walk(path, NO_LIMIT, 4096, count_fn, NULL, &c, &st, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(c.n, n);
    assert_int_equal(st.messages, n);
    assert_int_equal(st.skipped, 0);
    assert_string_equal(c.last, "S: 80000\n\nlast\nFrom x\n");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_files_and_mboxes), T(test_mbox_message_limit), T(test_maildir),
        T(test_nested_sorted),    T(test_max_file),           T(test_empty_file),
        T(test_stop),             T(test_missing_path),       T(test_fifo),
        T(test_depth_cap),        T(test_unreadable),         T(test_large_mbox),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
