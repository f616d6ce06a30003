/*
 * cmd_track.c - `clawback track [--json] MID`: one message's tracking page, after the seed
 * gateway's "Message Tracking" view.
 *
 * "Processing Details" starts with the lines of the delivery, made from the index record
 * (direction, sender, recipients, subject, sender IP, Message-ID, queued), all at the delivery
 * time, followed by every line of cb:trk:<MID> (remediation initiated, processed, ...) at its
 * own time; the whole list is sorted by time, stably. "Envelope Header and Summary" gives the
 * Last State (from the message's copies in cb:copies, batch.h) and the record's
 * envelope. Times are local (TZ honoured): a line shows its time of day, and its date too when
 * that is not the delivery's.
 *
 * A message no longer in the index (expired) still shows its tracking lines and Last State;
 * one with neither is "not found" (exit 1). Nothing is written to Redis.
 */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "cli.h"
#include "mindex.h"
#include "strbuf.h"
#include "util.h"

#define TRACK_MAX_TIME_MS 1e14       /* year 5138: a larger score is not a time */
#define TRACK_BULLET "\xe2\x97\x8f"  /* U+25CF BLACK CIRCLE, as the seed's page shows */

/* One line of "Processing Details". */
typedef struct {
    int64_t time_ms;
    size_t seq; /* order of insertion: the sort keeps it among equal times */
    char *line; /* owned */
} track_line_t;

/* One recipient and what cb:copies says of it (pointers into the record or the copies). */
typedef struct {
    const char *address;
    const char *state; /* raw job state; NULL: delivered, no job ever made */
    const char *batch; /* uuid of the batch that claimed it; NULL: none */
} track_rcpt_t;

typedef struct {
    int64_t mid;
    bool indexed; /* rec is filled */
    mindex_record_t rec;
    bool has_email_id;
    char email_id[37];
    redisReply *events; /* ZRANGE cb:trk:<MID> 0 -1 WITHSCORES */
    batch_copy_t *copies; /* the message's copies in cb:copies, sorted by recipient */
    size_t n_copies;
    track_rcpt_t *rcpts;
    size_t n_rcpts;
    track_line_t *lines;
    size_t n_lines, cap_lines;
    size_t malformed; /* tracking members set aside */
} track_t;

static void track_clear(track_t *t)
{
    if (t->indexed)
        mindex_record_clear(&t->rec);
    if (t->events)
        freeReplyObject(t->events);
    batch_copies_free(t->copies, t->n_copies);
    for (size_t i = 0; i < t->n_lines; i++)
        free(t->lines[i].line);
    free(t->lines);
    free(t->rcpts);
}

/* known - whether a record field holds something to show. */
static bool known(const char *s)
{
    return s && *s;
}

/* track_add_line - append a line (taken over) at time_ms. */
static void track_add_line(track_t *t, int64_t time_ms, char *line)
{
    if (t->n_lines == t->cap_lines) {
        t->cap_lines = t->cap_lines ? 2 * t->cap_lines : 16;
        t->lines = util_xrealloc(t->lines, t->cap_lines * sizeof(*t->lines));
    }
    t->lines[t->n_lines] = (track_line_t){.time_ms = time_ms, .seq = t->n_lines, .line = line};
    t->n_lines++;
}

/* track_add_delivery_line - a line of the delivery at the delivery time: "Message N " and
 * the printf-formatted rest. */
