/*
 * clawback-poller - turns retrospective verdicts from threat feeds into verdict records.
 *
 * Each [feed NAME] section of the configuration is one feed (feed.h): the seed's retro service,
 * TAXII 2.1, MISP, URLhaus or OpenPhish. Every instance drives every feed whose lease it holds;
 * run several for availability. The verdicts go to the enricher on the "verdicts" edge, the
 * ecs log lines to the logger on the "events" edge.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "feed.h"
#include "log.h"
#include "util.h"

#define POLLER_TICK_MS 100

typedef struct {
    poller_feed_t **feeds;
    size_t nfeeds;
} poller_t;

/* poller_tick - drive every feed. */
static int poller_tick(daemon_t *daemon, void *arg)
{
    (void)daemon;
    poller_t *p = arg;
    for (size_t i = 0; i < p->nfeeds; i++)
        poller_feed_tick(p->feeds[i]);
    return 0;
}

static int poller_start(daemon_t *daemon, void *state)
{
    poller_t *p = state;
    const config_t *cfg = daemon_config(daemon);
    srandom((unsigned)(time(NULL) ^ getpid())); /* backoff jitter */
    p->feeds = util_xcalloc(cfg->nfeeds + 1, sizeof(*p->feeds));
    for (size_t i = 0; i < cfg->nfeeds; i++) {
        p->feeds[p->nfeeds] = poller_feed_new(&cfg->feeds[i], daemon);
        if (!p->feeds[p->nfeeds]) {
            log_critical("ECS: Feed '%s': cannot start its worker", cfg->feeds[i].name);
            return -1;
        }
        p->nfeeds++;
        log_info("ECS: Feed '%s' (%s) configured%s", cfg->feeds[i].name, cfg->feeds[i].type,
                 cfg->feeds[i].enabled ? "" : ", disabled");
    }
    if (!cfg->nfeeds)
        log_warning("ECS: no [feed NAME] section in the configuration: nothing to poll");
    log_info("ECS: Starting URL retrospective polling");
    return daemon_add_timer(daemon, POLLER_TICK_MS, poller_tick, p) < 0 ? -1 : 0;
}

static void poller_stop(daemon_t *daemon, void *state)
{
    (void)daemon;
    poller_t *p = state;
    for (size_t i = 0; i < p->nfeeds; i++)
        poller_feed_destroy(&p->feeds[i]);
    free(p->feeds);
    p->feeds = NULL;
    p->nfeeds = 0;
}

int main(int argc, char **argv)
{
    static const daemon_spec_t spec = {
        .program = "clawback-poller",
        .summary = "Polls retrospective verdict feeds and hands verdicts to the enricher.",
        .start = poller_start,
        .stop = poller_stop,
    };
    poller_t state = {0};
    return daemon_main(argc, argv, &spec, &state);
}
