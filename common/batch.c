/*
 * batch.c - batch keys, ids and the seed's remediation lines; see batch.h.
 */
#include "batch.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void batch_key(char *out, size_t size, const char *uuid, const char *suffix)
{
    snprintf(out, size, "cb:batch:%s%s%s", uuid, suffix ? ":" : "", suffix ? suffix : "");
}

void batch_copies_key(char *out, size_t size, int64_t mid)
{
    snprintf(out, size, "cb:copies:%" PRId64, mid / BATCH_COPIES_SHARD);
}

void batch_track_key(char *out, size_t size, int64_t mid)
{
    snprintf(out, size, "cb:trk:%" PRId64, mid);
}

/* batch_field_into - "<mid><sep><s>" into out (BATCH_FIELD_MAX bytes; s cut to fit). */
#define BATCH_FIELD_MAX 512
static void batch_field_into(char out[BATCH_FIELD_MAX], int64_t mid, const char *sep, const char *s)
{
    size_t len = util_put_int(out, mid);
    size_t n = strlen(sep);
    memcpy(out + len, sep, n);
    len += n;
    n = strnlen(s, BATCH_FIELD_MAX - 1 - len);
    memcpy(out + len, s, n);
    out[len + n] = '\0';
}

/* batch_concat - prefix + s, allocated. */
static char *batch_concat(const char *prefix, const char *s)
{
    size_t a = strlen(prefix), b = strlen(s);
    char *out = util_xmalloc(a + b + 1);
    memcpy(out, prefix, a);
    memcpy(out + a, s, b + 1);
    return out;
}

char *batch_job_field(int64_t mid, const char *rcpt)
{
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "%" PRId64 " ", mid);
    return batch_concat(prefix, rcpt);
}

char *batch_claim_field(int64_t mid, const char *rcpt)
{
    char prefix[40];
    snprintf(prefix, sizeof(prefix), "%" PRId64 " job:", mid);
    return batch_concat(prefix, rcpt);
}

char *batch_state_field(int64_t mid, const char *rcpt)
{
    char prefix[40];
    snprintf(prefix, sizeof(prefix), "%" PRId64 " state:", mid);
    return batch_concat(prefix, rcpt);
}

static int batch_copy_cmp(const void *a, const void *b)
{
    return strcmp(((const batch_copy_t *)a)->rcpt, ((const batch_copy_t *)b)->rcpt);
}

/* batch_copies_take - note field=value of a cb:copies field of the message (prefix "<mid> "). */
static void batch_copies_take(batch_copy_t **copies, size_t *n, size_t *cap, const char *field, const char *value)
{
    bool is_state = strncmp(field, "state:", 6) == 0;
    if (!is_state && strncmp(field, "job:", 4) != 0)
        return;
    const char *rcpt = field + (is_state ? 6 : 4);
    if (!*rcpt)
        return;
    batch_copy_t *c = NULL;
    for (size_t i = *n; i > 0 && !c; i--) /* the two fields of a copy are usually near */
        if (strcmp((*copies)[i - 1].rcpt, rcpt) == 0)
            c = &(*copies)[i - 1];
    if (!c) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 8;
            *copies = util_xrealloc(*copies, *cap * sizeof(**copies));
        }
        c = &(*copies)[(*n)++];
        memset(c, 0, sizeof(*c));
        c->rcpt = util_xstrdup(rcpt);
    }
    char **slot = is_state ? &c->state : &c->batch;
    free(*slot);
    *slot = util_xstrdup(value);
}

