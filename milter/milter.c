/*
 * milter.c - libmilter callbacks writing each message into the spool; see milter.h.
 *
 * Per connection (smfi_setpriv): the client IP and HELO, then per message the envelope
 * sender, recipients and the open spool file. The headers are rebuilt as "Name: value\r\n"
 * (the MTA sends each name and value apart), the body chunks are written as they come.
 */
#include "milter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "log.h"
#include "message.h"
#include "util.h"

#define MILTER_MAX_RCPTS SPOOL_MAX_RCPTS

/* What one SMTP session (one milter connection) holds. */
typedef struct {
    unsigned long noreply; /* SMFIP_NR_* negotiated: those callbacks answer SMFIS_NOREPLY */
    bool leading_space;    /* SMFIP_HDR_LEADSPC negotiated */
    char client_ip[INET6_ADDRSTRLEN];
    char *helo;
    char *sender;
    char **rcpts;
    size_t n_rcpts;
    spool_msg_t *msg;
    bool msg_failed; /* a spool error was met for this message (logged once) */
} conn_t;

/* The process-wide milter (libmilter allows one). */
static struct {
    spool_t *spool;
    indexer_t *indexer;
    int64_t max_size;
    pthread_t thread;
    bool running;
    atomic_bool exited;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    size_t active;  /* messages with a spool file open (under lock) */
    bool stopping;  /* no new message touches the spool (under lock) */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

/*
 * __wrap_sigwait - libmilter's signal thread, as linked here (-Wl,--wrap=sigwait against the
 * static libmilter.a, see the Makefile), waits on no signal the daemon skeleton owns.
 *
 * smfi_main starts a thread that sigwait()s for SIGHUP, SIGTERM and SIGINT and stops the
 * milter on any of them: SIGHUP (logrotate) would stop clawback-milter, and a SIGTERM taken
 * by that thread would bypass the skeleton's ordered stop. The skeleton reads those signals
 * from its signalfd (daemon.c) and calls milter_stop itself. So this thread's wait leaves
 * them out; with nothing left to wait for it waits for a signal nobody sends (SIGURG is never
 * generated without sockets in O_ASYNC mode), and is ended with the process.
 */
int __wrap_sigwait(const sigset_t *set, int *sig);
int __real_sigwait(const sigset_t *set, int *sig);
int __wrap_sigwait(const sigset_t *set, int *sig)
{
    sigset_t mine = *set;
    sigdelset(&mine, SIGHUP);
    sigdelset(&mine, SIGTERM);
    sigdelset(&mine, SIGINT);
    if (sigisemptyset(&mine)) {
        sigaddset(&mine, SIGURG);
        pthread_sigmask(SIG_BLOCK, &mine, NULL);
    }
    return __real_sigwait(&mine, sig);
}

/* conn_of - the session's state, created on first use. */
static conn_t *conn_of(SMFICTX *ctx)
{
    conn_t *c = smfi_getpriv(ctx);
    if (!c) {
        c = util_xcalloc(1, sizeof(*c));
        smfi_setpriv(ctx, c);
    }
    return c;
}

/* reply - SMFIS_NOREPLY when the stage's "no reply" was negotiated, else continue. */
static sfsistat reply(const conn_t *c, unsigned long flag)
{
    return (c->noreply & flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* message_reset - forget the current message (after its end or an abort). */
static void message_reset(conn_t *c)
{
    if (c->msg) {
        spool_msg_abort(&c->msg);
        pthread_mutex_lock(&g.lock);
        if (--g.active == 0)
            pthread_cond_broadcast(&g.idle);
        pthread_mutex_unlock(&g.lock);
    }
    free(c->sender);
    c->sender = NULL;
    for (size_t i = 0; i < c->n_rcpts; i++)
        free(c->rcpts[i]);
    free(c->rcpts);
    c->rcpts = NULL;
    c->n_rcpts = 0;
    c->msg_failed = false;
}

/* message_spool - the open spool file of the current message, opened on first use; NULL
 * when stopping or on an error (logged once per message). */
static spool_msg_t *message_spool(conn_t *c)
{
    if (c->msg || c->msg_failed)
        return c->msg;
    pthread_mutex_lock(&g.lock);
    bool stopping = g.stopping;
    if (!stopping)
        g.active++;
    pthread_mutex_unlock(&g.lock);
    if (stopping) {
        c->msg_failed = true;
        return NULL;
    }
    char err[256];
    c->msg = spool_msg_new(g.spool, g.max_size, c->leading_space, err, sizeof(err));
    if (!c->msg) {
        log_critical("milter: %s; this message will not be indexed", err);
        c->msg_failed = true;
        pthread_mutex_lock(&g.lock);
        if (--g.active == 0)
            pthread_cond_broadcast(&g.idle);
        pthread_mutex_unlock(&g.lock);
    }
    return c->msg;
}

/* spool_error - log a write error once per message. */
static void spool_error(conn_t *c)
{
    if (!c->msg_failed)
        log_critical("milter: %s; this message will not be indexed", spool_msg_errstr(c->msg));
    c->msg_failed = true;
}

/* strip_brackets - an address argument without its <> (a copy). */
static char *strip_brackets(const char *arg)
{
    if (!arg)
        return util_xstrdup("");
    size_t len = strlen(arg);
    if (len >= 2 && arg[0] == '<' && arg[len - 1] == '>')
        return util_xstrndup(arg + 1, len - 2);
    return util_xstrdup(arg);
}

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
                             unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    (void)f0;
    (void)f2;
    (void)f3;
    conn_t *c = conn_of(ctx);
    *pf0 = 0; /* no modification of messages */
    *pf1 = f1 & (MILTER_NOREPLY_STEPS | MILTER_OTHER_STEPS);
    *pf2 = *pf3 = 0;
    c->noreply = *pf1 & MILTER_NOREPLY_STEPS;
    c->leading_space = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
    return SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *ctx, char *hostname, struct sockaddr *addr)
{
    (void)hostname;
    conn_t *c = conn_of(ctx);
    c->client_ip[0] = '\0';
    if (addr && addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)addr)->sin_addr, c->client_ip, sizeof(c->client_ip));
    else if (addr && addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)addr)->sin6_addr, c->client_ip, sizeof(c->client_ip));
    return reply(c, SMFIP_NR_CONN);
}

