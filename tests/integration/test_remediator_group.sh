#!/bin/bash
# test_remediator_group.sh - the remediator hands a mailbox's waiting Delete jobs to the IMAP
# back-end together (remediate.c remediate_take / remediate_run_group, imap.c find_many and
# remove_many), against a real Dovecot: every job still gets its own outcome (remediated,
# not found), a copy in a second folder is moved too, a profile chain whose first profile
# cannot log in falls through to the next for the whole group, and nothing else moves. Then a
# mailbox whose server never answers: retried with backoff until give_up_after, then Failed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mailstack.sh"
USERS=(u1@example.com u2@example.com u3@example.com)
PER=12
start_redis
DOVECOT_EXTRA_CONF="auth_failure_delay = 0"
start_dovecot "${USERS[@]}"
echo "ok: redis $REDIS_PORT, dovecot imap $IMAP_PORT lmtp $LMTP_PORT"

echo "== deliver $PER messages to remove and 2 to keep per mailbox (LMTP), index them"
python3 - "$LMTP_PORT" "$WORK/mail-in" "$PER" "${USERS[@]}" <<'EOF' || fail "LMTP delivery"
import os, smtplib, sys
port, outdir, per, users = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
lmtp = smtplib.LMTP("127.0.0.1", port)
for u in users:
    os.makedirs(os.path.join(outdir, u), exist_ok=True)
    for kind, n in (("grp", per), ("keep", 2)):
        for i in range(n):
            url = f"http://grp.example/{i}" if kind == "grp" else f"http://fine.example/{i}"
            msg = (f"Message-ID: <{kind}-{i}.{u}>\r\nFrom: sender@outside.example\r\nTo: {u}\r\n"
                   f"Subject: {kind} {i} for {u}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nSee {url}\r\n")
            lmtp.sendmail("sender@outside.example", [u], msg)
            with open(os.path.join(outdir, u, f"{kind}-{i}.eml"), "w") as f:
                f.write(msg)
lmtp.quit()
EOF
for u in "${USERS[@]}"; do wait_delivered "$u" $((PER + 2)); done
echo wrong >"$WORK/wrong.pw"
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
workers = 2
backoff_min = 100ms
backoff_max = 400ms
give_up_after = 2s
[domains all]
domains = example.com
action = delete
profile = wrongpw dovecot
[domains gone]
domains = gone.example
action = delete
profile = down
$(dovecot_profile dovecot "timeout = 10s")
[profile wrongpw]
type = imap
url = imap://127.0.0.1:$IMAP_PORT
username = admin
password_file = $WORK/wrong.pw
login = master
tls_verify = no
[profile down]
type = imap
url = imap://127.0.0.1:$(free_port)
username = admin
password_file = $WORK/wrong.pw
login = master
tls_verify = no
timeout = 1s
EOF
for u in "${USERS[@]}"; do
    "$BIN/clawback" -c "$CONF" ingest --rcpt "$u" "$WORK/mail-in/$u" >/dev/null || fail "ingest $u"
done
# u1's grp-0 also in a second folder; u2's grp-1 gone before the remediation (not found)
imap_check --user u1@example.com copy-to INBOX "<grp-0.u1@example.com>" Archive
wait_delivered u1@example.com 1 Archive
doveadm -c "$DOVECOT_CONF" expunge -u u2@example.com mailbox INBOX header message-id "<grp-1.u2@example.com>" ||
    fail "doveadm expunge"
echo "ok: $((3 * (PER + 2))) messages delivered and indexed"

echo "== remediate every grp message at once"
spawn enricher "$BIN/clawback-enricher" -c "$CONF"
spawn remediator "$BIN/clawback-remediator" -c "$CONF"
wait_until 30 "the remediator to connect" grep -q "jobs: connected to dispatcher" "$WORK/remediator.err"
"$BIN/clawback" -c "$CONF" remediate --action delete --by test --limit 1000 --query 'domain:"grp.example"' \
    >/dev/null || fail "remediate"
