/*
 * seed_logs.c - the seed gateway's log files; see seed_logs.h.
 */
#include "seed_logs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

#define SEED_LOGS_LINE_MAX 16384

/* The text logs, by event "log" value (record.h lists the allowed ones). */
static const char *const SEED_LOG_NAMES[] = {"ecs", "mail_logs", "remediation", "url_rep_client"};

struct seed_logs {
    char *dir;
    char *json_path;
    int fds[sizeof(SEED_LOG_NAMES) / sizeof(SEED_LOG_NAMES[0])];
    int json_fd;
};

seed_logs_t *seed_logs_new(const char *dir, const char *json_path, char *err, size_t errsize)
{
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errsize, "cannot create %s: %s", dir, strerror(errno));
        return NULL;
    }
    seed_logs_t *self = util_xcalloc(1, sizeof(*self));
    self->dir = util_xstrdup(dir);
    self->json_path = util_xstrdup(json_path ? json_path : "");
    for (size_t i = 0; i < UTIL_ARRAY_LEN(self->fds); i++)
        self->fds[i] = -1;
    self->json_fd = -1;
    return self;
}

void seed_logs_reopen(seed_logs_t *self)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(self->fds); i++) {
        if (self->fds[i] >= 0)
            close(self->fds[i]);
        self->fds[i] = -1;
    }
    if (self->json_fd >= 0)
        close(self->json_fd);
    self->json_fd = -1;
}

void seed_logs_destroy(seed_logs_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    seed_logs_reopen(*selfp);
    free((*selfp)->dir);
    free((*selfp)->json_path);
    free(*selfp);
    *selfp = NULL;
}

/* seed_logs_open - the descriptor in *fd, opened on first use; 0 or -1 (err set). */
static int seed_logs_open(int *fd, const char *path, char *err, size_t errsize)
{
    if (*fd >= 0)
        return 0;
    *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (*fd < 0) {
        snprintf(err, errsize, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* seed_logs_put - write a whole line with one write(2) (O_APPEND: lines never interleave). */
static int seed_logs_put(int fd, const char *line, size_t len, char *err, size_t errsize)
{
    while (len) {
        ssize_t n = write(fd, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errsize, "cannot write a log line: %s", n < 0 ? strerror(errno) : "short write");
            return -1;
        }
        line += n;
        len -= (size_t)n;
    }
    return 0;
}

int seed_logs_write(seed_logs_t *self, const record_event_t *ev, char *err, size_t errsize)
{
    log_level_t level = LOG_LEVEL_INFO;
    (void)log_level_parse(ev->level, &level);
    int64_t ms = ev->time_ms > 0 ? ev->time_ms : 0; /* a peer's clock, not trusted blindly */
    time_t t = (time_t)(ms / 1000);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(SEED_LOG_NAMES); i++) {
        if (strcmp(ev->log, SEED_LOG_NAMES[i]) != 0)
            continue;
        char path[4096], line[SEED_LOGS_LINE_MAX];
        snprintf(path, sizeof(path), "%s/%s", self->dir, SEED_LOG_NAMES[i]);
        if (seed_logs_open(&self->fds[i], path, err, errsize) < 0)
            return -1;
        size_t len = log_format_text_line(line, sizeof(line), t, level, ev->message);
        if (seed_logs_put(self->fds[i], line, len, err, errsize) < 0)
            return -1;
    }
    if (!*self->json_path)
        return 0;
    if (seed_logs_open(&self->json_fd, self->json_path, err, errsize) < 0)
        return -1;
    struct tm tm;
    char stamp[40];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    strbuf_t sb;
    strbuf_init(&sb, SEED_LOGS_LINE_MAX * 7);
    (void)strbuf_appendf(&sb, "{\"time\":\"%s.%03dZ\",\"log\":\"%s\",\"level\":\"%s\",\"program\":", stamp,
                         (int)(ms % 1000), ev->log, ev->level);
    (void)strbuf_append_json_string(&sb, ev->program, strlen(ev->program));
    if (ev->mid)
        (void)strbuf_appendf(&sb, ",\"mid\":%lld", (long long)ev->mid);
    if (ev->batch) {
        (void)strbuf_appends(&sb, ",\"batch\":");
        (void)strbuf_append_json_string(&sb, ev->batch, strlen(ev->batch));
    }
    (void)strbuf_appends(&sb, ",\"message\":");
    (void)strbuf_append_json_string(&sb, ev->message, strlen(ev->message));
    (void)strbuf_appends(&sb, "}\n");
    int rc = seed_logs_put(self->json_fd, sb.data, sb.len, err, errsize);
    strbuf_release(&sb);
    return rc;
}
