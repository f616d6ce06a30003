/*
 * query.h - the query language of `clawback search QUERY`.
 *
 * The syntax is the one operators know from the seed gateway (Cisco's): terms `field:value`,
 * ANDed together, separated by whitespace and optionally by the word AND (any case) between
 * two terms:
 *
 *     ip:"4.2.2.2" AND email_subject:"Invoice Due"  mid:12345
 *
 * Fields (names in any case): ip, domain, email, email_messageid, email_subject, cisco_mid
 * (alias mid), sha256, file_name, url, email_id, rcpt. A value follows the ':' directly: either
 * double-quoted, with the escapes \" and \\ only, or unquoted, a run of non-space characters
 * without '"'. Each value is checked and normalized for its field (see query_parse).
 *
 * The text must be UTF-8 without control characters other than whitespace. Work and memory
 * are bounded: QUERY_MAX_TEXT bytes of text, QUERY_MAX_TERMS terms, QUERY_MAX_VALUE bytes per
 * value (after unescaping). Duplicate terms are allowed (they are ANDed like any other).
 *
 * Error messages say where: "column 14: ..." where columns count characters (UTF-8 code points)
 * from 1; an error about a value names the column where the value starts (its opening quote,
 * or its first character when unquoted), i.e. the column right after the ':'.
 */
#ifndef CLAWBACK_QUERY_H
#define CLAWBACK_QUERY_H

#include <stddef.h>

#define QUERY_MAX_TEXT 16384 /* bytes of query text */
#define QUERY_MAX_TERMS 32
#define QUERY_MAX_VALUE 8192 /* bytes of one value, after unescaping */

typedef enum {
    QUERY_IP,
    QUERY_DOMAIN,
    QUERY_EMAIL,
    QUERY_MESSAGE_ID,
    QUERY_SUBJECT,
    QUERY_MID,
    QUERY_SHA256,
    QUERY_FILE_NAME,
    QUERY_URL,
    QUERY_EMAIL_ID,
    QUERY_RCPT,
} query_field_t;

typedef struct {
    query_field_t field;
    char *value; /* owned, NUL-terminated, normalized */
} query_term_t;

typedef struct {
    query_term_t *terms; /* owned; in the order written */
    size_t n;
} query_t;

/*
 * query_parse - parse text into *q; whatever *q held is overwritten, not freed. Returns 0, or
 * -1 with a message in err (errlen bytes, truncated to fit; err may be NULL when errlen is 0)
 * and *q left empty. The caller clears *q with query_clear, also on failure (harmless then).
 *
 * Values are normalized per field:
 *   ip               IPv4 or IPv6 (inet_pton), written back by inet_ntop ("::FFFF:1.2.3.4"
 *                    gives "::ffff:1.2.3.4"; a mapped address stays IPv6)
 *   domain           a leading '@' and one trailing '.' removed, ASCII lowercased, non-ASCII
 *                    converted to punycode (IDNA 2008, UTS #46); labels of 1-63 letters,
 *                    digits, '-' or '_', 253 characters at most
 *   email, rcpt      ASCII lowercased; exactly one '@' with something on both sides
 *   email_messageid  '<' '>' removed; case kept
 *   email_subject    whitespace runs folded to one space; case and UTF-8 kept
 *   cisco_mid, mid   a positive decimal integer that fits in int64, written without leading
 *                    zeros ("007" gives "7"); no sign
 *   sha256           64 hex digits, lowercased
 *   file_name, url   kept exactly as given (the caller canonicalizes URLs)
 *   email_id         a UUID (8-4-4-4-12 hex digits), lowercased
 * Every field but file_name and url has surrounding whitespace trimmed first; every value
 * must be non-empty after normalization. "Whitespace" is ASCII space, \t, \n, \v, \f, \r.
 */
int query_parse(const char *text, query_t *q, char *err, size_t errlen);

/* query_clear - free the terms of q (q may be NULL); q is empty and reusable afterwards. */
void query_clear(query_t *q);

/* query_field_name - the canonical name of a field ("ip", "domain", ..., "cisco_mid" for
 * QUERY_MID); "unknown" for a value outside the enum. Static string. */
const char *query_field_name(query_field_t field);

#endif
