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

static const config_key_t CONFIG_FEED_TABLE[] = {
#define CONFIG_FEED_ENTRY(key, type, member, def, min, max, doc)                                    \
    {"feed", #key, CONFIG_TYPE_##type, offsetof(config_feed_t, member), def, min, max, doc},
    CONFIG_FEED_KEYS(CONFIG_FEED_ENTRY)
#undef CONFIG_FEED_ENTRY
};

static const config_key_t CONFIG_DOMAINS_TABLE[] = {
#define CONFIG_DOMAINS_ENTRY(key, type, member, def, min, max, doc)                                 \
    {"domains", #key, CONFIG_TYPE_##type, offsetof(config_domains_t, member), def, min, max, doc},
    CONFIG_DOMAINS_KEYS(CONFIG_DOMAINS_ENTRY)
#undef CONFIG_DOMAINS_ENTRY
};

static const config_key_t CONFIG_PROFILE_TABLE[] = {
#define CONFIG_PROFILE_ENTRY(key, type, member, def, min, max, doc)                                 \
    {"profile", #key, CONFIG_TYPE_##type, offsetof(config_profile_t, member), def, min, max, doc},
    CONFIG_PROFILE_KEYS(CONFIG_PROFILE_ENTRY)
#undef CONFIG_PROFILE_ENTRY
};

#define CONFIG_FEED_TYPES "retro taxii21 urlhaus openphish misp"

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

/* config_apply - parse value for key k into the struct at base (config_t, or config_feed_t for
 * a feed key); 0 or -1 with a message. */
static int config_apply(void *base, const config_key_t *k, const char *value, char *err, size_t errsize)
{
    void *slot = (char *)base + k->offset;
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

bool config_feed_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > CONFIG_FEED_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
            return false;
    return true;
}

static int config_feed_check(const void *item, const config_t *cfg, char *err, size_t errsize);
static int config_domains_check(const void *item, const config_t *cfg, char *err, size_t errsize);
static int config_profile_check(const void *item, const config_t *cfg, char *err, size_t errsize);

/* A kind of named section ("[feed NAME]", "[domains NAME]"): its keys and where its items live
 * in config_t. Every item struct starts with char name[CONFIG_FEED_MAX_NAME + 1]. */
typedef struct {
    const char *kind; /* "feed": sections are "[feed NAME]" */
    const config_key_t *keys;
    size_t nkeys;
    size_t item_size, line_offset;
    size_t items_offset, count_offset; /* of the item array and its count in config_t */
    int (*check)(const void *item, const config_t *cfg, char *err, size_t errsize);
} config_kind_t;

static const config_kind_t CONFIG_KINDS[] = {
    {"feed", CONFIG_FEED_TABLE, UTIL_ARRAY_LEN(CONFIG_FEED_TABLE), sizeof(config_feed_t),
     offsetof(config_feed_t, line), offsetof(config_t, feeds), offsetof(config_t, nfeeds), config_feed_check},
    {"domains", CONFIG_DOMAINS_TABLE, UTIL_ARRAY_LEN(CONFIG_DOMAINS_TABLE), sizeof(config_domains_t),
     offsetof(config_domains_t, line), offsetof(config_t, domains), offsetof(config_t, ndomains),
     config_domains_check},
    {"profile", CONFIG_PROFILE_TABLE, UTIL_ARRAY_LEN(CONFIG_PROFILE_TABLE), sizeof(config_profile_t),
     offsetof(config_profile_t, line), offsetof(config_t, profiles), offsetof(config_t, nprofiles),
     config_profile_check},
};

/* config_kind_of - the kind of a section named "KIND NAME" (n bytes), with *name at NAME; NULL
 * when the section is not a named one. */
static const config_kind_t *config_kind_of(const char *section, size_t n, const char **name)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_KINDS); i++) {
        size_t klen = strlen(CONFIG_KINDS[i].kind);
        if (n > klen + 1 && memcmp(section, CONFIG_KINDS[i].kind, klen) == 0 && section[klen] == ' ') {
            *name = section + klen + 1;
            return &CONFIG_KINDS[i];
        }
    }
    return NULL;
}

