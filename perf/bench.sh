#!/usr/bin/env bash
# Broker benchmarks: runs the standard workloads and the machine's own limits in one go and
# refreshes the generated block of BENCHMARKS.md (perf/README.md, "Broker benchmarks").
#
#   perf/bench.sh                   # = make bench (~5 min with the defaults)
#   DURATION_S=30 perf/bench.sh     # longer measured windows
#
# Knobs: DURATION_S [20] measured seconds of the max-rate run, FIXED_DURATION_S [20] of the
# fixed-rate runs, FIXED_RATE [half the max], LOW_RATE [10000], SCALE_DURATION_S [10],
# WARMUP_S [3], WORKLOAD [the 16-partition 1 KiB max-rate one], ACKS [1] (overrides the
# workload's), CLIENT [rdkafka] (producer client: rdkafka | native, bench/README.md), CONSUMER_MODE [assign], IPERF_S [5], DISK_MIB [1024], FETCH_MIB [256],
# FETCH_ROUNDS [4], FETCH_BENCH_BIN, BROKER_CPUS / BENCH_CPUS / SCALE_CPUS (taskset lists),
# RESULTS [perf/out/bench-<time>], MARKDOWN [BENCHMARKS.md], SKIP_BUILD=1.
#
# Steps (each one's exact command is logged to $RESULTS/commands.txt and printed next to its
# numbers in BENCHMARKS.md):
#   1. limits: iperf3 over loopback (server on BROKER_CPUS, client on BENCH_CPUS); dd and fio
#      sequential 1 MiB writes in the data dir's filesystem
#   2. max rate: the workload (acks=$ACKS) against Sluice and the built-in sink in one
#      sluice-bench run (the sink run is the generator's own ceiling)
#   3. fixed rate at half the measured max (or FIXED_RATE): publish-to-ack and end-to-end
#      percentiles; and the same at LOW_RATE [10000 msg/s; 0 = skip], away from saturation.
#      Both also run against the sink: the generator's own latency floor at that rate
#   4. scaling: --cores 1 vs --cores N (N = CPUs in SCALE_CPUS [all]), both brokers in one run
#   5. zero-copy vs copy fetch: `examples/fetch_bench.rs` when present, else the workload
#      against brokers with fetch.zero.copy = true / false
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT

DURATION_S=${DURATION_S:-20}
FIXED_DURATION_S=${FIXED_DURATION_S:-20}
LOW_RATE=${LOW_RATE:-10000}
SCALE_DURATION_S=${SCALE_DURATION_S:-10}
WARMUP_S=${WARMUP_S:-3}
WORKLOAD=${WORKLOAD:-$ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml}
ACKS=${ACKS:-1}
CLIENT=${CLIENT:-rdkafka}
CONSUMER_MODE=${CONSUMER_MODE:-assign}
IPERF_S=${IPERF_S:-5}
DISK_MIB=${DISK_MIB:-1024}
FETCH_MIB=${FETCH_MIB:-256}
FETCH_ROUNDS=${FETCH_ROUNDS:-4}
RESULTS=${RESULTS:-$ROOT/perf/out/bench-$(date -u +%Y%m%dT%H%M%SZ)}
MARKDOWN=${MARKDOWN:-$ROOT/BENCHMARKS.md}

for tool in iperf3 fio taskset python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing (make bench-deps)" >&2; exit 1; }
done
[[ ${SKIP_BUILD:-0} == 1 ]] || build_release
mkdir -p "$RESULTS"
: >"$RESULTS/commands.txt"
BROKER_COMMANDS=$RESULTS/brokers.txt
: >"$BROKER_COMMANDS"
BENCH=(taskset -c "$BENCH_CPUS" "$BENCH_BIN" run --client "$CLIENT")

# record KEY COMMAND...: runs COMMAND, logging it under KEY for the report.
record() {
  local key=$1
  shift
  printf '%s\t%s\n' "$key" "$*" >>"$RESULTS/commands.txt"
  log "$key: $*"
  local status=0
  "$@" || status=$?
  if ((status != 0)); then
    log "$key failed (exit $status); the report shows n/a for it"
    printf '%s\t%s\n' "$key" "$status" >>"$RESULTS/failed.txt"
  fi
  return 0
}

machine_note >"$RESULTS/machine.txt"
{
  echo "broker_cpus=$BROKER_CPUS"
  echo "bench_cpus=$BENCH_CPUS"
  echo "acks=$ACKS"
  echo "client=$CLIENT"
  echo "consumer_mode=$CONSUMER_MODE"
  echo "git=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo +dirty)"
} >"$RESULTS/setup.txt"

# The workload with acks overridden, as a file next to the results.
name=$(basename "$WORKLOAD" .toml)
workload=$RESULTS/$name-acks$ACKS.toml
with_acks "$WORKLOAD" "$ACKS" "$workload"

# ---- 1. machine limits ---------------------------------------------------------------------
iperf_port=$((20000 + RANDOM % 20000))
taskset -c "$BROKER_CPUS" iperf3 -s -B 127.0.0.1 -p "$iperf_port" >"$PERF_WORK/iperf3-server.log" 2>&1 &
iperf_pid=$!
PERF_PIDS+=("$iperf_pid")
for _ in $(seq 200); do
  [[ -n $(ss -Hltn "sport = :$iperf_port") ]] && break
  sleep 0.05
done
record iperf3 taskset -c "$BENCH_CPUS" iperf3 -c 127.0.0.1 -p "$iperf_port" -t "$IPERF_S" -J \
  >"$RESULTS/iperf3.json"
kill "$iperf_pid" 2>/dev/null || true
wait "$iperf_pid" 2>/dev/null || true

