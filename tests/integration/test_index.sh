#!/usr/bin/env bash
# test_index.sh - the 7-day index with a real redis-server: `clawback ingest` of files,
# maildirs and mboxes, `clawback search` by every observable kind, a value shared by many
# messages, concurrent ingesters getting unique MIDs, expiry with a short retention, and a
# Redis killed in the middle of an ingest.
source "$(dirname "$0")/lib.sh"

start_redis --appendonly yes --appendfsync always
CONF="$WORK/clawback.conf"
cat >"$CONF" <<EOC
[log]
level = warning
[index]
retention = 168h
EOC
CB=("$BIN/clawback" -c "$CONF" --redis "$REDIS_URL")

# pyq JSON_FILE EXPR - print a Python expression over the parsed JSON `r` (a tuple prints space-separated)
pyq() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }

echo "== ingest a message, find it by every observable"
mkdir -p "$WORK/maildir/cur" "$WORK/maildir/new" "$WORK/maildir/tmp"
cat >"$WORK/maildir/new/1.eml" <<'EOM'
Received: from mail.attacker.example (mail.attacker.example [198.51.100.77])
	by mx.example.com (Postfix) with ESMTP id 4F040440F0
Message-ID: <123-abc-456@cisco.com>
From: "Billing" <NoReply@Cisco.com>
To: victim@example.com
Subject: =?UTF-8?Q?Invoice_Due?=
Date: Mon, 23 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/html; charset=utf-8

<a href="https://login.evil-payments.co.uk/pay?id=7">pay now</a>
--b
Content-Type: application/pdf
Content-Disposition: attachment; filename="Invoice.pdf"
Content-Transfer-Encoding: base64

aGVsbG8K
--b--
EOM
echo "garbage that is not mail" >"$WORK/maildir/new/2.eml"
"${CB[@]}" ingest --json --rcpt victim@example.com --rcpt second@example.com "$WORK/maildir" >"$WORK/ingest1.json" \
    2>"$WORK/ingest1.err" || fail "ingest failed: $(cat "$WORK/ingest1.err")"
[ "$(pyq "$WORK/ingest1.json" 'r["indexed"], r["failed"]')" = "1 1" ] ||
    fail "expected 1 indexed and 1 failed: $(cat "$WORK/ingest1.json")"
grep -q "2.eml" "$WORK/ingest1.err" || fail "the unparsable file is not reported"
search_count() { # QUERY... -> number of messages found
    "${CB[@]}" search --json "$@" >"$WORK/search.json" 2>"$WORK/search.err" || fail "search $* failed: $(cat "$WORK/search.err")"
    pyq "$WORK/search.json" 'len(r)'
}
for q in 'ip:"198.51.100.77"' 'domain:"cisco.com"' 'domain:"evil-payments.co.uk"' \
    'domain:"login.evil-payments.co.uk"' 'email:"noreply@cisco.com"' 'email:"second@example.com"' \
    'email_messageid:"123-abc-456@cisco.com"' 'email_messageid:"<123-abc-456@cisco.com>"' \
    'email_subject:"invoice  due"' 'sha256:"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"' \
    'file_name:"invoice.pdf"' 'url:"HTTPS://login.evil-payments.co.uk/pay?id=7#x"' \
    'rcpt:"victim@example.com"' 'ip:"198.51.100.77" AND domain:"cisco.com" AND email_subject:"Invoice Due"'; do
    [ "$(search_count $q)" = 1 ] || fail "search $q did not find the message: $(cat "$WORK/search.json")"
done
mid=$(pyq "$WORK/search.json" 'r[0]["mid"]')
email_id=$(pyq "$WORK/search.json" 'r[0]["email_id"]')
[ "$(search_count "cisco_mid:\"$mid\"")" = 1 ] || fail "not found by its MID"
[ "$(search_count "mid:$mid")" = 1 ] || fail "not found by mid:"
[ "$(search_count "email_id:\"$email_id\"")" = 1 ] || fail "not found by its email id"
[ "$(pyq "$WORK/search.json" 'r[0]["recipients"][1]["state"], r[0]["subject"], r[0]["sender_ip"]')" = \
    "delivered Invoice Due 198.51.100.77" ] || fail "record: $(cat "$WORK/search.json")"
