/*
 * backend_cli - run mailbox back-end steps by hand, for the integration tests and operators.
 *
 *   backend_cli -c CONF --profile NAME (find|forward|remove|forward-remove) --mailbox ADDR
 *               --message-id ID [--job-id ID] [--to ADDR] [--repeat N]
 *   backend_cli -c CONF --profile NAME (find|remove) --mailbox ADDR --message-id ID --message-id ID...
 *
 * Loads CONF, opens the profile's back-end, and in one session on ADDR runs find and then the
 * action's steps (forward, remove, or both), printing one line per step:
 * "STEP: ok|not_found|failed|retry: detail". A step that is not ok ends the run. --repeat N
 * runs the whole sequence N times on the same back-end (sessions are released reusable, so
 * the back-end's connection cache serves the later runs). --to defaults to the profile's
 * forward_to; --job-id to "cli-job".
 *
 * With several --message-id (find or remove only), the jobs go together through find_many and
 * remove_many, as the remediator hands a mailbox's waiting Delete jobs to a back-end; each
 * step prints one line per job: "STEP[K]: status: detail" (K from 0, in the order given).
 *
 * Exit status: that of the last step run: 0 ok, 3 not_found, 4 failed, 5 retry; 2 for bad
 * usage or a profile that cannot be opened.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"

static const char *const cli_status_names[] = {"ok", "not_found", "failed", "retry"};
static const int cli_status_exit[] = {0, 3, 4, 5};

/* cli_report - print one step's outcome; whether it was ok. */
static bool cli_report(const char *step, const backend_outcome_t *out)
{
    printf("%s: %s: %s\n", step, cli_status_names[out->status], out->detail);
    fflush(stdout);
    return out->status == BACKEND_OK;
}

/* cli_run - one find and the action's steps in one session; the last outcome's status. */
static backend_status_t cli_run(const backend_ops_t *ops, backend_t *backend, const char *action,
                                const backend_job_t *job, const char *to)
{
    backend_outcome_t out = {0};
    backend_session_t *session = ops->session(backend, job->mailbox, &out);
    if (!session) {
        cli_report("session", &out);
        return out.status;
    }
    bool reusable = true;
    ops->find(session, job, &out);
    bool ok = cli_report("find", &out);
    bool forward = !strcmp(action, "forward") || !strcmp(action, "forward-remove");
    bool remove = !strcmp(action, "remove") || !strcmp(action, "forward-remove");
    if (ok && forward) {
        ops->forward(session, job, to, &out);
        ok = cli_report("forward", &out);
    }
    if (ok && remove) {
        ops->remove(session, job, &out);
        ok = cli_report("remove", &out);
    }
    if (out.status == BACKEND_RETRY)
        reusable = false; /* a transport error leaves the connection in an unknown state */
    ops->release(backend, session, reusable);
    return out.status;
}

/* cli_run_many - find_many, then remove_many for remove, of n jobs in one session; the
 * status of the last job's last step. */
static backend_status_t cli_run_many(const backend_ops_t *ops, backend_t *backend, const char *action,
                                     const backend_job_t *jobs, size_t n)
{
    backend_outcome_t outs[BACKEND_MAX_MANY];
    memset(outs, 0, sizeof(outs));
    backend_session_t *session = ops->session(backend, jobs[0].mailbox, &outs[0]);
    if (!session) {
        cli_report("session", &outs[0]);
        return outs[0].status;
    }
    char step[32];
    ops->find_many(session, jobs, n, outs);
    bool reusable = true;
    for (size_t i = 0; i < n; i++) {
        snprintf(step, sizeof(step), "find[%zu]", i);
        cli_report(step, &outs[i]);
        reusable = reusable && outs[i].status != BACKEND_RETRY;
    }
    if (!strcmp(action, "remove")) {
        bool found[BACKEND_MAX_MANY];
        for (size_t i = 0; i < n; i++)
            found[i] = outs[i].status == BACKEND_OK;
        ops->remove_many(session, jobs, n, outs);
        for (size_t i = 0; i < n; i++) {
            reusable = reusable && outs[i].status != BACKEND_RETRY;
            snprintf(step, sizeof(step), "remove[%zu]", i);
            if (found[i])
                cli_report(step, &outs[i]);
        }
    }
    ops->release(backend, session, reusable);
    return outs[n - 1].status;
}

