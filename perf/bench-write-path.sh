#!/usr/bin/env bash
# Write-path benchmark of issue 16 (BENCHMARKS.md, "Storage write path"): in ONE run, on the
# data dir's file system, the disk's own figures next to the partition log's 16 KiB appends:
#   - dd conv=fdatasync (one fdatasync at the end) with 1 MiB and 16 KiB writes;
#   - fio, 16 KiB writes, fdatasync every MiB (the log's fsync-per-MiB policy, but the writer
#     waits for each fdatasync), and the same with sync_file_range(WRITE) after every write
#     (writeback started early) or sync_file_range alone (not durable: no metadata, no cache
#     flush), for the fdatasync vs sync_file_range choice;
#   - storage_bench 16 KiB appends, 1 and 4 in flight, fsync per MiB / at the end / never, and
#     4 in flight awaiting durability of each append (acks=all with an fsync per answer)
#     against 4 in flight not awaiting it (Kafka's acks=all: answered once written);
#   - with BEFORE=path/to/storage_bench, the same append runs of that binary, interleaved.
#
#   TOTAL_MIB  MiB per run (default 256)   DATA_DIR  scratch dir (default target/bench-write-path)
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL_MIB=${TOTAL_MIB:-256}
DATA_DIR=${DATA_DIR:-target/bench-write-path}
BENCH=${BENCH:-target/release/storage_bench}
BEFORE=${BEFORE:-}

# shellcheck source=perf/lib-disk.sh
source perf/lib-disk.sh
disk_scratch
echo "$TOTAL_MIB MiB per run, one run each; MB = 10^6 bytes"

fio_run() {
    local name=$1
    shift
    fio --name=w --filename="$DATA_DIR/fio.bin" --rw=write --bs=16k --size="${TOTAL_MIB}m" \
        --ioengine=psync "$@" --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print("%-58s %8.1f MB/s" % (sys.argv[1], j["jobs"][0]["write"]["bw_bytes"]/1e6))' "$name"
    rm -f "$DATA_DIR/fio.bin"
}

log_runs() {
    local bin=$1 tag=$2
    "$bin" --dir "$DATA_DIR" --total-mib "$TOTAL_MIB" --batch-kib 16 | grep -E '^RESULT|^FSYNCS' | sed "s/^/$tag /"
    "$bin" --dir "$DATA_DIR" --total-mib "$TOTAL_MIB" --batch-kib 16 --inflight 4 | grep -E '^RESULT|^FSYNCS' | sed "s/^/$tag /"
    "$bin" --dir "$DATA_DIR" --total-mib "$TOTAL_MIB" --batch-kib 16 --inflight 4 --only fsync-per-MiB --wait-durable |
        grep -E '^RESULT|^FSYNCS' | sed "s/^/$tag /"
}

dd_run 1M 1048576
dd_run 16K 16384
fio_run "fio 16k, fdatasync every MiB (writer waits)" --fdatasync=64
fio_run "fio 16k, sync_file_range(WRITE) each + fdatasync/MiB" --sync_file_range=write:1 --fdatasync=64
fio_run "fio 16k, sync_file_range(WRITE) per MiB (NOT durable)" --sync_file_range=write:64
if [ -n "$BEFORE" ]; then
    log_runs "$BEFORE" before
fi
log_runs "$BENCH" after
