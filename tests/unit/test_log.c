/*
 * test_log.c - unit tests for common/log.c: the seed's text line shape, level names and
 * parsing, filtering, text and JSON-lines files, reopening after rotation, several processes
 * sharing one file.
 *
 * Runs with TZ=UTC so the text lines' local time is predictable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

/* ---- helpers ---- */

typedef struct {
    char dir[64];
    char text[128];
    char json[128];
} paths_t;

static void make_paths(paths_t *p)
{
    snprintf(p->dir, sizeof(p->dir), "/tmp/clawback-test-log-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->text, sizeof(p->text), "%s/clawback.log", p->dir);
    snprintf(p->json, sizeof(p->json), "%s/clawback.json", p->dir);
}

/* remove_paths - remove every file in the directory, then the directory. */
static void remove_paths(paths_t *p)
{
    DIR *d = opendir(p->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[400];
            snprintf(path, sizeof(path), "%s/%s", p->dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(p->dir);
}

/* slurp - a file's whole content, NUL-terminated (free it); NULL if it cannot be read. */
static char *slurp(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[len] = '\0';
    if (lenp)
        *lenp = len;
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* fd_for_path - the descriptor this process has open on path, or -1. */
static int fd_for_path(const char *path)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int found = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char link[300], target[512];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path) == 0 && atoi(e->d_name) != dirfd(d))
            found = atoi(e->d_name);
    }
    closedir(d);
    return found;
}

/* ---- a strict JSON reader for the flat objects the log writes ---- */

typedef struct {
    char key[32];
    int is_string;
    char value[65536]; /* decoded string, or the number's text */
    size_t len;
} json_field_t;

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* json_string - parse a string at *pp (strict: no raw control characters, valid UTF-8, valid
 * escapes) into out; -1 if invalid. */
static int json_string(const char **pp, const char *end, char *out, size_t outsize, size_t *outlen)
{
    const unsigned char *p = (const unsigned char *)*pp;
    const unsigned char *e = (const unsigned char *)end;
    size_t n = 0;
    if (p >= e || *p != '"')
        return -1;
    p++;
    for (;;) {
        if (p >= e || n + 4 >= outsize)
            return -1;
        unsigned char c = *p;
        if (c == '"') {
            p++;
            break;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (p + 1 >= e)
                return -1;
            char x = (char)p[1];
            p += 2;
            switch (x) {
            case '"': out[n++] = '"'; break;
            case '\\': out[n++] = '\\'; break;
            case '/': out[n++] = '/'; break;
            case 'b': out[n++] = '\b'; break;
            case 'f': out[n++] = '\f'; break;
            case 'n': out[n++] = '\n'; break;
            case 'r': out[n++] = '\r'; break;
            case 't': out[n++] = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (e - p < 4 || hex4((const char *)p, &cp) < 0)
                    return -1;
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (e - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4((const char *)p + 2, &lo) < 0 || lo < 0xDC00 ||
                        lo > 0xDFFF)
                        return -1;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return -1;
                }
                n += text_utf8_encode(cp, out + n);
                break;
            }
            default:
                return -1;
            }
            continue;
        }
        /* raw UTF-8: validate strictly */
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            len = 1, cp = c, min = 0;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return -1;
        }
        if ((size_t)(e - p) < len)
            return -1;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        memcpy(out + n, p, len);
        n += len;
        p += len;
    }
    out[n] = '\0';
    *outlen = n;
    *pp = (const char *)p;
    return 0;
}

