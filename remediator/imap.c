/*
 * imap.c - the "imap" mailbox back-end (backend.h): any IMAP server, an admin account acting
 * for users (Dovecot master user, SASL PLAIN authzid, or the account's own mailbox).
 *
 * Connections: libcurl connects, negotiates TLS (imaps://, or STARTTLS required on imap://
 * unless tls_verify is off) and logs in (CURLOPT_CONNECT_ONLY); the IMAP commands are then
 * written and read here over curl_easy_send/curl_easy_recv. libcurl's own IMAP requests are
 * not used past login because a custom request's reply loses the contents of literals (a
 * FETCH of a header or a message, a LIST name sent as a literal), libcurl's URL fetches use
 * BODY[] (which sets \Seen on every message looked at), and a tagged NO's response code
 * ([TRYCREATE]) is not exposed. Replies are read whole (lines and literals) into a buffer with
 * a cap (IMAP_MAX_REPLY, IMAP_MAX_MESSAGE for a message's source) and parsed by a small
 * cursor that knows atoms, quoted strings, literals and parenthesised lists.
 *
 * Sessions: one connection per mailbox, logged in for that mailbox. A released session is
 * kept in the backend's idle list (most recently used first, at most IMAP_IDLE_MAX; the least
 * recently used is logged out) under the backend's mutex, and handed to the next job of the
 * same mailbox. A session whose connection is in an unknown state (transport error, timeout,
 * malformed reply, BYE) is marked broken and closed on release.
 *
 * Find: LIST "" "*" (selectable folders, the quarantine folder skipped; the list serves the
 * connection's next jobs for 30 s), in each folder SELECT (kept for the remove and the next
 * job), UID SEARCH HEADER Message-ID "<id>" (a substring search), then UID FETCH of the
 * hits' Message-ID header with BODY.PEEK: only an exact value (unfolded, trimmed) counts.
 * Remove: SELECT, then UID MOVE to the quarantine folder (CREATE on [TRYCREATE], once), or
 * UID COPY + UID STORE \Deleted + UID EXPUNGE of that UID (UIDPLUS) without MOVE; permanent:
 * UID STORE \Deleted + UID EXPUNGE. A plain EXPUNGE is never sent. Forward: UID FETCH
 * BODY.PEEK[] of the first copy, a new multipart/mixed message with the original attached as
 * message/rfc822, submitted over SMTP with libcurl.
 */
#include "backend.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "strbuf.h"
#include "util.h"

#define IMAP_IDLE_MAX 64                     /* idle connections kept per profile */
#define IMAP_LIST_TTL_MS 30000 /* a mailbox's folder list serves its next jobs this long */
#define IMAP_MAX_REPLY ((size_t)1 << 20)     /* one reply of a command (LIST, SEARCH, ...) */
#define IMAP_MAX_MESSAGE ((size_t)64 << 20)  /* a message's source fetched for a forward */
#define IMAP_MAX_FOLDERS 10000               /* folders searched in one mailbox */
#define IMAP_MAX_COPIES 1000                 /* copies of one message kept in a session */
#define IMAP_FETCH_BATCH 200                 /* UIDs per UID FETCH of Message-ID headers */
#define IMAP_CHECK_IDLE_MS 30000             /* a connection idle longer is checked with NOOP */
#define IMAP_MAX_DEPTH 16                    /* nesting of parenthesised lists skipped */
#define IMAP_MAX_COMMAND 8000                /* bytes of one SEARCH or UID-set command we build
                                              * (servers take 8 KB lines at least: RFC 7162) */

typedef enum { IMAP_LOGIN_MASTER, IMAP_LOGIN_AUTHZID, IMAP_LOGIN_DIRECT } imap_login_t;

/* One confirmed copy of a job's message. */
typedef struct {
    char *folder; /* as LIST named it (modified UTF-7), owned */
    uint32_t uid;
    size_t job;   /* the job's index in the last find_many (0 for a find) */
} imap_copy_t;

/* UID ranges, as a COPYUID response code's source set names them. */
typedef struct {
    struct imap_range {
        uint32_t lo, hi;
    } *v;
    size_t n, cap;
} imap_ranges_t;

struct backend {
    char *name;       /* the profile's */
    char *url;        /* scheme://host[:port]/ as configured (a URL holds no password here) */
    char *username;   /* the admin account */
    char *password;   /* never logged; cleansed on destroy */
    imap_login_t login;
    char *separator;  /* login master: the server's master user separator */
    bool permanent;   /* delete = permanent */
    char *quarantine; /* the quarantine folder */
    char *forward_from;
    char *smtp_url, *smtp_username, *smtp_password; /* smtp_password cleansed on destroy */
    char *ca_file;    /* or NULL */
    bool tls_verify;
    int64_t timeout_ms;
    pthread_mutex_t lock;                     /* guards the idle list */
    backend_session_t *idle_head, *idle_tail; /* idle sessions, most recently used first */
    size_t nidle;
};

struct backend_session {
    backend_t *backend;
    char *mailbox;
    CURL *curl;
    curl_socket_t sock;
    bool broken;                   /* the connection's state is unknown: never reused */
    bool too_large;                /* the last failure: a reply past its cap (not retried) */
    bool cap_move, cap_uidplus;    /* server capabilities */
    unsigned tag;                  /* number of the last command's tag */
    char *buf;                     /* received bytes, buf[pos..len) not yet parsed */
    size_t len, pos, cap;
    char *selected;                /* the folder selected, or NULL */
    bool selected_rw;              /* SELECTed (read-write) rather than EXAMINEd */
    struct imap_folders *listed;   /* the folders the last LIST named, or NULL */
    int64_t listed_ms;             /* monotonic time of that LIST */
    imap_copy_t *copies;           /* the copies find confirmed */
    size_t ncopies;
    int64_t idle_since_ms;         /* monotonic time of the release that kept it */
    backend_session_t *prev, *next; /* in the idle list */
    /* the last command's outcome */
    char err[256];        /* transport or protocol failure (the session is then broken) */
    char code[32];        /* the tagged reply's response code name ("TRYCREATE"), or "" */
    char text[200];       /* the tagged reply, printable, for details */
    unsigned expunged;    /* untagged EXPUNGE / VANISHED replies seen */
    unsigned copyuid;     /* COPYUID response codes seen */
    imap_ranges_t copied; /* the source UIDs those COPYUID codes named */
    char login_reply[200]; /* the server's last line during login (debug callback) */
    char curl_error[CURL_ERROR_SIZE];
};

typedef enum { IMAP_OK, IMAP_NO, IMAP_BAD, IMAP_BROKEN } imap_reply_t;

/* A position in one reply; end excludes the reply's final line break. */
typedef struct {
    const char *p, *end;
} imap_cursor_t;

/* imap_untagged_fn - called with each untagged reply of a command (c after "* "); -1 makes the
 * reply malformed (the session becomes broken; set s->err). */
typedef int (*imap_untagged_fn)(backend_session_t *s, imap_cursor_t *c, void *ctx);

static pthread_once_t imap_global_once = PTHREAD_ONCE_INIT;
static CURLcode imap_global_rc = CURLE_FAILED_INIT;

/* imap_global_init - initialise libcurl once per process. */
static void imap_global_init(void)
{
    imap_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ------------------------------------------------------------------ small helpers */

static void imap_set_err(backend_session_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* imap_set_err - record a transport or protocol failure: the session is broken from now on. */
static void imap_set_err(backend_session_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    s->broken = true;
}

/* imap_printable - copy n bytes of server text into out (size bytes) with anything but
 * printable ASCII as '?', for details and logs. */
static void imap_printable(char *out, size_t size, const char *p, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < size; i++)
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    if (size)
        out[i] = '\0';
}

/* imap_append_quoted - append s as an IMAP quoted string; -1 when it holds a byte a quoted
 * string cannot carry (NUL, CR, LF, 8-bit). */
static int imap_append_quoted(strbuf_t *sb, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '\r' || *p == '\n' || *p >= 0x80)
            return -1;
    strbuf_appends(sb, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            strbuf_append(sb, "\\", 1);
        strbuf_append(sb, p, 1);
    }
    return strbuf_appends(sb, "\"");
}

/* imap_is_wsp - space or tab. */
static bool imap_is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* imap_header_next - the next field called name (case-insensitive) in the header block
 * [*pos, len) of msg (the block ends at the first empty line): its value unfolded (line breaks
 * removed) and trimmed into out. *pos moves past it. false when there is none. */
static bool imap_header_next(const char *msg, size_t len, size_t *pos, const char *name, strbuf_t *out)
{
    size_t name_len = strlen(name);
    size_t i = *pos;
    while (i < len) {
        size_t eol = i;
        while (eol < len && msg[eol] != '\n')
            eol++;
        size_t line_len = eol - i;
        if (line_len > 0 && msg[i + line_len - 1] == '\r')
            line_len--;
        if (line_len == 0) /* the end of the header block */
            break;
        bool match = line_len > name_len && strncasecmp(msg + i, name, name_len) == 0;
        size_t colon = i + name_len;
        while (match && colon < i + line_len && imap_is_wsp(msg[colon]))
            colon++;
        if (!match || colon >= i + line_len || msg[colon] != ':') {
            i = eol + 1;
            continue;
        }
        /* the value: the rest of this line and every continuation line */
        strbuf_reset(out);
        size_t v = colon + 1, end = eol;
        for (;;) {
            for (size_t k = v; k < end; k++)
                if (msg[k] != '\r')
                    strbuf_append(out, msg + k, 1);
            if (end + 1 < len && imap_is_wsp(msg[end + 1])) {
                v = end + 1;
                end = v;
                while (end < len && msg[end] != '\n')
                    end++;
                continue;
            }
            break;
        }
        *pos = end < len ? end + 1 : len;
        size_t a = 0, b = out->len;
        while (a < b && imap_is_wsp(out->data[a]))
            a++;
        while (b > a && imap_is_wsp(out->data[b - 1]))
            b--;
        memmove(out->data, out->data + a, b - a);
        out->len = b - a;
        out->data[out->len] = '\0';
        return true;
    }
    *pos = len;
    return false;
}

/* ------------------------------------------------------------------ reply parsing */

/* imap_cur_sp - consume one space; false when there is none. */
static bool imap_cur_sp(imap_cursor_t *c)
{
    if (c->p < c->end && *c->p == ' ') {
        c->p++;
        return true;
    }
    return false;
}

