#!/usr/bin/env bash
# Kafka's own command-line tools (kafka-tools 4.x from Maven Central, `make java-deps`) against
# Sluice: each tool's main class runs with `java -cp 'lib/*'` as the kafka-*.sh scripts would,
# and its output is checked for content, not only its exit code.
#
# Starts a sluice binary on a loopback port the kernel picks, with a temp data dir, waits for
# its `ready listening=<ip:port>` line, runs every check (each one even when an earlier failed),
# prints PASS/FAIL/NOT-YET per check, writes one TSV line per check to $RESULTS
# (client, feature, result, detail) for scripts/compat/table.py, and exits non-zero if any check
# failed. A NOT-YET check is one whose tool needs an API Sluice does not serve yet: it passes
# only if the tool fails with exactly that error (and turns into PASS once the API exists).
#
# Env: SLUICE_BIN (default target/debug/sluice), KAFKA_TOOLS_LIB (default compat/tools/lib),
# JAVA (default java), RESULTS (default target/compat/kafka-tools.tsv).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${SLUICE_BIN:-$ROOT/target/debug/sluice}
LIB=${KAFKA_TOOLS_LIB:-$ROOT/compat/tools/lib}
JAVA=${JAVA:-java}
RESULTS=${RESULTS:-$ROOT/target/compat/kafka-tools.tsv}
READY_TIMEOUT_S=30
TOOL_TIMEOUT_S=90

[[ -x "$BIN" ]] || { echo "kafka-tools: no sluice binary at $BIN (build it first)" >&2; exit 2; }
ls "$LIB"/kafka-tools-*.jar >/dev/null 2>&1 \
  || { echo "kafka-tools: no kafka-tools jar in $LIB (make java-deps)" >&2; exit 2; }
