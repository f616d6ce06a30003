#!/usr/bin/env bash
# test_remediator.sh - the whole system end to end on real parts: redis-server, Dovecot (IMAP +
# LMTP) and Postfix started here; messages sent over SMTP to Postfix, delivered by LMTP into
# Dovecot mailboxes and indexed by clawback-milter as Postfix accepts them; a verdict
# served by the retro stand-in; then clawback-poller, -enricher, -remediator and -logger as
# separate processes. Checks through IMAP that exactly the messages carrying the URL and those
# sharing its subject left their inboxes (into Quarantine), that nothing else moved, that a
# Forward and Delete copy reached the forward mailbox with the prefixed subject and the job's
# tag, and that the logs and `clawback track` say Remediated. Also: a chained profile (a Graph
# stand-in first, which does not know the mailbox; then Dovecot), a Graph mailbox behind the
# stand-in answering 429 with Retry-After first (retried), a job whose server is down (retried
# until it is back) with the remediator killed -9 meanwhile, a forward already recorded (not
# sent twice), not found, and a failing profile.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mailstack.sh"

start_redis --appendonly yes --appendfsync always
start_dovecot alice@example.com bob@example.com carol@example.com dana@fwd.example soc@example.com
MILTER_PORT=$(free_port)
POSTFIX_EXTRA_CONF="smtpd_milters = inet:127.0.0.1:$MILTER_PORT
milter_default_action = tempfail"
start_postfix fwd.example
LOGS="$WORK/logs"
CONF="$WORK/clawback.conf"
CB=("$BIN/clawback" -c "$CONF")
RETRO="$ROOT/tests/tools/feed_standin.py"
GRAPH="$ROOT/tests/tools/graph_standin.py"

# stand-ins for the remote services that cannot run here: the seed's verdict service, Graph
spawn retro python3 "$RETRO" --port 0 --port-file "$WORK/retro.port" --device-id DEV-1
spawn graph python3 "$GRAPH" --port 0 --port-file "$WORK/graph.port" --tenant tenant-1 --client-id client-1 \
    --client-secret graph-secret
wait_until 10 "the retro stand-in" test -s "$WORK/retro.port"
wait_until 10 "the graph stand-in" test -s "$WORK/graph.port"
RP=$(cat "$WORK/retro.port")
GP=$(cat "$WORK/graph.port")
control() { # PORT METHOD PATH [JSON]
    curl -sS --fail -X "$2" -H 'Content-Type: application/json' ${4:+--data-binary "$4"} "http://127.0.0.1:$1$3" ||
        fail "control $2 $3"
}

echo graph-secret >"$WORK/graph.secret"
cat >"$CONF" <<EOF
[redis]
url = $REDIS_URL
[log]
level = info
[bus]
heartbeat = 100ms
ack_timeout = 3s
[logger]
directory = $LOGS
[enricher]
window = 1h
approval_threshold = 100
[remediator]
workers = 4
backoff_min = 200ms
backoff_max = 1s
give_up_after = 2m
[poller]
lease = 2s
[milter]
listen = inet:$MILTER_PORT@127.0.0.1
spool_dir = $WORK/spool
[feed retro]
type = retro
url = http://127.0.0.1:$RP
device_id = DEV-1
org_id = test
interval = 1s
overlap = 0
backoff_min = 200ms
backoff_max = 1s
[domains corp]
domains = example.com
action = delete
profile = cloud dovecot
[domains fwd]
domains = fwd.example
action = forward_delete
profile = dovecot
[domains cloud]
domains = cloud.example
action = delete
profile = cloud
$(dovecot_profile dovecot "timeout = 5s" "forward_to = soc@example.com" "forward_from = clawback@example.com")
[profile cloud]
type = graph
url = http://127.0.0.1:$GP/v1.0
token_url = http://127.0.0.1:$GP/tenant-1/oauth2/v2.0/token
tenant = tenant-1
client_id = client-1
secret_file = $WORK/graph.secret
tls_verify = no
timeout = 5s
EOF

spawn milter "$BIN/clawback-milter" -c "$CONF"
wait_until 10 "the milter to listen" port_in_use "$MILTER_PORT"