static void track_add_delivery_line(track_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void track_add_delivery_line(track_t *t, const char *fmt, ...)
{
    strbuf_t sb;
    strbuf_init(&sb, 0);
    strbuf_appendf(&sb, "Message %lld ", (long long)t->mid);
    va_list ap;
    va_start(ap, fmt);
    strbuf_vappendf(&sb, fmt, ap);
    va_end(ap);
    track_add_line(t, t->rec.time_ms, strbuf_detach(&sb));
}

static int track_line_cmp(const void *a, const void *b)
{
    const track_line_t *x = a, *y = b;
    if (x->time_ms != y->time_ms)
        return x->time_ms < y->time_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* track_read - the record, the tracking events and the message hash. 0, or -1 after printing
 * why. */
static int track_read(track_t *t, mindex_t *ix, redis_conn_t *redis)
{
    int found = mindex_get(ix, t->mid, &t->rec);
    if (found < 0) {
        fprintf(stderr, "clawback track: %s\n", mindex_errstr(ix));
        return -1;
    }
    t->indexed = found == 1;
    if (t->indexed) {
        memcpy(t->email_id, t->rec.email_id, sizeof(t->email_id));
        t->has_email_id = true;
    } else {
        /* derived from the MID: known after the record is gone, unless there is no index */
        t->has_email_id = mindex_email_id(ix, t->mid, t->email_id) == 0;
    }
    char trk[64];
    batch_track_key(trk, sizeof(trk), t->mid);
    redisReply *r = redis_conn_command(redis, "ZRANGE %s 0 -1 WITHSCORES", trk);
    if (!r) {
        fprintf(stderr, "clawback track: %s\n", redis_conn_errstr(redis));
        return -1;
    }
    t->events = r;
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "clawback track: %s: %s\n", trk, r->str);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "clawback track: %s: unexpected reply from Redis\n", trk);
        return -1;
    }
    if (batch_copies_read(redis, t->mid, &t->copies, &t->n_copies) != 0) {
        fprintf(stderr, "clawback track: the copies of message %lld: %s\n", (long long)t->mid,
                redis_conn_errstr(redis));
        return -1;
    }
    return 0;
}

static int track_copy_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const batch_copy_t *)elem)->rcpt);
}

/* track_collect_rcpts - the recipients (the record's, in its order; for a message no longer
 * in the index, those its copies name, sorted) with their job state and batch. */
static void track_collect_rcpts(track_t *t)
{
    size_t cap = t->indexed ? t->rec.n_rcpts : t->n_copies;
    t->rcpts = util_xcalloc(cap ? cap : 1, sizeof(*t->rcpts));
    if (t->indexed) {
        for (size_t k = 0; k < t->rec.n_rcpts; k++)
            t->rcpts[t->n_rcpts++].address = t->rec.rcpts[k].address;
    } else {
        for (size_t k = 0; k < t->n_copies; k++)
            t->rcpts[t->n_rcpts++].address = t->copies[k].rcpt;
    }
    /* copies are looked up sorted: a message may have thousands of recipients */
    for (size_t k = 0; k < t->n_rcpts; k++) {
        const batch_copy_t *copy =
            t->n_copies ? bsearch(t->rcpts[k].address, t->copies, t->n_copies, sizeof(*t->copies), track_copy_cmp)
                        : NULL;
        if (copy) {
            t->rcpts[k].state = copy->state;
            t->rcpts[k].batch = copy->batch;
        }
    }
}

/* track_collect_lines - the delivery's lines, then the tracking events, sorted by time. */
static void track_collect_lines(track_t *t)
{
    if (t->indexed) {
        const mindex_record_t *rec = &t->rec;
        track_add_delivery_line(t, "direction: %s", known(rec->direction) ? rec->direction : "incoming");
        if (known(rec->sender))
            track_add_delivery_line(t, "enqueued from %s.", rec->sender);
        for (size_t k = 0; k < rec->n_rcpts; k++)
            track_add_delivery_line(t, "added recipient (%s).", rec->rcpts[k].address);
        if (known(rec->subject))
            track_add_delivery_line(t, "original subject on injection: %s", rec->subject);
        if (known(rec->sender_ip))
            track_add_delivery_line(t, "has sender_ip: %s", rec->sender_ip);
        if (known(rec->message_id))
            track_add_delivery_line(t, "contains message ID header '<%s>'.", rec->message_id);
        if (known(rec->queue_id))
            track_add_delivery_line(t, "queued for delivery (queue id %s).", rec->queue_id);
        else
            track_add_delivery_line(t, "queued for delivery.");
    }
    const redisReply *z = t->events;
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        const redisReply *member = z->element[i], *score = z->element[i + 1];
        char *end = NULL;
        double ms = score->type == REDIS_REPLY_STRING ? strtod(score->str, &end) : NAN;
        if (member->type != REDIS_REPLY_STRING || !end || *end || !(ms >= 0 && ms < TRACK_MAX_TIME_MS)) {
            t->malformed++;
            continue;
        }
        track_add_line(t, (int64_t)ms, util_xstrdup(batch_track_line(member->str)));
    }
    if (t->n_lines)
        qsort(t->lines, t->n_lines, sizeof(*t->lines), track_line_cmp);
}

/* track_state_label - a job state as the Last State names it (static; the state itself when
 * unknown). */
