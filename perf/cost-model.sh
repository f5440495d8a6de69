#!/usr/bin/env bash
# Per-shard cost model (issue 16's substitute for the 16-core scaling run): measures, on this
# machine, the broker's CPU per Produce request and per KiB, the cross-shard forwarding tax, and
# the generator's CPU per GB; then predicts N-shard throughput and the scaling ratio
# N-shard / (N x 1-shard) for N = 1, 2, 4, 8, 14 on a TOTAL_CPUS-CPU machine (generator on the
# CPUs the shards leave). `make bench-scaling` (perf/scaling.sh) measures the same on a machine
# that has the CPUs.
#
#   perf/cost-model.sh                       # ~2 min with the defaults
#   ROUNDS=3 DURATION_S=10 perf/cost-model.sh
#
# Legs (each against a fresh broker on BROKER_CPUS, the native generator on BENCH_CPUS, produce
# only, 1 KiB messages, 16 partitions, acks=$ACKS, max rate), alternating per round:
#   b<KiB>   one shard, batches of BATCHES_KIB [16 128] KiB: broker CPU = a x requests + b x KiB
#            (least squares over all legs gives a, the per-request cost, and b, the per-KiB cost)
#   fwd      --cores 2 with both shards on the same CPU (same core budget, 128 KiB batches): a
#            request whose partition another shard owns is forwarded through the mesh, half of
#            them here, so the extra CPU per request x 2 is the forwarding tax f
# Broker CPU = utime+stime from /proc/PID/stat; requests = `sluice_requests_total{api="Produce"}`
# from /metrics; generator CPU = the sluice-bench process's own rusage.
# Knobs: BATCHES_KIB, ROUNDS [2], DURATION_S [6], WARMUP_S [2], ACKS [1], PRODUCERS [4],
# TOTAL_CPUS [16], SHARDS ["1 2 4 8 14"], RESULTS [perf/out/cost-model-<time>], SKIP_BUILD=1.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"
trap perf_cleanup EXIT

BATCHES_KIB=${BATCHES_KIB:-16 128}
ROUNDS=${ROUNDS:-2}
DURATION_S=${DURATION_S:-6}
WARMUP_S=${WARMUP_S:-2}
ACKS=${ACKS:-1}
PRODUCERS=${PRODUCERS:-4}
TOTAL_CPUS=${TOTAL_CPUS:-16}
SHARDS=${SHARDS:-1 2 4 8 14}
RESULTS=${RESULTS:-$ROOT/perf/out/cost-model-$(date -u +%Y%m%dT%H%M%SZ)}
[[ ${SKIP_BUILD:-0} == 1 ]] || build_release
mkdir -p "$RESULTS"
: >"$RESULTS/commands.txt"
rows=$RESULTS/rows.tsv
: >"$rows"
machine_note >"$RESULTS/machine.txt"

# workload KIB: the 16-partition workload with KIB KiB batches, producers only.
workload() {
  local w=$RESULTS/w-$1.toml
  sed -E -e "s/^batch_size_bytes *=.*/batch_size_bytes = $(($1 * 1024))/" \
    -e "s/^producers_per_topic *=.*/producers_per_topic = $PRODUCERS/" \
    -e "s/^consumers_per_subscription *=.*/consumers_per_subscription = 0/" \
    -e "s/^consumer_mode *=.*/consumer_mode = \"assign\"/" \
    "$ROOT/bench/workloads/omb-1topic-16p-1kb-max.toml" >"$w.tmp"
  with_acks "$w.tmp" "$ACKS" "$w"
  rm -f "$w.tmp"
  echo "$w"
}

produce_requests() {
  python3 - "$1" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
print(int(sum(float(l.split()[-1]) for l in text.splitlines()
              if l.startswith("sluice_requests_total") and 'api="Produce"' in l)))
EOF
}

# leg NAME KIB CORES: one measured run; appends a row to rows.tsv.
leg() {
  local name=$1 kib=$2 cores=$3 w admin c0 c1 r0 r1 gen_cpu
  w=$(workload "$kib")
  printf '"log.segment.bytes" = 67108864\n"log.retention.bytes" = 67108864\n"log.retention.check.interval.ms" = 1000\n' \
    >"$RESULTS/broker.toml"
  BROKER_COMMANDS=$RESULTS/brokers.txt sluice_start "$name" "$BROKER_CPUS" --cores "$cores" \
    --config "$RESULTS/broker.toml"
  admin=$(grep -o 'admin listening=[0-9.:]*' "$PERF_WORK/$name/broker.log" | head -n1 | cut -d= -f2)
  r0=$(produce_requests "$admin")
  c0=$(awk '{print $14 + $15}' "/proc/$BROKER_PID/stat")
  local cmd=(taskset -c "$BENCH_CPUS" "$BENCH_BIN" run -w "$w" --client native --consumers 0
    --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --out "$RESULTS/$name" --quiet -b "sluice=$BROKER_ADDR")
  printf '%s\t%s\n' "$name" "${cmd[*]}" >>"$RESULTS/commands.txt"
  log "$name: ${cmd[*]}"
  gen_cpu=$(python3 -c 'import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime if rc == 0 else "fail")' "${cmd[@]}")
  c1=$(awk '{print $14 + $15}' "/proc/$BROKER_PID/stat")
  r1=$(produce_requests "$admin")
  sluice_stop
  rm -rf "${PERF_WORK:?}/$name"
  if [[ $gen_cpu == fail ]]; then
    log "$name failed"
    return 0
  fi
  python3 - "$RESULTS/$name/summary.json" "$name" "$kib" "$cores" "$((c1 - c0))" "$(getconf CLK_TCK)" \
    "$((r1 - r0))" "$gen_cpu" >>"$rows" <<'EOF'
import json, sys
path, name, kib, cores, ticks, hz, requests, gen = sys.argv[1:]
r = json.load(open(path))["runs"][0]
print("\t".join(str(x) for x in [name, kib, cores, int(ticks) / int(hz), requests,
      r["produced_acked"], r["throughput"]["produce_mb_per_s"], gen, r["produce_errors"]]))
EOF
}

