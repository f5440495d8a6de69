#!/usr/bin/env bash
# Packs what perf/device-issue16.sh needs into one git-ignored folder (default target/perfdev):
# stripped release binaries (sluice, sluice-bench, and BEFORE as sluice-before), the perf
# scripts and the workloads, so a machine with no Rust toolchain runs it from that folder.
#   perf/device-pack.sh [BEFORE_BINARY] [DEST]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=${1:-$ROOT/target/release/sluice}
DEST=${2:-$ROOT/target/perfdev}
mkdir -p "$DEST/perf" "$DEST/bench/workloads"
strip -o "$DEST/sluice" "$ROOT/target/release/sluice"
strip -o "$DEST/sluice-bench" "$ROOT/target/release/sluice-bench"
[[ $BEFORE -ef $DEST/sluice-before ]] || strip -o "$DEST/sluice-before" "$BEFORE"
cp "$ROOT"/perf/{lib.sh,scaling.sh,ab.sh,device-issue16.sh} "$DEST/perf/"
cp "$ROOT"/bench/workloads/*.toml "$DEST/bench/workloads/"
du -sh "$DEST"
