/*
 * milter.h - the libmilter side of clawback-milter: the MTA's callbacks write each message
 * into the spool (spool.h) and answer at once; the indexer (indexer.h) does the rest.
 *
 * The milter observes and never filters: it asks for no modification, negotiates "no reply"
 * for every stage the MTA allows (SMFIP_NR_*), so the MTA does not wait on it before end of
 * message, and answers accept at end of message once the message is in ready/ (fsync'ed when
 * [milter] sync). A spool write error is logged (critical) and the message still accepted.
 *
 * libmilter is process-global: one milter per process. smfi_main runs in a thread of its
 * own; libmilter's own signal thread is kept off SIGHUP/SIGTERM/SIGINT (see milter.c), which
 * stay with the daemon skeleton: SIGTERM stops through milter_stop, SIGHUP reopens the logs.
 */
#ifndef CLAWBACK_MILTER_MILTER_H
#define CLAWBACK_MILTER_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "indexer.h"
#include "spool.h"

/* The protocol steps negotiated, as libmilter/mfapi.h's SMFIP_* bits (bench/null_milter.c, the
 * benchmark's do-nothing reference, negotiates the same): no reply at any stage before the
 * end of the message; no unknown commands and no DATA; headers with their leading space. */
#define MILTER_NOREPLY_STEPS                                                                        \
    (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_UNKN | \
     SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)
#define MILTER_OTHER_STEPS (SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_HDR_LEADSPC)

/* milter_start - listen on listen ("inet:PORT@HOST", "unix:/PATH": that socket gets the
 * permissions socket_mode) and serve the MTA in a thread, spooling into spool and handing
 * each message to indexer (both borrowed; they must stay until milter_stop returned true).
 * max_size: bytes kept per message (0: MESSAGE_MAX_SIZE). 0, or -1 with the reason in err. */
int milter_start(const char *listen, mode_t socket_mode, spool_t *spool, indexer_t *indexer, int64_t max_size,
                 char *err, size_t errsize);
/* milter_stop - stop listening, let the messages being received finish (bounded: wait_ms),
 * then stop touching the spool: a message whose end arrives later is answered with a
 * temporary failure (the MTA keeps it and tries again). Returns true when no callback holds
 * the spool any more (it may be freed). */
bool milter_stop(int64_t wait_ms);
/* milter_exited - whether libmilter's main loop ended on its own (the daemon should stop). */
bool milter_exited(void);

#endif
