/*
 * ingest.c - parse a delivered message and queue it in the index; see ingest.h.
 */
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

ingest_status_t ingest_parse(const char *data, size_t len, const message_context_t *ctx, message_t *msg,
                             char *err, size_t errsize)
{
    return message_parse(data, len, ctx, msg, err, errsize) == 0 ? INGEST_OK : INGEST_SKIPPED;
}

ingest_status_t ingest_add(mindex_t *index, const message_t *msg, const mindex_delivery_t *delivery, int64_t *mid,
                           char *err, size_t errsize)
{
    mindex_delivery_t d = *delivery;
    const char **found = NULL;
    if (d.n_rcpts == 0) {
        /* the delivery headers when present, else the header recipients (mindex_add keeps
         * each address once) */
        size_t n = 0;
        found = util_xcalloc(msg->delivered_to.n + msg->to.n + msg->cc.n + 1, sizeof(*found));
        if (msg->delivered_to.n) {
            for (size_t i = 0; i < msg->delivered_to.n; i++)
                found[n++] = msg->delivered_to.v[i];
        } else {
            for (size_t i = 0; i < msg->to.n; i++)
                found[n++] = msg->to.v[i];
            for (size_t i = 0; i < msg->cc.n; i++)
                found[n++] = msg->cc.v[i];
        }
        d.rcpts = found;
        d.n_rcpts = n;
    }
    if (d.n_rcpts == 0) {
        free(found);
        snprintf(err, errsize, "no recipient: give --rcpt, or a message with Delivered-To or To");
        return INGEST_SKIPPED;
    }
    int rc = mindex_add(index, msg, &d, mid, NULL);
    free(found);
    if (rc == 0)
        return INGEST_OK;
    snprintf(err, errsize, "%s", mindex_errstr(index));
    return rc == MINDEX_INVALID ? INGEST_SKIPPED : INGEST_FAILED;
}