/* json_object - parse one flat object spanning exactly [s, end) into fields; count or -1. */
static int json_object(const char *s, const char *end, json_field_t *fields, int maxfields)
{
    const char *p = s;
    int n = 0;
#define WS()                                                                                       \
    while (p < end && (*p == ' ' || *p == '\t'))                                                   \
    p++
    WS();
    if (p >= end || *p++ != '{')
        return -1;
    WS();
    if (p < end && *p == '}')
        return ++p == end ? 0 : -1;
    for (;;) {
        if (n >= maxfields)
            return -1;
        json_field_t *f = &fields[n++];
        size_t klen;
        WS();
        if (json_string(&p, end, f->key, sizeof(f->key), &klen) < 0)
            return -1;
        WS();
        if (p >= end || *p++ != ':')
            return -1;
        WS();
        if (p < end && *p == '"') {
            f->is_string = 1;
            if (json_string(&p, end, f->value, sizeof(f->value), &f->len) < 0)
                return -1;
        } else {
            f->is_string = 0;
            const char *start = p;
            if (p < end && *p == '-')
                p++;
            if (p >= end || *p < '0' || *p > '9')
                return -1;
            while (p < end && *p >= '0' && *p <= '9')
                p++;
            f->len = (size_t)(p - start);
            memcpy(f->value, start, f->len);
            f->value[f->len] = '\0';
        }
        WS();
        if (p >= end)
            return -1;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != '}')
            return -1;
        WS();
        return p == end ? n : -1;
    }
#undef WS
}

static const json_field_t *json_get(const json_field_t *fields, int n, const char *key)
{
    const json_field_t *found = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(fields[i].key, key) == 0) {
            if (found)
                fail_msg("key %s twice", key);
            found = &fields[i];
        }
    }
    return found;
}

/* ---- tests ---- */

