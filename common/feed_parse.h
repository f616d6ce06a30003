/*
 * feed_parse.h - turn what a threat feed sends into verdict items (pure functions, no I/O).
 *
 * One parser per feed format the poller reads:
 *   retro      the seed gateway's retrospective verdict service (docs/feeds.md):
 *              {"retros": [...], "more": bool}, or {} for nothing new
 *   taxii21    a TAXII 2.1 envelope {"more", "next", "objects": [STIX objects]}: indicators
 *              with pattern_type "stix" whose pattern compares url:value or domain-name:value
 *   misp       MISP attributes/restSearch: {"response": {"Attribute": [...]}}
 *   urlhaus    URLhaus CSV dump: '#' comment lines, the header (possibly as the last comment
 *              line "# id,dateadded,url,..."), RFC 4180 quoting
 *   openphish  one URL per line
 *
 * Every parser is given the whole body (NUL-terminated, len bytes) and fills a feed_page_t.
 * A malformed document as a whole (not JSON, wrong top-level shape) returns -1 with the reason
 * in err. A malformed single item (wrong type, missing field, absurd size) is skipped and
 * counted in page->skipped, with the first such reason kept in page->skip_reason: the rest of
 * the page still counts. Items the feed itself withdraws (revoked, expired, to_ids false, a
 * URLhaus "offline" row is NOT withdrawn: it was malicious) are counted in page->withdrawn.
 *
 * Withdrawn items are only counted: they are not in page->items (an item carries no
 * withdrawn flag). A TAXII indicator counts once however many values its pattern names.
 *
 * Limits: a value that is empty, longer than FEED_MAX_VALUE bytes, or contains a NUL, CR, LF
 * or any other byte below 0x20 is skipped; at most FEED_MAX_ITEMS items per page (the rest
 * skipped, counted). Contexts are shorter than FEED_MAX_CONTEXT bytes (truncated on a UTF-8
 * boundary), with control bytes replaced by spaces. In JSON, a member that is null counts as
 * absent, except "retros", "objects" and "Attribute": present, they must be arrays.
 *
 * Keys: the lowercase hex (32 characters) of the first 16 bytes of SHA-256 over the parts
 * below joined by single NUL bytes (no NUL after the last), each part exactly as the feed
 * wrote it:
 *   retro      "retro", value, email_id (or ""), timestamp (the string, not reformatted)
 *   taxii21    "taxii21", indicator id, modified (else created, else ""), value
 *   misp       "misp", uuid (else id), value
 *   urlhaus    "url", value      } the same URL gives the same key in both
 *   openphish  "url", value      }
 * A TAXII pattern naming the same value twice gives two items with the same key.
 *
 * max_time_ms counts every item whose time parses, whether it was used, skipped for another
 * reason or withdrawn, so a cursor built on it moves past them: retro timestamp, misp
 * timestamp, urlhaus dateadded, taxii21 modified (else created) of any object, indicator or
 * not (TAXII's own date_added is in the X-TAXII-Date-Added-Last header, not in the body);
 * openphish has none.
 */
#ifndef CLAWBACK_FEED_PARSE_H
#define CLAWBACK_FEED_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FEED_MAX_VALUE 8192
#define FEED_MAX_ITEMS 1000000
#define FEED_MAX_CONTEXT 1024

typedef enum {
    FEED_OBSERVABLE_URL = 0,
    FEED_OBSERVABLE_DOMAIN,
} feed_observable_t;

/* One verdict a feed gave. Strings are owned by the page. */
typedef struct {
    feed_observable_t type;
    char *value;       /* the URL or domain as the feed wrote it (the enricher canonicalizes) */
    char *email_id;    /* retro only: the message the verdict was computed for, or NULL */
    int64_t observed_ms; /* when the feed says it became known malicious (0: unknown) */
    char *context;     /* short human text: threat, tags, indicator id, ... or NULL */
    char *key;         /* stable identity of this verdict within the feed: the same verdict
                        * served again gives the same key (see feed_item_key per parser) */
} feed_item_t;

typedef struct {
    feed_item_t *items;
    size_t count, cap;
    bool more;           /* retro, taxii21: the server has more after this page */
    char *next;          /* taxii21: the "next" paging token, or NULL */
    int64_t max_time_ms; /* latest item time seen (see above), 0 if none */
    size_t raw_count;    /* objects/rows/attributes/non-comment lines in the document, usable
                          * or not (misp: a page shorter than the limit is the last) */
    size_t skipped;      /* malformed items skipped */
    size_t withdrawn;    /* revoked / expired / not for detection */
    char skip_reason[160];
} feed_page_t;

/* feed_page_release - free the items and strings; the struct is zeroed. Accepts NULL. */
void feed_page_release(feed_page_t *page);

/* Parsers: 0 on success (page filled; release it), -1 with err set (page left empty). The page
 * is overwritten on entry, not released: pass an empty or released one. err may be NULL. now_ms
 * is the current time (taxii21: valid_until at or before now_ms means withdrawn). */
int feed_parse_retro(const char *body, size_t len, feed_page_t *page, char *err, size_t errsize);
int feed_parse_taxii21(const char *body, size_t len, int64_t now_ms, feed_page_t *page, char *err, size_t errsize);
int feed_parse_misp(const char *body, size_t len, feed_page_t *page, char *err, size_t errsize);
int feed_parse_urlhaus_csv(const char *body, size_t len, feed_page_t *page, char *err, size_t errsize);
int feed_parse_openphish(const char *body, size_t len, feed_page_t *page, char *err, size_t errsize);

/* feed_parse_stix_pattern - the URL and domain values a STIX 2.1 pattern compares for equality:
 * "[url:value = 'http://x/']", "[domain-name:value = 'x.com']", joined by OR (inside or
 * across brackets, grouped by parentheses or not); '\'' and '\\' escapes honoured; the
 * keyword OR in upper case, as STIX writes it. A pattern that says anything else (AND,
 * other objects or operators, qualifiers such as WITHIN / START) yields -1: it is not a plain
 * list of bad URLs. On success *values / *types (n entries, caller frees each value and both
 * arrays); on -1 they are NULL and 0, nothing to free. Values are not checked against the
 * feed limits here (an empty '' is returned as ""): the TAXII parser does that per value. */
int feed_parse_stix_pattern(const char *pattern, char ***values, feed_observable_t **types, size_t *n);

/* feed_parse_time - an RFC 3339 / ISO 8601 UTC time ("2022-03-30T00:17:13Z", fractions and
 * "+00:00" accepted), or MISP's "YYYY-MM-DD HH:MM:SS" (UTC), into ms since the epoch; -1 when not one.
 * A "T" time must carry Z or an offset; fractions beyond milliseconds are truncated; times
 * before 1970 or after 9999 are refused. */
int64_t feed_parse_time(const char *text);

/* feed_format_time - ms since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (seconds; the retro `since`)
 * or with milliseconds ("...SS.mmmZ", TAXII added_after) into out (at least 32 bytes). */
void feed_format_time(int64_t ms, bool millis, char *out, size_t size);

#endif
