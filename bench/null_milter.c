/*
 * null_milter - a milter that does nothing, for bench/milter.sh: the reference point of what
 * the milter protocol alone (Postfix's side and libmilter's thread and packets per session)
 * costs Postfix, next to clawback-milter in the same run.
 *
 *   null_milter SOCKET     (libmilter's form: inet:PORT@HOST or unix:/PATH); stops on SIGTERM
 *
 * It negotiates exactly what clawback-milter does (MILTER_NOREPLY_STEPS, MILTER_OTHER_STEPS in
 * milter.h), so Postfix sends it the same packets, and answers accept at the end of each
 * message without looking at anything.
 */
#include <libmilter/mfapi.h>
#include <stdio.h>

#include "milter.h"

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
                             unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    (void)ctx;
    (void)f0;
    (void)f2;
    (void)f3;
    *pf0 = 0;
    *pf1 = f1 & (MILTER_NOREPLY_STEPS | MILTER_OTHER_STEPS);
    *pf2 = *pf3 = 0;
    return SMFIS_CONTINUE;
}

/* every stage before the end was negotiated "no reply" (the MTA offers all of them: Postfix 3) */
static sfsistat on_connect(SMFICTX *ctx, char *hostname, struct sockaddr *addr)
{
    (void)ctx;
    (void)hostname;
    (void)addr;
    return SMFIS_NOREPLY;
}

static sfsistat on_string(SMFICTX *ctx, char *arg)
{
    (void)ctx;
    (void)arg;
    return SMFIS_NOREPLY;
}

static sfsistat on_args(SMFICTX *ctx, char **argv)
{
    (void)ctx;
    (void)argv;
    return SMFIS_NOREPLY;
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
    (void)ctx;
    (void)name;
    (void)value;
    return SMFIS_NOREPLY;
}

static sfsistat on_eoh(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_NOREPLY;
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return SMFIS_NOREPLY;
}

static sfsistat on_eom(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_ACCEPT;
}

static sfsistat on_continue(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: null_milter SOCKET (inet:PORT@HOST or unix:/PATH)\n");
        return 2;
    }
    struct smfiDesc desc = {
        .xxfi_name = "null-milter",
        .xxfi_version = SMFI_VERSION,
        .xxfi_connect = on_connect,
        .xxfi_helo = on_string,
        .xxfi_envfrom = on_args,
        .xxfi_envrcpt = on_args,
        .xxfi_header = on_header,
        .xxfi_eoh = on_eoh,
        .xxfi_body = on_body,
        .xxfi_eom = on_eom,
        .xxfi_abort = on_continue,
        .xxfi_close = on_continue,
        .xxfi_negotiate = on_negotiate,
    };
    if (smfi_register(desc) != MI_SUCCESS || smfi_setconn(argv[1]) != MI_SUCCESS ||
        smfi_opensocket(true) != MI_SUCCESS) {
        fprintf(stderr, "null_milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
