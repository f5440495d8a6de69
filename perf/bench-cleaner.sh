#!/usr/bin/env bash
# Log cleaner benchmark (BENCHMARKS.md "Log cleaner"):
#  1. storage level: target/release/cleaner_bench (cleaner MB/s on a large log with 10% live
#     keys next to sequential write/read of the same disk; append latency on the same thread
#     with and without the cleaner, unthrottled and throttled);
#  2. broker level: produce p99 on a one-shard broker while its cleaner compacts another
#     partition (perf/cleaner_produce_latency.py), throttled to CLEANER_MBPS.
# Env: SIZE_MIB (1024), FILL_MB (100), CLEANER_MBPS (10), RATE (1000 msg/s), SECONDS (10).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-1024}; FILL_MB=${FILL_MB:-100}; CLEANER_MBPS=${CLEANER_MBPS:-10}
RATE=${RATE:-1000}; SECONDS_=${SECONDS:-10}
TMP=$(mktemp -d -p "$ROOT" .bench-cleaner.XXXXXX)
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

echo "== storage level (cleaner_bench) =="
"$ROOT/target/release/cleaner_bench" --dir "$TMP/storage" --size-mib "$SIZE_MIB" --latency-log-mib 256
for t in 0 50; do
  "$ROOT/target/release/cleaner_bench" --dir "$TMP/storage" --size-mib 64 --latency-log-mib 256 \
    --throttle-mbps "$t" | grep -E '^(latency|RESULT (idle|cleaning))'
done

echo "== broker level (one shard, cleaner throttled to ${CLEANER_MBPS} MB/s) =="
mkdir -p "$TMP/data"
printf '"log.cleaner.backoff.ms" = 100\n"log.cleaner.io.max.bytes.per.second" = %s.0\n' \
  "$((CLEANER_MBPS * 1000000))" >"$TMP/sluice.toml"
NO_COLOR=1 RUST_LOG=info "$ROOT/target/release/sluice" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --data-dir "$TMP/data" --config "$TMP/sluice.toml" --cores 1 2>"$TMP/sluice.log" >/dev/null &
PID=$!
ADDR=""
for _ in $(seq 1 300); do
  ADDR=$(grep -oE 'ready listening=[^[:space:]]+' "$TMP/sluice.log" | head -n1 | cut -d= -f2 | tr -d '"') || true
  [[ -n "$ADDR" ]] && break; sleep 0.1
done
"$ROOT/.venv/bin/python" "$ROOT/perf/cleaner_produce_latency.py" "$ADDR" "$FILL_MB" "$RATE" "$SECONDS_"
echo "cleans logged during the run:"
grep -E 'cleaned log' "$TMP/sluice.log" | sed -E 's/.*(partition=[^ ]+).*(read=[0-9]+).*(written=[0-9]+).*(ms=[0-9]+).*/  \1 \2 \3 \4/' | head -20