static const char *track_state_label(const char *state)
{
    static const char *const LABELS[][2] = {
        {"remediated", "Remediated"},
        {"not_found", "Not found"},
        {"failed", "Remediation failed"},
        {BATCH_JOB_INITIATED, "Remediation initiated"},
        {BATCH_JOB_HELD, "Waiting for approval"},
        {BATCH_JOB_REJECTED, "Delivered"}, /* an operator rejected the remediation */
    };
    if (!state)
        return "Delivered";
    for (size_t i = 0; i < UTIL_ARRAY_LEN(LABELS); i++)
        if (strcmp(state, LABELS[i][0]) == 0)
            return LABELS[i][1];
    return state;
}

/* track_last_state - the Last State into out: one label when every recipient has it, else
 * "LABEL (rcpt), ..." in recipient order. */
static void track_last_state(const track_t *t, strbuf_t *out)
{
    const char *first = track_state_label(t->n_rcpts ? t->rcpts[0].state : NULL);
    bool same = true;
    for (size_t k = 1; k < t->n_rcpts && same; k++)
        same = strcmp(track_state_label(t->rcpts[k].state), first) == 0;
    if (same) {
        strbuf_appends(out, first);
        return;
    }
    for (size_t k = 0; k < t->n_rcpts; k++)
        strbuf_appendf(out, "%s%s (%s)", k ? ", " : "", track_state_label(t->rcpts[k].state), t->rcpts[k].address);
}

/* track_local - the local time of ms; false when it has none. */
static bool track_local(int64_t ms, struct tm *tm)
{
    time_t s = (time_t)(ms / 1000);
    return localtime_r(&s, tm) != NULL;
}

static void track_print_text(const track_t *t, strbuf_t *out)
{
    strbuf_appends(out, "Message Tracking\n\nMessage ID Header ");
    if (t->indexed && known(t->rec.message_id)) {
        strbuf_appends(out, "<");
        cli_append_clean(out, t->rec.message_id);
        strbuf_appends(out, ">");
    } else {
        strbuf_appends(out, "N/A");
    }
    strbuf_appends(out, "\n\nProcessing Details\n\n");
    /* lines of the delivery's day show the time alone; without a record, every line its date */
    struct tm day;
    bool have_day = t->indexed && track_local(t->rec.time_ms, &day);
    for (size_t i = 0; i < t->n_lines; i++) {
        struct tm tm;
        char when[64] = "?";
        if (track_local(t->lines[i].time_ms, &tm)) {
            bool same_day = have_day && tm.tm_year == day.tm_year && tm.tm_yday == day.tm_yday;
            strftime(when, sizeof(when), same_day ? "%H:%M:%S" : "%d %b %Y %H:%M:%S", &tm);
        }
        strbuf_appendf(out, "- %s " TRACK_BULLET " ", when);
        cli_append_clean(out, t->lines[i].line);
        strbuf_appends(out, "\n");
    }
    if (t->n_lines)
        strbuf_appends(out, "\n");
    strbuf_appends(out, "Envelope Header and Summary\n\nLast State\n ");
    strbuf_t state;
    strbuf_init(&state, 0);
    track_last_state(t, &state);
    cli_append_clean(out, state.data ? state.data : "");
    strbuf_release(&state);
    strbuf_appends(out, "\n\n");
    if (!t->indexed) {
        strbuf_appends(out, "(message no longer in the index)\n");
        return;
    }
    const mindex_record_t *rec = &t->rec;
    char when[64] = "?";
    if (have_day) {
        long off = day.tm_gmtoff < 0 ? -day.tm_gmtoff : day.tm_gmtoff;
        size_t n = strftime(when, sizeof(when), "%d %b %Y %H:%M:%S", &day);
        snprintf(when + n, sizeof(when) - n, " (GMT %c%02ld:%02ld)", day.tm_gmtoff < 0 ? '-' : '+', off / 3600,
                 off % 3600 / 60);
    }
    bool outgoing = rec->direction && strcmp(rec->direction, "outgoing") == 0;
    strbuf_appendf(out, "Message\n %s\n\nMID\n %lld\n\nTime\n %s\n\nSender\n ", outgoing ? "Outgoing" : "Incoming",
                   (long long)t->mid, when);
    cli_append_clean(out, known(rec->sender) ? rec->sender : "N/A");
    strbuf_appends(out, "\n\nRecipient\n ");
    for (size_t k = 0; k < rec->n_rcpts; k++) {
        if (k)
            strbuf_appends(out, ", ");
        cli_append_clean(out, rec->rcpts[k].address);
    }
    strbuf_appends(out, "\n\nSubject\n ");
    cli_append_clean(out, known(rec->subject) ? rec->subject : "N/A");
    strbuf_appends(out, "\n");
}

