#!/bin/bash
# test_imap.sh - the IMAP back-end (remediator/imap.c) against a real Dovecot, with mail
# delivered through a real Postfix: find (exact Message-ID, every folder), remove (quarantine,
# permanent), forward (through Postfix to the SOC mailbox), forward-remove, the failures
# (wrong admin password, no smtp_url, server down), the reuse of connections, TLS as profiles
# have it by default (STARTTLS required, the certificate verified against ca_file; nothing is
# sent to a server that fails either) and login = direct.
# Driven by backend_cli; checked with imap_check.py.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mailstack.sh"
CLI="$TOOLS/backend_cli"

start_dovecot alice@example.com bob@example.com soc@example.com
start_postfix
echo "ok: dovecot imap $IMAP_PORT lmtp $LMTP_PORT, postfix smtp $SMTP_PORT"

# write_profile NAME PASSWORD_FILE EXTRA... - a [profile NAME] section of the test's config.
write_profile() {
    local name=$1 pwfile=$2
    shift 2
    printf '[profile %s]\ntype = imap\nurl = imap://127.0.0.1:%s\nusername = admin\npassword_file = %s\n' \
        "$name" "$IMAP_PORT" "$pwfile"
    printf 'login = master\ntls_verify = no\ntimeout = 10s\nforward_from = clawback@example.com\n'
    printf '%s\n' "$@"
    echo
}
echo adminpw >"$WORK/admin.pw"
echo Wr0ngSecret >"$WORK/wrong.pw"
CONF="$WORK/clawback.conf"
# write_conf - the test's profiles, for the current IMAP_PORT and SMTP_PORT.
write_conf() {
    {
        write_profile dovecot "$WORK/admin.pw" "forward_to = soc@example.com" "smtp_url = smtp://127.0.0.1:$SMTP_PORT"
        write_profile permanent "$WORK/admin.pw" "delete = permanent"
        write_profile nosmtp "$WORK/admin.pw" "forward_to = soc@example.com"
        write_profile badpw "$WORK/wrong.pw"
        write_profile authzid "$WORK/admin.pw" "login = authzid"
    } >"$CONF"
}
write_conf

# message FILE MESSAGE-ID SUBJECT - write a small message.
message() {
    printf 'From: Mallory <mallory@evil.test>\r\nTo: victim@example.com\r\nSubject: %s\r\nMessage-ID: %s\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nPlease log in at http://evil.test/login\r\n' \
        "$3" "$2" >"$1"
}

# cli EXIT ARGS... - run backend_cli, output in $WORK/cli.out (shown); fail unless it exits EXIT.
cli() {
    local want=$1 rc=0
    shift
    "$CLI" -c "$CONF" "$@" >"$WORK/cli.out" 2>&1 || rc=$?
    sed 's/^/    /' "$WORK/cli.out"
    [ "$rc" = "$want" ] || fail "backend_cli $* exited $rc, expected $want"
}
out_has() { grep -q -- "$1" "$WORK/cli.out" || fail "backend_cli output lacks '$1'"; }

# the mail: phish-1 (and a decoy whose Message-ID contains phish-1's), a benign message, and
# one message per later case
message "$WORK/phish1.eml" "<phish-1@evil.test>" "Urgent: verify your account"
message "$WORK/decoy.eml" "<phish-1@evil.test>.decoy" "Decoy"
message "$WORK/hello.eml" "<hello-1@example.org>" "Lunch?"
message "$WORK/phish4.eml" "<phish-4@evil.test>" "Forward and remove me"
message "$WORK/phish5.eml" "<phish-5@evil.test>" "Remove me for good"
printf 'From: mallory@evil.test\r\nTo: bob@example.com\r\nSubject: =?UTF-8?B?SW52b2ljZQ==?= overdue\r\n  payment\r\nMessage-ID: <phish-3@evil.test>\r\nX-Original-Marker: untouched-original\r\n\r\nPay now.\r\n' \
    >"$WORK/phish3.eml"
