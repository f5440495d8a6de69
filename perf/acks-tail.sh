#!/usr/bin/env bash
# Where the acks=all publish-to-ack tail at a fixed rate comes from (issue 16, session 9): one
# broker per variant under the acks=all workload at RATE (16 partitions, 4 native producers,
# 1 KiB records), with, over the whole measured window:
#   - every io_uring op's submit and completion (`perf record` of the io_uring tracepoints;
#     perf/uring_op_latency.py --slowest: per-opcode latency, the slowest ops with their time
#     in the leg, and per 100 ms the longest FSYNC and the ops in flight; with each op's fd
#     from io_uring_file_get, perf/write_fsync_gap.py gives the write -> fdatasync hand-off);
#   - the disk's request counters every 200 ms (/sys/block/DEV/stat: writes, flushes, in flight)
#     and the broker's own write bytes (/proc/PID/io), so writes of other processes in the same
#     window show up;
#   - the generator's per-second acked rate and publish p50/p99/max (sluice-bench summary).
#
#   VARIANTS='base:/tmp/sluice-base-s9' RATE=140000 perf/acks-tail.sh
#
# Needs perf with the io_uring tracepoints (root). Knobs: VARIANTS (NAME:BINARY[:TOML] as in
# perf/ab.sh), RATE [140000], DURATION_S [6], ROUNDS [1], DEV [vda], RESULTS.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT

VARIANTS=${VARIANTS:?"VARIANTS='name:binary[:toml] ...'"}
RATE=${RATE:-140000}
DURATION_S=${DURATION_S:-6}
ROUNDS=${ROUNDS:-1}
DEV=${DEV:-vda}
RESULTS=${RESULTS:-$ROOT/perf/out/acks-tail-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
produce_only_workload "$RESULTS/workload.toml" 16 4 all 0

for round in $(seq 1 "$ROUNDS"); do
  for spec in $VARIANTS; do
    IFS=: read -r name bin toml <<<"$spec"
    leg=$name-r$round
    tr ';' '\n' <<<"${toml:-}" >"$RESULTS/$leg.toml"
    SLUICE_BIN=$bin
    sluice_start "$leg" "$BROKER_CPUS" --cores 1 --config "$RESULTS/$leg.toml"
    taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$RESULTS/workload.toml" --client native \
      --consumers 0 --consumer-mode assign --duration-s "$DURATION_S" --warmup-s 1 --rate "$RATE" \
      --out "$RESULTS/$leg" --quiet -b "$leg=$BROKER_ADDR" >"$RESULTS/$leg.stdout" 2>&1 &
    bench=$!
    perf record -e io_uring:io_uring_submit_req -e io_uring:io_uring_complete \
      -e io_uring:io_uring_file_get -p "$BROKER_PID" \
      -o "$RESULTS/$leg.uring" -- sleep $((DURATION_S + 1)) >"$RESULTS/$leg.perf.log" 2>&1 &
    rec=$!
    # Builtins only (no process per sample next to the legs): the disk's counters and the
    # broker's write_bytes every 200 ms.
    (while kill -0 "$bench" 2>/dev/null; do
       read -r stat <"/sys/block/$DEV/stat"
       wb=0
       while read -r k v; do [[ $k == write_bytes: ]] && wb=$v; done <"/proc/$BROKER_PID/io" || true
       echo "$EPOCHREALTIME $stat $wb"
       sleep 0.2
     done) >"$RESULTS/$leg.disk" &
    wait "$bench" || true
    wait "$rec" || true
    sluice_stop
    python3 - "$RESULTS/$leg/summary.json" "$RESULTS/$leg.disk" "$leg" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
p = r["publish_latency_ms"]
tl = [round(t["produce_msgs_per_s"]) for t in r.get("timeline", [])]
print(f"{sys.argv[3]}: {r['throughput']['produce_msgs_per_s']:,.0f} msg/s, publish p50 {p['p50_ms']:.2f} "
      f"p99 {p['p99_ms']:.1f} max {p['max_ms']:.1f} ms; acked msg/s per second: {tl}")
rows = [l.split() for l in open(sys.argv[2]) if len(l.split()) > 12]
if len(rows) > 1:
    a, b = rows[0], rows[-1]
    dt = float(b[0]) - float(a[0])
    w = int(b[5]) - int(a[5]); ws = (int(b[7]) - int(a[7])) * 512
    fl = int(b[16]) - int(a[16]) if len(b) > 17 else 0
    mine = int(b[-1]) - int(a[-1])
    print(f"  disk over {dt:.1f} s: {w / dt:,.0f} writes/s, {ws / dt / 1e6:.1f} MB/s written "
          f"(broker's own {mine / dt / 1e6:.1f} MB/s), {fl / dt:,.0f} flushes/s, "
          f"in-flight max {max(int(x[9]) for x in rows)}")
PY
    perf script -i "$RESULTS/$leg.uring" 2>/dev/null | python3 "$ROOT/perf/uring_op_latency.py" --slowest 8
  done
done
echo "results: $RESULTS"
