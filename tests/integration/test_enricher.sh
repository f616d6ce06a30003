#!/usr/bin/env bash
# test_enricher.sh - from a verdict to remediation jobs and the audit trail, with a real
# redis-server, the index filled by `clawback ingest`, and the real clawback-enricher and
# clawback-logger processes. A bus_peer stands in for the remediator (issue 7): it answers each
# job with a result. Checks URL, email_id and same-subject matches and the subject guards, the
# window and the verdict age, the domain policy and the allowlist, the approval cap with
# approve/reject, duplicates (the same verdict again, another feed on the same URL, two
# enrichers at once, an enricher killed mid fan-out), the seed's exact log lines, `clawback
# track` and `clawback batch`, on-demand `clawback remediate`, and a logger restarted in the
# middle of a batch losing nothing.
source "$(dirname "$0")/lib.sh"

start_redis --appendonly yes --appendfsync always
CONF="$WORK/clawback.conf"
LOGS="$WORK/logs"
PEER="$TOOLS/bus_peer"

write_conf() {
    {
        printf '[redis]\nurl = %s\n[log]\nlevel = info\n' "$REDIS_URL"
        printf '[bus]\nheartbeat = 100ms\nack_timeout = 3s\n'
        printf '[logger]\ndirectory = %s\njson_file = %s\n' "$LOGS" "$WORK/events.json"
        printf '[enricher]\nwindow = 1h\nsubject_max = 3\nallow_domains = partner.example\napproval_threshold = %s\n' \
            "${APPROVAL:-20}"
        printf '[domains corp]\ndomains = corp.example\nprofile = o365 onprem\n'
        printf '[domains lab]\ndomains = lab.corp.example\naction = none\n'
        printf '[domains fwd]\ndomains = fwd.example\naction = forward_delete\nprofile = imap_fwd\n'
    } >"$CONF"
}
write_conf
CB=("$BIN/clawback" -c "$CONF")

