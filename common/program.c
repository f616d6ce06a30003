/*
 * program.c - configuration selection and the Redis connection; see program.h.
 */
#include "program.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

config_t *program_load_config(const program_options_t *options, char *err, size_t errsize)
{
    config_t *cfg = config_new();
    const char *path = options->config_path;
    if (!path && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = CONFIG_DEFAULT_PATH;
    if (path && config_load(cfg, path, err, errsize) < 0) {
        config_destroy(&cfg);
        return NULL;
    }
    if (options->redis_url && config_set(cfg, "redis", "url", options->redis_url, err, errsize) < 0) {
        config_destroy(&cfg);
        return NULL;
    }
    if (options->log_level && config_set(cfg, "log", "level", options->log_level, err, errsize) < 0) {
        config_destroy(&cfg);
        return NULL;
    }
    return cfg;
}

redis_conn_t *program_redis(const config_t *cfg, char *err, size_t errsize)
{
    char password[512] = "";
    if (cfg->redis_password_file && *cfg->redis_password_file) {
        FILE *f = fopen(cfg->redis_password_file, "r");
        if (!f) {
            snprintf(err, errsize, "[redis] password_file %s: %s", cfg->redis_password_file, strerror(errno));
            return NULL;
        }
        if (!fgets(password, sizeof(password), f))
            password[0] = '\0';
        fclose(f);
        password[strcspn(password, "\r\n")] = '\0';
    }
    return redis_conn_new(cfg->redis_url, *password ? password : NULL, cfg->redis_timeout_ms, err, errsize);
}

mindex_t *program_index(const config_t *cfg, redis_conn_t *redis)
{
    mindex_options_t opts = {.retention_ms = cfg->index_retention_ms, .bucket_bits = (int)cfg->index_bucket_bits};
    return mindex_new(redis, &opts);
}