TOTAL=$((3 * PER))
outcomes() { [ "$(grep -c "remediator: job .* after [0-9]* attempt" "$WORK/remediator.err")" -ge "$TOTAL" ]; }
wait_until 60 "$TOTAL job outcomes" outcomes
grep "remediator: job " "$WORK/remediator.err" | grep -v "remediated with profile 'dovecot' after 1 attempt" |
    grep -v "MID [0-9]*, delete for u2@example.com): not_found" && fail "an unexpected outcome"
[ "$(grep -c "remediated with profile 'dovecot' after 1 attempt" "$WORK/remediator.err")" = $((TOTAL - 1)) ] ||
    fail "expected $((TOTAL - 1)) remediated"
grep "not_found" "$WORK/remediator.err" | grep -q "wrongpw: .*refused.*; dovecot: no message with Message-ID <grp-1.u2@example.com>" ||
    fail "the job not found should say what each profile of the chain said"
grep -q "u1@example.com): remediated .*: moved 2 copies in u1@example.com to Quarantine" "$WORK/remediator.err" ||
    fail "u1's grp-0 should have been moved from both folders"
grep -o "remediator: [0-9]* Delete jobs of" "$WORK/remediator.err" | awk '$2 > 1 { found = 1 } END { exit !found }' ||
    fail "no jobs were taken together"
echo "ok: $((TOTAL - 1)) remediated through the chain's second profile, 1 not found, taken together:"
grep -o "[0-9]* Delete jobs of [^ ]*" "$WORK/remediator.err" | sort | uniq -c | sed 's/^/    /'

echo "== the mailboxes, through IMAP"
for u in "${USERS[@]}"; do
    imap_check --user "$u" count-is INBOX 2 || fail "$u's INBOX should keep its 2 other messages"
    for i in 0 1; do
        imap_check --user "$u" find "<keep-$i.$u>" | grep -q '^INBOX ' || fail "keep-$i moved in $u"
    done
done
imap_check --user u1@example.com count-is Quarantine $((PER + 1)) || fail "u1's Quarantine should hold $((PER + 1))"
imap_check --user u2@example.com count-is Quarantine $((PER - 1)) || fail "u2's Quarantine should hold $((PER - 1))"
imap_check --user u3@example.com count-is Quarantine "$PER" || fail "u3's Quarantine should hold $PER"
imap_check --user u1@example.com count-is Archive 0 || fail "u1's Archive should be empty"
echo "ok: every grp copy in Quarantine, the others where they were"

echo "== a mailbox whose server is down: retried, then given up"
"$BIN/clawback" -c "$CONF" ingest --rcpt u9@gone.example "$WORK/mail-in/u1@example.com/keep-0.eml" >/dev/null ||
    fail "ingest for gone.example"
"$BIN/clawback" -c "$CONF" remediate --action delete --by test --query 'rcpt:"u9@gone.example"' >/dev/null ||
    fail "remediate u9"
wait_until 30 "the job to be given up" grep -q "delete for u9@gone.example): failed with profile 'down' after [0-9]* attempts: gave up after" "$WORK/remediator.err"
[ "$(grep -c "(MID [0-9]*, u9@gone.example): attempt [0-9]* failed for now, again in" "$WORK/remediator.err")" -ge 2 ] ||
    fail "expected at least two retries before giving up"
# given up as soon as the next try would fall past give_up_after (2s), not after waiting for it
# (the seconds spent may reach 2: the last attempt can end after the deadline it began before)
grep "delete for u9@gone.example): failed" "$WORK/remediator.err" |
    grep -q "gave up after [0-9]* attempts in [012]s (the next, in [0-9]*s, would be past \[remediator\] give_up_after)" ||
    fail "not given up before give_up_after ran out: $(grep "u9@gone.example): failed" "$WORK/remediator.err")"
echo "ok: $(grep -c "u9@gone.example): attempt" "$WORK/remediator.err") retries with backoff, then Failed: $(grep -o "gave up after [0-9]* attempts in [0-9]*s (the next[^)]*)" "$WORK/remediator.err" | head -1)"

kill -TERM "$(pid_of enricher)" "$(pid_of remediator)"
wait_until 15 "the daemons to stop" eval '! alive enricher && ! alive remediator'
grep -q "ERROR: AddressSanitizer\|runtime error" "$WORK"/*.err && fail "sanitizer report"
echo "PASS"