static void test_format_text_line(void **state)
{
    (void)state;
    char out[256];
    size_t n = log_format_text_line(out, sizeof(out), 1648585224, LOG_LEVEL_INFO, "hello");
    assert_string_equal(out, "Tue Mar 29 20:20:24 2022 Info: hello\n");
    assert_int_equal(n, strlen(out));

    static const struct {
        time_t t;
        log_level_t level;
        const char *message;
        const char *expect;
    } cases[] = {
        {1648585224, LOG_LEVEL_CRITICAL, "ECS: Start polling", "Tue Mar 29 20:20:24 2022 Critical: ECS: Start polling\n"},
        {1648585224, LOG_LEVEL_WARNING, "w", "Tue Mar 29 20:20:24 2022 Warning: w\n"},
        {1648585224, LOG_LEVEL_DEBUG, "d", "Tue Mar 29 20:20:24 2022 Debug: d\n"},
        {1648585224, LOG_LEVEL_TRACE, "t", "Tue Mar 29 20:20:24 2022 Trace: t\n"},
        {1646092800, LOG_LEVEL_INFO, "x", "Tue Mar  1 00:00:00 2022 Info: x\n"}, /* day padded like ctime */
        {0, LOG_LEVEL_INFO, "epoch", "Thu Jan  1 00:00:00 1970 Info: epoch\n"},
        {1648585224, LOG_LEVEL_INFO, "", "Tue Mar 29 20:20:24 2022 Info: \n"},
        {1648585224, LOG_LEVEL_INFO, "100% %s %d", "Tue Mar 29 20:20:24 2022 Info: 100% %s %d\n"}, /* not a format */
        {1648585224, (log_level_t)42, "odd", "Tue Mar 29 20:20:24 2022 Info: odd\n"},
        /* no forged lines: CR, LF and other control bytes become spaces, tabs stay */
        {1648585224, LOG_LEVEL_INFO, "Subject a\nTue Mar 29 20:20:25 2022 Info: forged",
         "Tue Mar 29 20:20:24 2022 Info: Subject a Tue Mar 29 20:20:25 2022 Info: forged\n"},
        {1648585224, LOG_LEVEL_INFO, "a\r\nb\x01" "c\td", "Tue Mar 29 20:20:24 2022 Info: a  b c\td\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        n = log_format_text_line(out, sizeof(out), cases[i].t, cases[i].level, cases[i].message);
        assert_string_equal(out, cases[i].expect);
        assert_int_equal(n, strlen(cases[i].expect));
    }

    /* the stamp is ctime's, for times all over the calendar */
    for (time_t t = -86400LL * 365 * 5; t < 4102444800LL; t += 86400LL * 37 + 3607) {
        char ct[64];
        assert_non_null(ctime_r(&t, ct)); /* "Www Mmm dd hh:mm:ss yyyy\n" */
        ct[24] = '\0';
        log_format_text_line(out, sizeof(out), t, LOG_LEVEL_WARNING, "m");
        char expect[128];
        snprintf(expect, sizeof(expect), "%s Warning: m\n", ct);
        assert_string_equal(out, expect);
    }
}

static void test_format_text_line_truncation(void **state)
{
    (void)state;
    char msg[300];
    memset(msg, 'm', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    char full[512];
    size_t flen = log_format_text_line(full, sizeof(full), 1648585224, LOG_LEVEL_INFO, msg);
    assert_int_equal(flen, 25 + 6 + 299 + 1);
    for (size_t size = 0; size <= flen + 2; size++) {
        char out[600];
        memset(out, 'Z', sizeof(out));
        size_t n = log_format_text_line(out, size, 1648585224, LOG_LEVEL_INFO, msg);
        if (size == 0) {
            assert_int_equal(n, 0);
            assert_int_equal(out[0], 'Z'); /* nothing written */
        } else if (size == 1) {
            assert_int_equal(n, 0);
            assert_int_equal(out[0], '\0');
        } else if (size <= flen) {
            assert_int_equal(n, size - 1);
            assert_int_equal(out[n - 1], '\n');
            assert_int_equal(out[n], '\0');
            assert_memory_equal(out, full, n - 1);
        } else {
            assert_int_equal(n, flen);
            assert_string_equal(out, full);
        }
        assert_int_equal(out[size], 'Z'); /* never past size */
    }
}

static void test_level_names_and_parse(void **state)
{
    (void)state;
    static const struct {
        log_level_t level;
        const char *name;
    } names[] = {
        {LOG_LEVEL_CRITICAL, "Critical"}, {LOG_LEVEL_WARNING, "Warning"}, {LOG_LEVEL_INFO, "Info"},
        {LOG_LEVEL_DEBUG, "Debug"},       {LOG_LEVEL_TRACE, "Trace"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_string_equal(log_level_name(names[i].level), names[i].name);
        log_level_t out = (log_level_t)99;
        assert_int_equal(log_level_parse(names[i].name, &out), 0);
        assert_int_equal(out, names[i].level);
    }
    assert_string_equal(log_level_name((log_level_t)5), "Info");
    assert_string_equal(log_level_name((log_level_t)-1), "Info");

    static const struct {
        const char *text;
        int rc;
        log_level_t level;
    } parse[] = {
        {"critical", 0, LOG_LEVEL_CRITICAL}, {"CRITICAL", 0, LOG_LEVEL_CRITICAL}, {"warning", 0, LOG_LEVEL_WARNING},
        {"info", 0, LOG_LEVEL_INFO},         {"INFO", 0, LOG_LEVEL_INFO},         {"information", 0, LOG_LEVEL_INFO},
        {"Information", 0, LOG_LEVEL_INFO},  {"debug", 0, LOG_LEVEL_DEBUG},       {"tRaCe", 0, LOG_LEVEL_TRACE},
        {"", -1, 0},                         {"warn", -1, 0},                     {"err", -1, 0},
        {"error", -1, 0},                    {"info ", -1, 0},                    {"2", -1, 0},
        {"infos", -1, 0},
    };
    for (size_t i = 0; i < sizeof(parse) / sizeof(parse[0]); i++) {
        log_level_t out = (log_level_t)77;
        int rc = log_level_parse(parse[i].text, &out);
        if (rc != parse[i].rc)
            fail_msg("log_level_parse('%s') = %d", parse[i].text, rc);
        if (rc == 0 && out != parse[i].level)
            fail_msg("log_level_parse('%s') gave %d", parse[i].text, out);
        if (rc < 0 && out != (log_level_t)77)
            fail_msg("log_level_parse('%s') changed out on failure", parse[i].text);
    }
}

/* wall_seconds - the clock the log module stamps lines with (gettimeofday). Not time(): on
 * Linux it reads a coarse clock that can still show the previous second just after a line
 * was stamped with the next one. */
static time_t wall_seconds(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec;
}

/* The file holds exactly the lines log_format_text_line gives for some second in [t0, t1]. */
static void assert_text_lines(const char *content, time_t t0, time_t t1, const log_level_t *levels,
                              const char *const *messages, size_t n)
{
    const char *p = content;
    for (size_t i = 0; i < n; i++) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            fail_msg("line %zu missing in [%s]", i + 1, content);
        size_t len = (size_t)(nl - p) + 1;
        int matched = 0;
        for (time_t t = t0; t <= t1 && !matched; t++) {
            char expect[1024];
            size_t el = log_format_text_line(expect, sizeof(expect), t, levels[i], messages[i]);
            matched = el == len && memcmp(expect, p, len) == 0;
        }
        if (!matched)
            fail_msg("line %zu is [%.*s], expected level %s message [%s]", i + 1, (int)len - 1, p,
                     log_level_name(levels[i]), messages[i]);
        p = nl + 1;
    }
    if (*p)
        fail_msg("unexpected extra content [%s]", p);
}

static void test_text_file_and_filtering(void **state)
{
    (void)state;
    paths_t p;
    make_paths(&p);
    time_t t0 = wall_seconds();
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, p.text, ""), 0);
    assert_true(log_enabled(LOG_LEVEL_CRITICAL));
    assert_true(log_enabled(LOG_LEVEL_WARNING));
    assert_true(log_enabled(LOG_LEVEL_INFO));
    assert_false(log_enabled(LOG_LEVEL_DEBUG));
    assert_false(log_enabled(LOG_LEVEL_TRACE));

    log_info("hello %d", 5);
    log_debug("not at info level %d", 1);
    log_trace("nor this");
    log_msg(LOG_LEVEL_DEBUG, "nor a direct call at debug");
    log_warning("careful: %s", "x");
    log_critical("down");
    log_set_level(LOG_LEVEL_DEBUG);
    assert_true(log_enabled(LOG_LEVEL_DEBUG));
    assert_false(log_enabled(LOG_LEVEL_TRACE));
    log_debug("now debug %s", "shows");
    log_trace("trace still hidden");
    log_set_level(LOG_LEVEL_CRITICAL);
    log_warning("hidden at critical");
    log_critical("critical shows");
    log_set_level(LOG_LEVEL_TRACE);
    log_trace("trace shows");
    time_t t1 = wall_seconds();
    log_close();

    /* the macros do not even evaluate their arguments when the level is off */
    int evaluated = 0;
    log_set_level(LOG_LEVEL_INFO);
    log_debug("%d", ++evaluated);
    assert_int_equal(evaluated, 0);

    char *content = slurp(p.text, NULL);
    assert_non_null(content);
    static const log_level_t levels[] = {LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_CRITICAL, LOG_LEVEL_DEBUG,
                                         LOG_LEVEL_CRITICAL, LOG_LEVEL_TRACE};
    static const char *const messages[] = {"hello 5", "careful: x", "down", "now debug shows", "critical shows",
                                           "trace shows"};
    assert_text_lines(content, t0, t1, levels, messages, 6);
    free(content);

    /* the file is created mode 0640 (before umask) and appended to, never truncated */
    struct stat st;
    assert_int_equal(stat(p.text, &st), 0);
    assert_int_equal(st.st_mode & 0137, 0);
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, p.text, NULL), 0);
    log_info("second run");
    log_close();
    content = slurp(p.text, NULL);
    assert_int_equal(count_lines(content), 7);
    free(content);
    remove_paths(&p);
}

