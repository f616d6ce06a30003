/*
 * strbuf.c - growable byte buffer with a hard maximum; see strbuf.h.
 */
#include "strbuf.h"

#include "text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void strbuf_init(strbuf_t *sb, size_t max)
{
    memset(sb, 0, sizeof(*sb));
    sb->max = max ? max : SIZE_MAX / 2;
}

void strbuf_release(strbuf_t *sb)
{
    free(sb->data);
    size_t max = sb->max;
    memset(sb, 0, sizeof(*sb));
    sb->max = max;
}

void strbuf_reset(strbuf_t *sb)
{
    sb->len = 0;
    sb->overflow = false;
    if (sb->data)
        sb->data[0] = '\0';
}

/* strbuf_reserve - make room for n more bytes plus a NUL; -1 past the maximum. */
static int strbuf_reserve(strbuf_t *sb, size_t n)
{
    if (n > sb->max || sb->len > sb->max - n) {
        sb->overflow = true;
        return -1;
    }
    size_t need = sb->len + n + 1;
    if (need > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        while (cap < need)
            cap *= 2;
        sb->data = util_xrealloc(sb->data, cap);
        sb->cap = cap;
    }
    return 0;
}

int strbuf_append(strbuf_t *sb, const void *data, size_t n)
{
    if (strbuf_reserve(sb, n) < 0)
        return -1;
    if (n)
        memcpy(sb->data + sb->len, data, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
    return 0;
}

int strbuf_appends(strbuf_t *sb, const char *s)
{
    return strbuf_append(sb, s, strlen(s));
}

int strbuf_append_escaped(strbuf_t *sb, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     strchr("-._~", c) || (keep && strchr(keep, c));
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (plain ? strbuf_append(sb, s, 1) < 0 : strbuf_append(sb, esc, 3) < 0)
            return -1;
    }
    return 0;
}

int strbuf_append_int(strbuf_t *sb, int64_t v)
{
    char digits[24];
    return strbuf_append(sb, digits, util_put_int(digits, v));
}

int strbuf_appendv(strbuf_t *sb, const char *const *parts, size_t n)
{
    size_t before = sb->len;
    for (size_t i = 0; i < n; i++) {
        if (strbuf_appends(sb, parts[i]) < 0) {
            /* all or nothing, as every append (overflow stays set) */
            sb->len = before;
            if (sb->data)
                sb->data[before] = '\0';
            return -1;
        }
    }
    return 0;
}

int strbuf_vappendf(strbuf_t *sb, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0 || strbuf_reserve(sb, (size_t)n) < 0)
        return -1;
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
    return 0;
}

int strbuf_appendf(strbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vappendf(sb, fmt, ap);
    va_end(ap);
    return rc;
}

int strbuf_append_json_string(strbuf_t *sb, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t start_len = sb->len;
    int rc = strbuf_append(sb, "\"", 1);
    for (size_t i = 0; i < n && rc == 0;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = strbuf_append(sb, esc, 2);
            i++;
        } else if (c < 0x20) {
            rc = strbuf_appendf(sb, "\\u%04x", c);
            i++;
        } else {
            size_t len = text_utf8_decode(p + i, n - i, &(uint32_t){0});
            if (len == 0) {
                rc = strbuf_append(sb, "\xEF\xBF\xBD", 3);
                i++;
            } else {
                rc = strbuf_append(sb, p + i, len);
                i += len;
            }
        }
    }
    if (rc == 0)
        rc = strbuf_append(sb, "\"", 1);
    if (rc < 0) {
        sb->len = start_len;
        if (sb->data)
            sb->data[sb->len] = '\0';
    }
    return rc;
}

char *strbuf_detach(strbuf_t *sb)
{
    char *data = sb->data ? sb->data : util_xstrdup("");
    size_t max = sb->max;
    memset(sb, 0, sizeof(*sb));
    sb->max = max;
    return data;
}
