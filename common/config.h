/*
 * config.h - Clawback's configuration: one INI-style file over embedded defaults.
 *
 * Every key is declared once, in CONFIG_KEYS below: its section, name, type, the config_t
 * member it fills, its default, its bounds and its documentation. The parser, the defaults,
 * `clawback config example` and deploy/clawback.conf.example all come from that list (a unit
 * test checks the example file against it).
 *
 * Values: strings as written; integers; booleans (yes/no, true/false, on/off, 1/0);
 * durations with a unit (250ms, 30s, 5m, 168h, 7d; a bare number is seconds), stored in
 * milliseconds; sizes (512, 64k, 1M, 2G), stored in bytes; log levels by name.
 *
 * Named sections may appear any number of times (NAME is 1 to 40 of [A-Za-z0-9_.-]): "[feed NAME]",
 * one per threat feed the poller reads (CONFIG_FEED_KEYS), and "[domains NAME]", one per group of
 * recipient domains with their remediation action and account profile (CONFIG_DOMAINS_KEYS), and
 * "[profile NAME]", one per way into mailboxes (CONFIG_PROFILE_KEYS).
 * Each gets its kind's defaults, then its keys. The same named section twice is an error.
 *
 * An unknown section or key, or a bad value, is an error that names the file and line; a
 * program refuses to start on it.
 */
#ifndef CLAWBACK_CONFIG_H
#define CLAWBACK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define CONFIG_DEFAULT_PATH "/etc/clawback/clawback.conf"

