/*
 * log.h - the one logging module of every Clawback program.
 *
 * Text lines have the seed gateway's shape, so existing parsers keep working:
 *
 *     Tue Mar 29 20:20:24 2022 Info: ECS: Start polling
 *
 * (local time, ctime-style, then the level name and a colon). When a JSON-lines file is
 * configured, each line is also written there as one object:
 *
 *     {"time":"2022-03-30T00:20:24.123Z","level":"info","program":"clawback-poller",
 *      "pid":42,"message":"ECS: Start polling"}
 *
 * The level is checked before the message is formatted (use the log_xxx() macros). Each line
 * is written with a single write(2) to a file opened O_APPEND, so several processes can share
 * a file without interleaving. log_reopen() reopens both files (SIGHUP, logrotate).
 */
#ifndef CLAWBACK_LOG_H
#define CLAWBACK_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <time.h>

typedef enum {
    LOG_LEVEL_CRITICAL = 0,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_TRACE,
} log_level_t;

/* log_level_name - "Critical", "Warning", "Info", "Debug", "Trace" (the seed's spelling). */
const char *log_level_name(log_level_t level);
/* log_level_parse - parse a level name (case-insensitive; "information" too); 0 or -1. */
int log_level_parse(const char *name, log_level_t *out);

/* log_open - log as `program` at `level` to `text_path` ("" or "-": stderr) and, when
 * json_path is non-empty, also as JSON lines to json_path. Returns 0, or -1 with errno set
 * (the previous destinations stay in use). Paths are copied. */
int log_open(const char *program, log_level_t level, const char *text_path, const char *json_path);
/* log_reopen - reopen the files (after rotation); 0 or -1 (old descriptors kept on failure). */
int log_reopen(void);
/* log_close - close the files; later lines go to stderr. */
void log_close(void);
/* log_set_level - change the threshold. */
void log_set_level(log_level_t level);
/* log_enabled - whether a message at `level` would be written. */
int log_enabled(log_level_t level);

/* log_msg - write one line (no trailing newline in fmt). Prefer the macros below. */
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(log_level_t level, const char *fmt, va_list ap);

/* log_format_text_line - format "<ctime> <Level>: <message>\n" for time t into out (size
 * bytes, truncated but newline-terminated; control bytes in the message, CR and LF included,
 * become spaces so that one event is always one line); returns the length. Used by the logger daemon for
 * the seed-format files it writes on behalf of other stages. */
size_t log_format_text_line(char *out, size_t size, time_t t, log_level_t level, const char *message);

#define log_at(level, ...)                                                                         \
    do {                                                                                           \
        if (log_enabled(level))                                                                    \
            log_msg(level, __VA_ARGS__);                                                           \
    } while (0)
#define log_critical(...) log_at(LOG_LEVEL_CRITICAL, __VA_ARGS__)
#define log_warning(...) log_at(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_trace(...) log_at(LOG_LEVEL_TRACE, __VA_ARGS__)

#endif
