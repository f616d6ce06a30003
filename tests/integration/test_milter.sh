#!/usr/bin/env bash
# test_milter.sh - clawback-milter between a real Postfix and a real Dovecot (LMTP), with a
# real redis-server: messages sent over SMTP are delivered and found by `clawback search` with
# the client IP, envelope sender and recipients, the queue id Postfix logged and their URLs;
# mail from an internal network is recorded as outgoing; SIGHUP leaves it serving; Redis
# stopped during a burst: every message still delivered, the backlog visible, and all indexed
# (once each) when Redis is back; the milter killed -9 and restarted in the middle of a
# burst (milter_default_action = tempfail, the sender retrying 4xx): nothing delivered goes
# unindexed and nothing is indexed twice; SIGTERM stops it cleanly.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mailstack.sh"

start_redis --appendonly yes --appendfsync always
start_dovecot alice@example.com bob@example.com carol@example.com
MILTER_PORT=$(free_port)
POSTFIX_EXTRA_CONF="smtpd_milters = inet:127.0.0.1:$MILTER_PORT
milter_default_action = tempfail
milter_protocol = 6"
start_postfix
CONF="$WORK/clawback.conf"
SPOOL="$WORK/spool"
cat >"$CONF" <<EOF
[redis]
url = $REDIS_URL
timeout = 500ms
[log]
file = $WORK/milter.log
level = debug
[milter]
listen = inet:$MILTER_PORT@127.0.0.1
spool_dir = $SPOOL
internal_networks = 127.0.0.2/32 10.0.0.0/8
instance = gw1
backoff_max = 300ms
status_interval = 200ms
EOF
CB=("$BIN/clawback" -c "$CONF")
BURST=(python3 "$ROOT/tests/tools/smtp_burst.py" --port "$SMTP_PORT")
pyq() { python3 -c "import json,sys; r=json.load(sys.stdin); print($1)"; }

start_milter() {
    spawn milter "$BIN/clawback-milter" -c "$CONF"
    # bounded wait; its log is in milter.log, not milter.err: shown when it does not come up
    local deadline=$(($(now_ms) + 10000))
    until port_in_use "$MILTER_PORT"; do
        if ! alive milter || [ "$(now_ms)" -ge "$deadline" ]; then
            tail -n 20 "$WORK/milter.log"
            fail "the milter did not listen on $MILTER_PORT"
        fi
        sleep 0.05
    done
}
# found MESSAGE-ID - how many index records carry this Message-ID
found() { "${CB[@]}" search --json "email_messageid:$1" 2>/dev/null | pyq 'len(r)'; }
# index_check RCPT FILE - "MISSING DUPLICATED": how many Message-IDs listed in FILE are not in
# the index among RCPT's messages, and how many are there more than once (one search)
index_check() {
    "${CB[@]}" search --json --limit 100000 "rcpt:$1" 2>/dev/null | python3 -c '
import collections, json, sys
ids = collections.Counter(r["message_id"] for r in json.load(sys.stdin))
want = [l.strip() for l in open(sys.argv[1]) if l.strip()]
print(sum(1 for w in want if ids[w] == 0), sum(1 for w in want if ids[w] > 1))' "$2"
}
all_found() { [ "$(index_check "$1" "$2" | cut -d" " -f1)" = 0 ]; }
ready_depth() { find "$SPOOL/ready" -type f | wc -l; }
status_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$SPOOL/status"; }
maildir_count() { find "$WORK/mail/$1" -path '*/new/*' -type f 2>/dev/null | wc -l; }
delivered_at_least() { [ "$(maildir_count "$1")" -ge "$2" ]; }

start_milter

echo "== messages over SMTP are delivered and indexed with what Postfix knows"
cat >"$WORK/m1.eml" <<'EOM'
Message-ID: <first.1@outside.example>
From: "Parcel Service" <noreply@outside.example>
To: alice@example.com
Subject: Your parcel
 is waiting
Date: Mon, 23 Nov 2026 10:00:00 +0000
Content-Type: text/plain

Track it at http://phish.example/parcel?id=7 today.
EOM
python3 - "$SMTP_PORT" "$WORK/m1.eml" <<'EOF' || fail "sending m1"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
    s.ehlo("client.outside.example")
    s.sendmail("bounce@outside.example", ["alice@example.com", "bob@example.com"], open(sys.argv[2], "rb").read())
