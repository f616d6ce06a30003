#!/usr/bin/env bash
# test_poller.sh - clawback-poller against every kind of feed, with a real redis-server:
# OpenPhish and URLhaus lists from files (and over HTTP), the seed's retrospective verdict
# service, TAXII 2.1 and MISP from the stand-in (tests/tools/feed_standin.py) that answers as
# the protocols say. Checks the verdict records handed to the bus, the seed's ecs lines, the
# cursors and `clawback feeds`, failures with backoff, TLS, proxy, credentials, the lease
# between two pollers, a kill -9 between fetching a page and handing it over, and
# backpressure.
source "$(dirname "$0")/lib.sh"

STANDIN="$ROOT/tests/tools/feed_standin.py"
DUMP="$TOOLS/edge_dump"

start_redis
CONF="$WORK/base.conf"

# verdicts [STREAM] - the verdict records in a stream (default: the verdicts edge), JSON lines.
verdicts() { "$DUMP" --redis "$REDIS_URL" "${1:-cb:bus:verdicts:q}" | grep '"type":"verdict"'; }
count_verdicts() { verdicts "$@" | wc -l; }
# feed_json NAME FIELD - one field of `clawback feeds --json` for feed NAME.
feed_json() {
    "$BIN/clawback" -c "$CONF" feeds --json | python3 -c "
import json,sys
for f in json.load(sys.stdin):
    if f['feed'] == sys.argv[1]: print(f[sys.argv[2]])" "$1" "$2"
}
# write_conf FILE FEED-SECTION-TEXT [EXTRA] - a poller configuration with one or more feeds.
write_conf() {
    local file=$1
    shift
    {
        printf '[redis]\nurl = %s\n[log]\nfile = %s\nlevel = trace\n' "$REDIS_URL" "${LOGFILE:-$WORK/poller.log}"
        printf '[bus]\nheartbeat = 100ms\nack_timeout = 2s\nmax_waiting = %s\n' "${MAX_WAITING:-100000}"
        printf '[poller]\nlease = %s\n' "${LEASE:-3s}"
        printf '%b\n' "$@"
    } >"$file"
}
# reset - forget everything between sections.
reset() { rcli flushall >/dev/null; : >"$WORK/poller.log"; }
has_line() { grep -qF -- "$2" "$1"; }
# stop_clean NAME - SIGTERM, and the process must exit 0.
stop_clean() { stop_gracefully "$1"; [ "$STOP_STATUS" = 0 ] || fail "$1 exit status $STOP_STATUS"; }
# feed_above NAME FIELD N - whether the feed's FIELD is now above N.
feed_above() { local v; v=$(feed_json "$1" "$2"); [ -n "$v" ] && [ "$v" -gt "$3" ]; }

echo "== openphish from a file: one verdict per new URL, nothing twice"
reset
printf 'http://bad.example/a\nhttps://evil.example/login?x=1\n\n# a comment\nhttp://bad.example/a\nhttp://bad.example/b \n' >"$WORK/openphish.txt"
write_conf "$CONF" "[feed op]\ntype = openphish\nurl = $WORK/openphish.txt\ninterval = 1s"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 10 "3 openphish verdicts" at_least 3 count_verdicts
verdicts | grep -q '"feed":"op","observable_type":"url","value":"https://evil.example/login?x=1","disposition":"malicious"' ||
    fail "verdict record fields: $(verdicts)"
echo 'http://new.example/c' >>"$WORK/openphish.txt"
wait_until 10 "the URL added to the list" at_least 4 count_verdicts
# several more polls of the same list add nothing
last=$(feed_json op last_success_ms)
wait_until 10 "two more polls" feed_above op last_success_ms "$((last + 1000))"
[ "$(count_verdicts)" = 4 ] || fail "re-polling a list re-emitted: $(verdicts)"
[ "$(verdicts | sort -u | wc -l)" = 4 ] || fail "duplicate verdicts"
[ "$(feed_json op verdicts)" = 4 ] || fail "feeds counts $(feed_json op verdicts) verdicts"
[ "$(feed_json op holder)" != "" ] || fail "feeds shows no holder"
"$BIN/clawback" -c "$CONF" feeds | grep -qE '^op +openphish +yes .* 4 +0 ' || fail "feeds table: $("$BIN/clawback" -c "$CONF" feeds)"
# a URL that leaves the list and comes back within the retention is not new
sed -i '/new.example/d' "$WORK/openphish.txt"
last=$(feed_json op last_success_ms)
wait_until 10 "a poll without it" feed_above op last_success_ms "$last"
echo 'http://new.example/c' >>"$WORK/openphish.txt"
last=$(feed_json op last_success_ms)
wait_until 10 "a poll with it again" feed_above op last_success_ms "$last"
[ "$(count_verdicts)" = 4 ] || fail "a URL back on the list was emitted again"
stop_clean poller
[ -z "$(rcli get cb:feed:op:lease)" ] || fail "a clean stop keeps the lease"
echo "ok"

