#!/usr/bin/env bash
# Log cleaner benchmark (BENCHMARKS.md "Log cleaner"):
#  1. storage level: target/release/cleaner_bench (cleaner MB/s on a large log with 10% live
#     keys next to sequential write/read of the same disk; append latency on the same thread
#     with and without the cleaner, unthrottled and throttled);
#  2. broker level: produce p99 on a one-shard broker while its cleaner compacts another
#     partition (perf/cleaner_produce_latency.py), throttled to CLEANER_MBPS.
# Env: SKIP_STORAGE (set: broker part only), SIZE_MIB (1024), FILL_MB (100), CLEANER_MBPS (10), RATE (1000 msg/s), MEASURE_S (10).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-1024}; FILL_MB=${FILL_MB:-100}; CLEANER_MBPS=${CLEANER_MBPS:-10}
RATE=${RATE:-1000}; MEASURE_S=${MEASURE_S:-10}
mkdir -p "$ROOT/bench-out"
TMP=$(mktemp -d -p "$ROOT/bench-out" cleaner.XXXXXX)
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

if [[ -z "${SKIP_STORAGE:-}" ]]; then
echo "== storage level (cleaner_bench) =="
"$ROOT/target/release/cleaner_bench" --dir "$TMP/storage" --size-mib "$SIZE_MIB" --latency-log-mib 256
for t in 0 50; do
  "$ROOT/target/release/cleaner_bench" --dir "$TMP/storage" --size-mib 64 --latency-log-mib 256 \
    --throttle-mbps "$t" | grep -E '^(latency|RESULT (idle|cleaning))'
done
fi

# One broker run; $1 = log.cleaner.enable. The "cleaning" phase of a run with the cleaner
# disabled is the A/A control: the same steps, no clean.
broker_run() {
  local enable=$1 dir="$TMP/broker-$1-$2"
  mkdir -p "$dir/data"
  printf '"log.cleaner.enable" = %s\n"log.cleaner.backoff.ms" = 100\n"log.cleaner.io.max.bytes.per.second" = %s.0\n' \
    "$enable" "$((CLEANER_MBPS * 1000000))" >"$dir/sluice.toml"
  NO_COLOR=1 RUST_LOG=info "$ROOT/target/release/sluice" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --data-dir "$dir/data" --config "$dir/sluice.toml" --cores 1 2>"$dir/sluice.log" >/dev/null &
  PID=$!
  local addr=""
  for _ in $(seq 1 300); do
    addr=$(grep -oE 'ready listening=[^[:space:]]+' "$dir/sluice.log" | head -n1 | cut -d= -f2 | tr -d '"') || true
    [[ -n "$addr" ]] && break; sleep 0.1
  done
  echo "-- log.cleaner.enable = $enable (run $2)"
  "$ROOT/.venv/bin/python" "$ROOT/perf/cleaner_produce_latency.py" "$addr" "$FILL_MB" "$RATE" "$MEASURE_S"
  if [[ $enable == true ]]; then
    # The clean must still be running at the end of the phase for the phase to count.
    for _ in $(seq 1 600); do grep -q 'cleaned log' "$dir/sluice.log" && break; sleep 0.1; done
    grep -m1 'cleaned log' "$dir/sluice.log" | sed -E 's/.*(partition=[^ ]+).*(read=[0-9]+).*(written=[0-9]+).*(ms=[0-9]+).*/   first clean: \1 \2 \3 \4/'
  fi
  if ! kill "$PID" 2>/dev/null; then
    echo "   broker exited during the run; its log:"; tail -n 20 "$dir/sluice.log" | sed 's/^/   /'
  fi
  wait "$PID" 2>/dev/null || true; PID=""
}

echo "== broker level (one shard, cleaner throttled to ${CLEANER_MBPS} MB/s, produce ${RATE} msg/s of 1 KiB, acks=1) =="
for i in 1 2; do broker_run false "$i"; broker_run true "$i"; done
