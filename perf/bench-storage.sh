#!/usr/bin/env bash
# Storage benchmark (`make bench-storage`): single-shard append / read throughput of the
# partition log next to `dd` on the SAME filesystem, in the same command, plus the ratios.
# Every measurement is repeated REPEAT times, interleaved (dd, log, dd, log, ...), and the
# median is reported with the range: on a shared VM single runs vary by 2-5x.
#
#   TOTAL_MIB   bytes per run in MiB (default 256)
#   REPEAT      repetitions (default 3)
#   DATA_DIR    scratch directory; its filesystem is what is measured (default target/bench-storage)
#   CARGO_TARGET_DIR  where the release binary is built (default target)
#   WRITE_INLINE_MAX_BYTES  log.write.inline.max.bytes for the appends (default: LogConfig's;
#               0 = every append write through io_uring, the path before inline writes)
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL_MIB=${TOTAL_MIB:-256}
REPEAT=${REPEAT:-3}
DATA_DIR=${DATA_DIR:-target/bench-storage}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
CARGO=${CARGO:-cargo}

CARGO_TARGET_DIR="$TARGET_DIR" "$CARGO" build --release -q -p storage --bin storage_bench
BENCH="$TARGET_DIR/release/storage_bench"
INLINE_ARGS=()
if [ -n "${WRITE_INLINE_MAX_BYTES:-}" ]; then
    INLINE_ARGS=(--write-inline-max-bytes "$WRITE_INLINE_MAX_BYTES")
fi

rm -rf "$DATA_DIR"
mkdir -p "$DATA_DIR"
RESULTS=$(mktemp)
trap 'rm -rf "$DATA_DIR" "$RESULTS"' EXIT

echo "machine: $(nproc) cores, kernel $(uname -r); data dir $DATA_DIR on $(df -P "$DATA_DIR" | awk 'NR==2 {print $1 " (" $6 ")"}') $(findmnt -no FSTYPE -T "$DATA_DIR" 2>/dev/null || true)"
echo "1 KiB record values; $TOTAL_MIB MiB per run; median of $REPEAT; MB = 10^6 bytes; log.write.inline.max.bytes ${WRITE_INLINE_MAX_BYTES:-default}"

# dd_mbps NAME ARGS...: dd of TOTAL_MIB MiB into the data dir; records MB/s computed from
# dd's own byte count and elapsed time.
dd_mbps() {
    local name=$1 f="$DATA_DIR/dd.bin" out
    shift
    out=$(LC_ALL=C dd if=/dev/zero of="$f" bs=1M count="$TOTAL_MIB" "$@" 2>&1 | tail -n1)
    rm -f "$f"
    awk -v n="$name" '{ for (i = 1; i <= NF; i++) if ($(i) == "s," || $(i) == "s") secs = $(i-1);
                        printf "RESULT %s %.1f\n", n, $1 / secs / 1e6 }' <<<"$out" >>"$RESULTS"
}

# dd_read_mbps: reads back a fsynced TOTAL_MIB MiB file from the disk (page cache dropped
# for it by iflag=direct), for the read-cold comparison.
dd_read_mbps() {
    local f="$DATA_DIR/dd-read.bin" out
    LC_ALL=C dd if=/dev/zero of="$f" bs=1M count="$TOTAL_MIB" conv=fdatasync status=none
    out=$(LC_ALL=C dd if="$f" of=/dev/null bs=1M iflag=direct 2>&1 | tail -n1)
    rm -f "$f"
    awk '{ for (i = 1; i <= NF; i++) if ($(i) == "s," || $(i) == "s") secs = $(i-1);
           printf "RESULT dd-read-bs1M-iflag=direct %.1f\n", $1 / secs / 1e6 }' <<<"$out" >>"$RESULTS"
}

