#!/usr/bin/env bash
# Apache Kafka and Sluice side by side (make bench-kafka): the same sluice-bench workload and
# Kafka's own kafka-producer-perf-test, kafka-consumer-perf-test and kafka-e2e-latency, with
# the same clients against both brokers in one run, alternating (A B A B ...), both brokers
# pinned to BROKER_CPUS and the clients to BENCH_CPUS; then one table of Sluice/Kafka ratios
# into BENCHMARKS.md and one set of plots (perf/README.md, "Apache Kafka side by side").
#
#   perf/bench-kafka.sh                      # = make bench-kafka (~5 min with the defaults)
#   ROUNDS=3 DURATION_S=10 perf/bench-kafka.sh
#
# Knobs: DURATION_S [5] measured seconds per leg, WARMUP_S [1], ROUNDS [2] (legs per broker
# and case), CLIENTS ["native rdkafka"], FIXED_RATE [10000 msg/s; 0 = max-rate legs only],
# ACKS [1], WORKLOAD [the 16-partition 1 KiB one], KAFKA_HEAP [1g], PERF_TEST_RECORDS [500000
# records per kafka-producer-perf-test leg, read back by kafka-consumer-perf-test; 0 = skip],
# E2E_RECORDS [5000 records per kafka-e2e-latency leg; 0 = skip], PLOT_COPY [perf/bench-kafka.svg
# when MARKDOWN is the default: where the plots' SVG is copied for BENCHMARKS.md], RESULTS
# [perf/out/bench-kafka-<time>], MARKDOWN [BENCHMARKS.md], SKIP_BUILD=1, plus lib.sh's CPU sets.
#
# Kafka: kafka_2.13 and its runtime dependencies from Maven Central (perf/kafka/pom.xml, into
# the git-ignored perf/kafka/lib/ once), KRaft combined mode (one node, broker + controller) on
# loopback, a fresh data dir under $RESULTS/work (or $PERF_WORK when given; deleted at the end,
# the brokers' logs copied to $RESULTS), Kafka's own JVM flags (kafka-run-class.sh).
# Broker CPU is utime+stime of the broker process (/proc/PID/stat) over each leg; RSS is
# VmRSS at the leg's end.
set -euo pipefail
GIVEN_PERF_WORK=${PERF_WORK:-}
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

DURATION_S=${DURATION_S:-5}
WARMUP_S=${WARMUP_S:-1}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-native rdkafka}
FIXED_RATE=${FIXED_RATE:-10000}
ACKS=${ACKS:-1}
WORKLOAD=${WORKLOAD:-$ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml}
KAFKA_HEAP=${KAFKA_HEAP:-1g}
PERF_TEST_RECORDS=${PERF_TEST_RECORDS:-500000}
E2E_RECORDS=${E2E_RECORDS:-5000}
KAFKA_DIR=$ROOT/perf/kafka
KAFKA_READY_TIMEOUT_S=${KAFKA_READY_TIMEOUT_S:-120}
RESULTS=${RESULTS:-$ROOT/perf/out/bench-kafka-$(date -u +%Y%m%dT%H%M%SZ)}
if [[ -z ${MARKDOWN:-} ]]; then
  MARKDOWN=$ROOT/BENCHMARKS.md
  PLOT_COPY=${PLOT_COPY:-$ROOT/perf/bench-kafka.svg}
fi
PLOT_COPY=${PLOT_COPY:-}
# The plots need matplotlib (make bench-kafka installs it into the venv); plain python3 without it
# still writes the table.
PLOT_PYTHON=${PLOT_PYTHON:-python3}
KAFKA_PID=""
# Both brokers' data dirs live under the run's output (removed at the end, their logs kept).
if [[ -z $GIVEN_PERF_WORK ]]; then
  rmdir "$PERF_WORK"
  PERF_WORK=$RESULTS/work
fi

cleanup() {
  if [[ -n "$KAFKA_PID" ]] && kill -0 "$KAFKA_PID" 2>/dev/null; then
    kill "$KAFKA_PID" 2>/dev/null || true
    wait "$KAFKA_PID" 2>/dev/null || true
  fi
  cp "$PERF_WORK/kafka/kafka.log" "$RESULTS/kafka.log" 2>/dev/null || true
  cp "$PERF_WORK/sluice/broker.log" "$RESULTS/sluice.log" 2>/dev/null || true
  perf_cleanup
}
trap cleanup EXIT

