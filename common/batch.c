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

void batch_msg_key(char *out, size_t size, int64_t mid)
{
    snprintf(out, size, "cb:msg:%" PRId64, mid);
}

void batch_track_key(char *out, size_t size, int64_t mid)
{
    snprintf(out, size, "cb:trk:%" PRId64, mid);
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

char *batch_claim_field(const char *rcpt)
{
    return batch_concat("job:", rcpt);
}

char *batch_state_field(const char *rcpt)
{
    return batch_concat("state:", rcpt);
}

void batch_commit_copy(bus_commit_t *c, const char *uuid, int64_t mid, const char *rcpt, const char *state,
                       batch_claim_t claim)
{
    char msgkey[48], jkey[96];
    batch_msg_key(msgkey, sizeof(msgkey), mid);
    batch_key(jkey, sizeof(jkey), uuid, "jobs");
    char *claim_field = batch_claim_field(rcpt), *state_field = batch_state_field(rcpt);
    char *job_field = batch_job_field(mid, rcpt);
    if (claim == BATCH_CLAIM_GUARDED)
        bus_commit_guard_field(c, msgkey, claim_field, uuid);
    if (claim == BATCH_CLAIM_GUARDED || claim == BATCH_CLAIM_TAKE)
        bus_commit_hset(c, msgkey, claim_field, uuid);
    if (claim == BATCH_CLAIM_RELEASE)
        bus_commit_hdel_if(c, msgkey, claim_field, uuid);
    bus_commit_hset(c, msgkey, state_field, state);
    bus_commit_hset(c, jkey, job_field, state);
    free(claim_field);
    free(state_field);
    free(job_field);
}

/* batch_sha256 - the SHA-256 of s. */
static void batch_sha256(const char *s, unsigned char md[32])
{
    unsigned int len = 0;
    if (!EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL))
        memset(md, 0, 32); /* only on allocation failure; ids stay well-formed */
}

void batch_uuid_from(const char *seed, char out[BATCH_UUID_LEN + 1])
{
    unsigned char md[32];
    batch_sha256(seed, md);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80); /* version 8: custom */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        o += (size_t)snprintf(out + o, 3, "%02x", md[i]);
    }
    out[o] = '\0';
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
    unsigned char md[32];
    batch_sha256(rcpt, md);
    snprintf(out, RECORD_MAX_ID + 1, "j:%.36s:%" PRId64 ":%02x%02x%02x%02x%02x%02x%02x%02x", uuid, mid, md[0], md[1],
             md[2], md[3], md[4], md[5], md[6], md[7]);
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
    strbuf_appendf(out, "Message %" PRId64 " was initiated for '%s' remedial action by '%s' from source '%s' in batch '%s'.",
                   mid, batch_action_label(action), initiator, source, uuid);
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
