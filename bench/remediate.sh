#!/usr/bin/env bash
# remediate.sh - the remediator against the local Dovecot (part of make bench; runs alone too):
# Delete of the same number of messages spread over many mailboxes, by clawback (remediate
# --query -> enricher -> remediator -> IMAP) and by Dovecot's own `doveadm expunge`, in the same
# run. Each side gets its own copy of every message (two sets delivered by LMTP), so both
# remove the same kind and number of messages from the same mailboxes. Figures only.
set -u
BUILD=${BUILD:-build}
source "$(dirname "$0")/../tests/integration/lib.sh"
source "$(dirname "$0")/../tests/integration/mailstack.sh"
USERS=${BENCH_MAILBOXES:-20}
PER=${BENCH_PER_MAILBOX:-50}
TOTAL=$((USERS * PER))
echo "remediator: Delete (permanent) of $TOTAL messages in $USERS Dovecot mailboxes, clawback against doveadm expunge"
start_redis --appendonly yes --appendfsync everysec
users=()
for i in $(seq 1 "$USERS"); do users+=("user$i@example.com"); done
start_dovecot "${users[@]}"

# two sets of messages per mailbox, delivered over one LMTP connection: set a for clawback, set b
# for doveadm; set a's files are also what clawback ingest indexes
mkdir -p "$WORK/a"
python3 - "$LMTP_PORT" "$WORK/a" "$PER" "${users[@]}" <<'EOF' || fail "LMTP delivery"
import os, smtplib, sys
port, adir, per, users = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
lmtp = smtplib.LMTP("127.0.0.1", port)
for u in users:
    os.makedirs(os.path.join(adir, u), exist_ok=True)
    for s in ("a", "b"):
        for i in range(per):
            msg = (f"Message-ID: <bench-{s}-{i}.{u}>\r\nFrom: sender@outside.example\r\nTo: {u}\r\n"
                   f"Subject: bench {s} {i}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
                   f"Hello {i}, see http://bench.example/{s}/{i}\r\n")
            lmtp.sendmail("sender@outside.example", [u], msg)
            if s == "a":
                with open(os.path.join(adir, u, f"{i}.eml"), "w") as f:
                    f.write(msg)
lmtp.quit()
EOF
echo "delivered $((2 * TOTAL)) messages by LMTP"
CONF="$WORK/clawback.conf"
cat >"$CONF" <<EOF
[redis]
url = $REDIS_URL
[log]
level = info
[bus]
heartbeat = 100ms
capacity = 1024
[remediator]
workers = ${BENCH_WORKERS:-8}
[domains all]
domains = example.com
action = delete
profile = dovecot
$(dovecot_profile dovecot "delete = permanent")
EOF
for u in "${users[@]}"; do
    "$BIN/clawback" -c "$CONF" ingest --rcpt "$u" "$WORK/a/$u" >/dev/null || fail "ingest $u"
done
spawn enricher "$BIN/clawback-enricher" -c "$CONF"
spawn remediator "$BIN/clawback-remediator" -c "$CONF"
wait_until 30 "the remediator to connect" grep -q "jobs: connected to dispatcher" "$WORK/remediator.err"

start=$(now_ms)
"$BIN/clawback" -c "$CONF" remediate --action delete --by bench --limit "$TOTAL" \
    --query 'domain:"bench.example"' >/dev/null || fail "remediate"
results() { [ "$(rcli xlen cb:bus:results:q)" -ge "$TOTAL" ]; }
wait_until 600 "$TOTAL results" results
cb_ms=$(($(now_ms) - start))
left=0
for u in "${users[@]}"; do
    n=$(doveadm -c "$DOVECOT_CONF" search -u "$u" mailbox INBOX subject "bench a" | wc -l)
    left=$((left + n))
done
echo "clawback: $TOTAL messages deleted in $cb_ms ms ($((TOTAL * 1000 / (cb_ms > 0 ? cb_ms : 1))) messages/s, $((cb_ms * 1000 / TOTAL)) µs per message; $left left); $(rcli xrange cb:bus:results:q - + | grep -c remediated) results say remediated"

# doveadm: one expunge per mailbox of its set b, named by Message-ID as clawback names them
start=$(now_ms)
for u in "${users[@]}"; do
    query=("(")
    for i in $(seq 0 $((PER - 1))); do
        [ "$i" -gt 0 ] && query+=(OR)
        query+=(header message-id "<bench-b-$i.$u>")
    done
    query+=(")")
    doveadm -c "$DOVECOT_CONF" expunge -u "$u" mailbox INBOX "${query[@]}" || fail "doveadm expunge $u"
done
dove_ms=$(($(now_ms) - start))
left=0
for u in "${users[@]}"; do
    n=$(doveadm -c "$DOVECOT_CONF" search -u "$u" mailbox INBOX subject "bench b" | wc -l)
    left=$((left + n))
done
echo "doveadm expunge (one call per mailbox, its $PER Message-IDs ORed): $TOTAL messages in $dove_ms ms ($((TOTAL * 1000 / (dove_ms > 0 ? dove_ms : 1))) messages/s, $((dove_ms * 1000 / TOTAL)) µs per message; $left left)"
kill -TERM "$(pid_of enricher)" "$(pid_of remediator)"
wait_until 15 "the daemons to stop" eval '! alive enricher && ! alive remediator'
