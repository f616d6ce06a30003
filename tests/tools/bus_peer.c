/*
 * bus_peer - a configurable stage for the bus integration tests and the benchmark.
 *
 *   bus_peer [-c FILE] [--redis URL] produce --edge E --count N [--prefix P] [--dup] [--stay]
 *       commit N records (ids P-0 .. P-N-1; --dup commits each twice), waiting while the edge
 *       is full; dispatch E; with --stay keep dispatching until SIGTERM.
 *   bus_peer ... relay --in A --out B [--delay-ms D]
 *       consume A; for each record commit the same record to B; dispatch B.
 *   bus_peer ... sink --in A [--out S] [--delay-ms D]
 *       consume A; for each record commit it to S (default "sink", never consumed) and record
 *       which instance handled it in the hash test:handled.
 *   bus_peer ... answer [--not-found ADDR] [--fail ADDR] [--delay-ms D]
 *       stand in for the remediator: consume jobs; for each commit a result to results
 *       (remediated; not_found for recipient ADDR of --not-found; failed for that of --fail),
 *       with the job's reason and profile, and record the job id in the hash test:answered.
 *   bus_peer ... verdict --value V [--type url|domain] [--disposition D] [--email-id E]
 *                    [--observed-ms MS] [--feed F] [--id ID]
 *       commit one verdict record to the verdicts edge and exit (a `produce --edge verdicts
 *       --count 0 --stay` peer, or a poller, dispatches it); prints its id.
 *   bus_peer ... evil --edge E
 *       send malformed and oversized frames to every dispatcher of E, then exit.
 *   bus_peer ... evil-dispatcher --edge E --count N [--stay]
 *       announce itself as a dispatcher of E and answer consumers' requests with N malformed
 *       or oversized messages, then withdraw.
 *
 * Progress goes to standard output as "produced N" / "stopped" lines.
 */
#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "program.h"
#include "util.h"

typedef struct {
    bus_t *bus;
    redis_conn_t *redis;
    const config_t *cfg;
    const char *edge, *in, *out, *prefix, *not_found, *fail;
    record_verdict_t verdict;
    long count, produced, delay_ms;
    bool dup, stay;
} peer_t;

/* peer_payload - an encoded event record with the given id. */
static void peer_payload(const char *id, long n, msgpack_sbuffer *buf)
{
    record_event_t ev = {0};
    char message[64];
    snprintf(message, sizeof(message), "bus_peer record %ld", n);
    ev.id = (char *)id;
    ev.time_ms = util_now_ms();
    ev.program = "bus_peer";
    ev.log = "tracking";
    ev.level = "info";
    ev.message = message;
    char err[128];
    if (record_encode(&RECORD_DESC_event, &ev, buf, err, sizeof(err)) < 0) {
        fprintf(stderr, "bus_peer: %s\n", err);
        exit(1);
    }
}

/* peer_produce_tick - commit the next batch while the edge has room. */
static int peer_produce_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    peer_t *p = arg;
    for (int i = 0; i < 200 && p->produced < p->count; i++) {
        if (!bus_edge_has_room(p->bus, p->edge))
            break;
        char id[96];
        snprintf(id, sizeof(id), "%s-%ld", p->prefix, p->produced);
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        peer_payload(id, p->produced, &buf);
        bus_commit_t *c = bus_commit_new(p->bus, NULL);
        bus_commit_add(c, p->edge, id, buf.data, buf.size);
        if (p->dup)
            bus_commit_add(c, p->edge, id, buf.data, buf.size);
        bus_status_t st = bus_commit_run(c);
        bus_commit_destroy(&c);
        msgpack_sbuffer_destroy(&buf);
        if (st != BUS_OK)
            break; /* full or Redis down: try again next tick */
        p->produced++;
        if (p->produced % 1000 == 0 || p->produced == p->count) {
            printf("produced %ld\n", p->produced);
            fflush(stdout);
        }
    }
    if (p->produced >= p->count && !p->stay)
        return -1;
    return 0;
}

/* peer_forward - commit the delivery's payload to edge `to`, consuming it. */
static int peer_forward(peer_t *p, const bus_delivery_t *d, const char *to, bool record_handler)
{
    if (p->delay_ms)
        usleep((useconds_t)p->delay_ms * 1000);
    bus_commit_t *c = bus_commit_new(p->bus, d);
    bus_commit_add(c, to, d->record_id, d->payload, d->len);
    if (record_handler)
        bus_commit_hset(c, "test:handled", d->record_id, bus_instance(p->bus));
    bus_status_t st = bus_commit_run(c);
    bus_commit_destroy(&c);
    return st == BUS_OK || st == BUS_DUPLICATE ? 0 : -1;
}

