#!/usr/bin/env bash
# CPU flamegraph of one broker of a three-broker KRaft cluster under RF=3 acks=all load
# (issue 11: "replication traffic zero-copy on the leader side"). The recorded broker leads a
# share of the partitions and follows the rest, so the graph holds both sides: the follower
# Fetches it serves as a leader (record bytes spliced file -> pipe -> socket, `net::splice`)
# and its own replica fetcher's appends. Prints the share of CPU time in the splice path
# versus the copy path (the load has no consumers: every record read is a follower's Fetch).
#
#   perf/flamegraph-replication.sh [SLUICE_BIN]
#   DURATION_S=10 perf/flamegraph-replication.sh target/release/sluice
#
# Knobs: DURATION_S (perf record time, default 10), PARTITIONS (6), VALUE_BYTES (1024),
# FREQ (499 Hz), CALL_GRAPH (dwarf,32768), OUT (perf/out/replication). The load is
# confluent-kafka from .venv (idempotent, acks=all), on the same machine as the brokers.
# Hardware counters are not available on this VM, hence the cpu-clock software event.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sluice_bin=${1:-$root/target/release/sluice}
duration_s=${DURATION_S:-10}
partitions=${PARTITIONS:-6}
value_bytes=${VALUE_BYTES:-1024}
freq=${FREQ:-499}
call_graph=${CALL_GRAPH:-dwarf,32768}
out=${OUT:-$root/perf/out/replication}
python=${PYTHON:-$root/.venv/bin/python}

for tool in perf inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || { echo "flamegraph-replication: $tool missing (make bench-deps)" >&2; exit 1; }
done

source "$root/perf/lib-cluster.sh"
cluster_start "$sluice_bin" 1 '"default.replication.factor" = 3'
work=$CLUSTER_WORK
recorded_pid=${CLUSTER_PIDS[0]}
bootstrap=$CLUSTER_BOOTSTRAP

# The load: create the RF=3 topic, then produce until told to stop.
cat >"$work/load.py" <<'PY'
import sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, partitions, value_bytes, stop_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic("repl-flame", partitions, 3)]).values():
    f.result()
time.sleep(2)
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
              "linger.ms": 1, "batch.size": 131072, "queue.buffering.max.messages": 200000})
value = b"x" * value_bytes
sent = acked = 0
def done(err, _msg):
    global acked
    if err is None:
        acked += 1
started = time.time()
import os
while not os.path.exists(stop_file):
    try:
        p.produce("repl-flame", value, on_delivery=done)
        sent += 1
    except BufferError:
        p.poll(0.01)
    p.poll(0)
p.flush(10)
print(f"load: sent={sent} acked={acked} in {time.time() - started:.1f} s", file=sys.stderr)
PY
"$python" "$work/load.py" "$bootstrap" "$partitions" "$value_bytes" "$work/stop" &
load_pid=$!
CLUSTER_PIDS+=("$load_pid")
sleep 5 # topic created, leaders elected, load running

perf record -q -e cpu-clock -F "$freq" --call-graph "$call_graph" -p "$recorded_pid" \
  -o "$work/cpu.data" -- sleep "$duration_s" 2>"$work/perf.log"
touch "$work/stop"
wait "$load_pid" || true

mkdir -p "$out"
perf script --no-inline -i "$work/cpu.data" 2>"$work/perf-script.log" | inferno-collapse-perf >"$out/replication-rf3-cpu.folded"
if [[ ! -s $out/replication-rf3-cpu.folded ]]; then
  echo "flamegraph-replication: no samples; perf said:" >&2
  cat "$work/perf.log" "$work/perf-script.log" >&2
  exit 1
fi
inferno-flamegraph --title "sluice broker 1 of 3, RF=3 acks=all (${partitions} partitions, ${value_bytes} B)" \
  <"$out/replication-rf3-cpu.folded" >"$out/replication-rf3-cpu.svg"
python3 - "$out/replication-rf3-cpu.folded" <<'PY'
import sys
# Weights are cpu-clock time (ns) per stack. The load has no consumers: every record read on
# this broker is a follower's Fetch it serves as a leader.
total = spliced = copied = serving = 0
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n)
    total += n
    if "net::splice::Splicer" in stack:
        spliced += n
    if "write_parts_copied" in stack:
        copied += n
    if "fetch::replica" in stack:
        serving += n
pct = lambda n: 100.0 * n / total if total else 0.0
print(f"cpu-clock {total / 1e9:.2f} s; follower Fetches (handlers::fetch::replica) {pct(serving):.1f}%; "
      f"record bytes written by splice (net::splice::Splicer) {pct(spliced):.1f}%; "
      f"by copy (write_parts_copied) {pct(copied):.1f}%")
PY
echo "flamegraph: $out/replication-rf3-cpu.svg" >&2
