/*
 * clawback - the operator's command (git-style subcommands).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"

void cli_append_clean(strbuf_t *out, const char *s)
{
    while (*s) {
        size_t n = 0;
        while (s[n] && (unsigned char)s[n] >= 0x20 && s[n] != 0x7f)
            n++;
        strbuf_append(out, s, n);
        s += n;
        if (*s) {
            strbuf_appends(out, "?");
            s++;
        }
    }
}

static const cli_command_t COMMANDS[] = {
    {"config", "print the example configuration, or check a configuration file",
     "usage: clawback [-c FILE] config example|check\n"
     "  example   print every key with its default and documentation\n"
     "  check     load the configuration (-c FILE or the default) and report errors\n",
     cli_cmd_config},
    {"queues", "show the depth of every bus edge (waiting, in flight, oldest age, counters)",
     "usage: clawback [-c FILE] [--redis URL] queues [--json]\n", cli_cmd_queues},
    {"feeds", "show each threat feed's poller state: holder, last poll, cursor, verdicts, errors",
     "usage: clawback [-c FILE] [--redis URL] feeds [--json]\n"
     "  one line per [feed NAME] section of the configuration\n",
     cli_cmd_feeds},
    {"url", "canonicalize, unwrap or extract URLs as the index does",
     "usage: clawback url canon [URL...]    Safe Browsing canonical form, one per line\n"
     "       clawback url unwrap [URL...]   every layer of a wrapped or defanged URL\n"
     "       clawback url extract FILE      every distinct canonical URL of a message\n"
     "  with no URL, canon and unwrap read one URL per line from standard input\n",
     cli_cmd_url},
    {"inspect", "print every observable of a message as JSON",
     "usage: clawback inspect [--client-ip IP] [--helo NAME] [--mail-from ADDR]\n"
     "                        [--rcpt ADDR]... [--trusted NET]... FILE\n"
     "  FILE is an RFC 5322 message (\"-\": standard input); --trusted names relays whose\n"
     "  Received hops are skipped when finding the sender IP (default: loopback)\n",
     cli_cmd_inspect},
    {"ingest", "index messages as delivered: files, maildirs, directories, mboxes",
     "usage: clawback [-c FILE] [--redis URL] ingest [--rcpt ADDR]... [--time MS] [--json] PATH...\n"
     "  recipients come from --rcpt, else Delivered-To / X-Original-To, else To and Cc;\n"
     "  --time: the delivery time (epoch milliseconds, within the retention), default now;\n"
     "  a message that cannot be parsed is reported and skipped\n",
     cli_cmd_ingest},
    {"search", "find delivered messages by observables (ip: domain: email: ... ANDed)",
     "usage: clawback [-c FILE] [--redis URL] search [--json] [--limit N] QUERY...\n"
     "  ip:\"4.2.2.2\" domain:\"cisco.com\" email:\"noreply@cisco.com\"\n"
     "  email_messageid:\"123-abc-456@cisco.com\" email_subject:\"Invoice Due\"\n"
     "  cisco_mid:\"12345\" (or mid:) sha256:\"...\" file_name:\"invoice.pdf\" url:\"...\"\n"
     "  email_id:\"UUID\" rcpt:\"ADDR\"; several terms are ANDed\n",
     cli_cmd_search},
    {"remediate", "delete or forward delivered messages now, in a new batch (by MID or by a search query)",
     "usage: clawback [-c FILE] [--redis URL] remediate --action delete|forward|forward-delete --by USER\n"
     "                [--source SOURCE] (MID... | --query QUERY... [--limit N])\n"
     "  one job per recipient, with the profile of its domain's [domains] mapping; prints the\n"
     "  batch UUID; the seed's 'initiated ... by USER from source SOURCE' line per message\n",
     cli_cmd_remediate},
    {"approve", "let a batch that waits for approval go: its jobs go to the remediators",
     "usage: clawback [-c FILE] [--redis URL] approve UUID --by USER\n", cli_cmd_approve},
    {"reject", "drop a batch that waits for approval: nothing is remediated, the copies are free again",
     "usage: clawback [-c FILE] [--redis URL] reject UUID --by USER\n", cli_cmd_reject},
    {"track", "show a message's tracking: its delivery, remediation lines and last state",
     "usage: clawback [-c FILE] [--redis URL] track [--json] MID\n"
     "  the delivery (from the index), every tracking line of the message in time order, and\n"
     "  its Last State per recipient; times in local time (TZ)\n",
     cli_cmd_track},
    {"batch", "list remediation batches, or show one batch and its jobs",
     "usage: clawback [-c FILE] [--redis URL] batch [--json] [UUID]\n"
     "  without UUID: the newest 50 batches (created, state, reason, initiator, counters)\n"
     "  with UUID: the batch's fields, how many of its jobs are done, and every job\n",
     cli_cmd_batch},
};

static void cli_usage(FILE *out)
{
    fprintf(out, "usage: clawback [-c FILE] [--redis URL] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < UTIL_ARRAY_LEN(COMMANDS); i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\n  -c, --config FILE   configuration (default %s if present)\n"
                 "      --redis URL     Redis server, overrides [redis] url\n"
                 "  -h, --help          this text (COMMAND --help: the command's)\n"
                 "  -V, --version       print the version\n",
            CONFIG_DEFAULT_PATH);
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

config_t *cli_config(cli_t *cli)
{
    char err[512];
    config_t *cfg = program_load_config(&cli->options, err, sizeof(err));
    if (!cfg)
        fprintf(stderr, "clawback: %s\n", err);
    return cfg;
}

redis_conn_t *cli_redis(const config_t *cfg)
{
    char err[512];
    redis_conn_t *redis = program_redis(cfg, err, sizeof(err));
    if (!redis)
        fprintf(stderr, "clawback: %s\n", err);
    return redis;
}

redis_conn_t *cli_connect(cli_t *cli)
{
    config_t *cfg = cli_config(cli);
    if (!cfg)
        return NULL;
    redis_conn_t *redis = cli_redis(cfg);
    config_destroy(&cfg);
    return redis;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                              {"redis", required_argument, NULL, 'r'},
                                              {"help", no_argument, NULL, 'h'},
                                              {"version", no_argument, NULL, 'V'},
                                              {NULL, 0, NULL, 0}};
    cli_t cli = {{0}};
    int c;
    /* "+": stop at the command, its options are its own */
    while ((c = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': cli.options.config_path = optarg; break;
        case 'r': cli.options.redis_url = optarg; break;
        case 'h': cli_usage(stdout); return CLI_OK;
        case 'V': printf("clawback %s\n", CLAWBACK_VERSION); return CLI_OK;
        default: cli_usage(stderr); return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        cli_usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        cli_usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(COMMANDS); i++) {
        if (strcmp(COMMANDS[i].name, name) != 0)
            continue;
        if (cli_wants_help(argc - optind, argv + optind)) {
            fputs(COMMANDS[i].usage, stdout);
            return CLI_OK;
        }
        int rc = COMMANDS[i].run(&cli, argc - optind, argv + optind);
        if (rc == CLI_USAGE)
            fputs(COMMANDS[i].usage, stderr);
        return rc;
    }
    fprintf(stderr, "clawback: unknown command '%s'\n", name);
    cli_usage(stderr);
    return CLI_USAGE;
}