static int peer_on_relay(bus_t *bus, const bus_delivery_t *d, void *arg)
{
    (void)bus;
    peer_t *p = arg;
    return peer_forward(p, d, p->out, false);
}

/* peer_verdict - commit p->verdict; 0 or 1. */
static int peer_verdict(peer_t *p)
{
    zloop_t *loop = zloop_new();
    char err[256];
    p->bus = bus_new(p->cfg, p->redis, loop, "bus_peer", err, sizeof(err));
    record_verdict_t *v = &p->verdict;
    char id[RECORD_MAX_ID + 1];
    if (!v->id) {
        util_uuid(id);
        v->id = id;
    }
    v->time_ms = util_now_ms();
    if (!v->feed)
        v->feed = "test";
    if (!v->observable_type)
        v->observable_type = "url";
    if (!v->disposition)
        v->disposition = "malicious";
    bus_commit_t *c = bus_commit_new(p->bus, NULL);
    int rc = bus_commit_add_record(c, "verdicts", &RECORD_DESC_verdict, v, err, sizeof(err));
    bus_status_t st = rc == 0 ? bus_commit_run(c) : BUS_ERROR;
    bus_commit_destroy(&c);
    if (st != BUS_OK)
        fprintf(stderr, "bus_peer: verdict not committed: %s\n", rc ? err : bus_errstr(p->bus));
    else
        printf("%s\n", v->id);
    bus_destroy(&p->bus);
    zloop_destroy(&loop);
    return st == BUS_OK ? 0 : 1;
}

/* peer_on_answer - a result for a job, as the remediator would commit it. */
static int peer_on_answer(bus_t *bus, const bus_delivery_t *d, void *arg)
{
    peer_t *p = arg;
    record_job_t job;
    char err[256];
    if (record_decode(&RECORD_DESC_job, d->payload, d->len, &job, err, sizeof(err)) != 0)
        return bus_set_aside(bus, d, err);
    if (p->delay_ms)
        usleep((useconds_t)p->delay_ms * 1000);
    record_result_t r = {0};
    char id[RECORD_MAX_ID + 8];
    snprintf(id, sizeof(id), "r:%s", job.id);
    r.id = id;
    r.time_ms = util_now_ms();
    r.job_id = job.id;
    r.batch = job.batch;
    r.mid = job.mid;
    r.recipient = job.recipient;
    r.action = job.action;
    r.profile = job.profile;
    r.reason = job.reason;
    r.attempts = 1;
    r.status = "remediated";
    if (p->not_found && !strcmp(job.recipient, p->not_found))
        r.status = "not_found";
    if (p->fail && !strcmp(job.recipient, p->fail)) {
        r.status = "failed";
        r.detail = "IMAP NO [AUTHENTICATIONFAILED] Authentication failed";
    }
    if (strcmp(job.action, "delete") != 0)
        r.forward_to = "soc@example.net";
    bus_commit_t *c = bus_commit_new(bus, d);
    int rc = bus_commit_add_record(c, "results", &RECORD_DESC_result, &r, err, sizeof(err));
    bus_commit_hset(c, "test:answered", job.id, job.action);
    bus_status_t st = rc == 0 ? bus_commit_run(c) : BUS_ERROR;
    bus_commit_destroy(&c);
    record_clear(&RECORD_DESC_job, &job);
    return st == BUS_OK || st == BUS_DUPLICATE ? 0 : -1;
}

static int peer_on_sink(bus_t *bus, const bus_delivery_t *d, void *arg)
{
    (void)bus;
    peer_t *p = arg;
    return peer_forward(p, d, p->out, true);
}

