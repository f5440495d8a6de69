#!/usr/bin/env bash
# Where the publish-to-ack tail comes from at a fixed rate (issue 16, session 7): alternating
# legs, in one run, of the native generator against (a) `sluice-bench sink` (a no-op Kafka
# sink: the generator's own tail and the machine's) and (b) each broker variant, every server
# on BROKER_CPUS, the generator on BENCH_CPUS. Per broker leg, over the measured window:
#   - the shard thread's schedstat deltas (/proc/PID/task/TID/schedstat: ns on CPU, ns waiting
#     on a run queue, timeslices), and its voluntary / involuntary context switches;
#   - io_uring ops submitted and punted to io-wq (perf tracepoints, when perf may read them);
#   - the io-wq workers' CPU time (threads `iou-wrk-*`, summed utime+stime from /proc);
#   - publish-to-ack p50 / p99 / p99.9 / p99.99 / max (sluice-bench summary.json).
#
#   VARIANTS='after:target/release/sluice' RATE=235000 ROUNDS=3 perf/tail.sh
#   VARIANTS='before:/tmp/sluice-before after:target/release/sluice' RATE=235000 perf/tail.sh
#
# A variant is NAME:BINARY[:TOML] as in perf/ab.sh. Knobs: ACKS [1], RATE [235000 msg/s: half
# of session 5's max], ROUNDS [3], DURATION_S [6], WARMUP_S [1], PARTITIONS [16], PRODUCERS [4],
# SINK [1: include the sink leg], RESULTS [perf/out/tail-<time>].
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT

