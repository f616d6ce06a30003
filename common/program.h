/*
 * program.h - start-up steps shared by every Clawback program (daemons and the clawback
 * command): which configuration to load, the Redis connection it names, and the index on it.
 */
#ifndef CLAWBACK_PROGRAM_H
#define CLAWBACK_PROGRAM_H

#include <stddef.h>

#include "config.h"
#include "mindex.h"
#include "redis_conn.h"

#define CLAWBACK_VERSION "0.1.0"

typedef struct {
    const char *config_path; /* -c FILE, or NULL */
    const char *redis_url;   /* --redis URL, or NULL */
    const char *log_level;   /* --log-level LEVEL, or NULL */
} program_options_t;

/* program_load_config - the file given, else CONFIG_DEFAULT_PATH when it exists, else the
 * embedded defaults; then the command-line overrides. NULL with the reason in err. Caller
 * owns the result. */
config_t *program_load_config(const program_options_t *options, char *err, size_t errsize);

/* program_redis - a (lazy) connection to the configured Redis, with the password from
 * [redis] password_file when set. NULL with the reason in err. Caller owns the result. */
redis_conn_t *program_redis(const config_t *cfg, char *err, size_t errsize);

/* program_index - the index of delivered messages on redis (borrowed), with the [index]
 * settings of cfg. Caller destroys (mindex_destroy). */
mindex_t *program_index(const config_t *cfg, redis_conn_t *redis);

#endif
