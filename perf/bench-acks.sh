#!/usr/bin/env bash
# acks=all with an fsync before every answer (issue 16, session 7; BENCHMARKS.md "Issue 16,
# session 7: durable acks=all"): the disk's own ceiling for the broker's pattern, measured
# around alternating broker legs of ONE run.
#
# The model (decision 0005: a connection's requests are handled one at a time, so each native
# producer has one request in the broker at a time): P producers, each request one 128 KiB
# batch appended to one partition's segment and then fdatasynced, give at most
#     P x 128 KiB / (append + fdatasync latency)
# and the disk's figure for exactly that pattern is fio with P jobs, each writing 128 KiB to
# its own file and fdatasyncing after every write (its aggregate bandwidth is the ceiling).
# fio runs before and after the broker legs (the VM's disk moves between minutes).
#
# Broker legs (perf/ab.sh, 16 partitions, PRODUCERS native producers, acks=all):
#   fsync      the default (an fdatasync before every acks=all answer, shard group commit)
#   writeback  the same with log.writeback.start.bytes = WRITEBACK_BYTES (early writeback)
#   no-fsync   log.flush.on.acks.all = false (Kafka's acks=all: answered once written)
#
#   PRODUCERS [4]  ROUNDS [3]  DURATION_S [6]  WARMUP_S [2]  WRITEBACK_BYTES [65536] (0: no
#   writeback legs)
#   SLUICE_BIN [target/release/sluice]  DATA_DIR [target/bench-acks] (fio scratch)
set -euo pipefail
cd "$(dirname "$0")/.."

PRODUCERS=${PRODUCERS:-4}
ROUNDS=${ROUNDS:-3}
DURATION_S=${DURATION_S:-6}
WARMUP_S=${WARMUP_S:-2}
WRITEBACK_BYTES=${WRITEBACK_BYTES:-65536}
BIN=${SLUICE_BIN:-target/release/sluice}
DATA_DIR=${DATA_DIR:-target/bench-acks}

mkdir -p "$DATA_DIR"
trap 'rm -rf "$DATA_DIR"' EXIT

# fio_jobs NAME JOBS BS: JOBS writers, each appending BS writes to its own 16 MiB file with an
# fdatasync after every write; prints aggregate MB/s and the fdatasync latency.
fio_jobs() {
  fio --name=acks --directory="$DATA_DIR" --rw=write --bs="$3" --size=16m --numjobs="$2" \
    --ioengine=psync --fdatasync=1 --output-format=json 2>/dev/null |
    python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"]
# all jobs start together: their bytes over the longest job runtime (ms)
bw = sum(x["write"]["io_bytes"] for x in j) / max(x["job_runtime"] for x in j) / 1e3
lat = [x["sync"]["lat_ns"] for x in j]
mean = sum(l["mean"] for l in lat) / len(lat) / 1e6
p99 = max(l["percentile"]["99.000000"] for l in lat) / 1e6
print("%-44s %8.1f MB/s  fdatasync mean %.2f ms, p99 %.2f ms" % (sys.argv[1], bw, mean, p99))' "$1"
  rm -f "$DATA_DIR"/acks.*
}

disk() {
  echo "disk ($1), load $(cut -d' ' -f1-3 /proc/loadavg):"
  fio_jobs "fio 1 x (128 KiB append + fdatasync)" 1 128k
  fio_jobs "fio $PRODUCERS x (128 KiB append + fdatasync)" "$PRODUCERS" 128k
  fio_jobs "fio 1 x (16 KiB append + fdatasync)" 1 16k
}

disk before
variants="fsync:$BIN no-fsync:$BIN:\"log.flush.on.acks.all\"=false"
if [[ $WRITEBACK_BYTES != 0 ]]; then
  variants="fsync:$BIN writeback:$BIN:\"log.writeback.start.bytes\"=$WRITEBACK_BYTES no-fsync:$BIN:\"log.flush.on.acks.all\"=false"
fi
VARIANTS=$variants \
  ACKS=all PRODUCERS="$PRODUCERS" ROUNDS="$ROUNDS" DURATION_S="$DURATION_S" WARMUP_S="$WARMUP_S" \
  perf/ab.sh
disk after