for _ in $(seq "$REPEAT"); do
    dd_read_mbps
    dd_mbps "dd-bs1M-oflag=direct" oflag=direct
    dd_mbps "dd-bs1M-conv=fdatasync" conv=fdatasync
    dd_mbps "dd-bs1M-oflag=dsync" oflag=dsync
    "$BENCH" --dir "$DATA_DIR" --total-mib "$TOTAL_MIB" "${INLINE_ARGS[@]}" | grep -E '^(RESULT|FSYNCS|STALL) ' >>"$RESULTS"
    "$BENCH" --dir "$DATA_DIR" --total-mib "$TOTAL_MIB" "${INLINE_ARGS[@]}" --only fsync-per-MiB --inflight 4 \
        | grep -E '^(RESULT|FSYNCS|STALL) ' >>"$RESULTS"
    # Producers awaiting durability of each append (acks=all): 1 and 4 in flight.
    "$BENCH" --dir "$DATA_DIR" --total-mib "$TOTAL_MIB" "${INLINE_ARGS[@]}" --only 1MiB-fsync-per-MiB --wait-durable \
        | grep -E '^(RESULT|FSYNCS|STALL) ' >>"$RESULTS"
    "$BENCH" --dir "$DATA_DIR" --total-mib "$TOTAL_MIB" "${INLINE_ARGS[@]}" --only fsync-per-MiB --inflight 4 --wait-durable \
        | grep -E '^(RESULT|FSYNCS|STALL) ' >>"$RESULTS"
done

# name -> "median min max", in first-seen order.
summary=$(awk '$1 == "RESULT" { if (!($2 in n)) order[++k] = $2; v[$2, ++n[$2]] = $3 }
    END { for (i = 1; i <= k; i++) { name = order[i]; c = n[name];
            for (a = 1; a <= c; a++) s[a] = v[name, a];
            for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (s[b] < s[a]) { t = s[a]; s[a] = s[b]; s[b] = t }
            med = (c % 2) ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2;
            printf "%s %.1f %.1f %.1f\n", name, med, s[1], s[c] } }' "$RESULTS")
echo
printf '%-42s %10s %22s\n' "measurement" "MB/s" "(min - max)"
awk '{ printf "%-42s %10.1f %22s\n", $1, $2, "(" $3 " - " $4 ")" }' <<<"$summary"
med() { awk -v k="$1" '$1 == k { print $2 }' <<<"$summary"; }

echo
echo "ratios of medians (target: append fsync-per-MiB / dd conv=fdatasync >= 0.8)"
for name in append-16KiB-fsync-per-MiB append-1MiB-fsync-per-MiB \
            append-16KiB-fsync-per-MiB-inflight4 append-1MiB-fsync-per-MiB-inflight4 \
            append-1MiB-fsync-per-MiB-wait append-16KiB-fsync-per-MiB-inflight4-wait \
            append-1MiB-fsync-per-MiB-inflight4-wait; do
    awk -v n="$name" -v s="$(med "$name")" -v d="$(med dd-bs1M-conv=fdatasync)" -v y="$(med dd-bs1M-oflag=dsync)" \
        'BEGIN { printf "%-42s %5.2f x dd conv=fdatasync  %5.2f x dd oflag=dsync%s\n", n, s / d, s / y, (s / d >= 0.8 ? "" : "  (misses 0.8)") }'
done

echo
echo "data fsyncs per run (median of $REPEAT; the policy asks for one per MiB of $TOTAL_MIB MiB;"
echo "appends do not wait for them, so one fsync may cover more)"
awk '$1 == "FSYNCS" { if (!($2 in n)) order[++k] = $2; c[$2, ++n[$2]] = $3; m[$2, n[$2]] = $4 }
    END { for (i = 1; i <= k; i++) { name = order[i]; cnt = n[name];
            for (a = 1; a <= cnt; a++) { s[a] = c[name, a]; t[a] = m[name, a] }
            for (a = 1; a <= cnt; a++) for (b = a + 1; b <= cnt; b++) if (s[b] < s[a]) { x = s[a]; s[a] = s[b]; s[b] = x; x = t[a]; t[a] = t[b]; t[b] = x }
            mid = int((cnt + 1) / 2);
            printf "%-42s %8d fsyncs  %6.2f MiB per fsync\n", name, s[mid], t[mid] } }' "$RESULTS"

echo
echo "longest shard stall per append run (median of $REPEAT, ms): how late a 1 ms timer task on"
echo "the appending shard ran; blocking syscalls and CPU work on the shard thread show here"
awk '$1 == "STALL" { if (!($2 in n)) order[++k] = $2; v[$2, ++n[$2]] = $3 }
    END { for (i = 1; i <= k; i++) { name = order[i]; c = n[name];
            for (a = 1; a <= c; a++) s[a] = v[name, a];
            for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (s[b] < s[a]) { t = s[a]; s[a] = s[b]; s[b] = t }
            printf "%-42s %8.2f ms  (%.2f - %.2f)\n", name, s[int((c + 1) / 2)], s[1], s[c] } }' "$RESULTS"