static char **config_kind_items(const config_kind_t *kind, const config_t *cfg)
{
    return (char **)((char *)cfg + kind->items_offset);
}

static size_t *config_kind_count(const config_kind_t *kind, const config_t *cfg)
{
    return (size_t *)((char *)cfg + kind->count_offset);
}

/* config_named_find - the item of kind named name, or NULL. */
static void *config_named_find(const config_kind_t *kind, const config_t *cfg, const char *name)
{
    char *items = *config_kind_items(kind, cfg);
    for (size_t i = 0; i < *config_kind_count(kind, cfg); i++)
        if (strcmp(items + i * kind->item_size, name) == 0) /* the name is the first member */
            return items + i * kind->item_size;
    return NULL;
}

const config_feed_t *config_feed_find(const config_t *cfg, const char *name)
{
    return config_named_find(&CONFIG_KINDS[0], cfg, name);
}

/* config_named_free - free the strings of every item of kind. */
static void config_named_free(const config_kind_t *kind, config_t *cfg)
{
    char *items = *config_kind_items(kind, cfg);
    for (size_t i = 0; i < *config_kind_count(kind, cfg); i++)
        for (size_t k = 0; k < kind->nkeys; k++)
            if (kind->keys[k].type == CONFIG_TYPE_STR)
                free(*(char **)(items + i * kind->item_size + kind->keys[k].offset));
    free(items);
}

/* config_named_add - the item of kind named name, created with the kind's defaults when new. */
static void *config_named_add(const config_kind_t *kind, config_t *cfg, const char *name)
{
    void *item = config_named_find(kind, cfg, name);
    if (item)
        return item;
    char **items = config_kind_items(kind, cfg);
    size_t *count = config_kind_count(kind, cfg);
    *items = util_xrealloc(*items, (*count + 1) * kind->item_size);
    item = *items + (*count)++ * kind->item_size;
    memset(item, 0, kind->item_size);
    util_strlcpy(item, name, CONFIG_FEED_MAX_NAME + 1);
    for (size_t i = 0; i < kind->nkeys; i++) {
        char err[256];
        if (config_apply(item, &kind->keys[i], kind->keys[i].def, err, sizeof(err)) < 0) {
            fprintf(stderr, "clawback: bad embedded default: %s\n", err); /* programmer error */
            abort();
        }
    }
    return item;
}

/* config_set_named - set key of the named section "KIND NAME". */
static int config_set_named(config_t *cfg, const config_kind_t *kind, const char *section, const char *name,
                            const char *key, const char *value, char *err, size_t errsize)
{
    if (!config_feed_name_valid(name, strlen(name))) {
        config_error(err, errsize, "bad %s name in [%.64s]: 1 to %d of A-Z a-z 0-9 _ . -", kind->kind, section,
                     CONFIG_FEED_MAX_NAME);
        return -1;
    }
    for (size_t i = 0; i < kind->nkeys; i++) {
        if (strcmp(kind->keys[i].key, key) != 0)
            continue;
        char why[320];
        if (config_apply(config_named_add(kind, cfg, name), &kind->keys[i], value, why, sizeof(why)) < 0) {
            /* config_apply names the section "[feed]": name the item instead */
            const char *rest = strchr(why, ']');
            config_error(err, errsize, "[%s]%s", section, rest ? rest + 1 : why);
            return -1;
        }
        return 0;
    }
    config_error(err, errsize, "unknown key '%s' in section [%s]", key, section);
    return -1;
}

