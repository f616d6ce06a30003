#!/usr/bin/env bash
# demo.sh - `make run` without a configuration of your own: the whole system on local parts,
# to watch. Starts a private redis-server, Dovecot (IMAP + LMTP) and Postfix on free loopback
# ports, a stand-in for the seed's retrospective verdict service, and clawback-milter (behind
# Postfix, indexing each message it accepts), -logger, -remediator, -enricher and -poller.
# Sends four messages over SMTP, then publishes a verdict about the URL two of them carry (and a third shares their
# subject), and shows them leaving the mailboxes, with the logs that say so. Keeps running
# (Ctrl-C stops everything and removes the temporary directory; KEEP_WORK=1 keeps it).
set -u
BUILD=${BUILD:-build}
source "$(dirname "$0")/../tests/integration/lib.sh"
source "$(dirname "$0")/../tests/integration/mailstack.sh"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show_inboxes() {
    local u
    for u in alice@example.com bob@example.com carol@example.com soc@example.com; do
        printf '  %-20s INBOX: %s\n' "$u" "$(imap_check --user "$u" subjects INBOX | paste -sd '|' | sed 's/|/ | /g')"
        imap_check --user "$u" folders | grep -qx Quarantine &&
            printf '  %-20s Quarantine: %s\n' "" "$(imap_check --user "$u" subjects Quarantine | paste -sd '|' | sed 's/|/ | /g')"
    done
    return 0
}

say "starting Redis, Dovecot, clawback-milter and Postfix on loopback (work directory $WORK)"
start_redis --appendonly yes --appendfsync everysec
start_dovecot alice@example.com bob@example.com carol@example.com soc@example.com
MILTER_PORT=$(free_port)
POSTFIX_EXTRA_CONF="smtpd_milters = inet:127.0.0.1:$MILTER_PORT
milter_default_action = tempfail"
start_postfix
spawn retro python3 "$ROOT/tests/tools/feed_standin.py" --port 0 --port-file "$WORK/retro.port" --device-id DEMO-1
wait_until 10 "the verdict service stand-in" test -s "$WORK/retro.port"
RP=$(cat "$WORK/retro.port")
CONF="$WORK/clawback.conf"
cat >"$CONF" <<EOF
[redis]
url = $REDIS_URL
[bus]
heartbeat = 200ms
[logger]
directory = $WORK/logs
[enricher]
window = 1h
[milter]
listen = inet:$MILTER_PORT@127.0.0.1
spool_dir = $WORK/spool
[feed retro]
type = retro
url = http://127.0.0.1:$RP
device_id = DEMO-1
org_id = demo
interval = 2s
[domains corp]
domains = example.com
action = delete
profile = dovecot
$(dovecot_profile dovecot "forward_to = soc@example.com")
EOF
echo "  Redis $REDIS_URL, IMAP 127.0.0.1:$IMAP_PORT (log in as USER*admin / adminpw), SMTP 127.0.0.1:$SMTP_PORT"
echo "  configuration: $CONF"
spawn milter "$BIN/clawback-milter" -c "$CONF"
wait_until 10 "clawback-milter to listen" port_in_use "$MILTER_PORT"

say "sending four messages through Postfix to Dovecot"
URL="http://parcel-tracking.example/t?id=4471"
mail() { # NAME TO SUBJECT BODY
    printf 'Message-ID: <%s.%s@outside.example>\nFrom: "Parcel Service" <noreply@outside.example>\nTo: %s\nSubject: %s\nDate: %s\n\n%s\n' \
        "$1" "$RANDOM" "$2" "$3" "$(date -R)" "$4" >"$WORK/$1.eml"
    send_mail noreply@outside.example "$2" "$WORK/$1.eml"
}
mail a1 alice@example.com "Your parcel is waiting" "Track it at $URL"
mail b1 bob@example.com "Your parcel is waiting" "Track it at $URL"
mail b2 bob@example.com "Your parcel is waiting" "Call us to reschedule."
mail c1 carol@example.com "Lunch on Friday?" "The usual place at noon."
wait_delivered alice@example.com 1
wait_delivered bob@example.com 2
wait_delivered carol@example.com 1
show_inboxes

say "indexed by clawback-milter as Postfix accepted them"
indexed_four() { [ "$("$BIN/clawback" -c "$CONF" search --json 'email:"noreply@outside.example"' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 4 ]; }
wait_until 20 "the four messages in the index" indexed_four
"$BIN/clawback" -c "$CONF" search "domain:\"parcel-tracking.example\""

say "starting clawback-logger, -remediator, -enricher and -poller (logs: $WORK/*.err)"
for d in logger remediator enricher poller; do spawn "$d" "$BIN/clawback-$d" -c "$CONF"; done
wait_until 20 "the remediator to join the bus" grep -q "jobs: connected to dispatcher" "$WORK/remediator.err"

say "the verdict service now says $URL is malicious"
curl -sS --fail -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$RP/_control/retros" --data-binary \
    "[{\"observable\": {\"observable_type\": \"url\", \"value\": \"$URL\"}, \"context_tags\": [], \"email_id\": \"0f1e2d3c-0000-4000-8000-0000000000d1\", \"timestamp\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"org_id\": \"demo\", \"verdict\": {\"taxonomy_id\": 4, \"taxonomy_entry_id\": 3, \"tag_type_id\": 1}, \"taxonomy_map_version\": 1}]" >/dev/null
done_three() { [ "$(grep -c "Remediation status: Remediated" "$WORK/logs/mail_logs" 2>/dev/null)" -ge 3 ]; }
wait_until 60 "the three messages to be remediated" done_three
show_inboxes
say "the gateway's logs"
for f in ecs mail_logs remediation; do echo "--- $WORK/logs/$f"; tail -n 8 "$WORK/logs/$f"; done
mid=$("$BIN/clawback" -c "$CONF" search --json "domain:\"parcel-tracking.example\"" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["mid"])')
say "clawback track $mid"
"$BIN/clawback" -c "$CONF" track "$mid"

say "still running: try $BIN/clawback -c $CONF batch, ... queues, ... search 'email_subject:\"Lunch on Friday?\"'; Ctrl-C stops"
while alive milter && alive logger && alive remediator && alive enricher && alive poller; do sleep 1; done
echo "a daemon exited; see $WORK/*.err"