int batch_copies_read(redis_conn_t *redis, int64_t mid, batch_copy_t **copies, size_t *n)
{
    char key[48], pattern[40], prefix[32], cursor[32] = "0";
    batch_copies_key(key, sizeof(key), mid);
    snprintf(prefix, sizeof(prefix), "%" PRId64 " ", mid);
    snprintf(pattern, sizeof(pattern), "%s*", prefix);
    size_t plen = strlen(prefix), cap = 0;
    *copies = NULL;
    *n = 0;
    int rc = 0;
    /* a key holds at most BATCH_COPIES_SHARD messages' copies: the scan ends */
    do {
        redisReply *r = redis_conn_command(redis, "HSCAN %s %s MATCH %s COUNT 1000", key, cursor, pattern);
        bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
                  r->element[1]->type == REDIS_REPLY_ARRAY;
        if (ok) {
            util_strlcpy(cursor, r->element[0]->str, sizeof(cursor));
            const redisReply *kv = r->element[1];
            for (size_t i = 0; i + 1 < kv->elements; i += 2)
                if (kv->element[i]->type == REDIS_REPLY_STRING && kv->element[i + 1]->type == REDIS_REPLY_STRING &&
                    strncmp(kv->element[i]->str, prefix, plen) == 0)
                    batch_copies_take(copies, n, &cap, kv->element[i]->str + plen, kv->element[i + 1]->str);
        }
        if (r)
            freeReplyObject(r);
        if (!ok)
            rc = -1;
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    if (rc != 0) {
        batch_copies_free(*copies, *n);
        *copies = NULL;
        *n = 0;
        return -1;
    }
    for (size_t i = 0; i < *n; i++)
        if ((*copies)[i].batch && !(*copies)[i].state)
            (*copies)[i].state = util_xstrdup(BATCH_JOB_INITIATED); /* a claim alone: on the bus */
    if (*n)
        qsort(*copies, *n, sizeof(**copies), batch_copy_cmp);
    return 0;
}

void batch_copies_free(batch_copy_t *copies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(copies[i].rcpt);
        free(copies[i].batch);
        free(copies[i].state);
    }
    free(copies);
}

void batch_commit_copy(bus_commit_t *c, const char *uuid, int64_t mid, const char *rcpt, const char *state,
                       batch_claim_t claim, int64_t ttl_ms)
{
    /* called for every copy of a fan-out: no allocation, no printf */
    char msgkey[48], jkey[96];
    batch_copies_key(msgkey, sizeof(msgkey), mid);
    batch_key(jkey, sizeof(jkey), uuid, "jobs");
    char claim_field[BATCH_FIELD_MAX], state_field[BATCH_FIELD_MAX], job_field[BATCH_FIELD_MAX];
    batch_field_into(claim_field, mid, " job:", rcpt);
    batch_field_into(state_field, mid, " state:", rcpt);
    batch_field_into(job_field, mid, " ", rcpt);
    if (claim == BATCH_CLAIM_GUARDED)
        bus_commit_guard_field(c, msgkey, claim_field, uuid);
    if (claim == BATCH_CLAIM_GUARDED || claim == BATCH_CLAIM_TAKE)
        bus_commit_hset(c, msgkey, claim_field, uuid);
    if (claim == BATCH_CLAIM_RELEASE)
        bus_commit_hdel_if(c, msgkey, claim_field, uuid);
    bus_commit_hset(c, msgkey, state_field, state);
    bus_commit_hset(c, jkey, job_field, state);
    bus_commit_pexpire(c, msgkey, ttl_ms);
    bus_commit_pexpire(c, jkey, ttl_ms);
}

void batch_commit_claim(bus_commit_t *c, const char *uuid, int64_t mid, const char *rcpt, const char *job_state,
                        bool write_state, int64_t ttl_ms, strbuf_t *list)
{
    char msgkey[48];
    batch_copies_key(msgkey, sizeof(msgkey), mid);
    char claim_field[BATCH_FIELD_MAX];
    batch_field_into(claim_field, mid, " job:", rcpt);
    bus_commit_guard_field(c, msgkey, claim_field, uuid);
    bus_commit_hset(c, msgkey, claim_field, uuid);
    if (write_state) {
        char state_field[BATCH_FIELD_MAX];
        batch_field_into(state_field, mid, " state:", rcpt);
        bus_commit_hset(c, msgkey, state_field, job_state);
    }
    bus_commit_pexpire(c, msgkey, ttl_ms);
    strbuf_append_int(list, mid);
    const char *parts[] = {" ", rcpt, "\n"};
    strbuf_appendv(list, parts, 3);
}