# msg NAME TO SUBJECT URL|- - write $WORK/NAME.eml with Message-ID <NAME.RANDOM@outside.example>
msg() {
    local id="$1.$RANDOM@outside.example"
    {
        printf 'Message-ID: <%s>\nFrom: "Parcel Service" <noreply@outside.example>\nTo: %s\n' "$id" "$2"
        printf 'Subject: %s\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nContent-Type: text/plain\n\nHello.\n' "$3"
        [ "$4" != - ] && printf 'Track it at %s today.\n' "$4"
    } >"$WORK/$1.eml"
    echo "<$id>"
}
URL="http://phish.example/parcel?id=7"
ID_A1=$(msg a1 alice@example.com "Your parcel 4471 is waiting" "$URL")
ID_B1=$(msg b1 bob@example.com "Your parcel 4471 is waiting" -)
ID_C1=$(msg c1 carol@example.com "Lunch on Friday" http://intranet.example/menu)
ID_A2=$(msg a2 alice@example.com "Team meeting" -)
ID_D1=$(msg d1 dana@fwd.example "Parcel notice" "$URL")
ID_E1=$(msg e1 erin@cloud.example "Cloud parcel" "$URL")
for m in a1:alice@example.com b1:bob@example.com c1:carol@example.com a2:alice@example.com d1:dana@fwd.example; do
    send_mail noreply@outside.example "${m#*:}" "$WORK/${m%%:*}.eml"
done
wait_delivered alice@example.com 2
wait_delivered bob@example.com 1
wait_delivered carol@example.com 1
wait_delivered dana@fwd.example 1

echo "== indexed by clawback-milter as Postfix accepted them"
# the Graph mailbox is not behind this Postfix: its copy is in the stand-in, indexed from its file
"${CB[@]}" ingest --rcpt erin@cloud.example "$WORK/e1.eml" >/dev/null || fail "ingest e1"
control "$GP" POST /_control/mailboxes "{\"mailboxes\": [{\"upn\": \"erin@cloud.example\", \"messages\": [{\"folder\": \"inbox\", \"internetMessageId\": \"$ID_E1\", \"subject\": \"Cloud parcel\"}]}]}" >/dev/null
mid_of() { # MESSAGE-ID
    local id=${1#<}
    "${CB[@]}" search --json "email_messageid:${id%>}" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["mid"])'
}
indexed() { [ -n "$(mid_of "$1")" ]; }
for id in "$ID_A1" "$ID_B1" "$ID_C1" "$ID_A2" "$ID_D1"; do wait_until 20 "$id indexed by the milter" indexed "$id"; done
MID_A1=$(mid_of "$ID_A1")
MID_B1=$(mid_of "$ID_B1")
MID_C1=$(mid_of "$ID_C1")
MID_D1=$(mid_of "$ID_D1")
MID_E1=$(mid_of "$ID_E1")
[ -n "$MID_A1" ] && [ -n "$MID_B1" ] && [ -n "$MID_D1" ] && [ -n "$MID_E1" ] || fail "messages not indexed"
echo "ok: indexed (MIDs a1 $MID_A1, b1 $MID_B1, d1 $MID_D1, e1 $MID_E1)"

# the Graph mailbox's first request is throttled: retried after its Retry-After
control "$GP" POST /_control/fail '{"path_regex": "users/erin@cloud.example/messages", "status": 429, "count": 1, "retry_after": 1, "code": "ApplicationThrottled"}' >/dev/null

echo "== the whole pipeline: a retro verdict for the URL"
spawn logger "$BIN/clawback-logger" -c "$CONF"
spawn remediator "$BIN/clawback-remediator" -c "$CONF"
spawn enricher "$BIN/clawback-enricher" -c "$CONF"
spawn poller "$BIN/clawback-poller" -c "$CONF"
now_iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)
control "$RP" POST /_control/retros "[{\"observable\": {\"observable_type\": \"url\", \"value\": \"$URL\"}, \"context_tags\": [], \"email_id\": \"0f1e2d3c-0000-4000-8000-0000000000aa\", \"timestamp\": \"$now_iso\", \"org_id\": \"test\", \"verdict\": {\"taxonomy_id\": 4, \"taxonomy_entry_id\": 3, \"tag_type_id\": 1}, \"taxonomy_map_version\": 1}]" >/dev/null

lines() { [ -f "$LOGS/$1" ] && grep -cF -- "$2" "$LOGS/$1" || echo 0; }
has() { [ "$(lines "$1" "$2")" -ge 1 ]; }
processed() { has mail_logs "Message $1 was processed due to URL retrospection by Mailbox Remediation with '$2' remedial action for recipient $3. Profile used to remediate: $4 Remediation status: Remediated."; }
wait_until 60 "a1 remediated" processed "$MID_A1" Delete alice@example.com dovecot
wait_until 30 "b1 (same subject) remediated" processed "$MID_B1" Delete bob@example.com dovecot
wait_until 30 "d1 forwarded and deleted" processed "$MID_D1" "Forward and Delete" dana@fwd.example dovecot
wait_until 30 "e1 deleted through Graph" processed "$MID_E1" Delete erin@cloud.example cloud
echo "ok: the seed's processed lines for the URL's messages, the same subject's and the Graph mailbox's"

