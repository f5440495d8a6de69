#!/usr/bin/env bash
# Runs the unit tests of the vendored crates (vendor/, outside the workspace; today
# compio-runtime with its "Sluice patch" timer tests). A vendored crate's manifest names
# dev-dependencies for other platforms and its own lock file, which an offline build cannot
# resolve, so the crate is copied to a scratch directory as its own workspace with the
# workspace's Cargo.lock (the versions the broker is built with) and tested there.
# Usage: scripts/test_vendored.sh   (CARGO, TARGET_DIR as in the Makefile)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo=${CARGO:-cargo}
target=${TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
target=$target/vendor-tests
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$root/vendor/compio-runtime" "$scratch/compio-runtime"
cd "$scratch/compio-runtime"
# Keep the Linux dependencies only; make the copy its own workspace. The optional `criterion`
# (benchmarks only) goes too: as the root of its own workspace every optional dependency is
# resolved, and a fresh machine's offline registry cache does not hold criterion.
python3 - <<'PY'
keep, out = True, []
for line in open("Cargo.toml").read().split("\n"):
    if line.startswith("["):
        keep = not any(k in line for k in ("macos", "windows", "criterion"))
    if keep:
        out.append(line)
open("Cargo.toml", "w").write("\n".join(out) + "\n[workspace]\n")
PY
cp "$root/Cargo.lock" Cargo.lock
"$cargo" test --offline --target-dir "$target" --features time --lib -- time::