static void test_long_message(void **state)
{
    (void)state;
    paths_t p;
    make_paths(&p);
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, p.text, p.json), 0);
    char *big = malloc(20000);
    assert_non_null(big);
    memset(big, 'q', 19999);
    big[19999] = '\0';
    log_info("%s", big);
    memset(big, '\x01', 19999); /* worst case for JSON: every byte escaped */
    log_info("%s", big);
    log_close();
    size_t len;
    char *text = slurp(p.text, &len);
    assert_int_equal(count_lines(text), 2);
    assert_true(len < 2 * 8400);
    free(text);
    char *json = slurp(p.json, &len);
    assert_int_equal(count_lines(json), 2);
    static json_field_t fields[8];
    const char *line = json;
    for (int i = 0; i < 2; i++) {
        const char *nl = strchr(line, '\n');
        int n = json_object(line, nl, fields, 8);
        if (n < 0)
            fail_msg("long line %d is not a valid JSON object", i + 1);
        const json_field_t *m = json_get(fields, n, "message");
        assert_non_null(m);
        assert_true(m->len > 8000 && m->len < 8192);
        line = nl + 1;
    }
    free(json);
    free(big);
    remove_paths(&p);
}

static void test_json_lines(void **state)
{
    (void)state;
    paths_t p;
    make_paths(&p);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    assert_int_equal(log_open("clawback-\"poller\"", LOG_LEVEL_DEBUG, p.text, p.json), 0);
    static const struct {
        log_level_t level;
        const char *message;  /* as logged */
        const char *expected; /* as decoded from JSON */
        const char *json_level;
    } cases[] = {
        {LOG_LEVEL_INFO, "ECS: Start polling", "ECS: Start polling", "info"},
        {LOG_LEVEL_WARNING, "say \"hi\" \\ bye", "say \"hi\" \\ bye", "warning"},
        {LOG_LEVEL_CRITICAL, "line1\nline2\r\n\ttabbed", "line1\nline2\r\n\ttabbed", "critical"},
        {LOG_LEVEL_DEBUG, "ctl \x01\x1f\x7f", "ctl \x01\x1f\x7f", "debug"},
        {LOG_LEVEL_INFO, "utf8 caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "utf8 caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
         "info"},
        {LOG_LEVEL_INFO, "bad \xFF\xC0\xAF \xED\xA0\x80 end\xE2\x82",
         "bad \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end\xEF\xBF\xBD\xEF\xBF\xBD",
         "info"},
        {LOG_LEVEL_TRACE, "not written at debug", NULL, NULL},
        {LOG_LEVEL_INFO, "", "", "info"},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < ncases; i++)
        log_msg(cases[i].level, "%s", cases[i].message);
    clock_gettime(CLOCK_REALTIME, &t1);
    log_close();

    size_t len;
    char *json = slurp(p.json, &len);
    assert_non_null(json);
    static json_field_t fields[16];
    const char *line = json;
    size_t i = 0;
    for (; *line; i++) {
        while (i < ncases && !cases[i].expected)
            i++;
        assert_true(i < ncases);
        const char *nl = strchr(line, '\n');
        assert_non_null(nl);
        int n = json_object(line, nl, fields, 16);
        if (n < 0)
            fail_msg("line %zu is not a valid JSON object: [%.*s]", i + 1, (int)(nl - line), line);
        assert_int_equal(n, 5);
        const json_field_t *f;
        assert_non_null(f = json_get(fields, n, "time"));
        assert_true(f->is_string);
        /* "2022-03-30T00:20:24.123Z", UTC, within the test's time span */
        assert_int_equal(f->len, 24);
        struct tm tm = {0};
        const char *rest = strptime(f->value, "%Y-%m-%dT%H:%M:%S", &tm);
        assert_non_null(rest);
        assert_true(rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' && rest[2] >= '0' && rest[2] <= '9' &&
                    rest[3] >= '0' && rest[3] <= '9' && rest[4] == 'Z' && rest[5] == '\0');
        int64_t ms = (int64_t)timegm(&tm) * 1000 + atoi(rest + 1);
        assert_true(ms >= (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000);
        assert_true(ms <= (int64_t)t1.tv_sec * 1000 + t1.tv_nsec / 1000000);
        assert_non_null(f = json_get(fields, n, "level"));
        assert_true(f->is_string);
        assert_string_equal(f->value, cases[i].json_level);
        assert_non_null(f = json_get(fields, n, "program"));
        assert_true(f->is_string);
        assert_string_equal(f->value, "clawback-\"poller\"");
        assert_non_null(f = json_get(fields, n, "pid"));
        assert_false(f->is_string);
        assert_int_equal(atol(f->value), getpid());
        assert_non_null(f = json_get(fields, n, "message"));
        assert_true(f->is_string);
        assert_int_equal(f->len, strlen(cases[i].expected));
        assert_string_equal(f->value, cases[i].expected);
        line = nl + 1;
    }
    assert_int_equal(i, ncases);
    free(json);

    /* the text file got the same lines (one per call, the message as given) */
    char *text = slurp(p.text, NULL);
    assert_non_null(strstr(text, " Warning: say \"hi\" \\ bye\n"));
    assert_null(strstr(text, "not written at debug"));
    free(text);
    remove_paths(&p);
}

static void test_reopen_after_rotation(void **state)
{
    (void)state;
    paths_t p;
    make_paths(&p);
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, p.text, p.json), 0);
    int tfd = fd_for_path(p.text), jfd = fd_for_path(p.json);
    assert_true(tfd >= 0 && jfd >= 0);
    assert_true(fcntl(tfd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(jfd, F_GETFD) & FD_CLOEXEC);
    log_info("before rotation");

    char text1[160], json1[160];
    snprintf(text1, sizeof(text1), "%s.1", p.text);
    snprintf(json1, sizeof(json1), "%s.1", p.json);
    assert_int_equal(rename(p.text, text1), 0);
    assert_int_equal(rename(p.json, json1), 0);
    log_info("after rename, before reopen");
    assert_int_equal(log_reopen(), 0);
    log_info("after reopen");

    /* the descriptors still close on exec (a child must not inherit the log files) */
    tfd = fd_for_path(p.text);
    jfd = fd_for_path(p.json);
    assert_true(tfd >= 0 && jfd >= 0);
    assert_true(fcntl(tfd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(jfd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(fd_for_path(text1), -1); /* the rotated file is closed */
    assert_int_equal(fd_for_path(json1), -1);

    /* a failing reopen (a directory now sits at the path) keeps the old descriptor */
    assert_int_equal(rename(p.text, text1), 0); /* replaces the old .1 */
    assert_int_equal(mkdir(p.text, 0700), 0);
    assert_int_equal(log_reopen(), -1);
    log_info("after failed reopen");
    assert_int_equal(rmdir(p.text), 0);
    log_close();

    char *old_text = slurp(text1, NULL), *old_json = slurp(json1, NULL), *new_json = slurp(p.json, NULL);
    assert_non_null(old_text);
    assert_non_null(old_json);
    assert_non_null(new_json);
    assert_non_null(strstr(old_text, "after reopen")); /* text1 is now the second file */
    assert_null(strstr(old_text, "before rotation"));
    assert_non_null(strstr(old_text, "after failed reopen"));
    assert_non_null(strstr(old_json, "before rotation"));
    assert_non_null(strstr(old_json, "after rename, before reopen"));
    assert_null(strstr(old_json, "after reopen\""));
    assert_int_equal(count_lines(old_json), 2);
    assert_non_null(strstr(new_json, "\"message\":\"after reopen\""));
    assert_null(strstr(new_json, "before"));
    free(old_text);
    free(old_json);
    free(new_json);
    remove_paths(&p);
}

static void test_open_failure_keeps_destination(void **state)
{
    (void)state;
    paths_t p;
    make_paths(&p);
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, p.text, ""), 0);
    log_info("one");
    errno = 0;
    assert_int_equal(log_open("other", LOG_LEVEL_TRACE, "/nonexistent-dir/x.log", ""), -1);
    assert_int_equal(errno, ENOENT);
    char json_bad[200];
    snprintf(json_bad, sizeof(json_bad), "%s/no/such/dir.json", p.dir);
    errno = 0;
    assert_int_equal(log_open("other", LOG_LEVEL_TRACE, p.text, json_bad), -1);
    assert_int_equal(errno, ENOENT);
    /* still the first file, and still at info */
    assert_false(log_enabled(LOG_LEVEL_DEBUG));
    log_info("two");
    log_close();
    char *content = slurp(p.text, NULL);
    assert_int_equal(count_lines(content), 2);
    assert_non_null(strstr(content, " Info: one\n"));
    assert_non_null(strstr(content, " Info: two\n"));
    free(content);
    /* no descriptor leaked by the failed opens */
    assert_int_equal(fd_for_path(p.text), -1);
    remove_paths(&p);
}

/* After log_close(), and with "-" as the path, lines go to standard error. */
static void test_stderr_destination(void **state)
{
    (void)state;
    paths_t p;
    make_paths(&p);
    int fd = open(p.text, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);

    log_close();
    log_set_level(LOG_LEVEL_INFO);
    log_info("to stderr after close");
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, "-", NULL), 0);
    log_warning("to stderr by dash");
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, "", NULL), 0);
    log_warning("to stderr by empty path");
    log_close();

    fflush(stderr);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    char *content = slurp(p.text, NULL);
    assert_non_null(strstr(content, " Info: to stderr after close\n"));
    assert_non_null(strstr(content, " Warning: to stderr by dash\n"));
    assert_non_null(strstr(content, " Warning: to stderr by empty path\n"));
    assert_int_equal(count_lines(content), 3);
    free(content);
    remove_paths(&p);
}

