#!/usr/bin/env bash
# io-wq punts (io_uring:io_uring_queue_async_work) vs io_uring ops submitted, and context
# switches, of a one-shard broker (CPU 0) over 4 s of native produce load (CPU 1): acks=1 and
# acks=all, shard.io_uring.setup off and on. Needs perf with tracepoint access.
#   SLUICE_BIN=target/release/sluice perf/io-wq-punts.sh
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT
W=/tmp/punts-w.toml
sed -E -e "s/^consumers_per_subscription *=.*/consumers_per_subscription = 0/" -e 's/^consumer_mode *=.*/consumer_mode = "assign"/' "$ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml" > $W.tmp
for acks in 1 all; do
  with_acks $W.tmp $acks $W.$acks
  for flags in "" "SINGLE_ISSUER,DEFER_TASKRUN,COOP_TASKRUN"; do
    printf '"shard.io_uring.setup" = "%s"\n' "$flags" > /tmp/punts-cfg.toml
    sluice_start "p-$acks-${#flags}" 0 --cores 1 --config /tmp/punts-cfg.toml
    (taskset -c 1 $BENCH_BIN run -w $W.$acks --client native --consumers 0 --consumer-mode assign --duration-s 5 --warmup-s 1 --out /tmp/punts-out --quiet -b x=$BROKER_ADDR > /tmp/punts-bench.txt 2>&1 &)
    sleep 2
    perf stat -x, -e io_uring:io_uring_submit_req,io_uring:io_uring_queue_async_work,context-switches -p $BROKER_PID -- sleep 4 2>&1 | awk -F, -v a=$acks -v f="${flags:-none}" '{print "acks=" a, "flags=" f, $3, $1}'
    sleep 2
    sluice_stop
  done
done
