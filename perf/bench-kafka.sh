#!/usr/bin/env bash
# Apache Kafka and Sluice side by side (make bench-kafka): issue 16's targets measured in one
# run, with the same clients against both brokers, alternating legs (S K, then K S, ...), both
# brokers pinned to BROKER_CPUS and every client to BENCH_CPUS; one summary table of the
# targets and one detail table of Sluice/Kafka ratios into BENCHMARKS.md, plots beside it
# (perf/README.md, "Apache Kafka side by side").
#
#   perf/bench-kafka.sh                                  # = make bench-kafka (~5 min)
#   ROUNDS=3 DURATION_S=15 PERF_TEST_RECORDS=1000000 perf/bench-kafka.sh    # longer
#
# Steps, each leg's command in $RESULTS/commands.txt:
#   1. machine limits: iperf3 loopback (server on BROKER_CPUS, client on BENCH_CPUS) and the
#      disk's own fdatasync latency (fio, FIO_BS writes each followed by fdatasync, in the
#      filesystem of the brokers' data dirs)
#   2. both brokers started; idle RSS (VmRSS IDLE_S after ready, before any client)
#   3. per ACKS in ACKS_LIST: max-rate produce with the native generator (sluice-bench
#      --client native, producers only) and with kafka-producer-perf-test; the first acks also
#      read back by kafka-consumer-perf-test (CPU per GB consumed)
#   4. per ACKS: the native generator at half of Sluice's max rate of step 3 (publish-to-ack
#      percentiles), against both brokers at that same rate
#   5. kafka-e2e-latency (one record at a time), acks = the first of ACKS_LIST
# Broker CPU = utime+stime of the broker process (/proc/PID/stat) over each leg; RSS = VmRSS at
# the leg's end and VmHWM (the peak) at the end of the run. Every topic is deleted after its leg.
#
# Knobs: DURATION_S [5] measured seconds per sluice-bench leg, WARMUP_S [1], ROUNDS [2] legs per
# broker and case, ACKS_LIST ["1 all"], HALF_RATE [half of Sluice's native max per acks; a
# number = that msg/s], WORKLOAD [the 16-partition 1 KiB one], KAFKA_HEAP [1g],
# PERF_TEST_RECORDS [300000 per kafka-producer-perf-test leg; 0 = skip, also skips
# kafka-consumer-perf-test], E2E_RECORDS [2000; 0 = skip], IPERF_S [3], FIO_BS [64k], FIO_MIB
# [32], IDLE_S [3], RESULTS [perf/out/bench-kafka-<time>], MARKDOWN [BENCHMARKS.md],
# PLOT_COPY, SKIP_BUILD=1, plus lib.sh's CPU sets.
#
# Kafka: kafka_2.13 and its runtime dependencies from Maven Central (perf/kafka/pom.xml, into
# the git-ignored perf/kafka/lib/ once), KRaft combined mode (one node, broker + controller) on
# loopback, a fresh data dir under $RESULTS/work (deleted at the end, the brokers' logs copied
# to $RESULTS), Kafka's own JVM flags (kafka-run-class.sh).
set -euo pipefail
GIVEN_PERF_WORK=${PERF_WORK:-}
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

DURATION_S=${DURATION_S:-5}
WARMUP_S=${WARMUP_S:-1}
ROUNDS=${ROUNDS:-2}
ACKS_LIST=${ACKS_LIST:-1 all}
HALF_RATE=${HALF_RATE:-}
WORKLOAD=${WORKLOAD:-$ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml}
KAFKA_HEAP=${KAFKA_HEAP:-1g}
PERF_TEST_RECORDS=${PERF_TEST_RECORDS:-300000}
E2E_RECORDS=${E2E_RECORDS:-2000}
IPERF_S=${IPERF_S:-3}
FIO_BS=${FIO_BS:-64k}
FIO_MIB=${FIO_MIB:-32}
IDLE_S=${IDLE_S:-3}
KAFKA_DIR=$ROOT/perf/kafka
KAFKA_READY_TIMEOUT_S=${KAFKA_READY_TIMEOUT_S:-120}
RESULTS=${RESULTS:-$ROOT/perf/out/bench-kafka-$(date -u +%Y%m%dT%H%M%SZ)}
if [[ -z ${MARKDOWN:-} ]]; then
  MARKDOWN=$ROOT/BENCHMARKS.md
  PLOT_COPY=${PLOT_COPY:-$ROOT/perf/bench-kafka.svg}