/* imap_atom_char - whether c may appear in an atom as this parser reads them (flags' '\' and
 * '*' included; '[' and ']' end one: response codes, BODY[section]). */
static bool imap_atom_char(char c)
{
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"' && c != '[' && c != ']';
}

/* imap_cur_atom - read an atom: its start and length (0 when none). */
static size_t imap_cur_atom(imap_cursor_t *c, const char **start)
{
    *start = c->p;
    while (c->p < c->end && imap_atom_char(*c->p))
        c->p++;
    return (size_t)(c->p - *start);
}

/* imap_cur_word - whether the next atom is word (case-insensitive); consumed only then. */
static bool imap_cur_word(imap_cursor_t *c, const char *word)
{
    imap_cursor_t save = *c;
    const char *a;
    size_t n = imap_cur_atom(c, &a);
    if (n == strlen(word) && strncasecmp(a, word, n) == 0)
        return true;
    *c = save;
    return false;
}

/* imap_cur_number - read a 32-bit unsigned number; -1 when there is none. */
static int imap_cur_number(imap_cursor_t *c, uint32_t *v)
{
    uint64_t n = 0;
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9' && c->p - start < 11)
        n = n * 10 + (uint64_t)(*c->p++ - '0');
    if (c->p == start || n > UINT32_MAX)
        return -1;
    *v = (uint32_t)n;
    return 0;
}

/* imap_cur_literal - read a literal "{N}" CRLF and its N bytes; -1 when malformed. */
static int imap_cur_literal(imap_cursor_t *c, const char **data, size_t *n)
{
    if (c->p >= c->end || *c->p != '{')
        return -1;
    c->p++;
    uint64_t len = 0;
    const char *digits = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9' && c->p - digits < 19)
        len = len * 10 + (uint64_t)(*c->p++ - '0');
    if (c->p == digits)
        return -1;
    if (c->p < c->end && *c->p == '+')
        c->p++;
    if (c->p >= c->end || *c->p != '}')
        return -1;
    c->p++;
    if (c->p < c->end && *c->p == '\r')
        c->p++;
    if (c->p >= c->end || *c->p != '\n')
        return -1;
    c->p++;
    if (len > (uint64_t)(c->end - c->p))
        return -1;
    *data = c->p;
    *n = (size_t)len;
    c->p += len;
    return 0;
}

/* imap_cur_string - read an astring or nstring (atom, quoted string, literal, NIL) into out;
 * *nil tells NIL apart (may be NULL when NIL is not expected). -1 when malformed. */
static int imap_cur_string(imap_cursor_t *c, strbuf_t *out, bool *nil)
{
    strbuf_reset(out);
    if (nil)
        *nil = false;
    if (c->p >= c->end)
        return -1;
    if (*c->p == '"') {
        for (c->p++; c->p < c->end && *c->p != '"'; c->p++) {
            if (*c->p == '\\' && c->p + 1 < c->end)
                c->p++;
            if (strbuf_append(out, c->p, 1) < 0)
                return -1;
        }
        if (c->p >= c->end)
            return -1;
        c->p++;
        return 0;
    }
    if (*c->p == '{') {
        const char *data;
        size_t n;
        if (imap_cur_literal(c, &data, &n) < 0)
            return -1;
        return strbuf_append(out, data, n);
    }
    const char *a;
    size_t n = imap_cur_atom(c, &a);
    if (n == 0)
        return -1;
    if (nil && n == 3 && strncasecmp(a, "NIL", 3) == 0) {
        *nil = true;
        return 0;
    }
    return strbuf_append(out, a, n);
}

/* imap_cur_skip - skip one value (atom, string, literal, parenthesised list, an atom with a
 * [section] such as BODY[HEADER.FIELDS (X)]); -1 when malformed. */
static int imap_cur_skip(imap_cursor_t *c, int depth)
{
    if (c->p >= c->end || depth > IMAP_MAX_DEPTH)
        return -1;
    if (*c->p == '"' || *c->p == '{') {
        const char *data;
        size_t n;
        if (*c->p == '{')
            return imap_cur_literal(c, &data, &n);
        for (c->p++; c->p < c->end && *c->p != '"'; c->p++)
            if (*c->p == '\\' && c->p + 1 < c->end)
                c->p++;
        if (c->p >= c->end)
            return -1;
        c->p++;
        return 0;
    }
    if (*c->p == '(' || *c->p == '[') {
        char close = *c->p == '(' ? ')' : ']';
        c->p++;
        while (c->p < c->end && *c->p != close) {
            if (*c->p == ' ') {
                c->p++;
                continue;
            }
            if (imap_cur_skip(c, depth + 1) < 0)
                return -1;
        }
        if (c->p >= c->end)
            return -1;
        c->p++;
        return 0;
    }
    const char *a;
    if (imap_cur_atom(c, &a) == 0)
        return -1;
    if (c->p < c->end && *c->p == '[' && imap_cur_skip(c, depth + 1) < 0) /* BODY[...]<n> */
        return -1;
    if (c->p < c->end && *c->p == '<')
        imap_cur_atom(c, &a);
    return 0;
}

/* ------------------------------------------------------------------ the connection */

