# shellcheck shell=bash
# Shared by the storage write-path scripts (perf/bench-write-path.sh, perf/bench-writeback.sh):
# the scratch directory on the data disk and `dd conv=fdatasync`, the disk's own figure.
# The caller sets DATA_DIR and TOTAL_MIB before sourcing this file.

# disk_scratch: an empty DATA_DIR, removed on exit; prints the machine and file system.
disk_scratch() {
  rm -rf "$DATA_DIR"
  mkdir -p "$DATA_DIR"
  trap 'rm -rf "$DATA_DIR"' EXIT
  echo "machine: $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); $DATA_DIR on $(findmnt -no SOURCE,FSTYPE -T "$DATA_DIR" 2>/dev/null | tr -s ' ')"
}

# dd_run BS BYTES: TOTAL_MIB MiB written with dd in BS-sized writes and one fdatasync at the
# end; prints "dd bs=BS conv=fdatasync   N MB/s" (MB = 10^6 bytes).
dd_run() {
  local bs=$1 count=$((TOTAL_MIB * 1048576 / $2))
  LC_ALL=C dd if=/dev/zero of="$DATA_DIR/dd.bin" bs="$bs" count="$count" conv=fdatasync 2>&1 | tail -n1 |
    awk -v n="dd bs=$bs conv=fdatasync" '{ for (i = 1; i <= NF; i++) if ($(i) == "s," || $(i) == "s") s = $(i-1);
            printf "%-58s %8.1f MB/s\n", n, $1 / s / 1e6 }'
  rm -f "$DATA_DIR/dd.bin"
}