fi
PLOT_COPY=${PLOT_COPY:-}
# The plots need matplotlib (make bench-kafka installs it into the venv); plain python3 without it
# still writes the tables.
PLOT_PYTHON=${PLOT_PYTHON:-python3}
KAFKA_PID=""
IPERF_PID=""
# Both brokers' data dirs live under the run's output (removed at the end, their logs kept).
if [[ -z $GIVEN_PERF_WORK ]]; then
  rmdir "$PERF_WORK"
  PERF_WORK=$RESULTS/work
fi
FIRST_ACKS=${ACKS_LIST%% *}

cleanup() {
  local pid
  for pid in "$KAFKA_PID" "$IPERF_PID"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  cp "$PERF_WORK/kafka/kafka.log" "$RESULTS/kafka.log" 2>/dev/null || true
  cp "$PERF_WORK/sluice/broker.log" "$RESULTS/sluice.log" 2>/dev/null || true
  perf_cleanup
}
trap cleanup EXIT

for tool in java mvn taskset python3 iperf3 fio; do
  command -v "$tool" >/dev/null || { echo "bench-kafka: $tool missing (make bench-deps)" >&2; exit 1; }
done

# The Kafka jars, once per pom.xml (the stamp, the pom's hash, is written last, so a half-done
# or outdated copy is redone).
pom_hash=$(sha256sum "$KAFKA_DIR/pom.xml" | cut -d' ' -f1)
if [[ $(cat "$KAFKA_DIR/lib/.stamp" 2>/dev/null) != "$pom_hash" ]]; then
  log "fetching Apache Kafka from Maven Central into $KAFKA_DIR/lib"
  rm -rf "$KAFKA_DIR/lib"
  mvn -B -q -ntp -f "$KAFKA_DIR/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_DIR/lib" -DincludeScope=runtime
  echo "$pom_hash" >"$KAFKA_DIR/lib/.stamp"
fi
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_DIR/pom.xml")
KAFKA_CP="$KAFKA_DIR/lib/*"

[[ ${SKIP_BUILD:-0} == 1 ]] || build_release
mkdir -p "$RESULTS/legs" "$PERF_WORK"
name=$(basename "$WORKLOAD" .toml)
broker_cores=$(taskset -c "$BROKER_CPUS" nproc)
for acks in $ACKS_LIST; do
  with_acks "$WORKLOAD" "$acks" "$RESULTS/$name-acks$acks.toml"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# record KEY COMMAND...: logs COMMAND under KEY in commands.txt, then runs it.
record() {
  local key=$1
  shift
  printf '%s\t%s\n' "$key" "$*" >>"$RESULTS/commands.txt"
  log "$key: $*"
  "$@"
}

# kafka_start: formats a fresh KRaft data dir and starts the broker; sets KAFKA_PID, KAFKA_ADDR.
# Default segment size and retention, as Sluice's (a smaller segment adds rolls to the legs, which
# both brokers pay for in latency); deleted topics go at once, so the run keeps little on disk.
kafka_start() {
  local dir=$PERF_WORK/kafka port cport
  mkdir -p "$dir"
  port=$(free_port)
  cport=$(free_port)
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.network.threads=$broker_cores
num.io.threads=$((broker_cores * 2))
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
file.delete.delay.ms=1000
PROPS
  local cluster_id
  cluster_id=$(java -cp "$KAFKA_CP" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
  java -cp "$KAFKA_CP" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
    >"$dir/format.log" 2>&1
  # kafka-server-start.sh's defaults: KAFKA_HEAP_OPTS and KAFKA_JVM_PERFORMANCE_OPTS.
  local jvm=(-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true)
  printf 'kafka\ttaskset -c %s java %s -cp perf/kafka/lib/* kafka.Kafka server.properties\n' \
    "$BROKER_CPUS" "${jvm[*]}" >>"$RESULTS/brokers.txt"
  taskset -c "$BROKER_CPUS" java "${jvm[@]}" -cp "$KAFKA_CP" kafka.Kafka "$dir/server.properties" \
    >"$dir/kafka.log" 2>&1 &
  KAFKA_PID=$!
  KAFKA_ADDR=127.0.0.1:$port
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT_S))
  until "$SLUICE_BIN" cluster info --brokers "$KAFKA_ADDR" >/dev/null 2>&1; do
    if ! kill -0 "$KAFKA_PID" 2>/dev/null || ((SECONDS >= deadline)); then
      log "Kafka did not become ready; its log:"
      tail -n 50 "$dir/kafka.log" >&2
      return 1
    fi
    sleep 0.5
  done
  log "Kafka $KAFKA_VERSION ready at $KAFKA_ADDR (cpus $BROKER_CPUS)"
}