/* X(section, key, type, member, default, min, max, documentation) */
#define CONFIG_KEYS(X)                                                                              \
    X(log, file, STR, log_file, "-", 0, 0,                                                          \
      "Text log, one line per event in the seed gateway's format; \"-\" is standard error.")        \
    X(log, json_file, STR, log_json_file, "", 0, 0,                                                 \
      "The same lines as JSON objects, one per line, for a SIEM; empty: not written.")              \
    X(log, level, LEVEL, log_level, "info", 0, 0,                                                   \
      "Lowest level written: critical, warning, info, debug or trace.")                             \
    X(redis, url, REDIS_URL, redis_url, "redis://127.0.0.1:6379/0", 0, 0,                           \
      "Redis server holding the index and the bus queues: redis://[:PASSWORD@]HOST:PORT/DB.\n"      \
      "The --redis option of every program overrides it.")                                          \
    X(redis, password_file, STR, redis_password_file, "", 0, 0,                                     \
      "File whose first line is the Redis password (AUTH); empty: none or the one in url.")         \
    X(redis, timeout, DURATION, redis_timeout_ms, "2s", 10, 600000,                                 \
      "Connect and command timeout for Redis.")                                                     \
    X(bus, bind, STR, bus_bind, "tcp://127.0.0.1:*", 0, 0,                                          \
      "ZeroMQ endpoint a producing stage binds to dispatch its records; '*' as port picks one.")    \
    X(bus, advertise, STR, bus_advertise, "", 0, 0,                                                 \
      "Endpoint consumers should connect to, when it differs from bind (NAT, wildcard host);\n"     \
      "empty: the bound endpoint.")                                                                 \
    X(bus, capacity, INT, bus_capacity, "64", 1, 100000,                                            \
      "Records a consuming instance accepts from each upstream instance before it has\n"            \
      "committed earlier ones (its window).")                                                       \
    X(bus, ack_timeout, DURATION, bus_ack_timeout_ms, "30s", 100, 86400000,                         \
      "A dispatched record not committed by its consumer within this time is dispatched again.")    \
    X(bus, heartbeat, DURATION, bus_heartbeat_ms, "1s", 10, 60000,                                  \
      "Interval of consumers' requests for work and of producers' endpoint announcements.")         \
    X(bus, max_waiting, INT, bus_max_waiting, "100000", 1, 100000000,                               \
      "Records an edge may hold before producers are told to slow down (backpressure).")            \
    X(bus, max_record, SIZE, bus_max_record, "1M", 1024, 67108864,                                  \
      "Largest record accepted from a socket or Redis; larger ones are counted and dropped.")       \
    X(bus, dedup_window, DURATION, bus_dedup_window_ms, "8d", 1000, 31536000000,                    \
      "How long a committed record id is remembered to detect a duplicate delivery.")          \
    X(index, retention, DURATION, index_retention_ms, "168h", 1000, 31536000000,                    \
      "How long delivered messages stay in the index; everything older expires by itself.\n"        \
      "The partition length (retention / 24) is fixed when the index is first written.")          \
    X(index, bucket_bits, INT, index_bucket_bits, "8", 4, 20,                                       \
      "The index entries of a partition (retention / 24) are spread over 2^bucket_bits Redis\n"     \
      "strings; a look-up reads one per partition. About log2(messages per partition / 100):\n"    \
      "8 up to some 25,000 messages per partition, one more per doubling.")                        \
    X(index, trusted_relays, STR, index_trusted_relays, "127.0.0.0/8 ::1", 0, 0,                    \
      "Networks (space-separated) of the relays whose Received: hops are skipped when the\n"        \
      "sender IP is read from a message's headers.")                                                  \
    X(logger, directory, STR, logger_directory, "", 0, 0,                                           \
      "Where clawback-logger writes the seed gateway's logs, one file per log, line for line in\n" \
      "its format: ecs, mail_logs, remediation, url_rep_client. Empty: into its own log.")         \
    X(logger, json_file, STR, logger_json_file, "", 0, 0,                                           \
      "The same events as JSON lines (time, log, level, program, mid, batch, message) for a SIEM;\n" \
      "empty: not written. SIGHUP reopens these files (logrotate).")                              \
    X(enricher, same_subject, BOOL, enricher_same_subject, "yes", 0, 0,                              \
      "As the seed gateway does, also remediate every message delivered within the window with\n" \
      "the same subject line as a message that carries the malicious URL.")                       \
    X(enricher, subject_max, INT, enricher_subject_max, "200", 1, 10000000,                          \
      "A subject carried by more messages than this within the window is too common to expand\n"  \
      "on (\"Invoice\", \"Hello\"): it is logged and only the messages carrying the URL are\n"  \
      "remediated. An empty subject never expands.")                                             \
    X(enricher, window, DURATION, enricher_window_ms, "168h", 60000, 31536000000,                   \
      "Messages delivered longer ago than this are not remediated (logged).")                     \
    X(enricher, max_verdict_age, DURATION, enricher_max_verdict_age_ms, "7d", 60000, 31536000000,   \
      "A verdict about a URL first observed longer ago than this is not acted on (logged), as\n"  \
      "the seed gateway ignores retrospective verdicts after seven days.")                         \
    X(enricher, act_on, STR, enricher_act_on, "malicious", 0, 0,                                     \
      "Verdict dispositions that lead to remediation: \"malicious\" or \"malicious suspicious\".") \
    X(enricher, approval_threshold, INT, enricher_approval_threshold, "1000", 0, 100000000,         \
      "A verdict that would remediate more messages than this waits for an operator\n"            \
      "(clawback approve BATCH / clawback reject BATCH); 0: never waits.")                          \
    X(enricher, allow_domains, STR, enricher_allow_domains, "", 0, 0,                                \
      "Domains (space-separated; each covers its subdomains) whose URLs are never acted on.")      \
    X(enricher, allow_urls, STR, enricher_allow_urls, "", 0, 0,                                      \
      "URLs (space-separated, compared in canonical form) never acted on.")                        \
    X(enricher, allowlist_file, STR, enricher_allowlist_file, "", 0, 0,                              \
      "A file of more: one URL (with a scheme) or domain per line, '#' starts a comment; read at\n"\
      "start.")                                                                                    \
    X(remediator, workers, INT, remediator_workers, "8", 1, 256,                                     \
      "Threads working on mailboxes at once (jobs of different mailboxes run in parallel).")      \
    X(remediator, backoff_min, DURATION, remediator_backoff_min_ms, "2s", 10, 86400000,              \
      "First delay before a job is tried again after a temporary failure (network, 5xx, 429\n"    \
      "without Retry-After); it doubles, with jitter, on each further one.")                     \
    X(remediator, backoff_max, DURATION, remediator_backoff_max_ms, "5m", 10, 86400000,              \
      "Longest delay between two attempts of a job.")                                              \
    X(remediator, give_up_after, DURATION, remediator_give_up_ms, "24h", 1000, 604800000,            \
      "A job still failing temporarily this long after its first attempt is reported Failed.")    \
    X(remediator, idle_connections, INT, remediator_idle_connections, "64", 0, 100000,               \
      "IMAP connections (one per mailbox) kept open between jobs; the least recently used close.")\
    X(poller, lease, DURATION, poller_lease_ms, "30s", 1000, 3600000,                               \
      "Several pollers may run; one holds each feed. A holder that dies is replaced after this\n"  \
      "long (a holder that stops cleanly hands its feeds over at once).")                          \
    X(milter, listen, STR, milter_listen, "inet:10027@127.0.0.1", 0, 0,                            \
      "Where clawback-milter listens for the MTA: inet:PORT@HOST, inet6:PORT@HOST or\n"           \
      "unix:/PATH (Postfix: smtpd_milters = inet:HOST:PORT or unix:/PATH). On the gateway host a\n"\
      "unix socket costs Postfix less (docs/milter.md); a chrooted smtpd needs it in its chroot.")\
    X(milter, socket_mode, STR, milter_socket_mode, "0660", 0, 0,                                  \
      "Permissions (octal) of a unix listen socket, set once it exists: Postfix's smtpd (user\n"  \
      "postfix) must be able to write to it, e.g. through the socket's group.")                  \
    X(milter, spool_dir, STR, milter_spool_dir, "/var/spool/clawback-milter", 0, 0,                \
      "Each accepted message is written here (tmp/, then ready/ until indexed; bad/ holds those\n"\
      "that cannot be parsed) so nothing is lost while Redis is slow or down or the milter\n"     \
      "restarts. Local disk, one per milter instance.")                                          \
    X(milter, internal_networks, STR, milter_internal_networks, "", 0, 0,                          \
      "Networks (space-separated) of this gateway's own senders: mail from a client inside them\n"\
      "is recorded as outgoing and never remediated; everything else as incoming.")              \
    X(milter, max_message_size, SIZE, milter_max_message_size, "0", 0, 209715200,                   \
      "Bytes of a message kept and indexed; the rest of a larger message is not (it is still\n"   \
      "accepted and delivered; logged). 0: no limit of its own (the MTA's message_size_limit;\n"  \
      "at most 200M are indexed).")                                                              \
    X(milter, instance, STR, milter_instance, "", 0, 0,                                            \
      "Name under which this milter publishes its backlog (clawback queues); empty: the host name.")\
    X(milter, sync, STR, milter_sync, "everysec", 0, 0,                                            \
      "When a spooled message reaches the disk: always (before the MTA hears accept: a machine\n" \
      "crash loses none; within the run-to-run spread of everysec here, docs/milter.md),\n"     \
      "everysec (within a second, as Redis's appendfsync everysec) or no (the kernel decides).\n" \
      "A restart of the milter loses nothing in any mode.")                                      \
    X(milter, batch, INT, milter_batch, "64", 1, 256,                                               \
      "Spooled messages indexed per Redis round trip at most.")                                   \
    X(milter, backoff_max, DURATION, milter_backoff_max_ms, "10s", 10, 3600000,                     \
      "Longest delay between two attempts to index while Redis fails (it starts at 100 ms and\n" \
      "doubles).")                                                                                \
    X(milter, status_interval, DURATION, milter_status_interval_ms, "5s", 100, 3600000,             \
      "How often the milter publishes its backlog (Redis, and spool_dir/status).")