for tool in java mvn taskset python3; do
  command -v "$tool" >/dev/null || { echo "bench-kafka: $tool missing" >&2; exit 1; }
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

[[ ${SKIP_BUILD:-0} == 1 ]] || build_release
mkdir -p "$RESULTS/legs"
name=$(basename "$WORKLOAD" .toml)
workload=$RESULTS/$name-acks$ACKS.toml
with_acks "$WORKLOAD" "$ACKS" "$workload"
broker_cores=$(taskset -c "$BROKER_CPUS" nproc)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# kafka_start: formats a fresh KRaft data dir and starts the broker; sets KAFKA_PID, KAFKA_ADDR.
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
PROPS
  local cp="$KAFKA_DIR/lib/*" cluster_id
  cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
  java -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
    >"$dir/format.log" 2>&1
  # kafka-server-start.sh's defaults: KAFKA_HEAP_OPTS and KAFKA_JVM_PERFORMANCE_OPTS.
  local jvm=(-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true)
  printf 'kafka\ttaskset -c %s java %s -cp perf/kafka/lib/* kafka.Kafka server.properties\n' \
    "$BROKER_CPUS" "${jvm[*]}" >>"$RESULTS/brokers.txt"
  taskset -c "$BROKER_CPUS" java "${jvm[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" \
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

# stat_of PID: "utime+stime (ticks) VmRSS (kB)".
stat_of() {
  local pid=$1 ticks rss
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  echo "$ticks $rss"
}

# leg NAME BROKER PID ADDR [sluice-bench args...]: one measured run against one broker.
leg() {
  local name=$1 broker=$2 pid=$3 addr=$4
  shift 4
  local out=$RESULTS/legs/$name before after
  before=$(stat_of "$pid")
  local cmd=(taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$workload" -b "$broker=$addr"
    --consumer-mode assign --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --out "$out" --quiet "$@")
  log "$name: ${cmd[*]}"
  printf '%s\t%s\n' "$name" "${cmd[*]}" >>"$RESULTS/commands.txt"
  if ! "${cmd[@]}" >"$RESULTS/legs/$name.stdout" 2>&1; then
    log "$name failed; see $RESULTS/legs/$name.stdout"
    return 0
  fi
  after=$(stat_of "$pid")
  printf '{"broker": "%s", "cpu_ticks": %d, "clk_tck": %d, "rss_kb": %d}\n' "$broker" \
    $(($(cut -d' ' -f1 <<<"$after") - $(cut -d' ' -f1 <<<"$before"))) "$(getconf CLK_TCK)" \
    "$(cut -d' ' -f2 <<<"$after")" >"$out/broker.json"
}

