#!/usr/bin/env bash
# Alternating A/B(/C...) legs of broker variants on one workload, in one run (issue 16): each
# round runs every variant once, in order, against a fresh broker, so slow drifts of a shared
# machine hit all variants alike. Prints one row per leg and a summary (median, min-max).
#
#   VARIANTS='before:target/perfdev/sluice-before after:target/release/sluice' perf/ab.sh
#   VARIANTS='off:target/release/sluice on:target/release/sluice:"shard.io_uring.setup"="SINGLE_ISSUER,DEFER_TASKRUN"' \
#       ACKS=1 perf/ab.sh
#
# A variant is NAME:BINARY[:TOML], TOML being broker config lines separated by ';' (no spaces).
# Knobs: ACKS [all], CORES [1] (--cores of every broker; empty = the variant's `cores`), PARTITIONS [16], PRODUCERS [4]
# native producers, ROUNDS [2], DURATION_S [8], WARMUP_S [2], RATE [0 = max], BROKER_CPUS /
# BENCH_CPUS (lib.sh: first / second half of the CPUs), RESULTS [perf/out/ab-<time>].
#
# Per leg: produce msg/s and MB/s, publish-to-ack p50 / p99 (sluice-bench summary), the
# broker's CPU seconds per GB produced (utime+stime over the leg, topic creation and warm-up
# included), and data fsyncs per GB (`sluice_log_fsyncs_total` from /metrics at the end).
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT

VARIANTS=${VARIANTS:?"VARIANTS='name:binary[:toml] ...'"}
ACKS=${ACKS:-all}
CORES=${CORES-1}
PARTITIONS=${PARTITIONS:-16}
PRODUCERS=${PRODUCERS:-4}
ROUNDS=${ROUNDS:-2}
DURATION_S=${DURATION_S:-8}
WARMUP_S=${WARMUP_S:-2}
RATE=${RATE:-0}
# Consumers reading while the producers write (assign mode); 0 = produce only.
CONSUMERS=${CONSUMERS:-0}
RESULTS=${RESULTS:-$ROOT/perf/out/ab-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
: >"$RESULTS/commands.txt"

workload=$RESULTS/workload.toml
produce_only_workload "$workload" "$PARTITIONS" "$PRODUCERS" "$ACKS" "$CONSUMERS"

# metric ADMIN_ADDR NAME: the sum of a metric's samples on the broker's /metrics.
metric() {
  python3 - "$1" "$2" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
print(sum(float(l.split()[-1]) for l in text.splitlines()
          if l.startswith(sys.argv[2]) and not l.startswith("#")))
EOF
}

machine_note >"$RESULTS/machine.txt"
rows=$RESULTS/rows.tsv
: >"$rows"
HZ=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
  for spec in $VARIANTS; do
    IFS=: read -r name bin toml <<<"$spec"
    config=$RESULTS/$name.toml
    tr ';' '\n' <<<"${toml:-}" >"$config"
    SLUICE_BIN=$bin
    leg=$name-r$round
    BROKER_COMMANDS=$RESULTS/brokers.txt
    cores_arg=()
    [[ -n $CORES ]] && cores_arg=(--cores "$CORES")
    sluice_start "$leg" "$BROKER_CPUS" "${cores_arg[@]}" --config "$config"
    admin=$(grep -o 'admin listening=[0-9.:]*' "$PERF_WORK/$leg/broker.log" | head -n1 | cut -d= -f2)
    c0=$(awk '{print $14 + $15}' "/proc/$BROKER_PID/stat")
    cmd=(taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$workload" --client native --consumers "$CONSUMERS"
      --consumer-mode assign --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --rate "$RATE"
      --out "$RESULTS/$leg" --quiet -b "$name=$BROKER_ADDR")
    printf '%s\t%s\n' "$leg" "${cmd[*]}" >>"$RESULTS/commands.txt"
    log "$leg ($bin, config: ${toml:-none}): ${cmd[*]}"
    ok=1
    "${cmd[@]}" >"$RESULTS/$leg.stdout" 2>"$RESULTS/$leg.stderr" || ok=0
    c1=$(awk '{print $14 + $15}' "/proc/$BROKER_PID/stat")
    fsyncs=$(metric "$admin" sluice_log_fsyncs_total 2>/dev/null || echo nan)
    sluice_stop
    rm -rf "${PERF_WORK:?}/$leg"
    if ((!ok)); then
      log "$leg failed:"
      tail -5 "$RESULTS/$leg.stderr" >&2
      continue
    fi
    python3 - "$RESULTS/$leg/summary.json" "$name" "$round" "$((c1 - c0))" "$HZ" "$fsyncs" \
      >>"$rows" <<'EOF'
import json, sys
path, name, rnd, ticks, hz, fsyncs = sys.argv[1:]
r = json.load(open(path))["runs"][0]
t, p = r["throughput"], r["publish_latency_ms"]
acked_gb = r["produced_acked"] * 1024 / 1e9
print("\t".join(str(x) for x in [name, rnd, t["produce_msgs_per_s"], t["produce_mb_per_s"],
      p["p50_ms"], p["p99_ms"], int(ticks) / int(hz) / acked_gb if acked_gb else "nan",
      float(fsyncs) / acked_gb if acked_gb else "nan", r["produce_errors"],
      t["consume_msgs_per_s"], p["p99_99_ms"], p["max_ms"]]))
EOF
  done
done

python3 - "$rows" "$RESULTS/table.md" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
head = ("| variant | round | produce msg/s | produce MB/s | publish p50 ms | publish p99 ms | "
        "broker CPU s/GB | fsyncs/GB | errors | consume msg/s | publish p99.99 ms | publish max ms |\n"
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
out = [head]
for r in rows:
    out.append("| " + " | ".join([r[0], r[1]] + [f"{float(x):,.2f}" for x in r[2:8]] + [r[8]]
                                 + [f"{float(x):,.2f}" for x in r[9:12]]) + " |")
out.append("")
out.append("| variant | produce msg/s median (min-max) | publish p99 ms median (min-max) | "
           "CPU s/GB median | fsyncs/GB median | publish p99.99 ms median (min-max) |\n"
           "|---|--:|--:|--:|--:|--:|")
names = list(dict.fromkeys(r[0] for r in rows))
for n in names:
    rs = [r for r in rows if r[0] == n]
    col = lambda i: [float(r[i]) for r in rs]
    m = lambda xs: statistics.median(xs)
    out.append(f"| {n} | {m(col(2)):,.0f} ({min(col(2)):,.0f}-{max(col(2)):,.0f}) | "
               f"{m(col(5)):.2f} ({min(col(5)):.2f}-{max(col(5)):.2f}) | {m(col(6)):.2f} | "
               f"{m(col(7)):,.0f} | {m(col(10)):.2f} ({min(col(10)):.2f}-{max(col(10)):.2f}) |")
text = "\n".join(out) + "\n"
open(sys.argv[2], "w").write(text)
print(text)
EOF
echo "machine: $(cat "$RESULTS/machine.txt")"
echo "broker CPUs $BROKER_CPUS, generator CPUs $BENCH_CPUS, --cores $CORES, acks=$ACKS, $PARTITIONS partitions, $PRODUCERS producers"
echo "results: $RESULTS"
cat "$RESULTS/brokers.txt"
sed -n 1p "$RESULTS/commands.txt"
