/*
 * test_batch.c - unit tests for common/batch.c (ids, keys, the seed's remediation lines) and
 * common/policy.c (dispositions, allowlist, recipient domain mapping).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "batch.h"
#include "config.h"
#include "policy.h"

static void test_uuid_from(void **state)
{
    (void)state;
    char a[37], b[37], c[37];
    batch_uuid_from("feed:retro:0123", a);
    batch_uuid_from("feed:retro:0123", b);
    batch_uuid_from("feed:retro:0124", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_true(batch_uuid_valid(a));
    assert_true(batch_uuid_valid(c));
    assert_int_equal(a[14], '8');                   /* version 8 */
    assert_non_null(strchr("89ab", a[19]));          /* RFC 9562 variant */
    assert_true(batch_uuid_valid("2b46dcac-9b3d-404c-9327-f114fd5d89c7"));
    static const char *const bad[] = {"",  "2b46dcac-9b3d-404c-9327-f114fd5d89c",  "2B46DCAC-9B3D-404C-9327-F114FD5D89C7",
                                      "2b46dcac9b3d-404c-9327-f114fd5d89c7a", "2b46dcac-9b3d-404c-9327-f114fd5d89cg",
                                      "../../../etc/passwd-aaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(batch_uuid_valid(bad[i]));
    assert_false(batch_uuid_valid(NULL));
}

static void test_ids_and_keys(void **state)
{
    (void)state;
    char id[RECORD_MAX_ID + 1], id2[RECORD_MAX_ID + 1];
    const char *u = "2b46dcac-9b3d-404c-9327-f114fd5d89c7";
    batch_job_id(u, 640962, "ee@mexesa.com", id);
    assert_int_equal(strncmp(id, "j:640962:", 9), 0);
    assert_int_equal(strlen(id), 9 + 16);
    for (size_t i = 9; i < 9 + 16; i++)
        assert_non_null(strchr("0123456789abcdef", id[i]));
    batch_job_id(u, 640962, "ff@mexesa.com", id2);
    assert_string_not_equal(id, id2);
    /* the same copy in another batch is another job */
    batch_job_id("2b46dcac-9b3d-404c-9327-f114fd5d89c8", 640962, "ee@mexesa.com", id2);
    assert_string_not_equal(id, id2);
    batch_job_id(u, 640962, "ee@mexesa.com", id2);
    assert_string_equal(id, id2);
    /* the longest recipient still gives a short id */
    char rcpt[321];
    memset(rcpt, 'a', 320);
    rcpt[320] = '\0';
    batch_job_id(u, INT64_MAX, rcpt, id2);
    assert_true(strlen(id2) <= 39);

    char key[128];
    batch_key(key, sizeof(key), u, NULL);
    assert_string_equal(key, "cb:batch:2b46dcac-9b3d-404c-9327-f114fd5d89c7");
    batch_key(key, sizeof(key), u, "jobs");
    assert_string_equal(key, "cb:batch:2b46dcac-9b3d-404c-9327-f114fd5d89c7:jobs");
    batch_copies_key(key, sizeof(key), 6);
    assert_string_equal(key, "cb:copies:0");
    batch_copies_key(key, sizeof(key), 127);
    assert_string_equal(key, "cb:copies:0");
    batch_copies_key(key, sizeof(key), 128);
    assert_string_equal(key, "cb:copies:1");
    batch_copies_key(key, sizeof(key), 640962);
    assert_string_equal(key, "cb:copies:5007");
    batch_track_key(key, sizeof(key), 6);
    assert_string_equal(key, "cb:trk:6");
    char *f = batch_job_field(6, "a@b.c");
    assert_string_equal(f, "6 a@b.c");
    free(f);
    f = batch_claim_field(6, "a@b.c");
    assert_string_equal(f, "6 job:a@b.c");
    free(f);
    f = batch_state_field(640962, "a@b.c");
    assert_string_equal(f, "640962 state:a@b.c");
    free(f);
    char *m = batch_track_member("ev-1", "Message 6 was initiated for 'Delete' ...");
    assert_string_equal(m, "ev-1 Message 6 was initiated for 'Delete' ...");
    assert_string_equal(batch_track_line(m), "Message 6 was initiated for 'Delete' ...");
    free(m);
}

