/*
 * cmd_search.c - `clawback search [--json] [--limit N] QUERY...`: delivered messages by
 * observables, in the seed gateway's syntax (common/query.h): ip:"4.2.2.2" domain:"cisco.com"
 * email:"noreply@cisco.com" email_messageid:"..." email_subject:"Invoice Due" cisco_mid:"12345"
 * sha256:"..." file_name:"invoice.pdf" url:"..." email_id:"..." rcpt:"...", ANDed.
 *
 * Each term is one index look-up (url: canonicalized first; domain: the sender's domain or a
 * URL's host or registrable domain; email: the sender or a recipient); the MID lists are
 * intersected, and the records read. Terms whose value the record holds (Message-ID, sender,
 * recipient, IP, subject, email id) are checked against it as well. Prints a table (MID,
 * time, sender, recipients, subject, state), newest first, or --json (one array).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "cli.h"
#include "mindex.h"
#include "query.h"
#include "url_canon.h"
#include "util.h"

#define SEARCH_DEFAULT_LIMIT 1000
#define SEARCH_CHUNK 512 /* candidates read per pass */

/* term_lookup - the MIDs of one term (sorted newest first); 0 or -1 after printing why. */
static int term_lookup(mindex_t *ix, const query_term_t *t, int64_t **mids, size_t *n)
{
    *mids = NULL;
    *n = 0;
    mindex_kind_t kind;
    char *value = NULL;
    switch (t->field) {
    case QUERY_MID: {
        int64_t mid = 0;
        util_parse_int64(t->value, &mid);
        mindex_record_t rec;
        int found = mindex_get(ix, mid, &rec);
        if (found < 0)
            goto redis_error;
        *mids = util_xmalloc(sizeof(**mids));
        if (found) {
            (*mids)[0] = mid;
            *n = 1;
            mindex_record_clear(&rec);
        }
        return 0;
    }
    case QUERY_URL: {
        strbuf_t canon;
        strbuf_init(&canon, 0);
        url_canon_status_t st = url_canon(t->value, strlen(t->value), &canon);
        if (st != URL_CANON_OK) {
            fprintf(stderr, "clawback search: url:\"%s\": %s\n", t->value, url_canon_strerror(st));
            strbuf_release(&canon);
            return -1;
        }
        kind = MINDEX_URL;
        value = strbuf_detach(&canon);
        break;
    }
    case QUERY_SUBJECT:
        kind = MINDEX_SUBJECT;
        value = mindex_subject_normalize(t->value);
        break;
    case QUERY_FILE_NAME: {
        kind = MINDEX_FILE_NAME;
        gchar *folded = g_utf8_validate(t->value, -1, NULL) ? g_utf8_casefold(t->value, -1) : NULL;
        value = util_xstrdup(folded ? folded : t->value);
        g_free(folded);
        break;
    }
    case QUERY_IP: kind = MINDEX_IP; break;
    case QUERY_DOMAIN: kind = MINDEX_DOMAIN; break;
    case QUERY_EMAIL:
    case QUERY_RCPT: kind = MINDEX_ADDRESS; break;
    case QUERY_MESSAGE_ID: kind = MINDEX_MESSAGE_ID; break;
    case QUERY_SHA256: kind = MINDEX_SHA256; break;
    case QUERY_EMAIL_ID: kind = MINDEX_EMAIL_ID; break;
    default: fprintf(stderr, "clawback search: unsupported field\n"); return -1;
    }
    if (!value)
        value = util_xstrdup(t->value);
    int rc = mindex_lookup(ix, kind, value, 0, mids, n);
    free(value);
    if (rc != 0)
        goto redis_error;
    return 0;
redis_error:
    fprintf(stderr, "clawback search: %s\n", mindex_errstr(ix));
    return -1;
}

/* intersect - keep in a (newest first) the MIDs also in b. */
static size_t intersect(int64_t *a, size_t na, const int64_t *b, size_t nb)
{
    size_t i = 0, j = 0, w = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) {
            a[w++] = a[i];
            i++;
            j++;
        } else if (a[i] > b[j]) {
            i++;
        } else {
            j++;
        }
    }
    return w;
}

static bool ieq(const char *a, const char *b)
{
    return a && b && g_ascii_strcasecmp(a, b) == 0;
}

/* record_matches - the record agrees with every term whose value it holds (a guard against a
 * hash collision, and the recipient-only meaning of rcpt:). */
