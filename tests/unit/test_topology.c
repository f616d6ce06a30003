/*
 * test_topology.c - the process topology is complete and consistent: every edge has a record
 * type, a producing and a consuming program, a valid bus name, and every daemon appears.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "topology.h"

static const char *const DAEMONS[] = {"clawback-poller", "clawback-enricher", "clawback-remediator",
                                      "clawback-logger"};

static void test_edges_well_formed(void **state)
{
    (void)state;
    size_t n;
    const topology_edge_t *edges = topology_edges(&n);
    assert_true(n >= 4);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(edges[i].record);
        assert_true(strlen(edges[i].edge) > 0 && strlen(edges[i].edge) <= 32);
        assert_int_equal(strspn(edges[i].edge, "abcdefghijklmnopqrstuvwxyz0123456789_-"), strlen(edges[i].edge));
        assert_true(strlen(edges[i].producers) > 0);
        assert_true(strlen(edges[i].consumers) > 0);
        assert_ptr_equal(topology_find(edges[i].edge), &edges[i]);
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(edges[i].edge, edges[j].edge);
    }
    assert_null(topology_find("no-such-edge"));
}

static void test_pipeline_shape(void **state)
{
    (void)state;
    static const struct {
        const char *edge, *record, *producer, *consumer;
    } expect[] = {
        {"verdicts", "verdict", "clawback-poller", "clawback-enricher"},
        {"jobs", "job", "clawback-enricher", "clawback-remediator"},
        {"jobs", "job", "clawback", "clawback-remediator"},
        {"results", "result", "clawback-remediator", "clawback-logger"},
        {"events", "event", "clawback-enricher", "clawback-logger"},
        {"events", "event", "clawback-remediator", "clawback-logger"},
        {"events", "event", "clawback-poller", "clawback-logger"},
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        const topology_edge_t *e = topology_find(expect[i].edge);
        assert_non_null(e);
        assert_string_equal(record_desc_name(e->record), expect[i].record);
        assert_true(topology_produces(e, expect[i].producer));
        assert_true(topology_consumes(e, expect[i].consumer));
        assert_false(topology_consumes(e, expect[i].producer));
    }
    /* word matching, not substring matching */
    const topology_edge_t *jobs = topology_find("jobs");
    assert_false(topology_produces(jobs, "clawback-enrich"));
    assert_false(topology_produces(jobs, "enricher"));
    assert_false(topology_consumes(jobs, "clawback"));
}

static void test_every_daemon_connected(void **state)
{
    (void)state;
    size_t n;
    const topology_edge_t *edges = topology_edges(&n);
    for (size_t d = 0; d < sizeof(DAEMONS) / sizeof(DAEMONS[0]); d++) {
        int uses = 0;
        for (size_t i = 0; i < n; i++)
            uses += topology_produces(&edges[i], DAEMONS[d]) + topology_consumes(&edges[i], DAEMONS[d]);
        assert_true(uses > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges_well_formed),
        cmocka_unit_test(test_pipeline_shape),
        cmocka_unit_test(test_every_daemon_connected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