static void test_labels(void **state)
{
    (void)state;
    assert_string_equal(batch_action_label("delete"), "Delete");
    assert_string_equal(batch_action_label("forward"), "Forward");
    assert_string_equal(batch_action_label("forward_delete"), "Forward and Delete");
    assert_true(batch_action_valid("forward_delete"));
    assert_false(batch_action_valid("purge"));
    assert_false(batch_action_valid(NULL));
    assert_string_equal(batch_status_label("remediated"), "Remediated");
    assert_string_equal(batch_status_label("not_found"), "Not found");
    assert_string_equal(batch_status_label("failed"), "Failed");
}

/* The lines as the seed documents show them, character for character. */
static void test_seed_lines(void **state)
{
    (void)state;
    strbuf_t sb;
    strbuf_init(&sb, 0);
    batch_line_initiated(&sb, 640962, "forward", "admin", "CTR", "2b46dcac-9b3d-404c-9327-f114fd5d89c7");
    assert_string_equal(sb.data, "Message 640962 was initiated for 'Forward' remedial action by 'admin' from source 'CTR' "
                                 "in batch '2b46dcac-9b3d-404c-9327-f114fd5d89c7'.");

    record_result_t r = {.mid = 640962,
                         .batch = "2b46dcac-9b3d-404c-9327-f114fd5d89c7",
                         .recipient = "ee@mexesa.com",
                         .action = "forward",
                         .status = "remediated",
                         .reason = "admin",
                         .profile = "o365",
                         .forward_to = "soc@mexesa.com"};
    strbuf_reset(&sb);
    batch_line_processed(&sb, &r);
    assert_string_equal(sb.data, "Message 640962 was processed with 'Forward' remedial action for recipient 'ee@mexesa.com' "
                                 "in batch '2b46dcac-9b3d-404c-9327-f114fd5d89c7'. Remediation status: Remediated.");

    record_result_t d = {.mid = 6,
                         .batch = "b",
                         .recipient = "user@bce.demo.com",
                         .action = "delete",
                         .status = "remediated",
                         .reason = "url_retrospection",
                         .profile = "bce_demo_com"};
    strbuf_reset(&sb);
    batch_line_processed(&sb, &d);
    assert_string_equal(sb.data, "Message 6 was processed due to URL retrospection by Mailbox Remediation with 'Delete' "
                                 "remedial action for recipient user@bce.demo.com. Profile used to remediate: "
                                 "bce_demo_com Remediation status: Remediated.");

    strbuf_t lines[3];
    for (int i = 0; i < 3; i++)
        strbuf_init(&lines[i], 0);
    assert_int_equal(batch_lines_remediation(&d, lines), 2);
    assert_string_equal(lines[0].data, "MID: 6 Message deleted successfully from user@bce.demo.com mailbox.");
    assert_string_equal(lines[1].data, "MID: 6 Remediation succeeded with `bce_demo_com` profile for recipient "
                                       "user@bce.demo.com.");
    r.action = "forward_delete";
    assert_int_equal(batch_lines_remediation(&r, lines), 3);
    assert_string_equal(lines[0].data, "MID: 640962 Message forwarded successfully from ee@mexesa.com mailbox to "
                                       "soc@mexesa.com.");
    assert_string_equal(lines[1].data, "MID: 640962 Message deleted successfully from ee@mexesa.com mailbox.");
    d.status = "not_found";
    assert_int_equal(batch_lines_remediation(&d, lines), 1);
    assert_string_equal(lines[0].data, "MID: 6 Message not found in user@bce.demo.com mailbox.");
    strbuf_reset(&sb);
    batch_line_processed(&sb, &d);
    assert_non_null(strstr(sb.data, "Remediation status: Not found."));
    d.status = "failed";
    d.detail = "IMAP NO [AUTHENTICATIONFAILED]";
    assert_int_equal(batch_lines_remediation(&d, lines), 1);
    assert_string_equal(lines[0].data, "MID: 6 Remediation failed with `bce_demo_com` profile for recipient "
                                       "user@bce.demo.com: IMAP NO [AUTHENTICATIONFAILED].");
    for (int i = 0; i < 3; i++)
        strbuf_release(&lines[i]);
    strbuf_release(&sb);
}

