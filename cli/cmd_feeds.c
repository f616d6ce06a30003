/*
 * cmd_feeds.c - `clawback feeds`: each configured feed's poller state (holder, last poll,
 * cursor, verdicts handed over, last error), read from Redis (feed_status.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "feed_status.h"
#include "strbuf.h"
#include "util.h"

/* feeds_age - "12s ago", "3m ago", "never" for a wall-clock time in ms. */
static void feeds_age(int64_t ms, int64_t now, char *out, size_t size)
{
    if (!ms) {
        snprintf(out, size, "never");
        return;
    }
    int64_t s = (now - ms) / 1000;
    const char *when = s < 0 ? "from now" : "ago";
    if (s < 0)
        s = -s;
    if (s < 120)
        snprintf(out, size, "%llds %s", (long long)s, when);
    else if (s < 7200)
        snprintf(out, size, "%lldm %s", (long long)(s / 60), when);
    else
        snprintf(out, size, "%lldh %s", (long long)(s / 3600), when);
}

int cli_cmd_feeds(cli_t *cli, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            return CLI_USAGE;
    }
    config_t *cfg = cli_config(cli);
    if (!cfg)
        return CLI_FAILURE;
    redis_conn_t *redis = cli_redis(cfg);
    if (!redis) {
        config_destroy(&cfg);
        return CLI_FAILURE;
    }
    if (!cfg->nfeeds)
        fprintf(stderr, "clawback: feeds: the configuration has no [feed NAME] section\n");
    int rc = CLI_OK;
    int64_t now = util_now_ms();
    strbuf_t out;
    strbuf_init(&out, 0);
    (void)strbuf_appends(&out, "[");
    if (!json)
        printf("%-16s %-9s %-4s %-14s %-14s %-14s %9s %5s %-26s %s\n", "FEED", "TYPE", "HELD", "LAST_POLL",
               "LAST_SUCCESS", "NEXT_POLL", "VERDICTS", "FAILS", "CURSOR", "LAST_ERROR");
    for (size_t i = 0; i < cfg->nfeeds; i++) {
        const config_feed_t *f = &cfg->feeds[i];
        feed_status_t st;
        if (feed_status_read(redis, f->name, &st) < 0) {
            fprintf(stderr, "clawback: feeds: %s\n", redis_conn_errstr(redis));
            rc = CLI_FAILURE;
            break;
        }
        if (json) {
            (void)strbuf_appendf(&out, "%s{\"feed\":", i ? "," : "");
            (void)strbuf_append_json_string(&out, f->name, strlen(f->name));
            (void)strbuf_appendf(&out, ",\"type\":\"%s\",\"enabled\":%s,\"holder\":", f->type,
                                 f->enabled ? "true" : "false");
            (void)strbuf_append_json_string(&out, st.holder, strlen(st.holder));
            (void)strbuf_appendf(&out, ",\"lease_ttl_ms\":%lld,\"cursor\":", (long long)st.lease_ttl_ms);
            (void)strbuf_append_json_string(&out, st.cursor, strlen(st.cursor));
            (void)strbuf_appendf(&out,
                                 ",\"last_poll_ms\":%lld,\"last_success_ms\":%lld,\"next_poll_ms\":%lld,"
                                 "\"last_error_ms\":%lld,\"failures\":%lld,\"verdicts\":%lld,\"skipped\":%lld,"
                                 "\"withdrawn\":%lld,\"seen\":%lld,\"last_error\":",
                                 (long long)st.last_poll_ms, (long long)st.last_success_ms,
                                 (long long)st.next_poll_ms, (long long)st.last_error_ms, (long long)st.failures,
                                 (long long)st.verdicts, (long long)st.skipped, (long long)st.withdrawn,
                                 (long long)st.seen);
            (void)strbuf_append_json_string(&out, st.last_error, strlen(st.last_error));
            (void)strbuf_appends(&out, "}");
        } else {
            char poll[32], success[32], next[32];
            feeds_age(st.last_poll_ms, now, poll, sizeof(poll));
            feeds_age(st.last_success_ms, now, success, sizeof(success));
            feeds_age(st.next_poll_ms, now, next, sizeof(next));
            /* the last error only while the feed is failing */
            printf("%-16s %-9s %-4s %-14s %-14s %-14s %9lld %5lld %-26s %s\n", f->name, f->type,
                   !f->enabled ? "off" : st.holder[0] ? "yes" : "no", poll, success, next, (long long)st.verdicts,
                   (long long)st.failures, st.cursor[0] ? st.cursor : "-", st.failures ? st.last_error : "");
        }
    }
    (void)strbuf_appends(&out, "]\n");
    if (json && rc == CLI_OK)
        fputs(out.data, stdout);
    strbuf_release(&out);
    redis_conn_destroy(&redis);
    config_destroy(&cfg);
    return rc;
}
