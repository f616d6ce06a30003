#!/bin/bash
# test_remediator_graph.sh - the remediator's per-mailbox limits for Microsoft Graph, through
# the real daemons (clawback-enricher, clawback-remediator; remediate.c's task queue and busy
# counts, graph.c) against the Graph stand-in (tests/tools/graph_standin.py) answering every
# request after a delay, so that requests overlap:
#   1. 40 Delete jobs at once, 20 for mailbox a and 5 for each of b..e, 12 workers, the profile's
#      mailbox_concurrency 4 (the default). The stand-in allows 64 at once there, so that it
#      measures what the remediator sends rather than enforcing Graph's limit: at most 4
#      requests at once in any mailbox, exactly 4 in a (the limit is reached), several
#      mailboxes at once, none throttled; every job remediated; the copies in deleteditems,
#      the other messages where they were.
#   2. The stand-in enforcing 2 at once (less than the profile's 4): its 429s with Retry-After
#      are retried, and every job of mailbox f ends remediated.
#   3. A profile with mailbox_rate = 5: the remediator sends mailbox g exactly 5 requests, then
#      holds its jobs back itself (a retry in about 10 minutes, not a request the server refuses).
source "$(dirname "$0")/lib.sh"
start_redis
GRAPH="$ROOT/tests/tools/graph_standin.py"
CONF="$WORK/clawback.conf"
CB=("$BIN/clawback" -c "$CONF")
LATENCY_MS=250

spawn graph python3 "$GRAPH" --port 0 --port-file "$WORK/graph.port" --tenant tenant-1 --client-id client-1 \
    --client-secret graph-secret
wait_until 10 "the graph stand-in" test -s "$WORK/graph.port"
GP=$(cat "$WORK/graph.port")
control() { # METHOD PATH [JSON | @FILE]
    curl -sS --fail -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "http://127.0.0.1:$GP$2" ||
        fail "control $1 $2"
}
# stat KEY [UPN] - one figure of the stand-in's /_control/stats (0 when absent)
stat() {
    control GET /_control/stats | python3 -c '
import json, sys
v = json.load(sys.stdin)[sys.argv[1]]
print(v.get(sys.argv[2], 0) if len(sys.argv) > 2 else v)' "$@"
}
control POST /_control/config "{\"latency_ms\": $LATENCY_MS, \"mailbox_concurrency\": 64}" >/dev/null
echo "ok: redis $REDIS_PORT, graph stand-in $GP (every answer after $LATENCY_MS ms)"

echo "== messages: indexed, and held by the stand-in's mailboxes"
# mailbox:count:url-host; each mailbox also holds one message of another URL, to stay
BOXES=(a@cloud.example:20:conc.example b@cloud.example:5:conc.example c@cloud.example:5:conc.example
    d@cloud.example:5:conc.example e@cloud.example:5:conc.example f@cloud.example:8:throttle.example
    g@capped.example:6:rate.example)
python3 - "$WORK/mail" "$WORK/seed.json" "${BOXES[@]}" <<'EOF' || fail "writing the messages"
import json, os, sys
outdir, seed, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(outdir)
mailboxes = []
for spec in specs:
    upn, n, host = spec.split(":")
    msgs = []
    for kind, count, url in (("rm", int(n), f"http://{host}/x"), ("keep", 1, "http://fine.example/y")):
        for i in range(count):
            mid, subject = f"<{kind}-{i}.{upn}>", f"{kind} {i} for {upn}"
            with open(os.path.join(outdir, f"{kind}-{i}.{upn}.eml"), "w") as f:
                f.write(f"Message-ID: {mid}\r\nFrom: sender@outside.example\r\nTo: {upn}\r\n"
                        f"Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nSee {url}\r\n")
            msgs.append({"folder": "inbox", "internetMessageId": mid, "subject": subject})
    mailboxes.append({"upn": upn, "messages": msgs})
with open(seed, "w") as f:
    json.dump({"mailboxes": mailboxes}, f)