/* peer_evil - malformed and oversized frames to every announced dispatcher of the edge. */
static int peer_evil(peer_t *p)
{
    char key[96];
    bus_key(key, sizeof(key), p->edge, "dispatchers");
    redisReply *r = redis_conn_command(p->redis, "HKEYS %s", key);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        fprintf(stderr, "bus_peer: no dispatcher of %s\n", p->edge);
        if (r)
            freeReplyObject(r);
        return 1;
    }
    size_t big_len = (size_t)p->cfg->bus_max_record + 100;
    char *big = util_xcalloc(1, big_len);
    memset(big, 'x', big_len);
    int sent = 0;
    for (size_t i = 0; i < r->elements; i++) {
        zsock_t *s = zsock_new_dealer(r->element[i]->str);
        zsock_set_sndtimeo(s, 2000);
        zsock_set_linger(s, 2000);
        char text[128];
        if (zstr_send(s, "garbage") == 0) /* no command */
            sent++;
        snprintf(text, sizeof(text), "GET %s lots 0", p->edge); /* bad number */
        if (zstr_send(s, text) == 0)
            sent++;
        if (zstr_send(s, "GET no-such-edge 1 0") == 0) /* unknown edge */
            sent++;
        snprintf(text, sizeof(text), "PUT %s 1 0", p->edge); /* unknown command */
        if (zstr_send(s, text) == 0)
            sent++;
        snprintf(text, sizeof(text), "GET %s 1 0", p->edge); /* two frames: the old wire form */
        if (zstr_sendx(s, text, "0", NULL) == 0)
            sent++;
        snprintf(text, sizeof(text), "GET %s 1 ", p->edge); /* oversized */
        memcpy(big, text, strlen(text));
        if (zmq_send(zsock_resolve(s), big, big_len, 0) >= 0)
            sent++;
        zsock_destroy(&s); /* linger flushes */
    }
    printf("sent %d bad messages\n", sent);
    free(big);
    freeReplyObject(r);
    return 0;
}