for m in phish1 decoy hello phish4 phish5; do send_mail mallory@evil.test alice@example.com "$WORK/$m.eml"; done
send_mail mallory@evil.test bob@example.com "$WORK/phish3.eml"
wait_delivered alice@example.com 5
wait_delivered bob@example.com 1
imap_check --user alice@example.com copy-to INBOX "<phish-1@evil.test>" Archive
wait_delivered alice@example.com 1 Archive
echo "ok: delivered through postfix and lmtp; phish-1 copied to Archive"

echo "== find"
cli 0 --profile dovecot find --mailbox alice@example.com --message-id "<phish-1@evil.test>"
out_has "find: ok: 2 copies"
cli 3 --profile dovecot find --mailbox alice@example.com --message-id "<nothing@evil.test>"
out_has "find: not_found"
cli 4 --profile dovecot find --mailbox alice@example.com --message-id "<bad
line@evil.test>"
cli 0 --profile authzid find --mailbox alice@example.com --message-id "<phish-1@evil.test>"
out_has "find: ok: 2 copies"
echo "ok: exact Message-ID in two folders (the decoy not counted), unknown ones not found, a line break refused;"
echo "ok: the same with SASL PLAIN authzid"

echo "== remove to quarantine"
imap_check --user alice@example.com folders | grep -qx Quarantine && fail "Quarantine exists before the first removal"
cli 0 --profile dovecot remove --mailbox alice@example.com --message-id "<phish-1@evil.test>"
out_has "remove: ok: moved 2 copies"
imap_check --user alice@example.com find "<phish-1@evil.test>" >"$WORK/where"
[ "$(grep -c '^Quarantine ' "$WORK/where")" = 2 ] || fail "phish-1 not twice in Quarantine: $(cat "$WORK/where")"
grep -v '^Quarantine ' "$WORK/where" && fail "phish-1 left outside Quarantine"
imap_check --user alice@example.com count-is INBOX 4 || fail "INBOX should keep its 4 other messages"
imap_check --user alice@example.com count-is Archive 0 || fail "Archive should be empty"
imap_check --user alice@example.com find "<phish-1@evil.test>.decoy" >/dev/null || fail "the decoy was moved"
cli 3 --profile dovecot find --mailbox alice@example.com --message-id "<phish-1@evil.test>"
cli 3 --profile dovecot remove --mailbox alice@example.com --message-id "<phish-1@evil.test>"
echo "ok: both copies in the Quarantine folder created on first use, nothing else moved; then not found"

echo "== remove permanently"
imap_check --user alice@example.com add-flag INBOX "<hello-1@example.org>" '\Deleted'
cli 0 --profile permanent remove --mailbox alice@example.com --message-id "<phish-5@evil.test>"
out_has "remove: ok: deleted 1 copy"
imap_check --user alice@example.com find "<phish-5@evil.test>" && fail "phish-5 still somewhere"
imap_check --user alice@example.com count-is Quarantine 2 || fail "permanent removal touched Quarantine"
imap_check --user alice@example.com flags INBOX "<hello-1@example.org>" | grep -q 'Deleted' ||
    fail "the message flagged \\Deleted by someone else was expunged"
cli 3 --profile permanent remove --mailbox alice@example.com --message-id "<phish-5@evil.test>"
echo "ok: gone for good, the other \\Deleted message kept (UID EXPUNGE only)"

echo "== forward"
cli 0 --profile dovecot forward --mailbox bob@example.com --message-id "<phish-3@evil.test>" --job-id "job-fwd-1"
out_has "forward: ok"
wait_delivered soc@example.com 1
imap_check --user soc@example.com last INBOX >"$WORK/fwd.eml"
grep -q '^Subject: \[Message Remediated\] =?UTF-8?B?SW52b2ljZQ==?= overdue' "$WORK/fwd.eml" ||
    fail "forwarded subject wrong: $(grep -i '^subject' "$WORK/fwd.eml")"