/* The keys of a [feed NAME] section: X(key, type, member, default, min, max, documentation).
 * Which keys a feed type reads is documented in docs/feeds.md. */
#define CONFIG_FEED_KEYS(X)                                                                         \
    X(type, STR, type, "", 0, 0,                                                                    \
      "retro (the retrospective verdict service), taxii21, urlhaus, openphish or misp.")           \
    X(url, STR, url, "", 0, 0,                                                                      \
      "retro: the registration API base (https://HOST); taxii21: the collection URL\n"              \
      "(https://HOST/API-ROOT/collections/ID/); misp: the MISP base URL; urlhaus, openphish:\n"     \
      "an http(s) URL or a local file path.")                                                     \
    X(enabled, BOOL, enabled, "yes", 0, 0, "A disabled feed is not polled.")                       \
    X(interval, DURATION, interval_ms, "2m", 1000, 86400000, "Time between two polls.")            \
    X(page_size, INT, page_size, "20", 1, 1000,                                                     \
      "Verdicts asked for per request (retro page_size, TAXII limit, MISP limit).")                \
    X(initial_lookback, DURATION, initial_lookback_ms, "1h", 0, 31536000000,                       \
      "First poll of a cursor feed (retro, taxii21, misp): ask for what is newer than this.")     \
    X(overlap, DURATION, overlap_ms, "5m", 0, 86400000,                                              \
      "Cursor feeds ask again for this much before their cursor (late arrivals at the server);\n"  \
      "what was already handed over is recognised and not emitted twice.")                       \
    X(device_id, STR, device_id, "", 0, 0, "retro: this gateway's device id.")                    \
    X(org_id, STR, org_id, "", 0, 0, "retro: the organisation id sent at registration.")          \
    X(model, STR, model, "clawback", 0, 0, "retro: the model sent at registration.")              \
    X(version, STR, version, "1.0", 0, 0, "retro: the version sent at registration.")             \
    X(username, STR, username, "", 0, 0, "taxii21: user for HTTP Basic authentication.")          \
    X(credentials_file, STR, credentials_file, "", 0, 0,                                            \
      "File whose first line is the secret: taxii21 the password (with username) or a bearer\n"    \
      "token, misp the API key, urlhaus the Auth-Key. Never logged.")                             \
    X(proxy, STR, proxy, "", 0, 0,                                                                  \
      "HTTP(S) proxy URL; empty: the http_proxy / https_proxy / no_proxy environment.")          \
    X(ca_file, STR, ca_file, "", 0, 0, "CA bundle to verify the server with; empty: the system's.") \
    X(tls_verify, BOOL, tls_verify, "yes", 0, 0,                                                    \
      "Verify the server's TLS certificate and name. Turn off only for a test server.")           \
    X(timeout, DURATION, timeout_ms, "60s", 100, 3600000, "Longest time one request may take.")  \
    X(max_size, SIZE, max_size, "64M", 1024, 4294967296, "Largest response accepted.")           \
    X(backoff_min, DURATION, backoff_min_ms, "5s", 10, 86400000,                                   \
      "First retry delay after a failure; it doubles (with jitter) on each further failure.")    \
    X(backoff_max, DURATION, backoff_max_ms, "10m", 10, 86400000, "Longest retry delay.")