/* imap_deadline_left - milliseconds until deadline, at least 0, as poll wants them. */
static int imap_deadline_left(int64_t deadline)
{
    int64_t left = deadline - util_monotonic_ms();
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* imap_wait_socket - wait until the socket is readable (or writable); -1 on timeout. */
static int imap_wait_socket(backend_session_t *s, bool write, int64_t deadline)
{
    struct pollfd pfd = {.fd = s->sock, .events = write ? POLLOUT : POLLIN};
    for (;;) {
        int left = imap_deadline_left(deadline);
        if (left == 0) {
            imap_set_err(s, "IMAP %s: no answer within %lld ms", s->backend->url,
                         (long long)s->backend->timeout_ms);
            return -1;
        }
        int rc = poll(&pfd, 1, left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR) {
            imap_set_err(s, "IMAP %s: poll: %s", s->backend->url, strerror(errno));
            return -1;
        }
    }
}

/* imap_send - write n bytes to the server; -1 (broken) on failure. */
static int imap_send(backend_session_t *s, const char *data, size_t n, int64_t deadline)
{
    while (n > 0) {
        size_t sent = 0;
        CURLcode rc = curl_easy_send(s->curl, data, n, &sent);
        if (rc == CURLE_AGAIN) {
            if (imap_wait_socket(s, true, deadline) < 0)
                return -1;
            continue;
        }
        if (rc != CURLE_OK) {
            imap_set_err(s, "IMAP %s: send: %s", s->backend->url, curl_easy_strerror(rc));
            return -1;
        }
        data += sent;
        n -= sent;
    }
    return 0;
}

/* imap_fill - receive more bytes into the buffer (which may move); -1 (broken) on failure,
 * end of stream or when the buffer would pass limit bytes. */
static int imap_fill(backend_session_t *s, size_t limit, int64_t deadline)
{
    if (s->len == s->cap) {
        size_t want = s->cap ? s->cap * 2 : 16384;
        if (want > limit + 65536)
            want = limit + 65536;
        if (want <= s->cap) {
            imap_set_err(s, "IMAP %s: a reply is larger than %zu bytes", s->backend->url, limit);
            s->too_large = true;
            return -1;
        }
        s->buf = util_xrealloc(s->buf, want);
        s->cap = want;
    }
    for (;;) {
        size_t got = 0;
        CURLcode rc = curl_easy_recv(s->curl, s->buf + s->len, s->cap - s->len, &got);
        if (rc == CURLE_AGAIN) {
            if (imap_wait_socket(s, false, deadline) < 0)
                return -1;
            continue;
        }
        if (rc != CURLE_OK) {
            imap_set_err(s, "IMAP %s: receive: %s", s->backend->url, curl_easy_strerror(rc));
            return -1;
        }
        if (got == 0) {
            imap_set_err(s, "IMAP %s: the server closed the connection", s->backend->url);
            return -1;
        }
        s->len += got;
        return 0;
    }
}

/* imap_read_reply - read one whole reply (a line, and the literals it announces with the lines
 * that follow them) of at most limit bytes; *c spans it without its final line break. The
 * bytes stay valid until the next read. -1 (broken) on failure. */
static int imap_read_reply(backend_session_t *s, size_t limit, int64_t deadline, imap_cursor_t *c)
{
    if (s->pos > 0) { /* drop what was parsed */
        memmove(s->buf, s->buf + s->pos, s->len - s->pos);
        s->len -= s->pos;
        s->pos = 0;
    }
    size_t scan = 0;
    for (;;) {
        char *nl = scan < s->len ? memchr(s->buf + scan, '\n', s->len - scan) : NULL;
        if (!nl) {
            if (s->len > limit) {
                imap_set_err(s, "IMAP %s: a reply is larger than %zu bytes", s->backend->url, limit);
                s->too_large = true;
                return -1;
            }
            if (imap_fill(s, limit, deadline) < 0)
                return -1;
            continue;
        }
        size_t eol = (size_t)(nl - s->buf), line_end = eol;
        if (line_end > scan && s->buf[line_end - 1] == '\r')
            line_end--;
        /* a literal announced at the end of the line: "{N}" or "{N+}" */
        uint64_t literal = 0;
        bool has_literal = false;
        if (line_end > scan && s->buf[line_end - 1] == '}') {
            size_t k = line_end - 1;
            if (k > scan && s->buf[k - 1] == '+')
                k--;
            size_t digits_end = k, n = 0;
            while (k > scan && s->buf[k - 1] >= '0' && s->buf[k - 1] <= '9' && n < 19) {
                k--;
                n++;
            }
            if (n > 0 && k > scan && s->buf[k - 1] == '{') {
                has_literal = true;
                for (size_t d = k; d < digits_end; d++)
                    literal = literal * 10 + (uint64_t)(s->buf[d] - '0');
            }
        }
        if (!has_literal) {
            c->p = s->buf;
            c->end = s->buf + line_end;
            s->pos = eol + 1;
            return 0;
        }
        if (literal > limit || eol + 1 + literal > limit) {
            imap_set_err(s, "IMAP %s: a reply is larger than %zu bytes", s->backend->url, limit);
            s->too_large = true;
            return -1;
        }
        size_t need = eol + 1 + (size_t)literal;
        while (s->len < need)
            if (imap_fill(s, limit, deadline) < 0)
                return -1;
        scan = need;
    }
}

/* imap_note_untagged - what every command watches in untagged replies: EXPUNGE, VANISHED,
 * COPYUID, BYE. */
/* imap_note_copyuid - a COPYUID response code's source UID set (c after "COPYUID") into
 * s->copied; a malformed set is ignored (the caller then knows less, not something wrong). */
static void imap_note_copyuid(backend_session_t *s, imap_cursor_t c)
{
    uint32_t validity, lo, hi;
    if (!imap_cur_sp(&c) || imap_cur_number(&c, &validity) < 0 || !imap_cur_sp(&c))
        return;
    s->copyuid++;
    do {
        if (imap_cur_number(&c, &lo) < 0)
            return;
        hi = lo;
        if (c.p < c.end && *c.p == ':') {
            c.p++;
            if (imap_cur_number(&c, &hi) < 0)
                return;
        }
        if (s->copied.n == s->copied.cap) {
            s->copied.cap = s->copied.cap ? s->copied.cap * 2 : 8;
            s->copied.v = util_xrealloc(s->copied.v, s->copied.cap * sizeof(*s->copied.v));
        }
        s->copied.v[s->copied.n].lo = lo < hi ? lo : hi;
        s->copied.v[s->copied.n].hi = lo < hi ? hi : lo;
        s->copied.n++;
    } while (c.p < c.end && *c.p++ == ',');
}

/* imap_copied - whether the last command's COPYUID codes named uid as copied. */
static bool imap_copied(const backend_session_t *s, uint32_t uid)
{
    for (size_t i = 0; i < s->copied.n; i++)
        if (uid >= s->copied.v[i].lo && uid <= s->copied.v[i].hi)
            return true;
    return false;
}

static void imap_note_untagged(backend_session_t *s, imap_cursor_t c)
{
    uint32_t n;
    if (imap_cur_number(&c, &n) == 0) {
        if (imap_cur_sp(&c) && imap_cur_word(&c, "EXPUNGE"))
            s->expunged++;
        return;
    }
    if (imap_cur_word(&c, "VANISHED")) {
        s->expunged++;
    } else if (imap_cur_word(&c, "OK")) {
        if (imap_cur_sp(&c) && c.p < c.end && *c.p == '[') {
            c.p++;
            if (imap_cur_word(&c, "COPYUID"))
                imap_note_copyuid(s, c);
        }
    } else if (imap_cur_word(&c, "BYE")) {
        s->broken = true; /* the server is closing: the tagged reply may still come */
    }
}

/* imap_note_tagged - keep a tagged reply's response code and text (c after the tag). */
static imap_reply_t imap_note_tagged(backend_session_t *s, imap_cursor_t c)
{
    imap_printable(s->text, sizeof(s->text), c.p, (size_t)(c.end - c.p));
    s->code[0] = '\0';
    imap_reply_t r = imap_cur_word(&c, "OK") ? IMAP_OK : imap_cur_word(&c, "NO") ? IMAP_NO
                     : imap_cur_word(&c, "BAD")                                ? IMAP_BAD
                                                                                : IMAP_BROKEN;
    if (r == IMAP_BROKEN) {
        imap_set_err(s, "IMAP %s: malformed tagged reply: %s", s->backend->url, s->text);
        return r;
    }
    if (imap_cur_sp(&c) && c.p < c.end && *c.p == '[') {
        c.p++;
        const char *a;
        size_t n = imap_cur_atom(&c, &a);
        imap_printable(s->code, sizeof(s->code), a, n < sizeof(s->code) ? n : sizeof(s->code) - 1);
        if (n == 7 && strncasecmp(a, "COPYUID", 7) == 0)
            imap_note_copyuid(s, c);
    }
    return r;
}

/* imap_command - send one command (printf-style, without tag and line break) and read its
 * replies up to the tagged one, each untagged one of at most limit bytes handed to fn (may be
 * NULL). IMAP_OK, IMAP_NO or IMAP_BAD with s->code and s->text, or IMAP_BROKEN with s->err. */
static imap_reply_t imap_command(backend_session_t *s, size_t limit, imap_untagged_fn fn, void *ctx, const char *fmt,
                                 ...) __attribute__((format(printf, 5, 6)));
static imap_reply_t imap_command(backend_session_t *s, size_t limit, imap_untagged_fn fn, void *ctx, const char *fmt,
                                 ...)
{
    if (s->broken && !s->err[0])
        imap_set_err(s, "IMAP %s: the server said BYE", s->backend->url);
    if (s->broken)
        return IMAP_BROKEN;
    int64_t deadline = util_monotonic_ms() + s->backend->timeout_ms;
    char tag[16];
    snprintf(tag, sizeof(tag), "C%u", ++s->tag);
    strbuf_t cmd;
    strbuf_init(&cmd, IMAP_MAX_REPLY);
    strbuf_appendf(&cmd, "%s ", tag);
    va_list ap;
    va_start(ap, fmt);
    strbuf_vappendf(&cmd, fmt, ap);
    va_end(ap);
    strbuf_appends(&cmd, "\r\n");
    s->expunged = s->copyuid = 0;
    s->copied.n = 0;
    s->too_large = false;
    s->code[0] = s->text[0] = '\0';
    int rc = cmd.overflow ? -1 : imap_send(s, cmd.data, cmd.len, deadline);
    strbuf_release(&cmd);
    if (rc < 0)
        return IMAP_BROKEN;
    size_t tag_len = strlen(tag);
    for (;;) {
        imap_cursor_t c;
        if (imap_read_reply(s, limit, deadline, &c) < 0)
            return IMAP_BROKEN;
        size_t n = (size_t)(c.end - c.p);
        if (n > tag_len && memcmp(c.p, tag, tag_len) == 0 && c.p[tag_len] == ' ') {
            c.p += tag_len + 1;
            return imap_note_tagged(s, c);
        }
        if (n >= 2 && c.p[0] == '*' && c.p[1] == ' ') {
            c.p += 2;
            imap_note_untagged(s, c);
            if (fn && fn(s, &c, ctx) < 0) {
                if (!s->err[0])
                    imap_set_err(s, "IMAP %s: malformed reply to %s", s->backend->url, fmt);
                s->broken = true;
                return IMAP_BROKEN;
            }
            continue;
        }
        char shown[80];
        imap_printable(shown, sizeof(shown), c.p, n);
        imap_set_err(s, "IMAP %s: unexpected reply: %s", s->backend->url, shown);
        return IMAP_BROKEN;
    }
}

/* imap_reply_outcome - out for a command that did not answer OK (what names it in words). A
 * broken connection or a NO saying the server is busy is RETRY; a reply past its cap, other NO
 * and BAD are FAILED. */
static backend_status_t imap_reply_outcome(backend_session_t *s, imap_reply_t r, backend_outcome_t *out,
                                           const char *what)
{
    if (r == IMAP_BROKEN)
        return backend_outcome_set(out, s->too_large ? BACKEND_FAILED : BACKEND_RETRY, -1, "%s: %s", what, s->err);
    static const char *const busy[] = {"UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG", "EXPUNGEISSUED"};
    bool retry = false;
    for (size_t i = 0; r == IMAP_NO && i < UTIL_ARRAY_LEN(busy); i++)
        retry = retry || strcasecmp(s->code, busy[i]) == 0;
    return backend_outcome_set(out, retry ? BACKEND_RETRY : BACKEND_FAILED, -1, "%s (mailbox %s): %s", what,
                               s->mailbox, s->text);
}

/* imap_capability_reply - untagged CAPABILITY: MOVE and UIDPLUS. */
static int imap_capability_reply(backend_session_t *s, imap_cursor_t *c, void *ctx)
{
    (void)ctx;
    if (!imap_cur_word(c, "CAPABILITY"))
        return 0;
    while (imap_cur_sp(c)) {
        const char *a;
        size_t n = imap_cur_atom(c, &a);
        if (n == 4 && strncasecmp(a, "MOVE", 4) == 0)
            s->cap_move = true;
        else if (n == 7 && strncasecmp(a, "UIDPLUS", 7) == 0)
            s->cap_uidplus = true;
        else if (n == 0)
            break;
    }
    return 0;
}

/* imap_debug_cb - libcurl's debug callback during login: keep the server's last line (never
 * what is sent, which holds the credentials). */
static int imap_debug_cb(CURL *curl, curl_infotype type, char *data, size_t size, void *userdata)
{
    (void)curl;
    backend_session_t *s = userdata;
    if (type == CURLINFO_HEADER_IN) {
        while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
            size--;
        imap_printable(s->login_reply, sizeof(s->login_reply), data, size);
    }
    return 0;
}

/* imap_login_name - the user name the admin logs in with for mailbox. */
static void imap_login_name(const backend_t *b, const char *mailbox, strbuf_t *out)
{
    if (b->login == IMAP_LOGIN_MASTER)
        strbuf_appendf(out, "%s%s%s", mailbox, b->separator, b->username);
    else
        strbuf_appends(out, b->username);
}

/* imap_login_outcome - out for a failed connect and login. */
static void imap_login_outcome(backend_session_t *s, CURLcode rc, const char *login, backend_outcome_t *out)
{
    const backend_t *b = s->backend;
    const char *why = s->curl_error[0] ? s->curl_error : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_LOGIN_DENIED:
        /* a NO [UNAVAILABLE] (a busy server) is worth another try; anything else is not */
        backend_outcome_set(out, strstr(s->login_reply, "[UNAVAILABLE]") ? BACKEND_RETRY : BACKEND_FAILED, -1,
                            "IMAP %s: login as %s for mailbox %s refused (wrong admin credentials, or no such "
                            "mailbox user): %s",
                            b->url, login, s->mailbox, s->login_reply);
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY: /* a greeting other than OK: "* BYE too many connections" */
        backend_outcome_set(out, BACKEND_RETRY, -1, "IMAP %s: %s", b->url, why);
        return;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_USE_SSL_FAILED:
        backend_outcome_set(out, BACKEND_FAILED, -1, "IMAP %s: TLS: %s", b->url, why);
        return;
    default:
        backend_outcome_set(out, BACKEND_FAILED, -1, "IMAP %s: %s", b->url, why);
        return;
    }
}

static void imap_folders_free(struct imap_folders **f);