/* config_feed_check - a complete feed section's cross-key rules; 0 or -1 with a message. */
static int config_feed_check(const void *item, const config_t *cfg, char *err, size_t errsize)
{
    const config_feed_t *feed = item;
    (void)cfg;
    char types[] = CONFIG_FEED_TYPES;
    bool known = false;
    for (char *save = NULL, *t = strtok_r(types, " ", &save); t; t = strtok_r(NULL, " ", &save))
        known = known || strcmp(t, feed->type) == 0;
    if (!known) {
        config_error(err, errsize, "[feed %s] type: '%s' is not one of %s", feed->name, feed->type,
                     CONFIG_FEED_TYPES);
        return -1;
    }
    if (!*feed->url) {
        config_error(err, errsize, "[feed %s] url: missing", feed->name);
        return -1;
    }
    if (strcmp(feed->type, "retro") == 0 && (!*feed->device_id || !*feed->org_id)) {
        config_error(err, errsize, "[feed %s] a retro feed needs device_id and org_id", feed->name);
        return -1;
    }
    if (feed->backoff_min_ms > feed->backoff_max_ms) {
        config_error(err, errsize, "[feed %s] backoff_min is larger than backoff_max", feed->name);
        return -1;
    }
    return 0;
}

/* config_domain_valid - a recipient domain as a mapping may name it (lowercase LDH labels). */
static bool config_domain_valid(const char *d, size_t len)
{
    if (len == 1 && d[0] == '*')
        return true;
    if (len == 0 || len > 253 || d[0] == '.' || d[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (!(islower(c) || isdigit(c) || c == '-' || c == '.' || c == '_' || c >= 0x80))
            return false;
        if (c == '.' && d[i + 1] == '.')
            return false;
    }
    return true;
}

/* config_domains_check - a [domains NAME] section: its domains, action and profile, and no
 * domain mapped twice. */
static int config_domains_check(const void *item, const config_t *cfg, char *err, size_t errsize)
{
    const config_domains_t *m = item;
    if (!*m->domains) {
        config_error(err, errsize, "[domains %s] domains: missing", m->name);
        return -1;
    }
    for (const char *p = m->domains; *p;) {
        size_t n = strcspn(p, " \t");
        if (n) {
            if (!config_domain_valid(p, n)) {
                config_error(err, errsize, "[domains %s] domains: '%.*s' is not a lowercase domain name or *",
                             m->name, (int)(n > 80 ? 80 : n), p);
                return -1;
            }
            const config_domains_t *other = config_domains_find(cfg, p, n, true);
            if (other && other != m) {
                config_error(err, errsize, "[domains %s] domains: '%.*s' is also in [domains %s]", m->name,
                             (int)(n > 80 ? 80 : n), p, other->name);
                return -1;
            }
        }
        p += n;
        p += strspn(p, " \t");
    }
    if (strcmp(m->action, "delete") && strcmp(m->action, "forward") && strcmp(m->action, "forward_delete") &&
        strcmp(m->action, "none")) {
        config_error(err, errsize, "[domains %s] action: '%s' is not one of delete forward forward_delete none",
                     m->name, m->action);
        return -1;
    }
    if (strcmp(m->action, "none") != 0 && !*m->profile) {
        config_error(err, errsize, "[domains %s] profile: missing (the account profile that reaches these mailboxes)",
                     m->name);
        return -1;
    }
    if (strlen(m->profile) > CONFIG_PROFILE_MAX) {
        config_error(err, errsize, "[domains %s] profile: longer than %d characters", m->name, CONFIG_PROFILE_MAX);
        return -1;
    }
    return 0;
}

/* config_profile_check - a [profile NAME] section: its type and what that type needs. */
static int config_profile_check(const void *item, const config_t *cfg, char *err, size_t errsize)
{
    (void)cfg;
    const config_profile_t *p = item;
    bool imap = !strcmp(p->type, "imap"), graph = !strcmp(p->type, "graph");
    if (!imap && !graph) {
        config_error(err, errsize, "[profile %s] type: %s", p->name,
                     *p->type ? "not one of imap graph" : "missing (imap or graph)");
        return -1;
    }
    if (imap && strncmp(p->url, "imap://", 7) && strncmp(p->url, "imaps://", 8)) {
        config_error(err, errsize, "[profile %s] url: %s", p->name,
                     *p->url ? "not an imap:// or imaps:// URL" : "missing (imaps://HOST or imap://HOST)");
        return -1;
    }
    if (graph && *p->url && strncmp(p->url, "https://", 8) && strncmp(p->url, "http://", 7)) {
        config_error(err, errsize, "[profile %s] url: not an http(s):// URL", p->name);
        return -1;
    }
    if (imap && (!*p->username || !*p->password_file)) {
        config_error(err, errsize, "[profile %s] %s: missing (the admin account)", p->name,
                     *p->username ? "password_file" : "username");
        return -1;
    }
    if (imap && strcmp(p->login, "master") && strcmp(p->login, "authzid") && strcmp(p->login, "direct")) {
        config_error(err, errsize, "[profile %s] login: '%s' is not one of master authzid direct", p->name, p->login);
        return -1;
    }
    if (graph && (!*p->tenant || !*p->client_id || !*p->secret_file)) {
        config_error(err, errsize, "[profile %s] %s: missing", p->name,
                     !*p->tenant ? "tenant" : !*p->client_id ? "client_id" : "secret_file");
        return -1;
    }
    if (strcmp(p->delete_mode, "quarantine") && strcmp(p->delete_mode, "permanent")) {
        config_error(err, errsize, "[profile %s] delete: '%s' is not one of quarantine permanent", p->name,
                     p->delete_mode);
        return -1;
    }
    if (*p->smtp_url && strncmp(p->smtp_url, "smtp://", 7) && strncmp(p->smtp_url, "smtps://", 8)) {
        config_error(err, errsize, "[profile %s] smtp_url: not an smtp:// or smtps:// URL", p->name);
        return -1;
    }
    if (*p->forward_to && !strchr(p->forward_to, '@')) {
        config_error(err, errsize, "[profile %s] forward_to: '%s' is not an address", p->name, p->forward_to);
        return -1;
    }
    return 0;
}

const config_profile_t *config_profile_find(const config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nprofiles; i++)
        if (!strcmp(cfg->profiles[i].name, name))
            return &cfg->profiles[i];
    return NULL;
}