/* cli_usage - print usage and return 2. */
static int cli_usage(void)
{
    fprintf(stderr, "usage: backend_cli -c CONF --profile NAME (find|forward|remove|forward-remove) --mailbox ADDR\n"
                    "                   --message-id ID [--job-id ID] [--to ADDR] [--repeat N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},   {"profile", required_argument, NULL, 'p'},
        {"mailbox", required_argument, NULL, 'm'},  {"message-id", required_argument, NULL, 'i'},
        {"job-id", required_argument, NULL, 'j'},   {"to", required_argument, NULL, 't'},
        {"repeat", required_argument, NULL, 'r'},   {NULL, 0, NULL, 0},
    };
    const char *conf = NULL, *profile_name = NULL, *to = NULL;
    backend_job_t job = {.id = "cli-job", .batch = "00000000-0000-0000-0000-000000000000", .mid = 0};
    const char *ids[BACKEND_MAX_MANY];
    size_t nids = 0;
    long repeat = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:", options, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'p': profile_name = optarg; break;
        case 'm': job.mailbox = optarg; break;
        case 'i':
            if (nids == BACKEND_MAX_MANY)
                return cli_usage();
            job.message_id = ids[nids++] = optarg;
            break;
        case 'j': job.id = optarg; break;
        case 't': to = optarg; break;
        case 'r': repeat = strtol(optarg, NULL, 10); break;
        default: return cli_usage();
        }
    }
    if (!conf || !profile_name || !job.mailbox || !job.message_id || optind + 1 != argc || repeat < 1 ||
        repeat > 1000)
        return cli_usage();
    const char *action = argv[optind];
    if (strcmp(action, "find") && strcmp(action, "forward") && strcmp(action, "remove") &&
        strcmp(action, "forward-remove"))
        return cli_usage();
    if (nids > 1 && strcmp(action, "find") && strcmp(action, "remove"))
        return cli_usage();

    char err[512];
    config_t *cfg = config_new();
    if (config_load(cfg, conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "backend_cli: %s\n", err);
        config_destroy(&cfg);
        return 2;
    }
    const config_profile_t *profile = config_profile_find(cfg, profile_name);
    const backend_ops_t *ops = profile ? backend_ops_for(profile->type) : NULL;
    if (!ops) {
        fprintf(stderr, "backend_cli: %s %s\n", profile ? "no back-end for the type of profile" : "no profile",
                profile_name);
        config_destroy(&cfg);
        return 2;
    }
    backend_t *backend = ops->open(profile, err, sizeof(err));
    if (!backend) {
        fprintf(stderr, "backend_cli: %s\n", err);
        config_destroy(&cfg);
        return 2;
    }
    if (!to)
        to = profile->forward_to;
    backend_status_t status = BACKEND_OK;
    backend_job_t jobs[BACKEND_MAX_MANY];
    for (size_t i = 0; i < nids; i++) {
        jobs[i] = job;
        jobs[i].message_id = ids[i];
    }
    if (nids > 1 && !(ops->find_many && ops->remove_many)) {
        fprintf(stderr, "backend_cli: profile %s's back-end takes no jobs together\n", profile_name);
        status = BACKEND_FAILED;
        repeat = 0;
    }
    for (long i = 0; i < repeat; i++)
        status = nids > 1 ? cli_run_many(ops, backend, action, jobs, nids) : cli_run(ops, backend, action, &job, to);
    ops->destroy(&backend);
    config_destroy(&cfg);
    return cli_status_exit[status];
}
