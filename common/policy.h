/*
 * policy.h - what the enricher may remediate: dispositions acted on, the allowlist of URLs and
 * domains never acted on, and the mapping of a recipient's domain to an action and an account
 * profile ([domains NAME] sections, config.h).
 *
 * Built once from the configuration (the allowlist file is read then); pure look-ups after.
 */
#ifndef CLAWBACK_POLICY_H
#define CLAWBACK_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef struct policy policy_t;

/* policy_new - the policy of cfg (borrowed: must outlive it). NULL with the reason in err (a bad
 * act_on value, an allowlist entry that is neither a URL nor a domain, an unreadable file,
 * naming the file and line). Caller destroys. */
policy_t *policy_new(const config_t *cfg, char *err, size_t errsize);
void policy_destroy(policy_t **self);

/* policy_acts_on - whether a verdict with this disposition leads to remediation. */
bool policy_acts_on(const policy_t *self, const char *disposition);

/* policy_allowlisted - whether an observable (type "url" with its canonical form, or "domain"
 * lowercase) is allowlisted: its URL listed, or its host or a parent domain listed. The entry
 * that matched is written to why. */
bool policy_allowlisted(const policy_t *self, const char *observable_type, const char *value, char *why,
                        size_t whysize);

/* policy_for_recipient - the [domains] mapping of a recipient address (its domain after the last
 * '@', lowercased), or NULL when no mapping covers it. */
const config_domains_t *policy_for_recipient(const policy_t *self, const char *rcpt);

/* policy_allowlist_size - entries on the allowlist (URLs + domains). */
size_t policy_allowlist_size(const policy_t *self);

#endif
