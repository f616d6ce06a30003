/*
 * util.c - clocks, ids, checked allocation and bounded file reading; see util.h.
 */
#include "util.h"

#include <pthread.h>
#include <sys/random.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* util_oom - report an allocation failure and abort (never returns). */
static void util_oom(size_t size)
{
    fprintf(stderr, "clawback: out of memory allocating %zu bytes\n", size);
    abort();
}

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec util_deadline_ts(clockid_t clock, int64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

void util_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

void *util_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        util_oom(size);
    return p;
}

void *util_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        util_oom(count * size);
    return p;
}

void *util_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        util_oom(size);
    return p;
}

char *util_xstrdup(const char *s)
{
    return s ? util_xstrndup(s, strlen(s)) : NULL;
}

char *util_xstrndup(const char *s, size_t n)
{
    char *p = util_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static _Thread_local unsigned char util_uuid_pool[4096];
static _Thread_local size_t util_uuid_used = sizeof(util_uuid_pool);
static pthread_once_t util_uuid_once = PTHREAD_ONCE_INIT;

/* util_uuid_forked - a child process must not hand out its parent's pooled bytes again. */
static void util_uuid_forked(void)
{
    memset(util_uuid_pool, 0, sizeof(util_uuid_pool));
    util_uuid_used = sizeof(util_uuid_pool);
}

static void util_uuid_register_fork(void)
{
    pthread_atfork(NULL, NULL, util_uuid_forked);
}

void util_uuid(char out[37])
{
    /* random bytes from a per-thread pool refilled by getrandom(2): libuuid's
     * uuid_generate_random makes several system calls per UUID, which dominated a fan-out of
     * 100,000 records */
    pthread_once(&util_uuid_once, util_uuid_register_fork);
    if (util_uuid_used + 16 > sizeof(util_uuid_pool)) {
        size_t got = 0;
        while (got < sizeof(util_uuid_pool)) {
            ssize_t n = getrandom(util_uuid_pool + got, sizeof(util_uuid_pool) - got, 0);
            if (n > 0)
                got += (size_t)n;
            else if (errno != EINTR)
                abort(); /* no kernel randomness: nothing sensible to do */
        }
        util_uuid_used = 0;
    }
    unsigned char u[16];
    memcpy(u, util_uuid_pool + util_uuid_used, 16);
    memset(util_uuid_pool + util_uuid_used, 0, 16);
    util_uuid_used += 16;
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    util_uuid_text(u, out);
}

size_t util_put_int(char *out, int64_t v)
{
    char digits[20];
    size_t n = 0, len = 0;
    uint64_t rest = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = digits[--n];
    return len;
}

void util_uuid_text(const unsigned char bytes[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[bytes[i] >> 4];
        out[o++] = hex[bytes[i] & 15];
    }
    out[o] = '\0';
}

size_t util_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);
    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

int util_cmp_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int util_parse_int64(const char *s, int64_t *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int util_read_file(const char *path, size_t max, char **data, size_t *len, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        close(fd);
        return -1;
    }
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
    if (cap > max + 1)
        cap = max + 1;
    char *buf = util_xmalloc(cap + 1);
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                snprintf(err, errlen, "%s: larger than the limit of %zu bytes", path, max);
                free(buf);
                if (!is_stdin)
                    close(fd);
                return -1;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = util_xrealloc(buf, cap + 1);
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(buf);
            if (!is_stdin)
                close(fd);
            return -1;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > max) {
        snprintf(err, errlen, "%s: larger than the limit of %zu bytes", path, max);
        free(buf);
        if (!is_stdin)
            close(fd);
        return -1;
    }
    if (!is_stdin)
        close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}
