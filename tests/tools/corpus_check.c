/*
 * corpus_check - parse every message named on standard input (one path per line) and check
 * what must hold for any message: it parses (or fails with a reason), and every URL kept is
 * a canonical web URL (http, https or ftp; no byte that canonicalization escapes; the
 * canonical form of itself). Prints one summary line of counts:
 *   messages=N failed=N urls=N distinct=N with_urls=N attachments=N bad_urls=N
 * and, for each failure or bad URL, a line on standard error. Exit 0 when nothing was bad.
 *   corpus_check [--urls FILE]   also write "path<TAB>url" for every URL kept to FILE
 */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "url_canon.h"
#include "util.h"

static bool url_is_canonical(const char *url, strbuf_t *scratch)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0 && strncmp(url, "ftp://", 6) != 0)
        return false;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '#')
            return false;
    if (url_canon(url, strlen(url), scratch) != URL_CANON_OK)
        return false;
    return strcmp(scratch->data, url) == 0;
}

int main(int argc, char **argv)
{
    FILE *urls_out = NULL;
    if (argc == 3 && strcmp(argv[1], "--urls") == 0) {
        urls_out = fopen(argv[2], "w");
        if (!urls_out) {
            perror(argv[2]);
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: corpus_check [--urls FILE] < paths\n");
        return 2;
    }
    message_library_init();
    zhashx_t *distinct = zhashx_new();
    strbuf_t scratch;
    strbuf_init(&scratch, 0);
    long messages = 0, failed = 0, urls = 0, with_urls = 0, attachments = 0, bad = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        messages++;
        char err[512];
        char *data;
        size_t len;
        message_t msg;
        if (util_read_file(line, MESSAGE_MAX_SIZE, &data, &len, err, sizeof(err)) != 0 ||
            message_parse(data, len, NULL, &msg, err, sizeof(err)) != 0) {
            fprintf(stderr, "failed: %s: %s\n", line, err);
            failed++;
            continue;
        }
        free(data);
        urls += (long)msg.urls.n;
        with_urls += msg.urls.n > 0;
        attachments += (long)msg.n_attachments;
        for (size_t i = 0; i < msg.urls.n; i++) {
            if (!url_is_canonical(msg.urls.v[i], &scratch)) {
                fprintf(stderr, "bad url: %s: %s\n", line, msg.urls.v[i]);
                bad++;
            }
            zhashx_insert(distinct, msg.urls.v[i], (void *)1);
            if (urls_out)
                fprintf(urls_out, "%s\t%s\n", line, msg.urls.v[i]);
        }
        message_clear(&msg);
    }
    free(line);
    printf("messages=%ld failed=%ld urls=%ld distinct=%zu with_urls=%ld attachments=%ld bad_urls=%ld\n",
           messages, failed, urls, zhashx_size(distinct), with_urls, attachments, bad);
    zhashx_destroy(&distinct);
    strbuf_release(&scratch);
    if (urls_out)
        fclose(urls_out);
    return failed == 0 && bad == 0 ? 0 : 1;
}
