/*
 * clawback-enricher - turns a verdict into remediation jobs for the delivered messages that
 * carry its URL (and share their subject): enrich.h.
 */
#include <stdlib.h>

#include "batch.h"
#include "daemon.h"
#include "enrich.h"
#include "log.h"
#include "util.h"

#define ENRICHER_PRUNE_MS 3600000 /* how often old batches leave the cb:batches list */

typedef struct {
    enrich_t *enrich;
} enricher_t;

/* enricher_on_verdict - handle one verdict record. */
static int enricher_on_verdict(bus_t *bus, const bus_delivery_t *delivery, void *state)
{
    enricher_t *e = state;
    return enrich_verdict(e->enrich, bus, delivery);
}

/* enricher_prune - drop batches older than the retention from the cb:batches list (their keys
 * have expired by then). */
static int enricher_prune(daemon_t *daemon, void *arg)
{
    (void)arg;
    const config_t *cfg = daemon_config(daemon);
    char max[32];
    snprintf(max, sizeof(max), "(%lld", (long long)(util_now_ms() - cfg->index_retention_ms));
    redisReply *r = redis_conn_command(daemon_redis(daemon), "ZREMRANGEBYSCORE %s -inf %s", BATCH_INDEX_KEY, max);
    if (r)
        freeReplyObject(r);
    return 0;
}

static int enricher_start(daemon_t *daemon, void *state)
{
    enricher_t *e = state;
    char err[512];
    e->enrich = enrich_new(daemon_config(daemon), daemon_redis(daemon), err, sizeof(err));
    if (!e->enrich) {
        log_critical("clawback-enricher: %s", err);
        return -1;
    }
    enricher_prune(daemon, NULL);
    return daemon_add_timer(daemon, ENRICHER_PRUNE_MS, enricher_prune, NULL) < 0 ? -1 : 0;
}

static void enricher_stop(daemon_t *daemon, void *state)
{
    (void)daemon;
    enrich_destroy(&((enricher_t *)state)->enrich);
}

int main(int argc, char **argv)
{
    static const daemon_input_t inputs[] = {{"verdicts", enricher_on_verdict}};
    static const daemon_spec_t spec = {
        .program = "clawback-enricher",
        .summary = "Finds the delivered messages a verdict concerns and creates remediation jobs.",
        .start = enricher_start,
        .stop = enricher_stop,
        .inputs = inputs,
        .ninputs = 1,
    };
    enricher_t enricher = {0};
    return daemon_main(argc, argv, &spec, &enricher);
}
