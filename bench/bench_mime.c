/*
 * bench_mime - URL extraction over a corpus, and its agreement with another extractor.
 *
 *   bench_mime run PAIRS < paths
 *       read every message named on standard input into memory, then parse them all
 *       (message_parse: MIME, decoding, URL extraction and canonicalization) on one core;
 *       print messages/s and MB/s (CPU time of the parse loop), write "path<TAB>url" for
 *       every URL found to PAIRS.
 *   bench_mime agree RSPAMD_OUTPUT PAIRS DIFF_PREFIX
 *       RSPAMD_OUTPUT is what `rspamadm mime urls FILE...` printed ("File: path" lines, then
 *       one URL per line); its http, https and ftp URLs are canonicalized the same way as
 *       Clawback's and compared per message with PAIRS: prints the share of rspamd's found by
 *       Clawback and the share of Clawback's found by rspamd; writes the differences to
 *       DIFF_PREFIX.missed (rspamd only) and DIFF_PREFIX.extra (Clawback only).
 */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "message.h"
#include "url_canon.h"
#include "util.h"

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_run(const char *pairs_path)
{
    FILE *pairs = fopen(pairs_path, "w");
    if (!pairs) {
        perror(pairs_path);
        return 1;
    }
    size_t n = 0, cap = 0, bytes = 0;
    char **paths = NULL, **data = NULL;
    size_t *lens = NULL;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    while ((got = getline(&line, &lcap, stdin)) > 0) {
        if (line[got - 1] == '\n')
            line[got - 1] = '\0';
        char err[512];
        char *d;
        size_t len;
        if (util_read_file(line, MESSAGE_MAX_SIZE, &d, &len, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench_mime: %s\n", err);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            paths = util_xrealloc(paths, cap * sizeof(*paths));
            data = util_xrealloc(data, cap * sizeof(*data));
            lens = util_xrealloc(lens, cap * sizeof(*lens));
        }
        paths[n] = util_xstrdup(line);
        data[n] = d;
        lens[n] = len;
        bytes += len;
        n++;
    }
    free(line);
    message_library_init();
    size_t urls = 0, failed = 0;
    message_t *msgs = util_xcalloc(n ? n : 1, sizeof(*msgs));
    /* BENCH_MIME_WARMUP=N: parse everything N times first (for profiling the parse alone) */
    const char *warmup_env = getenv("BENCH_MIME_WARMUP");
    for (int w = warmup_env ? atoi(warmup_env) : 0; w > 0; w--) {
        for (size_t i = 0; i < n; i++) {
            char err[512];
            message_t m;
            if (message_parse(data[i], lens[i], NULL, &m, err, sizeof(err)) == 0)
                message_clear(&m);
        }
    }
    double start = cpu_seconds();
    for (size_t i = 0; i < n; i++) {
        char err[512];
        if (message_parse(data[i], lens[i], NULL, &msgs[i], err, sizeof(err)) != 0)
            failed++;
        urls += msgs[i].urls.n;
    }
    double took = cpu_seconds() - start;
    printf("clawback: %zu messages, %.1f MB, %zu URLs, %zu failed, %.3f s CPU on one core: "
           "%.0f messages/s, %.1f MB/s\n",
           n, (double)bytes / 1e6, urls, failed, took, (double)n / took, (double)bytes / 1e6 / took);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < msgs[i].urls.n; j++)
            fprintf(pairs, "%s\t%s\n", paths[i], msgs[i].urls.v[j]);
        message_clear(&msgs[i]);
        free(paths[i]);
        free(data[i]);
    }
    free(msgs);
    free(paths);
    free(data);
    free(lens);
    fclose(pairs);
    return 0;
}

/* pair_key - "path\tcanonical url" into out. */
static void pair_key(strbuf_t *out, const char *path, const char *url)
{
    strbuf_reset(out);
    strbuf_appends(out, path);
    strbuf_appends(out, "\t");
    strbuf_appends(out, url);
}

