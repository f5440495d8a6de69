#!/usr/bin/env bash
# Core scaling (issue 16): a broker with N shards on CPUs 0..N-1 and the native generator
# (sluice-bench --client native) pinned to the remaining CPUs, for N in $SHARDS; one table of
# produce msgs/s, MB/s, p99 publish-to-ack, the broker's CPU use, and N-shard / (N x 1-shard).
#
#   perf/scaling.sh                                   # release binaries in target/release
#   SHARDS="1 2" DURATION_S=2 WARMUP_S=1 perf/scaling.sh   # a quick local check
#
# Knobs: SHARDS ["1 2 4 8 14"], DURATION_S [15] measured seconds per leg, WARMUP_S [3],
# PARTITIONS [112] (divisible by 1, 2, 4, 8, 14; placement hashes them onto shards),
# PRODUCERS [32] native producers (one connection each, 8 requests in flight; the same for every
# N, so the offered workload is identical), ACKS [1], SINK [1] (also run the generator against
# its built-in sink on the same CPUs: its own ceiling there), SINK_DURATION_S [DURATION_S], SLUICE_BIN, BENCH_BIN, RESULTS
# [perf/out/scaling-<time>], CPUS [nproc], ALLOW_OVERLAP [0; 1 = run N >= CPUS with the
# generator on the last CPU: a smoke test of the script, not a measurement]. Needs taskset
# and python3; no iperf3.
#
# What is measured per N: one sluice-bench run against a fresh broker (`--cores N`, shard i
# pinned to CPU i by pin.threads), produce only (no consumers), 1 KiB messages, acks=$ACKS,
# batch 128 KiB, unkeyed (sticky) partitioning. The broker's CPU seconds (utime+stime from
# /proc/PID/stat) are read before and after the run, so "broker cores busy" = CPU s / wall s
# of the run (warm-up and topic creation included) and tells whether the broker or the
# generator was the limit. Data dirs are kept small by retention (64 MiB per partition).
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT

SHARDS=${SHARDS:-"1 2 4 8 14"}
DURATION_S=${DURATION_S:-15}
WARMUP_S=${WARMUP_S:-3}
PARTITIONS=${PARTITIONS:-112}
PRODUCERS=${PRODUCERS:-32}
ACKS=${ACKS:-1}
SINK=${SINK:-1}
SINK_DURATION_S=${SINK_DURATION_S:-$DURATION_S}
CPUS=${CPUS:-$NPROC}
RESULTS=${RESULTS:-$ROOT/perf/out/scaling-$(date -u +%Y%m%dT%H%M%SZ)}

for tool in taskset python3; do
  command -v "$tool" >/dev/null || { echo "scaling: $tool missing" >&2; exit 1; }
done
for bin in "$SLUICE_BIN" "$BENCH_BIN"; do
  [[ -x $bin ]] || { echo "scaling: $bin missing (cargo build --release --workspace)" >&2; exit 1; }
done
mkdir -p "$RESULTS"
: >"$RESULTS/commands.txt"

workload=$RESULTS/workload.toml
sed -E -e "s/^partitions_per_topic *=.*/partitions_per_topic = $PARTITIONS/" \
  -e "s/^producers_per_topic *=.*/producers_per_topic = $PRODUCERS/" \
  -e "s/^consumers_per_subscription *=.*/consumers_per_subscription = 0/" \
  -e "s/^consumer_mode *=.*/consumer_mode = \"assign\"/" \
  -e "s/^name *=.*/name = \"scaling-${PARTITIONS}p-1kb-max\"/" \
  "$ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml" >"$workload.tmp"
with_acks "$workload.tmp" "$ACKS" "$workload"
rm -f "$workload.tmp"

config=$RESULTS/broker.toml
cat >"$config" <<'EOF'
"log.segment.bytes" = 16777216
"log.retention.bytes" = 67108864
"log.retention.check.interval.ms" = 1000
EOF