EOF
wait_delivered alice@example.com 1
wait_delivered bob@example.com 1
wait_until 10 "m1 in the index" eval '[ "$(found first.1@outside.example)" = 1 ]'
"${CB[@]}" search --json 'url:"http://phish.example/parcel?id=7"' >"$WORK/m1.json" || fail "search by URL"
QID=$(sed -n 's/.*postfix\/cleanup\[[0-9]*\]: \([0-9A-F]*\): message-id=<first.1@outside.example>.*/\1/p' "$WORK/maillog")
[ -n "$QID" ] || fail "no queue id in Postfix's maillog"
got=$(pyq 'len(r), r[0]["queue_id"], r[0]["sender_ip"], r[0]["sender"], r[0]["direction"], r[0]["message_id"], " ".join(sorted(x["address"] for x in r[0]["recipients"])), r[0]["subject"]' <"$WORK/m1.json")
want="1 $QID 127.0.0.1 bounce@outside.example incoming first.1@outside.example alice@example.com bob@example.com Your parcel is waiting"
[ "$got" = "$want" ] || fail "m1 indexed as '$got', expected '$want'"
[ "$(ready_depth)" = 0 ] || fail "the spool still holds indexed messages"
echo "ok: found by URL with queue id $QID, client IP, envelope sender and both recipients"

echo "== mail from an internal network is recorded as outgoing"
"${BURST[@]}" --count 1 --prefix out --source-ip 127.0.0.2 --rcpt carol@example.com || fail "sending from 127.0.0.2"
wait_delivered carol@example.com 1
wait_until 10 "the outgoing message in the index" eval '[ "$(found out.1@burst.example)" = 1 ]'
got=$("${CB[@]}" search --json "email_messageid:out.1@burst.example" | pyq 'r[0]["direction"], r[0]["sender_ip"]')
[ "$got" = "outgoing 127.0.0.2" ] || fail "internal mail indexed as '$got'"
echo "ok: outgoing from 127.0.0.2"

echo "== SIGHUP reopens the logs and leaves the milter serving"
kill -HUP "$(pid_of milter)"
reopened() { grep -q "log files reopened" "$WORK/milter.log"; }
wait_until 10 "the milter to reopen its logs" reopened
alive milter || fail "the milter died on SIGHUP"
"${BURST[@]}" --count 1 --prefix hup --rcpt carol@example.com || fail "sending after SIGHUP"
wait_until 10 "a message after SIGHUP in the index" eval '[ "$(found hup.1@burst.example)" = 1 ]'
echo "ok: still serving after SIGHUP"

echo "== Redis stopped during a burst: delivered now, indexed when Redis is back"
rcli shutdown >/dev/null 2>&1 # saves the AOF; the index survives
wait_until 10 "Redis to stop" eval '! port_in_use $REDIS_PORT'
before=$(maildir_count alice@example.com)
"${BURST[@]}" --count 30 --parallel 4 --prefix down --rcpt alice@example.com --out "$WORK/down.ids" ||
    fail "a message was refused while Redis was down"
wait_until 30 "30 more messages in alice's inbox" delivered_at_least alice@example.com $((before + 30))
[ "$(wc -l <"$WORK/down.ids")" = 30 ] || fail "not all 30 accepted"
wait_until 10 "the spool to hold the 30" eval '[ "$(ready_depth)" -ge 30 ]'
wait_until 10 "the status file to show the backlog" eval '[ "$(status_field depth)" = 30 ] && [ "$(status_field redis)" = down ]'
grep -q "cannot index" "$WORK/milter.log" || fail "the Redis failure was not logged"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always --dir "$WORK" \
    --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log" >/dev/null || fail "restarting Redis"
wait_redis_up 10 || fail "Redis did not come back"
wait_until 30 "the backlog indexed" all_found alice@example.com "$WORK/down.ids"
wait_until 10 "the spool to empty" eval '[ "$(ready_depth)" = 0 ]'
[ "$(index_check alice@example.com "$WORK/down.ids")" = "0 0" ] || fail "indexed more than once"
[ "$(found first.1@outside.example)" = 1 ] || fail "the index lost what it held before Redis stopped"
milter_shown() { "${CB[@]}" queues --json | grep -q '"milter":"gw1","depth":0,'; }
wait_until 10 "clawback queues to show the milter's empty spool" milter_shown
echo "ok: 30 messages delivered while Redis was down, each indexed once after it came back"

