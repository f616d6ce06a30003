/*
 * topology.h - the process topology of Clawback, written in one place.
 *
 * Each edge of the pipeline is a named bus edge (a Redis stream plus ZeroMQ dispatch, see
 * bus.h) carrying one record type, with the programs that produce it and the programs that
 * consume it. The daemon skeleton reads this table: a daemon dispatches every edge it
 * produces and consumes every edge it consumes, so no daemon names a socket or a stream.
 *
 *   clawback-poller --verdicts--> clawback-enricher --jobs--> clawback-remediator
 *   clawback (operator) --jobs--^                    clawback-remediator --results--> clawback-logger
 *   every program --events--> clawback-logger
 */
#ifndef CLAWBACK_TOPOLOGY_H
#define CLAWBACK_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>

#include "record.h"

typedef struct {
    const char *edge;
    const record_desc_t *record;
    const char *producers; /* space-separated program names */
    const char *consumers;
    const char *purpose;
} topology_edge_t;

/* topology_edges - the table and its length. */
const topology_edge_t *topology_edges(size_t *count);
/* topology_find - the edge with that name, or NULL. */
const topology_edge_t *topology_find(const char *edge);
/* topology_produces, topology_consumes - whether program appears in the edge's list. */
bool topology_produces(const topology_edge_t *edge, const char *program);
bool topology_consumes(const topology_edge_t *edge, const char *program);

#endif