KAFKA_VERSION=$(basename "$(ls "$LIB"/kafka-tools-[0-9]*.jar | head -n1)" .jar)
KAFKA_VERSION=${KAFKA_VERSION#kafka-tools-}
CLIENT="Kafka tools $KAFKA_VERSION"

TMP=$(mktemp -d -t sluice-kafka-tools.XXXXXX)
PID=""
cleanup() {
  local rc=$?
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$TMP/sluice.log" ]]; then
    echo "---- sluice log (last 40 lines) ----" >&2
    tail -n 40 "$TMP/sluice.log" >&2
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT INT TERM

# The tools join groups (console consumer, perf test): no initial rebalance delay, as Kafka's
# own test brokers.
printf '"group.initial.rebalance.delay.ms" = 0\n' >"$TMP/sluice.toml"
mkdir -p "$TMP/data"
RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$BIN" --config "$TMP/sluice.toml" --listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 --data-dir "$TMP/data" --cores 2 </dev/null >/dev/null 2>"$TMP/sluice.log" &
PID=$!
ADDR=""
for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
  ADDR=$(sed -E 's/\x1b\[[0-9;]*m//g' "$TMP/sluice.log" \
    | grep -oE 'ready listening=[^[:space:]]+' | head -n1 | cut -d= -f2 | tr -d '"') || true
  [[ -n "$ADDR" ]] && break
  kill -0 "$PID" 2>/dev/null || { echo "kafka-tools: sluice exited before ready" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$ADDR" ]] || { echo "kafka-tools: sluice not ready within ${READY_TIMEOUT_S}s" >&2; exit 1; }
echo "kafka-tools: $CLIENT against $BIN at $ADDR"
METRICS_ADDR=$(sed -E 's/\x1b\[[0-9;]*m//g' "$TMP/sluice.log" \
  | grep -aoE 'admin listening=[^[:space:]]+' | head -n1 | cut -d= -f2 | tr -d '"') || true

# kafka MAIN ARGS...: one tool run, stdout and stderr together, SLF4J's start-up notes dropped.
# C1 only: the tools are short-lived, so start-up time is what counts.
kafka() {
  local main=$1 rc=0 raw
  shift
  raw=$(mktemp -p "$TMP")
  timeout "$TOOL_TIMEOUT_S" "$JAVA" -XX:TieredStopAtLevel=1 -cp "$LIB/*" \
    "org.apache.kafka.tools.$main" "$@" >"$raw" 2>&1 || rc=$?
  grep -v '^SLF4J' "$raw" || true
  # A failed run also shows on stderr (the check's output), even when stdout was redirected.
  if [[ $rc -ne 0 ]]; then echo "$main exited $rc:" >&2; grep -v '^SLF4J' "$raw" | tail -n 15 >&2; fi
  rm -f "$raw"
  return "$rc"
}
# requests API: how many requests of that Kafka API the broker handled (its /metrics), which
# tells what a tool really sent.
requests() {
  local host=${METRICS_ADDR%:*} port=${METRICS_ADDR##*:}
  exec 3<>"/dev/tcp/$host/$port"
  printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$METRICS_ADDR" >&3
  awk -v api="$1" '$1 == "sluice_requests_total{api=\"" api "\"}" { print int($2) }' <&3
  exec 3<&-
}
# expect FILE PATTERN...: each extended regex matches some line of FILE, or the check fails.
expect() {
  local file=$1; shift
  for pat in "$@"; do
    grep -qE -- "$pat" "$file" || { echo "expected /$pat/ in:"; cat "$file"; return 1; }
  done
}
# reject FILE PATTERN: no line of FILE matches.
reject() {
  if grep -qE -- "$2" "$1"; then echo "unexpected /$2/ in:"; cat "$1"; return 1; fi
}

mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
FAILED=0
PASSED=0
# check NAME FEATURE: runs the function NAME; 0 = PASS, 3 = NOT-YET (reason in $TMP/NAME.reason),
# anything else FAIL with the function's output.
check() {
  local name=$1 feature=$2 rc=0
  # A child bash with errexit: any failing step inside the check fails it.
  bash -euo pipefail -c "$name" >"$TMP/$name.out" 2>&1 || rc=$?
  case $rc in
    0) echo "PASS $name"; PASSED=$((PASSED + 1))
       printf '%s\t%s\tpass\t\n' "$CLIENT" "$feature" >>"$RESULTS" ;;
    3) local reason; reason=$(head -n1 "$TMP/$name.reason")
       echo "NOT-YET $name: $reason"; PASSED=$((PASSED + 1))
       printf '%s\t%s\tnot yet\t%s\n' "$CLIENT" "$feature" "$reason" >>"$RESULTS" ;;
    *) echo "FAIL $name (exit $rc)"; sed 's/^/    /' "$TMP/$name.out" | tail -n 40; FAILED=$((FAILED + 1))
       printf '%s\t%s\tfail\t%s\n' "$CLIENT" "$feature" "exit $rc" >>"$RESULTS" ;;
  esac
}
# not_yet NAME FILE PATTERN: the tool's output FILE carries the expected "unsupported" error:
# records it as the reason and returns 3; otherwise the output is unexpected (returns 1).
not_yet() {
  local line
  line=$(grep -oE -- "$3" "$2" | head -n1) || { echo "neither success nor /$3/:"; cat "$2"; return 1; }
  echo "$line" >"$TMP/$1.reason"
  return 3
}

B=$ADDR
T=tools-topic

topics() {
  local o=$TMP/data-topics
  kafka TopicCommand --bootstrap-server "$B" --create --topic "$T" --partitions 3 \
    --config retention.ms=3600000 >"$o.create"
  expect "$o.create" "^Created topic $T\.$"
  kafka TopicCommand --bootstrap-server "$B" --create --topic "$T" --partitions 3 >"$o.dup" && return 1
  # Kafka says "Topic 'T' already exists."; Sluice's message words it differently, so only
  # the gist is checked here (the error code is TOPIC_ALREADY_EXISTS either way).
  expect "$o.dup" "[Tt]opic ['\"]$T['\"] already exists"
  kafka TopicCommand --bootstrap-server "$B" --list >"$o.list"
  expect "$o.list" "^$T\$"
  local dtp_before dtp_after
  dtp_before=$(requests DescribeTopicPartitions)
  kafka TopicCommand --bootstrap-server "$B" --describe --topic "$T" >"$o.describe"
  dtp_after=$(requests DescribeTopicPartitions)
  [[ $dtp_after -gt $dtp_before ]] \
    || { echo "kafka-topics --describe sent no DescribeTopicPartitions ($dtp_before -> $dtp_after)"; return 1; }
  expect "$o.describe" "Topic: $T[[:space:]]+TopicId: [A-Za-z0-9_-]{22}[[:space:]]+PartitionCount: 3[[:space:]]+ReplicationFactor: 1[[:space:]]+Configs: retention.ms=3600000" \
    "Topic: $T[[:space:]]+Partition: 2[[:space:]]+Leader: 0[[:space:]]+Replicas: 0[[:space:]]+Isr: 0"
  kafka TopicCommand --bootstrap-server "$B" --alter --topic "$T" --partitions 4 >"$o.alter"
  kafka TopicCommand --bootstrap-server "$B" --describe --topic "$T" >"$o.describe2"
  expect "$o.describe2" "PartitionCount: 4" "Partition: 3[[:space:]]+Leader: 0"
  kafka TopicCommand --bootstrap-server "$B" --create --topic tools-doomed --partitions 1 >/dev/null
  kafka TopicCommand --bootstrap-server "$B" --delete --topic tools-doomed >"$o.delete"
  kafka TopicCommand --bootstrap-server "$B" --list >"$o.list2"
  reject "$o.list2" "^tools-doomed\$"
}

configs() {
  local o=$TMP/data-configs
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type topics --entity-name "$T" >"$o.d1"
  expect "$o.d1" "Dynamic configs for topic $T are:" "retention.ms=3600000 .*DYNAMIC_TOPIC_CONFIG:retention.ms=3600000"
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type topics --entity-name "$T" \
    --add-config retention.ms=7200000,segment.bytes=1048576 >"$o.alter"
  expect "$o.alter" "Completed updating config for topic $T"
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type topics --entity-name "$T" >"$o.d2"
  expect "$o.d2" "retention.ms=7200000" "segment.bytes=1048576"
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type topics --entity-name "$T" \
    --delete-config segment.bytes >"$o.del"
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type topics --entity-name "$T" >"$o.d3"
  reject "$o.d3" "segment.bytes="
  kafka ConfigCommand --bootstrap-server "$B" --describe --all --entity-type brokers --entity-name 0 >"$o.broker"
  expect "$o.broker" "All configs for broker 0 are:" "log.retention.ms=604800000"
  # Every topic, and the (empty) client-metrics resources: Kafka 4.1+ lists them first.
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type topics >"$o.all"
  expect "$o.all" "Dynamic configs for topic $T are:" "Dynamic configs for topic __consumer_offsets are:"
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type client-metrics >"$o.metrics"
  reject "$o.metrics" "[Ee]xception|[Ee]rror"
}

console() {
  local o=$TMP/data-console
  printf 'k%s:value-%s\n' 1 1 2 2 3 3 4 4 5 5 6 6 >"$o.in"
  kafka ConsoleProducer --bootstrap-server "$B" --topic "$T" --reader-property parse.key=true \
    --reader-property key.separator=: --producer-property acks=all <"$o.in" >"$o.produce"
  printf 'h1:x,h2:y\tkh:with-headers\n' | kafka ConsoleProducer --bootstrap-server "$B" --topic "$T" \
    --reader-property parse.key=true --reader-property key.separator=: \
    --reader-property parse.headers=true >>"$o.produce"
  kafka consumer.ConsoleConsumer --bootstrap-server "$B" --topic "$T" --from-beginning \
    --max-messages 7 --group tools-console --formatter-property print.key=true \
    --formatter-property print.headers=true --formatter-property key.separator=: \
    --formatter-property headers.separator=, >"$o.out"
  # Formatted as HEADERS:KEY:VALUE (key.separator between the three).
  expect "$o.out" "Processed a total of 7 messages" "^h1:x,h2:y:kh:with-headers\$"
  sed -n 's/^NO_HEADERS://p' "$o.out" | sort >"$o.got"
  sort "$o.in" | cmp -s - "$o.got" || { echo "consumed differs:"; diff <(sort "$o.in") "$o.got"; return 1; }
  # One partition from an offset, offsets printed.
  kafka TopicCommand --bootstrap-server "$B" --create --topic tools-console1 --partitions 1 >/dev/null
  printf 'a\nb\nc\nd\n' | kafka ConsoleProducer --bootstrap-server "$B" --topic tools-console1 >/dev/null
  kafka consumer.ConsoleConsumer --bootstrap-server "$B" --topic tools-console1 --partition 0 \
    --offset 2 --max-messages 2 --formatter-property print.offset=true >"$o.offset"
  expect "$o.offset" "^Offset:2	c\$" "^Offset:3	d\$" "Processed a total of 2 messages"
  reject "$o.offset" "	[ab]\$"
}

groups() {
  local o=$TMP/data-groups
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --list >"$o.list"
  expect "$o.list" "^tools-console\$"
  # The console consumer committed all 7 records; 3 more make a lag of 3 in total.
  printf 'late-%s\n' 1 2 3 | kafka ConsoleProducer --bootstrap-server "$B" --topic "$T" >/dev/null
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --describe --group tools-console >"$o.describe"
  expect "$o.describe" "GROUP +TOPIC +PARTITION +CURRENT-OFFSET +LOG-END-OFFSET +LAG"
  local lag current end
  lag=$(awk -v t="$T" '$2 == t { s += $6 } END { print s + 0 }' "$o.describe")
  current=$(awk -v t="$T" '$2 == t { s += $4 } END { print s + 0 }' "$o.describe")
  end=$(awk -v t="$T" '$2 == t { s += $5 } END { print s + 0 }' "$o.describe")
  [[ $lag == 3 && $current == 7 && $end == 10 ]] \
    || { echo "lag $lag current $current end $end, want 3 7 10:"; cat "$o.describe"; return 1; }
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --reset-offsets --group tools-console \
    --topic "$T" --to-earliest --execute >"$o.reset"
  expect "$o.reset" "GROUP +TOPIC +PARTITION +NEW-OFFSET" "tools-console +$T +0 +0"
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --describe --group tools-console >"$o.after"
  lag=$(awk -v t="$T" '$2 == t { s += $6 } END { print s + 0 }' "$o.after")
  [[ $lag == 10 ]] || { echo "lag after reset $lag, want 10:"; cat "$o.after"; return 1; }
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --reset-offsets --group tools-console \
    --topic "$T:0" --to-offset 1 --execute >"$o.reset2"
  expect "$o.reset2" "tools-console +$T +0 +1"
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --reset-offsets --group tools-console \
    --topic "$T:0" --shift-by -1 --execute >"$o.shift"
  expect "$o.shift" "tools-console +$T +0 +0"
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --reset-offsets --group tools-console \
    --topic "$T" --to-datetime 2000-01-01T00:00:00.000 --dry-run >"$o.datetime"
  [[ $(grep -cE "tools-console +$T +[0-3] +0\$" "$o.datetime") == 4 ]] \
    || { echo "to-datetime 2000 should give offset 0 on all 4 partitions:"; cat "$o.datetime"; return 1; }
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --describe --group tools-console --state >"$o.state"
  expect "$o.state" "^tools-console +127\.0\.0\.1:[0-9]+ +\(0\) +- +Empty +0\$"
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --delete --group tools-console >"$o.delete"
  expect "$o.delete" "Deletion of requested consumer groups \('tools-console'\) was successful"
  kafka consumer.group.ConsumerGroupCommand --bootstrap-server "$B" --list >"$o.list2"
  reject "$o.list2" "^tools-console\$"
}

perf() {
  local o=$TMP/data-perf
  kafka TopicCommand --bootstrap-server "$B" --create --topic tools-perf --partitions 2 >/dev/null
  kafka ProducerPerformance --topic tools-perf --num-records 20000 --record-size 100 --throughput -1 \
    --command-property bootstrap.servers="$B" acks=1 >"$o.produce"
  expect "$o.produce" "^20000 records sent, [0-9.]+ records/sec"
  kafka ConsumerPerformance --bootstrap-server "$B" --topic tools-perf --num-records 20000 \
    --timeout 30000 >"$o.consume"
  # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, ...
  local n
  n=$(awk -F', ' 'NR > 1 && NF >= 5 { print $5 }' "$o.consume" | tail -n1)
  [[ $n == 20000 ]] || { echo "consumer perf consumed '$n', want 20000:"; cat "$o.consume"; return 1; }
  # kafka-e2e-latency: produce one record, consume it, repeat.
  kafka TopicCommand --bootstrap-server "$B" --create --topic tools-e2e --partitions 1 >/dev/null
  kafka EndToEndLatency --bootstrap-server "$B" --topic tools-e2e --num-records 300 --producer-acks 1 \
    --record-size 100 >"$o.e2e"
  expect "$o.e2e" "^Avg latency: [0-9.]+ ms\$" "^Percentiles: 50th = [0-9]+, 99th = [0-9]+, 99.9th = [0-9]+\$"
}

offsets_and_delete() {
  local o=$TMP/data-offsets
  kafka GetOffsetShell --bootstrap-server "$B" --topic tools-perf >"$o.latest"
  local total
  total=$(awk -F: '{ s += $3 } END { print s + 0 }' "$o.latest")
  [[ $total == 20000 ]] || { echo "latest offsets sum $total, want 20000:"; cat "$o.latest"; return 1; }
  local p0end
  p0end=$(awk -F: '$2 == 0 { print $3 }' "$o.latest")
  kafka GetOffsetShell --bootstrap-server "$B" --topic tools-perf --time -2 >"$o.earliest"
  expect "$o.earliest" "^tools-perf:0:0\$" "^tools-perf:1:0\$"
  printf '{"partitions":[{"topic":"tools-perf","partition":0,"offset":%d}],"version":1}\n' 500 >"$o.json"
  kafka DeleteRecordsCommand --bootstrap-server "$B" --offset-json-file "$o.json" >"$o.delete"
  expect "$o.delete" "Records delete operation completed:" "partition: tools-perf-0[[:space:]]+low_watermark: 500"
  kafka GetOffsetShell --bootstrap-server "$B" --topic tools-perf --time -2 >"$o.earliest2"
  expect "$o.earliest2" "^tools-perf:0:500\$" "^tools-perf:1:0\$"
  kafka GetOffsetShell --bootstrap-server "$B" --topic tools-perf --partitions 0 --time -1 >"$o.p0"
  expect "$o.p0" "^tools-perf:0:$p0end\$"
  # -3: the offset of the record with the largest timestamp, inside [log start, log end).
  kafka GetOffsetShell --bootstrap-server "$B" --topic tools-perf --partitions 0 --time -3 >"$o.max"
  local maxts
  maxts=$(awk -F: '$2 == 0 { print $3 }' "$o.max")
  [[ -n $maxts && $maxts -ge 500 && $maxts -lt $p0end ]] \
    || { echo "max-timestamp offset '$maxts' not in [500, $p0end):"; cat "$o.max"; return 1; }
}

leader_election() {
  local o=$TMP/data-election
  # One node is every partition's preferred leader already: Kafka answers ELECTION_NOT_NEEDED.
  kafka LeaderElectionCommand --bootstrap-server "$B" --election-type preferred --topic "$T" \
    --partition 0 >"$o.out" || true
  if grep -q "Valid replica already elected for partitions $T-0" "$o.out"; then return 0; fi
  not_yet leader_election "$o.out" "UnsupportedVersionException: The node does not support [A-Z_]+"
}

transactions() {
  local o=$TMP/data-transactions
  kafka TransactionsCommand --bootstrap-server "$B" list >"$o.out" || true
  if grep -qE "^TransactionalId[[:space:]]+Coordinator[[:space:]]+ProducerId[[:space:]]+TransactionState" "$o.out"; then return 0; fi
  not_yet transactions "$o.out" "The node does not support [A-Z_]+"
}

# Client quotas (AlterClientQuotas / DescribeClientQuotas) on entities no other check uses.
client_quotas() {
  local o=$TMP/data-quotas
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type clients --entity-name tools-q \
    --add-config producer_byte_rate=1048576,consumer_byte_rate=2097152 >"$o.alter1"
  expect "$o.alter1" "Completed updating config for client tools-q"
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type users --entity-name tools-u \
    --entity-type clients --entity-default --add-config request_percentage=150 >"$o.alter2"
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type clients --entity-name tools-q >"$o.d1"
  expect "$o.d1" "client-id 'tools-q' are .*consumer_byte_rate=2097152" "producer_byte_rate=1048576"
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type users --entity-name tools-u \
    --entity-type clients --entity-default >"$o.d2"
  expect "$o.d2" "user-principal 'tools-u', the default client-id are request_percentage=150"
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type clients --entity-name tools-q \
    --delete-config producer_byte_rate,consumer_byte_rate >/dev/null
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type users --entity-name tools-u \
    --entity-type clients --entity-default --delete-config request_percentage >/dev/null
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type clients >"$o.d3"
  reject "$o.d3" "tools-q"
}

# KIP-612 IP quotas (on 127.0.0.2 and the default IP, so the tools on 127.0.0.1 stay below
# them) and KIP-599 controller_mutation_rate: kafka-topics does not retry on a quota violation,
# so the third creation fails with Kafka's message.
ip_and_mutation_quotas() {
  local o=$TMP/data-quotas2
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type ips --entity-name 127.0.0.2 \
    --add-config connection_creation_rate=100 >"$o.ip"
  expect "$o.ip" "Completed updating config for ip 127.0.0.2"
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type ips --entity-default \
    --add-config connection_creation_rate=5000 >/dev/null
  kafka ConfigCommand --bootstrap-server "$B" --describe --entity-type ips >"$o.ips"
  expect "$o.ips" "ip '127.0.0.2' are connection_creation_rate=100" \
    "the default ip are connection_creation_rate=5000"
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type clients --entity-name tools-m \
    --add-config controller_mutation_rate=10 >/dev/null
  printf 'client.id=tools-m\n' >"$o.props"
  kafka TopicCommand --bootstrap-server "$B" --command-config "$o.props" --create --topic tools-m1 \
    --partitions 100 >"$o.t1"
  kafka TopicCommand --bootstrap-server "$B" --command-config "$o.props" --create --topic tools-m2 \
    --partitions 100 >"$o.t2"
  expect "$o.t2" "Created topic tools-m2"
  kafka TopicCommand --bootstrap-server "$B" --command-config "$o.props" --create --topic tools-m3 \
    --partitions 10 >"$o.t3" 2>&1 || true
  expect "$o.t3" "The throttling quota has been exceeded"
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type ips --entity-default \
    --delete-config connection_creation_rate >/dev/null
  kafka ConfigCommand --bootstrap-server "$B" --alter --entity-type ips --entity-name 127.0.0.2 \
    --delete-config connection_creation_rate >/dev/null
  kafka TopicCommand --bootstrap-server "$B" --delete --topic 'tools-m1|tools-m2' >/dev/null
}

export B T TMP LIB JAVA TOOL_TIMEOUT_S METRICS_ADDR
# kafka-broker-api-versions and kafka-cluster cluster-id: what an operator runs first.
cluster_info() {
  local o=$TMP/data-cluster
  kafka BrokerApiVersionsCommand --bootstrap-server "$B" >"$o.versions"
  expect "$o.versions" "^$B \(id: [0-9]+ rack: null isFenced: false\) -> \(" \
    "Produce\(0\): [0-9]+ to [0-9]+ \[usable: [0-9]+\]" "ApiVersions\(18\): [0-9]+ to [0-9]+"
  # APIs Sluice does not serve are listed as UNSUPPORTED (as for a Kafka broker without them).
  expect "$o.versions" "Fetch\(1\): [0-9]+ to 1[0-9] \[usable: 1[0-9]\]" \
    "DescribeTopicPartitions\(75\): 0( to [0-9]+)? \[usable: [0-9]+\]"
  kafka ClusterTool cluster-id --bootstrap-server "$B" >"$o.id"
  expect "$o.id" "^Cluster ID: [^[:space:]]+\$"
}

# kafka-log-dirs --describe: DescribeLogDirs (sizes and offset lag per partition and log dir).
log_dirs() {
  local o=$TMP/data-logdirs
  kafka LogDirsCommand --bootstrap-server "$B" --describe --topic-list "$T" >"$o.out" || true
  if grep -qE '"brokers":\[\{"broker":[0-9]+,"logDirs":\[\{' "$o.out"; then return 0; fi
  not_yet log_dirs "$o.out" "UnsupportedVersionException: The node does not support [A-Z_]+"
}

# kafka-metadata-quorum describe --status: DescribeQuorum (the KRaft controller quorum).
metadata_quorum() {
  local o=$TMP/data-quorum
  kafka MetadataQuorumCommand --bootstrap-server "$B" describe --status >"$o.out" || true
  if grep -qE "^ClusterId: +[^[:space:]]+" "$o.out" && grep -qE "^LeaderId: +[0-9]+" "$o.out"; then
    return 0
  fi
  not_yet metadata_quorum "$o.out" "UnsupportedVersionException: The node does not support [A-Z_]+"
}

# kafka-features describe: the supported and finalized feature levels from ApiVersions (Kafka 4
# lists metadata.version, kraft.version, group.version, transaction.version, ...).
features() {
  local o=$TMP/data-features
  kafka FeatureCommand --bootstrap-server "$B" describe >"$o.out"
  if grep -qE "^Feature: metadata\.version[[:space:]]+SupportedMinVersion: " "$o.out"; then return 0; fi
  # Sluice advertises transaction.version (KIP-890, finalized at `transaction.version`, 2 by
  # default) and not yet metadata.version / kraft.version / group.version: the tool must show
  # exactly that, else the output is unexpected.
  grep -qE "^Feature: transaction\.version[[:space:]]+SupportedMinVersion: 0[[:space:]]+SupportedMaxVersion: 2[[:space:]]+FinalizedVersionLevel: 2" "$o.out" \
    || { echo "unexpected kafka-features output:"; cat "$o.out"; return 1; }
  echo "only transaction.version listed (finalized 2); no metadata.version, kraft.version or group.version" \
    >"$TMP/features.reason"
  return 3
}

export -f kafka requests expect reject not_yet topics configs console groups perf offsets_and_delete \
  leader_election transactions cluster_info log_dirs metadata_quorum features client_quotas \
  ip_and_mutation_quotas
check topics "kafka-topics: create, list, describe, alter partitions, delete"
check configs "kafka-configs: describe, alter, delete topic configs; describe broker"
check console "kafka-console-producer / kafka-console-consumer: keys, headers, partition and offset"
check groups "kafka-consumer-groups: list, describe (lag, state), reset offsets (earliest, offset, shift, datetime), delete"
check perf "kafka-producer-perf-test / kafka-consumer-perf-test / kafka-e2e-latency"
check offsets_and_delete "kafka-get-offsets (earliest, latest, max timestamp), kafka-delete-records"
check leader_election "kafka-leader-election (preferred)"
check transactions "kafka-transactions list"
check cluster_info "kafka-broker-api-versions, kafka-cluster cluster-id"
check log_dirs "kafka-log-dirs --describe"
check metadata_quorum "kafka-metadata-quorum describe --status"
check features "kafka-features describe"
check client_quotas "kafka-configs: alter, describe, delete client quotas (clients, users + default client)"
check ip_and_mutation_quotas "kafka-configs: IP connection_creation_rate and controller_mutation_rate; kafka-topics over the mutation quota"

if ! kill -0 "$PID" 2>/dev/null; then
  echo "FAIL broker-alive (sluice exited during the checks)"; FAILED=$((FAILED + 1))
else
  PASSED=$((PASSED + 1))
fi
echo "kafka-tools: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
