/*
 * cli.h - the clawback operator command: shared state of its subcommands.
 *
 * `clawback [-c FILE] [--redis URL] COMMAND [ARGS]`; each command is one cli_command_t in
 * main.c's table, implemented in cli/cmd_<name>.c. Exit status: 0 success, 1 failure,
 * 2 bad usage; errors go to standard error.
 */
#ifndef CLAWBACK_CLI_H
#define CLAWBACK_CLI_H

#include "message.h"
#include "mindex.h"
#include "query.h"
#include "strbuf.h"
#include "program.h"

#define CLI_OK 0
#define CLI_FAILURE 1
#define CLI_USAGE 2

typedef struct {
    program_options_t options;
} cli_t;

typedef struct {
    const char *name;
    const char *summary;
    const char *usage; /* printed by `clawback COMMAND --help` */
    int (*run)(cli_t *cli, int argc, char **argv);
} cli_command_t;

/* cli_wants_help - whether argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

/* cli_config - load the configuration for a command; NULL after printing why. Caller owns. */
config_t *cli_config(cli_t *cli);

/* cli_redis - a connection to the configured Redis; NULL after printing why. Caller owns. */
redis_conn_t *cli_redis(const config_t *cfg);
/* cli_connect - cli_config then cli_redis, for a command that needs nothing else of the
 * configuration; NULL after printing why. Caller owns. */
redis_conn_t *cli_connect(cli_t *cli);

int cli_cmd_config(cli_t *cli, int argc, char **argv);
int cli_cmd_queues(cli_t *cli, int argc, char **argv);
int cli_cmd_feeds(cli_t *cli, int argc, char **argv);
int cli_cmd_url(cli_t *cli, int argc, char **argv);
int cli_cmd_inspect(cli_t *cli, int argc, char **argv);
int cli_cmd_ingest(cli_t *cli, int argc, char **argv);
int cli_cmd_search(cli_t *cli, int argc, char **argv);
int cli_cmd_track(cli_t *cli, int argc, char **argv);
int cli_cmd_batch(cli_t *cli, int argc, char **argv);
int cli_cmd_remediate(cli_t *cli, int argc, char **argv);
int cli_cmd_approve(cli_t *cli, int argc, char **argv);
int cli_cmd_reject(cli_t *cli, int argc, char **argv);

/* cli_search_run - run a parsed query against the index: fn(record, arg) for each matching
 * record, newest first, at most limit; a non-zero return from fn stops the run. *candidates:
 * the MIDs the index terms gave. The number of matches, or -1 after printing why. */
typedef int (*cli_search_fn)(const mindex_record_t *rec, void *arg);
long cli_search_run(mindex_t *ix, const query_t *q, size_t limit, cli_search_fn fn, void *arg, size_t *candidates);

/* cli_append_clean - append s for a terminal: control bytes (from mail or Redis) as '?'. */
void cli_append_clean(strbuf_t *out, const char *s);

/* cli_load_message - read and parse the message file at path ("-": standard input) into *msg
 * (caller clears it). 0, or -1 after printing why. */
int cli_load_message(const char *path, const message_context_t *ctx, message_t *msg);

#endif
