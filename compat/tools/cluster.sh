#!/usr/bin/env bash
# Kafka's own replication tools against a three-node Sluice KRaft cluster (issue 11):
# kafka-reassign-partitions (--generate, --execute with --throttle, --verify until done, which
# also clears the throttles), kafka-log-dirs --describe and kafka-leader-election, each run
# as the kafka-*.sh scripts would (`java -cp 'lib/*'`), its output checked for content.
#
# Env: SLUICE_BIN (default target/debug/sluice), KAFKA_TOOLS_LIB (default compat/tools/lib),
# JAVA (default java). Exits non-zero if any check failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${SLUICE_BIN:-$ROOT/target/debug/sluice}
LIB=${KAFKA_TOOLS_LIB:-$ROOT/compat/tools/lib}
JAVA=${JAVA:-java}
TOOL_TIMEOUT_S=90

[[ -x "$BIN" ]] || { echo "kafka-tools-cluster: no sluice binary at $BIN" >&2; exit 2; }
ls "$LIB"/kafka-tools-*.jar >/dev/null 2>&1 \
  || { echo "kafka-tools-cluster: no kafka-tools jar in $LIB (make java-deps)" >&2; exit 2; }

TMP=$(mktemp -d -t sluice-kafka-tools-cluster.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    for i in 1 2 3; do
      [[ -f "$TMP/n$i.log" ]] && { echo "---- node $i log (last 20 lines) ----" >&2; tail -n 20 "$TMP/n$i.log" >&2; }
    done
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT INT TERM

# Loopback ports free now, below the ephemeral range, reserved as tests/common/ports.rs does:
# an exclusive flock on $TMPDIR/sluice-ports/<port>.lock, held by this script (and the nodes,
# which inherit the descriptors) until it exits, so a test process running at the same time
# never picks them; a dead holder's lock is gone with it. The files are never removed.
PORT_DIR="${TMPDIR:-/tmp}/sluice-ports"
mkdir -p "$PORT_DIR"
PORT_LOW=10000
PORT_HIGH=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
ports=()
for _ in $(seq 1 10000); do
  (( ${#ports[@]} < 6 )) || break
  p=$(( PORT_LOW + (RANDOM * 32768 + RANDOM) % (PORT_HIGH - PORT_LOW) ))
  [[ " ${ports[*]} " == *" $p "* ]] && continue
  exec {fd}>>"$PORT_DIR/$p.lock" || continue
  if flock -n "$fd" && python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$p" 2>/dev/null; then
    echo $$ >"$PORT_DIR/$p.lock"
    ports+=("$p")
  else
    exec {fd}>&-
  fi
done
(( ${#ports[@]} == 6 )) || { echo "kafka-tools-cluster: no 6 free loopback ports" >&2; exit 2; }
VOTERS="1@127.0.0.1:${ports[3]},2@127.0.0.1:${ports[4]},3@127.0.0.1:${ports[5]}"
for i in 1 2 3; do
  mkdir -p "$TMP/n$i"
  cat >"$TMP/n$i.toml" <<TOML
listen = "127.0.0.1:${ports[$((i-1))]}"
data_dir = "$TMP/n$i"
"node.id" = $i
"process.roles" = "broker,controller"
"controller.quorum.voters" = "$VOTERS"
"controller.listener.names" = "CONTROLLER"
"pin.threads" = false
"group.initial.rebalance.delay.ms" = 0
"offsets.topic.replication.factor" = 1
TOML
  RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$BIN" --config "$TMP/n$i.toml" --cores 1 --admin-listen 127.0.0.1:0 \
    </dev/null >/dev/null 2>"$TMP/n$i.log" &
  PIDS+=($!)
done
B="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"

kafka() {
  local main=$1 rc=0
  shift
  timeout "$TOOL_TIMEOUT_S" "$JAVA" -XX:TieredStopAtLevel=1 -cp "$LIB/*" \
    "org.apache.kafka.tools.$main" "$@" 2>&1 | grep -v '^SLF4J' || rc=${PIPESTATUS[0]}
  return $rc
}

PASSED=0
FAILED=0
check() {
  local name=$1 what=$2
  if "$name" >"$TMP/$name.out" 2>&1; then
    echo "PASS $name: $what"; PASSED=$((PASSED + 1))
  else
    echo "FAIL $name: $what"; sed 's/^/    /' "$TMP/$name.out" | tail -n 40; FAILED=$((FAILED + 1))
  fi
}

# Waits (bounded) until every broker lists the other two.
ready() {
  for _ in $(seq 1 120); do
    if kafka BrokerApiVersionsCommand --bootstrap-server "$B" 2>/dev/null \
        | grep -c '(id: [123] rack' | grep -q '^3$'; then return 0; fi
    sleep 1
  done
  echo "the cluster did not come up"; return 1
}

reassign() {
  kafka TopicCommand --bootstrap-server "$B" --create --topic moves \
    --replica-assignment 1:2,2:1 || return 1
  kafka ProducerPerformance --topic moves --num-records 20000 --record-size 100 \
    --throughput -1 --producer-props bootstrap.servers="$B" acks=all >/dev/null || return 1
  echo '{"topics":[{"topic":"moves"}],"version":1}' >"$TMP/topics.json"
  kafka reassign.ReassignPartitionsCommand --bootstrap-server "$B" --generate \
    --topics-to-move-json-file "$TMP/topics.json" --broker-list 2,3 >"$TMP/generate.out" || {
      cat "$TMP/generate.out"; return 1; }
  cat "$TMP/generate.out"
  grep -A1 'Proposed partition reassignment configuration' "$TMP/generate.out" | tail -n1 >"$TMP/plan.json"
  grep -q '"replicas"' "$TMP/plan.json" || { echo "no proposed plan"; return 1; }
  kafka reassign.ReassignPartitionsCommand --bootstrap-server "$B" --execute \
    --reassignment-json-file "$TMP/plan.json" --throttle 10000000 >"$TMP/execute.out" || {
      cat "$TMP/execute.out"; return 1; }
  cat "$TMP/execute.out"
  grep -q 'Successfully started partition reassignment' "$TMP/execute.out" || return 1
  grep -q 'The inter-broker throttle limit was set to 10000000 B/s' "$TMP/execute.out" || return 1
  local done=""
  for _ in $(seq 1 60); do
    kafka reassign.ReassignPartitionsCommand --bootstrap-server "$B" --verify \
      --reassignment-json-file "$TMP/plan.json" >"$TMP/verify.out" || true
    if ! grep -q 'is still in progress' "$TMP/verify.out" \
        && grep -q 'Reassignment of partition moves-0 is completed' "$TMP/verify.out" \
        && grep -q 'Reassignment of partition moves-1 is completed' "$TMP/verify.out"; then
      done=1; break
    fi
    sleep 1
  done
  cat "$TMP/verify.out"
  [[ -n "$done" ]] || { echo "the reassignment did not complete"; return 1; }
  grep -q 'Clearing broker-level throttles' "$TMP/verify.out" || return 1
  kafka TopicCommand --bootstrap-server "$B" --describe --topic moves >"$TMP/describe.out"
  cat "$TMP/describe.out"
  # Every replica on brokers 2 and 3 now.
  ! grep -E 'Replicas: ([0-9,]*,)?1(,|[[:space:]]|$)' "$TMP/describe.out" || return 1
  grep -c 'Partition: [01]' "$TMP/describe.out" | grep -q '^2$'
}

log_dirs() {
  kafka LogDirsCommand --bootstrap-server "$B" --describe --broker-list 2,3 \
    --topic-list moves >"$TMP/logdirs.out" || { cat "$TMP/logdirs.out"; return 1; }
  cat "$TMP/logdirs.out"
  grep -q '"partition":"moves-0"' "$TMP/logdirs.out" && grep -q '"partition":"moves-1"' "$TMP/logdirs.out"
}

# Kafka's controller (ReplicationControlManager.electLeaders) leaves out of an all-partitions
# answer every partition that already has its preferred leader, and the tool then prints
# nothing: whether the reassignment left a partition on a non-preferred leader is a race. So
# one named partition is elected first (the tool reports it either way), then all partitions,
# and the check is that afterwards every partition of the topic is led by its preferred replica.
leader_election() {
  kafka LeaderElectionCommand --bootstrap-server "$B" --election-type PREFERRED \
    --topic moves --partition 0 >"$TMP/elect-one.out" 2>&1 || { cat "$TMP/elect-one.out"; return 1; }
  cat "$TMP/elect-one.out"
  grep -qE 'Successfully completed leader election \(PREFERRED\) for partitions moves-0|Valid replica already elected for partitions moves-0' \
    "$TMP/elect-one.out" || return 1
  kafka LeaderElectionCommand --bootstrap-server "$B" --election-type PREFERRED \
    --all-topic-partitions >"$TMP/elect.out" 2>&1 || { cat "$TMP/elect.out"; return 1; }
  cat "$TMP/elect.out"
  ! grep -qiE 'error|failed' "$TMP/elect.out" || return 1
  local preferred=""
  for _ in $(seq 1 30); do
    kafka TopicCommand --bootstrap-server "$B" --describe --topic moves >"$TMP/describe2.out" || true
    # "Partition: 0 Leader: 2 Replicas: 2,3 ...": led by the first replica, for both partitions.
    if [[ $(grep -cE 'Leader: ([0-9]+)[[:space:]]+Replicas: \1(,|[[:space:]])' "$TMP/describe2.out") == 2 ]]; then
      preferred=1; break
    fi
    sleep 1
  done
  cat "$TMP/describe2.out"
  [[ -n "$preferred" ]] || { echo "a partition is not led by its preferred replica"; return 1; }
}

check ready "three brokers up and listed"
check reassign "kafka-reassign-partitions --generate, --execute --throttle, --verify (throttles cleared)"
check log_dirs "kafka-log-dirs --describe on the new replicas"
check leader_election "kafka-leader-election --election-type PREFERRED --all-topic-partitions"
echo "kafka-tools-cluster: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