echo "== urlhaus CSV: header from the comment, quoted fields, bad rows skipped and counted"
reset
cat >"$WORK/urlhaus.csv" <<'EOF'
################################################################
# abuse.ch URLhaus Database Dump (CSV - recent URLs)            #
################################################################
#
# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter
"3001","2026-11-20 10:00:00","http://198.51.100.7/bins/x86","online","2026-11-20 10:00:00","malware_download","elf,mirai","https://urlhaus.abuse.ch/url/3001/","abuse_ch"
"3002","2026-11-20 11:00:00","https://bad.example/pay, now","offline","","malware_download","","https://urlhaus.abuse.ch/url/3002/","anon"
"3003","2026-11-20 12:00:00","","online","","x","","",""
"3004","2026-11-20 12:00:00","http://short.example/"
EOF
write_conf "$CONF" "[feed uh]\ntype = urlhaus\nurl = $WORK/urlhaus.csv\ninterval = 1h"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 10 "urlhaus verdicts" at_least 2 count_verdicts
wait_until 10 "the poll to end" feed_above uh last_success_ms 0
[ "$(count_verdicts)" = 2 ] || fail "urlhaus verdicts: $(verdicts)"
verdicts | grep -q '"value":"https://bad.example/pay, now"' || fail "quoted comma: $(verdicts)"
verdicts | grep '198.51.100.7' | grep -q '"observed_ms":1795168800000' || fail "dateadded: $(verdicts)"
verdicts | grep '198.51.100.7' | grep -q 'malware_download' || fail "context: $(verdicts)"
[ "$(feed_json uh skipped)" = 2 ] || fail "skipped rows counted $(feed_json uh skipped)"
grep -q "ECS: Feed 'uh': 2 malformed items skipped" "$WORK/poller.log" || fail "no warning for the bad rows"
stop_clean poller
echo "ok"

echo "== bad input is logged with the feed's name; the poller keeps running"
reset
printf 'not,a,urlhaus,dump\n1,2,3,4\n' >"$WORK/garbage.csv"
head -c 3000 /dev/urandom >"$WORK/random.txt"
write_conf "$CONF" "[feed junk]\ntype = urlhaus\nurl = $WORK/garbage.csv\ninterval = 1s\nbackoff_min = 100ms\nbackoff_max = 500ms" \
    "[feed missing]\ntype = openphish\nurl = $WORK/no-such-file.txt\nbackoff_min = 100ms\nbackoff_max = 500ms" \
    "[feed big]\ntype = openphish\nurl = $WORK/big.txt\nmax_size = 1k\nbackoff_min = 100ms\nbackoff_max = 500ms" \
    "[feed ok]\ntype = openphish\nurl = $WORK/openphish.txt\ninterval = 1s"
head -c 5000 /dev/zero | tr '\0' 'a' >"$WORK/big.txt"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 10 "junk to fail twice" at_least 2 feed_json junk failures
wait_until 10 "missing to fail" at_least 2 feed_json missing failures
wait_until 10 "big to fail" at_least 1 feed_json big failures
feed_json junk last_error | grep -q "bad response" || fail "junk error: $(feed_json junk last_error)"
feed_json missing last_error | grep -q "no-such-file" || fail "missing error: $(feed_json missing last_error)"
feed_json big last_error | grep -qi "large\|size" || fail "big error: $(feed_json big last_error)"
grep -q "ECS: Feed 'junk' poll failed" "$WORK/poller.log" || fail "no failure line naming the feed"
wait_until 10 "the good feed's verdicts" at_least 4 count_verdicts
alive poller || fail "the poller died on bad input"
# backoff: attempts are spaced out, not a busy loop
attempts=$(grep -c "ECS: Feed 'missing' poll failed" "$WORK/poller.log")
[ "$attempts" -lt 60 ] || fail "$attempts attempts: no backoff"
stop_clean poller
echo "ok"

# ---------------------------------------------------------------- the stand-in
# start_standin NAME [ARGS] - the feed stand-in on a free port: STANDIN_URL (http or https).
start_standin() {
    local name=$1
    shift
    rm -f "$WORK/$name.port"
    spawn "$name" python3 "$STANDIN" --port 0 --port-file "$WORK/$name.port" "$@"
    wait_until 10 "the $name stand-in to listen" test -s "$WORK/$name.port"
    STANDIN_PORT=$(cat "$WORK/$name.port")
}
# control PORT METHOD PATH [JSON] - call the stand-in's control API.
control() {
    curl -sS --fail -X "$2" -H 'Content-Type: application/json' ${4:+--data-binary "$4"} "http://127.0.0.1:$1$3" >/dev/null ||
        fail "control $2 $3"
}
requests() { curl -sS "http://127.0.0.1:$1/_control/requests"; }
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# retro JSON: one retrospection as the seed's log shows it
retro() { # URL EMAIL_ID EPOCH
    printf '{"observable": {"observable_type": "url", "value": "%s"}, "context_tags": [{"taxonomy_id": 4, "taxonomy_entry_id": 3, "tag_type_id": 1}], "email_id": "%s", "timestamp": "%s", "org_id": "cisco", "verdict": {"taxonomy_id": 4, "taxonomy_entry_id": 3, "tag_type_id": 1}, "taxonomy_map_version": 1}' \
        "$1" "$2" "$(iso "$3")"
}

