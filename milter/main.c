/*
 * clawback-milter - index every message the MTA accepts, live, at the gateway.
 *
 * Postfix (or Sendmail) hands each message over the milter protocol (milter.h); it is written
 * to the local spool (spool.h) and accepted at once; one indexer thread (indexer.h) puts the
 * spool into the 7-day index through the same path as `clawback ingest`, whenever Redis takes
 * writes. Design, spool and operation: docs/milter.md.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "indexer.h"
#include "log.h"
#include "message.h"
#include "milter.h"
#include "spool.h"

#define MILTER_PROGRAM "clawback-milter"
#define MILTER_STOP_WAIT_MS 10000 /* messages being received may finish this long at a stop */

typedef struct {
    spool_t *spool;
    indexer_t *indexer;
    bool in_use; /* a late callback may still hold the spool: do not free it */
} milter_state_t;

/* on_watch - stop the daemon when libmilter's loop ended on its own. */
static int on_watch(daemon_t *daemon, void *arg)
{
    (void)daemon;
    (void)arg;
    if (!milter_exited())
        return 0;
    log_critical("milter: libmilter stopped serving; stopping");
    return -1;
}

static int milter_on_start(daemon_t *daemon, void *arg)
{
    milter_state_t *st = arg;
    const config_t *cfg = daemon_config(daemon);
    char err[512];
    message_library_init();
    spool_sync_t sync;
    if (spool_sync_parse(cfg->milter_sync, &sync) != 0) {
        log_critical("milter: [milter] sync: '%s' is not one of always everysec no", cfg->milter_sync);
        return -1;
    }
    char *end = NULL;
    long socket_mode = strtol(cfg->milter_socket_mode, &end, 8);
    if (!*cfg->milter_socket_mode || *end || socket_mode < 0 || socket_mode > 0777) {
        log_critical("milter: [milter] socket_mode: '%s' is not permissions in octal (0000 to 0777)",
                     cfg->milter_socket_mode);
        return -1;
    }
    st->spool = spool_open(cfg->milter_spool_dir, sync, err, sizeof(err));
    st->indexer = st->spool ? indexer_new(cfg, st->spool, err, sizeof(err)) : NULL;
    if (!st->indexer || indexer_start(st->indexer) != 0) {
        log_critical("milter: %s", st->indexer ? "cannot start the indexer thread" : err);
        return -1;
    }
    if (milter_start(cfg->milter_listen, (mode_t)socket_mode, st->spool, st->indexer, cfg->milter_max_message_size,
                     err, sizeof(err)) != 0) {
        log_critical("milter: %s", err);
        return -1;
    }
    log_info("milter: listening on %s, spool %s", cfg->milter_listen, cfg->milter_spool_dir);
    return daemon_add_timer(daemon, 200, on_watch, st) < 0 ? -1 : 0;
}

static void milter_on_stop(daemon_t *daemon, void *arg)
{
    (void)daemon;
    milter_state_t *st = arg;
    st->in_use = !milter_stop(MILTER_STOP_WAIT_MS);
    if (st->indexer)
        indexer_stop(st->indexer);
}

int main(int argc, char **argv)
{
    static const daemon_spec_t spec = {
        .program = MILTER_PROGRAM,
        .summary = "Index every message the MTA accepts (a milter for Postfix or Sendmail).",
        .start = milter_on_start,
        .stop = milter_on_stop,
        .redis_optional = true,
    };
    milter_state_t st = {0};
    int rc = daemon_main(argc, argv, &spec, &st);
    milter_stop(0); /* a failed start */
    if (!st.in_use) {
        indexer_destroy(&st.indexer);
        spool_close(&st.spool);
    }
    return rc;
}
