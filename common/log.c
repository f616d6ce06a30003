/*
 * log.c - seed-format text logs and JSON lines; see log.h.
 *
 * State is process-global (one log per process), set up by the daemon skeleton or a
 * command's main() before anything else runs.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "strbuf.h"
#include "util.h"

#define LOG_LINE_MAX 8192

static struct {
    char program[64];
    log_level_t level;
    char *text_path;
    char *json_path;
    int text_fd; /* -1: stderr */
    int json_fd; /* -1: none */
} log_state = {"clawback", LOG_LEVEL_INFO, NULL, NULL, -1, -1};

static const char *const LEVEL_NAMES[] = {"Critical", "Warning", "Info", "Debug", "Trace"};
static const char *const LEVEL_JSON_NAMES[] = {"critical", "warning", "info", "debug", "trace"};

const char *log_level_name(log_level_t level)
{
    return (unsigned)level < UTIL_ARRAY_LEN(LEVEL_NAMES) ? LEVEL_NAMES[level] : "Info";
}

int log_level_parse(const char *name, log_level_t *out)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(LEVEL_NAMES); i++) {
        if (strcasecmp(name, LEVEL_NAMES[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(name, "information") == 0) {
        *out = LOG_LEVEL_INFO;
        return 0;
    }
    return -1;
}

/* log_open_path - open one log file for appending; -1 for stderr (""/"-"), -2 on error. */
static int log_open_path(const char *path)
{
    if (!path || !*path || strcmp(path, "-") == 0)
        return -1;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -2 : fd;
}

int log_open(const char *program, log_level_t level, const char *text_path, const char *json_path)
{
    int text_fd = log_open_path(text_path);
    if (text_fd == -2)
        return -1;
    int json_fd = -1;
    if (json_path && *json_path) {
        json_fd = log_open_path(json_path);
        if (json_fd < 0) {
            int saved = errno;
            if (text_fd >= 0)
                close(text_fd);
            errno = json_fd == -1 ? EINVAL : saved;
            return -1;
        }
    }
    log_close();
    util_strlcpy(log_state.program, program, sizeof(log_state.program));
    log_state.level = level;
    log_state.text_path = util_xstrdup(text_path ? text_path : "");
    log_state.json_path = util_xstrdup(json_path ? json_path : "");
    log_state.text_fd = text_fd;
    log_state.json_fd = json_fd;
    return 0;
}

int log_reopen(void)
{
    int rc = 0;
    if (log_state.text_fd >= 0) {
        int fd = log_open_path(log_state.text_path);
        if (fd >= 0) {
            /* dup3, not dup2: dup2 clears close-on-exec on the target descriptor */
            if (dup3(fd, log_state.text_fd, O_CLOEXEC) < 0)
                rc = -1;
            close(fd);
        } else {
            rc = -1;
        }
    }
    if (log_state.json_fd >= 0) {
        int fd = log_open_path(log_state.json_path);
        if (fd >= 0) {
            if (dup3(fd, log_state.json_fd, O_CLOEXEC) < 0)
                rc = -1;
            close(fd);
        } else {
            rc = -1;
        }
    }
    return rc;
}

void log_close(void)
{
    if (log_state.text_fd >= 0)
        close(log_state.text_fd);
    if (log_state.json_fd >= 0)
        close(log_state.json_fd);
    log_state.text_fd = -1;
    log_state.json_fd = -1;
    free(log_state.text_path);
    free(log_state.json_path);
    log_state.text_path = NULL;
    log_state.json_path = NULL;
}

void log_set_level(log_level_t level)
{
    log_state.level = level;
}

int log_enabled(log_level_t level)
{
    return level <= log_state.level;
}

size_t log_format_text_line(char *out, size_t size, time_t t, log_level_t level, const char *message)
{
    struct tm tm;
    char stamp[64];
    if (!localtime_r(&t, &tm)) /* a time beyond struct tm: print a fixed, well-formed stamp */
        memset(&tm, 0, sizeof(tm));
    strftime(stamp, sizeof(stamp), "%a %b %e %H:%M:%S %Y", &tm);
    if (size == 0)
        return 0;
    int n = snprintf(out, size, "%s %s: %s\n", stamp, log_level_name(level), message);
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    size_t len = (size_t)n;
    if (len >= size) { /* truncated: keep the line terminated */
        if (size < 2) {
            out[0] = '\0';
            return 0;
        }
        out[size - 2] = '\n';
        out[size - 1] = '\0';
        len = size - 1;
    }
    /* one event, one line: a CR, LF or other control byte inside the message (from a subject,
     * a URL, a feed) becomes a space, so no one can forge a log line */
    for (size_t i = 0; i + 1 < len; i++)
        if ((unsigned char)out[i] < 0x20 && out[i] != '\t')
            out[i] = ' ';
    return len;
}

/* log_write_all - write the whole buffer, retrying on EINTR and short writes. */
static void log_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void log_vmsg(log_level_t level, const char *fmt, va_list ap)
{
    char message[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 128];
    if (!log_enabled(level)) /* the macros check first; a direct call is filtered too */
        return;
    int saved_errno = errno;

    vsnprintf(message, sizeof(message), fmt, ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    size_t len = log_format_text_line(line, sizeof(line), tv.tv_sec, level, message);
    log_write_all(log_state.text_fd >= 0 ? log_state.text_fd : STDERR_FILENO, line, len);

    if (log_state.json_fd >= 0) {
        struct tm tm;
        char stamp[40];
        gmtime_r(&tv.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        strbuf_t sb;
        strbuf_init(&sb, LOG_LINE_MAX * 7);
        strbuf_appendf(&sb, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"program\":", stamp,
                       (long)(tv.tv_usec / 1000), LEVEL_JSON_NAMES[level <= LOG_LEVEL_TRACE ? level : 2]);
        strbuf_append_json_string(&sb, log_state.program, strlen(log_state.program));
        strbuf_appendf(&sb, ",\"pid\":%ld,\"message\":", (long)getpid());
        strbuf_append_json_string(&sb, message, strlen(message));
        strbuf_appends(&sb, "}\n");
        if (!sb.overflow)
            log_write_all(log_state.json_fd, sb.data, sb.len);
        strbuf_release(&sb);
    }
    errno = saved_errno;
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}
