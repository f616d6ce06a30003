/*
 * message.h - the observables of one delivered message (RFC 5322 / MIME, parsed with GMime).
 *
 * message_parse() reads a whole message and returns everything Clawback indexes and searches
 * by: Message-ID, subject (RFC 2047 decoded, UTF-8), date, header From/To/Cc/Reply-To,
 * sender address and domain, the sender IP (given by the MTA, or the first Received hop
 * outside the trusted relays), envelope sender and recipients (when the caller knows them),
 * every URL in canonical form (Safe Browsing), every attachment (decoded name, content type,
 * decoded size, SHA-256 of the decoded content).
 *
 * URLs: every text part and text attachment is decoded (base64, quoted-printable) and
 * converted to UTF-8, then searched (url_find.h); each candidate is refanged and unwrapped
 * (url_unwrap.h) and every layer canonicalized (url_canon.h); the distinct canonical forms are
 * kept in the order first seen.
 *
 * Hostile input is bounded: the message size (MESSAGE_MAX_SIZE), the number of parts walked,
 * the nesting depth, the text scanned per part and the URLs kept are all capped; hitting a
 * cap adds a note to `limits` and the result is still returned. Only input that is not a
 * message at all fails. Attachments are hashed by streaming through the decoder, so a 100 MB
 * attachment costs no more memory than the message itself.
 *
 * Thread safety: message_parse may run in several threads at once after message_library_init.
 */
#ifndef CLAWBACK_MESSAGE_H
#define CLAWBACK_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define MESSAGE_MAX_SIZE (200u * 1024 * 1024) /* larger input is refused */
#define MESSAGE_MAX_PARTS 50000               /* MIME parts walked; the rest are skipped */
#define MESSAGE_MAX_DEPTH 32                  /* message/rfc822 and multipart nesting */
#define MESSAGE_MAX_BOUNDARY_LINES 50000      /* "--" lines handed to GMime; the rest: raw text */
#define MESSAGE_MAX_TEXT_SCAN (16u * 1024 * 1024) /* decoded text scanned for URLs per part */
#define MESSAGE_MAX_URLS 10000                /* distinct canonical URLs kept (9,000 from text) */
#define MESSAGE_MAX_BARE_HOSTS 2000           /* "example.com"-style candidates from text */
#define MESSAGE_MAX_ATTACHMENTS 1000
#define MESSAGE_MAX_ADDRESSES 10000           /* per address header */
#define MESSAGE_MAX_DELIVERED_TO 100          /* recipients read from delivery headers */
#define MESSAGE_MAX_TRUSTED 64

typedef struct {
    char *name;         /* decoded file name (UTF-8) or NULL */
    char *content_type; /* "type/subtype", lowercase */
    int64_t size;       /* bytes after transfer decoding */
    char sha256[65];    /* lowercase hex of the decoded content */
} message_attachment_t;

typedef struct {
    char **v; /* each owned by the list */
    size_t n;
} message_strv_t;

/* A network, for the trusted relays: an IPv4 or IPv6 address and a prefix length. */
typedef struct {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;
} message_net_t;

/* What the caller knows besides the message bytes (all optional). */
typedef struct {
    const char *envelope_sender;     /* MAIL FROM */
    const char *const *envelope_rcpts; /* RCPT TO, n_envelope_rcpts of them */
    size_t n_envelope_rcpts;
    const char *client_ip;           /* the connecting client's address, from the MTA */
    const char *helo;                /* the client's HELO name, from the MTA */
    const message_net_t *trusted;    /* relays whose Received hops are skipped; NULL: loopback */
    size_t n_trusted;
} message_context_t;

typedef struct {
    char *message_id;     /* without angle brackets; NULL when absent */
    char *subject;        /* decoded, UTF-8, whitespace runs folded; NULL when absent */
    char *date;           /* the Date header as RFC 3339 UTC ("2002-07-30T08:30:04Z"), or NULL */
    int64_t date_ms;      /* the same in ms since the epoch, 0 when absent or unparsable */
    char *header_from;    /* first From address, lowercase; NULL when absent */
    char *from_display;   /* decoded display name of that address, or NULL */
    char *sender;         /* envelope sender if known, else header From address (lowercase) */
    char *sender_domain;  /* domain of `sender`, lowercase, IDN as punycode; or NULL */
    char *sender_ip;      /* MTA-given client IP, else first untrusted Received hop; or NULL */
    char *helo;           /* MTA-given HELO, else from that Received hop; or NULL */
    message_strv_t envelope_rcpts; /* as given by the caller, lowercase */
    message_strv_t to, cc, reply_to; /* addresses, lowercase */
    message_strv_t delivered_to; /* Delivered-To, X-Original-To, Envelope-To: lowercase */
    message_strv_t urls;  /* distinct canonical URLs, first-seen order */
    message_attachment_t *attachments;
    size_t n_attachments;
    size_t n_parts;       /* MIME parts walked */
    size_t n_url_candidates; /* URL candidates found before de-duplication */
    message_strv_t limits; /* notes on caps hit and parser complaints (for operators) */
} message_t;

/* message_library_init - initialise GMime once per process (idempotent, thread-safe). */
void message_library_init(void);
/* message_thread_release - free the buffers and charset converters message_parse keeps per
 * thread between calls (call before a thread that parsed messages exits). */
void message_thread_release(void);

/* message_parse - parse len bytes of data (an RFC 5322 message; an mbox "From " first line is
 * skipped) with the caller's context (may be NULL) into *msg, which the caller later frees
 * with message_clear. Returns 0, or -1 with a reason in err (errlen bytes) and *msg empty:
 * only when the input is empty, too large, or has no header at all. */
int message_parse(const char *data, size_t len, const message_context_t *ctx, message_t *msg,
                  char *err, size_t errlen);

/* message_clear - free everything a message_t holds; it is zeroed and reusable. */
void message_clear(message_t *msg);

/* message_to_json - append msg as one JSON object (no newline) to out. 0, or -1 when out's
 * maximum was reached. */
int message_to_json(const message_t *msg, strbuf_t *out);

/* message_net_parse - parse "10.0.0.0/8", "192.0.2.1", "2001:db8::/32" into *net. 0 or -1. */
int message_net_parse(const char *text, message_net_t *net);

/* message_nets_parse - a space- or comma-separated list of networks ("10.0.0.0/8 ::1") into
 * nets (at most max); *n is set to their number. 0, or -1 with the bad word in err. */
int message_nets_parse(const char *list, message_net_t *nets, size_t max, size_t *n, char *err, size_t errsize);

/* message_nets_contain - whether the address ip (text, IPv4 or IPv6) is in one of nets. */
bool message_nets_contain(const message_net_t *nets, size_t n, const char *ip);

/* message_url_collect - refang, unwrap and canonicalize one URL candidate, adding every
 * distinct canonical layer to msg->urls (used by message_parse; exposed for the CLI and
 * tests). Returns the number of new URLs added. */
size_t message_url_collect(message_t *msg, const char *url, size_t len);

#endif
