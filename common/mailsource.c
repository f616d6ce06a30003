/*
 * mailsource.c - messages under a path: files, mboxes, maildirs, directory trees; see
 * mailsource.h.
 *
 * Directories are opened with openat() relative to their parent and checked with
 * fstatat(AT_SYMLINK_NOFOLLOW) and O_NOFOLLOW, so a name swapped for a symbolic link during the
 * walk is not followed either. At most MAILSOURCE_MAX_DEPTH + 1 directories are open at once.
 * The current path is kept in one buffer in the walker and extended and cut back as the walk
 * goes down and up, so the recursion costs little stack.
 */
#include "mailsource.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define MAILSOURCE_REASON_MAX (MAILSOURCE_ORIGIN_MAX + 256)
/* mbox bytes handed over before their pages are dropped */
#define MAILSOURCE_RELEASE_STEP ((size_t)64 * 1024 * 1024)

typedef struct {
    size_t max_file, max_message;
    mailsource_fn fn;
    mailsource_error_fn on_error;
    void *ctx;
    mailsource_stats_t *stats;
    char path[PATH_MAX]; /* the file or directory being walked */
    size_t path_len;
} walker_t;

/* walker_report - hand "origin: <what>" to the error callback and count a skip. */
__attribute__((format(printf, 3, 4))) static void walker_report(walker_t *w, const char *origin,
                                                                const char *fmt, ...)
{
    char reason[MAILSOURCE_REASON_MAX];
    int n = snprintf(reason, sizeof(reason), "%s: ", origin);
    if (n < 0 || (size_t)n >= sizeof(reason))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason + n, sizeof(reason) - (size_t)n, fmt, ap);
    va_end(ap);
    w->stats->skipped++;
    if (w->on_error)
        w->on_error(w->ctx, origin, reason);
}

/* walker_push - append "/name" to the current path; the old length in *saved. -1 (path
 * unchanged) when the result would not fit. */
static int walker_push(walker_t *w, const char *name, size_t *saved)
{
    size_t n = strlen(name);
    bool slash = w->path_len > 0 && w->path[w->path_len - 1] != '/';
    if (w->path_len + slash + n >= sizeof(w->path))
        return -1;
    *saved = w->path_len;
    if (slash)
        w->path[w->path_len++] = '/';
    memcpy(w->path + w->path_len, name, n + 1);
    w->path_len += n;
    return 0;
}

/* walker_pop - cut the current path back to what walker_push saved. */
static void walker_pop(walker_t *w, size_t saved)
{
    w->path_len = saved;
    w->path[saved] = '\0';
}

/* ---- messages and mboxes ---- */

/* mbox_escape_next - the offset of the next line at or after from in d[0, len) that reads
 * ">+From " (an mboxrd/mboxo escape: its first '>' goes), or len; *resume is where to look on. */
static size_t mbox_escape_next(const char *d, size_t len, size_t from, size_t *resume)
{
    size_t p = from;
    while (p < len) {
        const char *hit = memmem(d + p, len - p, ">From ", 6);
        if (!hit)
            break;
        size_t i = (size_t)(hit - d), j = i;
        while (j > p && d[j - 1] == '>')
            j--;
        p = i + 6; /* ">From " cannot overlap itself, so the next hit is past this one */
        if (j == 0 || d[j - 1] == '\n') {
            *resume = p;
            return j;
        }
    }
    *resume = len;
    return len;
}

/* walker_message - hand one message to fn, undoing ">From " escapes when unescape is set. */
static int walker_message(walker_t *w, const char *origin, const char *data, size_t len,
                          bool unescape)
{
    if (len == 0)
        return 0;
    if (len > w->max_message) {
        walker_report(w, origin, "larger than the limit of %zu bytes", w->max_message);
        return 0;
    }
    size_t resume = 0;
    size_t at = unescape ? mbox_escape_next(data, len, 0, &resume) : len;
    if (at == len) {
        w->stats->messages++;
        return w->fn(w->ctx, origin, data, len);
    }
    char *copy = util_xmalloc(len);
    size_t n = 0, from = 0;
    while (at < len) {
        memcpy(copy + n, data + from, at - from);
        n += at - from;
        from = at + 1; /* the escaping '>' */
        at = mbox_escape_next(data, len, resume, &resume);
    }
    memcpy(copy + n, data + from, len - from);
    n += len - from;
    w->stats->messages++;
    int rc = w->fn(w->ctx, origin, copy, n);
    free(copy);
    return rc;
}