EOF
control POST /_control/mailboxes "@$WORK/seed.json" >/dev/null
echo graph-secret >"$WORK/graph.secret"
graph_profile() { # NAME [EXTRA LINE]
    printf '[profile %s]\ntype = graph\nurl = http://127.0.0.1:%s/v1.0\n' "$1" "$GP"
    printf 'token_url = http://127.0.0.1:%s/tenant-1/oauth2/v2.0/token\ntenant = tenant-1\n' "$GP"
    printf 'client_id = client-1\nsecret_file = %s\ntls_verify = no\ntimeout = 10s\n%s\n' "$WORK/graph.secret" "${2:-}"
}
cat >"$CONF" <<EOF
[redis]
url = $REDIS_URL
[log]
level = info
[bus]
heartbeat = 100ms
capacity = 256
[remediator]
workers = 12
backoff_min = 200ms
backoff_max = 1s
# longer than mailbox_rate's 10-minute window: g's jobs past the budget (part 3) wait for it
give_up_after = 1h
[domains cloud]
domains = cloud.example
action = delete
profile = cloud
[domains capped]
domains = capped.example
action = delete
profile = capped
$(graph_profile cloud)
$(graph_profile capped "mailbox_rate = 5")
EOF
"${CB[@]}" ingest "$WORK/mail" >/dev/null || fail "ingest"
echo "ok: 54 messages to remove and 7 to keep in 7 mailboxes"

spawn enricher "$BIN/clawback-enricher" -c "$CONF"
spawn remediator "$BIN/clawback-remediator" -c "$CONF"
wait_until 30 "the remediator to connect" grep -q "jobs: connected to dispatcher" "$WORK/remediator.err"

# remediated UPN [ATTEMPTS] - how many of UPN's jobs ended remediated with their profile
# (after ATTEMPTS attempts when given)
remediated() {
    grep -c "remediator: job [^ ]* (MID [0-9]*, delete for $1): remediated with profile '[a-z]*' after ${2:-[0-9]*} attempt" \
        "$WORK/remediator.err"
}
# outcomes UPN - how many of UPN's jobs have a result (any)
outcomes() { grep -c "remediator: job [^ ]* (MID [0-9]*, delete for $1): " "$WORK/remediator.err"; }
# in_folders UPN - "folder:count" of the stand-in's mailbox UPN, sorted, for the folders
# holding messages; and its rm messages outside deleteditems, its keep messages outside inbox
in_folders() {
    control GET "/_control/mailbox/$1" | python3 -c '
import json, sys
box = json.load(sys.stdin)
out = []
for f in box["folders"]:
    for m in f["messages"]:
        kind = m["internetMessageId"][1:].split("-")[0]
        home = {"rm": "deleteditems", "keep": "inbox"}[kind]
        out.append(f["wellKnownName"] or f["displayName"])
        if f["wellKnownName"] != home:
            out.append("misplaced-" + kind)
print(" ".join("%s:%d" % (k, out.count(k)) for k in sorted(set(out))))'
}

echo "== 1. 40 jobs at once: 20 for a, 5 each for b..e; 12 workers, mailbox_concurrency 4"
start=$(now_ms)
"${CB[@]}" remediate --action delete --by test --limit 1000 --query 'domain:"conc.example"' >/dev/null ||
    fail "remediate conc"
all_conc() {
    local u n=0
    for u in a b c d e; do n=$((n + $(outcomes "$u@cloud.example"))); done
    [ "$n" -ge 40 ]
}
wait_until 90 "40 results" all_conc
took=$(($(now_ms) - start))
[ "$(remediated a@cloud.example 1)" = 20 ] || fail "a: $(remediated a@cloud.example 1) of 20 remediated at the first attempt"
for u in b c d e; do
    [ "$(remediated "$u@cloud.example" 1)" = 5 ] || fail "$u: $(remediated "$u@cloud.example" 1) of 5 remediated"
done
[ "$(xlen results)" = 40 ] || fail "$(xlen results) results on the bus, not 40"
[ "$(in_folders a@cloud.example)" = "deleteditems:20 inbox:1" ] || fail "a's mailbox: $(in_folders a@cloud.example)"
for u in b c d e; do
    [ "$(in_folders "$u@cloud.example")" = "deleteditems:5 inbox:1" ] || fail "$u's mailbox: $(in_folders "$u@cloud.example")"
done
echo "ok: 40 remediated in $took ms, 40 results on the bus; the copies in deleteditems, the others in inbox"
control GET /_control/stats >"$WORK/stats1.json"
python3 - "$WORK/stats1.json" <<'EOF' || fail "concurrency: $(cat "$WORK/stats1.json")"
import json, sys
st = json.load(open(sys.argv[1]))
mc = st["max_concurrency"]
print("    requests in flight at once, per mailbox: %s; all mailboxes: %d; mailboxes at once: %d"
      % (" ".join("%s=%d" % (u.split("@")[0], n) for u, n in sorted(mc.items())),
         st["max_concurrency_total"], st["max_busy_mailboxes"]))