/* imap_session_close - log out (when the connection is sane) and free; accepts NULL. */
static void imap_session_close(backend_session_t *s)
{
    if (!s)
        return;
    if (s->curl) {
        /* libcurl sends LOGOUT when it closes a connection and waits for the answer: on a
         * connection in an unknown state, shut the socket first so that it cannot hang */
        if (s->broken && s->sock != CURL_SOCKET_BAD)
            shutdown(s->sock, SHUT_RDWR);
        curl_easy_cleanup(s->curl);
    }
    for (size_t i = 0; i < s->ncopies; i++)
        free(s->copies[i].folder);
    free(s->copies);
    free(s->copied.v);
    free(s->buf);
    free(s->selected);
    imap_folders_free(&s->listed);
    free(s->mailbox);
    free(s);
}

/* imap_session_open - a new session: connect and log in for mailbox. NULL with out filled. */
static backend_session_t *imap_session_open(backend_t *b, const char *mailbox, backend_outcome_t *out)
{
    backend_session_t *s = util_xcalloc(1, sizeof(*s));
    s->backend = b;
    s->mailbox = util_xstrdup(mailbox);
    s->sock = CURL_SOCKET_BAD;
    s->curl = curl_easy_init();
    if (!s->curl) {
        backend_outcome_set(out, BACKEND_RETRY, -1, "IMAP %s: cannot create a libcurl handle", b->url);
        imap_session_close(s);
        return NULL;
    }
    strbuf_t login;
    strbuf_init(&login, 0);
    imap_login_name(b, mailbox, &login);
    CURL *c = s->curl;
    CURLcode rc = CURLE_OK;
#define IMAP_SETOPT(opt, val)                                                                                       \
    do {                                                                                                            \
        if (rc == CURLE_OK)                                                                                         \
            rc = curl_easy_setopt(c, opt, val);                                                                     \
    } while (0)
    IMAP_SETOPT(CURLOPT_URL, b->url);
    IMAP_SETOPT(CURLOPT_PROTOCOLS_STR, "imap,imaps");
    IMAP_SETOPT(CURLOPT_CONNECT_ONLY, 1L);
    IMAP_SETOPT(CURLOPT_NOSIGNAL, 1L);
    IMAP_SETOPT(CURLOPT_ERRORBUFFER, s->curl_error);
    IMAP_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)b->timeout_ms);
    IMAP_SETOPT(CURLOPT_TIMEOUT_MS, (long)b->timeout_ms);
    IMAP_SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    IMAP_SETOPT(CURLOPT_USERNAME, login.data);
    IMAP_SETOPT(CURLOPT_PASSWORD, b->password);
    if (b->login == IMAP_LOGIN_AUTHZID) {
        IMAP_SETOPT(CURLOPT_SASL_AUTHZID, mailbox);
        IMAP_SETOPT(CURLOPT_LOGIN_OPTIONS, "AUTH=PLAIN");
    }
    IMAP_SETOPT(CURLOPT_USE_SSL, b->tls_verify ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
    IMAP_SETOPT(CURLOPT_SSL_VERIFYPEER, b->tls_verify ? 1L : 0L);
    IMAP_SETOPT(CURLOPT_SSL_VERIFYHOST, b->tls_verify ? 2L : 0L);
    if (b->ca_file)
        IMAP_SETOPT(CURLOPT_CAINFO, b->ca_file);
    IMAP_SETOPT(CURLOPT_DEBUGFUNCTION, imap_debug_cb);
    IMAP_SETOPT(CURLOPT_DEBUGDATA, s);
    IMAP_SETOPT(CURLOPT_VERBOSE, 1L);
#undef IMAP_SETOPT
    if (rc == CURLE_OK)
        rc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_VERBOSE, 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &s->sock);
    if (rc != CURLE_OK || s->sock == CURL_SOCKET_BAD) {
        imap_login_outcome(s, rc != CURLE_OK ? rc : CURLE_COULDNT_CONNECT, login.data, out);
        strbuf_release(&login);
        s->broken = true;
        imap_session_close(s);
        return NULL;
    }
    strbuf_release(&login);
    imap_reply_t r = imap_command(s, IMAP_MAX_REPLY, imap_capability_reply, NULL, "CAPABILITY");
    if (r != IMAP_OK) {
        imap_reply_outcome(s, r, out, "CAPABILITY");
        s->broken = true;
        imap_session_close(s);
        return NULL;
    }
    return s;
}

/* imap_session_alive - whether an idle session's connection still works: nothing (a BYE, the
 * end of the stream) waiting on it, and a NOOP answered when it idled long. */
static bool imap_session_alive(backend_session_t *s)
{
    struct pollfd pfd = {.fd = s->sock, .events = POLLIN};
    if (poll(&pfd, 1, 0) != 0) {
        /* readable: TLS records without data (session tickets) are fine; data (a BYE) or the
         * end of the stream on an idle connection mean starting afresh */
        char byte;
        size_t got = 0;
        if (curl_easy_recv(s->curl, &byte, 1, &got) != CURLE_AGAIN)
            return false;
    }
    if (util_monotonic_ms() - s->idle_since_ms < IMAP_CHECK_IDLE_MS)
        return true;
    return imap_command(s, IMAP_MAX_REPLY, NULL, NULL, "NOOP") == IMAP_OK;
}

/* ------------------------------------------------------------------ find */

/* The folders of a mailbox. */
typedef struct imap_folders {
    char **names;
    size_t n, cap;
    const char *skip; /* the quarantine folder */
    strbuf_t name;    /* scratch */
    bool too_many;
    bool unusable; /* a name that cannot be sent back quoted (NUL, CR, LF, 8-bit) */
} imap_folders_t;

/* imap_list_reply - untagged LIST: keep each selectable folder. */
static int imap_list_reply(backend_session_t *s, imap_cursor_t *c, void *ctx)
{
    (void)s;
    imap_folders_t *f = ctx;
    if (!imap_cur_word(c, "LIST"))
        return 0;
    if (!imap_cur_sp(c) || c->p >= c->end || *c->p != '(')
        return -1;
    c->p++;
    bool selectable = true;
    while (c->p < c->end && *c->p != ')') {
        const char *a;
        size_t n = imap_cur_atom(c, &a);
        if ((n == 9 && strncasecmp(a, "\\Noselect", 9) == 0) || (n == 12 && strncasecmp(a, "\\NonExistent", 12) == 0))
            selectable = false;
        if (n == 0 && !imap_cur_sp(c))
            return -1;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    bool nil;
    if (!imap_cur_sp(c) || imap_cur_string(c, &f->name, &nil) < 0) /* the hierarchy delimiter */
        return -1;
    if (!imap_cur_sp(c) || imap_cur_string(c, &f->name, NULL) < 0)
        return -1;
    if (!selectable || strcmp(f->name.data, f->skip) == 0)
        return 0;
    strbuf_t quoted;
    strbuf_init(&quoted, 0);
    bool usable = !memchr(f->name.data, '\0', f->name.len) && imap_append_quoted(&quoted, f->name.data) == 0;
    strbuf_release(&quoted);
    if (!usable) {
        f->unusable = true;
        return 0;
    }
    if (f->n == IMAP_MAX_FOLDERS) {
        f->too_many = true;
        return 0;
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->names = util_xrealloc(f->names, f->cap * sizeof(*f->names));
    }
    f->names[f->n++] = util_xstrndup(f->name.data, f->name.len);
    return 0;
}

/* imap_folders_release - free a folder list. */
static void imap_folders_release(imap_folders_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->names[i]);
    free(f->names);
    strbuf_release(&f->name);
}

/* imap_folders_free - release and free a kept folder list; accepts NULL, clears the pointer. */
static void imap_folders_free(imap_folders_t **f)
{
    if (!f || !*f)
        return;
    imap_folders_release(*f);
    free(*f);
    *f = NULL;
}

/* imap_select - SELECT (rw) or EXAMINE folder unless it is selected already as needed. */
static imap_reply_t imap_select(backend_session_t *s, const char *folder, bool rw)
{
    if (s->selected && strcmp(s->selected, folder) == 0 && (s->selected_rw || !rw))
        return IMAP_OK;
    free(s->selected); /* a failed SELECT leaves none selected */
    s->selected = NULL;
    strbuf_t q;
    strbuf_init(&q, 0);
    if (imap_append_quoted(&q, folder) < 0) {
        strbuf_release(&q);
        snprintf(s->text, sizeof(s->text), "folder name cannot be quoted");
        s->code[0] = '\0';
        return IMAP_NO;
    }
    imap_reply_t r = imap_command(s, IMAP_MAX_REPLY, NULL, NULL, "%s %s", rw ? "SELECT" : "EXAMINE", q.data);
    strbuf_release(&q);
    if (r == IMAP_OK) {
        s->selected = util_xstrdup(folder);
        s->selected_rw = rw;
    }
    return r;
}

/* UIDs collected from SEARCH replies. */
typedef struct {
    uint32_t *uids;
    size_t n, cap;
} imap_uids_t;

/* imap_uid_wanted - whether uid is one of the candidates. */
static bool imap_uid_wanted(const imap_uids_t *u, uint32_t uid)
{
    for (size_t i = 0; i < u->n; i++)
        if (u->uids[i] == uid)
            return true;
    return false;
}

static int imap_uid_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* imap_uids_add - append uid. */
static void imap_uids_add(imap_uids_t *u, uint32_t uid)
{
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 16;
        u->uids = util_xrealloc(u->uids, u->cap * sizeof(*u->uids));
    }
    u->uids[u->n++] = uid;
}

/* imap_search_reply - untagged SEARCH: the UIDs. */
static int imap_search_reply(backend_session_t *s, imap_cursor_t *c, void *ctx)
{
    (void)s;
    imap_uids_t *u = ctx;
    if (!imap_cur_word(c, "SEARCH"))
        return 0;
    uint32_t uid;
    while (imap_cur_sp(c) && imap_cur_number(c, &uid) == 0)
        imap_uids_add(u, uid);
    return 0;
}

/* One job's Message-ID, as searched and confirmed. */
typedef struct {
    char *trimmed;  /* the value without surrounding white space, or NULL: not searched */
    strbuf_t quoted; /* the same as an IMAP quoted string */
} imap_wanted_t;

/* The copies being confirmed in one folder. */
typedef struct {
    const char *folder;
    const imap_wanted_t *wanted;
    size_t n;
    const imap_uids_t *candidates;
    strbuf_t body, value; /* scratch */
} imap_confirm_t;

/* imap_fetch_item - in an untagged "N FETCH (...)" reply, the UID and the first BODY[...]
 * value (into body, when wanted); -1 when malformed, 0 with *uid 0 when it is not a FETCH. */