grep -q '^X-Clawback-Job: job-fwd-1' "$WORK/fwd.eml" || fail "no X-Clawback-Job header"
grep -q '^Content-Type: message/rfc822' "$WORK/fwd.eml" || fail "original not attached as message/rfc822"
grep -q '^X-Original-Marker: untouched-original' "$WORK/fwd.eml" || fail "original headers missing"
grep -q '^Message-ID: <phish-3@evil.test>' "$WORK/fwd.eml" || fail "original Message-ID missing"
imap_check --user bob@example.com count-is INBOX 1 || fail "forward removed bob's message"
echo "ok: soc@example.com got the tagged forward with the original attached; bob's copy stays"

echo "== forward and remove"
cli 0 --profile dovecot forward-remove --mailbox alice@example.com --message-id "<phish-4@evil.test>" \
    --job-id "job-fwd-2"
out_has "remove: ok: moved 1 copy"
wait_delivered soc@example.com 2
imap_check --user soc@example.com last INBOX | grep -q '^Subject: \[Message Remediated\] Forward and remove me' ||
    fail "second forward missing"
imap_check --user alice@example.com find "<phish-4@evil.test>" | grep -q '^Quarantine ' || fail "phish-4 not quarantined"
echo "ok: forwarded, then moved to Quarantine"

echo "== failures"
cli 4 --profile nosmtp forward --mailbox alice@example.com --message-id "<hello-1@example.org>"
out_has "profile nosmtp has no smtp_url"
cli 4 --profile badpw find --mailbox alice@example.com --message-id "<hello-1@example.org>"
out_has "refused"
grep -q -e Wr0ngSecret -e adminpw "$WORK/cli.out" && fail "a password in the output"
cli 4 --profile dovecot find --mailbox nobody@example.com --message-id "<hello-1@example.org>"
out_has "refused"
echo "ok: no smtp_url, a wrong admin password and an unknown mailbox user fail with a detail, no password"

echo "== connection reuse"
logins() { grep -c 'Login: user=<bob@example.com>' "$WORK/dovecot.log"; }
before=$(logins)
cli 0 --profile dovecot find --mailbox bob@example.com --message-id "<phish-3@evil.test>" --repeat 3
[ "$(grep -c '^find: ok' "$WORK/cli.out")" = 3 ] || fail "three finds expected"
wait_until 10 "bob's login in dovecot's log" at_least $((before + 1)) logins
[ "$(logins)" = $((before + 1)) ] || fail "expected one login for three jobs, got $(($(logins) - before))"
echo "ok: three jobs, one login"

echo "== several jobs of one mailbox together (find_many, remove_many)"
for i in 1 2 3; do
    message "$WORK/batch$i.eml" "<batch-$i@evil.test>" "Batch $i"
    send_mail mallory@evil.test bob@example.com "$WORK/batch$i.eml"
done
message "$WORK/batchdecoy.eml" "<batch-1@evil.test>.decoy" "Batch decoy"
send_mail mallory@evil.test bob@example.com "$WORK/batchdecoy.eml"
wait_delivered bob@example.com 5
imap_check --user bob@example.com copy-to INBOX "<batch-1@evil.test>" Archive
wait_delivered bob@example.com 1 Archive
cli 0 --profile dovecot find --mailbox bob@example.com --message-id "<batch-1@evil.test>" \
    --message-id "<batch-2@evil.test>" --message-id "<nothing@evil.test>" --message-id "<bad
line@evil.test>" --message-id "<batch-3@evil.test>"
out_has "find\[0\]: ok: 2 copies in bob@example.com (2 folders searched)"
out_has "find\[1\]: ok: 1 copy"
out_has "find\[2\]: not_found: no message with Message-ID <nothing@evil.test>"
out_has "find\[3\]: failed: Message-ID is empty or holds a line break"
out_has "find\[4\]: ok: 1 copy"
cli 0 --profile dovecot remove --mailbox bob@example.com --message-id "<batch-1@evil.test>" \
    --message-id "<nothing@evil.test>" --message-id "<batch-2@evil.test>"