/* The keys of a [domains NAME] section: X(key, type, member, default, min, max, documentation). */
#define CONFIG_DOMAINS_KEYS(X)                                                                      \
    X(domains, STR, domains, "", 0, 0,                                                              \
      "Recipient domains, space-separated, lowercase; each covers its subdomains unless one has a\n"\
      "mapping of its own. \"*\" covers every domain no mapping names.")                          \
    X(action, STR, action, "delete", 0, 0,                                                          \
      "What a verdict does to these recipients' copies: delete, forward, forward_delete, or none\n"\
      "(never remediated, logged).")                                                              \
    X(profile, STR, profile, "", 0, 0,                                                              \
      "The account profile that reaches these mailboxes, or several space-separated, tried in\n"  \
      "order (a chained profile: the first that finds the message acts). Required unless none.")

/* The keys of a [profile NAME] section, one way into mailboxes (remediator/backend.h):
 * X(key, type, member, default, min, max, documentation). */
#define CONFIG_PROFILE_KEYS(X)                                                                      \
    X(type, STR, type, "", 0, 0,                                                                    \
      "imap (any IMAP server, an admin or master account acting for users) or graph (Exchange\n"   \
      "Online through Microsoft Graph, app-only). Required.")                                     \
    X(url, STR, url, "", 0, 0,                                                                      \
      "imap: the server, imaps://HOST[:993] or imap://HOST[:143] (STARTTLS is then required\n"     \
      "unless tls_verify is off). graph: the API root; empty: https://graph.microsoft.com/v1.0.")  \
    X(username, STR, username, "", 0, 0,                                                            \
      "imap: the admin account that logs in for users.")                                          \
    X(password_file, STR, password_file, "", 0, 0,                                                  \
      "imap: file whose first line is username's password. Never logged.")                        \
    X(login, STR, login, "master", 0, 0,                                                            \
      "imap: how the admin acts for a user: master (Dovecot master user: USER<separator>admin),\n" \
      "authzid (SASL PLAIN with the user as authorization id), or direct (username's own\n"       \
      "mailbox only).")                                                                           \
    X(master_separator, STR, master_separator, "*", 0, 0,                                          \
      "imap, login master: the server's auth_master_user_separator.")                              \
    X(tenant, STR, tenant, "", 0, 0, "graph: the Entra ID tenant (id or domain).")                 \
    X(client_id, STR, client_id, "", 0, 0, "graph: the application (client) id.")                  \
    X(secret_file, STR, secret_file, "", 0, 0,                                                      \
      "graph: file whose first line is the client secret. Never logged.")                          \
    X(token_url, STR, token_url, "", 0, 0,                                                          \
      "graph: the token endpoint; empty: https://login.microsoftonline.com/TENANT/oauth2/v2.0/token.")\
    X(delete, STR, delete_mode, "quarantine", 0, 0,                                                 \
      "What Delete does: quarantine (move to the quarantine folder: recoverable) or permanent\n"  \
      "(imap: flagged \\Deleted and removed by UID EXPUNGE of that message alone, never a plain\n"\
      "EXPUNGE; graph: permanentDelete).")                                                        \
    X(quarantine, STR, quarantine, "", 0, 0,                                                        \
      "The folder Delete moves messages to; empty: Quarantine (imap, created when missing) or\n"  \
      "deleteditems (graph).")                                                                    \
    X(forward_to, STR, forward_to, "", 0, 0,                                                        \
      "Where Forward and Forward and Delete send the message (\"[Message Remediated] \" is put\n" \
      "before its subject). Required when a mapping's action forwards.")                          \
    X(forward_from, STR, forward_from, "clawback@localhost", 0, 0,                                  \
      "imap: the sender (envelope and From:) of forwarded messages.")                             \
    X(smtp_url, STR, smtp_url, "", 0, 0,                                                            \
      "imap: the submission server forwards go through, smtps://HOST[:465] or smtp://HOST[:587]\n" \
      "(STARTTLS then required unless tls_verify is off).")                                        \
    X(smtp_username, STR, smtp_username, "", 0, 0, "imap: submission login; empty: none.")         \
    X(smtp_password_file, STR, smtp_password_file, "", 0, 0,                                        \
      "imap: file whose first line is the submission password. Never logged.")                    \
    X(ca_file, STR, ca_file, "", 0, 0, "CA bundle to verify servers with; empty: the system's.")   \
    X(tls_verify, BOOL, tls_verify, "yes", 0, 0,                                                    \
      "Verify servers' certificates and names (and require TLS). Turn off only for a test server.")\
    X(timeout, DURATION, timeout_ms, "60s", 100, 3600000, "Longest time one request may take.")  \
    X(mailbox_concurrency, INT, mailbox_concurrency, "4", 1, 64,                                    \
      "Jobs worked on at once in one mailbox (Graph allows 4 concurrent requests per mailbox;\n"  \
      "imap uses one connection per mailbox, so at most 1).")                                     \
    X(mailbox_rate, INT, mailbox_rate, "10000", 1, 1000000,                                         \
      "Requests at most per mailbox in any 10 minutes (Graph's limit is 10,000).")

