#!/usr/bin/env bash
# Early writeback at storage level (issue 16, session 7; BENCHMARKS.md "Issue 16, session 7:
# durable acks=all"): 16 KiB appends of the partition log with and without
# `writeback_start_bytes` (log.writeback.start.bytes), alternating in ONE run, next to
# `dd conv=fdatasync` (before and after the legs) on the same file system:
#   - fsync-at-end: dd conv=fdatasync's policy (one fdatasync after all writes, timed);
#   - acks=all: 4 appenders, each awaiting an fdatasync covering its append (the shard's sync
#     batch, as the broker's acks=all answer does).
#
#   TOTAL_MIB [256]  ROUNDS [3]  WRITEBACK_KIB [1024] (fsync-at-end legs)
#   ACKS_WRITEBACK_KIB [64] (acks=all legs)  DATA_DIR [target/bench-writeback]
#   BENCH [target/release/storage_bench]
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL_MIB=${TOTAL_MIB:-256}
ROUNDS=${ROUNDS:-3}
WRITEBACK_KIB=${WRITEBACK_KIB:-1024}
ACKS_WRITEBACK_KIB=${ACKS_WRITEBACK_KIB:-64}
DATA_DIR=${DATA_DIR:-target/bench-writeback}
BENCH=${BENCH:-target/release/storage_bench}

# shellcheck source=perf/lib-disk.sh
source perf/lib-disk.sh
disk_scratch
echo "$TOTAL_MIB MiB per leg; MB = 10^6 bytes"

# leg TAG ARGS...: one storage_bench run, its RESULT/FSYNCS lines tagged.
leg() {
  local tag=$1
  shift
  "$BENCH" --dir "$DATA_DIR/log" --total-mib "$TOTAL_MIB" --batch-kib 16 "$@" |
    grep -E '^RESULT|^FSYNCS' | sed "s/^\([A-Z]*\) /\1 $tag /"
  rm -rf "$DATA_DIR/log"
}

dd_run 1M 1048576 | sed "s/^/RESULT /"
dd_run 16K 16384 | sed "s/^/RESULT /"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round, load $(cut -d' ' -f1-3 /proc/loadavg)"
  leg "r$round plain" --only fsync-at-end --writeback-kib 0
  leg "r$round writeback-${WRITEBACK_KIB}KiB" --only fsync-at-end --writeback-kib "$WRITEBACK_KIB"
  leg "r$round acks-all plain" --inflight 4 --only fsync-per-MiB --wait-durable --writeback-kib 0
  leg "r$round acks-all writeback-${ACKS_WRITEBACK_KIB}KiB" --inflight 4 --only fsync-per-MiB \
    --wait-durable --writeback-kib "$ACKS_WRITEBACK_KIB"
done
dd_run 1M 1048576 | sed "s/^/RESULT /"
dd_run 16K 16384 | sed "s/^/RESULT /"
