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
stop_gracefully poller
[ "$STOP_STATUS" = 0 ] || fail "poller exit status $STOP_STATUS"
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
stop_gracefully poller
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
stop_gracefully poller
echo "ok"
