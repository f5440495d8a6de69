# Shared helpers for perf/bench.sh and perf/flamegraph.sh (sourced, not run).
#
# Brokers are started on a free loopback port with their own data dir under $PERF_WORK, pinned
# with taskset; the broker's own `pin.threads` then pins shard i to the i-th CPU of that set
# (core_affinity reads the affinity mask), so `--cores 1` on CPUS=0 is one shard on core 0.
# Every broker started here is stopped by perf_cleanup (installed as the EXIT trap).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SLUICE_BIN=${SLUICE_BIN:-$CARGO_TARGET_DIR/release/sluice}
BENCH_BIN=${BENCH_BIN:-$CARGO_TARGET_DIR/release/sluice-bench}
NPROC=$(nproc)
# Default split: the broker on the first half of the CPUs, the generator on the rest. With
# 2 CPUs that is one each; with 1 CPU both share it.
if ((NPROC >= 2)); then
  BROKER_CPUS=${BROKER_CPUS:-0-$((NPROC / 2 - 1))}
  BENCH_CPUS=${BENCH_CPUS:-$((NPROC / 2))-$((NPROC - 1))}
else
  BROKER_CPUS=${BROKER_CPUS:-0}
  BENCH_CPUS=${BENCH_CPUS:-0}
fi
READY_TIMEOUT_S=${READY_TIMEOUT_S:-30}

PERF_WORK=${PERF_WORK:-$(mktemp -d -t sluice-perf.XXXXXX)}
declare -a PERF_PIDS=()
BROKER_PID=""
BROKER_ADDR=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

perf_cleanup() {
  local pid
  for pid in "${PERF_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$PERF_WORK"
}

# Builds the release broker, load generator and (if present) the fetch benchmark example.
build_release() {
  log "building release binaries in $CARGO_TARGET_DIR"
  (cd "$ROOT" && cargo build --release --bin sluice -p sluice && cargo build --release -p sluice-bench)
}

# sluice_start NAME CPUS [broker args...]: starts a broker; sets BROKER_PID and BROKER_ADDR.
sluice_start() {
  local name=$1 cpus=$2
  shift 2
  local dir=$PERF_WORK/$name
  rm -rf "$dir"
  mkdir -p "$dir"
  # Several brokers run at once (scaling, zero-copy): every listener on a free port.
  local admin=()
  "$SLUICE_BIN" --help | grep -q -- --admin-listen && admin=(--admin-listen 127.0.0.1:0)
  : >"$dir/broker.log"
  [[ -n ${BROKER_COMMANDS:-} ]] && printf '%s\t%s\n' "$name" \
    "taskset -c $cpus $SLUICE_BIN --listen 127.0.0.1:0 ${admin[*]} --data-dir <tmp> $*" >>"$BROKER_COMMANDS"
  taskset -c "$cpus" "$SLUICE_BIN" --listen 127.0.0.1:0 "${admin[@]}" --data-dir "$dir/data" "$@" \
    >>"$dir/broker.log" 2>&1 &
  BROKER_PID=$!
  PERF_PIDS+=("$BROKER_PID")
  BROKER_ADDR=""
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  while [[ -z "$BROKER_ADDR" ]]; do
    BROKER_ADDR=$(grep -o 'ready listening=[0-9.:]*' "$dir/broker.log" | head -n1 | cut -d= -f2 || true)
    [[ -n "$BROKER_ADDR" ]] && break
    if ! kill -0 "$BROKER_PID" 2>/dev/null || ((SECONDS >= deadline)); then
      log "broker $name did not become ready; its log:"
      cat "$dir/broker.log" >&2
      return 1
    fi
    sleep 0.05
  done
  log "broker $name ready at $BROKER_ADDR (cpus $cpus, args: $*)"
}

# sluice_stop: stops the last broker started and removes its data.
sluice_stop() {
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}

# stop_all: stops every process started so far (brokers, servers).
stop_all() {
  local pid
  for pid in "${PERF_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PERF_PIDS=()
  BROKER_PID=""
}

# bench_run ARGS...: sluice-bench pinned to BENCH_CPUS.
bench_run() {
  taskset -c "$BENCH_CPUS" "$BENCH_BIN" run "$@"
}

# A one-line description of the machine and the moment, for every table.
machine_note() {
  local model
  model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(hostname), $NPROC CPUs ($model), kernel $(uname -r), load avg $(cut -d' ' -f1-3 /proc/loadavg)"
}

# with_acks SRC ACKS DEST: a copy of workload SRC with its acks set to ACKS (all, 1 or 0).
with_acks() {
  sed -E "s/^acks *=.*/acks = \"$2\"/" "$1" >"$3"
  grep -q "^acks = \"$2\"" "$3" || echo "acks = \"$2\"" >>"$3"
}

# produce_only_workload OUT PARTITIONS PRODUCERS ACKS [CONSUMERS]: the 1 KiB max-rate workload
# with PARTITIONS partitions, PRODUCERS native producers, CONSUMERS consumers (default none),
# acks=ACKS (perf/ab.sh, perf/tail.sh).
produce_only_workload() {
  sed -E -e "s/^partitions_per_topic *=.*/partitions_per_topic = $2/" \
    -e "s/^producers_per_topic *=.*/producers_per_topic = $3/" \
    -e "s/^consumers_per_subscription *=.*/consumers_per_subscription = ${5:-0}/" \
    -e "s/^consumer_mode *=.*/consumer_mode = \"assign\"/" \
    "$ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml" >"$1.tmp"
  with_acks "$1.tmp" "$4" "$1"
  rm -f "$1.tmp"
}

# json FILE EXPR: a value from summary.json via python3 (EXPR indexes `s`).
json() {
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