static int bench_agree(const char *rspamd_path, const char *pairs_path, const char *prefix)
{
    FILE *rs = fopen(rspamd_path, "r"), *cb = fopen(pairs_path, "r");
    if (!rs || !cb) {
        perror("bench_mime agree");
        return 1;
    }
    zhashx_t *theirs = zhashx_new(), *ours = zhashx_new();
    strbuf_t canon, key;
    strbuf_init(&canon, 0);
    strbuf_init(&key, 0);
    char *line = NULL, *path = NULL;
    size_t lcap = 0;
    ssize_t got;
    size_t skipped_schemes = 0, uncanonical = 0;
    while ((got = getline(&line, &lcap, rs)) > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (strncmp(line, "File: ", 6) == 0) {
            free(path);
            path = util_xstrdup(line + 6);
            continue;
        }
        if (!path || !*line)
            continue;
        if (strncasecmp(line, "http://", 7) != 0 && strncasecmp(line, "https://", 8) != 0 &&
            strncasecmp(line, "ftp://", 6) != 0) {
            skipped_schemes++;
            continue;
        }
        if (url_canon(line, (size_t)got, &canon) != URL_CANON_OK) {
            uncanonical++;
            continue;
        }
        pair_key(&key, path, canon.data);
        zhashx_insert(theirs, key.data, (void *)1);
    }
    while ((got = getline(&line, &lcap, cb)) > 0) {
        if (line[got - 1] == '\n')
            line[got - 1] = '\0';
        zhashx_insert(ours, line, (void *)1);
    }
    char missed_path[512], extra_path[512];
    snprintf(missed_path, sizeof(missed_path), "%s.missed", prefix);
    snprintf(extra_path, sizeof(extra_path), "%s.extra", prefix);
    FILE *missed = fopen(missed_path, "w"), *extra = fopen(extra_path, "w");
    size_t both = 0, only_theirs = 0, only_ours = 0;
    for (void *v = zhashx_first(theirs); v; v = zhashx_next(theirs)) {
        const char *k = zhashx_cursor(theirs);
        if (zhashx_lookup(ours, k)) {
            both++;
        } else {
            only_theirs++;
            if (missed)
                fprintf(missed, "%s\n", k);
        }
    }
    for (void *v = zhashx_first(ours); v; v = zhashx_next(ours)) {
        const char *k = zhashx_cursor(ours);
        if (!zhashx_lookup(theirs, k)) {
            only_ours++;
            if (extra)
                fprintf(extra, "%s\n", k);
        }
    }
    size_t n_theirs = zhashx_size(theirs), n_ours = zhashx_size(ours);
    printf("agreement (distinct message+URL pairs, http/https/ftp): rspamd %zu, clawback %zu, both %zu\n",
           n_theirs, n_ours, both);
    printf("  clawback finds %.2f%% of rspamd's (%zu missed: %s)\n",
           n_theirs ? 100.0 * (double)both / (double)n_theirs : 100.0, only_theirs, missed_path);
    printf("  rspamd finds %.2f%% of clawback's (%zu extra: %s)\n",
           n_ours ? 100.0 * (double)both / (double)n_ours : 100.0, only_ours, extra_path);
    printf("  rspamd lines not compared: %zu other schemes (mailto and the like), %zu without a "
           "canonical form\n",
           skipped_schemes, uncanonical);
    if (missed)
        fclose(missed);
    if (extra)
        fclose(extra);
    free(line);
    free(path);
    strbuf_release(&canon);
    strbuf_release(&key);
    zhashx_destroy(&theirs);
    zhashx_destroy(&ours);
    fclose(rs);
    fclose(cb);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "run") == 0)
        return bench_run(argv[2]);
    if (argc == 5 && strcmp(argv[1], "agree") == 0)
        return bench_agree(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: bench_mime run PAIRS < paths | agree RSPAMD_OUTPUT PAIRS DIFF_PREFIX\n");
    return 2;
}
