#!/usr/bin/env bash
# Starts 3 replicas of the quotes service on the local Redis and PostgreSQL,
# drives them with loadgen (a read mix plus a feed burst), prints loadgen's
# table, and stops everything.
#
#   bash examples/run-replicas.sh                 # from the repository root
#   LIVE=10000 bash examples/run-replicas.sh      # the live step: 10,000 live clients too
#
# Environment: OUTRIGGER_REDIS_ADDR (default 127.0.0.1:6379), DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable), DURATION
# (default 20s), BURST (default 20000), API_LIMIT (default 50), FEED_RATE
# (quotes/s of each of the two feeding replicas, default 200). The replicas
# run the roll-up every 5 s instead of every minute, so that a short run sees
# several ticks.
#
# The live step (LIVE=N): loadgen -live N opens N clients of the live stream
# spread over the replicas (LIVE_TRANSPORT ws, sse or mixed; LIVE_SYMBOLS per
# client, default 3) before the read mix starts, and measures them while it
# runs: connect time, delivery latency, delivered, lost and duplicated, and
# each replica's CPU and memory. With LIVE set, FEED_RATE defaults to 10 and
# BURST to 0: every quote goes to 3/8 of the clients, so 20 quotes/s are
# 75,000 deliveries/s for 10,000 clients. While it runs, http://127.0.0.1:18081/
# shows the page (HOLD=1 keeps the replicas up after loadgen until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

redis_addr=${OUTRIGGER_REDIS_ADDR:-127.0.0.1:6379}
db_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
duration=${DURATION:-20s}
live=${LIVE:-0}
if [ "$live" -gt 0 ]; then def_rate=10 def_burst=0; else def_rate=200 def_burst=20000; fi
burst=${BURST:-$def_burst}
rate=${FEED_RATE:-$def_rate}
api_limit=${API_LIMIT:-50}
run_id=demo$(date +%s)
schema=$run_id
work=$(mktemp -d)
pids=()

cleanup() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	psql "$db_url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
	redis-cli -h "${redis_addr%:*}" -p "${redis_addr##*:}" --scan --pattern "$run_id:*" |
		xargs -r -n 500 redis-cli -h "${redis_addr%:*}" -p "${redis_addr##*:}" unlink >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "building" >&2
(cd examples && go build -o "$work/quotes" ./quotes && go build -o "$work/loadgen" ./loadgen)
psql "$db_url" -qc "CREATE SCHEMA $schema" >/dev/null
sep='?'; [[ $db_url == *\?* ]] && sep='&'

targets=()
peers=http://127.0.0.1:18081,http://127.0.0.1:18082,http://127.0.0.1:18083
for i in 1 2 3; do
	port=$((18080 + i))
	feed_rate=$rate; [ "$i" = 3 ] && feed_rate=0 # two replicas receive the feed; all three consume
	ADDR=127.0.0.1:$port OUTRIGGER_REDIS_ADDR=$redis_addr DATABASE_URL="$db_url${sep}search_path=$schema" PEERS=$peers \
		KEY_PREFIX="$run_id:" REPLICA=r$i FEED_RATE=$feed_rate API_LIMIT=$api_limit LOG_LEVEL=warn ROLLUP_INTERVAL=5s \
		"$work/quotes" 2>"$work/r$i.log" &
	pids+=($!)
	targets+=("http://127.0.0.1:$port")
done
for t in "${targets[@]}"; do
	for _ in $(seq 200); do curl -fs "$t/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
	curl -fs "$t/readyz" >/dev/null || { echo "replica $t not ready" >&2; cat "$work"/r*.log >&2; exit 1; }
done
echo "3 replicas up (the page: ${targets[0]}/); running loadgen for $duration" >&2
live_args=()
if [ "$live" -gt 0 ]; then
	live_args=(-live "$live" -live-transport "${LIVE_TRANSPORT:-ws}" -live-symbols "${LIVE_SYMBOLS:-3}")
fi
"$work/loadgen" -targets "$(IFS=,; echo "${targets[*]}")" -duration "$duration" -burst "$burst" -api-limit "$api_limit" -rollup-interval 5s "${live_args[@]}"
if [ -n "${HOLD:-}" ]; then
	echo "replicas still up (${targets[0]}/); Ctrl-C stops them" >&2
	wait
fi