static int imap_fetch_item(imap_cursor_t *c, uint32_t *uid, strbuf_t *body, bool *have_body)
{
    uint32_t seq;
    *uid = 0;
    *have_body = false;
    if (imap_cur_number(c, &seq) < 0 || !imap_cur_sp(c) || !imap_cur_word(c, "FETCH"))
        return 0;
    if (!imap_cur_sp(c) || c->p >= c->end || *c->p != '(')
        return -1;
    c->p++;
    while (c->p < c->end && *c->p != ')') {
        if (imap_cur_sp(c))
            continue;
        if (imap_cur_word(c, "UID")) {
            if (!imap_cur_sp(c) || imap_cur_number(c, uid) < 0)
                return -1;
            continue;
        }
        imap_cursor_t name = *c;
        const char *a;
        size_t n = imap_cur_atom(&name, &a);
        if (n >= 4 && strncasecmp(a, "BODY", 4) == 0 && name.p < name.end && *name.p == '[' && !*have_body) {
            if (imap_cur_skip(c, 0) < 0 || !imap_cur_sp(c))
                return -1;
            bool nil;
            if (imap_cur_string(c, body, &nil) < 0)
                return -1;
            *have_body = !nil;
            continue;
        }
        if (imap_cur_skip(c, 0) < 0 || !imap_cur_sp(c) || imap_cur_skip(c, 0) < 0) /* name, value */
            return -1;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    return 0;
}

/* imap_add_copy - remember a confirmed copy of job's message in the session. */
static void imap_add_copy(backend_session_t *s, const char *folder, uint32_t uid, size_t job)
{
    for (size_t i = 0; i < s->ncopies; i++)
        if (s->copies[i].uid == uid && s->copies[i].job == job && strcmp(s->copies[i].folder, folder) == 0)
            return;
    if (s->ncopies == IMAP_MAX_COPIES)
        return;
    s->copies = util_xrealloc(s->copies, (s->ncopies + 1) * sizeof(*s->copies));
    s->copies[s->ncopies].folder = util_xstrdup(folder);
    s->copies[s->ncopies].uid = uid;
    s->copies[s->ncopies].job = job;
    s->ncopies++;
}

/* imap_confirm_reply - untagged FETCH of a Message-ID header: keep the exact matches, for
 * every job whose Message-ID it is. */
static int imap_confirm_reply(backend_session_t *s, imap_cursor_t *c, void *ctx)
{
    imap_confirm_t *k = ctx;
    uint32_t uid;
    bool have_body;
    if (imap_fetch_item(c, &uid, &k->body, &have_body) < 0)
        return -1;
    if (uid == 0 || !have_body || !k->candidates->n ||
        !bsearch(&uid, k->candidates->uids, k->candidates->n, sizeof(uid), imap_uid_cmp)) /* sorted */
        return 0;
    size_t pos = 0;
    while (imap_header_next(k->body.data, k->body.len, &pos, "Message-ID", &k->value))
        for (size_t j = 0; j < k->n; j++)
            if (k->wanted[j].trimmed && strcmp(k->value.data, k->wanted[j].trimmed) == 0)
                imap_add_copy(s, k->folder, uid, j);
    return 0;
}

/* imap_forget_copies - drop the copies a find kept. */
static void imap_forget_copies(backend_session_t *s)
{
    for (size_t i = 0; i < s->ncopies; i++)
        free(s->copies[i].folder);
    free(s->copies);
    s->copies = NULL;
    s->ncopies = 0;
}

/* imap_search_keys - the search keys of wanted[idx[lo..hi)] as one key: HEADER Message-ID
 * keys joined by OR, as a balanced tree (IMAP's OR takes two keys; depth stays log2 n). */
static void imap_search_keys(strbuf_t *sb, const imap_wanted_t *wanted, const size_t *idx, size_t lo, size_t hi)
{
    if (hi - lo == 1) {
        strbuf_appends(sb, "HEADER Message-ID ");
        strbuf_append(sb, wanted[idx[lo]].quoted.data, wanted[idx[lo]].quoted.len);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    strbuf_appends(sb, "OR ");
    imap_search_keys(sb, wanted, idx, lo, mid);
    strbuf_appends(sb, " ");
    imap_search_keys(sb, wanted, idx, mid, hi);
}

/* imap_uid_set - append uids[from..) as a UID set ("4,7,9") while the set stays under
 * IMAP_MAX_COMMAND bytes (one at least); returns the index after the last one taken. */
static size_t imap_uid_set(strbuf_t *sb, const uint32_t *uids, size_t n, size_t from)
{
    size_t i = from;
    for (; i < n && (i == from || sb->len + 12 < IMAP_MAX_COMMAND); i++)
        strbuf_appendf(sb, "%s%" PRIu32, i > from ? "," : "", uids[i]);
    return i;
}

/* imap_find_in_folder - search one folder for every wanted Message-ID (one UID SEARCH per
 * IMAP_MAX_COMMAND bytes of keys) and confirm the hits; BACKEND_OK (whatever was found) or
 * the failure in out. */
static backend_status_t imap_find_in_folder(backend_session_t *s, const char *folder, const imap_wanted_t *wanted,
                                            size_t n, bool *skipped, backend_outcome_t *out)
{
    char what[300];
    /* SELECT, not EXAMINE: the remove that follows then needs no other (BODY.PEEK and SEARCH
     * change nothing), and the next job of this mailbox finds the folder selected */
    imap_reply_t r = imap_select(s, folder, true);
    if (r == IMAP_NO) { /* deleted since LIST, or not selectable after all */
        *skipped = true;
        return BACKEND_OK;
    }
    if (r != IMAP_OK) {
        snprintf(what, sizeof(what), "SELECT %s", folder);
        return imap_reply_outcome(s, r, out, what);
    }
    imap_uids_t hits = {0};
    size_t *idx = util_xcalloc(n, sizeof(*idx));
    strbuf_t keys;
    strbuf_init(&keys, 0);
    for (size_t i = 0; i < n && r == IMAP_OK;) {
        size_t m = 0, bytes = 0;
        for (; i < n && (m == 0 || bytes + wanted[i].quoted.len + 32 < IMAP_MAX_COMMAND); i++) {
            if (!wanted[i].trimmed)
                continue;
            idx[m++] = i;
            bytes += wanted[i].quoted.len + 32; /* the key, and its share of ORs */
        }
        if (m == 0)
            break;
        strbuf_reset(&keys);
        imap_search_keys(&keys, wanted, idx, 0, m);
        r = imap_command(s, IMAP_MAX_REPLY, imap_search_reply, &hits, "UID SEARCH %s", keys.data);
    }
    strbuf_release(&keys);
    free(idx);
    /* several searches of one folder: each hit once (sorted, not a search per hit: a folder
     * may answer with very many) */
    if (hits.n > 1) {
        qsort(hits.uids, hits.n, sizeof(*hits.uids), imap_uid_cmp);
        size_t kept = 1;
        for (size_t i = 1; i < hits.n; i++)
            if (hits.uids[i] != hits.uids[kept - 1])
                hits.uids[kept++] = hits.uids[i];
        hits.n = kept;
    }
    if (r != IMAP_OK) {
        free(hits.uids);
        snprintf(what, sizeof(what), "UID SEARCH in %s", folder);
        return imap_reply_outcome(s, r, out, what);
    }
    imap_confirm_t k = {.folder = folder, .wanted = wanted, .n = n, .candidates = &hits};
    strbuf_init(&k.body, IMAP_MAX_REPLY);
    strbuf_init(&k.value, IMAP_MAX_REPLY);
    backend_status_t status = BACKEND_OK;
    for (size_t i = 0; i < hits.n && status == BACKEND_OK;) {
        strbuf_t set;
        strbuf_init(&set, 0);
        i = imap_uid_set(&set, hits.uids, hits.n, i);
        r = imap_command(s, IMAP_MAX_REPLY, imap_confirm_reply, &k,
                         "UID FETCH %s (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", set.data);
        strbuf_release(&set);
        if (r != IMAP_OK) {
            snprintf(what, sizeof(what), "UID FETCH in %s", folder);
            status = imap_reply_outcome(s, r, out, what);
        }
    }
    strbuf_release(&k.body);
    strbuf_release(&k.value);
    free(hits.uids);
    return status;
}

/* imap_wanted_release - free what imap_find_many prepared. */
static void imap_wanted_release(imap_wanted_t *wanted, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(wanted[i].trimmed);
        strbuf_release(&wanted[i].quoted);
    }
    free(wanted);
}

/* imap_find_many - backend_ops.find_many: every folder (from LIST) searched once for all the
 * jobs' Message-IDs. */
static void imap_find_many(backend_session_t *s, const backend_job_t *jobs, size_t n, backend_outcome_t *outs)
{
    imap_forget_copies(s);
    imap_wanted_t *wanted = util_xcalloc(n ? n : 1, sizeof(*wanted));
    size_t nwanted = 0;
    for (size_t i = 0; i < n; i++) {
        const char *mid = jobs[i].message_id ? jobs[i].message_id : "";
        while (imap_is_wsp(*mid))
            mid++;
        size_t mid_len = strlen(mid);
        while (mid_len > 0 && imap_is_wsp(mid[mid_len - 1]))
            mid_len--;
        strbuf_init(&wanted[i].quoted, 0);
        wanted[i].trimmed = util_xstrndup(mid, mid_len);
        if (mid_len == 0 || imap_append_quoted(&wanted[i].quoted, wanted[i].trimmed) < 0) {
            backend_outcome_set(&outs[i], BACKEND_FAILED, -1,
                                "Message-ID is empty or holds a line break or 8-bit byte: not searched in %s",
                                s->mailbox);
            free(wanted[i].trimmed);
            wanted[i].trimmed = NULL;
            continue;
        }
        nwanted++;
    }
    if (nwanted == 0) {
        imap_wanted_release(wanted, n);
        return;
    }
    /* the folder list of the last LIST on this connection serves the mailbox's next jobs for
     * IMAP_LIST_TTL_MS (a burst of jobs to one mailbox lists it once) */
    imap_folders_t fresh = {.skip = s->backend->quarantine}, *kept = s->listed;
    imap_reply_t r = IMAP_OK;
    if (!kept || util_monotonic_ms() - s->listed_ms > IMAP_LIST_TTL_MS) {
        imap_folders_free(&s->listed);
        kept = NULL;
        strbuf_init(&fresh.name, IMAP_MAX_REPLY);
        r = imap_command(s, IMAP_MAX_REPLY, imap_list_reply, &fresh, "LIST \"\" \"*\"");
    }
    imap_folders_t folders = kept ? *kept : fresh;
    backend_outcome_t failure = {0};
    size_t skipped = 0;
    if (r != IMAP_OK) {
        imap_reply_outcome(s, r, &failure, "LIST");
    } else if (folders.too_many) {
        backend_outcome_set(&failure, BACKEND_FAILED, -1, "mailbox %s has more than %d folders: not searched",
                            s->mailbox, IMAP_MAX_FOLDERS);
    } else if (folders.unusable) {
        backend_outcome_set(&failure, BACKEND_FAILED, -1,
                            "mailbox %s has a folder whose name holds a line break or 8-bit byte: not searched",
                            s->mailbox);
    } else {
        for (size_t i = 0; i < folders.n && failure.status == BACKEND_OK; i++) {
            bool skip = false;
            imap_find_in_folder(s, folders.names[i], wanted, n, &skip, &failure);
            skipped += skip;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!wanted[i].trimmed)
            continue;
        size_t found = 0;
        for (size_t c = 0; c < s->ncopies; c++)
            found += s->copies[c].job == i;
        if (failure.status != BACKEND_OK)
            outs[i] = failure;
        else if (found > 0)
            backend_outcome_set(&outs[i], BACKEND_OK, -1, "%zu cop%s in %s (%zu folders searched)", found,
                                found == 1 ? "y" : "ies", s->mailbox, folders.n - skipped);
        else
            backend_outcome_set(&outs[i], BACKEND_NOT_FOUND, -1,
                                "no message with Message-ID %s in %s (%zu folders searched)", wanted[i].trimmed,
                                s->mailbox, folders.n - skipped);
    }
    if (failure.status != BACKEND_OK)
        imap_forget_copies(s);
    if (!kept && r == IMAP_OK && !folders.too_many && !folders.unusable) {
        s->listed = util_xmalloc(sizeof(*s->listed));
        *s->listed = fresh;
        s->listed_ms = util_monotonic_ms();
    } else if (!kept) {
        imap_folders_release(&fresh);
    }
    imap_wanted_release(wanted, n);
}

/* imap_find - backend_ops.find: find_many of one job. */
static void imap_find(backend_session_t *s, const backend_job_t *job, backend_outcome_t *out)
{
    imap_find_many(s, job, 1, out);
}

/* ------------------------------------------------------------------ remove */

/* imap_create_quarantine - CREATE the quarantine folder (already there is fine). */
static imap_reply_t imap_create_quarantine(backend_session_t *s, const char *quoted)
{
    imap_reply_t r = imap_command(s, IMAP_MAX_REPLY, NULL, NULL, "CREATE %s", quoted);
    if (r == IMAP_NO && strcasecmp(s->code, "ALREADYEXISTS") == 0)
        return IMAP_OK;
    return r;
}

/* imap_copy_or_move - UID MOVE (or COPY) the UID set to the quarantine folder, creating it
 * once on [TRYCREATE]. */
static imap_reply_t imap_copy_or_move(backend_session_t *s, const char *verb, const char *set, const char *quoted)
{
    imap_reply_t r = imap_command(s, IMAP_MAX_REPLY, NULL, NULL, "UID %s %s %s", verb, set, quoted);
    if (r == IMAP_NO && strcasecmp(s->code, "TRYCREATE") == 0) {
        r = imap_create_quarantine(s, quoted);
        if (r == IMAP_OK)
            r = imap_command(s, IMAP_MAX_REPLY, NULL, NULL, "UID %s %s %s", verb, set, quoted);
    }
    return r;
}

/* imap_store_reply - untagged FETCH answering a UID STORE: the UIDs still there. */
static int imap_store_reply(backend_session_t *s, imap_cursor_t *c, void *ctx)
{
    (void)s;
    imap_uids_t *present = ctx;
    uint32_t uid;
    bool have_body;
    strbuf_t unused;
    strbuf_init(&unused, 1);
    int rc = imap_fetch_item(c, &uid, &unused, &have_body);
    strbuf_release(&unused);
    if (rc < 0)
        return -1;
    if (uid && !imap_uid_wanted(present, uid))
        imap_uids_add(present, uid);
    return 0;
}

/* imap_expunge_set - flag the UID set \Deleted and expunge those UIDs alone (UIDPLUS); the
 * UIDs that were still there (the STORE answers for each) go to *gone when the expunge
 * succeeded. */
static imap_reply_t imap_expunge_set(backend_session_t *s, const char *set, imap_uids_t *gone)
{
    imap_uids_t present = {0};
    imap_reply_t r =
        imap_command(s, IMAP_MAX_REPLY, imap_store_reply, &present, "UID STORE %s +FLAGS (\\Deleted)", set);
    if (r == IMAP_OK && present.n > 0) {
        strbuf_t kept;
        strbuf_init(&kept, 0);
        imap_uid_set(&kept, present.uids, present.n, 0); /* a subset of set: fits */
        r = imap_command(s, IMAP_MAX_REPLY, NULL, NULL, "UID EXPUNGE %s", kept.data);
        strbuf_release(&kept);
    }
    if (r == IMAP_OK) {
        for (size_t i = 0; i < present.n; i++)
            imap_uids_add(gone, present.uids[i]);
    }
    free(present.uids);
    return r;
}

/* imap_remove_chunk - remove the UID set of the selected folder as the profile says; the UIDs
 * that left the folder go to *removed. */
static imap_reply_t imap_remove_chunk(backend_session_t *s, const char *set, const char *quoted_q,
                                      const imap_uids_t *chunk, imap_uids_t *removed)
{
    const backend_t *b = s->backend;
    if (b->permanent)
        return imap_expunge_set(s, set, removed);
    if (s->cap_move) {
        imap_reply_t r = imap_copy_or_move(s, "MOVE", set, quoted_q);
        for (size_t i = 0; r == IMAP_OK && i < chunk->n; i++)
            /* COPYUID names what moved; a server without it moved all when it expunged */
            if (s->copyuid ? imap_copied(s, chunk->uids[i]) : s->expunged > 0)
                imap_uids_add(removed, chunk->uids[i]);
        return r;
    }
    /* no MOVE: COPY, then flag and expunge exactly what was copied (UIDPLUS's COPYUID) */
    imap_reply_t r = imap_copy_or_move(s, "COPY", set, quoted_q);
    if (r != IMAP_OK)
        return r;
    imap_uids_t copied = {0};
    for (size_t i = 0; i < chunk->n; i++)
        if (imap_copied(s, chunk->uids[i]))
            imap_uids_add(&copied, chunk->uids[i]);
    if (copied.n > 0) {
        strbuf_t cset;
        strbuf_init(&cset, 0);
        imap_uid_set(&cset, copied.uids, copied.n, 0); /* a subset of set: fits */
        r = imap_expunge_set(s, cset.data, removed);
        strbuf_release(&cset);
    }
    free(copied.uids);
    return r;
}

/* Where each kept copy stands during a remove. */
enum { IMAP_COPY_PENDING, IMAP_COPY_REMOVED, IMAP_COPY_GONE, IMAP_COPY_SKIPPED };

/* imap_remove_folder - remove the pending copies in folder (of the jobs being removed), one
 * command per IMAP_MAX_COMMAND bytes of UIDs, marking each copy removed or gone; BACKEND_OK or
 * the failure in out (the copies not reached stay pending). */
static backend_status_t imap_remove_folder(backend_session_t *s, const char *folder, unsigned char *state,
                                           const char *quoted_q, backend_outcome_t *out)
{
    char what[300];
    imap_uids_t uids = {0};
    for (size_t i = 0; i < s->ncopies; i++)
        if (state[i] == IMAP_COPY_PENDING && strcmp(s->copies[i].folder, folder) == 0 &&
            !imap_uid_wanted(&uids, s->copies[i].uid))
            imap_uids_add(&uids, s->copies[i].uid);
    imap_reply_t r = imap_select(s, folder, true);
    backend_status_t status = BACKEND_OK;
    if (r == IMAP_NO) { /* the folder is gone, and its copies with it */
        for (size_t i = 0; i < s->ncopies; i++)
            if (state[i] == IMAP_COPY_PENDING && strcmp(s->copies[i].folder, folder) == 0)
                state[i] = IMAP_COPY_GONE;
    } else if (r != IMAP_OK) {
        snprintf(what, sizeof(what), "SELECT %s", folder);
        status = imap_reply_outcome(s, r, out, what);
    }
    for (size_t from = 0; r == IMAP_OK && from < uids.n;) {
        strbuf_t set;
        strbuf_init(&set, 0);
        size_t to = imap_uid_set(&set, uids.uids, uids.n, from);
        imap_uids_t chunk = {.uids = uids.uids + from, .n = to - from}, removed = {0};
        r = imap_remove_chunk(s, set.data, quoted_q, &chunk, &removed);
        if (r != IMAP_OK) {
            snprintf(what, sizeof(what), "%s of UID %s in %s",
                     s->backend->permanent ? "UID EXPUNGE" : s->cap_move ? "UID MOVE" : "UID COPY", set.data, folder);
            status = imap_reply_outcome(s, r, out, what);
        }
        for (size_t i = 0; r == IMAP_OK && i < s->ncopies; i++)
            if (state[i] == IMAP_COPY_PENDING && strcmp(s->copies[i].folder, folder) == 0 &&
                imap_uid_wanted(&chunk, s->copies[i].uid))
                state[i] = imap_uid_wanted(&removed, s->copies[i].uid) ? IMAP_COPY_REMOVED : IMAP_COPY_GONE;
        free(removed.uids);
        strbuf_release(&set);
        from = to;
    }
    free(uids.uids);
    return status;
}

/* imap_remove_many - backend_ops.remove_many. */
static void imap_remove_many(backend_session_t *s, const backend_job_t *jobs, size_t n, backend_outcome_t *outs)
{
    (void)jobs;
    const backend_t *b = s->backend;
    backend_outcome_t failure = {0};
    strbuf_t quoted;
    strbuf_init(&quoted, 0);
    if (imap_append_quoted(&quoted, b->quarantine) < 0)
        backend_outcome_set(&failure, BACKEND_FAILED, -1, "[profile %s] quarantine: the folder name cannot be quoted",
                            b->name);
    else if (!s->cap_uidplus && (b->permanent || !s->cap_move))
        backend_outcome_set(&failure, BACKEND_FAILED, -1,
                            "IMAP %s supports neither %sUIDPLUS: cannot remove one message alone from %s", b->url,
                            b->permanent ? "" : "MOVE nor ", s->mailbox);
    unsigned char *state = util_xcalloc(s->ncopies + 1, 1);
    for (size_t i = 0; i < s->ncopies; i++)
        if (s->copies[i].job >= n || outs[s->copies[i].job].status != BACKEND_OK)
            state[i] = IMAP_COPY_SKIPPED;
    for (size_t i = 0; i < s->ncopies && failure.status == BACKEND_OK; i++)
        if (state[i] == IMAP_COPY_PENDING)
            imap_remove_folder(s, s->copies[i].folder, state, quoted.data, &failure);
    strbuf_release(&quoted);
    for (size_t j = 0; j < n; j++) {
        if (outs[j].status != BACKEND_OK)
            continue;
        size_t total = 0, removed = 0, pending = 0;
        for (size_t i = 0; i < s->ncopies; i++) {
            if (s->copies[i].job != j)
                continue;
            total++;
            removed += state[i] == IMAP_COPY_REMOVED;
            pending += state[i] == IMAP_COPY_PENDING;
        }
        if (pending > 0)
            outs[j] = failure;
        else if (total == 0)
            backend_outcome_set(&outs[j], BACKEND_NOT_FOUND, -1, "no copy found in %s to remove", s->mailbox);
        else if (removed == 0)
            backend_outcome_set(&outs[j], BACKEND_NOT_FOUND, -1, "every copy in %s was already gone", s->mailbox);
        else if (b->permanent)
            backend_outcome_set(&outs[j], BACKEND_OK, -1, "deleted %zu cop%s from %s (%zu already gone)", removed,
                                removed == 1 ? "y" : "ies", s->mailbox, total - removed);
        else
            backend_outcome_set(&outs[j], BACKEND_OK, -1, "moved %zu cop%s in %s to %s (%zu already gone)", removed,
                                removed == 1 ? "y" : "ies", s->mailbox, b->quarantine, total - removed);
    }
    free(state);
    if (failure.status == BACKEND_OK)
        imap_forget_copies(s);
}

/* imap_remove - backend_ops.remove: remove_many of the one job the last find found. */
static void imap_remove(backend_session_t *s, const backend_job_t *job, backend_outcome_t *out)
{
    backend_outcome_set(out, BACKEND_OK, -1, "to remove");
    imap_remove_many(s, job, 1, out);
}

/* ------------------------------------------------------------------ forward */

/* A message's source fetched. */
typedef struct {
    uint32_t uid;
    strbuf_t source;
    bool found;
} imap_source_t;

/* imap_source_reply - untagged FETCH of BODY.PEEK[]. */
static int imap_source_reply(backend_session_t *s, imap_cursor_t *c, void *ctx)
{
    imap_source_t *src = ctx;
    uint32_t uid;
    bool have_body;
    strbuf_t body;
    strbuf_init(&body, IMAP_MAX_MESSAGE);
    int rc = imap_fetch_item(c, &uid, &body, &have_body);
    if (rc < 0 && body.overflow) {
        imap_set_err(s, "IMAP %s: message larger than %zu bytes in %s", s->backend->url, (size_t)IMAP_MAX_MESSAGE,
                     s->mailbox);
        s->too_large = true;
    }
    if (rc == 0 && uid == src->uid && have_body && !src->found) {
        strbuf_release(&src->source);
        src->source = body; /* handed over */
        src->found = true;
    } else {
        strbuf_release(&body);
    }
    return rc;
}

/* imap_fetch_source - the source of the first copy still there into src; BACKEND_OK,
 * BACKEND_NOT_FOUND (every copy gone) or the failure in out. */
static backend_status_t imap_fetch_source(backend_session_t *s, imap_source_t *src, backend_outcome_t *out)
{
    char what[300];
    for (size_t i = 0; i < s->ncopies; i++) {
        const imap_copy_t *copy = &s->copies[i];
        imap_reply_t r = imap_select(s, copy->folder, false);
        if (r == IMAP_NO)
            continue;
        src->uid = copy->uid;
        if (r == IMAP_OK)
            r = imap_command(s, IMAP_MAX_MESSAGE + IMAP_MAX_REPLY, imap_source_reply, src,
                             "UID FETCH %" PRIu32 " (UID BODY.PEEK[])", copy->uid);
        if (r != IMAP_OK) {
            snprintf(what, sizeof(what), "UID FETCH %" PRIu32 " in %s", copy->uid, copy->folder);
            return imap_reply_outcome(s, r, out, what);
        }
        if (src->found)
            return BACKEND_OK;
    }
    return backend_outcome_set(out, BACKEND_NOT_FOUND, -1, "no copy left in %s to forward", s->mailbox);
}

/* imap_append_folded - append "Name: value" CRLF, folded at spaces so that lines stay short. */
static void imap_append_folded(strbuf_t *sb, const char *name, const char *value)
{
    size_t line = strlen(name) + 2;
    strbuf_appendf(sb, "%s: ", name);
    const char *p = value;
    while (*p) {
        const char *sp = strchr(p + 1, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        if (line + n > 76 && p != value && *p == ' ') {
            strbuf_appends(sb, "\r\n");
            line = 0;
        }
        strbuf_append(sb, p, n);
        line += n;
        p += n;
    }
    strbuf_appends(sb, "\r\n");
}

/* imap_clean_value - s with line breaks and other control bytes as spaces (a header value or a
 * line of text made of job fields). Caller frees. */
static char *imap_clean_value(const char *s)
{
    char *out = util_xstrdup(s ? s : "");
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return out;
}

/* imap_build_forward - the message forwarded for job: the original (len bytes) attached. */
static void imap_build_forward(const backend_t *b, const backend_session_t *s, const backend_job_t *job,
                               const char *to, const char *original, size_t len, strbuf_t *msg)
{
    char *job_id = imap_clean_value(job->id);
    /* the subject: the original's, unfolded, encoded-words kept */
    strbuf_t subject, value;
    strbuf_init(&subject, 0);
    strbuf_init(&value, IMAP_MAX_REPLY);
    size_t pos = 0;
    strbuf_appends(&subject, BACKEND_FORWARD_PREFIX);
    if (imap_header_next(original, len, &pos, "Subject", &value) && value.len > 0) {
        char *clean = imap_clean_value(value.data);
        strbuf_appends(&subject, clean);
        free(clean);
    } else {
        subject.data[--subject.len] = '\0'; /* the prefix without its trailing space */
    }
    /* a boundary that does not occur in the original */
    char boundary[96];
    unsigned salt = 0;
    do {
        unsigned long h = 5381;
        for (const char *p = job_id; *p; p++)
            h = h * 33 + (unsigned char)*p;
        snprintf(boundary, sizeof(boundary), "=_clawback_%016lx_%u", h, salt++);
    } while (memmem(original, len, boundary, strlen(boundary)));
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    strbuf_appendf(msg, "From: <%s>\r\nTo: <%s>\r\n", b->forward_from, to);
    imap_append_folded(msg, "Subject", subject.data);
    strbuf_appendf(msg, "Date: %s\r\nMessage-ID: <", date);
    for (const unsigned char *p = (const unsigned char *)job_id; *p; p++)
        strbuf_appendf(msg, "%02x", *p);
    strbuf_appendf(msg, "@clawback.invalid>\r\n%s: %s\r\n", BACKEND_JOB_HEADER, job_id);
    strbuf_appendf(msg, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary);
    char *batch = imap_clean_value(job->batch), *mid = imap_clean_value(job->message_id);
    strbuf_appendf(msg,
                   "This is a MIME message.\r\n\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n"
                   "Clawback remediated the attached message.\r\n\r\nBatch: %s\r\nMID: %" PRId64
                   "\r\nMailbox: %s\r\nMessage-ID: %s\r\nJob: %s\r\n\r\n",
                   boundary, batch, job->mid, s->mailbox, mid, job_id);
    bool eight_bit = false;
    for (size_t i = 0; i < len && !eight_bit; i++)
        eight_bit = (unsigned char)original[i] >= 0x80;
    strbuf_appendf(msg,
                   "--%s\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; "
                   "filename=\"original.eml\"\r\nContent-Transfer-Encoding: %s\r\n\r\n",
                   boundary, eight_bit ? "8bit" : "7bit");
    strbuf_append(msg, original, len);
    if (len > 0 && original[len - 1] != '\n')
        strbuf_appends(msg, "\r\n");
    strbuf_appendf(msg, "--%s--\r\n", boundary);
    free(batch);
    free(mid);
    free(job_id);
    strbuf_release(&subject);
    strbuf_release(&value);
}

/* The upload of a message to libcurl. */
typedef struct {
    const char *data;
    size_t len, pos;
} imap_upload_t;

/* imap_read_cb - libcurl read callback: the next bytes of the message. */
static size_t imap_read_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
    imap_upload_t *up = userdata;
    size_t n = size * nitems;
    if (n > up->len - up->pos)
        n = up->len - up->pos;
    memcpy(buffer, up->data + up->pos, n);
    up->pos += n;
    return n;
}

/* imap_smtp_send - submit msg from forward_from to `to` through the profile's smtp_url. */
static void imap_smtp_send(const backend_t *b, const char *to, const strbuf_t *msg, backend_outcome_t *out)
{
    CURL *c = curl_easy_init();
    if (!c) {
        backend_outcome_set(out, BACKEND_RETRY, -1, "SMTP %s: cannot create a libcurl handle", b->smtp_url);
        return;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    strbuf_t from, rcpt;
    strbuf_init(&from, 0);
    strbuf_init(&rcpt, 0);
    strbuf_appendf(&from, "<%s>", b->forward_from);
    strbuf_appendf(&rcpt, "<%s>", to);
    struct curl_slist *rcpts = curl_slist_append(NULL, rcpt.data);
    imap_upload_t up = {.data = msg->data, .len = msg->len};
    CURLcode rc = CURLE_OK;
#define SMTP_SETOPT(opt, val)                                                                                       \
    do {                                                                                                            \
        if (rc == CURLE_OK)                                                                                         \
            rc = curl_easy_setopt(c, opt, val);                                                                     \
    } while (0)
    SMTP_SETOPT(CURLOPT_URL, b->smtp_url);
    SMTP_SETOPT(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    SMTP_SETOPT(CURLOPT_NOSIGNAL, 1L);
    SMTP_SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    SMTP_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)b->timeout_ms);
    SMTP_SETOPT(CURLOPT_TIMEOUT_MS, (long)b->timeout_ms);
    SMTP_SETOPT(CURLOPT_MAIL_FROM, from.data);
    SMTP_SETOPT(CURLOPT_MAIL_RCPT, rcpts);
    SMTP_SETOPT(CURLOPT_UPLOAD, 1L);
    SMTP_SETOPT(CURLOPT_READFUNCTION, imap_read_cb);
    SMTP_SETOPT(CURLOPT_READDATA, &up);
    SMTP_SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg->len);
    SMTP_SETOPT(CURLOPT_USE_SSL, b->tls_verify ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
    SMTP_SETOPT(CURLOPT_SSL_VERIFYPEER, b->tls_verify ? 1L : 0L);
    SMTP_SETOPT(CURLOPT_SSL_VERIFYHOST, b->tls_verify ? 2L : 0L);
    if (b->ca_file)
        SMTP_SETOPT(CURLOPT_CAINFO, b->ca_file);
    if (b->smtp_username) {
        SMTP_SETOPT(CURLOPT_USERNAME, b->smtp_username);
        SMTP_SETOPT(CURLOPT_PASSWORD, b->smtp_password ? b->smtp_password : "");
    }
#undef SMTP_SETOPT
    if (rc == CURLE_OK)
        rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_OK)
        backend_outcome_set(out, BACKEND_OK, -1, "forwarded to %s", to);
    else if (code >= 400 && code < 500)
        backend_outcome_set(out, BACKEND_RETRY, -1, "SMTP %s: %s (reply %ld)", b->smtp_url, why, code);
    else if (code >= 500)
        backend_outcome_set(out, BACKEND_FAILED, -1, "SMTP %s: %s (reply %ld)", b->smtp_url, why, code);
    else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_OPERATION_TIMEDOUT ||
             rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)
        backend_outcome_set(out, BACKEND_RETRY, -1, "SMTP %s: %s", b->smtp_url, why);
    else
        backend_outcome_set(out, BACKEND_FAILED, -1, "SMTP %s: %s", b->smtp_url, why);
    curl_slist_free_all(rcpts);
    strbuf_release(&from);
    strbuf_release(&rcpt);
    curl_easy_cleanup(c);
}