/* peer_evil_dispatcher - answer consumers' GETs with malformed and oversized messages. */
static int peer_evil_dispatcher(peer_t *p)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    char endpoint[64], key[96];
    snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%d", port);
    bus_key(key, sizeof(key), p->edge, "dispatchers");
    redisReply *r = redis_conn_command(p->redis, "HSET %s %s %lld", key, endpoint, (long long)util_now_ms() + 60000);
    if (r)
        freeReplyObject(r);
    size_t big_len = (size_t)p->cfg->bus_max_record + 1000;
    char *big = util_xcalloc(1, big_len);
    zsock_set_rcvtimeo(router, 200);
    long sent = 0;
    int64_t deadline = util_monotonic_ms() + 30000;
    while (sent < p->count && util_monotonic_ms() < deadline) {
        zmsg_t *msg = zmsg_recv(router);
        if (!msg)
            continue;
        zframe_t *id = zmsg_pop(msg);
        zmsg_destroy(&msg);
        /* the wire form: "REC", edge, entry id, record id (each after a length byte), payload */
        const char *variants[][5] = {{"REC", p->edge, "not-an-id", "r1", "x"},
                                     {"REC", p->edge, "1-1", "", "x"},
                                     {"REC", "other", "1-1", "r1", "x"},
                                     {"HELLO", p->edge, "1-1", "r1", "x"}};
        zmsg_t *bad = zmsg_new();
        zmsg_append(bad, &(zframe_t *){zframe_dup(id)});
        const char *const *v = variants[sent % 5 == 4 ? 0 : sent % 5];
        const char *entry = sent % 5 == 4 ? "1-1" : v[2], *rid = sent % 5 == 4 ? "r-big" : v[3];
        size_t plen = sent % 5 == 4 ? big_len : strlen(v[4]);
        size_t flen = strlen(v[0]) + 3 + strlen(v[1]) + strlen(entry) + strlen(rid) + plen;
        unsigned char *frame = util_xmalloc(flen), *o = frame;
        memcpy(o, v[0], strlen(v[0]));
        o += strlen(v[0]);
        const char *fields[3] = {v[1], entry, rid};
        for (int i = 0; i < 3; i++) {
            *o++ = (unsigned char)strlen(fields[i]);
            memcpy(o, fields[i], strlen(fields[i]));
            o += strlen(fields[i]);
        }
        memcpy(o, sent % 5 == 4 ? big : v[4], plen);
        zmsg_addmem(bad, frame, flen);
        free(frame);
        zmsg_send(&bad, router);
        zframe_destroy(&id);
        sent++;
    }
    printf("sent %ld bad messages\n", sent);
    fflush(stdout);
    /* --stay: remain announced (answering nothing) until stopped, so that consumers receive
     * every frame sent before the announcement disappears and they drop the connection */
    int64_t stay_until = util_monotonic_ms() + 60000;
    while (p->stay && !zsys_interrupted && util_monotonic_ms() < stay_until) {
        zmsg_t *msg = zmsg_recv(router);
        zmsg_destroy(&msg);
    }
    r = redis_conn_command(p->redis, "HDEL %s %s", key, endpoint);
    if (r)
        freeReplyObject(r);
    free(big);
    zsock_set_linger(router, 1000);
    zsock_destroy(&router);
    return sent == p->count ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"redis", required_argument, NULL, 'r'},
        {"edge", required_argument, NULL, 'e'},   {"in", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},    {"count", required_argument, NULL, 'n'},
        {"prefix", required_argument, NULL, 'p'}, {"delay-ms", required_argument, NULL, 'd'},
        {"dup", no_argument, NULL, 'D'},          {"stay", no_argument, NULL, 's'},
        {"not-found", required_argument, NULL, 'N'}, {"fail", required_argument, NULL, 'F'},
        {"value", required_argument, NULL, 'V'}, {"type", required_argument, NULL, 'T'},
        {"disposition", required_argument, NULL, 'P'}, {"email-id", required_argument, NULL, 'E'},
        {"observed-ms", required_argument, NULL, 'O'}, {"feed", required_argument, NULL, 'f'},
        {"id", required_argument, NULL, 'I'},
        {NULL, 0, NULL, 0}};
    program_options_t opts = {0};
    peer_t p = {.prefix = "r", .out = "sink"};
    int c;
    while ((c = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': opts.config_path = optarg; break;
        case 'r': opts.redis_url = optarg; break;
        case 'e': p.edge = optarg; break;
        case 'i': p.in = optarg; break;
        case 'o': p.out = optarg; break;
        case 'n': p.count = atol(optarg); break;
        case 'p': p.prefix = optarg; break;
        case 'd': p.delay_ms = atol(optarg); break;
        case 'D': p.dup = true; break;
        case 's': p.stay = true; break;
        case 'N': p.not_found = optarg; break;
        case 'F': p.fail = optarg; break;
        case 'V': p.verdict.value = optarg; break;
        case 'T': p.verdict.observable_type = optarg; break;
        case 'P': p.verdict.disposition = optarg; break;
        case 'E': p.verdict.email_id = optarg; break;
        case 'O': p.verdict.observed_ms = atoll(optarg); break;
        case 'f': p.verdict.feed = optarg; break;
        case 'I': p.verdict.id = optarg; break;
        default: return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: bus_peer [options] produce|relay|sink|answer|verdict|evil|evil-dispatcher\n");
        return 2;
    }
    const char *mode = argv[optind];
    char err[512];
    config_t *cfg = program_load_config(&opts, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "bus_peer: %s\n", err);
        return 1;
    }
    p.cfg = cfg;
    log_open("bus_peer", cfg->log_level, cfg->log_file, cfg->log_json_file);
    p.redis = program_redis(cfg, err, sizeof(err));
    if (!p.redis) {
        fprintf(stderr, "bus_peer: %s\n", err);
        return 1;
    }
    if (strcmp(mode, "evil") == 0 || strcmp(mode, "evil-dispatcher") == 0) {
        int evil_rc = strcmp(mode, "evil") == 0 ? peer_evil(&p) : peer_evil_dispatcher(&p);
        redis_conn_destroy(&p.redis);
        config_destroy(&cfg);
        return evil_rc;
    }

    if (strcmp(mode, "verdict") == 0) {
        int verdict_rc = p.verdict.value ? peer_verdict(&p) : 2;
        redis_conn_destroy(&p.redis);
        config_destroy(&cfg);
        return verdict_rc;
    }

    zloop_t *loop = zloop_new();
    p.bus = bus_new(cfg, p.redis, loop, "bus_peer", err, sizeof(err));
    int rc = 0;
    if (strcmp(mode, "produce") == 0 && p.edge) {
        rc = bus_produce(p.bus, p.edge);
        zloop_timer(loop, 1, 0, peer_produce_tick, &p);
    } else if (strcmp(mode, "relay") == 0 && p.in && p.out) {
        rc = bus_produce(p.bus, p.out);
        if (rc == 0)
            rc = bus_consume(p.bus, p.in, peer_on_relay, &p);
    } else if (strcmp(mode, "answer") == 0) {
        rc = bus_produce(p.bus, "results");
        if (rc == 0)
            rc = bus_consume(p.bus, "jobs", peer_on_answer, &p);
    } else if (strcmp(mode, "sink") == 0 && p.in) {
        rc = bus_consume(p.bus, p.in, peer_on_sink, &p);
    } else {
        fprintf(stderr, "bus_peer: bad mode or missing options\n");
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "bus_peer: %s\n", bus_errstr(p.bus));
        return 1;
    }
    zloop_start(loop); /* ends on SIGINT/SIGTERM (czmq's handler) or when production ends */
    bus_stop(p.bus);
    printf("stopped\n");
    fflush(stdout);
    bus_destroy(&p.bus);
    zloop_destroy(&loop);
    redis_conn_destroy(&p.redis);
    config_destroy(&cfg);
    return 0;
}