/* mbox_blank_before - whether the line starting at i (i > 0, d[i - 1] == '\n') follows an
 * empty line ("\n" or "\r\n"). */
static bool mbox_blank_before(const char *d, size_t i)
{
    if (i >= 2 && d[i - 2] == '\n')
        return true;
    return i >= 3 && d[i - 2] == '\r' && d[i - 3] == '\n';
}

/* mbox_next_separator - the offset of the next "From " line at or after from that follows an
 * empty line, or len. */
static size_t mbox_next_separator(const char *d, size_t len, size_t from)
{
    size_t p = from;
    while (p < len) {
        const char *hit = memmem(d + p, len - p, "\nFrom ", 6);
        if (!hit)
            break;
        size_t i = (size_t)(hit - d) + 1;
        if (mbox_blank_before(d, i))
            return i;
        p = i;
    }
    return len;
}

/* mbox_strip_blank - end, less one empty line ("\n" or "\r\n") that ends d[start, end). */
static size_t mbox_strip_blank(const char *d, size_t start, size_t end)
{
    if (end > start && d[end - 1] == '\n' && (end - 1 == start || d[end - 2] == '\n'))
        return end - 1;
    if (end - start >= 2 && d[end - 1] == '\n' && d[end - 2] == '\r' &&
        (end - 2 == start || d[end - 3] == '\n'))
        return end - 2;
    return end;
}

/* walker_mbox - every message of the mbox mapped at d (len bytes, starting with "From "). */
static int walker_mbox(walker_t *w, const char *d, size_t len)
{
    char origin[MAILSOURCE_ORIGIN_MAX];
    long page = sysconf(_SC_PAGESIZE);
    size_t released = 0, pos = 0, count = 0;
    while (pos < len) {
        const char *nl = memchr(d + pos, '\n', len - pos);
        size_t body = nl ? (size_t)(nl - d) + 1 : len;
        size_t next = mbox_next_separator(d, len, body);
        size_t end = mbox_strip_blank(d, body, next);
        snprintf(origin, sizeof(origin), "%s#%zu", w->path, ++count);
        int rc = walker_message(w, origin, d + body, end - body, true);
        if (rc)
            return rc;
        pos = next;
        if (page > 0 && pos - released >= MAILSOURCE_RELEASE_STEP) {
            size_t upto = pos - pos % (size_t)page;
            madvise((char *)d + released, upto - released, MADV_DONTNEED);
            released = upto;
        }
    }
    return 0;
}

/* walker_file - the message(s) of the open regular file fd (closed here) at w->path. */
static int walker_file(walker_t *w, int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        walker_report(w, w->path, "%s", strerror(errno));
        close(fd);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        walker_report(w, w->path, "not a regular file");
        close(fd);
        return 0;
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    if ((uintmax_t)st.st_size > w->max_file || (uintmax_t)st.st_size > SIZE_MAX) {
        walker_report(w, w->path, "larger than the limit of %zu bytes", w->max_file);
        close(fd);
        return 0;
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved_errno = errno;
    close(fd);
    if (map == MAP_FAILED) {
        walker_report(w, w->path, "mmap: %s", strerror(saved_errno));
        return 0;
    }
    madvise(map, len, MADV_SEQUENTIAL);
    const char *d = map;
    int rc = len >= 5 && memcmp(d, "From ", 5) == 0 ? walker_mbox(w, d, len)
                                                    : walker_message(w, w->path, d, len, false);
    munmap(map, len);
    return rc;
}

/* ---- directories ---- */

/* walker_list - the names in dir, dot names left out, sorted; caller frees each and *names.
 * Read errors and the entry cap are reported; what was read is returned. */
static size_t walker_list(walker_t *w, DIR *dir, char ***names)
{
    size_t n = 0, cap = 0;
    *names = NULL;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(dir);
        if (!e) {
            if (errno)
                walker_report(w, w->path, "reading the directory: %s", strerror(errno));
            break;
        }
        if (e->d_name[0] == '.')
            continue;
        if (n == MAILSOURCE_MAX_ENTRIES) {
            walker_report(w, w->path, "more than %u entries; the rest not walked",
                          MAILSOURCE_MAX_ENTRIES);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            *names = util_xrealloc(*names, cap * sizeof(**names));
        }
        (*names)[n++] = util_xstrdup(e->d_name);
    }
    if (n > 1)
        qsort(*names, n, sizeof(**names), util_cmp_strings);
    return n;
}