void batch_commit_job_list(bus_commit_t *c, const char *uuid, const char *id, const strbuf_t *list, int64_t ttl_ms)
{
    if (!list->len)
        return;
    char jkey[96], field[RECORD_MAX_ID + 2];
    batch_key(jkey, sizeof(jkey), uuid, "jobs");
    snprintf(field, sizeof(field), "%c%s", BATCH_JOB_LIST_PREFIX, id);
    bus_commit_hset(c, jkey, field, list->data);
    bus_commit_pexpire(c, jkey, ttl_ms);
}

/* batch_sha256 - the SHA-256 of s, or of s, a newline and then when then is not NULL (once per
 * job of a fan-out: the digest is fetched once per thread, and its context reused). */
static void batch_sha256(const char *s, const char *then, unsigned char md[32])
{
    static _Thread_local EVP_MD *sha256;
    static _Thread_local EVP_MD_CTX *ctx;
    if (!sha256)
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!ctx)
        ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (!sha256 || !ctx || !EVP_DigestInit_ex(ctx, sha256, NULL) || !EVP_DigestUpdate(ctx, s, strlen(s)) ||
        (then && (!EVP_DigestUpdate(ctx, "\n", 1) || !EVP_DigestUpdate(ctx, then, strlen(then)))) ||
        !EVP_DigestFinal_ex(ctx, md, &len))
        memset(md, 0, 32); /* only on allocation failure; ids stay well-formed */
}

void batch_uuid_from(const char *seed, char out[BATCH_UUID_LEN + 1])
{
    unsigned char md[32];
    batch_sha256(seed, NULL, md);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80); /* version 8: custom */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    util_uuid_text(md, out);
}