static bool record_matches(const mindex_record_t *rec, const query_t *q)
{
    for (size_t i = 0; i < q->n; i++) {
        const query_term_t *t = &q->terms[i];
        bool rcpt_hit = false;
        for (size_t k = 0; k < rec->n_rcpts; k++)
            rcpt_hit |= ieq(rec->rcpts[k].address, t->value);
        switch (t->field) {
        case QUERY_MESSAGE_ID:
            if (!rec->message_id || strcmp(rec->message_id, t->value) != 0)
                return false;
            break;
        case QUERY_IP:
            if (!ieq(rec->sender_ip, t->value))
                return false;
            break;
        case QUERY_EMAIL_ID:
            if (!ieq(rec->email_id, t->value))
                return false;
            break;
        case QUERY_RCPT:
            if (!rcpt_hit)
                return false;
            break;
        case QUERY_SUBJECT: {
            char *a = mindex_subject_normalize(rec->subject), *b = mindex_subject_normalize(t->value);
            bool same = a && b && strcmp(a, b) == 0;
            free(a);
            free(b);
            if (!same)
                return false;
            break;
        }
        default: break;
        }
    }
    return true;
}

static void format_time(int64_t ms, char *out, size_t outlen)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_json_record(const mindex_record_t *rec, bool first)
{
    strbuf_t sb;
    strbuf_init(&sb, 0);
    char when[32];
    format_time(rec->time_ms, when, sizeof(when));
    strbuf_appendf(&sb, "%s{\"mid\":%lld,\"email_id\":\"%s\",\"time\":\"%s\",\"direction\":", first ? "" : ",",
                   (long long)rec->mid, rec->email_id, when);
    const char *fields[][2] = {{"direction", rec->direction}, {"message_id", rec->message_id},
                               {"sender", rec->sender},       {"sender_ip", rec->sender_ip},
                               {"subject", rec->subject},     {"queue_id", rec->queue_id}};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(fields); i++) {
        if (i)
            strbuf_appendf(&sb, ",\"%s\":", fields[i][0]);
        if (fields[i][1])
            strbuf_append_json_string(&sb, fields[i][1], strlen(fields[i][1]));
        else
            strbuf_appends(&sb, "null");
    }
    strbuf_appends(&sb, ",\"recipients\":[");
    for (size_t k = 0; k < rec->n_rcpts; k++) {
        strbuf_appends(&sb, k ? ",{\"address\":" : "{\"address\":");
        strbuf_append_json_string(&sb, rec->rcpts[k].address, strlen(rec->rcpts[k].address));
        strbuf_appends(&sb, ",\"state\":");
        strbuf_append_json_string(&sb, rec->rcpts[k].state, strlen(rec->rcpts[k].state));
        strbuf_appends(&sb, "}");
    }
    strbuf_appends(&sb, "]}");
    fputs(sb.data, stdout);
    strbuf_release(&sb);
}

/* cell - s cut to width characters for the table (UTF-8 aware, control bytes shown as '?'). */
static void print_cell(const char *s, int width, bool last)
{
    const char *v = s ? s : "-";
    int shown = 0;
    const unsigned char *p = (const unsigned char *)v;
    while (*p && shown < width) {
        size_t n = 1;
        while ((p[n] & 0xC0) == 0x80)
            n++;
        if (*p < 0x20 || *p == 0x7f)
            fputc('?', stdout);
        else
            fwrite(p, 1, n, stdout);
        p += n;
        shown++;
    }
    if (!last)
        for (; shown < width + 2; shown++)
            fputc(' ', stdout);
}

static void print_table_record(const mindex_record_t *rec)
{
    char when[32], mid[24];
    format_time(rec->time_ms, when, sizeof(when));
    snprintf(mid, sizeof(mid), "%lld", (long long)rec->mid);
    strbuf_t rcpts, states;
    strbuf_init(&rcpts, 0);
    strbuf_init(&states, 0);
    for (size_t k = 0; k < rec->n_rcpts; k++) {
        strbuf_appendf(&rcpts, "%s%s", k ? "," : "", rec->rcpts[k].address);
        if (k == 0 || !strstr(states.data ? states.data : "", rec->rcpts[k].state))
            strbuf_appendf(&states, "%s%s", k ? "," : "", rec->rcpts[k].state);
    }
    print_cell(mid, 10, false);
    print_cell(when, 20, false);
    print_cell(rec->sender, 30, false);
    print_cell(rcpts.data, 30, false);
    print_cell(states.data, 12, false);
    print_cell(rec->subject, 60, true);
    fputc('\n', stdout);
    strbuf_release(&rcpts);
    strbuf_release(&states);
}

