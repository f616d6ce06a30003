/*
 * backend.c - helpers every mailbox back-end shares (backend.h).
 */
#include "backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
