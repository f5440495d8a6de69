#!/usr/bin/env bash
# The 16-core device-machine run of issue 16, as one command: (1) core scaling
# (perf/scaling.sh), (2) acks=all before / after the shard-wide group commit / without fsync
# (perf/ab.sh), (3) io_uring setup flags off / on (perf/ab.sh). Results: a few text files in
# $OUT (the device tool brings back at most 8), the full tables also on stdout.
#
# Layout (a copy made by perf/device-pack.sh, so it runs from any checkout): DIR/sluice,
# DIR/sluice-before (the same tree before the group commit), DIR/sluice-bench (stripped release
# binaries), DIR/perf/*.sh, DIR/bench/workloads/*.toml; run as `bash DIR/perf/device-issue16.sh`.
# Knobs: STEPS ["scaling acks flags"], SCALE_DURATION_S [12], AB_DURATION_S [8].
set -uo pipefail
D=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/issue16-out}
mkdir -p "$OUT"
export SLUICE_BIN=$D/sluice BENCH_BIN=$D/sluice-bench CARGO_TARGET_DIR=$D/target
STEPS=${STEPS:-"scaling acks flags"}
N=$(nproc)
last=$((N - 1))
{
  echo "nproc=$N kernel=$(uname -r)"
  grep -m1 'model name' /proc/cpuinfo
  df -h /tmp | tail -1
  findmnt -no FSTYPE,SOURCE -T /tmp 2>/dev/null
  free -g | head -2
} | tee "$OUT/machine.txt"

for step in $STEPS; do
  case $step in
    scaling)
      RESULTS=/tmp/i16-scaling DURATION_S=${SCALE_DURATION_S:-12} WARMUP_S=3 SINK=1 SINK_DURATION_S=5 \
        bash "$D/perf/scaling.sh" >"$OUT/scaling.txt" 2>"$OUT/scaling.log"
      cat "$OUT/scaling.txt"
      ;;
    acks)
      # 4 shards (CPUs 0-3), generator on the rest; 16 partitions, 8 native producers.
      BROKER_CPUS=0-3 BENCH_CPUS=4-$last CORES=4 PARTITIONS=16 PRODUCERS=8 ACKS=all ROUNDS=2 \
        DURATION_S=${AB_DURATION_S:-8} WARMUP_S=2 RESULTS=/tmp/i16-acks \
        VARIANTS="before:$D/sluice-before after:$D/sluice no-fsync:$D/sluice:\"log.flush.on.acks.all\"=false" \
        bash "$D/perf/ab.sh" >"$OUT/acks.txt" 2>"$OUT/acks.log"
      cat "$OUT/acks.txt"
      ;;
    flags)
      # One shard (CPU 0), acks=1, generator on the rest.
      BROKER_CPUS=0 BENCH_CPUS=1-$last CORES=1 PARTITIONS=16 PRODUCERS=8 ACKS=1 ROUNDS=2 \
        DURATION_S=${AB_DURATION_S:-8} WARMUP_S=2 RESULTS=/tmp/i16-flags \
        VARIANTS="plain:$D/sluice ring-flags:$D/sluice:\"shard.io_uring.setup\"=\"SINGLE_ISSUER,DEFER_TASKRUN,COOP_TASKRUN\"" \
        bash "$D/perf/ab.sh" >"$OUT/flags.txt" 2>"$OUT/flags.log"
      cat "$OUT/flags.txt"
      ;;
  esac
done
