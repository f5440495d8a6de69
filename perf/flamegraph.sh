#!/usr/bin/env bash
# CPU flamegraph of the Sluice broker under load (perf/README.md, "Flamegraphs").
#
#   perf/flamegraph.sh              # = make flamegraph
#   WORKLOAD=bench/workloads/omb-1topic-16p-100b-max.toml DURATION_S=20 perf/flamegraph.sh
#
# Knobs: WORKLOAD (default the 16-partition 1 KiB max-rate one), DURATION_S [10], WARMUP_S [2],
# ACKS [1; "keep" = the workload's], RATE [0 = the workload's], CONSUMER_MODE [assign],
# CLIENT [rdkafka; native = sluice-bench's own producer, see bench/README.md], BROKER_ARGS (extra broker flags, e.g.
# "--cores 1 --config my.toml"), BROKER_CPUS / BENCH_CPUS (taskset lists), FREQ [499 Hz],
# CALL_GRAPH [dwarf,32768], OUT_DIR [perf/out], SKIP_BUILD=1 (use the binaries as built).
#
# Writes to OUT_DIR, each file prefixed with the workload's name:
#   <w>-cpu.svg          flamegraph of cpu-clock samples of every broker thread (shards and the
#                        kernel's io-wq workers `iou-wrk-*` doing punted io_uring work)
#   <w>-cpu.folded       the collapsed stacks (input of the SVG; grep-able)
#   <w>-threads.txt      share of samples per thread name
#   <w>-io_uring.txt     io_uring ops submitted per opcode, and how many were punted to io-wq
#   <w>-bench/           the sluice-bench report of the run
# Hardware counters are not available on this VM, hence the cpu-clock software event.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT

WORKLOAD=${WORKLOAD:-$ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml}
DURATION_S=${DURATION_S:-10}
WARMUP_S=${WARMUP_S:-2}
RATE=${RATE:-}
ACKS=${ACKS:-1}
CONSUMER_MODE=${CONSUMER_MODE:-assign}
BROKER_ARGS=${BROKER_ARGS:-}
FREQ=${FREQ:-499}
CALL_GRAPH=${CALL_GRAPH:-dwarf,32768}
OUT_DIR=${OUT_DIR:-$ROOT/perf/out}

for tool in perf inferno-collapse-perf inferno-flamegraph taskset; do
  command -v "$tool" >/dev/null || { echo "flamegraph: $tool missing (make bench-deps)" >&2; exit 1; }
done
[[ ${SKIP_BUILD:-0} == 1 ]] || build_release
mkdir -p "$OUT_DIR"
name=$(basename "$WORKLOAD" .toml)
workload=$WORKLOAD
if [[ $ACKS != keep ]]; then
  name=$name-acks$ACKS
  workload=$PERF_WORK/$name.toml
  with_acks "$WORKLOAD" "$ACKS" "$workload"
fi
prefix=$OUT_DIR/$name

# shellcheck disable=SC2086 # BROKER_ARGS is a list of flags
sluice_start flame "$BROKER_CPUS" $BROKER_ARGS

rate_args=()
[[ -n "$RATE" ]] && rate_args=(--rate "$RATE")
bench_run -w "$workload" -b "sluice=$BROKER_ADDR" --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" \
  --client "${CLIENT:-rdkafka}" --consumer-mode "$CONSUMER_MODE" "${rate_args[@]}" \
  --out "$prefix-bench" --quiet \
  >"$PERF_WORK/bench.stdout" 2>"$PERF_WORK/bench.stderr" &
bench_pid=$!
PERF_PIDS+=("$bench_pid")

# Both recordings cover the whole run (-p: only this broker; its idle time costs no samples).
perf record -q -e cpu-clock -F "$FREQ" --call-graph "$CALL_GRAPH" -p "$BROKER_PID" \
  -o "$PERF_WORK/cpu.data" 2>"$PERF_WORK/perf-cpu.log" &
perf_cpu_pid=$!
PERF_PIDS+=("$perf_cpu_pid")
perf record -q -e io_uring:io_uring_submit_req -e io_uring:io_uring_queue_async_work \
  -p "$BROKER_PID" -o "$PERF_WORK/uring.data" 2>"$PERF_WORK/perf-uring.log" &
perf_uring_pid=$!
PERF_PIDS+=("$perf_uring_pid")

bench_status=0
wait "$bench_pid" || bench_status=$?
kill -INT "$perf_cpu_pid" "$perf_uring_pid" 2>/dev/null || true
wait "$perf_cpu_pid" 2>/dev/null || true
wait "$perf_uring_pid" 2>/dev/null || true
sluice_stop
if ((bench_status != 0)); then
  echo "flamegraph: sluice-bench exited $bench_status:" >&2
  tail -n 20 "$PERF_WORK/bench.stderr" >&2
fi
cat "$PERF_WORK/bench.stdout"

log "rendering the flamegraph"
perf script -i "$PERF_WORK/cpu.data" 2>/dev/null | inferno-collapse-perf --all >"$prefix-cpu.folded"
inferno-flamegraph --title "sluice: $name, cpu-clock ${FREQ} Hz, $(date -u +%F)" \
  --countname samples <"$prefix-cpu.folded" >"$prefix-cpu.svg"

# Thread names are the first frame of each collapsed stack; io-wq workers are `iou-wrk-<pid>`.
awk '{ n = $NF; split($1, f, ";"); t = f[1]; sub(/-[0-9]+$/, "", t); s[t] += n; all += n }
     END { for (t in s) printf "%6.1f%%  %9.0f  %s\n", 100 * s[t] / all, s[t], t }' \
  "$prefix-cpu.folded" | sort -rn >"$prefix-threads.txt"

{
  printf "%-16s %12s %12s\n" opcode submitted punted-io-wq
  perf script -i "$PERF_WORK/uring.data" -F event,trace 2>/dev/null | awk '
    { ev = ($1 ~ /queue_async_work/) ? "punted" : "submitted"
      if (match($0, /opcode [A-Z_0-9]+/)) { op = substr($0, RSTART + 7, RLENGTH - 7); c[op, ev]++; ops[op] = 1 } }
    END { for (op in ops) printf "%-16s %12d %12d\n", op, c[op, "submitted"], c[op, "punted"] }' \
    | sort -k2 -rn
} >"$prefix-io_uring.txt"

log "top threads:"; head -n 5 "$prefix-threads.txt" >&2
log "io_uring ops:"; cat "$prefix-io_uring.txt" >&2
log "wrote $prefix-cpu.svg ($(du -h "$prefix-cpu.svg" | cut -f1)), $prefix-threads.txt, $prefix-io_uring.txt"
exit "$bench_status"
