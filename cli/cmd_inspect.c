/*
 * cmd_inspect.c - `clawback inspect [OPTIONS] FILE`: every observable of a message, as JSON.
 *
 * What only the MTA knows can be given: --client-ip, --helo, --mail-from, --rcpt (repeated),
 * and --trusted NET (repeated) for the relays whose Received hops are skipped when the sender
 * IP is read from the headers (default: loopback only).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "message.h"
#include "util.h"

int cli_cmd_inspect(cli_t *cli, int argc, char **argv)
{
    (void)cli;
    static const struct option longopts[] = {{"client-ip", required_argument, NULL, 'i'},
                                              {"helo", required_argument, NULL, 'H'},
                                              {"mail-from", required_argument, NULL, 'f'},
                                              {"rcpt", required_argument, NULL, 'r'},
                                              {"trusted", required_argument, NULL, 't'},
                                              {NULL, 0, NULL, 0}};
    message_context_t ctx = {0};
    const char *rcpts[256];
    message_net_t trusted[MESSAGE_MAX_TRUSTED];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': ctx.client_ip = optarg; break;
        case 'H': ctx.helo = optarg; break;
        case 'f': ctx.envelope_sender = optarg; break;
        case 'r':
            if (ctx.n_envelope_rcpts >= UTIL_ARRAY_LEN(rcpts)) {
                fprintf(stderr, "clawback: inspect: at most %zu --rcpt\n", UTIL_ARRAY_LEN(rcpts));
                return CLI_USAGE;
            }
            rcpts[ctx.n_envelope_rcpts++] = optarg;
            break;
        case 't':
            if (ctx.n_trusted >= MESSAGE_MAX_TRUSTED || message_net_parse(optarg, &trusted[ctx.n_trusted]) != 0) {
                fprintf(stderr, "clawback: inspect: bad --trusted network '%s'\n", optarg);
                return CLI_USAGE;
            }
            ctx.n_trusted++;
            ctx.trusted = trusted;
            break;
        default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1)
        return CLI_USAGE;
    ctx.envelope_rcpts = rcpts;
    message_t msg;
    if (cli_load_message(argv[optind], &ctx, &msg) != 0)
        return CLI_FAILURE;
    strbuf_t out;
    strbuf_init(&out, 0);
    message_to_json(&msg, &out);
    puts(out.data);
    strbuf_release(&out);
    message_clear(&msg);
    return CLI_OK;
}
