#!/usr/bin/env bash
# test_observables.sh - the observables commands on real mail: `clawback url canon|unwrap|
# extract` and `clawback inspect`, then the whole SpamAssassin public corpus (6,046 messages
# no one here wrote, fetched once by tests/corpus.sh): every message parses without a crash
# or sanitizer report, every URL kept is canonical, and the counts are sane.
source "$(dirname "$0")/lib.sh"
CB=("$BIN/clawback")

echo "== url canon: arguments, standard input, refusals"
[ "$("${CB[@]}" url canon 'HTTP://www.GOOgle.com/a/../b/./c#frag')" = "http://www.google.com/b/c" ] ||
    fail "canon of an argument"
out=$(printf '%s\n' 'http://3279880203/blah' 'www.example.com' | "${CB[@]}" url canon)
[ "$out" = "$(printf '%s\n' 'http://195.127.0.11/blah' 'http://www.example.com/')" ] ||
    fail "canon of standard input: $out"
if "${CB[@]}" url canon 'mailto:a@example.com' >"$WORK/canon.out" 2>"$WORK/canon.err"; then
    fail "a mailto: URL was accepted"
fi
grep -q "mailto:a@example.com" "$WORK/canon.err" || fail "the refusal does not name the URL"
echo "ok: canon"

echo "== url unwrap: every layer"
"${CB[@]}" url unwrap 'https://nam02.safelinks.protection.outlook.com/?url=hxxps%3A%2F%2Fevil%5B.%5Dexample%2Fx&data=1' >"$WORK/unwrap.out"
grep -q "^outer	https://nam02.safelinks" "$WORK/unwrap.out" || fail "outer layer missing: $(cat "$WORK/unwrap.out")"
grep -q "	https://evil.example/x$" "$WORK/unwrap.out" || fail "inner layer missing: $(cat "$WORK/unwrap.out")"
echo "ok: unwrap"

echo "== url extract and inspect on a message"
cat >"$WORK/phish.eml" <<'EOM'
Received: from relay.example.net (relay.example.net [192.0.2.10])
	by mx.example.com (Postfix) with ESMTP id 4F040440F0
Message-ID: <123-abc-456@cisco.com>
From: "IT Desk" <helpdesk@Example.COM>
To: victim@example.com
Subject: =?UTF-8?Q?Invoice_Due_=E2=80=93_action_needed?=
Date: Mon, 23 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Pay at <a href=3D"https://urldefense.proofpoint.com/v2/url?u=3Dhttp-3A__pay.evil.example_inv-3Fid-3D1&d=3DD&c=3Dx">here</a>
or http://www.Example.com/ok.</p>
--b
Content-Type: application/pdf
Content-Disposition: attachment; filename="invoice.pdf"
Content-Transfer-Encoding: base64

aGVsbG8K
--b--
EOM
"${CB[@]}" url extract "$WORK/phish.eml" >"$WORK/urls.out" || fail "url extract failed"
expected='https://urldefense.proofpoint.com/v2/url?u=http-3A__pay.evil.example_inv-3Fid-3D1&d=D&c=x
http://pay.evil.example/inv?id=1
http://www.example.com/ok'
[ "$(cat "$WORK/urls.out")" = "$expected" ] || fail "url extract printed: $(cat "$WORK/urls.out")"
"${CB[@]}" inspect --rcpt Victim@Example.com "$WORK/phish.eml" >"$WORK/inspect.json" || fail "inspect failed"
python3 - "$WORK/inspect.json" <<'EOP' || fail "inspect JSON: $(cat "$WORK/inspect.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["message_id"] == "123-abc-456@cisco.com", m["message_id"]
assert m["subject"] == "Invoice Due \u2013 action needed", m["subject"]
assert m["header_from"] == "helpdesk@example.com" and m["sender_domain"] == "example.com"
assert m["sender_ip"] == "192.0.2.10" and m["helo"] == "relay.example.net"
assert m["envelope_recipients"] == ["victim@example.com"]
assert m["date"] == "2026-11-23T10:00:00Z"
assert "http://pay.evil.example/inv?id=1" in m["urls"]
a = m["attachments"]
assert len(a) == 1 and a[0]["name"] == "invoice.pdf" and a[0]["size"] == 6
assert a[0]["sha256"] == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
EOP
echo "ok: extract and inspect"

echo "== input that is not a message"
if "${CB[@]}" inspect "$BIN/clawback" >/dev/null 2>"$WORK/bin.err"; then fail "a binary was accepted"; fi
grep -q "not a message" "$WORK/bin.err" || fail "no clear error for a binary: $(cat "$WORK/bin.err")"
if "${CB[@]}" inspect "$WORK" >/dev/null 2>"$WORK/dir.err"; then fail "a directory was accepted"; fi
grep -q "is a directory" "$WORK/dir.err" || fail "no clear error for a directory"
if "${CB[@]}" url extract "$WORK/missing.eml" 2>/dev/null; then fail "a missing file was accepted"; fi
echo "ok: clear errors"

echo "== the SpamAssassin corpus"
CORPUS=$("$ROOT/tests/corpus.sh") || fail "cannot fetch the corpus"
find "$CORPUS" -name '*.txt' -type f | sort >"$WORK/corpus.list"
"$TOOLS/corpus_check" --urls "$WORK/corpus.urls" <"$WORK/corpus.list" >"$WORK/corpus.out" 2>"$WORK/corpus.err" ||
    fail "corpus check: $(head -n 20 "$WORK/corpus.err") $(cat "$WORK/corpus.out")"
summary=$(cat "$WORK/corpus.out")
echo "$summary"
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$summary"; }
[ "$(field messages)" = 6046 ] || fail "expected 6046 messages"
[ "$(field failed)" = 0 ] || fail "messages failed to parse"
[ "$(field bad_urls)" = 0 ] || fail "URLs kept that are not canonical"
# rspamd finds about 16,000 distinct URLs (mailto included) in this corpus; URLs in 55-90%
# of messages (mailing-list footers are everywhere)
distinct=$(field distinct)
[ "$distinct" -ge 12000 ] && [ "$distinct" -le 30000 ] || fail "$distinct distinct URLs is not sane"
with=$(field with_urls)
[ "$with" -ge 3300 ] && [ "$with" -le 5500 ] || fail "$with messages with URLs is not sane"
# facts read off particular messages of the corpus
has_pair() { grep -qF "$1	$2" "$WORK/corpus.urls" || fail "$2 not found in $1"; }
has_pair easy-ham-2/00930.d20e3d61ecf2c7f599c99808529b333c.txt http://xent.com/mailman/listinfo/fork
has_pair easy-ham-2/00930.d20e3d61ecf2c7f599c99808529b333c.txt http://www.xent.com/pipermail/fork/2002-May/011928.html
has_pair spam-2/00009.1e1a8cb4b57532ab38aa23287523659d.txt http://thinkgeek.com/sf
"${CB[@]}" inspect "$CORPUS/spam-2/00009.1e1a8cb4b57532ab38aa23287523659d.txt" >"$WORK/s9.json"
grep -q '"name":"aaaaaaa.txt","content_type":"application/octet-stream","size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"' "$WORK/s9.json" ||
    fail "the empty attachment of spam-2/00009 is not described: $(cat "$WORK/s9.json")"
echo "ok: corpus"
echo "all observables checks hold"
