/*
 * config.c - INI parsing (libinih), typed values and the documented example; see config.h.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "redis_conn.h"
#include "util.h"

typedef enum {
    CONFIG_TYPE_STR,
    CONFIG_TYPE_REDIS_URL,
    CONFIG_TYPE_INT,
    CONFIG_TYPE_DURATION,
    CONFIG_TYPE_SIZE,
    CONFIG_TYPE_BOOL,
    CONFIG_TYPE_LEVEL,
} config_type_t;

typedef struct {
    const char *section;
    const char *key;
    config_type_t type;
    size_t offset;
    const char *def;
    int64_t min, max;
    const char *doc;
} config_key_t;

static const config_key_t CONFIG_TABLE[] = {
#define CONFIG_ENTRY(section, key, type, member, def, min, max, doc)                                \
    {#section, #key, CONFIG_TYPE_##type, offsetof(config_t, member), def, min, max, doc},
    CONFIG_KEYS(CONFIG_ENTRY)
#undef CONFIG_ENTRY
};

/* config_error - format an error message into err. */
static void config_error(char *err, size_t errsize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void config_error(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errsize)
        vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

/* parse_scaled - "<digits><unit>" with units from the table; -1 on a bad form or overflow. */
static int parse_scaled(const char *text, const char *const *units, const int64_t *scales,
                        size_t nunits, int64_t bare_scale, int64_t *out)
{
    const char *p = text;
    if (!isdigit((unsigned char)*p))
        return -1;
    int64_t n = 0;
    while (isdigit((unsigned char)*p)) {
        if (n > (INT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (*p++ - '0');
    }
    int64_t scale = bare_scale;
    if (*p) {
        size_t i;
        for (i = 0; i < nunits; i++)
            if (strcasecmp(p, units[i]) == 0)
                break;
        if (i == nunits)
            return -1;
        scale = scales[i];
    }
    if (n > INT64_MAX / scale)
        return -1;
    *out = n * scale;
    return 0;
}

static int parse_duration_ms(const char *text, int64_t *out)
{
    static const char *const units[] = {"ms", "s", "m", "h", "d"};
    static const int64_t scales[] = {1, 1000, 60000, 3600000, 86400000};
    return parse_scaled(text, units, scales, UTIL_ARRAY_LEN(units), 1000, out);
}

static int parse_size(const char *text, int64_t *out)
{
    static const char *const units[] = {"k", "m", "g", "kb", "mb", "gb"};
    static const int64_t scales[] = {1024, 1048576, 1073741824, 1024, 1048576, 1073741824};
    return parse_scaled(text, units, scales, UTIL_ARRAY_LEN(units), 1, out);
}

static int parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(yes); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* config_apply - parse value for key k into cfg; 0 or -1 with a message. */
static int config_apply(config_t *cfg, const config_key_t *k, const char *value, char *err, size_t errsize)
{
    void *slot = (char *)cfg + k->offset;
    int64_t n;
    switch (k->type) {
    case CONFIG_TYPE_REDIS_URL: {
        redis_conn_address_t addr;
        char why[160];
        if (redis_conn_parse_url(value, &addr, why, sizeof(why)) < 0) {
            config_error(err, errsize, "[%s] %s: %s", k->section, k->key, why);
            return -1;
        }
        redis_conn_address_release(&addr);
    }
        /* fall through */
    case CONFIG_TYPE_STR:
        free(*(char **)slot);
        *(char **)slot = util_xstrdup(value);
        return 0;
    case CONFIG_TYPE_BOOL:
        if (parse_bool(value, (bool *)slot) < 0) {
            config_error(err, errsize, "[%s] %s: '%s' is not a boolean (yes/no)", k->section, k->key, value);
            return -1;
        }
        return 0;
    case CONFIG_TYPE_LEVEL:
        if (log_level_parse(value, (log_level_t *)slot) < 0) {
            config_error(err, errsize, "[%s] %s: '%s' is not a log level (critical, warning, info, debug, trace)",
                         k->section, k->key, value);
            return -1;
        }
        return 0;
    case CONFIG_TYPE_INT:
        if (util_parse_int64(value, &n) < 0) {
            config_error(err, errsize, "[%s] %s: '%s' is not an integer", k->section, k->key, value);
            return -1;
        }
        break;
    case CONFIG_TYPE_DURATION:
        if (parse_duration_ms(value, &n) < 0) {
            config_error(err, errsize, "[%s] %s: '%s' is not a duration (e.g. 250ms, 30s, 5m, 168h, 7d)",
                         k->section, k->key, value);
            return -1;
        }
        break;
    case CONFIG_TYPE_SIZE:
        if (parse_size(value, &n) < 0) {
            config_error(err, errsize, "[%s] %s: '%s' is not a size (e.g. 512, 64k, 1M)", k->section, k->key, value);
            return -1;
        }
        break;
    }
    if (n < k->min || n > k->max) {
        config_error(err, errsize, "[%s] %s: '%s' is out of range (%lld to %lld%s)", k->section, k->key, value,
                     (long long)k->min, (long long)k->max,
                     k->type == CONFIG_TYPE_DURATION ? " ms" : k->type == CONFIG_TYPE_SIZE ? " bytes" : "");
        return -1;
    }
    *(int64_t *)slot = n;
    return 0;
}

static const config_key_t *config_find(const char *section, const char *key, bool *section_known)
{
    *section_known = false;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_TABLE); i++) {
        if (strcmp(CONFIG_TABLE[i].section, section) != 0)
            continue;
        *section_known = true;
        if (strcmp(CONFIG_TABLE[i].key, key) == 0)
            return &CONFIG_TABLE[i];
    }
    return NULL;
}

int config_set(config_t *cfg, const char *section, const char *key, const char *value, char *err, size_t errsize)
{
    bool section_known;
    const config_key_t *k = config_find(section, key, &section_known);
    if (!k) {
        if (section_known)
            config_error(err, errsize, "unknown key '%s' in section [%s]", key, section);
        else
            config_error(err, errsize, "unknown section [%s]", section);
        return -1;
    }
    return config_apply(cfg, k, value, err, errsize);
}

config_t *config_new(void)
{
    config_t *cfg = util_xcalloc(1, sizeof(*cfg));
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_TABLE); i++) {
        char err[256];
        if (config_apply(cfg, &CONFIG_TABLE[i], CONFIG_TABLE[i].def, err, sizeof(err)) < 0) {
            fprintf(stderr, "clawback: bad embedded default: %s\n", err); /* programmer error */
            abort();
        }
    }
    return cfg;
}