disk_dir=$PERF_WORK/disk
mkdir -p "$disk_dir"
record dd dd if=/dev/zero of="$disk_dir/dd.bin" bs=1M count="$DISK_MIB" conv=fdatasync \
  2>"$RESULTS/dd.txt"
rm -f "$disk_dir/dd.bin"
record fio fio --name=seqwrite --directory="$disk_dir" --rw=write --bs=1M --size="${DISK_MIB}M" \
  --ioengine=io_uring --iodepth=4 --end_fsync=1 --output-format=json >"$RESULTS/fio.json"
rm -f "$disk_dir"/seqwrite*

# ---- 2. max rate, with the generator's ceiling ----------------------------------------------
sluice_start max "$BROKER_CPUS"
record max "${BENCH[@]}" -w "$workload" --sink -b "sluice=$BROKER_ADDR" --duration-s "$DURATION_S" \
  --warmup-s "$WARMUP_S" --consumer-mode "$CONSUMER_MODE" --out "$RESULTS/max" --quiet \
  >"$RESULTS/max.stdout"
sluice_stop

max_rate=$(json "$RESULTS/max/summary.json" \
  "int([r for r in s['runs'] if not r['is_sink']][0]['throughput']['produce_msgs_per_s'])")
half_rate=${FIXED_RATE:-$((max_rate / 2))}
((half_rate > 0)) || { echo "bench: max-rate run produced nothing" >&2; exit 1; }
echo "half_rate=$half_rate" >>"$RESULTS/setup.txt"

# ---- 3. fixed rate at half the max ------------------------------------------------------------
sluice_start fixed "$BROKER_CPUS"
record fixed "${BENCH[@]}" -w "$workload" --sink -b "sluice=$BROKER_ADDR" --rate "$half_rate" \
  --duration-s "$FIXED_DURATION_S" --warmup-s "$WARMUP_S" --consumer-mode "$CONSUMER_MODE" \
  --out "$RESULTS/fixed" --quiet >"$RESULTS/fixed.stdout"
sluice_stop

# ---- 3b. fixed low rate: latency away from saturation --------------------------------------
if ((LOW_RATE > 0)); then
  sluice_start low "$BROKER_CPUS"
  record low "${BENCH[@]}" -w "$workload" --sink -b "sluice=$BROKER_ADDR" --rate "$LOW_RATE" \
    --duration-s "$FIXED_DURATION_S" --warmup-s "$WARMUP_S" --consumer-mode "$CONSUMER_MODE" \
    --out "$RESULTS/low" --quiet >"$RESULTS/low.stdout"
  sluice_stop
fi

# ---- 4. scaling: one shard vs one shard per CPU -------------------------------------------
# The N-shard broker gets every CPU of SCALE_CPUS (default: all of them, so on a small machine
# it shares CPUs with the generator); the 1-shard broker the first of them.
SCALE_CPUS=${SCALE_CPUS:-0-$((NPROC - 1))}
scale_n=$(taskset -c "$SCALE_CPUS" nproc)
echo "scale_cpus=$SCALE_CPUS" >>"$RESULTS/setup.txt"
if ((scale_n > 1)); then
  first_cpu=$(taskset -c "$SCALE_CPUS" python3 -c 'import os; print(min(os.sched_getaffinity(0)))')
  sluice_start cores1 "$first_cpu" --cores 1
  addr1=$BROKER_ADDR
  sluice_start coresN "$SCALE_CPUS" --cores "$scale_n"
  addrN=$BROKER_ADDR
  record scale "${BENCH[@]}" -w "$workload" -b "cores-1=$addr1" -b "cores-$scale_n=$addrN" \
    --duration-s "$SCALE_DURATION_S" --warmup-s "$WARMUP_S" --consumer-mode "$CONSUMER_MODE" \
    --out "$RESULTS/scale" --quiet >"$RESULTS/scale.stdout"
  stop_all
else
  log "scaling skipped: SCALE_CPUS=$SCALE_CPUS is one CPU"
fi

# ---- 5. zero-copy vs copy fetch ---------------------------------------------------------------
# fetch_bench runs the `sluice` of its own profile dir (../sluice from examples/).
FETCH_BENCH_BIN=${FETCH_BENCH_BIN:-$CARGO_TARGET_DIR/release/examples/fetch_bench}
if [[ -f $ROOT/examples/fetch_bench.rs ]]; then
  [[ ${SKIP_BUILD:-0} == 1 ]] || (cd "$ROOT" && cargo build --release --example fetch_bench)
  record zerocopy taskset -c "$BROKER_CPUS" "$FETCH_BENCH_BIN" \
    --total-mib "$FETCH_MIB" --rounds "$FETCH_ROUNDS" >"$RESULTS/zerocopy.txt"
else
  for mode in true false; do
    printf '"fetch.zero.copy" = %s\n' "$mode" >"$PERF_WORK/zc-$mode.toml"
  done
  sluice_start zc "$BROKER_CPUS" --config "$PERF_WORK/zc-true.toml"
  addr_zc=$BROKER_ADDR
  sluice_start copy "$BROKER_CPUS" --config "$PERF_WORK/zc-false.toml"
  addr_copy=$BROKER_ADDR
  record zerocopy_workload "${BENCH[@]}" -w "$workload" -b "zero-copy=$addr_zc" -b "copy=$addr_copy" \
    --duration-s "$SCALE_DURATION_S" --warmup-s "$WARMUP_S" --consumer-mode "$CONSUMER_MODE" \
    --out "$RESULTS/zerocopy" --quiet >"$RESULTS/zerocopy.stdout"
  stop_all
fi

# ---- report ------------------------------------------------------------------------------------
python3 "$ROOT/perf/bench_report.py" "$RESULTS" "$MARKDOWN"
log "results in $RESULTS; refreshed $MARKDOWN"
