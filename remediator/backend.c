/*
 * backend.c - helpers every mailbox back-end shares (backend.h).
 */
#include "backend.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define BACKEND_MAX_SECRET 4096 /* a password or secret file */

int backend_read_secret(const char *profile, const char *key, const char *path, char **out, char *err,
                        size_t errsize)
{
    char *data = NULL, why[256];
    size_t len = 0;
    if (util_read_file(path, BACKEND_MAX_SECRET, &data, &len, why, sizeof(why)) < 0) {
        snprintf(err, errsize, "[profile %s] %s: %s", profile, key, why);
        return -1;
    }
    size_t n = strcspn(data, "\r\n");
    if (n == 0 || memchr(data, '\0', n)) {
        OPENSSL_cleanse(data, len);
        free(data);
        snprintf(err, errsize, "[profile %s] %s %s: the first line is empty", profile, key, path);
        return -1;
    }
    *out = util_xstrndup(data, n);
    OPENSSL_cleanse(data, len);
    free(data);
    return 0;
}

void backend_free_secret(char **secret)
{
    if (secret && *secret) {
        OPENSSL_cleanse(*secret, strlen(*secret));
        free(*secret);
        *secret = NULL;
    }
}

backend_status_t backend_outcome_set(backend_outcome_t *out, backend_status_t status, int64_t retry_after_ms,
                                     const char *fmt, ...)
{
    out->status = status;
    out->retry_after_ms = status == BACKEND_RETRY ? retry_after_ms : -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
    va_end(ap);
    return status;
}