out_has "remove\[0\]: ok: moved 2 copies in bob@example.com to Quarantine (0 already gone)"
out_has "remove\[2\]: ok: moved 1 copy in bob@example.com to Quarantine (0 already gone)"
grep -q "remove\[1\]" "$WORK/cli.out" && fail "a job not found was reported removed"
imap_check --user bob@example.com find "<batch-1@evil.test>" >"$WORK/where"
[ "$(grep -c '^Quarantine ' "$WORK/where")" = 2 ] || fail "batch-1 not twice in Quarantine: $(cat "$WORK/where")"
imap_check --user bob@example.com find "<batch-2@evil.test>" | grep -q '^Quarantine ' || fail "batch-2 not quarantined"
imap_check --user bob@example.com find "<batch-1@evil.test>.decoy" | grep -q '^INBOX ' || fail "the decoy moved"
imap_check --user bob@example.com count-is INBOX 3 || fail "INBOX should keep phish-3, batch-3 and the decoy"
imap_check --user bob@example.com count-is Archive 0 || fail "Archive should be empty"
cli 0 --profile permanent remove --mailbox bob@example.com --message-id "<batch-2@evil.test>" \
    --message-id "<batch-1@evil.test>.decoy"
out_has "find\[0\]: not_found"
out_has "remove\[1\]: ok: deleted 1 copy from bob@example.com (0 already gone)"
imap_check --user bob@example.com find "<batch-1@evil.test>.decoy" && fail "the decoy is still there"
imap_check --user bob@example.com find "<batch-2@evil.test>" | grep -q '^Quarantine ' ||
    fail "batch-2 left Quarantine (the quarantine folder is never searched)"
imap_check --user bob@example.com count-is INBOX 2 || fail "INBOX should keep phish-3 and batch-3"
echo "ok: one search per folder for five jobs: exact matches in two folders, the decoy and a missing one told apart;"
echo "ok: removed together to Quarantine and for good, each job with its own outcome, Quarantine not searched"

echo "== server down"
stop_dovecot
cli 5 --profile dovecot find --mailbox alice@example.com --message-id "<hello-1@example.org>"
out_has "session: retry"
echo "ok: retry when the server is unreachable"

echo "== a server without MOVE: UID COPY, UID STORE, UID EXPUNGE"
DOVECOT_EXTRA_CONF="imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS"
start_dovecot alice@example.com bob@example.com soc@example.com
write_conf
imap_check --user alice@example.com capability | grep -qx MOVE && fail "MOVE still announced"
imap_check --user alice@example.com count-is Quarantine 3 || fail "Quarantine should hold 3 messages"
cli 0 --profile dovecot remove --mailbox alice@example.com --message-id "<phish-1@evil.test>.decoy"
out_has "remove: ok: moved 1 copy"
imap_check --user alice@example.com find "<phish-1@evil.test>.decoy" >"$WORK/where"
[ "$(cat "$WORK/where")" = "Quarantine 4" ] || fail "decoy not (only) in Quarantine: $(cat "$WORK/where")"
imap_check --user alice@example.com flags INBOX "<hello-1@example.org>" | grep -q 'Deleted' ||
    fail "the message flagged \\Deleted by someone else was expunged"
echo "ok: moved by copy and expunge of its UID alone; the other \\Deleted message kept"
cli 0 --profile dovecot remove --mailbox bob@example.com --message-id "<phish-3@evil.test>" \
    --message-id "<batch-3@evil.test>"
out_has "remove\[0\]: ok: moved 1 copy"
out_has "remove\[1\]: ok: moved 1 copy"
imap_check --user bob@example.com count-is INBOX 0 || fail "bob's INBOX should be empty"
imap_check --user bob@example.com find "<batch-3@evil.test>" | grep -q '^Quarantine ' || fail "batch-3 not quarantined"
echo "ok: two jobs moved together by one UID COPY of both and an expunge of exactly those UIDs"

