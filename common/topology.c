/*
 * topology.c - the table of bus edges; see topology.h.
 */
#include "topology.h"

#include <string.h>

#include "util.h"

static const topology_edge_t TOPOLOGY[] = {
    {"verdicts", &RECORD_DESC_verdict, "clawback-poller", "clawback-enricher",
     "retrospective verdicts from the feeds"},
    {"jobs", &RECORD_DESC_job, "clawback-enricher clawback", "clawback-remediator",
     "one remediation per (message, recipient)"},
    {"results", &RECORD_DESC_result, "clawback-remediator", "clawback-logger", "the outcome of each job"},
    {"events", &RECORD_DESC_event, "clawback-poller clawback-enricher clawback-remediator clawback",
     "clawback-logger", "log lines and message-tracking events for the logger"},
};

const topology_edge_t *topology_edges(size_t *count)
{
    *count = UTIL_ARRAY_LEN(TOPOLOGY);
    return TOPOLOGY;
}

const topology_edge_t *topology_find(const char *edge)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(TOPOLOGY); i++)
        if (strcmp(TOPOLOGY[i].edge, edge) == 0)
            return &TOPOLOGY[i];
    return NULL;
}

/* list_contains - whether a space-separated list holds the word. */
static bool list_contains(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p += len;
        while (*p == ' ')
            p++;
    }
    return false;
}

bool topology_produces(const topology_edge_t *edge, const char *program)
{
    return list_contains(edge->producers, program);
}

bool topology_consumes(const topology_edge_t *edge, const char *program)
{
    return list_contains(edge->consumers, program);
}