# msg FILE SUBJECT TO BODY-URL [MESSAGE-ID] - write a message (no URL when BODY-URL is "-").
N=0
msg() {
    N=$((N + 1))
    {
        printf 'Message-ID: <%s>\nFrom: "Sender" <sender@outside.example>\nTo: %s\n' "${5:-m$N.$RANDOM@outside.example}" "$3"
        [ -n "$2" ] && printf 'Subject: %s\n' "$2"
        printf 'Date: Mon, 23 Nov 2026 10:00:00 +0000\nContent-Type: text/plain\n\nHello.\n'
        [ "$4" != - ] && printf 'Please see %s today.\n' "$4"
    } >"$1"
}
# ingest FILE [ARGS] - index one message; prints its MID.
ingest() {
    local f=$1
    shift
    "${CB[@]}" ingest "$@" "$f" >/dev/null || fail "ingest $f"
    "${CB[@]}" search --json "email_messageid:$(sed -n 's/^Message-ID: <\(.*\)>$/\1/p' "$f")" 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["mid"])' 2>/dev/null
}
email_id_of() { "${CB[@]}" search --json "mid:$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["email_id"])'; }
verdict() { "$PEER" -c "$CONF" verdict "$@" >/dev/null || fail "verdict $*"; }
# lines LOG TEXT - how many lines of a seed log contain TEXT.
lines() { [ -f "$LOGS/$1" ] && grep -cF -- "$2" "$LOGS/$1" || echo 0; }
has() { [ "$(lines "$1" "$2")" -ge 1 ]; }
answered() { local n; n=$(rcli hlen test:answered); echo "${n:-0}"; }
bfield() { rcli hget "cb:batch:$1" "$2"; }
batch_of() { rcli hget "cb:copies:$(($1 / 128))" "$1 job:$2"; }
state_of() { rcli hget "cb:copies:$(($1 / 128))" "$1 state:$2"; }
# verdict_batch ID - the batch UUID of a verdict id (as the enricher derives it)
verdict_batch() {
    python3 -c '
import hashlib,sys
d=bytearray(hashlib.sha256(sys.argv[1].encode()).digest()[:16])
d[6]=(d[6]&0x0f)|0x80; d[8]=(d[8]&0x3f)|0x80
h=d.hex(); print(h[:8]+"-"+h[8:12]+"-"+h[12:16]+"-"+h[16:20]+"-"+h[20:])' "$1"
}
stop_clean() { stop_gracefully "$1"; [ "$STOP_STATUS" = 0 ] || fail "$1 exit status $STOP_STATUS"; }
start_stages() {
    spawn dispatch "$PEER" -c "$CONF" produce --edge verdicts --count 0 --stay
    spawn logger "$BIN/clawback-logger" -c "$CONF"
    spawn enricher "$BIN/clawback-enricher" -c "$CONF"
    spawn answer "$PEER" -c "$CONF" answer --not-found gone@corp.example --fail broken@corp.example
}

echo "== a verdict on a URL: its messages, the same subject, the domain policy, the window"
U1="https://login.evil.example/pay?id=7"
A=$(ingest "$(msg "$WORK/a.eml" "Quarterly bonus" "alice@corp.example, bob@corp.example" "$U1"; echo "$WORK/a.eml")")
B=$(ingest "$(msg "$WORK/b.eml" "quarterly   BONUS" "carol@corp.example" -; echo "$WORK/b.eml")")
C=$(ingest "$(msg "$WORK/c.eml" "Lunch" "dave@corp.example" -; echo "$WORK/c.eml")")
E=$(ingest "$(msg "$WORK/e.eml" "Other" "x@lab.corp.example" "$U1"; echo "$WORK/e.eml")")
F=$(ingest "$(msg "$WORK/f.eml" "Other 2" "y@unmapped.example" "$U1"; echo "$WORK/f.eml")")
G=$(ingest "$(msg "$WORK/g.eml" "Old one" "old@corp.example" "$U1"; echo "$WORK/g.eml")" --time $(($(now_ms) - 2 * 3600 * 1000)))
H=$(ingest "$(msg "$WORK/h.eml" "Forward me" "boss@fwd.example" "http://other.example/x"; echo "$WORK/h.eml")")
[ -n "$A" ] && [ -n "$G" ] && [ -n "$H" ] || fail "ingest gave no MID"
start_stages
# the feed's form of the URL: upper case, default port, defanged
verdict --id v-url-1 --feed retro --value "hxxps://LOGIN.evil.example:443/pay?id=7"
UUID1=$(verdict_batch v-url-1)
wait_until 20 "3 jobs answered" at_least 3 answered
wait_until 20 "3 processed lines" at_least 3 lines mail_logs "was processed due to URL retrospection"
[ "$(answered)" = 3 ] || fail "$(answered) jobs, expected 3 (alice, bob, carol)"
for r in alice@corp.example bob@corp.example; do [ "$(batch_of "$A" $r)" = "$UUID1" ] || fail "A/$r not in batch"; done
[ "$(batch_of "$B" carol@corp.example)" = "$UUID1" ] || fail "same-subject message B not in the batch"
[ -z "$(batch_of "$C" dave@corp.example)" ] || fail "message C (other subject) remediated"
[ -z "$(batch_of "$E" x@lab.corp.example)" ] || fail "action none domain remediated"
[ -z "$(batch_of "$F" y@unmapped.example)" ] || fail "unmapped domain remediated"
[ -z "$(batch_of "$G" old@corp.example)" ] || fail "message older than the window remediated"
# the seed's lines, exact
has mail_logs "Info: Message $A was initiated for 'Delete' remedial action by 'Mailbox Remediation' from source 'URL retrospection' in batch '$UUID1'." ||
    fail "initiated line: $(cat "$LOGS/mail_logs")"
has mail_logs "Info: Message $A was processed due to URL retrospection by Mailbox Remediation with 'Delete' remedial action for recipient alice@corp.example. Profile used to remediate: o365 onprem Remediation status: Remediated." ||
    fail "processed line: $(cat "$LOGS/mail_logs")"
has remediation "Info: MID: $B Message deleted successfully from carol@corp.example mailbox." || fail "remediation line: $(cat "$LOGS/remediation")"
has remediation "Info: MID: $B Remediation succeeded with \`o365 onprem\` profile for recipient carol@corp.example." ||
    fail "remediation line 2"
grep -qE '^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} [0-9]{4} Info: Message ' "$LOGS/mail_logs" || fail "seed time format"
[ "$(lines mail_logs "was initiated")" = 2 ] || fail "initiated lines: one per message expected"
# the summary, with what was left out and why
has ecs "URL retrospection verdict from feed 'retro': url 'https://login.evil.example/pay?id=7' is malicious: 4 messages matched (3 carry it, 0 by email id, 1 by the same subject); 3 jobs in batch '$UUID1'; 1 delivered more than 3600s ago: not remediated; 1 recipients in no [domains] mapping: not remediated; 1 recipients with action none: not remediated." ||
    fail "summary: $(grep -F "$UUID1" "$LOGS/ecs")"
# batch and states
wait_until 10 "3 remediated in the batch" test "$(bfield "$UUID1" remediated)" = 3
[ "$(bfield "$UUID1" jobs)" = 3 ] && [ "$(bfield "$UUID1" messages)" = 2 ] || fail "batch counts"
[ "$(state_of "$A" alice@corp.example)" = remediated ] || fail "state of A"
"${CB[@]}" batch "$UUID1" >"$WORK/batch.txt" || fail "clawback batch"
grep -q "done: 3 of 3" "$WORK/batch.txt" && grep -qE "^$B +carol@corp.example +remediated" "$WORK/batch.txt" ||
    fail "batch output: $(cat "$WORK/batch.txt")"
# JSON lines for a SIEM
grep -F "\"mid\":$A," "$WORK/events.json" | grep -q '"log":"remediation"' || fail "JSON lines"
echo ok

echo "== clawback track: processing details and last state"
TZ=UTC "${CB[@]}" track "$A" >"$WORK/track.txt" || fail "track"
grep -q "^Message ID Header <" "$WORK/track.txt" || fail "track header"
grep -qE "^- [0-9:]{8} ● Message $A carries URL 'https://login.evil.example/pay\?id=7' that feed 'retro' found malicious \(URL retrospection\); remediation initiated in batch '$UUID1'.$" "$WORK/track.txt" ||
    fail "track: matched line: $(cat "$WORK/track.txt")"
grep -q "● Message $A was initiated for 'Delete'" "$WORK/track.txt" || fail "track: initiated"
[ "$(grep -c "● Message $A was processed due to URL retrospection" "$WORK/track.txt")" = 2 ] || fail "track: processed x2"
grep -A1 '^Last State' "$WORK/track.txt" | grep -qx ' Remediated' || fail "track: last state: $(cat "$WORK/track.txt")"
# lines in time order: delivery first, then match, initiated, processed
awk '/● Message .* direction/{d=NR} /carries URL/{m=NR} /was initiated/{i=NR} /was processed/{p=NR} END{exit !(d<m && m<i && i<p)}' "$WORK/track.txt" ||
    fail "track order: $(cat "$WORK/track.txt")"
TZ=UTC "${CB[@]}" track "$C" | grep -A1 '^Last State' | grep -qx ' Delivered' || fail "track of an untouched message"
"${CB[@]}" track 999999 2>/dev/null && fail "track of an unknown MID succeeded"
echo ok

echo "== duplicates: the same verdict again, another feed on the same URL"
verdict --id v-url-1 --feed retro --value "$U1"
verdict --id v-url-2 --feed urlhaus --value "$U1"
UUID2=$(verdict_batch v-url-2)
wait_until 20 "the second feed's summary" has ecs "from feed 'urlhaus'"
grep -F "from feed 'urlhaus'" "$LOGS/ecs" | grep -qF "; nothing to remediate;" || fail "repeat summary"
grep -F "from feed 'urlhaus'" "$LOGS/ecs" | grep -qF "3 copies already remediated" || fail "summary of the repeat: $(grep -F urlhaus "$LOGS/ecs")"
[ "$(answered)" = 3 ] || fail "a repeat created jobs: $(answered)"
[ -z "$(rcli exists "cb:batch:$UUID2" | grep 1)" ] || fail "a batch without jobs was created"
echo ok

echo "== email_id, the subject guards, the verdict age, the allowlist, dispositions"
EID=$(email_id_of "$H")
verdict --id v-eid --feed retro --value "http://never-delivered.example/" --email-id "$(echo "$EID" | tr a-f A-F)"
wait_until 20 "the email_id job" at_least 4 answered
[ "$(batch_of "$H" boss@fwd.example)" = "$(verdict_batch v-eid)" ] || fail "email_id match"
wait_until 10 "forward_delete lines" has remediation "MID: $H Message forwarded successfully from boss@fwd.example mailbox to soc@example.net."
has mail_logs "Message $H was processed due to URL retrospection by Mailbox Remediation with 'Forward and Delete' remedial action for recipient boss@fwd.example. Profile used to remediate: imap_fwd Remediation status: Remediated." ||
    fail "forward and delete line"
# a common subject (more than subject_max = 3 messages) and an empty one never expand
U4="http://common.example/hello"
for i in 1 2 3 4; do ingest "$(msg "$WORK/hello$i.eml" "Hello" "h$i@corp.example" -; echo "$WORK/hello$i.eml")" >/dev/null; done
HU=$(ingest "$(msg "$WORK/hello5.eml" "Hello" "h5@corp.example" "$U4"; echo "$WORK/hello5.eml")")
ingest "$(msg "$WORK/nosub1.eml" "" "n1@corp.example" -; echo "$WORK/nosub1.eml")" >/dev/null
NS=$(ingest "$(msg "$WORK/nosub2.eml" "" "n2@corp.example" "http://nosubject.example/"; echo "$WORK/nosub2.eml")")
verdict --id v-common --value "$U4"
verdict --id v-nosub --value "http://nosubject.example/"
wait_until 20 "two more jobs" at_least 6 answered
wait_until 10 "both summaries" has ecs "url 'http://nosubject.example/'"
[ "$(answered)" = 6 ] || fail "the guards let a subject expand: $(answered) jobs"
has ecs "subject 'hello' is carried by more than 3 messages: not expanded" || fail "common subject note"
[ "$(batch_of "$HU" h5@corp.example)" = "$(verdict_batch v-common)" ] && [ "$(batch_of "$NS" n2@corp.example)" = "$(verdict_batch v-nosub)" ] ||
    fail "the URL's own messages"
# a URL first observed more than 7 days ago
OLD=$(ingest "$(msg "$WORK/old.eml" "Aged" "aged@corp.example" "http://aged.example/"; echo "$WORK/old.eml")")
verdict --id v-aged --value "http://aged.example/" --observed-ms $(($(now_ms) - 8 * 86400 * 1000))
wait_until 20 "the age line" has ecs "on url 'http://aged.example/' not acted on: first observed"
has ecs "more than [enricher] max_verdict_age (604800s)." || fail "age line"
# allowlisted domain, a clean verdict, a domain verdict
AL=$(ingest "$(msg "$WORK/al.eml" "Partner" "p@corp.example" "https://sso.partner.example/login"; echo "$WORK/al.eml")")
verdict --id v-allow --value "https://sso.partner.example/login"
verdict --id v-clean --value "http://aged.example/" --disposition clean
DM=$(ingest "$(msg "$WORK/dm.eml" "Domain" "dm@corp.example" "http://www.bad-domain.example/a"; echo "$WORK/dm.eml")")
verdict --id v-domain --type domain --value "Bad-Domain.example."
wait_until 20 "the domain verdict's job" at_least 7 answered
wait_until 10 "the allowlist line" has ecs "not acted on: allowlisted (domain partner.example)."
[ -z "$(batch_of "$OLD" aged@corp.example)" ] && [ -z "$(batch_of "$AL" p@corp.example)" ] || fail "aged or allowlisted acted on"
[ "$(batch_of "$DM" dm@corp.example)" = "$(verdict_batch v-domain)" ] || fail "domain verdict"
sleep 0.5 # a clean verdict produces nothing to wait for; give it the time the others took
[ "$(answered)" = 7 ] || fail "$(answered) jobs after the guards, expected 7"
echo ok

echo "== a failed copy is released, a not-found one is final"
GONE=$(ingest "$(msg "$WORK/gone.eml" "Gone" "gone@corp.example, broken@corp.example" "http://gone.example/"; echo "$WORK/gone.eml")")
verdict --id v-gone --value "http://gone.example/"
wait_until 20 "two results" at_least 9 answered
wait_until 10 "the failure line" has remediation "MID: $GONE Remediation failed with \`o365 onprem\` profile for recipient broken@corp.example: IMAP NO [AUTHENTICATIONFAILED] Authentication failed."
has remediation "MID: $GONE Message not found in gone@corp.example mailbox." || fail "not found line"
has mail_logs "recipient gone@corp.example. Profile used to remediate: o365 onprem Remediation status: Not found." || fail "not found status"
wait_until 10 "the claim released" test -z "$(batch_of "$GONE" broken@corp.example)"
[ "$(state_of "$GONE" broken@corp.example)" = failed ] && [ "$(state_of "$GONE" gone@corp.example)" = not_found ] || fail "states"
TZ=UTC "${CB[@]}" track "$GONE" | grep -A1 '^Last State' | grep -q 'Not found (gone@corp.example), Remediation failed (broken@corp.example)' ||
    fail "mixed last state: $("${CB[@]}" track "$GONE")"
# another verdict tries the failed copy again, not the not-found one
verdict --id v-gone-2 --feed other --value "http://gone.example/"
wait_until 20 "the retry" at_least 10 answered
RETRY=$(verdict_batch v-gone-2)
[ -n "$(rcli hget "cb:batch:$RETRY:jobs" "$GONE broken@corp.example")" ] || fail "the failed copy was not retried"
[ -z "$(rcli hget "cb:batch:$RETRY:jobs" "$GONE gone@corp.example")" ] || fail "the not-found copy was retried"
[ "$(answered)" = 10 ] || fail "$(answered) jobs: only the failed copy should be retried"
echo ok

echo "== on-demand remediation: by MID and by query"
UA=$("${CB[@]}" remediate --action forward --by admin --source CTR "$C" 2>"$WORK/rem.err") || fail "remediate: $(cat "$WORK/rem.err")"
wait_until 20 "the admin job" at_least 11 answered
wait_until 10 "the admin processed line" has mail_logs "Message $C was processed with 'Forward' remedial action for recipient 'dave@corp.example' in batch '$UA'. Remediation status: Remediated."
has mail_logs "Info: Message $C was initiated for 'Forward' remedial action by 'admin' from source 'CTR' in batch '$UA'." || fail "admin initiated line"
grep -q "batch $UA: 1 jobs for 1 messages (Forward by admin from source CTR)" "$WORK/rem.err" || fail "remediate summary: $(cat "$WORK/rem.err")"
UQ=$("${CB[@]}" remediate --action delete --by soc --query 'email_subject:"hello"' 2>"$WORK/remq.err") || fail "remediate --query: $(cat "$WORK/remq.err")"
wait_until 20 "the query's 5 jobs" at_least 16 answered
[ "$(bfield "$UQ" jobs)" = 5 ] && [ "$(bfield "$UQ" initiator)" = soc ] || fail "query batch"
"${CB[@]}" remediate --action purge --by x 1 2>/dev/null; [ $? = 2 ] || fail "a bad action is a usage error"
"${CB[@]}" remediate --action delete 1 2>/dev/null; [ $? = 2 ] || fail "--by is required"
echo ok

echo "== the approval cap: held, approved, rejected"
stop_clean enricher
APPROVAL=2 write_conf
spawn enricher "$BIN/clawback-enricher" -c "$CONF"
for i in 1 2 3; do ingest "$(msg "$WORK/cap$i.eml" "Cap $i" "cap$i@corp.example" "http://cap.example/"; echo "$WORK/cap$i.eml")" >/dev/null; done
for i in 1 2 3; do ingest "$(msg "$WORK/rej$i.eml" "Rej $i" "rej$i@corp.example" "http://rej.example/"; echo "$WORK/rej$i.eml")" >/dev/null; done
before=$(answered)
verdict --id v-cap --value "http://cap.example/"
verdict --id v-rej --value "http://rej.example/"
UC=$(verdict_batch v-cap)
UR=$(verdict_batch v-rej)
wait_until 20 "both batches held" test "$(bfield "$UR" complete)" = 1
[ "$(bfield "$UC" state)" = awaiting_approval ] && [ "$(rcli llen "cb:batch:$UC:held")" = 3 ] || fail "held batch"
has ecs "Batch '$UC' waits for an operator: 3 messages is more than [enricher] approval_threshold 2 (clawback approve $UC, or clawback reject $UC)." ||
    fail "held line"
[ "$(answered)" = "$before" ] || fail "a held batch's jobs went out"
"${CB[@]}" batch "$UC" | grep -qE " held$" || fail "held job state"
"${CB[@]}" approve "$UC" --by carol >"$WORK/approve.out" || fail "approve"
grep -q "batch $UC approved by carol: 3 jobs initiated" "$WORK/approve.out" || fail "approve output: $(cat "$WORK/approve.out")"
wait_until 20 "the approved jobs" at_least $((before + 3)) answered
has mail_logs "was initiated for 'Delete' remedial action by 'carol' from source 'URL retrospection' in batch '$UC'." || fail "approved initiated line"
"${CB[@]}" approve "$UC" --by carol 2>/dev/null && fail "approving twice succeeded"
"${CB[@]}" reject "$UR" --by carol >/dev/null || fail "reject"
[ "$(bfield "$UR" state)" = rejected ] && [ "$(bfield "$UR" rejected_by)" = carol ] || fail "rejected state"
RJ=$("${CB[@]}" search --json 'rcpt:rej1@corp.example' | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["mid"])')
[ -z "$(batch_of "$RJ" rej1@corp.example)" ] && [ "$(state_of "$RJ" rej1@corp.example)" = rejected ] || fail "rejected copy not released"
has mail_logs "Message $RJ was not remediated: batch '$UR' was rejected by 'carol'." || fail "reject line"
sleep 0.5
[ "$(answered)" = $((before + 3)) ] || fail "rejected jobs went out"
echo ok

echo "== 1,200 messages: two enrichers and two feeds at once, one enricher killed mid fan-out, the logger restarted mid-batch"
stop_clean enricher
# a small max_waiting makes the fan-out wait for the remediator, so the kill lands in its middle
APPROVAL=0 write_conf
printf '[bus]\nmax_waiting = 300\n' >>"$CONF"
mkdir -p "$WORK/many/new" "$WORK/many/cur" "$WORK/many/tmp"
for i in $(seq 1 1200); do
    printf 'Message-ID: <many%d@outside.example>\nFrom: s@outside.example\nTo: u%d@corp.example\nSubject: Batch %d\n\nhttp://many.example/x\n' "$i" "$i" "$i" >"$WORK/many/new/$i.eml"
done
"${CB[@]}" ingest "$WORK/many" >/dev/null || fail "ingest many"
before=$(answered)
spawn enricher "$BIN/clawback-enricher" -c "$CONF"
spawn enricher2 "$BIN/clawback-enricher" -c "$CONF"
verdict --id v-many-1 --feed f1 --value "http://many.example/x"
verdict --id v-many-2 --feed f2 --value "http://many.example/x"
wait_until 30 "the first jobs" at_least $((before + 1)) answered
kill_hard enricher
wait_until 30 "some results logged" at_least 50 lines mail_logs "@corp.example. Profile used to remediate: o365 onprem Remediation status: Remediated."
stop_clean logger
spawn enricher "$BIN/clawback-enricher" -c "$CONF"
wait_until 30 "results waiting for the stopped logger" at_least 1 xlen results
spawn logger "$BIN/clawback-logger" -c "$CONF"
wait_until 90 "1,200 more jobs" at_least $((before + 1200)) answered
M1=$(verdict_batch v-many-1)
M2=$(verdict_batch v-many-2)
total() { local a b; a=$(bfield "$M1" "$1"); b=$(bfield "$M2" "$1"); echo $((${a:-0} + ${b:-0})); }
wait_until 60 "1,200 remediated in the two batches" test "$(total remediated)" = 1200
sleep 0.5 # nothing more may come
[ "$(answered)" = $((before + 1200)) ] || fail "$(($(answered) - before)) jobs for 1,200 copies"
[ "$(total jobs)" = 1200 ] || fail "batches hold $(total jobs) jobs"
# every copy's lines are in the seed's logs (a restart may repeat a line, never lose one)
for i in 1 600 1200; do
    has mail_logs "remedial action for recipient u$i@corp.example. Profile used to remediate: o365 onprem Remediation status: Remediated." ||
        fail "processed line of u$i"
done
[ "$(grep -oE 'recipient u[0-9]+@corp.example. Profile' "$LOGS/mail_logs" | sort -u | wc -l)" = 1200 ] || fail "processed lines lost"
[ "$(grep -oE 'MID: [0-9]+ Message deleted successfully from u[0-9]+@corp' "$LOGS/remediation" | sort -u | wc -l)" = 1200 ] ||
    fail "remediation lines lost"
[ "$(grep -cE "was initiated for 'Delete' remedial action by 'Mailbox Remediation' from source 'URL retrospection' in batch '($M1|$M2)'" "$LOGS/mail_logs")" -ge 1200 ] ||
    fail "initiated lines lost"
echo ok

echo "== no sanitizer report; graceful stops exit 0"
for p in enricher enricher2 logger answer dispatch; do stop_clean $p; done
if grep -l "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$WORK"/*.err 2>/dev/null; then fail "sanitizer report"; fi
echo ok