echo "== TLS verified by default: STARTTLS required, the certificate checked against ca_file"
# tls_profile NAME CA_FILE EXTRA... - a profile that leaves tls_verify at its default (on)
tls_profile() {
    local name=$1 ca=$2
    shift 2
    printf '[profile %s]\ntype = imap\nurl = imap://127.0.0.1:%s\nusername = admin\npassword_file = %s\n' \
        "$name" "$IMAP_PORT" "$WORK/admin.pw"
    printf 'login = master\ntimeout = 10s\n'
    [ -n "$ca" ] && printf 'ca_file = %s\n' "$ca"
    printf '%s\n' "$@"
    echo
}
logins_of() { grep -c "Login: user=<$1>" "$WORK/dovecot.log"; }
# this Dovecot offers no STARTTLS: a verifying profile must refuse to log in in clear
write_conf
tls_profile cleartext "" >>"$CONF"
before=$(logins_of alice@example.com)
cli 4 --profile cleartext find --mailbox alice@example.com --message-id "<hello-1@example.org>"
out_has "TLS: "
[ "$(logins_of alice@example.com)" = "$before" ] || fail "logged in without TLS"
echo "ok: no STARTTLS offered: Failed with a TLS reason, no login sent"
stop_dovecot
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$WORK/imap-tls.key" -out "$WORK/imap-tls.pem" >/dev/null 2>&1 || fail "openssl (server)"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$WORK/other.key" -out "$WORK/other.pem" >/dev/null 2>&1 || fail "openssl (other)"
DOVECOT_EXTRA_CONF="ssl = yes
ssl_cert = <$WORK/imap-tls.pem
ssl_key = <$WORK/imap-tls.key"
start_dovecot alice@example.com bob@example.com soc@example.com
echo pw >"$WORK/alice.pw"
write_conf
{
    tls_profile tls "$WORK/imap-tls.pem"
    tls_profile othertrust "$WORK/other.pem"
    tls_profile systemtrust ""
    printf '[profile direct]\ntype = imap\nurl = imap://127.0.0.1:%s\nusername = alice@example.com\n' "$IMAP_PORT"
    printf 'password_file = %s\nlogin = direct\nca_file = %s\ntimeout = 10s\n\n' "$WORK/alice.pw" "$WORK/imap-tls.pem"
} >>"$CONF"
before=$(logins_of alice@example.com)
cli 0 --profile tls find --mailbox alice@example.com --message-id "<hello-1@example.org>"
out_has "find: ok"
wait_until 10 "alice's TLS login in dovecot's log" at_least $((before + 1)) logins_of alice@example.com
grep "Login: user=<alice@example.com>" "$WORK/dovecot.log" | tail -n 1 | grep -q "TLS" ||
    fail "the login was not over TLS: $(grep 'Login: user=<alice' "$WORK/dovecot.log" | tail -n 1)"
echo "ok: STARTTLS, certificate verified against ca_file, then the login"
before=$(logins_of alice@example.com)
for p in othertrust systemtrust; do
    cli 4 --profile "$p" find --mailbox alice@example.com --message-id "<hello-1@example.org>"
    out_has "TLS: "
done
[ "$(logins_of alice@example.com)" = "$before" ] || fail "logged in over a connection whose certificate failed"
echo "ok: a certificate no trusted CA signed (another ca_file, the system's CAs): Failed, no login sent"

echo "== login = direct: the profile's own account, that mailbox only"
before=$(logins_of alice@example.com)
cli 0 --profile direct find --mailbox alice@example.com --message-id "<hello-1@example.org>"
out_has "find: ok"
wait_until 10 "alice's direct login" at_least $((before + 1)) logins_of alice@example.com
grep "Login: user=<alice@example.com>" "$WORK/dovecot.log" | tail -n 1 | grep -q "TLS" || fail "direct login not over TLS"
cli 4 --profile direct find --mailbox bob@example.com --message-id "<phish-3@evil.test>"
out_has "logs in directly as alice@example.com: it cannot reach mailbox bob@example.com"
echo "ok: direct login finds in its own mailbox and refuses another's"
echo "PASS"