const config_domains_t *config_domains_find(const config_t *cfg, const char *domain, size_t len, bool exact)
{
    const config_domains_t *wildcard = NULL;
    /* the longest suffix first: the domain itself, then each parent */
    for (const char *d = domain; d && d < domain + len;) {
        size_t dlen = len - (size_t)(d - domain);
        for (size_t i = 0; i < cfg->ndomains; i++) {
            const config_domains_t *m = &cfg->domains[i];
            for (const char *p = m->domains; *p;) {
                size_t n = strcspn(p, " \t");
                if (n == dlen && memcmp(p, d, n) == 0)
                    return m;
                if (n == 1 && *p == '*' && !wildcard)
                    wildcard = m;
                p += n;
                p += strspn(p, " \t");
            }
        }
        if (exact)
            return NULL;
        d = memchr(d, '.', dlen);
        if (d)
            d++;
    }
    return exact ? NULL : wildcard;
}

int config_set(config_t *cfg, const char *section, const char *key, const char *value, char *err, size_t errsize)
{
    const char *name;
    const config_kind_t *kind = config_kind_of(section, strlen(section), &name);
    if (kind)
        return config_set_named(cfg, kind, section, name, key, value, err, errsize);
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
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_KINDS); i++)
        config_named_free(&CONFIG_KINDS[i], cfg);
    free(cfg->path);
    free(cfg);
    *cfgp = NULL;
}

/* The reader wrapper counts lines so every error can name its line. It also catches what
 * inih cannot report itself: a line too long for inih's buffer (inih would parse its pieces as
 * separate lines) and a section header naming an unknown section (inih calls the handler only
 * for keys, so an empty unknown section would pass and a non-empty one be blamed on its first
 * key's line). */