VARIANTS=${VARIANTS:?"VARIANTS='name:binary[:toml] ...'"}
ACKS=${ACKS:-1}
RATE=${RATE:-235000}
ROUNDS=${ROUNDS:-3}
DURATION_S=${DURATION_S:-6}
WARMUP_S=${WARMUP_S:-1}
PARTITIONS=${PARTITIONS:-16}
PRODUCERS=${PRODUCERS:-4}
SINK=${SINK:-1}
RESULTS=${RESULTS:-$ROOT/perf/out/tail-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
: >"$RESULTS/commands.txt"
BROKER_COMMANDS=$RESULTS/brokers.txt

workload=$RESULTS/workload.toml
produce_only_workload "$workload" "$PARTITIONS" "$PRODUCERS" "$ACKS"

# shard_tid PID: the broker's shard thread: of the threads named sluice-shard* (compio's
# blocking-pool threads inherit the name), the one with the most CPU time so far.
shard_tid() {
  local t best="" most=-1 ticks
  for t in /proc/"$1"/task/*; do
    grep -q '^sluice-shard' "$t/comm" 2>/dev/null || continue
    ticks=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)
    if ((ticks > most)); then
      most=$ticks
      best=$(basename "$t")
    fi
  done
  echo "$best"
}

# thread_sample PID TID: "on_cpu_ns runq_wait_ns slices voluntary involuntary iowq_ticks".
thread_sample() {
  local pid=$1 tid=$2 sched vol invol wrk=0 t
  sched=$(cat "/proc/$pid/task/$tid/schedstat")
  vol=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$pid/task/$tid/status")
  invol=$(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "/proc/$pid/task/$tid/status")
  for t in /proc/"$pid"/task/*; do
    if grep -q '^iou-wrk' "$t/comm" 2>/dev/null; then
      wrk=$((wrk + $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)))
    fi
  done
  echo "$sched $vol $invol $wrk"
}

# leg NAME TARGET_ADDR: one generator run at RATE; its summary lands in RESULTS/NAME.
leg() {
  local cmd=(taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$workload" --client native
    --consumers 0 --consumer-mode assign --duration-s "$DURATION_S" --warmup-s "$WARMUP_S"
    --rate "$RATE" --out "$RESULTS/$1" --quiet -b "$1=$2")
  printf '%s\t%s\n' "$1" "${cmd[*]}" >>"$RESULTS/commands.txt"
  "${cmd[@]}" >"$RESULTS/$1.stdout" 2>"$RESULTS/$1.stderr"
}

HZ=$(getconf CLK_TCK)
can_trace=1
perf stat -e io_uring:io_uring_submit_req -- true >/dev/null 2>&1 || can_trace=0
machine_note >"$RESULTS/machine.txt"
for round in $(seq 1 "$ROUNDS"); do
  if ((SINK)); then
    name=sink-r$round
    taskset -c "$BROKER_CPUS" "$BENCH_BIN" sink --listen 127.0.0.1:0 --partitions "$PARTITIONS" \
      >"$RESULTS/$name.sink.log" 2>&1 &
    sink_pid=$!
    PERF_PIDS+=("$sink_pid")
    addr=""
    for _ in $(seq 1 200); do
      addr=$(grep -o 'ready listening=[0-9.:]*' "$RESULTS/$name.sink.log" | cut -d= -f2 || true)
      [[ -n $addr ]] && break
      sleep 0.05
    done
    log "$name: sink at $addr"
    leg "$name" "$addr" || log "$name failed"
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    echo "$name sink $round $(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS/legs.txt"
  fi
  for spec in $VARIANTS; do
    IFS=: read -r name bin toml <<<"$spec"
    config=$RESULTS/$name.toml
    tr ';' '\n' <<<"${toml:-}" >"$config"
    SLUICE_BIN=$bin
    legname=$name-r$round
    sluice_start "$legname" "$BROKER_CPUS" --cores 1 --config "$config"
    # The sample brackets the measured window: the warm-up (and topic creation) left out.
    (
      sleep "$((WARMUP_S + 2))"
      tid=$(shard_tid "$BROKER_PID")
      thread_sample "$BROKER_PID" "$tid" >"$RESULTS/$legname.s0"
      if ((can_trace)); then
        perf stat -x, -e io_uring:io_uring_submit_req,io_uring:io_uring_queue_async_work \
          -p "$BROKER_PID" -- sleep "$((DURATION_S - 2))" 2>"$RESULTS/$legname.perf" || true
      else
        sleep "$((DURATION_S - 2))"
      fi
      thread_sample "$BROKER_PID" "$tid" >"$RESULTS/$legname.s1"
    ) &
    sampler=$!
    leg "$legname" "$BROKER_ADDR" || log "$legname failed"
    wait "$sampler" || true
    sluice_stop
    rm -rf "${PERF_WORK:?}/$legname"
    echo "$legname $name $round $(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS/legs.txt"
  done
done

python3 - "$RESULTS" "$HZ" "$((DURATION_S - 2))" <<'EOF'
import json, os, sys
res, hz, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
out = ["| leg | load | p50 ms | p99 ms | p99.9 ms | p99.99 ms | max ms | msg/s | shard on-CPU % | "
       "shard run-queue wait ms/s | wait per slice us | vol/invol cs per s | io-wq CPU % | "
       "io_uring ops/s | punted % |",
       "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
for line in open(os.path.join(res, "legs.txt")):
    leg, name, rnd, load = line.split()
    try:
        r = json.load(open(os.path.join(res, leg, "summary.json")))["runs"][0]
    except (OSError, KeyError, IndexError, ValueError):
        out.append(f"| {leg} | {load} | failed |")
        continue
    p = r["publish_latency_ms"]
    cells = [leg, load] + [f"{p[k]:.2f}" for k in ("p50_ms", "p99_ms", "p99_9_ms", "p99_99_ms", "max_ms")]
    cells.append(f"{r['throughput']['produce_msgs_per_s']:,.0f}")
    s0, s1 = (os.path.join(res, leg + ext) for ext in (".s0", ".s1"))
    if os.path.exists(s0) and os.path.exists(s1):
        a = [int(x) for x in open(s0).read().split()]
        b = [int(x) for x in open(s1).read().split()]
        d = [y - x for x, y in zip(a, b)]
        cells += [f"{d[0] / 1e9 / window * 100:.0f}", f"{d[1] / 1e6 / window:.1f}",
                  f"{d[1] / 1e3 / d[2]:.1f}" if d[2] else "-",
                  f"{d[3] / window:,.0f} / {d[4] / window:,.0f}",
                  f"{d[5] / hz / window * 100:.0f}"]
        ops = punts = None
        try:
            for l in open(os.path.join(res, leg + ".perf")):
                f = l.strip().split(",")
                if len(f) > 2 and f[2].endswith("io_uring_submit_req"):
                    ops = float(f[0])
                if len(f) > 2 and f[2].endswith("io_uring_queue_async_work"):
                    punts = float(f[0])
        except OSError:
            pass
        cells += [f"{ops / window:,.0f}" if ops else "-",
                  f"{punts / ops * 100:.0f}" if ops and punts is not None else "-"]
    else:
        cells += ["-"] * 7
    out.append("| " + " | ".join(cells) + " |")
text = "\n".join(out) + "\n"
open(os.path.join(res, "table.md"), "w").write(text)
print(text)
EOF
echo "machine: $(cat "$RESULTS/machine.txt")"
echo "servers on CPUs $BROKER_CPUS, generator on $BENCH_CPUS, --cores 1, acks=$ACKS, rate $RATE msg/s, $PARTITIONS partitions, $PRODUCERS producers"
echo "results: $RESULTS"
sed -n 1p "$RESULTS/commands.txt"
