/*
 * spool.c - clawback-milter's local spool of accepted messages; see spool.h for the layout and
 * the file format.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"
#include "log.h"
#include "util.h"

#define SPOOL_MAGIC "CLAWBACK-SPOOL 1 "
#define SPOOL_WRITE_BUFFER (64 * 1024)
#define SPOOL_NAME_DIGITS 15 /* the time prefix of a ready name, in ms */
#define SPOOL_FREE_MAX 256   /* indexed files kept in free/ for reuse */
#define SPOOL_FREE_MAX_SIZE (1024 * 1024) /* the largest file kept there */

struct spool {
    char *dir;
    int tmp_fd, ready_fd, bad_fd, free_fd; /* directory descriptors */
    spool_sync_t sync;
    /* SPOOL_SYNC_EVERYSEC: the names committed since the syncer's last pass (under sync_lock) */
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_cond;
    char **unsynced;
    size_t n_unsynced, cap_unsynced;
    bool syncer_running, syncer_stop;
    pthread_t syncer;
    atomic_uint_fast64_t seq;
    /* Indexed files are not unlinked but moved to free/ and reused for the next messages: a
     * file created and deleted per message costs the file system an inode allocation each
     * time, which on ext4 (without a journal, above all) scans for inodes not deleted lately
     * and showed as the milter's largest cost (bench/milter.sh). */
    pthread_mutex_t free_lock;
    uint64_t free_names[SPOOL_FREE_MAX]; /* free/f<N> */
    size_t n_free;
};

struct spool_msg {
    spool_t *spool;
    int fd;
    char tmp_name[64];
    int64_t max_size; /* bytes kept at most; 0: no limit */
    bool leading_space;
    int64_t size;    /* bytes given */
    int64_t written; /* bytes kept */
    bool truncated, failed;
    char errstr[160];
    size_t used;
    char buf[SPOOL_WRITE_BUFFER];
};

void spool_envelope_clear(spool_envelope_t *env)
{
    free(env->client_ip);
    free(env->helo);
    free(env->sender);
    free(env->queue_id);
    for (size_t i = 0; i < env->n_rcpts; i++)
        free(env->rcpts[i]);
    free(env->rcpts);
    memset(env, 0, sizeof(*env));
}

