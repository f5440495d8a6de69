#!/usr/bin/env bash
# Storage benchmark (`make bench-storage`): single-shard append / read throughput of the
# partition log next to `dd` on the SAME filesystem, in the same command, plus the ratios.
#
#   TOTAL_MIB   bytes per run in MiB (default 512)
#   DATA_DIR    scratch directory; its filesystem is what is measured (default target/bench-storage)
#   CARGO_TARGET_DIR  where the release binary is built (default target)
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL_MIB=${TOTAL_MIB:-512}
DATA_DIR=${DATA_DIR:-target/bench-storage}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
CARGO=${CARGO:-cargo}

CARGO_TARGET_DIR="$TARGET_DIR" "$CARGO" build --release -q -p storage --bin storage_bench
BENCH="$TARGET_DIR/release/storage_bench"

rm -rf "$DATA_DIR"
mkdir -p "$DATA_DIR"
trap 'rm -rf "$DATA_DIR"' EXIT

echo "machine: $(nproc) cores, $(uname -r); data dir $DATA_DIR on $(df -P "$DATA_DIR" | awk 'NR==2 {print $1 " (" $6 ")"}') $(findmnt -no FSTYPE -T "$DATA_DIR" 2>/dev/null || true)"
echo "records: 1 KiB values; $TOTAL_MIB MiB per run; MB = 10^6 bytes"
echo

# dd_mbps ARGS...: runs dd writing TOTAL_MIB MiB into the data dir; prints MB/s computed
# from dd's own byte count and elapsed time.
dd_mbps() {
    local f="$DATA_DIR/dd.bin" out
    out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=1M count="$TOTAL_MIB" "$@" 2>&1 | tail -n1)
    rm -f "$f"
    awk '{ for (i = 1; i <= NF; i++) if ($(i) == "s," || $(i) == "s") secs = $(i-1);
           printf "%.1f\n", $1 / secs / 1e6 }' <<<"$out"
}

dd_direct=$(dd_mbps oflag=direct)
dd_fdatasync=$(dd_mbps conv=fdatasync)
printf '%-28s %8s MB/s\n' "dd bs=1M oflag=direct" "$dd_direct"
printf '%-28s %8s MB/s\n' "dd bs=1M conv=fdatasync" "$dd_fdatasync"

results=$("$BENCH" --dir "$DATA_DIR" --total-mib "$TOTAL_MIB")
grep -v '^RESULT ' <<<"$results"
result() { awk -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }' <<<"$results"; }

echo
echo "ratios (target: append fsync-per-MiB / dd conv=fdatasync >= 0.8)"
for name in append-16KiB-fsync-per-MiB append-1MiB-fsync-per-MiB; do
    awk -v n="$name" -v s="$(result "$name")" -v d="$dd_fdatasync" -v o="$dd_direct" \
        'BEGIN { printf "%-28s %5.2f x dd conv=fdatasync, %5.2f x dd oflag=direct%s\n", n, s / d, s / o, (s / d >= 0.8 ? "" : "  (MISSES TARGET)") }'
done
