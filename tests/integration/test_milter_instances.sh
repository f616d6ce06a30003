#!/usr/bin/env bash
# test_milter_instances.sh - several clawback-milter instances, one per gateway, write to one
# index without conflict. Two gateways are one real Postfix with two smtpd listeners, each
# with its own milter (smtpd_milters), each milter with its own config, spool and [milter]
# instance name and the same real redis-server; both deliver to a real Dovecot over LMTP. A
# burst through both listeners at once: every message delivered and indexed exactly once, by
# the milter it passed through, with the queue id under which Postfix delivered it; the MIDs
# all distinct and each block of MIDs (mindex reserves them per writer, 64 at a time) used by
# one instance only; the records found by recipient and by URL domain the same (index entries
# and records agree); `clawback queues` shows both instances by name, their indexed counts
# summing to the total; both stop cleanly on SIGTERM and the index answers the same after.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mailstack.sh"

PER_GW=150 # per gateway: more than two MID blocks each, so that the instances' blocks interleave
TOTAL=$((2 * PER_GW))
RCPT=alice@example.com

start_redis
start_dovecot "$RCPT"

# milter_conf NAME PORT - the config of the milter instance NAME (listening on PORT) in
# $WORK/NAME.conf: its own spool and log, the shared Redis.
milter_conf() {
    cat >"$WORK/$1.conf" <<EOF
[redis]
url = $REDIS_URL
[log]
file = $WORK/$1.log
level = debug
[milter]
listen = inet:$2@127.0.0.1
spool_dir = $WORK/$1-spool
instance = $1
status_interval = 200ms
EOF
}

# start_milter NAME PORT - start the instance NAME and wait (bounded) until it listens; its log
# is in NAME.log, not NAME.err: shown when it does not come up.
start_milter() {
    milter_conf "$1" "$2"
    spawn "$1" "$BIN/clawback-milter" -c "$WORK/$1.conf"
    local deadline=$(($(now_ms) + 10000))
    until port_in_use "$2"; do
        if ! alive "$1" || [ "$(now_ms)" -ge "$deadline" ]; then
            tail -n 20 "$WORK/$1.log"
            fail "milter $1 did not listen on $2"
        fi
        sleep 0.05
    done
}

# the milters first, so that the ports picked afterwards (Postfix's) cannot be theirs
GW1_MILTER=$(free_port)
start_milter gw1 "$GW1_MILTER"
GW2_MILTER=$(free_port)
start_milter gw2 "$GW2_MILTER"
POSTFIX_EXTRA_CONF="smtpd_milters = inet:127.0.0.1:$GW1_MILTER
milter_default_action = tempfail
milter_protocol = 6"
start_postfix
GW1_SMTP=$SMTP_PORT
postfix_add_smtpd "smtpd_milters=inet:127.0.0.1:$GW2_MILTER"
GW2_SMTP=$EXTRA_SMTP_PORT
echo "ok: gateway gw1 on smtp $GW1_SMTP (milter $GW1_MILTER), gw2 on smtp $GW2_SMTP (milter $GW2_MILTER)"

CB=("$BIN/clawback" -c "$WORK/gw1.conf")
# search_json QUERY FILE - every record matching QUERY, as JSON, into FILE
search_json() { "${CB[@]}" search --json --limit 100000 "$1" >"$2" 2>>"$WORK/search.err"; }
# indexed_count - how many records the recipient's look-up finds
indexed_count() {
    search_json "rcpt:$RCPT" "$WORK/count.json" &&
        python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/count.json"
}
maildir_count() { find "$WORK/mail/$RCPT" -path '*/new/*' -type f 2>/dev/null | wc -l; }
sent_count() { grep -c "status=sent" "$WORK/maillog"; }