static int walker_dir(walker_t *w, int fd, int depth);

/* walker_entry - one entry, name, of the directory dfd (at w->path, depth deep). In a maildir
 * folder (files_only) directories are not walked. */
static int walker_entry(walker_t *w, int dfd, const char *name, int depth, bool files_only)
{
    size_t saved;
    if (walker_push(w, name, &saved) < 0) {
        walker_report(w, w->path, "%.64s...: path longer than %d bytes", name, PATH_MAX - 1);
        return 0;
    }
    int rc = 0;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        walker_report(w, w->path, "%s", strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
            walker_report(w, w->path, "%s", strerror(errno));
        else
            rc = walker_file(w, fd);
    } else if (S_ISDIR(st.st_mode) && !files_only) {
        if (depth >= MAILSOURCE_MAX_DEPTH) {
            walker_report(w, w->path, "nested deeper than %d directories; not walked",
                          MAILSOURCE_MAX_DEPTH);
        } else {
            int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW);
            if (fd < 0)
                walker_report(w, w->path, "%s", strerror(errno));
            else
                rc = walker_dir(w, fd, depth + 1);
        }
    } else if (S_ISLNK(st.st_mode)) {
        walker_report(w, w->path, "symbolic link, not followed");
    } else {
        walker_report(w, w->path, "not a regular file");
    }
    walker_pop(w, saved);
    return rc;
}

/* walker_entries - every entry of the open directory fd (closed here), in byte order. */
static int walker_entries(walker_t *w, int fd, int depth, bool files_only)
{
    DIR *dir = fdopendir(fd);
    if (!dir) {
        walker_report(w, w->path, "%s", strerror(errno));
        close(fd);
        return 0;
    }
    char **names;
    size_t n = walker_list(w, dir, &names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = walker_entry(w, dirfd(dir), names[i], depth, files_only);
        free(names[i]);
    }
    free(names);
    closedir(dir);
    return rc;
}

/* is_subdir - whether name in dfd is a directory (not a link to one). */
static bool is_subdir(int dfd, const char *name)
{
    struct stat st;
    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* walker_dir - the open directory fd (closed here) at w->path, depth below the path walked:
 * a maildir's cur/ and new/, or every entry. */
static int walker_dir(walker_t *w, int fd, int depth)
{
    if (!is_subdir(fd, "cur") || !is_subdir(fd, "new"))
        return walker_entries(w, fd, depth, false);
    static const char *const folders[] = {"cur", "new"};
    int rc = 0;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(folders) && rc == 0; i++) {
        size_t saved;
        if (walker_push(w, folders[i], &saved) < 0) {
            walker_report(w, w->path, "path longer than %d bytes", PATH_MAX - 1);
            break;
        }
        int sub = openat(fd, folders[i], O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW);
        if (sub < 0)
            walker_report(w, w->path, "%s", strerror(errno));
        else
            rc = walker_entries(w, sub, depth + 1, true);
        walker_pop(w, saved);
    }
    close(fd);
    return rc;
}

/* ---- the walk ---- */

int mailsource_walk(const char *path, size_t max_file, size_t max_message, mailsource_fn fn,
                    mailsource_error_fn on_error, void *ctx, mailsource_stats_t *stats, char *err,
                    size_t errlen)
{
    mailsource_stats_t local;
    walker_t w = {.max_file = max_file, .max_message = max_message, .fn = fn,
                  .on_error = on_error, .ctx = ctx, .stats = stats ? stats : &local};
    memset(w.stats, 0, sizeof(*w.stats));
    if (err && errlen)
        err[0] = '\0';
    if (!err)
        errlen = 0;
    size_t n = strlen(path);
    if (n >= sizeof(w.path)) {
        snprintf(err, errlen, "%.64s...: path longer than %d bytes", path, PATH_MAX - 1);
        return -1;
    }
    memcpy(w.path, path, n + 1);
    w.path_len = n;
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file or directory", path);
        return -1;
    }
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | (S_ISDIR(st.st_mode) ? O_DIRECTORY : O_NONBLOCK);
    int fd = open(path, flags);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return S_ISDIR(st.st_mode) ? walker_dir(&w, fd, 0) : walker_file(&w, fd);
}