bool batch_uuid_valid(const char *s)
{
    if (!s || strlen(s) != BATCH_UUID_LEN)
        return false;
    for (int i = 0; i < BATCH_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

void batch_job_id(const char *uuid, int64_t mid, const char *rcpt, char out[RECORD_MAX_ID + 1])
{
    /* "j:<mid>:<16 hex>", at most 2 + 20 + 1 + 16 bytes; built by hand (once per job of a
     * fan-out, and carried twice by each job and its result: short) */
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    batch_sha256(uuid, rcpt, md);
    size_t len = 0;
    out[len++] = 'j';
    out[len++] = ':';
    len += util_put_int(out + len, mid);
    out[len++] = ':';
    for (int i = 0; i < 8; i++) {
        out[len++] = hex[md[i] >> 4];
        out[len++] = hex[md[i] & 15];
    }
    out[len] = '\0';
}

bool batch_action_valid(const char *action)
{
    return action && (!strcmp(action, "delete") || !strcmp(action, "forward") || !strcmp(action, "forward_delete"));
}

const char *batch_action_label(const char *action)
{
    if (!action)
        return "";
    if (!strcmp(action, "delete"))
        return "Delete";
    if (!strcmp(action, "forward"))
        return "Forward";
    if (!strcmp(action, "forward_delete"))
        return "Forward and Delete";
    return action;
}

const char *batch_status_label(const char *status)
{
    if (status && !strcmp(status, "remediated"))
        return "Remediated";
    if (status && !strcmp(status, "not_found"))
        return "Not found";
    return "Failed";
}

void batch_line_initiated(strbuf_t *out, int64_t mid, const char *action, const char *initiator, const char *source,
                          const char *uuid)
{
    /* "Message %mid was initiated for '%s' remedial action by '%s' from source '%s' in batch '%s'."
     * (without printf: one line per message of a fan-out) */
    strbuf_appends(out, "Message ");
    strbuf_append_int(out, mid);
    const char *rest[] = {" was initiated for '", batch_action_label(action), "' remedial action by '", initiator,
                          "' from source '", source, "' in batch '", uuid, "'."};
    strbuf_appendv(out, rest, sizeof(rest) / sizeof(rest[0]));
}

const char *batch_job_initiator(const record_job_t *job)
{
    if (job->initiator)
        return job->initiator;
    return job->reason && !strcmp(job->reason, "url_retrospection") ? BATCH_RETRO_INITIATOR : "";
}

const char *batch_job_source(const record_job_t *job)
{
    if (job->source)
        return job->source;
    return job->reason && !strcmp(job->reason, "url_retrospection") ? BATCH_RETRO_SOURCE : "";
}

void batch_line_matched(strbuf_t *out, const record_initiation_t *in, const record_initiated_t *m)
{
    /* without printf: one line per message of a fan-out */
    const char *what = strcmp(in->observable_type, "url") == 0 ? "URL" : "domain";
    strbuf_appends(out, "Message ");
    strbuf_append_int(out, m->mid);
    if (!strcmp(m->matched, "email_id")) {
        const char *parts[] = {" (email id ", m->email_id ? m->email_id : "?", ") was named by feed '", in->feed,
                               "' for ", what, " '", in->observable, "', found ", in->disposition,
                               " (URL retrospection)"};
        strbuf_appendv(out, parts, sizeof(parts) / sizeof(parts[0]));
    } else {
        const char *parts[] = {!strcmp(m->matched, "url") ? " carries " : " has the subject of a message carrying ",
                               what, " '", in->observable, "' that feed '", in->feed, "' found ", in->disposition,
                               " (URL retrospection)"};
        strbuf_appendv(out, parts, sizeof(parts) / sizeof(parts[0]));
    }
    const char *tail[] = {"; remediation ", in->held ? "waits for approval" : "initiated", " in batch '", in->batch,
                          "'."};
    strbuf_appendv(out, tail, sizeof(tail) / sizeof(tail[0]));
}

void batch_line_processed(strbuf_t *out, const record_result_t *r)
{
    const char *status = batch_status_label(r->status);
    if (r->reason && !strcmp(r->reason, "url_retrospection"))
        strbuf_appendf(out,
                       "Message %" PRId64 " was processed due to URL retrospection by " BATCH_RETRO_INITIATOR
                       " with '%s' remedial action for recipient %s. Profile used to remediate: %s Remediation "
                       "status: %s.",
                       r->mid, batch_action_label(r->action), r->recipient, r->profile ? r->profile : "-", status);
    else
        strbuf_appendf(out,
                       "Message %" PRId64 " was processed with '%s' remedial action for recipient '%s' in batch '%s'. "
                       "Remediation status: %s.",
                       r->mid, batch_action_label(r->action), r->recipient, r->batch, status);
}

size_t batch_lines_remediation(const record_result_t *r, strbuf_t lines[3])
{
    size_t n = 0;
    const char *profile = r->profile ? r->profile : "-";
    for (int i = 0; i < 3; i++)
        strbuf_reset(&lines[i]);
    if (!strcmp(r->status, "remediated")) {
        bool forward = !strcmp(r->action, "forward") || !strcmp(r->action, "forward_delete");
        bool delete = !strcmp(r->action, "delete") || !strcmp(r->action, "forward_delete");
        if (forward)
            strbuf_appendf(&lines[n++], "MID: %" PRId64 " Message forwarded successfully from %s mailbox to %s.", r->mid,
                           r->recipient, r->forward_to ? r->forward_to : "the forward address");
        if (delete)
            strbuf_appendf(&lines[n++], "MID: %" PRId64 " Message deleted successfully from %s mailbox.", r->mid,
                           r->recipient);
        strbuf_appendf(&lines[n++], "MID: %" PRId64 " Remediation succeeded with `%s` profile for recipient %s.", r->mid,
                       profile, r->recipient);
    } else if (!strcmp(r->status, "not_found")) {
        strbuf_appendf(&lines[n++], "MID: %" PRId64 " Message not found in %s mailbox.", r->mid, r->recipient);
    } else {
        strbuf_appendf(&lines[n++], "MID: %" PRId64 " Remediation failed with `%s` profile for recipient %s: %s.", r->mid,
                       profile, r->recipient, r->detail && *r->detail ? r->detail : "no reason given");
    }
    return n;
}

char *batch_track_member(const char *event_id, const char *line)
{
    size_t a = strlen(event_id), b = strlen(line);
    char *out = util_xmalloc(a + b + 2);
    memcpy(out, event_id, a);
    out[a] = ' ';
    memcpy(out + a + 1, line, b + 1);
    return out;
}

const char *batch_track_line(const char *member)
{
    const char *sp = strchr(member, ' ');
    return sp ? sp + 1 : member;
}