/* open_subdir - mkdir dir/name if missing and open it as a directory descriptor. */
static int open_subdir(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* empty_dir - remove every file in the directory fd. */
static void empty_dir(int fd)
{
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            unlinkat(fd, de->d_name, 0);
    closedir(d);
}

int spool_sync_parse(const char *text, spool_sync_t *out)
{
    static const char *const names[] = {"always", "everysec", "no"};
    for (size_t i = 0; text && i < UTIL_ARRAY_LEN(names); i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (spool_sync_t)i;
            return 0;
        }
    return -1;
}

/* sync_pass - fdatasync every file committed since the last pass that is still in ready/
 * (one the indexer took away already needs none), then ready/ itself. */
static void sync_pass(spool_t *s)
{
    pthread_mutex_lock(&s->sync_lock);
    char **names = s->unsynced;
    size_t n = s->n_unsynced;
    s->unsynced = NULL;
    s->n_unsynced = s->cap_unsynced = 0;
    pthread_mutex_unlock(&s->sync_lock);
    size_t synced = 0;
    for (size_t i = 0; i < n; i++) {
        int fd = openat(s->ready_fd, names[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (fdatasync(fd) != 0)
                log_warning("milter: cannot sync %s/ready/%s: %s", s->dir, names[i], strerror(errno));
            close(fd);
            synced++;
        }
        free(names[i]);
    }
    free(names);
    if (synced && fsync(s->ready_fd) != 0) /* none left in ready/: its entries need no sync */
        log_warning("milter: cannot sync %s/ready: %s", s->dir, strerror(errno));
}

/* syncer_main - SPOOL_SYNC_EVERYSEC: a sync pass every second until the spool closes. */
static void *syncer_main(void *arg)
{
    spool_t *s = arg;
    pthread_setname_np(pthread_self(), "cb-spool-sync");
    pthread_mutex_lock(&s->sync_lock);
    while (!s->syncer_stop) {
        struct timespec until = util_deadline_ts(CLOCK_MONOTONIC, 1000);
        while (!s->syncer_stop && pthread_cond_timedwait(&s->sync_cond, &s->sync_lock, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&s->sync_lock);
        sync_pass(s);
        pthread_mutex_lock(&s->sync_lock);
    }
    pthread_mutex_unlock(&s->sync_lock);
    return NULL;
}

spool_t *spool_open(const char *dir, spool_sync_t sync, char *err, size_t errsize)
{
    if (!dir || !*dir) {
        snprintf(err, errsize, "no spool directory");
        return NULL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errsize, "cannot create %s: %s", dir, strerror(errno));
        return NULL;
    }
    spool_t *self = util_xcalloc(1, sizeof(*self));
    self->dir = util_xstrdup(dir);
    self->sync = sync;
    self->tmp_fd = open_subdir(dir, "tmp");
    self->ready_fd = self->tmp_fd >= 0 ? open_subdir(dir, "ready") : -1;
    self->bad_fd = self->ready_fd >= 0 ? open_subdir(dir, "bad") : -1;
    self->free_fd = self->bad_fd >= 0 ? open_subdir(dir, "free") : -1;
    pthread_mutex_init(&self->free_lock, NULL);
    pthread_mutex_init(&self->sync_lock, NULL);
    util_cond_init_monotonic(&self->sync_cond);
    if (self->free_fd < 0) {
        snprintf(err, errsize, "cannot open the spool %s: %s", dir, strerror(errno));
        spool_close(&self);
        return NULL;
    }
    empty_dir(self->tmp_fd);
    empty_dir(self->free_fd);
    if (sync == SPOOL_SYNC_EVERYSEC) {
        int rc = pthread_create(&self->syncer, NULL, syncer_main, self);
        if (rc) {
            snprintf(err, errsize, "cannot start the spool's syncer thread: %s", strerror(rc));
            spool_close(&self);
            return NULL;
        }
        self->syncer_running = true;
    }
    return self;
}

void spool_close(spool_t **self)
{
    if (!self || !*self)
        return;
    spool_t *s = *self;
    if (s->syncer_running) {
        pthread_mutex_lock(&s->sync_lock);
        s->syncer_stop = true;
        pthread_cond_signal(&s->sync_cond);
        pthread_mutex_unlock(&s->sync_lock);
        pthread_join(s->syncer, NULL);
    }
    if (s->ready_fd > 0)
        sync_pass(s); /* what the last second committed */
    pthread_mutex_destroy(&s->sync_lock);
    pthread_cond_destroy(&s->sync_cond);
    if (s->tmp_fd >= 0)
        close(s->tmp_fd);
    if (s->ready_fd > 0)
        close(s->ready_fd);
    if (s->bad_fd > 0)
        close(s->bad_fd);
    if (s->free_fd > 0)
        close(s->free_fd);
    pthread_mutex_destroy(&s->free_lock);
    free(s->dir);
    free(s);
    *self = NULL;
}

const char *spool_dir(const spool_t *self)
{
    return self->dir;
}

/* ---- writing ---- */

static int msg_fail(spool_msg_t *m, const char *what)
{
    if (!m->failed)
        snprintf(m->errstr, sizeof(m->errstr), "%s %s/tmp/%s: %s", what, m->spool->dir, m->tmp_name,
                 strerror(errno));
    m->failed = true;
    return -1;
}

/* msg_flush - write the buffer out. 0 or -1. */
static int msg_flush(spool_msg_t *m)
{
    size_t off = 0;
    while (off < m->used) {
        ssize_t w = write(m->fd, m->buf + off, m->used - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return msg_fail(m, "cannot write");
        off += (size_t)w;
    }
    m->used = 0;
    return 0;
}

/* msg_put - append n bytes to the file (buffered). 0 or -1. */
static int msg_put(spool_msg_t *m, const void *data, size_t n)
{
    if (m->failed)
        return -1;
    if (m->used + n > sizeof(m->buf) && msg_flush(m) < 0)
        return -1;
    if (n > sizeof(m->buf)) {
        m->used = 0;
        const char *p = data;
        while (n) {
            ssize_t w = write(m->fd, p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return msg_fail(m, "cannot write");
            p += w;
            n -= (size_t)w;
        }
        return 0;
    }
    memcpy(m->buf + m->used, data, n);
    m->used += n;
    return 0;
}

/* msg_keep - account for n message bytes and write the part within max_size. 0 or -1. */
static int msg_keep(spool_msg_t *m, const void *data, size_t n)
{
    m->size += (int64_t)n;
    size_t keep = n;
    if (m->max_size > 0 && m->written + (int64_t)n > m->max_size) {
        keep = m->written >= m->max_size ? 0 : (size_t)(m->max_size - m->written);
        m->truncated = true;
    }
    m->written += (int64_t)keep;
    return keep ? msg_put(m, data, keep) : (m->failed ? -1 : 0);
}

spool_msg_t *spool_msg_new(spool_t *spool, int64_t max_size, bool leading_space, char *err, size_t errsize)
{
    spool_msg_t *m = util_xmalloc(sizeof(*m));
    memset(m, 0, offsetof(spool_msg_t, buf));
    m->spool = spool;
    m->max_size = max_size;
    m->leading_space = leading_space;
    snprintf(m->tmp_name, sizeof(m->tmp_name), "%ld.%" PRIuFAST64, (long)getpid(),
             (uint_fast64_t)atomic_fetch_add(&spool->seq, 1));
    /* a file from free/ when there is one, else a new one. A reused file is overwritten from
     * its start and cut to the new size at the commit, not emptied at open (O_TRUNC): ext4
     * flushes a file emptied by a truncation when it is closed (auto_da_alloc), a disk write
     * per message that neither sync mode asked for. */
    pthread_mutex_lock(&spool->free_lock);
    uint64_t reuse = spool->n_free ? spool->free_names[--spool->n_free] : 0;
    pthread_mutex_unlock(&spool->free_lock);
    if (reuse) {
        char free_name[32];
        snprintf(free_name, sizeof(free_name), "f%" PRIu64, reuse);
        if (renameat(spool->free_fd, free_name, spool->tmp_fd, m->tmp_name) != 0)
            unlinkat(spool->free_fd, free_name, 0);
    }
    m->fd = openat(spool->tmp_fd, m->tmp_name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (m->fd < 0) {
        snprintf(err, errsize, "cannot create %s/tmp/%s: %s", spool->dir, m->tmp_name, strerror(errno));
        free(m);
        return NULL;
    }
    return m;
}

int spool_msg_header(spool_msg_t *m, const char *name, const char *value)
{
    /* the header's bytes are counted (and cut at max_size) like the body's */
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appends(&sb, name);
    strbuf_appends(&sb, m->leading_space ? ":" : ": ");
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\n' && (p == value || p[-1] != '\r'))
            strbuf_append(&sb, "\r", 1);
        strbuf_append(&sb, p, 1);
    }
    strbuf_append(&sb, "\r\n", 2);
    int rc = msg_keep(m, sb.data, sb.len);
    strbuf_release(&sb);
    return rc;
}

int spool_msg_end_headers(spool_msg_t *m)
{
    return msg_keep(m, "\r\n", 2);
}

int spool_msg_body(spool_msg_t *m, const void *data, size_t len)
{
    return msg_keep(m, data, len);
}

int64_t spool_msg_size(const spool_msg_t *m)
{
    return m->size;
}

bool spool_msg_truncated(const spool_msg_t *m)
{
    return m->truncated;
}

const char *spool_msg_errstr(const spool_msg_t *m)
{
    return m->errstr;
}

/* envelope_encode - the envelope lines into out. */
static void envelope_encode(const spool_envelope_t *env, strbuf_t *out)
{
#define SPOOL_ENCODE_INT(v) strbuf_append_int(out, (v))
#define SPOOL_ENCODE_STR(v) strbuf_append_escaped(out, (v), "@+=:/[]!#$&'*,;?^`{|}()<>")
#define SPOOL_ENCODE(key, kind, member)                                                             \
    if (SPOOL_KIND_IS_STR_##kind == 0 || env->member) {                                             \
        strbuf_appends(out, #key " ");                                                              \
        SPOOL_ENCODE_##kind(env->member);                                                           \
        strbuf_append(out, "\n", 1);                                                                \
    }
#define SPOOL_KIND_IS_STR_INT 0
#define SPOOL_KIND_IS_STR_STR 1
    SPOOL_FIELDS(SPOOL_ENCODE)
    for (size_t i = 0; i < env->n_rcpts; i++) {
        strbuf_appends(out, "rcpt ");
        SPOOL_ENCODE_STR(env->rcpts[i]);
        strbuf_append(out, "\n", 1);
    }
}

int spool_msg_commit(spool_msg_t **mp, spool_envelope_t *env, char name[64], char *err, size_t errsize)
{
    spool_msg_t *m = *mp;
    *mp = NULL;
    spool_t *s = m->spool;
    env->size = m->size;
    env->truncated = m->truncated ? 1 : 0;
    int64_t offset = m->written;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    envelope_encode(env, &sb);
    strbuf_appendf(&sb, SPOOL_MAGIC "%020" PRId64 "\n", offset);
    msg_put(m, sb.data, sb.len);
    off_t file_size = (off_t)offset + (off_t)sb.len;
    strbuf_release(&sb);
    if (!m->failed)
        msg_flush(m);
    /* a reused file may be longer than this message (spool_msg_new); never cut to 0 (see there) */
    if (!m->failed && ftruncate(m->fd, file_size) != 0)
        msg_fail(m, "cannot set the size of");
    if (!m->failed && s->sync == SPOOL_SYNC_ALWAYS && fdatasync(m->fd) != 0)
        msg_fail(m, "cannot sync");
    if (close(m->fd) != 0 && !m->failed)
        msg_fail(m, "cannot close");
    char ready[64];
    snprintf(ready, sizeof(ready), "%0*" PRId64 "-%012" PRIuFAST64, SPOOL_NAME_DIGITS, util_now_ms(),
             (uint_fast64_t)atomic_fetch_add(&s->seq, 1));
    if (!m->failed && renameat(s->tmp_fd, m->tmp_name, s->ready_fd, ready) != 0)
        msg_fail(m, "cannot move into ready/");
    /* the rename is on disk only once ready/ itself is synced: before the MTA hears accept */
    if (!m->failed && s->sync == SPOOL_SYNC_ALWAYS && fsync(s->ready_fd) != 0)
        msg_fail(m, "cannot sync ready/");
    if (!m->failed && s->sync == SPOOL_SYNC_EVERYSEC) {
        pthread_mutex_lock(&s->sync_lock);
        if (s->n_unsynced == s->cap_unsynced) {
            s->cap_unsynced = s->cap_unsynced ? s->cap_unsynced * 2 : 64;
            s->unsynced = util_xrealloc(s->unsynced, s->cap_unsynced * sizeof(*s->unsynced));
        }
        s->unsynced[s->n_unsynced++] = util_xstrdup(ready);
        pthread_mutex_unlock(&s->sync_lock);
    }
    if (m->failed) {
        snprintf(err, errsize, "%s", m->errstr);
        unlinkat(s->tmp_fd, m->tmp_name, 0);
        free(m);
        return -1;
    }
    if (name)
        snprintf(name, 64, "%s", ready);
    free(m);
    return 0;
}

void spool_msg_abort(spool_msg_t **mp)
{
    if (!mp || !*mp)
        return;
    spool_msg_t *m = *mp;
    close(m->fd);
    unlinkat(m->spool->tmp_fd, m->tmp_name, 0);
    free(m);
    *mp = NULL;
}

/* ---- reading ---- */

/* ready_name_valid - whether name has the shape spool_msg_commit gives. */
static bool ready_name_valid(const char *name)
{
    size_t i = 0;
    for (; i < SPOOL_NAME_DIGITS; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    return name[i] == '-' && strspn(name + i + 1, "0123456789") == strlen(name + i + 1) && name[i + 1];
}

/* ready_open - a directory stream over ready/ from its start (caller closedir's). NULL. */
static DIR *ready_open(spool_t *self)
{
    int fd = dup(self->ready_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    rewinddir(d);
    return d;
}

int spool_list(spool_t *self, size_t max, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = ready_open(self);
    if (!d)
        return -1;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!ready_name_valid(de->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *names = util_xrealloc(*names, cap * sizeof(**names));
        }
        (*names)[(*n)++] = util_xstrdup(de->d_name);
    }
    closedir(d);
    if (*n)
        qsort(*names, *n, sizeof(**names), util_cmp_strings);
    if (max && *n > max) {
        for (size_t i = max; i < *n; i++)
            free((*names)[i]);
        *n = max;
    }
    return 0;
}

/* unescape - decode %XX in s (len bytes) into a new string; NULL on a bad escape or a NUL. */
static char *unescape(const char *s, size_t len)
{
    char *out = util_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int v = 0;
        for (int k = 1; k <= 2; k++) {
            char c = i + (size_t)k < len ? s[i + (size_t)k] : 0;
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) {
                free(out);
                return NULL;
            }
            v = v * 16 + d;
        }
        if (v == 0) {
            free(out);
            return NULL;
        }
        out[o++] = (char)v;
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* envelope_set - one "key value" line into env; unknown keys are ignored. 0 or -1. */
static int envelope_set(spool_envelope_t *env, const char *key, size_t klen, const char *val, size_t vlen)
{
#define SPOOL_KEY_IS(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)
#define SPOOL_DECODE_INT(member)                                                                    \
    do {                                                                                            \
        char num[24];                                                                               \
        if (vlen == 0 || vlen >= sizeof(num))                                                       \
            return -1;                                                                              \
        memcpy(num, val, vlen);                                                                     \
        num[vlen] = '\0';                                                                           \
        if (util_parse_int64(num, &env->member) != 0)                                               \
            return -1;                                                                              \
    } while (0)
#define SPOOL_DECODE_STR(member)                                                                    \
    do {                                                                                            \
        if (env->member)                                                                            \
            return -1; /* repeated */                                                               \
        if (!(env->member = unescape(val, vlen)))                                                   \
            return -1;                                                                              \
    } while (0)
#define SPOOL_DECODE(k, kind, member)                                                               \
    if (SPOOL_KEY_IS(#k)) {                                                                         \
        SPOOL_DECODE_##kind(member);                                                                \
        return 0;                                                                                   \
    }
    SPOOL_FIELDS(SPOOL_DECODE)
    if (SPOOL_KEY_IS("rcpt")) {
        if (env->n_rcpts >= SPOOL_MAX_RCPTS)
            return -1;
        char *r = unescape(val, vlen);
        if (!r)
            return -1;
        env->rcpts = util_xrealloc(env->rcpts, (env->n_rcpts + 1) * sizeof(*env->rcpts));
        env->rcpts[env->n_rcpts++] = r;
    }
    return 0;
}

int spool_parse(const char *data, size_t len, spool_envelope_t *env, size_t *msg_len, char *err, size_t errsize)
{
    memset(env, 0, sizeof(*env));
    const char *trailer = data + len - SPOOL_TRAILER_LEN;
    if (len < SPOOL_TRAILER_LEN || memcmp(trailer, SPOOL_MAGIC, sizeof(SPOOL_MAGIC) - 1) != 0 ||
        trailer[SPOOL_TRAILER_LEN - 1] != '\n') {
        snprintf(err, errsize, "no spool trailer (not a complete spool file of version %d)", SPOOL_VERSION);
        return -1;
    }
    char num[21];
    memcpy(num, trailer + sizeof(SPOOL_MAGIC) - 1, 20);
    num[20] = '\0';
    int64_t offset;
    if (strspn(num, "0123456789") != 20 || util_parse_int64(num, &offset) != 0 || offset < 0 ||
        (uint64_t)offset > len - SPOOL_TRAILER_LEN || len - SPOOL_TRAILER_LEN - (size_t)offset > SPOOL_MAX_ENVELOPE) {
        snprintf(err, errsize, "bad envelope offset in the spool trailer");
        return -1;
    }
    const char *p = data + offset, *end = trailer;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *sp = nl ? memchr(p, ' ', (size_t)(nl - p)) : NULL;
        if (!sp || envelope_set(env, p, (size_t)(sp - p), sp + 1, (size_t)(nl - sp - 1)) != 0) {
            snprintf(err, errsize, "bad envelope line at byte %zu", (size_t)(p - data));
            spool_envelope_clear(env);
            return -1;
        }
        p = nl + 1;
    }
    if (env->time_ms <= 0) {
        snprintf(err, errsize, "envelope without time_ms");
        spool_envelope_clear(env);
        return -1;
    }
    *msg_len = (size_t)offset;
    return 0;
}

int spool_read(spool_t *self, const char *name, spool_entry_t *e, char *err, size_t errsize)
{
    memset(e, 0, sizeof(*e));
    int fd = openat(self->ready_fd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errsize, "cannot open %s/ready/%s: %s", self->dir, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -2;
    }
    if (st.st_size < SPOOL_TRAILER_LEN) {
        close(fd);
        snprintf(err, errsize, "%s/ready/%s: too short for a spool file", self->dir, name);
        return -1;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = util_xmalloc(size);
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int read_errno = errno;
    close(fd);
    if (got < size) {
        snprintf(err, errsize, "cannot read %s/ready/%s: %s", self->dir, name,
                 got ? "it shrank while read" : strerror(read_errno));
        free(buf);
        return -2;
    }
    size_t msg_len;
    if (spool_parse(buf, size, &e->env, &msg_len, err, errsize) != 0) {
        free(buf);
        return -1;
    }
    e->buf = buf;
    e->data = buf;
    e->len = msg_len;
    return 0;
}

void spool_entry_clear(spool_entry_t *e)
{
    free(e->buf);
    spool_envelope_clear(&e->env);
    memset(e, 0, sizeof(*e));
}

int spool_remove(spool_t *self, const char *name)
{
    /* kept in free/ for reuse while it has room; a large file is not: free/ would hold its
     * blocks until reused */
    struct stat st;
    pthread_mutex_lock(&self->free_lock);
    bool room = self->n_free < SPOOL_FREE_MAX;
    pthread_mutex_unlock(&self->free_lock);
    if (!room || fstatat(self->ready_fd, name, &st, 0) != 0 || st.st_size > SPOOL_FREE_MAX_SIZE)
        return unlinkat(self->ready_fd, name, 0);
    uint64_t n = (uint64_t)atomic_fetch_add(&self->seq, 1) + 1; /* never 0, which means none */
    char free_name[32];
    snprintf(free_name, sizeof(free_name), "f%" PRIu64, n);
    if (renameat(self->ready_fd, name, self->free_fd, free_name) != 0)
        return errno == ENOENT ? -1 : unlinkat(self->ready_fd, name, 0);
    pthread_mutex_lock(&self->free_lock);
    bool kept = self->n_free < SPOOL_FREE_MAX;
    if (kept)
        self->free_names[self->n_free++] = n;
    pthread_mutex_unlock(&self->free_lock);
    if (!kept) /* filled meanwhile */
        unlinkat(self->free_fd, free_name, 0);
    return 0;
}

int spool_set_aside(spool_t *self, const char *name, const char *reason)
{
    if (renameat(self->ready_fd, name, self->bad_fd, name) != 0)
        return -1;
    char rname[96];
    snprintf(rname, sizeof(rname), "%s.reason", name);
    int fd = openat(self->bad_fd, rname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dprintf(fd, "%s\n", reason);
        close(fd);
    }
    return 0;
}

int spool_backlog(spool_t *self, size_t *depth, int64_t *oldest_age_ms)
{
    *depth = 0;
    *oldest_age_ms = 0;
    DIR *d = ready_open(self);
    if (!d)
        return -1;
    char oldest[64] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!ready_name_valid(de->d_name))
            continue;
        (*depth)++;
        if (!oldest[0] || strcmp(de->d_name, oldest) < 0)
            util_strlcpy(oldest, de->d_name, sizeof(oldest));
    }
    closedir(d);
    if (oldest[0]) {
        oldest[SPOOL_NAME_DIGITS] = '\0';
        int64_t t = 0;
        util_parse_int64(oldest, &t);
        int64_t age = util_now_ms() - t;
        *oldest_age_ms = age > 0 ? age : 0;
    }
    return 0;
}

int spool_status_write(spool_t *self, const char *text)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof(tmp), "%s/status.tmp", self->dir);
    snprintf(path, sizeof(path), "%s/status", self->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    close(fd);
    if (w != (ssize_t)len || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}