# stat_of PID: "utime+stime (ticks) VmRSS (kB) VmHWM (kB)".
stat_of() {
  local pid=$1 ticks
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  echo "$ticks $(awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r, h}' "/proc/$pid/status")"
}

# broker_json BROKER BEFORE AFTER: the leg's broker.json from two stat_of lines.
broker_json() {
  local b=($2) a=($3)
  printf '{"broker": "%s", "cpu_ticks": %d, "clk_tck": %d, "rss_kb": %d, "hwm_kb": %d}\n' "$1" \
    $((a[0] - b[0])) "$(getconf CLK_TCK)" "${a[1]}" "${a[2]}"
}

# drop_topics ADDR: deletes every non-internal topic, so legs do not fill the disk.
drop_topics() {
  local topics
  topics=$("$SLUICE_BIN" topic list --json --brokers "$1" 2>/dev/null |
    python3 -c 'import json,sys
print(" ".join(t["topic"] for t in json.load(sys.stdin) if not t.get("internal")))' || true)
  [[ -n $topics ]] && { "$SLUICE_BIN" topic delete $topics --brokers "$1" >/dev/null 2>&1 || true; }
  return 0
}

# bench_leg NAME BROKER PID ADDR ACKS [sluice-bench args...]: one sluice-bench run, producers only.
bench_leg() {
  local name=$1 broker=$2 pid=$3 addr=$4 acks=$5
  shift 5
  local out=$RESULTS/legs/$name before after
  before=$(stat_of "$pid")
  local cmd=(taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$RESULTS/$name_w-acks$acks.toml"
    -b "$broker=$addr" --client native --consumers 0 --duration-s "$DURATION_S"
    --warmup-s "$WARMUP_S" --out "$out" --quiet "$@")
  log "$name: ${cmd[*]}"
  printf '%s\t%s\n' "$name" "${cmd[*]}" >>"$RESULTS/commands.txt"
  if "${cmd[@]}" >"$RESULTS/legs/$name.stdout" 2>&1; then
    after=$(stat_of "$pid")
    broker_json "$broker" "$before" "$after" >"$out/broker.json"
  else
    log "$name failed; see $RESULTS/legs/$name.stdout"
  fi
  drop_topics "$addr"
}
name_w=$name

# tool_leg NAME BROKER PID ADDR KIND -- COMMAND...: runs one of Kafka's tools, parses its output
# by KIND into a sluice-bench-shaped summary.json, and the broker's CPU and RSS over it.
tool_leg() {
  local name=$1 broker=$2 pid=$3 addr=$4 kind=$5 out=$RESULTS/legs/$1 before after
  shift 6
  mkdir -p "$out"
  before=$(stat_of "$pid")
  log "$name: $*"
  printf '%s\t%s\n' "$name" "$*" >>"$RESULTS/commands.txt"
  if ! taskset -c "$BENCH_CPUS" "$@" >"$RESULTS/legs/$name.stdout" 2>&1; then
    log "$name failed; see $RESULTS/legs/$name.stdout"
    return 0
  fi
  after=$(stat_of "$pid")
  python3 "$ROOT/perf/bench_kafka_report.py" --parse "$kind" "$RESULTS/legs/$name.stdout" >"$out/summary.json" ||
    { rm -f "$out/summary.json"; return 0; }
  broker_json "$broker" "$before" "$after" >"$out/broker.json"
}

# perftest_legs ROUND ACKS BROKER PID ADDR: kafka-producer-perf-test into a fresh 16-partition
# topic; for the first acks also kafka-consumer-perf-test reading it back; then the topic goes.
perftest_legs() {
  local round=$1 acks=$2 broker=$3 pid=$4 addr=$5 topic
  topic="perf-test-acks$acks-r$round-$broker"
  "$SLUICE_BIN" topic create "$topic" --partitions 16 --brokers "$addr" >/dev/null
  tool_leg "max-perftest-acks$acks-r$round-$broker" "$broker" "$pid" "$addr" perftest -- \
    java -cp "$KAFKA_CP" org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
    --num-records "$PERF_TEST_RECORDS" --record-size 1024 --throughput -1 \
    --producer-props "bootstrap.servers=$addr" "acks=$acks" linger.ms=1 batch.size=131072
  if [[ $acks == "$FIRST_ACKS" ]]; then
    tool_leg "consume-consumerperf-acks$acks-r$round-$broker" "$broker" "$pid" "$addr" consumerperf -- \
      java -cp "$KAFKA_CP" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$addr" \
      --topic "$topic" --num-records "$PERF_TEST_RECORDS" --group "perf-consumer-r$round" \
      --timeout 30000
  fi
  drop_topics "$addr"
}

# alternate ROUND FN ARGS...: FN ARGS sluice ... and FN ARGS kafka ..., Sluice first in odd
# rounds and Kafka first in even ones (so neither always runs on the warmer machine).
alternate() {
  local round=$1 fn=$2
  shift 2
  local s=(sluice "$SLUICE_PID" "$SLUICE_ADDR") k=(kafka "$KAFKA_PID" "$KAFKA_ADDR")
  if ((round % 2 == 1)); then
    "$fn" "$@" "${s[@]}"
    "$fn" "$@" "${k[@]}"
  else
    "$fn" "$@" "${k[@]}"
    "$fn" "$@" "${s[@]}"
  fi
}

machine_note >"$RESULTS/machine.txt"
{
  echo "broker_cpus=$BROKER_CPUS"
  echo "bench_cpus=$BENCH_CPUS"
  echo "broker_cores=$broker_cores"
  echo "acks_list=$ACKS_LIST"
  echo "kafka_version=$KAFKA_VERSION"
  echo "kafka_heap=$KAFKA_HEAP"
  echo "duration_s=$DURATION_S"
  echo "warmup_s=$WARMUP_S"
  echo "rounds=$ROUNDS"
  echo "perf_test_records=$PERF_TEST_RECORDS"
  echo "e2e_records=$E2E_RECORDS"
  echo "fio_bs=$FIO_BS"
  echo "workload=$name"
  echo "git=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo +dirty)"
} >"$RESULTS/setup.txt"
: >"$RESULTS/commands.txt"
: >"$RESULTS/brokers.txt"

# ---- 1. machine limits ----------------------------------------------------------------------
iperf_port=$(free_port)
taskset -c "$BROKER_CPUS" iperf3 -s -B 127.0.0.1 -p "$iperf_port" >"$PERF_WORK/iperf3-server.log" 2>&1 &
IPERF_PID=$!
for _ in $(seq 200); do
  [[ -n $(ss -Hltn "sport = :$iperf_port") ]] && break
  sleep 0.05
done
record iperf3 taskset -c "$BENCH_CPUS" iperf3 -c 127.0.0.1 -p "$iperf_port" -t "$IPERF_S" -J \
  >"$RESULTS/iperf3.json" || log "iperf3 failed"
kill "$IPERF_PID" 2>/dev/null || true
wait "$IPERF_PID" 2>/dev/null || true
IPERF_PID=""
mkdir -p "$PERF_WORK/disk"
record fio-fdatasync fio --name=fdatasync --directory="$PERF_WORK/disk" --rw=write --bs="$FIO_BS" \
  --size="${FIO_MIB}M" --ioengine=sync --fdatasync=1 --output-format=json \
  >"$RESULTS/fio-fdatasync.json" || log "fio failed"
rm -rf "$PERF_WORK/disk"

# ---- 2. brokers and idle RSS -------------------------------------------------------------------
# Both brokers with the same group settings as Kafka's own test brokers (no initial rebalance
# delay), so kafka-consumer-perf-test's join costs the same work on each; default segments and
# retention on both (topics are deleted after their legs instead).
cat >"$RESULTS/sluice.toml" <<'TOML'
"group.initial.rebalance.delay.ms" = 0
TOML
BROKER_COMMANDS=$RESULTS/brokers.txt sluice_start sluice "$BROKER_CPUS" --cores "$broker_cores" \
  --config "$RESULTS/sluice.toml"
SLUICE_PID=$BROKER_PID
SLUICE_ADDR=$BROKER_ADDR
kafka_start
sleep "$IDLE_S"
printf '{"sluice_kb": %d, "kafka_kb": %d}\n' "$(cut -d' ' -f2 <<<"$(stat_of "$SLUICE_PID")")" \
  "$(cut -d' ' -f2 <<<"$(stat_of "$KAFKA_PID")")" >"$RESULTS/idle-rss.json"

# Unmeasured warm-up against each (the JVM compiles its hot paths; both create their first topic).
for b in "sluice $SLUICE_ADDR" "kafka $KAFKA_ADDR"; do
  read -r bname baddr <<<"$b"
  taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$ROOT/bench/workloads/smoke.toml" -b "$bname=$baddr" \
    --out "$PERF_WORK/warmup-$bname" --quiet >/dev/null 2>&1 || log "warm-up against $bname failed"
  drop_topics "$baddr"
done

# ---- 3. max-rate produce, per acks -------------------------------------------------------------
native_max() { bench_leg "max-native-acks$1-r$2-$3" "$3" "$4" "$5" "$1"; }
perftest_max() { perftest_legs "$2" "$1" "$3" "$4" "$5"; }
for acks in $ACKS_LIST; do
  for round in $(seq "$ROUNDS"); do
    alternate "$round" native_max "$acks" "$round"
    if ((PERF_TEST_RECORDS > 0)); then alternate "$round" perftest_max "$acks" "$round"; fi
  done
done

# ---- 4. latency at half of Sluice's max rate, per acks -----------------------------------------
native_half() { bench_leg "half-native-acks$1-r$2-$4" "$4" "$5" "$6" "$1" --rate "$3"; }
for acks in $ACKS_LIST; do
  rate=$HALF_RATE
  if [[ -z $rate ]]; then
    rate=$(python3 "$ROOT/perf/bench_kafka_report.py" --half-rate "$RESULTS" "$acks")
  fi
  if [[ -z $rate || $rate == 0 ]]; then
    log "no max rate for acks=$acks; skipping its half-rate legs"
    continue
  fi
  echo "half_rate_acks$acks=$rate" >>"$RESULTS/setup.txt"
  for round in $(seq "$ROUNDS"); do
    alternate "$round" native_half "$acks" "$round" "$rate"
  done
done

# ---- 5. one record at a time -------------------------------------------------------------------
e2e_leg() {
  tool_leg "serial-e2elatency-acks$FIRST_ACKS-r$1-$2" "$2" "$3" "$4" e2elatency -- \
    java -cp "$KAFKA_CP" org.apache.kafka.tools.EndToEndLatency --bootstrap-server "$4" \
    --topic "e2e-latency-r$1" --num-records "$E2E_RECORDS" --producer-acks "$FIRST_ACKS" --record-size 1024
  drop_topics "$4"
}
if ((E2E_RECORDS > 0)); then
  for round in $(seq "$ROUNDS"); do
    alternate "$round" e2e_leg "$round"
  done
fi

printf '{"sluice_kb": %d, "kafka_kb": %d}\n' "$(cut -d' ' -f3 <<<"$(stat_of "$SLUICE_PID")")" \
  "$(cut -d' ' -f3 <<<"$(stat_of "$KAFKA_PID")")" >"$RESULTS/peak-rss.json"

[[ -n $PLOT_COPY ]] && export PLOT_COPY PLOT_LINK=${PLOT_COPY#"$ROOT"/}
"$PLOT_PYTHON" "$ROOT/perf/bench_kafka_report.py" "$RESULTS" "$MARKDOWN"
log "results in $RESULTS (table: report.md, plots: bench-kafka.svg/.png); refreshed the Kafka block of $MARKDOWN"