static config_t *policy_config(const char *text)
{
    char path[] = "/tmp/test_batch_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    config_t *cfg = config_new();
    char err[512];
    int rc = config_load(cfg, path, err, sizeof(err));
    unlink(path);
    if (rc != 0)
        fail_msg("config: %s", err);
    return cfg;
}

static void test_policy(void **state)
{
    (void)state;
    char list[] = "/tmp/test_batch_list_XXXXXX";
    int fd = mkstemp(list);
    const char *entries = "# allowlist\n  https://Partner.example/Login?x=1  # the SSO page\n\n*.cdn.example\n";
    assert_int_equal(write(fd, entries, strlen(entries)), (ssize_t)strlen(entries));
    close(fd);
    char text[1024];
    snprintf(text, sizeof(text),
             "[enricher]\nact_on = malicious suspicious\nallow_domains = safe.example\n"
             "allow_urls = http://one.example/a\nallowlist_file = %s\n"
             "[domains corp]\ndomains = corp.example\nprofile = o365\n"
             "[domains lab]\ndomains = lab.corp.example\naction = none\n",
             list);
    config_t *cfg = policy_config(text);
    char err[512], why[512];
    policy_t *p = policy_new(cfg, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(policy_allowlist_size(p), 4);
    assert_true(policy_acts_on(p, "malicious"));
    assert_true(policy_acts_on(p, "suspicious"));
    assert_false(policy_acts_on(p, "clean"));
    static const struct {
        const char *type, *value;
        bool listed;
    } cases[] = {
        {"url", "http://one.example/a", true},
        {"url", "http://one.example/b", false},
        {"url", "https://partner.example/Login?x=1", true},
        {"url", "https://partner.example/Login?x=2", false},
        {"url", "http://safe.example/", true},
        {"url", "http://a.b.safe.example/x", true},
        {"url", "http://notsafe.example/x", false},
        {"url", "http://img.cdn.example/x", true},
        {"url", "http://[::1]/", false},
        {"domain", "safe.example", true},
        {"domain", "x.safe.example", true},
        {"domain", "example", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (policy_allowlisted(p, cases[i].type, cases[i].value, why, sizeof(why)) != cases[i].listed)
            fail_msg("%s %s: expected %s", cases[i].type, cases[i].value, cases[i].listed ? "listed" : "not listed");
    assert_true(policy_allowlisted(p, "url", "http://x.safe.example/", why, sizeof(why)));
    assert_string_equal(why, "domain safe.example");

    const config_domains_t *m = policy_for_recipient(p, "Bob@Corp.Example");
    assert_non_null(m);
    assert_string_equal(m->name, "corp");
    m = policy_for_recipient(p, "x@lab.corp.example");
    assert_string_equal(m->action, "none");
    assert_null(policy_for_recipient(p, "x@other.example"));
    assert_null(policy_for_recipient(p, "no-domain"));
    policy_destroy(&p);
    assert_null(p);
    config_destroy(&cfg);

    /* errors name what is wrong and where */
    cfg = policy_config("[enricher]\nact_on = malicious clean\n");
    assert_null(policy_new(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "'clean' is not malicious or suspicious"));
    config_destroy(&cfg);
    fd = open(list, O_WRONLY | O_TRUNC);
    const char *bad = "good.example\nmailto:x@y\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    snprintf(text, sizeof(text), "[enricher]\nallowlist_file = %s\n", list);
    cfg = policy_config(text);
    assert_null(policy_new(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, ":2: 'mailto:x@y' is neither"));
    config_destroy(&cfg);
    unlink(list);
    cfg = policy_config("[enricher]\nallowlist_file = /nonexistent/list\n");
    assert_null(policy_new(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "allowlist_file"));
    config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_from),  cmocka_unit_test(test_ids_and_keys), cmocka_unit_test(test_labels),
        cmocka_unit_test(test_seed_lines), cmocka_unit_test(test_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
