#!/usr/bin/env bash
# remediate.sh - the remediator against the local Dovecot (part of make bench; runs alone too):
# Delete of the same number of messages spread over many mailboxes, by clawback (remediate
# --query -> enricher -> remediator -> IMAP) and by Dovecot's own `doveadm expunge`, in the same
# run. Each side has its own mailboxes (c1.. for clawback, d1.. for doveadm) of the same shape:
# PER messages to remove and PER bystanders that must stay, delivered by LMTP. Neither side
# touches the other's mailboxes, so neither finds indexes or caches the other one built.
# BENCH_DOVECOT_LOGIN=performance runs Dovecot's imap-login in its documented high-performance
# mode (service_count = 0: one login process serves many connections) instead of its default
# high-security mode (a new imap-login process per connection); doveadm does not log in, so only
# clawback's side feels it. Figures only.
set -u
BUILD=${BUILD:-build}
source "$(dirname "$0")/../tests/integration/lib.sh"
source "$(dirname "$0")/../tests/integration/mailstack.sh"
USERS=${BENCH_MAILBOXES:-20}
PER=${BENCH_PER_MAILBOX:-50}
LOGIN=${BENCH_DOVECOT_LOGIN:-security}
TOTAL=$((USERS * PER))
case "$LOGIN" in
security) login_note="default high-security login: a new imap-login process per connection" ;;
performance)
    login_note="high-performance login: service_count = 0"
    export DOVECOT_IMAP_LOGIN_CONF="  service_count = 0
  process_min_avail = $(nproc)"
    ;;
*) fail "BENCH_DOVECOT_LOGIN is security or performance" ;;
esac
echo "remediator: Delete (permanent) of $TOTAL messages in $USERS Dovecot mailboxes, clawback against doveadm expunge ($USERS other mailboxes of the same shape); Dovecot with its $login_note"
start_redis --appendonly yes --appendfsync everysec
cb_users=() dove_users=()
for i in $(seq 1 "$USERS"); do
    cb_users+=("c$i@example.com")
    dove_users+=("d$i@example.com")
done
start_dovecot "${cb_users[@]}" "${dove_users[@]}"

# every mailbox: PER messages carrying the bench URL and PER bystanders without it, interleaved,
# over one LMTP connection; clawback's copies are also what clawback ingest indexes
mkdir -p "$WORK/a"
python3 - "$LMTP_PORT" "$WORK/a" "$PER" "${cb_users[@]}" -- "${dove_users[@]}" <<'EOF' || fail "LMTP delivery"
import os, smtplib, sys
port, adir, per = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rest = sys.argv[4:]
cb, dove = rest[:rest.index("--")], rest[rest.index("--") + 1:]
lmtp = smtplib.LMTP("127.0.0.1", port)
for u in cb + dove:
    os.makedirs(os.path.join(adir, u), exist_ok=True)
    for i in range(per):
        for kind in ("bench", "stay"):
            body = f"see http://bench.example/{i}" if kind == "bench" else f"nothing to see {i}"
            msg = (f"Message-ID: <{kind}-{i}.{u}>\r\nFrom: sender@outside.example\r\nTo: {u}\r\n"
                   f"Subject: {kind} {i}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
                   f"Hello {i}, {body}\r\n")
            lmtp.sendmail("sender@outside.example", [u], msg)
            if u in cb:
                with open(os.path.join(adir, u, f"{kind}-{i}.eml"), "w") as f:
                    f.write(msg)
lmtp.quit()
EOF
echo "delivered $((4 * TOTAL)) messages by LMTP"
# left USER... - how many bench messages are still in those mailboxes, and how many bystanders
left() {
    local u bench=0 stay=0
    for u in "$@"; do
        bench=$((bench + $(doveadm -c "$DOVECOT_CONF" search -u "$u" mailbox INBOX subject bench | wc -l)))
        stay=$((stay + $(doveadm -c "$DOVECOT_CONF" search -u "$u" mailbox INBOX subject stay | wc -l)))
    done
    echo "$bench left, $stay of $((USERS * PER)) bystanders stayed"
}
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
for u in "${cb_users[@]}"; do
    "$BIN/clawback" -c "$CONF" ingest --rcpt "$u" "$WORK/a/$u" >/dev/null || fail "ingest $u"
done
spawn enricher "$BIN/clawback-enricher" -c "$CONF"
spawn remediator "$BIN/clawback-remediator" -c "$CONF"
wait_until 30 "the remediator to connect" grep -q "jobs: connected to dispatcher" "$WORK/remediator.err"

# the results are waited for over one Redis connection polled every 5 ms, by a process started
# before the clock (a redis-cli per poll, or that process's start-up, would count in clawback's time)
python3 "$ROOT/tests/tools/redis_wait.py" --ready "$WORK/waiting" "$REDIS_PORT" 600 "$TOTAL" XLEN cb:bus:results:q &
waiter=$!
wait_until 30 "the results waiter to connect" test -e "$WORK/waiting"
start=$(now_ms)
"$BIN/clawback" -c "$CONF" remediate --action delete --by bench --limit "$TOTAL" \
    --query 'domain:"bench.example"' >/dev/null || fail "remediate"
wait "$waiter" || fail "$TOTAL results"
cb_ms=$(($(now_ms) - start))
echo "clawback: $TOTAL messages deleted in $cb_ms ms ($((TOTAL * 1000 / (cb_ms > 0 ? cb_ms : 1))) messages/s, $((cb_ms * 1000 / TOTAL)) µs per message; $(left "${cb_users[@]}")); $(rcli xrange cb:bus:results:q - + | grep -c remediated) results say remediated; $(grep -c ' together$' "$WORK/remediator.err") groups of jobs taken together"

# doveadm: one expunge per mailbox, its bench messages named by Message-ID as clawback names them
start=$(now_ms)
for u in "${dove_users[@]}"; do
    query=("(")
    for i in $(seq 0 $((PER - 1))); do
        [ "$i" -gt 0 ] && query+=(OR)
        query+=(header message-id "<bench-$i.$u>")
    done
    query+=(")")
    doveadm -c "$DOVECOT_CONF" expunge -u "$u" mailbox INBOX "${query[@]}" || fail "doveadm expunge $u"
done
dove_ms=$(($(now_ms) - start))
echo "doveadm expunge (one call per mailbox, its $PER Message-IDs ORed): $TOTAL messages in $dove_ms ms ($((TOTAL * 1000 / (dove_ms > 0 ? dove_ms : 1))) messages/s, $((dove_ms * 1000 / TOTAL)) µs per message; $(left "${dove_users[@]}"))"
echo "ratio: clawback takes $(awk "BEGIN { printf \"%.2f\", $cb_ms / ($dove_ms > 0 ? $dove_ms : 1) }") times doveadm's time"
kill -TERM "$(pid_of enricher)" "$(pid_of remediator)"
wait_until 15 "the daemons to stop" eval '! alive enricher && ! alive remediator'