/* Several processes appending to one file never interleave within a line. */
static void test_concurrent_writers(void **state)
{
    (void)state;
    paths_t p;
    make_paths(&p);
    enum { CHILDREN = 4, LINES = 300 };
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, p.text, p.json), 0);
    pid_t pids[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        pids[c] = fork();
        assert_true(pids[c] >= 0);
        if (pids[c] == 0) {
            char payload[1001];
            memset(payload, 'a' + c, 1000);
            payload[1000] = '\0';
            for (int i = 0; i < LINES; i++)
                log_info("child %d line %d %s", c, i, payload);
            _exit(0);
        }
    }
    for (int c = 0; c < CHILDREN; c++) {
        int status;
        assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    log_close();
    char *content = slurp(p.text, NULL);
    assert_int_equal(count_lines(content), CHILDREN * LINES);
    int seen[CHILDREN][LINES] = {{0}};
    for (char *line = content; *line;) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        char *m = strstr(line, " Info: child ");
        assert_non_null(m);
        int c, i, off = 0;
        assert_int_equal(sscanf(m, " Info: child %d line %d %n", &c, &i, &off), 2);
        assert_true(c >= 0 && c < CHILDREN && i >= 0 && i < LINES);
        assert_int_equal(strlen(m + off), 1000);
        for (int k = 0; k < 1000; k++)
            assert_int_equal(m[off + k], 'a' + c);
        seen[c][i]++;
        line = nl + 1;
    }
    for (int c = 0; c < CHILDREN; c++)
        for (int i = 0; i < LINES; i++)
            assert_int_equal(seen[c][i], 1);
    free(content);
    char *json = slurp(p.json, NULL);
    assert_int_equal(count_lines(json), CHILDREN * LINES);
    static json_field_t fields[8];
    for (const char *line = json; *line;) {
        const char *nl = strchr(line, '\n');
        assert_int_equal(json_object(line, nl, fields, 8), 5);
        line = nl + 1;
    }
    free(json);
    remove_paths(&p);
}

static void test_errno_preserved(void **state)
{
    (void)state;
    paths_t p;
    make_paths(&p);
    assert_int_equal(log_open("clawback-test", LOG_LEVEL_INFO, p.text, p.json), 0);
    errno = EBADF;
    log_info("errno is %d", errno);
    assert_int_equal(errno, EBADF);
    errno = ENOSPC;
    log_msg(LOG_LEVEL_DEBUG, "filtered");
    assert_int_equal(errno, ENOSPC);
    log_close();
    remove_paths(&p);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_text_line),
        cmocka_unit_test(test_format_text_line_truncation),
        cmocka_unit_test(test_level_names_and_parse),
        cmocka_unit_test(test_text_file_and_filtering),
        cmocka_unit_test(test_long_message),
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_reopen_after_rotation),
        cmocka_unit_test(test_open_failure_keeps_destination),
        cmocka_unit_test(test_stderr_destination),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_errno_preserved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