assert not st["throttled"], "throttled: %s" % st["throttled"]
assert sorted(mc) == ["%s@cloud.example" % u for u in "abcde"], sorted(mc)
assert all(n <= 4 for n in mc.values()), "over mailbox_concurrency: %s" % mc
assert mc["a@cloud.example"] == 4, "a never had 4 requests at once: %s" % mc
assert st["max_concurrency_total"] > 4, "never more than 4 requests at once in all"
assert st["max_busy_mailboxes"] >= 3, "never 3 mailboxes at once"
EOF
echo "ok: never more than 4 at once in a mailbox, 4 in a, several mailboxes in parallel, nothing throttled"

echo "== 2. the stand-in allows 2 requests at once: its 429s are retried until every job is done"
control POST /_control/config '{"mailbox_concurrency": 2}' >/dev/null
"${CB[@]}" remediate --action delete --by test --limit 1000 --query 'domain:"throttle.example"' >/dev/null ||
    fail "remediate throttle"
f_done() { [ "$(outcomes f@cloud.example)" -ge 8 ]; }
wait_until 90 "8 results for f" f_done
[ "$(remediated f@cloud.example)" = 8 ] || fail "f: $(remediated f@cloud.example) of 8 remediated"
[ "$(stat throttled f@cloud.example)" -gt 0 ] || fail "the stand-in throttled nothing in f"
grep -q "(MID [0-9]*, f@cloud.example): attempt [0-9]* failed for now, again in [0-9]* ms: .*HTTP 429 ApplicationThrottled" \
    "$WORK/remediator.err" || fail "no retry after a 429 in f"
[ "$(in_folders f@cloud.example)" = "deleteditems:8 inbox:1" ] || fail "f's mailbox: $(in_folders f@cloud.example)"
echo "ok: $(stat throttled f@cloud.example) requests throttled (429, Retry-After), $(grep -c "f@cloud.example): attempt" "$WORK/remediator.err") retries, 8 remediated"

echo "== 3. mailbox_rate = 5: the remediator itself stops at 5 requests to g"
control POST /_control/config '{"mailbox_concurrency": 64}' >/dev/null
"${CB[@]}" remediate --action delete --by test --limit 1000 --query 'domain:"rate.example"' >/dev/null ||
    fail "remediate rate"
# every job of g has a result, or waits for its retry (about 10 minutes away)
g_settled() {
    local n
    n=$(grep -c "(MID [0-9]*, g@capped.example): attempt 1 failed for now" "$WORK/remediator.err")
    [ $((n + $(outcomes g@capped.example))) -ge 6 ]
}
wait_until 60 "every job of g done or held back" g_settled
[ "$(stat requests g@capped.example)" = 5 ] || fail "g got $(stat requests g@capped.example) requests, not 5"
[ "$(stat throttled g@capped.example)" = 0 ] || fail "the stand-in throttled g"
grep -q "(MID [0-9]*, g@capped.example): attempt 1 failed for now, again in [0-9]* ms: .*mailbox_rate: 5 requests to g@capped.example in the last 10 minutes" \
    "$WORK/remediator.err" || fail "no job of g held back by mailbox_rate"
[ "$(outcomes g@capped.example)" = "$(remediated g@capped.example)" ] || fail "a job of g failed"
moved=$(remediated g@capped.example)
want="inbox:$((7 - moved))"
[ "$moved" -gt 0 ] && want="deleteditems:$moved $want misplaced-rm:$((6 - moved))"
[ "$moved" = 0 ] && want="$want misplaced-rm:6"
[ "$(in_folders g@capped.example)" = "$want" ] || fail "g's mailbox: $(in_folders g@capped.example), not $want"
echo "ok: 5 requests to g, $moved jobs remediated within them, $((6 - moved)) held back for the next window"

kill -TERM "$(pid_of enricher)" "$(pid_of remediator)"
wait_until 20 "the daemons to stop" eval '! alive enricher && ! alive remediator'
grep -q "remediator: [0-9]* queued jobs handed back" "$WORK/remediator.err" || fail "g's held jobs not handed back"
grep -q "ERROR: AddressSanitizer\|runtime error" "$WORK"/*.err && fail "sanitizer report"
echo "PASS"