static sfsistat on_helo(SMFICTX *ctx, char *helo)
{
    conn_t *c = conn_of(ctx);
    free(c->helo);
    c->helo = helo ? util_xstrdup(helo) : NULL;
    return reply(c, SMFIP_NR_HELO);
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
    conn_t *c = conn_of(ctx);
    message_reset(c);
    c->sender = strip_brackets(argv ? argv[0] : NULL);
    return reply(c, SMFIP_NR_MAIL);
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
    conn_t *c = conn_of(ctx);
    if (argv && argv[0] && c->n_rcpts < MILTER_MAX_RCPTS) {
        c->rcpts = util_xrealloc(c->rcpts, (c->n_rcpts + 1) * sizeof(*c->rcpts));
        c->rcpts[c->n_rcpts++] = strip_brackets(argv[0]);
    }
    return reply(c, SMFIP_NR_RCPT);
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
    conn_t *c = conn_of(ctx);
    spool_msg_t *m = message_spool(c);
    if (m && !c->msg_failed && spool_msg_header(m, name, value) != 0)
        spool_error(c);
    return reply(c, SMFIP_NR_HDR);
}

static sfsistat on_eoh(SMFICTX *ctx)
{
    conn_t *c = conn_of(ctx);
    spool_msg_t *m = message_spool(c);
    if (m && !c->msg_failed && spool_msg_end_headers(m) != 0)
        spool_error(c);
    return reply(c, SMFIP_NR_EOH);
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
    conn_t *c = conn_of(ctx);
    spool_msg_t *m = message_spool(c);
    if (m && !c->msg_failed && spool_msg_body(m, data, len) != 0)
        spool_error(c);
    return reply(c, SMFIP_NR_BODY);
}

static sfsistat on_eom(SMFICTX *ctx)
{
    conn_t *c = conn_of(ctx);
    spool_msg_t *m = message_spool(c);
    const char *queue_id = smfi_getsymval(ctx, "i");
    if (!queue_id)
        queue_id = smfi_getsymval(ctx, "{i}");
    if (!m) {
        bool stopping;
        pthread_mutex_lock(&g.lock);
        stopping = g.stopping;
        pthread_mutex_unlock(&g.lock);
        message_reset(c);
        if (stopping) {
            /* the spool is closing: the MTA keeps the message and tries again later */
            smfi_setreply(ctx, "451", "4.3.2", "clawback-milter is restarting, try again later");
            return SMFIS_TEMPFAIL;
        }
        return SMFIS_ACCEPT; /* a spool error, already logged */
    }
    if (c->msg_failed) {
        message_reset(c);
        return SMFIS_ACCEPT;
    }
    spool_envelope_t env = {.client_ip = c->client_ip[0] ? c->client_ip : NULL,
                            .helo = c->helo,
                            .sender = c->sender,
                            .queue_id = (char *)queue_id,
                            .time_ms = util_now_ms(),
                            .rcpts = c->rcpts,
                            .n_rcpts = c->n_rcpts};
    char err[256], name[64];
    bool truncated = spool_msg_truncated(m);
    int64_t size = spool_msg_size(m);
    c->msg = NULL; /* handed to the commit */
    int committed = spool_msg_commit(&m, &env, name, err, sizeof(err));
    if (committed != 0)
        log_critical("milter: queue id %s: %s; this message will not be indexed", queue_id ? queue_id : "-", err);
    else
        indexer_push(g.indexer, name);
    if (committed == 0 && truncated)
        log_info("milter: queue id %s: %lld bytes, only the first %lld kept and indexed ([milter] max_message_size)",
                 queue_id ? queue_id : "-", (long long)size, (long long)g.max_size);
    pthread_mutex_lock(&g.lock);
    if (--g.active == 0)
        pthread_cond_broadcast(&g.idle);
    pthread_mutex_unlock(&g.lock);
    message_reset(c);
    return SMFIS_ACCEPT;
}