for q in 'ip:"198.51.100.78"' 'domain:"cisco.org"' 'email:"victim2@example.com"' 'email_subject:"Invoice"' \
    'rcpt:"noreply@cisco.com"' 'cisco_mid:"999999"' 'ip:"198.51.100.77" AND email_subject:"other"'; do
    [ "$(search_count $q)" = 0 ] || fail "search $q found something"
done
"${CB[@]}" search 'domain:"cisco.com"' >"$WORK/table.out" 2>/dev/null
grep -q "noreply@cisco.com.*victim@example.com,second@exa" "$WORK/table.out" || fail "table: $(cat "$WORK/table.out")"
if "${CB[@]}" search 'ip:"4.2.2"' 2>"$WORK/bad.err"; then fail "a malformed query was accepted"; fi
grep -q "column 4" "$WORK/bad.err" || fail "the error does not say where: $(cat "$WORK/bad.err")"
echo "ok: every observable kind"

echo "== what must never hide a message"
python3 - "$WORK" <<'EOP'
import sys
w = sys.argv[1]
with open(f"{w}/padded.eml", "w") as f:  # 2,000 junk links before the one that matters
    f.write("Message-ID: <padded@x.example>\nFrom: a@x.example\nTo: padded@example.com\n"
            "Received: from x (x [IPv6:2001:DB8:0:0::77]) by mx.example\nSubject: padded\n\n")
    f.write(" ".join(f"http://h{i}.junk{i}.example/p" for i in range(2000)))
    f.write("\nhttp://real-phish.example/login\n")
with open(f"{w}/many.eml", "w") as f:  # a record far over 64 KB: 3,000 long recipients
    f.write("Message-ID: <many@x.example>\nFrom: a@x.example\nTo: " +
            ", ".join(f"user{i}-{'x' * 40}@example.com" for i in range(3000)) + "\nSubject: many\n\nhi\n")
with open(f"{w}/dup.eml", "w") as f:
    f.write("Message-ID: <dup@x.example>\nFrom: a@x.example\nTo: Bob@Example.com, bob@example.com\n"
            "Cc: BOB@example.com\nSubject: dup\n\nhi\n")
EOP
mkdir -p "$WORK/regress" && cp "$WORK/padded.eml" "$WORK/many.eml" "$WORK/dup.eml" "$WORK/regress/"
"${CB[@]}" ingest --json "$WORK/regress" >"$WORK/regress.json" 2>"$WORK/regress.err" || fail "ingest: $(cat "$WORK/regress.err")"
[ "$(pyq "$WORK/regress.json" 'r["indexed"], r["failed"]')" = "3 0" ] || fail "regress ingest: $(cat "$WORK/regress.json" "$WORK/regress.err")"
for q in 'url:"http://real-phish.example/login"' 'email:"padded@example.com"' 'email_messageid:"padded@x.example"' \
    'ip:"2001:db8::77"' 'ip:"2001:DB8:0:0::77"' 'domain:"real-phish.example"' 'url:"http://h1999.junk1999.example/p"' \
    "email:\"user2999-$(printf 'x%.0s' $(seq 40))@example.com\"" 'email_messageid:"dup@x.example"'; do
    [ "$(search_count $q)" = 1 ] || fail "search $q: $(cat "$WORK/search.json")"
done
[ "$(pyq "$WORK/search.json" 'len(r[0]["recipients"])')" = 1 ] || fail "duplicate recipients kept: $(cat "$WORK/search.json")"
# an index keeps the bucket count it was created with, whatever a later configuration says
printf '[index]\nbucket_bits = 11\n' >"$WORK/other.conf"
"$BIN/clawback" -c "$WORK/other.conf" --redis "$REDIS_URL" search --json 'email_messageid:"dup@x.example"' >"$WORK/o.json" 2>/dev/null
[ "$(pyq "$WORK/o.json" 'len(r)')" = 1 ] || fail "another bucket_bits setting does not find the message"
echo "ok: 2,000 links before the real one, a non-canonical IPv6, 3,000 recipients, duplicate recipients, another bucket_bits"

echo "== a value shared by many messages; concurrent ingesters"
python3 - "$WORK" <<'EOP'
import sys
work = sys.argv[1]
for box in range(4):
    with open(f"{work}/box{box}.mbox", "w") as f:
        for i in range(750):
            f.write(f"From sender@news.example Mon Nov 23 10:00:00 2026\n"
                    f"Message-ID: <n{box}-{i}@news.example>\nFrom: news@news.example\n"
                    f"Delivered-To: reader{i % 7}@example.com\nSubject: Newsletter {box}-{i}\n\n"
                    f"Read https://news.example/weekly and https://news.example/item/{box}/{i}\n\n")