void config_destroy(config_t **cfgp)
{
    if (!cfgp || !*cfgp)
        return;
    config_t *cfg = *cfgp;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_TABLE); i++)
        if (CONFIG_TABLE[i].type == CONFIG_TYPE_STR || CONFIG_TABLE[i].type == CONFIG_TYPE_REDIS_URL)
            free(*(char **)((char *)cfg + CONFIG_TABLE[i].offset));
    free(cfg->path);
    free(cfg);
    *cfgp = NULL;
}

/* The reader wrapper counts lines so every error can name its line. */
typedef struct {
    FILE *file;
    int line;
    int long_line; /* first line longer than the parser's buffer, or 0 */
    config_t *cfg;
    char err[384];
    int err_line;
} config_parse_t;

static char *config_read_line(char *str, int num, void *stream)
{
    config_parse_t *p = stream;
    char *s = fgets(str, num, p->file);
    if (!s)
        return NULL;
    size_t len = strlen(s);
    if (len == (size_t)num - 1 && s[len - 1] != '\n' && !feof(p->file)) {
        if (!p->long_line)
            p->long_line = p->line + 1;
        int c; /* skip the rest of the over-long line */
        while ((c = fgetc(p->file)) != EOF && c != '\n')
            ;
    }
    p->line++;
    return s;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
    config_parse_t *p = user;
    if (p->err_line)
        return 1; /* report the first error only */
    if (config_set(p->cfg, section, name, value, p->err, sizeof(p->err)) < 0) {
        p->err_line = p->line;
        return 0;
    }
    return 1;
}

int config_load(config_t *cfg, const char *path, char *err, size_t errsize)
{
    config_parse_t p = {.cfg = cfg};
    p.file = fopen(path, "r");
    if (!p.file) {
        config_error(err, errsize, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(config_read_line, &p, config_handler, &p);
    fclose(p.file);
    if (p.long_line && (!p.err_line || p.long_line < p.err_line)) {
        config_error(err, errsize, "%s:%d: line longer than %d characters", path, p.long_line, INI_MAX_LINE - 2);
        return -1;
    }
    if (p.err_line) {
        config_error(err, errsize, "%s:%d: %s", path, p.err_line, p.err);
        return -1;
    }
    if (rc != 0) {
        config_error(err, errsize, "%s:%d: syntax error (expected [section] or key = value)", path, rc);
        return -1;
    }
    free(cfg->path);
    cfg->path = util_xstrdup(path);
    return 0;
}

void config_write_example(FILE *out)
{
    fprintf(out, "# clawback.conf - every key Clawback reads, with its embedded default.\n"
                 "# Generated by `clawback config example`; a unit test keeps this file in step.\n"
                 "# Durations take a unit (ms, s, m, h, d), sizes a suffix (k, M, G).\n");
    const char *section = "";
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_TABLE); i++) {
        const config_key_t *k = &CONFIG_TABLE[i];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(out, "\n[%s]\n", section);
        } else {
            fputc('\n', out);
        }
        fputs("# ", out);
        for (const char *d = k->doc; *d; d++) {
            fputc(*d, out);
            if (*d == '\n')
                fputs("# ", out);
        }
        fprintf(out, "\n%s = %s\n", k->key, k->def);
    }
}
