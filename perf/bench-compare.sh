#!/usr/bin/env bash
# `make bench-compare`: this tree's broker against another commit's, in one run (issue 9:
# "benchmark figures re-measured in the same run as the previous commit's binary").
#
# Builds REF's release `sluice` (default HEAD~1) in a detached git worktree under /tmp, with
# its own target dir (COMPARE_TARGET_DIR, kept between runs so a second comparison only
# rebuilds the workspace crates), and this tree's release `sluice` and `sluice-bench`; then
# runs perf/ab.sh with the two binaries alternating (old, new per round; fresh broker per
# leg) and prints new/old ratios of the medians and per round.
#
#   make bench-compare                              # HEAD~1, produce acks=1, 3 rounds of 5 s
#   REF=327aefd ACKS=all ROUNDS=4 make bench-compare
#   OLD_BIN=/tmp/sluice-old make bench-compare      # a binary already built
#   BENCH_BIN=target/debug/sluice-bench ...         # a generator already built
#
# Knobs: REF, OLD_BIN, COMPARE_TARGET_DIR, and perf/ab.sh's (ACKS [1], CONSUMERS [4: produce
# and fetch at once; 0 = produce only], ROUNDS [3],
# DURATION_S [5], WARMUP_S [1], RATE [0 = max], PARTITIONS, PRODUCERS, BROKER_CPUS, BENCH_CPUS,
# ORDER ["old new"; "new old" to swap the legs of a round]).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REF=${REF:-HEAD~1}
WORK=${COMPARE_WORK:-/tmp/sluice-compare}
mkdir -p "$WORK"
sha=$(git -C "$ROOT" rev-parse --short=12 "$REF^{commit}")
old_label=$sha
[[ -n ${OLD_BIN:-} ]] && old_label=$OLD_BIN
OLD_BIN=${OLD_BIN:-$WORK/sluice-$sha}
if [[ ! -x $OLD_BIN ]]; then
  src=$WORK/src-$sha
  [[ -d $src ]] || git -C "$ROOT" worktree add --detach "$src" "$sha" >/dev/null
  target=${COMPARE_TARGET_DIR:-$WORK/target}
  echo "building $REF ($sha) in $src, target $target" >&2
  (cd "$src" && CARGO_TARGET_DIR=$target nice cargo build --release --bin sluice)
  cp "$target/release/sluice" "$OLD_BIN"
  git -C "$ROOT" worktree remove --force "$src"
fi
(cd "$ROOT" && nice cargo build --release --bin sluice)
export BENCH_BIN=${BENCH_BIN:-$ROOT/target/release/sluice-bench}
[[ -x $BENCH_BIN ]] || (cd "$ROOT" && nice cargo build --release -p sluice-bench)
NEW_BIN=$ROOT/target/release/sluice
variants=""
for leg in ${ORDER:-old new}; do
  if [[ $leg == old ]]; then variants+=" old:$OLD_BIN"; else variants+=" new:$NEW_BIN"; fi
done
export RESULTS=${RESULTS:-$ROOT/perf/out/compare-$(date -u +%Y%m%dT%H%M%SZ)}
VARIANTS=$variants CONSUMERS=${CONSUMERS:-4} ACKS=${ACKS:-1} ROUNDS=${ROUNDS:-3} DURATION_S=${DURATION_S:-5} \
  WARMUP_S=${WARMUP_S:-1} "$ROOT/perf/ab.sh"
python3 - "$RESULTS/rows.tsv" "$old_label" "$(git -C "$ROOT" rev-parse --short=12 HEAD)" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
cols = {"produce msg/s": 2, "publish p50 ms": 4, "publish p99 ms": 5, "broker CPU s/GB": 6,
        "consume msg/s": 9, "publish p99.99 ms": 10}
by = lambda name: {r[1]: r for r in rows if r[0] == name}
old, new = by("old"), by("new")
print(f"\nnew (working tree at {sys.argv[3]}) / old ({sys.argv[2]}), same run:")
print("| measure | ratio of medians | per round |\n|---|--:|--:|")
for label, i in cols.items():
    keys = [k for k in old if k in new and len(old[k]) > i and len(new[k]) > i]
    o = [float(old[k][i]) for k in keys]
    n = [float(new[k][i]) for k in keys]
    if not o or not all(o):
        continue
    per = ", ".join(f"{b / a:.2f}" for a, b in zip(o, n))
    print(f"| {label} | {statistics.median(n) / statistics.median(o):.2f} | {per} |")
PY