#define CONFIG_CTYPE_STR char *
#define CONFIG_CTYPE_REDIS_URL char *
#define CONFIG_CTYPE_INT int64_t
#define CONFIG_CTYPE_DURATION int64_t
#define CONFIG_CTYPE_SIZE int64_t
#define CONFIG_CTYPE_BOOL bool
#define CONFIG_CTYPE_LEVEL log_level_t

#define CONFIG_FEED_MAX_NAME 40 /* inih keeps section names of up to 49 bytes: "feed " + 44 */

typedef struct {
    char name[CONFIG_FEED_MAX_NAME + 1];
    int line; /* line of its section header, 0 when not from a file */
#define CONFIG_FEED_MEMBER(key, type, member, def, min, max, doc) CONFIG_CTYPE_##type member;
    CONFIG_FEED_KEYS(CONFIG_FEED_MEMBER)
#undef CONFIG_FEED_MEMBER
} config_feed_t;

#define CONFIG_PROFILE_MAX 64 /* a [domains] profile list fits a job's profile field */

typedef struct {
    char name[CONFIG_FEED_MAX_NAME + 1];
    int line; /* line of its section header, 0 when not from a file */
#define CONFIG_DOMAINS_MEMBER(key, type, member, def, min, max, doc) CONFIG_CTYPE_##type member;
    CONFIG_DOMAINS_KEYS(CONFIG_DOMAINS_MEMBER)
#undef CONFIG_DOMAINS_MEMBER
} config_domains_t;