typedef struct {
    bool json;
    size_t shown;
} search_print_t;

static int search_print(const mindex_record_t *rec, void *arg)
{
    search_print_t *pr = arg;
    if (pr->json)
        print_json_record(rec, pr->shown == 0);
    else
        print_table_record(rec);
    pr->shown++;
    return 0;
}

long cli_search_run(mindex_t *ix, const query_t *q, size_t limit, cli_search_fn fn, void *arg, size_t *candidates)
{
    int64_t *mids = NULL;
    size_t n = 0;
    for (size_t i = 0; i < q->n; i++) {
        int64_t *m;
        size_t mn;
        if (term_lookup(ix, &q->terms[i], &m, &mn) != 0) {
            free(mids);
            return -1;
        }
        if (i == 0) {
            mids = m;
            n = mn;
        } else {
            n = intersect(mids, n, m, mn);
            free(m);
        }
    }
    *candidates = n;
    size_t shown = 0;
    int rc = 0;
    /* candidates that fail the record check do not count towards the limit, so their number is
     * bounded too */
    size_t examine = limit * 4 > 100000 ? limit * 4 : 100000;
    /* candidates are read a chunk at a time (one pipelined pass per chunk), newest first */
    for (size_t i = 0; i < n && i < examine && shown < limit && rc == 0; i += SEARCH_CHUNK) {
        size_t want = n - i < SEARCH_CHUNK ? n - i : SEARCH_CHUNK;
        mindex_record_t *recs;
        size_t found;
        if (mindex_get_many(ix, mids + i, want, &recs, &found) != 0) {
            fprintf(stderr, "clawback: %s\n", mindex_errstr(ix));
            rc = -1;
            break;
        }
        for (size_t k = 0; k < found; k++) {
            if (rc == 0 && shown < limit && record_matches(&recs[k], q)) {
                rc = fn(&recs[k], arg);
                shown++;
            }
            mindex_record_clear(&recs[k]);
        }
        free(recs);
    }
    free(mids);
    return rc == 0 ? (long)shown : -1;
}

int cli_cmd_search(cli_t *cli, int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                              {"limit", required_argument, NULL, 'l'},
                                              {NULL, 0, NULL, 0}};
    bool json = false;
    int64_t limit = SEARCH_DEFAULT_LIMIT;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'l':
            if (util_parse_int64(optarg, &limit) != 0 || limit <= 0) {
                fprintf(stderr, "clawback search: bad --limit '%s'\n", optarg);
                return CLI_USAGE;
            }
            break;
        default: return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return CLI_USAGE;
    strbuf_t text;
    strbuf_init(&text, 0);
    for (int i = optind; i < argc; i++)
        strbuf_appendf(&text, "%s%s", i > optind ? " " : "", argv[i]);
    query_t q;
    char err[512];
    if (query_parse(text.data, &q, err, sizeof(err)) != 0) {
        fprintf(stderr, "clawback search: %s\n  %s\n", err, text.data);
        strbuf_release(&text);
        query_clear(&q);
        return CLI_USAGE;
    }
    strbuf_release(&text);
    config_t *cfg = cli_config(cli);
    if (!cfg) {
        query_clear(&q);
        return CLI_FAILURE;
    }
    redis_conn_t *redis = program_redis(cfg, err, sizeof(err));
    if (!redis) {
        fprintf(stderr, "clawback search: %s\n", err);
        config_destroy(&cfg);
        query_clear(&q);
        return CLI_FAILURE;
    }
    mindex_t *ix = program_index(cfg, redis);
    search_print_t pr = {.json = json};
    if (json)
        fputs("[", stdout);
    else
        printf("%-12s%-22s%-32s%-32s%-14s%s\n", "MID", "TIME", "SENDER", "RECIPIENTS", "STATE", "SUBJECT");
    size_t candidates = 0;
    long shown = cli_search_run(ix, &q, (size_t)limit, search_print, &pr, &candidates);
    int rc = shown < 0 ? CLI_FAILURE : CLI_OK;
    if (json)
        fputs("]\n", stdout);
    if (shown >= 0)
        fprintf(stderr, "%ld message%s%s\n", shown, shown == 1 ? "" : "s",
                shown >= limit && candidates > (size_t)shown ? " (limit reached: --limit N)" : "");
    mindex_destroy(&ix);
    redis_conn_destroy(&redis);
    config_destroy(&cfg);
    query_clear(&q);
    return rc;
}
