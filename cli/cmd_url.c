/*
 * cmd_url.c - `clawback url canon|unwrap|extract`: the URL rules, as the index applies them.
 *
 *   url canon [URL...]     the Safe Browsing canonical form of each URL, one per line (lines of
 *                          standard input when no URL is given); a URL that has none is
 *                          reported on standard error and its output line left empty
 *   url unwrap [URL...]    every layer of each URL (refanged, unwrapped), "kind<TAB>url"
 *   url extract FILE       every distinct canonical URL of a message, one per line
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "message.h"
#include "url_canon.h"
#include "url_unwrap.h"
#include "util.h"

#define CLI_URL_MAX_LINE (URL_CANON_MAX_INPUT * 4)

typedef int (*url_action_fn)(const char *url, size_t len, strbuf_t *out);

static int url_action_canon(const char *url, size_t len, strbuf_t *out)
{
    url_canon_status_t status = url_canon(url, len, out);
    if (status != URL_CANON_OK) {
        fprintf(stderr, "clawback: url canon: %.*s: %s\n", (int)(len > 200 ? 200 : len), url,
                url_canon_strerror(status));
        fputc('\n', stdout);
        return -1;
    }
    fwrite(out->data, 1, out->len, stdout);
    fputc('\n', stdout);
    return 0;
}

static void print_layer(void *ctx, const char *url, size_t len, url_wrap_t via)
{
    (void)ctx;
    printf("%s\t%.*s\n", via == URL_WRAP_NONE ? "outer" : url_wrap_name(via), (int)len, url);
}

static int url_action_unwrap(const char *url, size_t len, strbuf_t *out)
{
    (void)out;
    url_unwrap_layers(url, len, print_layer, NULL);
    return 0;
}

/* url_each - apply action to each argument, or to each line of standard input. */
static int url_each(int argc, char **argv, url_action_fn action)
{
    strbuf_t out;
    strbuf_init(&out, 0);
    int failed = 0;
    if (argc > 0) {
        for (int i = 0; i < argc; i++)
            failed |= action(argv[i], strlen(argv[i]), &out) != 0;
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                n--;
            if (n > CLI_URL_MAX_LINE) {
                fprintf(stderr, "clawback: url: a line of %zd bytes is too long\n", n);
                fputc('\n', stdout);
                failed = 1;
                continue;
            }
            failed |= action(line, (size_t)n, &out) != 0;
        }
        free(line);
    }
    strbuf_release(&out);
    return failed ? CLI_FAILURE : CLI_OK;
}

/* cli_load_message - read and parse a message file; 0, or -1 after printing why. */
int cli_load_message(const char *path, const message_context_t *ctx, message_t *msg)
{
    char err[512];
    char *data;
    size_t len;
    if (util_read_file(path, MESSAGE_MAX_SIZE, &data, &len, err, sizeof(err)) != 0) {
        fprintf(stderr, "clawback: %s\n", err);
        return -1;
    }
    int rc = message_parse(data, len, ctx, msg, err, sizeof(err));
    free(data);
    if (rc != 0)
        fprintf(stderr, "clawback: %s: %s\n", path, err);
    return rc;
}

int cli_cmd_url(cli_t *cli, int argc, char **argv)
{
    (void)cli;
    if (argc < 2)
        return CLI_USAGE;
    if (strcmp(argv[1], "canon") == 0)
        return url_each(argc - 2, argv + 2, url_action_canon);
    if (strcmp(argv[1], "unwrap") == 0)
        return url_each(argc - 2, argv + 2, url_action_unwrap);
    if (strcmp(argv[1], "extract") == 0) {
        if (argc != 3)
            return CLI_USAGE;
        message_t msg;
        if (cli_load_message(argv[2], NULL, &msg) != 0)
            return CLI_FAILURE;
        for (size_t i = 0; i < msg.urls.n; i++)
            puts(msg.urls.v[i]);
        message_clear(&msg);
        return CLI_OK;
    }
    return CLI_USAGE;
}
