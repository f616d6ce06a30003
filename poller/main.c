/*
 * clawback-poller - turns retrospective verdicts from threat feeds into verdict records.
 *
 * This version joins the bus as the dispatcher of the verdicts and events edges; the feeds
 * themselves (retro, taxii21, urlhaus, openphish, misp) come with the poller issue.
 */
#include "daemon.h"

int main(int argc, char **argv)
{
    static const daemon_spec_t spec = {
        .program = "clawback-poller",
        .summary = "Polls retrospective verdict feeds and hands verdicts to the enricher.",
    };
    return daemon_main(argc, argv, &spec, NULL);
}