echo "== a burst through both gateways at once: all delivered"
# the same recipient through both: the index entries of both instances land in the same buckets
for gw in gw1 gw2; do
    port=GW${gw#gw}_SMTP
    spawn "burst-$gw" python3 "$ROOT/tests/tools/smtp_burst.py" --port "${!port}" --count "$PER_GW" --parallel 4 \
        --prefix "$gw" --rcpt "$RCPT" --out "$WORK/$gw.ids"
done
for gw in gw1 gw2; do
    wait_until 120 "the burst through $gw to finish" not_alive "burst-$gw"
    wait "$(pid_of "burst-$gw")" || fail "a message through $gw was refused (see $WORK/burst-$gw.err)"
    [ "$(wc -l <"$WORK/$gw.ids")" = "$PER_GW" ] || fail "not all $PER_GW accepted through $gw"
done
wait_until 60 "$TOTAL messages in $RCPT's maildir" at_least "$TOTAL" maildir_count
# Postfix logs the delivery after Dovecot's answer: the maillog may lag behind the maildir
wait_until 30 "$TOTAL deliveries in Postfix's maillog" at_least "$TOTAL" sent_count
imap_check --user "$RCPT" count-is INBOX "$TOTAL" || fail "IMAP does not show $TOTAL messages"
echo "ok: $TOTAL messages accepted through two listeners and delivered"

echo "== each indexed exactly once, by the milter it passed through, with a MID of its own"
wait_until 60 "$TOTAL records in the index" at_least "$TOTAL" indexed_count
spool_empty() { [ -z "$(find "$WORK/gw1-spool/ready" "$WORK/gw2-spool/ready" -type f)" ]; }
wait_until 30 "both spools to empty" spool_empty
search_json "rcpt:$RCPT" "$WORK/by-rcpt.json" || fail "search by recipient"
search_json "domain:burst.example" "$WORK/by-domain.json" || fail "search by URL domain"
# The records (MID, Message-ID, queue id) against: the Message-IDs each sender had accepted,
# the queue id of each delivery in the maillog (cleanup: QID message-id=, lmtp: QID status=sent),
# and each milter's debug line per indexed message (queue_id= mid=). A message tempfailed and
# sent again has two queue ids in the maillog; only the delivered one counts.
python3 - "$WORK" "$TOTAL" <<'EOF' || fail "the index does not match what was sent and delivered"
import collections, json, re, sys
work, total = sys.argv[1], int(sys.argv[2])
problems = []
def check(ok, what):
    if not ok:
        problems.append(what)

sent = {gw: [l.strip() for l in open(f"{work}/{gw}.ids") if l.strip()] for gw in ("gw1", "gw2")}
recs = json.load(open(f"{work}/by-rcpt.json"))
by_domain = json.load(open(f"{work}/by-domain.json"))

# exactly once: every Message-ID sent is in one record, and there is nothing else
ids = collections.Counter(r["message_id"] for r in recs)
want = set(sent["gw1"]) | set(sent["gw2"])
check(len(want) == total, f"{len(want)} distinct Message-IDs sent, expected {total}")
check(len(recs) == total, f"{len(recs)} records, expected {total}")
not_once = sorted(m for m in want if ids[m] != 1)
check(not not_once, f"not indexed exactly once: {not_once[:10]}")
check(set(ids) == want, f"records of messages never sent: {sorted(set(ids) - want)[:10]}")

# no collision: MIDs distinct; the URL-domain look-up reaches the same records
mids = [r["mid"] for r in recs]
twice = [m for m, c in collections.Counter(mids).items() if c > 1]
check(not twice, f"MIDs used twice: {twice[:10]}")
check(sorted(r["mid"] for r in by_domain) == sorted(mids),
      f"by URL domain {len(by_domain)} records, by recipient {len(recs)}, not the same MIDs")

# the queue id Postfix delivered each message under
qids = collections.defaultdict(set)  # Message-ID -> queue ids cleanup logged for it
delivered = set()
for line in open(f"{work}/maillog", errors="replace"):
    m = re.search(r"/cleanup\[\d+\]: ([0-9A-Za-z]+): message-id=<([^>]*)>", line)
    if m:
        qids[m.group(2)].add(m.group(1))
    m = re.search(r"/lmtp\[\d+\]: ([0-9A-Za-z]+): to=.* status=sent", line)
    if m:
        delivered.add(m.group(1))
for r in recs:
    q = qids[r["message_id"]] & delivered
    check(len(q) == 1 and r["queue_id"] in q,
          f"{r['message_id']}: record queue id {r['queue_id']}, delivered under {sorted(q)}")

# each milter indexed exactly the messages of its own listener, each once, with the record's MID
mid_of = {r["queue_id"]: r["mid"] for r in recs}
gw_of = {r["queue_id"]: r["message_id"].split(".")[0] for r in recs}
blocks = {}
for gw in ("gw1", "gw2"):
    lines = re.findall(r"milter: message \S+ queue_id=(\S+) mid=(\d+)", open(f"{work}/{gw}.log").read())
    logged = collections.Counter(q for q, _ in lines)
    check(len(lines) == len(sent[gw]), f"{gw} logged {len(lines)} indexed messages, {len(sent[gw])} sent through it")
    check(all(c == 1 for c in logged.values()), f"{gw} indexed a queue id twice")
    check(all(gw_of.get(q) == gw for q in logged), f"{gw} indexed messages of the other gateway")
    check(all(mid_of.get(q) == int(m) for q, m in lines), f"{gw}: a logged MID differs from its record's")
    blocks[gw] = {(int(m) - 1) // 64 for _, m in lines}
# a block of MIDs is one writer's: its record bucket (cb:ix:P:r:BLOCK) has one writer only
shared = sorted(blocks["gw1"] & blocks["gw2"])
check(not shared, f"MID blocks used by both instances: {shared}")
check(len(blocks["gw1"]) >= 3 and len(blocks["gw2"]) >= 3, f"blocks per instance: {blocks}")

for p in problems:
    print("mismatch:", p, file=sys.stderr)
print(f"blocks: gw1 {sorted(blocks['gw1'])} gw2 {sorted(blocks['gw2'])}")
sys.exit(1 if problems else 0)
EOF
echo "ok: $TOTAL records, one per message, distinct MIDs in separate blocks, queue ids as Postfix delivered them"

echo "== clawback queues shows both instances, their counts summing to the total"
# each instance's own figures: indexed, its spool empty, nothing set aside or found twice
queues_show() {
    "${CB[@]}" queues --json | python3 -c '
import json, sys
per = int(sys.argv[1])
m = {q["milter"]: q for q in json.load(sys.stdin) if "milter" in q}
ok = all(m.get(gw, {}).get("indexed") == per and m[gw]["depth"] == 0 and m[gw]["bad"] == 0
         and m[gw]["redis"] == "up" for gw in ("gw1", "gw2"))
sys.exit(0 if ok and sum(q["indexed"] for q in m.values()) == 2 * per else 1)' "$PER_GW"
}
wait_until 30 "clawback queues to show gw1 and gw2 with $PER_GW indexed each" queues_show
for gw in gw1 gw2; do
    status=$(rcli hget cb:milter:status "$gw")
    case "$status" in
    *" indexed=$PER_GW duplicates=0 bad=0 "*) ;;
    *) fail "cb:milter:status $gw: $status" ;;
    esac
done
"${CB[@]}" queues | grep -E '^(MILTER|gw[12] )'
echo "ok: gw1 and gw2 listed with $PER_GW indexed each, nothing set aside or found twice"

echo "== SIGTERM stops both cleanly; the index answers the same after"
for gw in gw1 gw2; do
    stop_gracefully "$gw"
    [ "$STOP_STATUS" = 0 ] || fail "milter $gw exited $STOP_STATUS after SIGTERM"
    grep -q "clawback-milter: stopped" "$WORK/$gw.log" || fail "no clean stop in $gw's log"
done
# at the stop each instance rewrites the record buckets of its last block at their size
search_json "rcpt:$RCPT" "$WORK/after.json" || fail "search after the stop"
same=$(python3 -c '
import json, sys
a, b = (sorted((r["mid"], r["message_id"], r["queue_id"]) for r in json.load(open(f))) for f in sys.argv[1:3])
print(int(a == b))' "$WORK/by-rcpt.json" "$WORK/after.json")
[ "$same" = 1 ] || fail "the records changed when the instances stopped"
echo "ok: both stopped, the same $TOTAL records"
grep -q "ERROR: AddressSanitizer\|runtime error" "$WORK"/*.err && fail "sanitizer report"
echo "ok: no sanitizer report"
