#!/usr/bin/env bash
# Where an acks=all produce waits (issue 16, session 8): one broker under the max-rate acks=all
# workload (16 partitions, 4 native producers, 1 KiB records, 128 KiB batches), with
#   - the disk's own figure for the same pattern in the same minutes, before and after the leg:
#     fio, 4 writers each appending 128 KiB and fdatasyncing after every write, pinned to the
#     broker's CPUs, both with fio's default preallocation (`--fallocate=native`: the file is
#     allocated and sized first, every write is an overwrite of one extent) and without it
#     (`--fallocate=none`: appends that grow the file and allocate blocks at writeback, as the
#     broker's segments do);
#   - an off-CPU profile of the broker: `perf sched record -g` for 2 s, summed per thread kind
#     and per kernel function the thread slept in (`perf sched timehist`), and the run-queue
#     wait ("sch delay") of the shard and of its io-wq workers;
#   - each io_uring op's latency from submission to completion, per opcode (`perf record` of
#     the io_uring tracepoints for 1.5 s, perf/uring_op_latency.py);
#   - the broker's own durability wait (`sluice_fsync_wait_seconds` from /metrics).
#
#   perf/offcpu-acks.sh                                   # target/release/sluice, defaults
#   SLUICE_BIN=/tmp/sluice-base TOML='"log.writeback.start.bytes"=0' perf/offcpu-acks.sh
#
# Needs perf (with the sched and io_uring tracepoints: root) and fio. Knobs: TOML (broker
# config lines separated by ';'), DURATION_S [7], RESULTS [perf/out/offcpu-acks-<time>]; the
# CPU sets of lib.sh.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT

TOML=${TOML:-}
DURATION_S=${DURATION_S:-7}
RESULTS=${RESULTS:-$ROOT/perf/out/offcpu-acks-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
disk=$PERF_WORK/disk
mkdir -p "$disk"

# fio_appends TAG FALLOCATE: the 4-writer 128 KiB + fdatasync figure into $RESULTS/fio-TAG.json.
fio_appends() {
  taskset -c "$BROKER_CPUS" fio --name=appends --directory="$disk" --rw=write --bs=128k --size=48m \
    --numjobs=4 --ioengine=psync --fdatasync=1 --fallocate="$2" --output-format=json \
    >"$RESULTS/fio-$1.json"
  rm -f "$disk"/appends.*
  python3 - "$RESULTS/fio-$1.json" "$1" <<'PY'
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
b = sum(j["write"]["io_bytes"] for j in jobs)
t = max(j["job_runtime"] for j in jobs) / 1000
lat = sum(j["sync"]["lat_ns"]["mean"] for j in jobs) / len(jobs) / 1e6
print(f"fio {sys.argv[2]}: {b / t / 1e6:.1f} MB/s ({b / t / 1024:,.0f} 1 KiB msg/s), fdatasync mean {lat:.2f} ms")
PY
}

fio_appends native-before native
fio_appends none-before none
printf '%s\n' "$TOML" | tr ';' '\n' >"$RESULTS/broker.toml"
sluice_start offcpu "$BROKER_CPUS" --cores 1 --config "$RESULTS/broker.toml"
admin=$(grep -o 'admin listening=[0-9.:]*' "$PERF_WORK/offcpu/broker.log" | head -n1 | cut -d= -f2)
produce_only_workload "$RESULTS/workload.toml" 16 4 all 0
taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$RESULTS/workload.toml" --client native --consumers 0 \
  --consumer-mode assign --duration-s "$DURATION_S" --warmup-s 1 --rate 0 --out "$RESULTS/leg" \
  --quiet -b "offcpu=$BROKER_ADDR" >"$RESULTS/bench.stdout" 2>&1 &
bench=$!
sleep 3
perf sched record -a -g -o "$RESULTS/sched.data" -- sleep 2 >"$RESULTS/perf-sched.log" 2>&1
perf record -e io_uring:io_uring_submit_req -e io_uring:io_uring_complete -p "$BROKER_PID" \
  -o "$RESULTS/uring.data" -- sleep 1.5 >"$RESULTS/perf-uring.log" 2>&1
wait "$bench"
broker_pid=$BROKER_PID
curl -s "http://$admin/metrics" >"$RESULTS/metrics.txt"
sluice_stop
fio_appends none-after none
fio_appends native-after native

python3 - "$RESULTS/leg/summary.json" "$RESULTS/metrics.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
m = {l.split()[0]: float(l.split()[-1]) for l in open(sys.argv[2])
     if l.startswith("sluice_fsync_wait_seconds_")}
print(f"broker: {r['throughput']['produce_msgs_per_s']:,.0f} msg/s, publish p99 "
      f"{r['publish_latency_ms']['p99_ms']:.1f} ms; durability wait mean "
      f"{1000 * m['sluice_fsync_wait_seconds_sum'] / max(1, m['sluice_fsync_wait_seconds_count']):.2f} ms")
PY
perf script -i "$RESULTS/uring.data" 2>/dev/null | python3 "$ROOT/perf/uring_op_latency.py"
perf sched timehist -i "$RESULTS/sched.data" 2>/dev/null >"$RESULTS/timehist.txt"
grep "/$broker_pid]" "$RESULTS/timehist.txt" | awk '
  { kind = ($3 ~ /^iou-wrk/) ? "io-wq" : "shard"; off[kind " " $NF] += $4; rq[kind] += $5; run[kind] += $6 }
  END {
    for (k in rq) printf "%s: run %.0f ms, run-queue wait %.0f ms\n", k, run[k], rq[k]
    for (k in off) if (off[k] >= 1) printf "%s off-CPU in %s: %.0f ms\n", substr(k, 1, index(k, " ") - 1), substr(k, index(k, " ") + 1), off[k]
  }' | sort
echo "results: $RESULTS (2 s of perf sched; io-wq off-CPU in ret_from_fork_asm = idle workers)"
