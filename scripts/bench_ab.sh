#!/bin/bash
# Usage: BASE=/path/to/previous/sluice [NEW=...] [ROUNDS=3 DUR=6 WARM=2 LEGS="base new"] scripts/bench_ab.sh
# Alternating A/B of the produce+fetch workload (omb-1topic-16p-1kb, acks=1, native producers,
# 4 assign-mode consumers): base then new, ROUNDS times; fresh broker and data dir per leg.
set -u
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-6}; WARM=${WARM:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE:?path of the base sluice binary}; NEW=${NEW:-$ROOT/target/release/sluice}
BENCH=${BENCH:-$ROOT/target/release/sluice-bench}
OUT=${OUT:-/tmp/bench-ab}; rm -rf $OUT; mkdir -p $OUT
sed 's/^acks = "all"/acks = "1"/' $ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml > $OUT/w.toml
for r in $(seq 1 $ROUNDS); do
  for leg in ${LEGS:-base new}; do
    dir=$(mktemp -d /tmp/ab-data.XXXXXX)
    if [ $leg = base ]; then bin=$BASE; else bin=$NEW; fi
    taskset -c 0 $bin --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir $dir --cores 1 > $OUT/$leg-r$r.log 2>&1 &
    pid=$!
    addr=""
    for i in $(seq 1 200); do
      addr=$(grep -o 'ready listening=[0-9.:]*' $OUT/$leg-r$r.log | head -n1 | cut -d= -f2)
      [ -n "$addr" ] && break; sleep 0.1
    done
    echo "leg $leg r$r broker $addr load $(cut -d' ' -f1 /proc/loadavg)"
    taskset -c 1 $BENCH run -w $OUT/w.toml -b $leg=$addr --client native --consumer-mode assign \
      --duration-s $DUR --warmup-s $WARM --out $OUT/$leg-r$r --quiet > $OUT/$leg-r$r.bench 2>&1
    kill $pid; wait $pid 2>/dev/null
    rm -rf $dir
    grep -E "^\| $leg " $OUT/$leg-r$r/comparison.md | awk -F"|" -v l=$leg -v r=$r '{print l, "r" r, "produce msg/s", $3, "consume msg/s", $5, "pub p50 ms", $6, "p99 ms", $7}'
  done
done