EOP
for b in 0 1 2 3; do spawn "ing$b" "${CB[@]}" ingest --json "$WORK/box$b.mbox"; done
for b in 0 1 2 3; do wait_until 60 "ingester $b" not_alive "ing$b"; done
for b in 0 1 2 3; do
    grep -q '"indexed":750,"failed":0' "$WORK/ing$b.out" || fail "ingester $b: $(cat "$WORK/ing$b.out" "$WORK/ing$b.err")"
done
[ "$(search_count --limit 10000 'url:"https://news.example/weekly"')" = 3000 ] || fail "shared URL: not 3000 messages"
[ "$(pyq "$WORK/search.json" 'len(set(m["mid"] for m in r))')" = 3000 ] || fail "MIDs are not unique"
[ "$(search_count 'url:"https://news.example/item/2/17"')" = 1 ] || fail "a URL next to a shared one"
[ "$(search_count --limit 10000 'email:"reader3@example.com"')" = 428 ] || fail "recipient from Delivered-To"
echo "ok: 3000 messages share a URL, 4 concurrent ingesters, unique MIDs"

echo "== Redis killed in the middle of an ingest"
python3 - "$WORK" <<'EOP'
import sys
with open(f"{sys.argv[1]}/big.mbox", "w") as f:
    for i in range(40000):
        f.write(f"From a@b Mon Nov 23 10:00:00 2026\nMessage-ID: <big{i}@x.example>\nFrom: a@x.example\n"
                f"Subject: big {i}\n\nhttps://big.example/{i}\n\n")
EOP
spawn big "${CB[@]}" ingest --rcpt r@example.com "$WORK/big.mbox"
mid_at_least() { [ "$(rcli get cb:mid 2>/dev/null || echo 0)" -ge "$1" ] 2>/dev/null; }
wait_until 30 "the ingest under way" mid_at_least 6000
kill -9 "$(cat "$WORK/redis.pid")"
wait_until 30 "the ingest to give up" not_alive big
wait "$(pid_of big)"
status=$?
[ "$status" = 1 ] || fail "ingest exited $status after Redis died"
grep -q "stopped" "$WORK/big.err" || fail "no clear error: $(tail -3 "$WORK/big.err")"
# Redis back from its append-only file: every message a look-up returns is complete
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always --dir "$WORK" \
    --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis2.log" >/dev/null
wait_redis_up 10 || fail "redis did not restart"
n=$(search_count --limit 100000 'email:"r@example.com"')
[ "$n" -ge 1000 ] || fail "only $n messages found after the restart"
# each message found by its recipient is also found by its own URL (index and record agree)
for i in 0 1 2 3 4; do
    k=$(pyq "$WORK/search.json" "r[$i * (len(r) // 5)]['subject'].split()[1]")
    [ "$(search_count "url:\"https://big.example/$k\"")" = 1 ] || fail "message big $k half-written"
done
echo "ok: ingest stopped with a clear error; $n complete messages after the restart"

echo "== expiry"
cat >"$WORK/short.conf" <<EOC
[index]
retention = 3s
EOC
redis-cli -p "$REDIS_PORT" flushall >/dev/null
SHORT=("$BIN/clawback" -c "$WORK/short.conf" --redis "$REDIS_URL")
"${SHORT[@]}" ingest --rcpt victim@example.com "$WORK/maildir/new/1.eml" >/dev/null 2>&1 || fail "ingest (short)"
"${SHORT[@]}" search --json 'email_messageid:"123-abc-456@cisco.com"' >"$WORK/s.json" 2>/dev/null
[ "$(pyq "$WORK/s.json" 'len(r)')" = 1 ] || fail "not found right after ingest"
gone() {
    "${SHORT[@]}" search --json 'email_messageid:"123-abc-456@cisco.com"' >"$WORK/s.json" 2>/dev/null &&
        [ "$(pyq "$WORK/s.json" 'len(r)')" = 0 ]
}
wait_until 10 "the message to leave the window" gone
no_index_keys() { [ -z "$(rcli --scan --pattern 'cb:ix:[0-9]*')" ]; }
wait_until 15 "every index key to expire by itself" no_index_keys
echo "ok: out of the window, then every key expired"
echo "all index checks hold"