echo "== retro: registration, paging with more, Token Expired -> register -> retry, the seed's ecs lines"
reset
start_standin retro --device-id 420D4F36AAEBC0093B4F-B9E72189A021
RP=$STANDIN_PORT
t=$(($(date +%s) - 600))
control "$RP" POST /_control/retros "[$(retro http://phish.cua.com/test_url_2022032402rks d5feb7d4-fe00-4568-9bb7-769a5bc7886e $t),
 $(retro http://phish.cua.com/test_url_2022032402rks c5fb612c-e1b1-42aa-aaa2-643009c803a1 $((t + 131))),
 $(retro http://phish.cua.com/test_url_2022032901_rks 2ed41b55-bdec-49fd-abfa-45a876fc10d6 $((t + 192)))]"
RETRO_FEED="[feed retro]\ntype = retro\nurl = http://127.0.0.1:$RP\ndevice_id = 420D4F36AAEBC0093B4F-B9E72189A021\norg_id = cisco\nmodel = C300V\nversion = 14.2.0-468\npage_size = 2\ninterval = 1s\noverlap = 0\nbackoff_min = 200ms\nbackoff_max = 1s"
write_conf "$CONF" "$RETRO_FEED"
LOGFILE="$WORK/logger.log" write_conf "$WORK/logger.conf" "[logger]\ndirectory = $WORK/logs\njson_file = $WORK/logs/events.json"
spawn logger "$BIN/clawback-logger" -c "$WORK/logger.conf"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "3 retro verdicts" at_least 3 count_verdicts
verdicts | grep -q '"feed":"retro","observable_type":"url","value":"http://phish.cua.com/test_url_2022032901_rks","disposition":"malicious","observed_ms":'"$(((t + 192) * 1000))"',"email_id":"2ed41b55-bdec-49fd-abfa-45a876fc10d6"' ||
    fail "retro verdict record: $(verdicts)"
[ "$(verdicts | grep -c test_url_2022032402rks)" = 2 ] || fail "two retros of one URL for two messages: $(verdicts)"
requests "$RP" >"$WORK/req.json"
python3 - "$WORK/req.json" <<'EOP' || fail "retro requests: $(cat "$WORK/req.json")"
import json, sys
reqs = json.load(open(sys.argv[1]))
reg = [r for r in reqs if r["method"] == "POST" and r["path"].startswith("/v1/register/device/420D4F36AAEBC0093B4F-B9E72189A021")]
assert reg and reg[0]["body"] == {"org_id": "cisco", "model": "C300V", "version": "14.2.0-468", "type": "esa-ces"}, reg
polls = [r for r in reqs if r["path"] == "/v1/retro/device/420D4F36AAEBC0093B4F-B9E72189A021"]
assert len(polls) >= 2, polls
assert all(p["headers"].get("authorization") == "present" for p in polls), polls
assert all(p["query"]["page_size"] == ["2"] for p in polls), polls
assert polls[1]["query"]["since"][0] > polls[0]["query"]["since"][0], "the second page asks from where the first ended"
EOP
for line in "Debug: ECS: Connecting to register api url http://127.0.0.1:$RP/v1/register/device/420D4F36AAEBC0093B4F-B9E72189A021 with payload {'org_id': 'cisco', 'model': 'C300V', 'version': '14.2.0-468', 'type': 'esa-ces'}" \
    "Info: ECS: Device registration is successful" "Debug: ECS: Successfully updated region uri and token in database" \
    "Debug: ECS: Start polling" \
    "Debug: ECS: Querying URL 'http://127.0.0.1:$RP/v1/retro/device/420D4F36AAEBC0093B4F-B9E72189A021' with parameters: {'since': '" \
    "Trace: ECS: Cloud retro response: {\"retros\"" "Debug: ECS: Finish polling" \
    "Info: URL verdict update received from retrospective service." "Info: ECS: No retrospections found."; do
    wait_until 10 "ecs line: $line" has_line "$WORK/poller.log" "$line"
done
token1=$(rcli hget cb:feed:retro token)
[ -n "$token1" ] || fail "the token is not kept in Redis"
grep -qF "$token1" "$WORK/poller.log" && fail "the token appears in the log"
# the token expires at the service: 403 Token Expired, registration, retry
control "$RP" POST /_control/expire_token
control "$RP" POST /_control/retros "[$(retro http://phish.cua.com/after-expiry 0f1e2d3c-0000-4000-8000-000000000001 $((t + 300)))]"
wait_until 15 "the verdict after the token expired" at_least 4 count_verdicts
for line in "Trace: ECS: URL http://127.0.0.1:$RP/v1/retro/device/420D4F36AAEBC0093B4F-B9E72189A021?since=" \
    'Status 403, Response {"message":' "Warning: ECS: Cloud query failed. 'Token Expired.'" \
    "Info: ECS: Token Expired/Invalid. Retrying."; do
    has_line "$WORK/poller.log" "$line" || fail "no ecs line: $line"
done
grep -q "since=[0-9-]*T[0-9][0-9]%3A[0-9][0-9]%3A[0-9][0-9]Z&page_size=2" "$WORK/poller.log" || fail "since is not sent as the seed sends it"
[ "$(rcli hget cb:feed:retro token)" != "$token1" ] || fail "the new token is not stored"
[ "$(count_verdicts)" = 4 ] || fail "verdicts after expiry: $(verdicts)"
# the cursor is the newest retrospection's time, and the logger got the ecs lines
[ "$(feed_json retro cursor)" = "$(((t + 300) * 1000))" ] || fail "cursor $(feed_json retro cursor)"
# the logger writes them into the seed's ecs log, in its line format, and as JSON lines
wait_until 10 "the logger to write the ecs lines" has_line "$WORK/logs/ecs" "ECS: Device registration is successful"
has_line "$WORK/logs/ecs" "URL verdict update received from retrospective service." || fail "the logger lacks the verdict line"
grep -qE "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} 20[0-9]{2} Warning: ECS: Cloud query failed. 'Token Expired.'$" "$WORK/logs/ecs" ||
    fail "ecs line format: $(grep -m1 "Token Expired" "$WORK/logs/ecs")"
grep -q '"log":"ecs","level":"info","program":"clawback-poller","message":"ECS: Device registration is successful"' "$WORK/logs/events.json" ||
    fail "JSON line: $(head -n 2 "$WORK/logs/events.json")"
[ ! -e "$WORK/logs/mail_logs" ] || fail "ecs events written to mail_logs"
# logrotate: move the file away, SIGHUP, the next lines go to a new file
mv "$WORK/logs/ecs" "$WORK/logs/ecs.1"
kill -HUP "$(pid_of logger)"
wait_until 10 "a new ecs file after SIGHUP" has_line "$WORK/logs/ecs" "ECS: Querying URL"
alive logger || fail "the logger died on SIGHUP"
stop_clean poller
echo "ok"

echo "== retro: kill -9 after a page was fetched and before it was handed over; then restarts at random"
reset
control "$RP" DELETE /_control/requests
# a slow answer, and meanwhile the verdicts edge fills: the fetched page cannot be handed over
MAX_WAITING=2 write_conf "$CONF" "$RETRO_FEED\ninitial_lookback = 2h"
control "$RP" POST /_control/fault '{"path_prefix": "/v1/retro", "count": 1, "mode": "delay", "delay_s": 2}'
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 10 "the poll to be under way" feed_above retro last_poll_ms 0   # its answer is 2 s away
f1=$(rcli xadd cb:bus:verdicts:q '*' i filler-1 r x)
f2=$(rcli xadd cb:bus:verdicts:q '*' i filler-2 r x)
wait_until 15 "the page to wait for room" has_line "$WORK/poller.log" "the verdicts edge is full; waiting"
kill_hard poller
[ "$(count_verdicts)" = 0 ] || fail "verdicts handed over while the edge was full"
[ -z "$(feed_json retro cursor)" ] || fail "the cursor moved without the verdicts: $(feed_json retro cursor)"
rcli xdel cb:bus:verdicts:q "$f1" "$f2" >/dev/null
write_conf "$CONF" "$RETRO_FEED\ninitial_lookback = 2h"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "the verdicts after the restart" at_least 4 count_verdicts
sleep_polls() { local s; s=$(feed_json retro last_success_ms); wait_until 10 "two more polls" feed_above retro last_success_ms "$((s + 1000))"; }
sleep_polls
[ "$(count_verdicts)" = 4 ] || fail "after the restart: $(verdicts)"
[ "$(feed_json retro cursor)" = "$(((t + 300) * 1000))" ] || fail "cursor after the restart $(feed_json retro cursor)"
# many pages, the poller killed at random moments: every verdict once
base=$(($(date +%s) - 100)) # after the cursor (t + 300)
batch=""
for i in $(seq 1 60); do
    batch="$batch${batch:+,}$(retro "http://stress.example/$i" "$(printf '7e57%04d-0000-4000-8000-000000000000' "$i")" $((base + i)))"
done
control "$RP" POST /_control/retros "[$batch]"
control "$RP" POST /_control/fault '{"path_prefix": "/v1/retro", "count": 40, "mode": "delay", "delay_s": 0.2}'
for k in 1 2 3 4 5; do
    wait_until 20 "progress before kill $k" at_least $((4 + k * 6)) count_verdicts
    kill_hard poller
    spawn poller "$BIN/clawback-poller" -c "$CONF"
done
wait_until 30 "all 64 verdicts" at_least 64 count_verdicts
sleep_polls
[ "$(count_verdicts)" = 64 ] || fail "verdicts after kills: $(count_verdicts), expected 64"
[ "$(verdicts | sed 's/.*"id":"\([^"]*\)".*/\1/' | sort -u | wc -l)" = 64 ] || fail "a verdict was emitted twice"
stop_clean poller
# a page that ends inside a second, the poller killed before the next page: the rest of that
# second is still asked for after the restart (overlap = 0)
s=$(($(date +%s) - 30))
control "$RP" POST /_control/retros "[$(retro http://second.example/1 5ec00000-0000-4000-8000-000000000001 $s),
 $(retro http://second.example/2 5ec00000-0000-4000-8000-000000000002 $((s + 1))),
 $(retro http://second.example/3 5ec00000-0000-4000-8000-000000000003 $((s + 1)))]"
control "$RP" POST /_control/fault '{"path_prefix": "/v1/retro", "count": 1, "mode": "delay", "delay_s": 0}'
control "$RP" POST /_control/fault '{"path_prefix": "/v1/retro", "count": 1, "mode": "delay", "delay_s": 3}'
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "the first page of that second" at_least 66 count_verdicts
kill_hard poller
control "$RP" DELETE /_control/fault
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "the rest of that second after the restart" at_least 67 count_verdicts
# a logger that is down (its edge full) does not hold verdicts back
stop_gracefully poller
stop_gracefully logger
for i in $(seq 1 80); do rcli xadd cb:bus:events:q '*' i "events-filler-$i" r x >/dev/null; done
at_least 80 xlen events || fail "the events edge is not full"
MAX_WAITING=80 write_conf "$CONF" "$RETRO_FEED\ninitial_lookback = 2h"
control "$RP" POST /_control/retros "[$(retro http://logger-down.example/1 10000000-0000-4000-8000-000000000001 $(($(date +%s) - 5)))]"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "a verdict while the events edge is full" at_least 68 count_verdicts
[ "$(count_verdicts)" = 68 ] || fail "verdicts: $(count_verdicts), expected 68"
stop_clean poller
stop_gracefully retro
echo "ok"

echo "== taxii21: Basic auth from a credentials file, paging with next, the added-after cursor, revoked and expired indicators"
reset
printf 's3cret-taxii-pw\n' >"$WORK/taxii.secret"
start_standin taxii --taxii-user alice --taxii-password s3cret-taxii-pw
TP=$STANDIN_PORT
COLL="http://127.0.0.1:$TP/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/"
ind() { # ID PATTERN [EXTRA JSON MEMBERS]
    printf '{"type": "indicator", "spec_version": "2.1", "id": "indicator--%s", "created": "2026-11-20T10:00:00.000Z", "modified": "2026-11-20T10:00:00.000Z", "name": "Phishing %s", "pattern_type": "stix", "pattern": "%s", "valid_from": "2026-11-20T10:00:00Z"%s}' \
        "$1" "$1" "$2" "${3:-}"
}
control "$TP" POST /_control/taxii "[$(ind 00000000-0000-4000-8000-000000000001 "[url:value = 'http://taxii.example/one']"),
 $(ind 00000000-0000-4000-8000-000000000002 "[domain-name:value = 'taxii-bad.example']"),
 $(ind 00000000-0000-4000-8000-000000000003 "[url:value = 'http://taxii.example/revoked']" ', "revoked": true'),
 $(ind 00000000-0000-4000-8000-000000000004 "[url:value = 'http://taxii.example/expired']" ', "valid_until": "2026-01-01T00:00:00Z"'),
 {\"type\": \"malware\", \"spec_version\": \"2.1\", \"id\": \"malware--00000000-0000-4000-8000-000000000005\", \"created\": \"2026-11-20T10:00:00.000Z\", \"modified\": \"2026-11-20T10:00:00.000Z\", \"name\": \"x\", \"is_family\": false},
 $(ind 00000000-0000-4000-8000-000000000006 "[url:value = 'http://taxii.example/a'] OR [url:value = 'http://taxii.example/b']"),
 $(ind 00000000-0000-4000-8000-000000000007 "[url:value = 'http://taxii.example/x' AND url:value = 'http://taxii.example/y']")]"
TAXII_FEED="[feed tx]\ntype = taxii21\nurl = $COLL\nusername = alice\ncredentials_file = $WORK/taxii.secret\npage_size = 2\ninterval = 1s"
write_conf "$CONF" "$TAXII_FEED"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "taxii verdicts" at_least 4 count_verdicts
wait_until 10 "the poll to end" feed_above tx last_success_ms 0
verdicts >"$WORK/v.json"
[ "$(wc -l <"$WORK/v.json")" = 4 ] || fail "taxii verdicts: $(cat "$WORK/v.json")"
grep -q '"observable_type":"domain","value":"taxii-bad.example"' "$WORK/v.json" || fail "domain indicator"
grep -q '"value":"http://taxii.example/b"' "$WORK/v.json" || fail "OR pattern"
grep -q 'revoked\|expired\|/x"\|/y"' "$WORK/v.json" && fail "revoked, expired or AND pattern emitted"
[ "$(feed_json tx withdrawn)" = 2 ] || fail "withdrawn $(feed_json tx withdrawn)"
requests "$TP" >"$WORK/req.json"
python3 - "$WORK/req.json" <<'EOP' || fail "taxii requests: $(cat "$WORK/req.json")"
import json, sys
reqs = [r for r in json.load(open(sys.argv[1])) if "/objects/" in r["path"]]
assert len(reqs) >= 3, len(reqs)   # 6 indicators (and a malware object), 2 a page; later polls may follow
assert "next" not in reqs[0]["query"] and "next" in reqs[1]["query"] and "next" in reqs[2]["query"], reqs[:3]
assert all("next" not in r["query"] for r in reqs[3:]), "a later poll starts without next"
first = reqs[0]
assert first["headers"].get("accept") == "application/taxii+json;version=2.1", first["headers"]
assert first["headers"].get("authorization") == "present" and first.get("auth_user") == "alice", first
assert first["query"]["limit"] == ["2"] and first["query"]["match[type]"] == ["indicator"], first["query"]
assert "next" in reqs[1]["query"], reqs[1]["query"]
assert all(r["status"] == 200 for r in reqs), [r["status"] for r in reqs]
EOP
cursor=$(feed_json tx cursor)
echo "$cursor" | grep -qE '^20[0-9-]+T[0-9:.]+Z$' || fail "taxii cursor '$cursor'"
control "$TP" DELETE /_control/requests
control "$TP" POST /_control/taxii "[$(ind 00000000-0000-4000-8000-000000000008 "[url:value = 'http://taxii.example/later']")]"
wait_until 10 "the later indicator" at_least 5 count_verdicts
requests "$TP" | python3 -c "
import json,sys
r=[x for x in json.load(sys.stdin) if '/objects/' in x['path']]
assert r[0]['query']['added_after'] == [sys.argv[1]], (r[0]['query'], sys.argv[1])" "$cursor" || fail "the next poll does not ask from the cursor"
grep -q "s3cret-taxii-pw" "$WORK/poller.log" "$WORK/poller.err" && fail "the password appears in a log"
# a wrong password: 401 is a failure with the status, the poller goes on
printf 'wrong\n' >"$WORK/taxii.secret"
wait_until 10 "the 401 to be recorded" at_least 1 feed_json tx failures
feed_json tx last_error | grep -q "HTTP 401" || fail "taxii error: $(feed_json tx last_error)"
stop_clean poller
stop_gracefully taxii
echo "ok"

echo "== misp: the API key from a file, url attributes by timestamp, paged until a short page"
reset
printf 'MISPKEY0123456789\n' >"$WORK/misp.key"
start_standin misp --misp-key MISPKEY0123456789
MP=$STANDIN_PORT
now=$(date +%s)
attr() { # ID TYPE VALUE TO_IDS TS
    printf '{"id": "%s", "event_id": "7", "uuid": "5f0c0000-0000-4000-8000-%012d", "type": "%s", "category": "Network activity", "to_ids": %s, "value": "%s", "timestamp": "%s"}' \
        "$1" "$1" "$2" "$4" "$3" "$5"
}
control "$MP" POST /_control/misp "[$(attr 1 url http://misp.example/1 true $((now - 100))), $(attr 2 url http://misp.example/2 true $((now - 90))),
 $(attr 3 url http://misp.example/not-for-ids false $((now - 80))), $(attr 4 domain misp-bad.example true $((now - 70))),
 $(attr 5 ip-dst 203.0.113.9 true $((now - 60))), $(attr 6 url http://misp.example/6 true $((now - 50)))]"
write_conf "$CONF" "[feed misp]\ntype = misp\nurl = http://127.0.0.1:$MP\ncredentials_file = $WORK/misp.key\npage_size = 2\ninterval = 1s"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "misp verdicts" at_least 4 count_verdicts
wait_until 10 "the poll to end" feed_above misp last_success_ms 0
[ "$(count_verdicts)" = 4 ] || fail "misp verdicts: $(verdicts)"
verdicts | grep -q '"observable_type":"domain","value":"misp-bad.example"' || fail "misp domain"
verdicts | grep -q 'not-for-ids' && fail "to_ids false emitted"
[ "$(feed_json misp cursor)" = "$((now - 50))" ] || fail "misp cursor $(feed_json misp cursor)"
# an attribute dated years ahead does not move the cursor past what is still to come
control "$MP" POST /_control/misp "[$(attr 9 url http://misp.example/future true 1900000000)]"
wait_until 15 "the future-dated attribute" at_least 5 count_verdicts
last=$(feed_json misp last_success_ms)
wait_until 10 "a complete poll" feed_above misp last_success_ms "$last"
[ "$(feed_json misp cursor)" = "$((now - 50))" ] || fail "the cursor jumped to $(feed_json misp cursor)"
requests "$MP" | python3 -c "
import json,sys
r=[x for x in json.load(sys.stdin) if x['path']=='/attributes/restSearch']
b=r[0]['body']
assert r[0]['headers'].get('authorization')=='present', r[0]
assert b['to_ids']==1 and 'url' in b['type'] and b['limit']==2 and b['page']==1 and b['returnFormat']=='json', b
assert [x['body']['page'] for x in r[:3]]==[1,2,3], [x['body'] for x in r]" || fail "misp requests: $(requests "$MP")"
grep -q MISPKEY0123456789 "$WORK/poller.log" "$WORK/poller.err" && fail "the MISP key appears in a log"
# a broken answer (not JSON) fails the poll with the feed's name; the next one goes on
control "$MP" POST /_control/fault '{"path_prefix": "/attributes/restSearch", "count": 1, "mode": "garbage"}'
control "$MP" POST /_control/misp "[$(attr 7 url http://misp.example/7 true $((now - 40)))]"
wait_until 15 "the verdict after the broken answer" at_least 6 count_verdicts
grep -q "ECS: Feed 'misp' poll failed: misp query: bad response" "$WORK/poller.log" || fail "garbage not reported"
stop_clean poller
stop_gracefully misp
echo "ok"

echo "== failures: 503 and 429 with Retry-After, garbage, a closed connection, a server that never stops sending"
reset
start_standin flaky
FP=$STANDIN_PORT
printf 'http://flaky.example/1\n' | curl -sS --fail -X PUT --data-binary @- "http://127.0.0.1:$FP/_control/files/op.txt" >/dev/null
control "$FP" POST /_control/fault '{"path_prefix": "/files/op.txt", "count": 1, "mode": "status", "status": 503, "retry_after": "1", "body": "busy"}'
control "$FP" POST /_control/fault '{"path_prefix": "/files/op.txt", "count": 1, "mode": "status", "status": 429, "retry_after": "1", "body": "slow down"}'
control "$FP" POST /_control/fault '{"path_prefix": "/files/op.txt", "count": 1, "mode": "close"}'
control "$FP" POST /_control/fault '{"path_prefix": "/files/op.txt", "count": 1, "mode": "drip"}'
control "$FP" POST /_control/fault '{"path_prefix": "/files/op.txt", "count": 1, "mode": "huge"}'
write_conf "$CONF" "[feed flaky]\ntype = openphish\nurl = http://127.0.0.1:$FP/files/op.txt\ninterval = 1h\ntimeout = 2s\nmax_size = 1M\nbackoff_min = 100ms\nbackoff_max = 400ms"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 40 "the verdict after five failures" at_least 1 count_verdicts
# (a connection closed without an answer on a reused connection is retried by libcurl at once,
# so it may meet the next fault instead of counting as a failure of its own)
grep -c "ECS: Feed 'flaky' poll failed" "$WORK/poller.log" | grep -qx '[45]' || fail "failures logged: $(grep "poll failed" "$WORK/poller.log")"
grep -q "poll failed: list download: HTTP 503 busy" "$WORK/poller.log" || fail "503 not reported"
grep -q "poll failed: list download: HTTP 429 slow down" "$WORK/poller.log" || fail "429 not reported"
grep "poll failed" "$WORK/poller.log" | grep -qi "timeout\|timed out" || fail "the endless body did not time out"
grep "poll failed" "$WORK/poller.log" | grep -qi "larger than" || fail "the huge body was not refused"
# Retry-After (1 s) wins over the shorter backoff (at most 400 ms)
grep "HTTP 503 busy" "$WORK/poller.log" | grep -q "next in 1.0 s" || fail "Retry-After not honoured: $(grep "HTTP 503" "$WORK/poller.log")"
grep "poll failed" "$WORK/poller.log" | grep -v "HTTP 503\|HTTP 429" | grep -q "next in 0\.[0-4] s" || fail "backoff not used"
[ "$(feed_json flaky failures)" = 0 ] || fail "failures not reset after a success"
alive poller || fail "poller died"
stop_clean poller
echo "ok"

echo "== a poller that lost its lease hands nothing over (the commit is fenced)"
reset
printf 'http://fenced.example/1\n' | curl -sS --fail -X PUT --data-binary @- "http://127.0.0.1:$FP/_control/files/fenced.txt" >/dev/null
control "$FP" POST /_control/fault '{"path_prefix": "/files/fenced.txt", "count": 1, "mode": "delay", "delay_s": 2}'
LEASE=30s MAX_WAITING=2 write_conf "$CONF" "[feed fenced]\ntype = openphish\nurl = http://127.0.0.1:$FP/files/fenced.txt\ninterval = 1h"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 10 "the fetch to start" feed_above fenced last_poll_ms 0   # its answer is 2 s away
f1=$(rcli xadd cb:bus:verdicts:q '*' i filler-1 r x)
f2=$(rcli xadd cb:bus:verdicts:q '*' i filler-2 r x)
wait_until 15 "the page to wait for room" has_line "$WORK/poller.log" "the verdicts edge is full; waiting"
rcli set cb:feed:fenced:lease someone-else PX 60000 >/dev/null   # taken over, unnoticed until the next renewal
rcli xdel cb:bus:verdicts:q "$f1" "$f2" >/dev/null
wait_until 10 "the fenced commit" has_line "$WORK/poller.log" "handed over to another poller (lease lost before the hand-over)"
[ "$(count_verdicts)" = 0 ] || fail "a poller without the lease handed over: $(verdicts)"
[ "$(rcli hget cb:feed:fenced verdicts)" = "" ] || fail "counters moved"
stop_clean poller
[ "$(rcli get cb:feed:fenced:lease)" = someone-else ] || fail "a stopping poller released a lease it does not hold"
echo "ok"

echo "== TLS verified by default, a CA file, a proxy from the config and from the environment"
reset
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$WORK/tls.key" -out "$WORK/tls.pem" >/dev/null 2>&1 || fail "openssl"
start_standin tls --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key"
SP=$STANDIN_PORT
printf 'https://tls.example/1\n' | curl -sS --fail -k -X PUT --data-binary @- "https://127.0.0.1:$SP/_control/files/op.txt" >/dev/null
write_conf "$CONF" "[feed tls]\ntype = openphish\nurl = https://127.0.0.1:$SP/files/op.txt\ninterval = 1s\nbackoff_min = 100ms\nbackoff_max = 300ms" \
    "[feed tlsca]\ntype = openphish\nurl = https://127.0.0.1:$SP/files/op.txt\nca_file = $WORK/tls.pem\ninterval = 1h" \
    "[feed viaproxy]\ntype = openphish\nurl = http://feeds.invalid/files/proxied.txt\nproxy = http://127.0.0.1:$FP\ninterval = 1h"
printf 'http://proxied.example/1\n' | curl -sS --fail -X PUT --data-binary @- "http://127.0.0.1:$FP/_control/files/proxied.txt" >/dev/null
control "$FP" DELETE /_control/requests
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "the verified feed and the proxied one" at_least 2 count_verdicts
wait_until 10 "the self-signed server to be refused" at_least 2 feed_json tls failures
feed_json tls last_error | grep -qi "certificate\|SSL" || fail "tls error: $(feed_json tls last_error)"
verdicts | grep -q '"feed":"tlsca","observable_type":"url","value":"https://tls.example/1"' || fail "ca_file feed: $(verdicts)"
verdicts | grep -q '"feed":"viaproxy".*"value":"http://proxied.example/1"' || fail "proxied feed: $(verdicts)"
requests "$FP" | grep -q '"proxied": *true' || fail "the request did not go through the proxy"
stop_clean poller
reset
write_conf "$CONF" "[feed envproxy]\ntype = openphish\nurl = http://feeds.invalid/files/proxied.txt\ninterval = 1h"
control "$FP" DELETE /_control/requests
http_proxy="http://127.0.0.1:$FP" spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 15 "the feed through http_proxy" at_least 1 count_verdicts
requests "$FP" | grep -q '"proxied": *true' || fail "http_proxy was not used"
stop_clean poller
stop_gracefully tls
echo "ok"

echo "== two pollers: one holds the feed; kill -9 the holder and the other takes over"
reset
printf 'http://lease.example/1\n' >"$WORK/lease.txt"
LEASE=2s write_conf "$CONF" "[feed ls]\ntype = openphish\nurl = $WORK/lease.txt\ninterval = 1s"
LOGFILE="$WORK/p1.log" LEASE=2s write_conf "$WORK/p1.conf" "[feed ls]\ntype = openphish\nurl = $WORK/lease.txt\ninterval = 1s"
LOGFILE="$WORK/p2.log" LEASE=2s write_conf "$WORK/p2.conf" "[feed ls]\ntype = openphish\nurl = $WORK/lease.txt\ninterval = 1s"
spawn p1 "$BIN/clawback-poller" -c "$WORK/p1.conf"
wait_until 10 "p1 to take the feed" has_line "$WORK/p1.log" "ECS: Feed 'ls' taken by this poller"
spawn p2 "$BIN/clawback-poller" -c "$WORK/p2.conf"
wait_until 10 "p2 to run" has_line "$WORK/p2.log" "started as"
last=$(feed_json ls last_success_ms)
wait_until 10 "two more polls" feed_above ls last_success_ms "$((last + 1500))"
grep -q "ECS: \[ls\] Fetching" "$WORK/p2.log" && fail "both pollers poll the feed"
feed_json ls holder | grep -q "clawback-poller:.*:$(pid_of p1):" || fail "holder $(feed_json ls holder)"
kill_hard p1
printf 'http://lease.example/2\n' >>"$WORK/lease.txt"
wait_until 15 "p2 to take over" has_line "$WORK/p2.log" "ECS: Feed 'ls' taken by this poller"
wait_until 10 "the new URL through p2" at_least 2 count_verdicts
[ "$(count_verdicts)" = 2 ] || fail "verdicts across the takeover: $(verdicts)"
# a clean stop hands the feed over at once
spawn p1 "$BIN/clawback-poller" -c "$WORK/p1.conf"
wait_until 10 "p1 to run again" at_least 2 grep -c "started as" "$WORK/p1.log"
stop_gracefully p2
wait_until 5 "p1 to take the feed at once" at_least 2 grep -c "ECS: Feed 'ls' taken by this poller" "$WORK/p1.log"
stop_gracefully p1
echo "ok"

echo "== backpressure: a full verdicts edge slows the hand-over; nothing is lost"
reset
for i in $(seq 1 1200); do echo "http://bulk.example/$i"; done >"$WORK/bulk.txt"
MAX_WAITING=50 write_conf "$CONF" "[feed bulk]\ntype = openphish\nurl = $WORK/bulk.txt\ninterval = 1s"
spawn poller "$BIN/clawback-poller" -c "$CONF"
wait_until 10 "the edge to fill" at_least 50 xlen verdicts
wait_until 10 "the poller to wait" has_line "$WORK/poller.log" "the verdicts edge is full; waiting"
for i in 1 2 3 4 5 6 7 8 9 10; do
    n=$(xlen verdicts)
    [ "$n" -le 550 ] || fail "the edge holds $n records (max_waiting 50, chunks of 500)"
    sleep 0.1
done
alive poller || fail "poller died under backpressure"
# a consumer drains the edge: every URL arrives once
write_conf "$WORK/sink.conf"   # its own output edge is not limited to 50
spawn sink "$TOOLS/bus_peer" -c "$WORK/sink.conf" sink --in verdicts --out sink
wait_until 60 "1200 verdicts at the consumer" at_least 1200 count_verdicts cb:bus:sink:q
[ "$(count_verdicts cb:bus:sink:q)" = 1200 ] || fail "consumer got $(count_verdicts cb:bus:sink:q)"
[ "$(queue_field verdicts duplicates)" = 0 ] || fail "duplicates on the verdicts edge"
stop_clean poller
stop_gracefully sink
echo "ok"

echo "== no sanitizer report from any process"
if grep -l "Sanitizer\|runtime error" "$WORK"/*.err 2>/dev/null; then
    fail "sanitizer report: $(grep -h -A5 "Sanitizer\|runtime error" "$WORK"/*.err | head -30)"
fi
echo "ok"