static sfsistat on_abort(SMFICTX *ctx)
{
    conn_t *c = smfi_getpriv(ctx);
    if (c)
        message_reset(c);
    return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx)
{
    conn_t *c = smfi_getpriv(ctx);
    if (c) {
        message_reset(c);
        free(c->helo);
        free(c);
        smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

static struct smfiDesc milter_desc = {
    .xxfi_name = "clawback-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = 0,
    .xxfi_connect = on_connect,
    .xxfi_helo = on_helo,
    .xxfi_envfrom = on_envfrom,
    .xxfi_envrcpt = on_envrcpt,
    .xxfi_header = on_header,
    .xxfi_eoh = on_eoh,
    .xxfi_body = on_body,
    .xxfi_eom = on_eom,
    .xxfi_abort = on_abort,
    .xxfi_close = on_close,
    .xxfi_negotiate = on_negotiate,
};

/* milter_main - smfi_main in its own thread; notes when it returns. */
static void *milter_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "cb-milter"); /* and the session threads it starts */
    if (smfi_main() != MI_SUCCESS)
        log_critical("milter: libmilter's main loop failed");
    atomic_store(&g.exited, true);
    return NULL;
}

int milter_start(const char *listen, mode_t socket_mode, spool_t *spool, indexer_t *indexer, int64_t max_size,
                 char *err, size_t errsize)
{
    g.spool = spool;
    g.indexer = indexer;
    g.max_size = max_size > 0 && max_size < (int64_t)MESSAGE_MAX_SIZE ? max_size : (int64_t)MESSAGE_MAX_SIZE;
    g.stopping = false;
    if (smfi_register(milter_desc) != MI_SUCCESS || smfi_setconn((char *)listen) != MI_SUCCESS) {
        snprintf(err, errsize, "libmilter refused the milter or [milter] listen '%s'", listen);
        return -1;
    }
    /* bind now, so that a bad address or a port in use refuses the start */
    if (smfi_opensocket(true) != MI_SUCCESS) {
        snprintf(err, errsize, "cannot listen on '%s' ([milter] listen)", listen);
        return -1;
    }
    /* a unix socket is created with the umask's permissions; the MTA's user must reach it */
    const char *path = !strncmp(listen, "unix:", 5) ? listen + 5 : !strncmp(listen, "local:", 6) ? listen + 6 : NULL;
    if (path && chmod(path, socket_mode) != 0) {
        snprintf(err, errsize, "cannot set the permissions of %s to %04o ([milter] socket_mode): %s", path,
                 (unsigned)socket_mode, strerror(errno));
        return -1;
    }
    if (pthread_create(&g.thread, NULL, milter_main, NULL) != 0) {
        snprintf(err, errsize, "cannot start libmilter's thread");
        return -1;
    }
    g.running = true;
    return 0;
}

bool milter_stop(int64_t wait_ms)
{
    if (!g.running)
        return true;
    smfi_stop();
    pthread_join(g.thread, NULL);
    g.running = false;
    struct timespec until = util_deadline_ts(CLOCK_REALTIME, wait_ms); /* g.idle: the default clock */
    pthread_mutex_lock(&g.lock);
    while (g.active > 0)
        if (pthread_cond_timedwait(&g.idle, &g.lock, &until) == ETIMEDOUT)
            break;
    g.stopping = true;
    size_t left = g.active;
    pthread_mutex_unlock(&g.lock);
    if (left)
        log_warning("milter: %zu messages still being received at the stop; the MTA keeps them", left);
    return left == 0;
}

bool milter_exited(void)
{
    return atomic_load(&g.exited);
}