echo "== the mailboxes, through IMAP"
imap_check --user alice@example.com find "$ID_A1" | grep -q '^Quarantine ' || fail "a1 not in alice's Quarantine"
imap_check --user alice@example.com find "$ID_A1" | grep -q '^INBOX ' && fail "a1 still in alice's INBOX"
imap_check --user alice@example.com find "$ID_A2" | grep -q '^INBOX ' || fail "a2 (clean) left alice's INBOX"
imap_check --user bob@example.com count-is INBOX 0 || fail "b1 (same subject) still in bob's INBOX"
imap_check --user bob@example.com find "$ID_B1" | grep -q '^Quarantine ' || fail "b1 not in bob's Quarantine"
imap_check --user carol@example.com count-is INBOX 1 || fail "carol's clean message moved"
imap_check --user carol@example.com folders | grep -qx Quarantine && fail "carol got a Quarantine folder"
imap_check --user dana@fwd.example count-is INBOX 0 || fail "d1 still in dana's INBOX"
wait_delivered soc@example.com 1
imap_check --user soc@example.com subjects INBOX | grep -qx "\[Message Remediated\] Parcel notice" ||
    fail "forwarded subject: $(imap_check --user soc@example.com subjects INBOX)"
imap_check --user soc@example.com last INBOX | grep -q "^X-Clawback-Job: j:$MID_D1:" || fail "forward not tagged with its job"
imap_check --user soc@example.com last INBOX | grep -qF "$ID_D1" || fail "forward does not carry the original"
echo "ok: exactly the URL's and the subject's messages left (to Quarantine); the forward reached soc"

python3 - "$(control "$GP" GET /_control/mailbox/erin@cloud.example)" <<'EOF' || fail "graph mailbox: $(control "$GP" GET /_control/mailbox/erin@cloud.example)"
import json, sys
box = json.loads(sys.argv[1])
where = [json.dumps({k: v for k, v in f.items() if k != "messages"}) for f in box["folders"]
         if any(m.get("subject") == "Cloud parcel" for m in f["messages"])]
assert len(where) == 1, where
assert "deleteditems" in where[0].lower() or "deleted items" in where[0].lower(), where
EOF
grep -q "attempt 1 failed for now" "$WORK/remediator.err" || fail "the throttled Graph request was not retried"
echo "ok: the Graph mailbox's copy moved to deleteditems after one 429 with Retry-After"

echo "== the seed's remediation lines and tracking"
has remediation "MID: $MID_A1 Message deleted successfully from alice@example.com mailbox." || fail "remediation line a1"
has remediation "MID: $MID_A1 Remediation succeeded with "'`dovecot`'" profile for recipient alice@example.com." ||
    fail "remediation succeeded line: $(grep -F "MID: $MID_A1" "$LOGS/remediation")"
"${CB[@]}" track "$MID_A1" >"$WORK/track.txt" || fail "track"
grep -q "Remediated" "$WORK/track.txt" || fail "track a1: $(cat "$WORK/track.txt")"
"${CB[@]}" track "$MID_C1" | grep -q "Remediated" && fail "carol's message tracked as remediated"
echo "ok: remediation lines and track say Remediated"

echo "== a forward already recorded is not sent again"
rcli hset "cb:copies:$((MID_C1 / 128))" "$MID_C1 forwarded:carol@example.com" "j:earlier" >/dev/null
"${CB[@]}" remediate --action forward-delete --by admin "$MID_C1" >"$WORK/batch_c1" || fail "remediate c1"
admin_done() { has mail_logs "Message $MID_C1 was processed"; }
wait_until 30 "c1 processed" admin_done
imap_check --user carol@example.com count-is INBOX 0 || fail "c1 not deleted"
imap_check --user soc@example.com count-is INBOX 1 || fail "a recorded forward was sent again"
grep -q "already forwarded" "$WORK/remediator.err" || fail "no 'already forwarded' detail"
echo "ok: a recorded forward is recognised; the delete still happens"

echo "== not found, and a server down: retried, with the remediator killed -9 meanwhile"
"${CB[@]}" remediate --action delete --by admin "$MID_A1" >/dev/null || fail "remediate a1 again"
wait_until 30 "a1 not found" has remediation "MID: $MID_A1 Message not found"
stop_dovecot
"${CB[@]}" remediate --action delete --by admin "$(mid_of "$ID_A2")" >/dev/null || fail "remediate a2"
wait_until 30 "a retry while Dovecot is down" grep -q "again in" "$WORK/remediator.err"
kill -9 "$(pid_of remediator)"
dovecot -c "$DOVECOT_CONF" || fail "restart dovecot"
wait_until 10 "dovecot back" port_in_use "$IMAP_PORT"
spawn remediator2 "$BIN/clawback-remediator" -c "$CONF"
MID_A2=$(mid_of "$ID_A2")
wait_until 60 "a2 remediated after the restart" has mail_logs "Message $MID_A2 was processed"
imap_check --user alice@example.com find "$ID_A2" | grep -q '^Quarantine ' || fail "a2 not quarantined"
[ "$(lines mail_logs "Message $MID_A2 was processed")" = 1 ] || fail "a2 processed twice"
echo "ok: a job survives its server being down and its remediator being killed"

echo "== clean stop"
for p in poller enricher remediator2 logger milter; do
    kill -TERM "$(pid_of $p)"
done
for p in poller enricher remediator2 logger milter; do
    wait_until 15 "$p to stop" eval "! alive $p"
done
grep -q "ERROR: AddressSanitizer\|runtime error" "$WORK"/*.err && fail "sanitizer report"
echo "ok: all stopped"