/* imap_forward - backend_ops.forward. */
static void imap_forward(backend_session_t *s, const backend_job_t *job, const char *to, backend_outcome_t *out)
{
    const backend_t *b = s->backend;
    if (!b->smtp_url) {
        backend_outcome_set(out, BACKEND_FAILED, -1, "profile %s has no smtp_url", b->name);
        return;
    }
    if (!to || !*to || strpbrk(to, "<>\r\n\t ,")) {
        backend_outcome_set(out, BACKEND_FAILED, -1, "profile %s: forward address '%s' is not an address", b->name,
                            to ? to : "");
        return;
    }
    if (s->ncopies == 0) {
        backend_outcome_set(out, BACKEND_NOT_FOUND, -1, "no copy found in %s to forward", s->mailbox);
        return;
    }
    imap_source_t src = {0};
    strbuf_init(&src.source, IMAP_MAX_MESSAGE);
    if (imap_fetch_source(s, &src, out) == BACKEND_OK) {
        strbuf_t msg;
        strbuf_init(&msg, 0);
        imap_build_forward(b, s, job, to, src.source.data ? src.source.data : "", src.source.len, &msg);
        imap_smtp_send(b, to, &msg, out);
        strbuf_release(&msg);
    }
    strbuf_release(&src.source);
}