typedef struct {
    FILE *file;
    int line;
    int max_line;  /* longest line inih can take, terminator excluded */
    int long_line; /* first line longer than that, or 0 */
    bool prev_key; /* a key was seen since the last section header (inih's continuation rule) */
    config_t *cfg;
    size_t before[UTIL_ARRAY_LEN(CONFIG_KINDS)]; /* items of each named kind that existed before this file */
    char err[384];
    int err_line; /* line of the first error in err, or 0 */
} config_parse_t;

/* config_check_section - record an error if line is a section header naming no known section. */
static void config_check_section(config_parse_t *p, const char *line)
{
    if (p->line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3; /* a UTF-8 byte order mark, which inih skips too */
    const char *s = line;
    while (*s && isspace((unsigned char)*s))
        s++;
    if (!*s || strchr(INI_START_COMMENT_PREFIXES, *s))
        return; /* blank or comment */
    if (*s != '[' || (s > line && p->prev_key)) {
        /* a key, or (indented after a key) a continuation line */
        p->prev_key = true;
        return;
    }
    p->prev_key = false;
    const char *end = strchr(s + 1, ']');
    if (!end)
        return; /* inih reports the syntax error */
    size_t n = (size_t)(end - (s + 1));
    const char *name_start;
    const config_kind_t *kind = config_kind_of(s + 1, n, &name_start);
    if (kind) {
        char name[CONFIG_FEED_MAX_NAME + 1];
        size_t nlen = n - (size_t)(name_start - (s + 1));
        if (!config_feed_name_valid(name_start, nlen)) {
            if (!p->err_line) {
                config_error(p->err, sizeof(p->err), "bad %s name in [%.*s]: 1 to %d of A-Z a-z 0-9 _ . -",
                             kind->kind, (int)(n > 64 ? 64 : n), s + 1, CONFIG_FEED_MAX_NAME);
                p->err_line = p->line;
            }
            return;
        }
        memcpy(name, name_start, nlen);
        name[nlen] = '\0';
        if (config_named_find(kind, p->cfg, name)) {
            if (!p->err_line) {
                config_error(p->err, sizeof(p->err), "section [%s %s] appears twice", kind->kind, name);
                p->err_line = p->line;
            }
            return;
        }
        /* a section with no keys still exists */
        char *item = config_named_add(kind, p->cfg, name);
        *(int *)(item + kind->line_offset) = p->line;
        return;
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_TABLE); i++)
        if (strlen(CONFIG_TABLE[i].section) == n && memcmp(CONFIG_TABLE[i].section, s + 1, n) == 0)
            return;
    if (!p->err_line) {
        config_error(p->err, sizeof(p->err), "unknown section [%.*s]", (int)(n > 64 ? 64 : n), s + 1);
        p->err_line = p->line;
    }
}

static char *config_read_line(char *str, int num, void *stream)
{
    config_parse_t *p = stream;
    char *s = fgets(str, num, p->file);
    if (!s)
        return NULL;
    p->line++;
    p->max_line = num - 2;
    size_t len = strlen(s);
    if (len == (size_t)num - 1 && s[len - 1] != '\n') {
        /* the buffer is full: the line goes on, unless only the '\n' of a "\r\n" is left */
        int c = fgetc(p->file);
        if (!(s[len - 1] == '\r' && c == '\n')) {
            if (!p->long_line)
                p->long_line = p->line;
            while (c != EOF && c != '\n') /* skip the rest of the over-long line */
                c = fgetc(p->file);
        }
    }
    config_check_section(p, s);
    return s;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
    config_parse_t *p = user;
    if (p->err_line)
        return 1; /* report the first error only */
    if (!name || !value) {
        config_error(p->err, sizeof(p->err), "expected key = value");
        p->err_line = p->line;
        return 0;
    }
    if (config_set(p->cfg, section, name, value, p->err, sizeof(p->err)) < 0) {
        p->err_line = p->line;
        return 0;
    }
    return 1;
}