typedef struct {
    char name[CONFIG_FEED_MAX_NAME + 1];
    int line; /* line of its section header, 0 when not from a file */
#define CONFIG_PROFILE_MEMBER(key, type, member, def, min, max, doc) CONFIG_CTYPE_##type member;
    CONFIG_PROFILE_KEYS(CONFIG_PROFILE_MEMBER)
#undef CONFIG_PROFILE_MEMBER
} config_profile_t;

typedef struct config {
#define CONFIG_MEMBER(section, key, type, member, def, min, max, doc) CONFIG_CTYPE_##type member;
    CONFIG_KEYS(CONFIG_MEMBER)
#undef CONFIG_MEMBER
    config_feed_t *feeds; /* the [feed NAME] sections, in file order */
    size_t nfeeds;
    config_domains_t *domains; /* the [domains NAME] sections, in file order */
    size_t ndomains;
    config_profile_t *profiles; /* the [profile NAME] sections, in file order */
    size_t nprofiles;
    char *path; /* the file loaded, or NULL for the embedded defaults */
} config_t;

/* config_new - a configuration holding the embedded defaults. Caller owns it. */
config_t *config_new(void);
/* config_destroy - free *cfg and set it to NULL; NULL is accepted. */
void config_destroy(config_t **cfg);

/* config_load - read path over the current values. On error returns -1 and writes
 * "PATH:LINE: message" into err (errsize bytes); the values may be partly updated. */
int config_load(config_t *cfg, const char *path, char *err, size_t errsize);
/* config_set - set one key from its text form; 0, or -1 with a message in err. A section
 * "feed NAME" creates that feed (with its defaults) on first use. */
int config_set(config_t *cfg, const char *section, const char *key, const char *value, char *err,
               size_t errsize);
/* config_feed_find - the feed named name, or NULL. */
const config_feed_t *config_feed_find(const config_t *cfg, const char *name);
/* config_domains_find - the mapping of a recipient domain (len bytes, lowercase): the one naming
 * it, else the one naming its closest parent, else the "*" one; NULL when none. exact: only a
 * mapping naming exactly this domain (or exactly "*"). */
const config_domains_t *config_domains_find(const config_t *cfg, const char *domain, size_t len, bool exact);
/* config_profile_find - the profile named name, or NULL. */
const config_profile_t *config_profile_find(const config_t *cfg, const char *name);
/* config_feed_name_valid - whether name can name a feed. */
bool config_feed_name_valid(const char *name, size_t len);

/* config_write_example - write the documented example file (every key, its default). */
void config_write_example(FILE *out);

#endif