/* ------------------------------------------------------------------ sessions and lifecycle */

/* imap_idle_unlink - take s out of the idle list (lock held). */
static void imap_idle_unlink(backend_t *b, backend_session_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        b->idle_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        b->idle_tail = s->prev;
    s->prev = s->next = NULL;
    b->nidle--;
}

/* imap_idle_take - the idle session of mailbox, taken out of the list, or NULL. */
static backend_session_t *imap_idle_take(backend_t *b, const char *mailbox)
{
    pthread_mutex_lock(&b->lock);
    backend_session_t *s = b->idle_head;
    while (s && strcasecmp(s->mailbox, mailbox) != 0)
        s = s->next;
    if (s)
        imap_idle_unlink(b, s);
    pthread_mutex_unlock(&b->lock);
    return s;
}

/* imap_session - backend_ops.session. */
static backend_session_t *imap_session(backend_t *b, const char *mailbox, backend_outcome_t *out)
{
    if (!mailbox || !*mailbox || strpbrk(mailbox, "\r\n\t \"\\") ||
        (b->login == IMAP_LOGIN_MASTER && strstr(mailbox, b->separator))) {
        backend_outcome_set(out, BACKEND_FAILED, -1, "mailbox '%s' is not an address the profile can log in for",
                            mailbox ? mailbox : "");
        return NULL;
    }
    if (b->login == IMAP_LOGIN_DIRECT && strcasecmp(mailbox, b->username) != 0) {
        backend_outcome_set(out, BACKEND_FAILED, -1, "profile %s logs in directly as %s: it cannot reach mailbox %s",
                            b->name, b->username, mailbox);
        return NULL;
    }
    backend_session_t *s = imap_idle_take(b, mailbox);
    if (s && imap_session_alive(s))
        return s;
    if (s) {
        s->broken = true;
        imap_session_close(s);
    }
    return imap_session_open(b, mailbox, out);
}