/* track_json_string - s as a JSON string, or null. */
static void track_json_string(strbuf_t *out, const char *s)
{
    if (s)
        strbuf_append_json_string(out, s, strlen(s));
    else
        strbuf_appends(out, "null");
}

static void track_print_json(const track_t *t, strbuf_t *out)
{
    const mindex_record_t *rec = &t->rec; /* all NULL and 0 when not indexed */
    strbuf_appendf(out, "{\"mid\":%lld,\"email_id\":", (long long)t->mid);
    track_json_string(out, t->has_email_id ? t->email_id : NULL);
    strbuf_appendf(out, ",\"in_index\":%s,\"message_id\":", t->indexed ? "true" : "false");
    track_json_string(out, rec->message_id);
    if (t->indexed)
        strbuf_appendf(out, ",\"time_ms\":%lld", (long long)rec->time_ms);
    else
        strbuf_appends(out, ",\"time_ms\":null");
    const char *fields[][2] = {{"direction", rec->direction}, {"sender", rec->sender},
                               {"sender_ip", rec->sender_ip}, {"subject", rec->subject},
                               {"queue_id", rec->queue_id}};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(fields); i++) {
        strbuf_appendf(out, ",\"%s\":", fields[i][0]);
        track_json_string(out, fields[i][1]);
    }
    strbuf_appends(out, ",\"recipients\":[");
    for (size_t k = 0; k < t->n_rcpts; k++) {
        strbuf_appends(out, k ? ",{\"address\":" : "{\"address\":");
        track_json_string(out, t->rcpts[k].address);
        strbuf_appends(out, ",\"state\":");
        track_json_string(out, t->rcpts[k].state ? t->rcpts[k].state : "delivered");
        strbuf_appends(out, ",\"batch\":");
        track_json_string(out, t->rcpts[k].batch);
        strbuf_appends(out, "}");
    }
    strbuf_appends(out, "],\"last_state\":");
    strbuf_t state;
    strbuf_init(&state, 0);
    track_last_state(t, &state);
    track_json_string(out, state.data ? state.data : "");
    strbuf_release(&state);
    strbuf_appends(out, ",\"details\":[");
    for (size_t i = 0; i < t->n_lines; i++) {
        strbuf_appendf(out, "%s{\"time_ms\":%lld,\"line\":", i ? "," : "", (long long)t->lines[i].time_ms);
        track_json_string(out, t->lines[i].line);
        strbuf_appends(out, "}");
    }
    strbuf_appends(out, "]}\n");
}

int cli_cmd_track(cli_t *cli, int argc, char **argv)
{
    bool json = false;
    const char *arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (!arg && (argv[i][0] != '-' || (argv[i][1] >= '0' && argv[i][1] <= '9')))
            arg = argv[i];
        else
            return CLI_USAGE;
    }
    int64_t mid = 0;
    if (!arg)
        return CLI_USAGE;
    if (util_parse_int64(arg, &mid) != 0 || mid <= 0) {
        fprintf(stderr, "clawback track: bad MID '%s' (a positive number)\n", arg);
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
    mindex_t *ix = program_index(cfg, redis);
    track_t t = {.mid = mid};
    int rc = CLI_OK;
    if (track_read(&t, ix, redis) != 0) {
        rc = CLI_FAILURE;
    } else {
        track_collect_rcpts(&t);
        track_collect_lines(&t);
        if (t.malformed)
            fprintf(stderr, "clawback track: %zu malformed entr%s in Redis set aside\n", t.malformed,
                    t.malformed == 1 ? "y" : "ies");
        if (!t.indexed && !t.n_lines && !t.n_rcpts) {
            fprintf(stderr, "clawback track: message %lld not found\n", (long long)mid);
            rc = CLI_FAILURE;
        } else {
            strbuf_t out;
            strbuf_init(&out, 0);
            if (json)
                track_print_json(&t, &out);
            else
                track_print_text(&t, &out);
            fputs(out.data, stdout);
            strbuf_release(&out);
        }
    }
    track_clear(&t);
    mindex_destroy(&ix);
    redis_conn_destroy(&redis);
    config_destroy(&cfg);
    return rc;
}
