/*
 * cmd_config.c - `clawback config example|check`.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_cmd_config(cli_t *cli, int argc, char **argv)
{
    if (argc != 2)
        return CLI_USAGE;
    if (strcmp(argv[1], "example") == 0) {
        config_write_example(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "check") == 0) {
        config_t *cfg = cli_config(cli);
        if (!cfg)
            return CLI_FAILURE;
        printf("%s: ok\n", cfg->path ? cfg->path : "embedded defaults");
        config_destroy(&cfg);
        return CLI_OK;
    }
    return CLI_USAGE;
}