int config_load(config_t *cfg, const char *path, char *err, size_t errsize)
{
    config_parse_t p = {.cfg = cfg};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(CONFIG_KINDS); i++)
        p.before[i] = *config_kind_count(&CONFIG_KINDS[i], cfg);
    p.file = fopen(path, "r");
    if (!p.file) {
        config_error(err, errsize, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(config_read_line, &p, config_handler, &p);
    int read_error = ferror(p.file) ? (errno ? errno : EIO) : 0; /* e.g. EISDIR for a directory */
    fclose(p.file);
    if (read_error) {
        config_error(err, errsize, "%s: cannot read: %s", path, strerror(read_error));
        return -1;
    }
    if (rc < 0) {
        config_error(err, errsize, "%s: cannot parse (out of memory)", path);
        return -1;
    }
    /* Report the error on the earliest line. rc is inih's first failing line: a syntax error,
     * or the handler's error when it equals err_line. On one line, a too-long line explains
     * whatever else went wrong there. */
    int syntax_line = rc > 0 && rc != p.err_line ? rc : 0;
    int first = 0;
    if (p.long_line)
        first = p.long_line;
    if (p.err_line && (!first || p.err_line < first))
        first = p.err_line;
    if (syntax_line && (!first || syntax_line < first))
        first = syntax_line;
    if (first && first == p.long_line) {
        config_error(err, errsize, "%s:%d: line longer than %d characters", path, first, p.max_line);
        return -1;
    }
    if (first && first == p.err_line) {
        config_error(err, errsize, "%s:%d: %s", path, first, p.err);
        return -1;
    }
    if (first) {
        config_error(err, errsize, "%s:%d: syntax error (expected [section] or key = value)", path, first);
        return -1;
    }
    for (size_t k = 0; k < UTIL_ARRAY_LEN(CONFIG_KINDS); k++) {
        const config_kind_t *kind = &CONFIG_KINDS[k];
        char *items = *config_kind_items(kind, cfg);
        for (size_t i = p.before[k]; i < *config_kind_count(kind, cfg); i++) {
            char why[320];
            char *item = items + i * kind->item_size;
            if (kind->check(item, cfg, why, sizeof(why)) < 0) {
                config_error(err, errsize, "%s:%d: %s", path, *(int *)(item + kind->line_offset), why);
                return -1;
            }
        }
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
        /* "key =" for an empty default: no trailing blank for an editor to strip */
        fprintf(out, "\n%s =%s%s\n", k->key, *k->def ? " " : "", k->def);
    }
    static const char *const intro[] = {
        "# [feed NAME] - one section per threat feed the poller reads; as many as needed.\n"
        "# Each key below shows its default; type and url are required (docs/feeds.md).\n",
        "# [domains NAME] - which recipient domains are remediated, how, and through which account\n"
        "# profile; one section per group of domains. A recipient whose domain (or a parent of it)\n"
        "# no mapping names falls to the mapping of '*', else is not remediated (logged).\n",
        "# [profile NAME] - one way into mailboxes, named by [domains] profile; as many as needed\n"
        "# (docs/remediation.md). Each key below shows its default.\n",
    };
    _Static_assert(UTIL_ARRAY_LEN(intro) == UTIL_ARRAY_LEN(CONFIG_KINDS), "one introduction per kind");
    for (size_t n = 0; n < UTIL_ARRAY_LEN(CONFIG_KINDS); n++) {
        const config_kind_t *kind = &CONFIG_KINDS[n];
        fprintf(out, "\n%s#\n# [%s NAME]\n", intro[n], kind->kind);
        for (size_t i = 0; i < kind->nkeys; i++) {
            const config_key_t *k = &kind->keys[i];
            fputs("# # ", out);
            for (const char *d = k->doc; *d; d++) {
                fputc(*d, out);
                if (*d == '\n')
                    fputs("# # ", out);
            }
            fprintf(out, "\n# %s =%s%s\n", k->key, *k->def ? " " : "", k->def);
        }
    }
}