echo "== the milter killed -9 and restarted in the middle of a burst"
before=$(maildir_count bob@example.com)
spawn burst "${BURST[@]}" --count 60 --parallel 4 --prefix kill --rcpt bob@example.com --out "$WORK/kill.ids" \
    --retries 200 --retry-delay 0.1
wait_until 30 "part of the burst delivered" delivered_at_least bob@example.com $((before + 10))
kill_hard milter
wait_until 10 "the milter's port to close" eval '! port_in_use $MILTER_PORT'
start_milter
wait_until 60 "the burst to finish" not_alive burst
wait "$(pid_of burst)" || fail "the sender gave up on a message (see $WORK/burst.err)"
[ "$(wc -l <"$WORK/kill.ids")" = 60 ] || fail "not all 60 accepted"
wait_until 30 "60 more messages in bob's inbox" delivered_at_least bob@example.com $((before + 60))
wait_until 30 "every delivered message indexed" all_found bob@example.com "$WORK/kill.ids"
[ "$(index_check bob@example.com "$WORK/kill.ids")" = "0 0" ] || fail "indexed more than once"
grep -q "milter-reject\|4.3.2\|temporarily\|milter.*unavailable\|can't connect to" "$WORK/maillog" ||
    echo "note: no milter failure seen in the maillog (the kill fell between two sessions)"
echo "ok: 60 messages accepted across the kill, each delivered and indexed once"

echo "== a unix socket, with the permissions of [milter] socket_mode"
# a second milter on a unix socket behind a second smtpd listener (Postfix's smtpd runs as the
# postfix user: the socket must be writable for it); a mode that is not octal refuses the start
USOCK="$WORK/milter.sock"
sed -e "s|^listen = .*|listen = unix:$USOCK|" -e "s|^spool_dir = .*|spool_dir = $WORK/spool-unix|" \
    -e "s|^instance = .*|instance = gw-unix|" -e "s|^file = .*|file = $WORK/milter-unix.log|" "$CONF" >"$WORK/unix.conf"
sed 's|^instance = .*|socket_mode = 0999|' "$WORK/unix.conf" >"$WORK/badmode.conf"
rc=0
timeout 20 "$BIN/clawback-milter" -c "$WORK/badmode.conf" >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "a socket_mode of 0999 did not refuse the start (exit $rc)"
grep -q "socket_mode: '0999' is not permissions in octal" "$WORK/milter-unix.log" || fail "no reason for the bad socket_mode"
echo "socket_mode = 0666" >>"$WORK/unix.conf"
spawn milter-unix "$BIN/clawback-milter" -c "$WORK/unix.conf"
wait_until 10 "the unix socket" test -S "$USOCK"
[ "$(stat -c %a "$USOCK")" = 666 ] || fail "the socket's mode is $(stat -c %a "$USOCK"), not 666"
postfix_add_smtpd "smtpd_milters=unix:$USOCK"
python3 "$ROOT/tests/tools/smtp_burst.py" --port "$EXTRA_SMTP_PORT" --count 2 --prefix unix --rcpt carol@example.com ||
    fail "sending through the unix-socket milter"
wait_until 10 "the messages through the unix socket in the index" eval '[ "$(found unix.2@burst.example)" = 1 ]'
[ "$(found unix.1@burst.example)" = 1 ] || fail "unix.1 not indexed once"
wait_until 10 "gw-unix's status" grep -q " indexed=2 " "$WORK/spool-unix/status"
stop_gracefully milter-unix
[ "$STOP_STATUS" = 0 ] || fail "the unix-socket milter exited $STOP_STATUS after SIGTERM"
echo "ok: a bad mode refused; the socket 0666, Postfix's smtpd through it, both messages indexed by gw-unix"

echo "== SIGTERM stops it cleanly"
stop_gracefully milter
[ "$STOP_STATUS" = 0 ] || fail "the milter exited $STOP_STATUS after SIGTERM"
grep -q "clawback-milter: stopped" "$WORK/milter.log" || fail "no clean stop in the log"
echo "ok: stopped"
grep -q "ERROR: AddressSanitizer\|runtime error" "$WORK"/*.err && fail "sanitizer report"
echo "ok: no sanitizer report"
