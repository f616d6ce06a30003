/*
 * policy.c - dispositions, allowlist and domain mapping; see policy.h.
 */
#include "policy.h"

#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"
#include "url_canon.h"
#include "util.h"

#define POLICY_MAX_FILE (64 * 1024 * 1024)

struct policy {
    const config_t *cfg;
    bool malicious, suspicious;
    zhashx_t *urls;    /* canonical URL -> "" */
    zhashx_t *domains; /* lowercase domain -> "" */
};

/* policy_add_entry - add one allowlist entry (a URL with a scheme, or a domain); 0 or -1. */
static int policy_add_entry(policy_t *self, const char *entry, size_t len, char *why, size_t whysize)
{
    if (memmem(entry, len, "://", 3)) {
        strbuf_t canon;
        strbuf_init(&canon, 0);
        url_canon_status_t st = url_canon(entry, len, &canon);
        if (st != URL_CANON_OK) {
            snprintf(why, whysize, "'%.*s': %s", (int)(len > 200 ? 200 : len), entry, url_canon_strerror(st));
            strbuf_release(&canon);
            return -1;
        }
        zhashx_update(self->urls, canon.data, "");
        strbuf_release(&canon);
        return 0;
    }
    while (len && (*entry == '.' || *entry == '*')) /* "*.example.com", ".example.com" */
        entry++, len--;
    while (len && entry[len - 1] == '.')
        len--;
    if (len == 0 || len > 253) {
        snprintf(why, whysize, "an empty or over-long domain");
        return -1;
    }
    char domain[254];
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)entry[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || c >= 0x80)) {
            snprintf(why, whysize, "'%.*s' is neither a URL (with a scheme) nor a domain", (int)(len > 200 ? 200 : len),
                     entry);
            return -1;
        }
        domain[i] = (char)tolower(c);
    }
    domain[len] = '\0';
    zhashx_update(self->domains, domain, "");
    return 0;
}

/* policy_add_list - add the whitespace-separated entries of text. */
static int policy_add_list(policy_t *self, const char *text, const char *origin, char *err, size_t errsize)
{
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, " \t");
        char why[320];
        if (n && policy_add_entry(self, p, n, why, sizeof(why)) < 0) {
            snprintf(err, errsize, "%s: %s", origin, why);
            return -1;
        }
        p += n;
        p += strspn(p, " \t");
    }
    return 0;
}

/* policy_add_file - add the entries of the allowlist file, one per line. */
static int policy_add_file(policy_t *self, const char *path, char *err, size_t errsize)
{
    char *data;
    size_t len;
    char why[320];
    if (util_read_file(path, POLICY_MAX_FILE, &data, &len, why, sizeof(why)) != 0) {
        snprintf(err, errsize, "[enricher] allowlist_file: %s", why);
        return -1;
    }
    int line = 0, rc = 0;
    for (char *p = data, *end = data + len; p < end && rc == 0;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        char *hash = memchr(p, '#', n);
        size_t used = hash ? (size_t)(hash - p) : n;
        while (used && isspace((unsigned char)*p))
            p++, used--, n--;
        while (used && isspace((unsigned char)p[used - 1]))
            used--;
        if (used && policy_add_entry(self, p, used, why, sizeof(why)) < 0) {
            snprintf(err, errsize, "%s:%d: %s", path, line, why);
            rc = -1;
        }
        p += n + 1;
    }
    free(data);
    return rc;
}

policy_t *policy_new(const config_t *cfg, char *err, size_t errsize)
{
    policy_t *self = util_xcalloc(1, sizeof(*self));
    self->cfg = cfg;
    self->urls = zhashx_new();
    self->domains = zhashx_new();
    for (const char *p = cfg->enricher_act_on; *p;) {
        size_t n = strcspn(p, " \t,");
        if (n == 9 && !memcmp(p, "malicious", 9))
            self->malicious = true;
        else if (n == 10 && !memcmp(p, "suspicious", 10))
            self->suspicious = true;
        else if (n) {
            snprintf(err, errsize, "[enricher] act_on: '%.*s' is not malicious or suspicious", (int)(n > 40 ? 40 : n), p);
            policy_destroy(&self);
            return NULL;
        }
        p += n;
        p += strspn(p, " \t,");
    }
    if (policy_add_list(self, cfg->enricher_allow_urls, "[enricher] allow_urls", err, errsize) < 0 ||
        policy_add_list(self, cfg->enricher_allow_domains, "[enricher] allow_domains", err, errsize) < 0 ||
        (*cfg->enricher_allowlist_file && policy_add_file(self, cfg->enricher_allowlist_file, err, errsize) < 0)) {
        policy_destroy(&self);
        return NULL;
    }
    return self;
}

void policy_destroy(policy_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    policy_t *self = *selfp;
    zhashx_destroy(&self->urls);
    zhashx_destroy(&self->domains);
    free(self);
    *selfp = NULL;
}

bool policy_acts_on(const policy_t *self, const char *disposition)
{
    if (!strcmp(disposition, "malicious"))
        return self->malicious;
    if (!strcmp(disposition, "suspicious"))
        return self->suspicious;
    return false;
}

/* policy_domain_listed - host (len bytes) or one of its parents on the domain list. */
static bool policy_domain_listed(const policy_t *self, const char *host, size_t len, char *why, size_t whysize)
{
    char buf[256];
    if (len == 0 || len >= sizeof(buf))
        return false;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower((unsigned char)host[i]);
    buf[len] = '\0';
    for (char *d = buf; d;) {
        if (zhashx_lookup(self->domains, d)) {
            snprintf(why, whysize, "domain %s", d);
            return true;
        }
        d = strchr(d, '.');
        if (d)
            d++;
    }
    return false;
}

bool policy_allowlisted(const policy_t *self, const char *type, const char *value, char *why, size_t whysize)
{
    if (!strcmp(type, "domain"))
        return policy_domain_listed(self, value, strlen(value), why, whysize);
    if (zhashx_lookup(self->urls, value)) {
        snprintf(why, whysize, "URL %s", value);
        return true;
    }
    size_t hl;
    const char *host = url_canon_host(value, &hl);
    if (host && hl && host[0] == '[')
        return false; /* an IPv6 literal has no parent domains */
    return host && policy_domain_listed(self, host, hl, why, whysize);
}

const config_domains_t *policy_for_recipient(const policy_t *self, const char *rcpt)
{
    const char *at = strrchr(rcpt, '@');
    const char *domain = at ? at + 1 : "";
    char buf[256];
    size_t len = strlen(domain);
    if (len == 0 || len >= sizeof(buf))
        return NULL;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower((unsigned char)domain[i]);
    buf[len] = '\0';
    return config_domains_find(self->cfg, buf, len, false);
}

size_t policy_allowlist_size(const policy_t *self)
{
    return zhashx_size(self->urls) + zhashx_size(self->domains);
}
