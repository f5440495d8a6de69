#!/usr/bin/env bash
# Starts a fresh Sluice broker on a free loopback port with a temporary data dir, runs
# sluice-bench against it (as broker "sluice"), then stops the broker and removes the data.
#
#   bench/run-sluice.sh SLUICE_BIN BENCH_BIN [sluice-bench run args...]
#   bench/run-sluice.sh target/release/sluice target/release/sluice-bench \
#       -w bench/workloads/smoke.toml --out bench-out/smoke --quiet --fail-on-loss
#
# Exits with sluice-bench's status (1 if the broker never became ready).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,9p' "$0" >&2
  exit 64
fi
sluice_bin=$1
bench_bin=$2
shift 2
ready_timeout_s=${READY_TIMEOUT_S:-30}

work=$(mktemp -d)
broker_pid=""
cleanup() {
  if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$sluice_bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" >"$work/broker.log" 2>&1 &
broker_pid=$!

addr=""
deadline=$((SECONDS + ready_timeout_s))
while [[ -z "$addr" ]]; do
  addr=$(grep -o 'ready listening=[0-9.:]*' "$work/broker.log" | head -n1 | cut -d= -f2 || true)
  if [[ -n "$addr" ]]; then break; fi
  if ! kill -0 "$broker_pid" 2>/dev/null || ((SECONDS >= deadline)); then
    echo "run-sluice: broker did not become ready; its log:" >&2
    cat "$work/broker.log" >&2
    exit 1
  fi
  sleep 0.05
done
echo "run-sluice: broker ready at $addr" >&2

status=0
"$bench_bin" run --broker "sluice=$addr" "$@" || status=$?
if ((status != 0)); then
  echo "run-sluice: sluice-bench exited $status; broker log tail:" >&2
  tail -n 20 "$work/broker.log" >&2
fi
exit "$status"