# cpu_ticks PID: utime+stime of a process in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# leg NAME BENCH_CPUS SECONDS ARGS...: one sluice-bench run, logged; its summary in
# $RESULTS/NAME.
leg() {
  local name=$1 cpus=$2 seconds=$3
  shift 3
  local cmd=(taskset -c "$cpus" "$BENCH_BIN" run -w "$workload" --client native --consumers 0
    --consumer-mode assign --duration-s "$seconds" --warmup-s "$WARMUP_S"
    --out "$RESULTS/$name" --quiet "$@")
  printf '%s\t%s\n' "$name" "${cmd[*]}" >>"$RESULTS/commands.txt"
  log "$name: ${cmd[*]}"
  "${cmd[@]}" >"$RESULTS/$name.stdout" 2>"$RESULTS/$name.stderr" || {
    log "$name failed; stderr:"
    tail -20 "$RESULTS/$name.stderr" >&2
    return 1
  }
}

machine_note >"$RESULTS/machine.txt"
rows=$RESULTS/rows.tsv
: >"$rows"
for n in $SHARDS; do
  broker_cpus=0-$((n - 1))
  bench_cpus=$n-$((CPUS - 1))
  if ((n >= CPUS)); then
    if [[ ${ALLOW_OVERLAP:-0} != 1 ]]; then
      log "skipping N=$n: needs at least one CPU left for the generator ($CPUS CPUs)"
      continue
    fi
    # Local smoke test of the script only: the generator shares the last broker CPU.
    broker_cpus=0-$((CPUS - 1))
    bench_cpus=$((CPUS - 1))
  fi
  sink_rate=""
  if [[ $SINK == 1 ]]; then
    if leg "sink-$n" "$bench_cpus" "$SINK_DURATION_S" --sink; then
      sink_rate=$(json "$RESULTS/sink-$n/summary.json" "s['runs'][0]['throughput']['produce_msgs_per_s']")
    fi
  fi
  BROKER_COMMANDS=$RESULTS/brokers.txt
  sluice_start "shards-$n" "$broker_cpus" --cores "$n" --config "$config"
  t0=$(date +%s.%N)
  c0=$(cpu_ticks "$BROKER_PID")
  ok=1
  leg "broker-$n" "$bench_cpus" "$DURATION_S" -b "shards-$n=$BROKER_ADDR" || ok=0
  c1=$(cpu_ticks "$BROKER_PID")
  t1=$(date +%s.%N)
  sluice_stop
  rm -rf "${PERF_WORK:?}/shards-$n"
  ((ok)) || continue
  python3 - "$RESULTS/broker-$n/summary.json" "$n" "$broker_cpus" "$bench_cpus" \
    "$(((c1 - c0)))" "$HZ" "$t0" "$t1" "${sink_rate:-nan}" >>"$rows" <<'EOF'
import json, sys
path, n, bcpus, gcpus, ticks, hz, t0, t1, sink = sys.argv[1:]
r = [r for r in json.load(open(path))["runs"] if not r["is_sink"]][0]
cpu_s = int(ticks) / int(hz)
wall = float(t1) - float(t0)
t = r["throughput"]
print("\t".join(str(x) for x in [
    n, bcpus, gcpus, t["produce_msgs_per_s"], t["produce_mb_per_s"],
    r["publish_latency_ms"]["p99_ms"], cpu_s / wall, r["produce_errors"], sink]))
EOF
done

python3 - "$rows" "$RESULTS/table.md" <<'EOF'
import math, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
base = next((float(r[3]) for r in rows if r[0] == "1"), None)
out = ["| shards N | broker CPUs | generator CPUs | produce msg/s | produce MB/s | "
       "p99 publish-to-ack ms | broker cores busy | N-shard / (N x 1-shard) | "
       "generator ceiling (sink) msg/s | errors |",
       "|--:|---|---|--:|--:|--:|--:|--:|--:|--:|"]
for n, bc, gc, msgs, mb, p99, busy, errs, sink in rows:
    ratio = float(msgs) / (int(n) * base) if base else float("nan")
    sink_s = "-" if math.isnan(float(sink)) else f"{float(sink):,.0f}"
    out.append(f"| {n} | {bc} | {gc} | {float(msgs):,.0f} | {float(mb):,.1f} | {float(p99):.2f} | "
               f"{float(busy):.2f} | {ratio:.2f} | {sink_s} | {errs} |")
text = "\n".join(out) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
EOF
echo "machine: $(cat "$RESULTS/machine.txt")"
echo "results: $RESULTS"
cat "$RESULTS/commands.txt"
cat "$RESULTS/brokers.txt" 2>/dev/null || true
