#!/usr/bin/env bash
# Replication cost (issue 11): the same acks=all workload on a topic with replication factor 1
# and on one with replication factor 3, on the same three-broker KRaft cluster on loopback, in
# the same run. Prints sluice-bench's table for each and the RF3/RF1 throughput ratio.
#
#   perf/bench-replication.sh [SLUICE_BIN] [BENCH_BIN]
#   DURATION_S=10 WARMUP_S=2 perf/bench-replication.sh target/release/sluice target/release/sluice-bench
#
# Two pairs: at max rate (throughput ratio; latency there is queueing in the client) and at a
# fixed RATE (msg/s, default 5000) both can sustain (publish-to-ack latency without queueing).
# Knobs: DURATION_S (default 10), WARMUP_S (2), RATE, OUT (bench-out/replication), CORES (1 per
# node), EXTRA_TOML (more config lines for every node).
# Every broker shares the machine with the load generator: the figures are this machine's, a
# ratio more than an absolute.
set -euo pipefail

sluice_bin=${1:-target/release/sluice}
bench_bin=${2:-target/release/sluice-bench}
duration_s=${DURATION_S:-10}
warmup_s=${WARMUP_S:-2}
out=${OUT:-bench-out/replication}
cores=${CORES:-1}
rate=${RATE:-5000}
ready_timeout_s=${READY_TIMEOUT_S:-60}

source "$(dirname "$0")/lib-cluster.sh"
cluster_start "$sluice_bin" "$cores" "${EXTRA_TOML:-}" "$ready_timeout_s"
bootstrap=$CLUSTER_BOOTSTRAP
echo "bench-replication: cluster ready at $bootstrap" >&2

mkdir -p "$out"
for rf in 1 3; do
  workload="$out/rf$rf.toml"
  cat >"$workload" <<EOF
# Written by perf/bench-replication.sh: acks=all, replication factor $rf.
name = "replication-rf$rf-acks-all"
topics = 1
partitions_per_topic = 6
message_size_bytes = 1024
payload_random_fraction = 1.0
key_distribution = "none"
producers_per_topic = 2
subscriptions_per_topic = 1
consumers_per_subscription = 2
consumer_mode = "assign"
acks = "all"
batch_size_bytes = 131072
linger_ms = 1
compression = "none"
duration_s = $duration_s
warmup_s = $warmup_s
producer_rate_msgs_per_s = 0
replication_factor = $rf
EOF
done
# Fixed rate first: a max-rate RF3 run leaves followers a backlog that would delay the next run.
for rf in 1 3; do
  "$bench_bin" run -w "$out/rf$rf.toml" --broker "rf$rf-${rate}=$bootstrap" --consumers 0 --rate "$rate" \
    --topic-prefix "repl-rf$rf-fixed" --out "$out/rf$rf-fixed" --quiet | tee "$out/rf$rf-fixed.md"
done
for rf in 1 3; do
  "$bench_bin" run -w "$out/rf$rf.toml" --broker "rf$rf=$bootstrap" --consumers 0 \
    --topic-prefix "repl-rf$rf" --out "$out/rf$rf" --quiet | tee "$out/rf$rf.md"
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
runs = {rf: json.load(open(f"{out}/rf{rf}/summary.json"))["runs"][0] for rf in (1, 3)}
fixed = {rf: json.load(open(f"{out}/rf{rf}-fixed/summary.json"))["runs"][0] for rf in (1, 3)}
for rf, r in fixed.items():
    l = r["publish_latency_ms"]
    print(f"RF{rf} at the fixed rate: acked={r['produced_acked']} errors={r['produce_errors']} "
          f"publish-to-ack p50={l['p50_ms']} p99={l['p99_ms']} p99.9={l['p99_9_ms']} ms")
for rf, r in runs.items():
    print(f"RF{rf}: acked={r['produced_acked']} errors={r['produce_errors']} "
          f"throughput={json.dumps(r['throughput'])} publish_latency_ms={json.dumps(r['publish_latency_ms'])}")
def msgs(r):
    return r["throughput"]["produce_msgs_per_s"]
a, b = msgs(runs[3]), msgs(runs[1])
if a and b:
    print(f"RF3/RF1 throughput ratio: {a / b:.3f}")
PY