for round in $(seq "$ROUNDS"); do
  for kib in $BATCHES_KIB; do
    leg "b$kib-r$round" "$kib" 1
  done
  leg "fwd-r$round" 128 2
done

python3 - "$rows" "$TOTAL_CPUS" "$SHARDS" >"$RESULTS/model.md" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
total, shards = int(sys.argv[2]), [int(n) for n in sys.argv[3].split()]
legs = [dict(name=r[0], kib=int(r[1]), cores=int(r[2]), cpu=float(r[3]), req=int(r[4]),
             msgs=int(r[5]), mbps=float(r[6]), gen=float(r[7]), err=int(r[8])) for r in rows]
one = [l for l in legs if l["cores"] == 1 and l["req"] > 0]
out = ["| leg | batch KiB | shards | requests | KiB | broker CPU s | us per request | us per KiB (all in) | produce MB/s | generator CPU s per GB |",
       "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
for l in legs:
    kib_moved = l["msgs"]
    out.append(f"| {l['name']} | {l['kib']} | {l['cores']} | {l['req']:,} | {kib_moved:,} | {l['cpu']:.2f} | "
               f"{l['cpu'] / max(l['req'], 1) * 1e6:.1f} | {l['cpu'] / max(kib_moved, 1) * 1e6:.2f} | "
               f"{l['mbps']:,.0f} | {l['gen'] / max(l['msgs'] * 1024 / 1e9, 1e-9):.2f} |")
# least squares: cpu = a * req + b * kib (no intercept)
sxx = sum(l["req"] ** 2 for l in one); syy = sum(l["msgs"] ** 2 for l in one)
sxy = sum(l["req"] * l["msgs"] for l in one)
sxc = sum(l["req"] * l["cpu"] for l in one); syc = sum(l["msgs"] * l["cpu"] for l in one)
det = sxx * syy - sxy * sxy
if not one or abs(det) < 1e-9:
    print("\n".join(out + ["", "not enough distinct legs for the fit"]))
    sys.exit(0)
a = (sxc * syy - syc * sxy) / det
b = (sxx * syc - sxy * sxc) / det
big = max(l["kib"] for l in one)
c1_req = a + b * big
fwd = [l for l in legs if l["cores"] == 2 and l["req"] > 0]
one_big = [l for l in one if l["kib"] == big]
c1_meas = statistics.median(l["cpu"] / l["req"] for l in one_big)
f = 2 * (statistics.median(l["cpu"] / l["req"] for l in fwd) - c1_meas) if fwd else 0.0
f = max(f, 0.0)
gen_per_gb = statistics.median(l["gen"] / (l["msgs"] * 1024 / 1e9) for l in one_big)
broker_per_gb = c1_meas / (big * 1024 / 1e9)
out += ["",
        f"Fit over the one-shard legs: **a = {a * 1e6:.1f} us per request + b = {b * 1e6:.3f} us per KiB** "
        f"(so a {big} KiB request costs {c1_req * 1e6:.0f} us; measured {c1_meas * 1e6:.0f} us: "
        f"{broker_per_gb:.2f} broker CPU s per GB, {1 / broker_per_gb:.2f} GB/s per shard core). "
        f"Forwarding tax f = {f * 1e6:.1f} us per forwarded request ({f / c1_meas:.0%} of a request). "
        f"Generator: {gen_per_gb:.2f} CPU s per GB (native producers, {big} KiB batches).",
        "",
        f"Predicted on {total} CPUs, shard i on CPU i, the generator on the other {total} - N: "
        "c(N) = c(1) + (N-1)/N x f per request; broker capacity N / c(N), generator capacity "
        "(CPUs left) / its CPU per GB; throughput = the smaller.",
        "",
        "| N shards | broker capacity GB/s | generator capacity GB/s | predicted GB/s | limited by | N-shard / (N x 1-shard) | broker-side efficiency c(1)/c(N) |",
        "|--:|--:|--:|--:|---|--:|--:|"]
base = None
for n in shards:
    cn = c1_meas + (n - 1) / n * f
    cap_b = n / (cn / (big * 1024 / 1e9)) if cn else 0
    left = total - n
    cap_g = left / gen_per_gb if gen_per_gb and left > 0 else 0
    pred = min(cap_b, cap_g)
    if base is None:
        base = pred
    out.append(f"| {n} | {cap_b:.2f} | {cap_g:.2f} | {pred:.2f} | {'broker' if cap_b <= cap_g else 'generator'} | "
               f"{pred / (n * base):.2f} | {c1_meas / cn:.2f} |")
print("\n".join(out))
EOF
cat "$RESULTS/model.md"
echo
echo "machine: $(cat "$RESULTS/machine.txt")"
echo "broker CPUs $BROKER_CPUS, generator CPUs $BENCH_CPUS, acks=$ACKS, $PRODUCERS producers; results: $RESULTS"