/* imap_release - backend_ops.release: keep a sane session as the most recently used idle one;
 * close the least recently used past IMAP_IDLE_MAX. */
static void imap_release(backend_t *b, backend_session_t *s, bool reusable)
{
    if (!s)
        return;
    imap_forget_copies(s);
    if (!reusable || s->broken) {
        s->broken = true;
        imap_session_close(s);
        return;
    }
    s->idle_since_ms = util_monotonic_ms();
    backend_session_t *evicted = NULL;
    pthread_mutex_lock(&b->lock);
    s->prev = NULL;
    s->next = b->idle_head;
    if (b->idle_head)
        b->idle_head->prev = s;
    else
        b->idle_tail = s;
    b->idle_head = s;
    b->nidle++;
    if (b->nidle > IMAP_IDLE_MAX) {
        evicted = b->idle_tail;
        imap_idle_unlink(b, evicted);
    }
    pthread_mutex_unlock(&b->lock);
    imap_session_close(evicted);
}

/* imap_destroy - backend_ops.destroy. */
static void imap_destroy(backend_t **self)
{
    if (!self || !*self)
        return;
    backend_t *b = *self;
    while (b->idle_head) {
        backend_session_t *s = b->idle_head;
        imap_idle_unlink(b, s);
        imap_session_close(s);
    }
    pthread_mutex_destroy(&b->lock);
    backend_free_secret(&b->password);
    backend_free_secret(&b->smtp_password);
    free(b->name);
    free(b->url);
    free(b->username);
    free(b->separator);
    free(b->quarantine);
    free(b->forward_from);
    free(b->smtp_url);
    free(b->smtp_username);
    free(b->ca_file);
    free(b);
    *self = NULL;
}

/* imap_nonempty - a copy of s, or NULL when it is empty. */
static char *imap_nonempty(const char *s)
{
    return s && *s ? util_xstrdup(s) : NULL;
}

/* imap_open - backend_ops.open. */
static backend_t *imap_open(const config_profile_t *p, char *err, size_t errsize)
{
    pthread_once(&imap_global_once, imap_global_init);
    if (imap_global_rc != CURLE_OK) {
        snprintf(err, errsize, "[profile %s] libcurl cannot be initialised", p->name);
        return NULL;
    }
    if (strncmp(p->url, "imap://", 7) && strncmp(p->url, "imaps://", 8)) {
        snprintf(err, errsize, "[profile %s] url: not an imap:// or imaps:// URL", p->name);
        return NULL;
    }
    if (!*p->username || strpbrk(p->username, "\r\n")) {
        snprintf(err, errsize, "[profile %s] username: missing or holds a line break", p->name);
        return NULL;
    }
    if (!*p->password_file) {
        snprintf(err, errsize, "[profile %s] password_file: missing", p->name);
        return NULL;
    }
    backend_t *b = util_xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    b->name = util_xstrdup(p->name);
    b->url = util_xstrdup(p->url);
    b->username = util_xstrdup(p->username);
    b->login = !strcmp(p->login, "authzid") ? IMAP_LOGIN_AUTHZID
               : !strcmp(p->login, "direct") ? IMAP_LOGIN_DIRECT
                                             : IMAP_LOGIN_MASTER;
    b->separator = util_xstrdup(*p->master_separator ? p->master_separator : "*");
    b->permanent = !strcmp(p->delete_mode, "permanent");
    b->quarantine = util_xstrdup(*p->quarantine ? p->quarantine : "Quarantine");
    b->forward_from = util_xstrdup(*p->forward_from ? p->forward_from : "clawback@localhost");
    b->smtp_url = imap_nonempty(p->smtp_url);
    b->smtp_username = imap_nonempty(p->smtp_username);
    b->ca_file = imap_nonempty(p->ca_file);
    b->tls_verify = p->tls_verify;
    b->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : 60000;
    if (strcmp(p->login, "master") && strcmp(p->login, "authzid") && strcmp(p->login, "direct")) {
        snprintf(err, errsize, "[profile %s] login: '%s' is not one of master authzid direct", p->name, p->login);
        imap_destroy(&b);
        return NULL;
    }
    if (strpbrk(b->forward_from, "<>\r\n\t ,")) {
        snprintf(err, errsize, "[profile %s] forward_from: '%s' is not an address", p->name, b->forward_from);
        imap_destroy(&b);
        return NULL;
    }
    if (backend_read_secret(p->name, "password_file", p->password_file, &b->password, err, errsize) < 0 ||
        (*p->smtp_password_file &&
         backend_read_secret(p->name, "smtp_password_file", p->smtp_password_file, &b->smtp_password, err, errsize) < 0)) {
        imap_destroy(&b);
        return NULL;
    }
    return b;
}

const backend_ops_t BACKEND_IMAP = {
    .type = "imap",
    .open = imap_open,
    .destroy = imap_destroy,
    .session = imap_session,
    .release = imap_release,
    .find = imap_find,
    .forward = imap_forward,
    .remove = imap_remove,
    .find_many = imap_find_many,
    .remove_many = imap_remove_many,
};
