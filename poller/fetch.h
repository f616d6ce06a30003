/*
 * fetch.h - one feed's network side, on a worker thread, so the poller's loop never waits on
 * the network.
 *
 * The poller hands a fetch_job_t to the feed's worker (fetch_start); the worker performs the
 * requests of one page for the feed's type, parses the answer (feed_parse.h) and hands the job
 * back, which makes the fetch_sock() readable (fetch_finish). One job at a time per worker.
 *
 *   retro      registers the device when there is no token (or the token expired: 403
 *              {"message": "Token Expired"} -> register -> retry once), then
 *              GET {region}/v1/retro/device/{id}?since=...&page_size=N
 *   taxii21    GET {collection}objects/?added_after=...&limit=N&match[type]=indicator[&next=T]
 *   misp       POST {base}/attributes/restSearch {"type": ["url", "domain", "hostname"],
 *              "to_ids": 1, "timestamp": T, "limit": N, "page": P, "returnFormat": "json"}
 *   urlhaus,   GET the URL, or read the local file, whole (up to max_size)
 *   openphish
 *
 * The job also carries the log lines the seed's `ecs` log shows for these steps (the poller
 * writes them and sends them to the logger). Credentials are read from the feed's
 * credentials_file for each job (a rotated secret is picked up) and never appear in a line.
 */
#ifndef CLAWBACK_FETCH_H
#define CLAWBACK_FETCH_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "feed_parse.h"
#include "log.h"

typedef struct {
    log_level_t level;
    char *message;
} fetch_line_t;

typedef struct {
    /* in: filled by the poller; the worker reads them */
    const config_feed_t *feed;
    char *since;        /* retro: ISO-8601 UTC; taxii21: added_after (or NULL); misp: epoch s */
    char *next;         /* taxii21: the server's paging token, or NULL */
    int64_t page_number; /* misp: 1-based */
    bool first_page;    /* the first request of a poll (logs "Start polling") */
    char *token;        /* retro: the device token held in Redis, or NULL */
    char *region_uri;   /* retro: where to poll, or NULL */
    /* out: filled by the worker */
    int status;               /* 0: page filled; -1: failed, see error */
    char error[512];          /* why (no secrets) */
    bool retryable;           /* network, timeout, 5xx, 429 */
    int64_t retry_after_s;    /* the server's Retry-After, -1 when none */
    feed_page_t page;
    char *date_added_last;    /* taxii21: X-TAXII-Date-Added-Last, or NULL */
    bool registered;          /* retro: token and region_uri below are new */
    char *new_token, *new_region_uri;
    fetch_line_t *lines;
    size_t nlines;
} fetch_job_t;

typedef struct fetch fetch_t;

/* fetch_new - start a worker for feed (not owned; must outlive the worker). Caller owns it. */
fetch_t *fetch_new(const config_feed_t *feed);
/* fetch_destroy - cancel a request in progress, stop the worker and free it (and a job it still
 * held). Accepts NULL, clears the pointer. */
void fetch_destroy(fetch_t **self);
/* fetch_sock - readable when a job is done (for a zloop reader). */
zsock_t *fetch_sock(fetch_t *self);
/* fetch_busy - whether a job is out. */
bool fetch_busy(const fetch_t *self);
/* fetch_start - hand *job to the worker (taken, *job cleared). 0, or -1 when busy. */
int fetch_start(fetch_t *self, fetch_job_t **job);
/* fetch_finish - the finished job (caller owns it), or NULL when none is ready. */
fetch_job_t *fetch_finish(fetch_t *self);

/* fetch_job_new - an empty job for feed. Caller owns it. */
fetch_job_t *fetch_job_new(const config_feed_t *feed);
/* fetch_job_destroy - free a job and everything it holds. Accepts NULL, clears the pointer. */
void fetch_job_destroy(fetch_job_t **job);

#endif