machine_note >"$RESULTS/machine.txt"
{
  echo "broker_cpus=$BROKER_CPUS"
  echo "bench_cpus=$BENCH_CPUS"
  echo "acks=$ACKS"
  echo "kafka_version=$KAFKA_VERSION"
  echo "kafka_heap=$KAFKA_HEAP"
  echo "duration_s=$DURATION_S"
  echo "rounds=$ROUNDS"
  echo "perf_test_records=$PERF_TEST_RECORDS"
  echo "e2e_records=$E2E_RECORDS"
  echo "git=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$RESULTS/setup.txt"
: >"$RESULTS/commands.txt"
: >"$RESULTS/brokers.txt"

# Both brokers with the same group settings as Kafka's own test brokers (no initial rebalance
# delay), so kafka-consumer-perf-test's join costs the same protocol work on each.
printf '"group.initial.rebalance.delay.ms" = 0\n' >"$RESULTS/sluice.toml"
BROKER_COMMANDS=$RESULTS/brokers.txt sluice_start sluice "$BROKER_CPUS" --cores "$broker_cores" \
  --config "$RESULTS/sluice.toml"
SLUICE_PID=$BROKER_PID
SLUICE_ADDR=$BROKER_ADDR
kafka_start

# Unmeasured warm-up against each (the JVM compiles its hot paths; both create their first topic).
for b in "sluice $SLUICE_ADDR" "kafka $KAFKA_ADDR"; do
  read -r bname baddr <<<"$b"
  taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$ROOT/bench/workloads/smoke.toml" -b "$bname=$baddr" \
    --out "$PERF_WORK/warmup-$bname" --quiet >/dev/null 2>&1 || log "warm-up against $bname failed"
done

modes=(max)
((FIXED_RATE > 0)) && modes+=(fixed)
for client in $CLIENTS; do
  for mode in "${modes[@]}"; do
    rate=()
    [[ $mode == fixed ]] && rate=(--rate "$FIXED_RATE")
    for round in $(seq "$ROUNDS"); do
      leg "$mode-$client-r$round-sluice" sluice "$SLUICE_PID" "$SLUICE_ADDR" --client "$client" "${rate[@]}"
      leg "$mode-$client-r$round-kafka" kafka "$KAFKA_PID" "$KAFKA_ADDR" --client "$client" "${rate[@]}"
    done
  done
done

# Kafka's own tools as clients, the same jars against both brokers, pinned to BENCH_CPUS:
# kafka-producer-perf-test (ProducerPerformance; the workload's record size, acks, batch size
# and linger, into a fresh 16-partition topic per leg), kafka-consumer-perf-test
# (ConsumerPerformance, a classic-group consumer reading back what that leg produced) and
# kafka-e2e-latency (EndToEndLatency: one 1 KiB record at a time, produced, then polled back).
# tool_leg NAME BROKER PID ADDR KIND -- COMMAND...: runs COMMAND, parses its output by KIND
# into a sluice-bench-shaped summary.json, and the broker's CPU and RSS over it.
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
  printf '{"broker": "%s", "cpu_ticks": %d, "clk_tck": %d, "rss_kb": %d}\n' "$broker" \
    $(($(cut -d' ' -f1 <<<"$after") - $(cut -d' ' -f1 <<<"$before"))) "$(getconf CLK_TCK)" \
    "$(cut -d' ' -f2 <<<"$after")" >"$out/broker.json"
}

# tool_round ROUND BROKER PID ADDR: the three tools' legs of one round against one broker.
tool_round() {
  local round=$1 broker=$2 pid=$3 addr=$4 topic cp="$KAFKA_DIR/lib/*"
  if ((PERF_TEST_RECORDS > 0)); then
    topic="perf-test-r$round-$broker"
    "$SLUICE_BIN" topic create "$topic" --partitions 16 --brokers "$addr" >/dev/null
    tool_leg "max-perftest-r$round-$broker" "$broker" "$pid" "$addr" perftest -- \
      java -cp "$cp" org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
      --num-records "$PERF_TEST_RECORDS" --record-size 1024 --throughput -1 \
      --producer-props "bootstrap.servers=$addr" "acks=$ACKS" linger.ms=1 batch.size=131072
    tool_leg "max-consumerperf-r$round-$broker" "$broker" "$pid" "$addr" consumerperf -- \
      java -cp "$cp" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$addr" \
      --topic "$topic" --num-records "$PERF_TEST_RECORDS" --group "perf-consumer-r$round" \
      --timeout 30000
  fi
  if ((E2E_RECORDS > 0)); then
    tool_leg "serial-e2elatency-r$round-$broker" "$broker" "$pid" "$addr" e2elatency -- \
      java -cp "$cp" org.apache.kafka.tools.EndToEndLatency --bootstrap-server "$addr" \
      --topic "e2e-latency-r$round" --num-records "$E2E_RECORDS" --producer-acks "$ACKS" --record-size 1024
  fi
}
for round in $(seq "$ROUNDS"); do
  tool_round "$round" sluice "$SLUICE_PID" "$SLUICE_ADDR"
  tool_round "$round" kafka "$KAFKA_PID" "$KAFKA_ADDR"
done

[[ -n $PLOT_COPY ]] && export PLOT_COPY PLOT_LINK=${PLOT_COPY#"$ROOT"/}
"$PLOT_PYTHON" "$ROOT/perf/bench_kafka_report.py" "$RESULTS" "$MARKDOWN"
log "results in $RESULTS (table: report.md, plots: bench-kafka.svg/.png); refreshed the Kafka block of $MARKDOWN"
