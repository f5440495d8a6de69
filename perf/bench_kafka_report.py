#!/usr/bin/env python3
"""Report of perf/bench-kafka.sh: a summary table of issue 16's targets (Sluice, Kafka, the
ratio of medians and the spread of the per-round ratios, target, verdict), then one Markdown
table of Sluice and Apache Kafka per case (max rate / half rate / consume / serial x client x
acks) and metric, medians over the rounds with their spread, and the ratio Sluice/Kafka; and
one set of plots of the same figures (bench-kafka.svg and .png in the results directory, when
matplotlib is importable). It replaces the block between the bench-kafka markers of the
Markdown file (appends it the first time).

    perf/bench_kafka_report.py RESULTS_DIR BENCHMARKS.md
    perf/bench_kafka_report.py --parse perftest|consumerperf|e2elatency TOOL_OUTPUT  # -> summary.json
    perf/bench_kafka_report.py --half-rate RESULTS_DIR ACKS   # half of Sluice's native max, msg/s

Environment: PLOT_COPY (copy the SVG there too) and PLOT_LINK (how the Markdown links to it).
"""
import json
import os
import shutil
import re
import statistics
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent) + "/"
BEGIN = "<!-- bench-kafka:begin -->"
END = "<!-- bench-kafka:end -->"
LEG = re.compile(r"^(max|half|consume|serial)-(\w+)-acks(\w+)-r(\d+)-(sluice|kafka)$")
# kafka-producer-perf-test's final line.
PERF_TEST = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th"
)
# kafka-consumer-perf-test's result line (after its CSV header): start, end, MB, MB/s, records,
# records/s, rebalance ms, fetch ms, fetch MB/s, fetch records/s.
CONSUMER_PERF = re.compile(
    r"^[\d-]+ [\d:]+, [\d-]+ [\d:]+, ([\d.]+), ([\d.]+), (\d+), ([\d.]+), (\d+), (\d+), ([\d.]+), ([\d.]+)\s*$",
    re.M,
)
# kafka-e2e-latency's last two lines (percentiles in whole milliseconds, truncated).
E2E_AVG = re.compile(r"Avg latency: ([\d.]+) ms")
E2E_PERCENTILES = re.compile(r"Percentiles: 50th = (\d+), 99th = (\d+), 99.9th = (\d+)")
CLIENT_NAMES = {
    "perftest": "kafka-producer-perf-test",
    "consumerperf": "kafka-consumer-perf-test",
    "e2elatency": "kafka-e2e-latency",
}
MODE_ORDER = {"max": 0, "consume": 1, "half": 2, "serial": 3}


def lat(kind, key):
    # A run without consumers reports zeros for end-to-end latency: no figure, not 0 ms.
    return lambda r, b, w: nonzero(r[kind][key]) if kind == "end_to_end_latency_ms" else r[kind][key]


def nonzero(value):
    return value if value else None


# (label, how to get it from (run, broker.json, workload), format, lower is better). A row
# whose cells are all n/a (e.g. consume rate for a producer-only tool) is left out.
METRICS = [
    ("produce msg/s", lambda r, b, w: nonzero(r["throughput"]["produce_msgs_per_s"]), "{:,.0f}", False),
    ("produce MB/s", lambda r, b, w: nonzero(r["throughput"]["produce_mb_per_s"]), "{:.1f}", False),
    ("consume msg/s", lambda r, b, w: nonzero(r["throughput"]["consume_msgs_per_s"]), "{:,.0f}", False),
    ("consume MB/s", lambda r, b, w: nonzero(r["throughput"]["consume_mb_per_s"]), "{:.1f}", False),
    ("publish-to-ack p50 ms", lat("publish_latency_ms", "p50_ms"), "{:.2f}", True),
    ("publish-to-ack p99 ms", lat("publish_latency_ms", "p99_ms"), "{:.2f}", True),
    ("publish-to-ack p99.9 ms", lat("publish_latency_ms", "p99_9_ms"), "{:.2f}", True),
    ("publish-to-ack p99.99 ms", lat("publish_latency_ms", "p99_99_ms"), "{:.2f}", True),
    ("end-to-end mean ms", lat("end_to_end_latency_ms", "mean_ms"), "{:.2f}", True),
    ("end-to-end p50 ms", lat("end_to_end_latency_ms", "p50_ms"), "{:.2f}", True),
    ("end-to-end p99 ms", lat("end_to_end_latency_ms", "p99_ms"), "{:.2f}", True),
    ("end-to-end p99.9 ms", lat("end_to_end_latency_ms", "p99_9_ms"), "{:.2f}", True),
    ("end-to-end p99.99 ms", lat("end_to_end_latency_ms", "p99_99_ms"), "{:.2f}", True),
    ("broker CPU s per GB", lambda r, b, w: cpu_per_gb(r, b, w), "{:.2f}", True),
    ("broker RSS MiB", lambda r, b, w: b["rss_kb"] / 1024, "{:.0f}", True),
]
METRIC = {m[0]: m for m in METRICS}


def cpu_per_gb(run, broker, workload):
    """Broker CPU seconds over the leg per GB produced (sluice-bench runs producers only) or, for
    a tool leg, per GB it moved (`bytes_moved`)."""
    moved = run.get("bytes_moved")
    if moved is None:
        moved = run["produced_acked"] * workload["message_size_bytes"]
    gb = moved / 1e9
    if gb <= 0:
        return None
    return broker["cpu_ticks"] / broker["clk_tck"] / gb


def load(results):
    """{(mode, client, acks): {broker: {round: (run, broker_json, workload)}}} and failed legs."""
    cases, failed = {}, []
    for out in sorted((results / "legs").iterdir()):
        m = LEG.match(out.name)
        if not m or not out.is_dir():
            continue
        mode, client, acks, rnd, broker = m.groups()
        summary, stats = out / "summary.json", out / "broker.json"
        if not summary.exists() or not stats.exists():
            failed.append(out.name)
            continue
        s = json.loads(summary.read_text())
        runs = [r for r in s["runs"] if not r.get("is_sink")]
        if not runs:
            failed.append(out.name)
            continue
        entry = (runs[0], json.loads(stats.read_text()), s["workload"])
        cases.setdefault((mode, client, acks), {}).setdefault(broker, {})[int(rnd)] = entry
    for leg in (results / "legs").glob("*.stdout"):
        if not (results / "legs" / leg.stem / "summary.json").exists() and leg.stem not in failed:
            failed.append(leg.stem)
    return cases, failed


def cell(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a", None
    med = statistics.median(values)
    text = fmt.format(med)
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return text, med


def setup(results):
    out = {}
    path = results / "setup.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            k, _, v = line.partition("=")
            out[k] = v
    return out


def commands(results):
    """The broker command lines and one leg's sluice-bench command, as Markdown lines."""
    out = []
    brokers = results / "brokers.txt"
    if brokers.exists():
        for line in brokers.read_text().splitlines():
            name, _, cmd = line.partition("\t")
            out.append(f"- {name}: `{cmd.replace(ROOT, '')}`")
    legs = results / "commands.txt"
    if legs.exists():
        seen = set()
        for line in legs.read_text().splitlines():
            name, _, cmd = line.partition("\t")
            case = re.sub(r"-r\d+-(sluice|kafka)$", "", name)
            if case in seen:
                continue
            seen.add(case)
            out.append(f"- {case} (first leg, {name}): `{cmd.replace(ROOT, '')}`")
    return out + [""] if out else []


def rows(cases):
    """[(mode, client, acks, label, fmt, lower, {broker: {round: value}})] in table order,
    all-n/a rows left out."""
    out = []
    order = lambda k: (MODE_ORDER.get(k[0], 9), k[1], k[2])  # noqa: E731
    for key in sorted(cases, key=order):
        mode, client, acks = key
        per = cases[key]
        for label, get, fmt, lower in METRICS:
            values = {b: metric_values(per.get(b, {}), get) for b in ("sluice", "kafka")}
            if all(v is None for vs in values.values() for v in vs.values()):
                continue
            out.append((mode, client, acks, label, fmt, lower, values))
    return out


def metric_values(per_round, get):
    """{round: value or None} of one broker's legs."""
    out = {}
    for rnd, entry in per_round.items():
        try:
            out[rnd] = get(*entry)
        except (KeyError, TypeError, ZeroDivisionError):
            out[rnd] = None
    return out


def present(by_round):
    return [v for v in by_round.values() if v is not None]


def ratio_of(values):
    s, k = present(values["sluice"]), present(values["kafka"])
    if not s or not k or not statistics.median(k):
        return None
    return statistics.median(s) / statistics.median(k)


def pair_ratios(values):
    """Sluice/Kafka of each round that has both (the rounds alternate which runs first)."""
    s, k = values["sluice"], values["kafka"]
    return [s[r] / k[r] for r in sorted(s) if s.get(r) is not None and k.get(r)]


def load_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def limits(results):
    """iperf3 loopback MB/s and fio's fdatasync latency percentiles (ms) of the run."""
    iperf = load_json(results / "iperf3.json")
    iperf_mbps = None
    if iperf and "end" in iperf:
        iperf_mbps = iperf["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
    fio = load_json(results / "fio-fdatasync.json")
    sync = {}
    if fio and fio.get("jobs"):
        pct = fio["jobs"][0].get("sync", {}).get("lat_ns", {}).get("percentile", {})
        for key, name in (("50.000000", "p50"), ("99.000000", "p99"), ("99.900000", "p99.9")):
            if key in pct:
                sync[name] = pct[key] / 1e6
    return iperf_mbps, sync


def half_rate(results, acks):
    """Half the median of Sluice's native max-rate produce msg/s for ACKS (0 when none)."""
    cases, _ = load(results)
    per = cases.get(("max", "native", acks), {}).get("sluice", {})
    rates = present(metric_values(per, METRIC["produce msg/s"][1]))
    return int(statistics.median(rates) / 2) if rates else 0


def fmt_cell(by_round, fmt):
    return cell(present(by_round), fmt)[0]


def spread(values):
    pairs = pair_ratios(values)
    if not pairs:
        return "n/a"
    if len(pairs) == 1:
        return f"{pairs[0]:.2f}"
    return f"{min(pairs):.2f}-{max(pairs):.2f}"


def verdict(value, target, lower_is_better):
    if value is None:
        return "n/a"
    met = value <= target if lower_is_better else value >= target
    return "met" if met else "**missed**"


def summary(results, cases):
    """Issue 16's targets, one row each: Sluice, Kafka, Sluice/Kafka (median of each broker's
    legs; per-round ratios in brackets), target and verdict."""
    iperf_mbps, sync = limits(results)
    cfg = setup(results)
    lines = [
        "| target (issue 16) | client | Sluice | Kafka | Sluice/Kafka (per round) | target | verdict |",
        "|---|---|--:|--:|--:|--:|---|",
    ]

    def values(mode, client, acks, label):
        per = cases.get((mode, client, acks), {})
        get = METRIC[label][1]
        return {b: metric_values(per.get(b, {}), get) for b in ("sluice", "kafka")}

    def row(what, mode, client, acks, label, target, lower, against_kafka=True):
        v = values(mode, client, acks, label)
        if not present(v["sluice"]) and not present(v["kafka"]):
            return
        fmt = METRIC[label][2]
        r = ratio_of(v)
        shown = f"{r:.2f} ({spread(v)})" if r is not None else "n/a"
        checked = r if against_kafka else None
        lines.append(
            f"| {what} | {CLIENT_NAMES.get(client, client)} | {fmt_cell(v['sluice'], fmt)} | "
            f"{fmt_cell(v['kafka'], fmt)} | {shown} | {target} | "
            f"{verdict(checked, float(target.split()[-1].rstrip('x')), lower) if against_kafka else ''} |"
        )
        return v

    for acks in cfg.get("acks_list", "1 all").split():
        for client in ("native", "perftest"):
            row(f"broker CPU s per GB produced, acks={acks}", "max", client, acks,
                "broker CPU s per GB", "<= 0.33", True)
    for acks in cfg.get("acks_list", "1 all").split()[:1]:
        row(f"broker CPU s per GB consumed (written with acks={acks})", "consume", "consumerperf", acks,
            "broker CPU s per GB", "<= 0.33", True)
    first = cfg.get("acks_list", "1 all").split()[0]
    v = row(f"produce MB/s, one shard, acks={first}", "max", "native", first, "produce MB/s", ">= 2x", False)
    if v is not None and iperf_mbps:
        s = present(v["sluice"])
        if s:
            frac = statistics.median(s) / iperf_mbps
            each = ", ".join(f"{x / iperf_mbps:.2f}" for x in s)
            lines.append(
                f"| produce MB/s, one shard, acks={first} / iperf3 loopback ({iperf_mbps:,.0f} MB/s, same run) "
                f"| native | {frac:.2f} ({each}) | | | >= 0.5 | {verdict(frac, 0.5, False)} |"
            )
    if "all" in cfg.get("acks_list", ""):
        row("acks=all produce MB/s (Sluice fsyncs before each answer, Kafka does not)", "max", "native",
            "all", "produce MB/s", ">= 1", False)
        row("acks=all produce MB/s (Sluice fsyncs before each answer, Kafka does not)", "max", "perftest",
            "all", "produce MB/s", ">= 1", False)
    for acks in cfg.get("acks_list", "1 all").split():
        rate = cfg.get(f"half_rate_acks{acks}")
        at = f" at {int(rate):,} msg/s (half Sluice's max)" if rate else ""
        for label, target in (("publish-to-ack p99 ms", 2.0), ("publish-to-ack p99.99 ms", 5.0)):
            v = values("half", "native", acks, label)
            s = present(v["sluice"])
            if not s:
                continue
            med = statistics.median(s)
            k = present(v["kafka"])
            kcell = fmt_cell(v["kafka"], "{:.2f}") if k else "n/a"
            r = ratio_of(v)
            if acks == "all" and label == "publish-to-ack p99 ms" and "p99" in sync:
                bound = 1.5 * sync["p99"]
                lines.append(
                    f"| acks=all {label}{at} vs 1.5 x fio fdatasync p99 ({sync['p99']:.2f} ms, bs {cfg.get('fio_bs', '?')}) "
                    f"| native | {fmt_cell(v['sluice'], '{:.2f}')} | {kcell} | "
                    f"{'n/a' if r is None else f'{r:.2f} ({spread(v)})'} | <= {bound:.2f} | {verdict(med, bound, True)} |"
                )
            elif acks != "all":
                lines.append(
                    f"| acks={acks} {label}{at} | native | {fmt_cell(v['sluice'], '{:.2f}')} | {kcell} | "
                    f"{'n/a' if r is None else f'{r:.2f} ({spread(v)})'} | <= {target} | {verdict(med, target, True)} |"
                )
    idle, peak = load_json(results / "idle-rss.json"), load_json(results / "peak-rss.json")
    if idle:
        lines.append(
            f"| idle RSS MiB (after start, before any client) | - | {idle['sluice_kb'] / 1024:.1f} | "
            f"{idle['kafka_kb'] / 1024:.0f} | {idle['sluice_kb'] / max(idle['kafka_kb'], 1):.3f} | keep | |"
        )
    if peak:
        lines.append(
            f"| peak RSS MiB over the run (VmHWM) | all | {peak['sluice_kb'] / 1024:.1f} | "
            f"{peak['kafka_kb'] / 1024:.0f} | {peak['sluice_kb'] / max(peak['kafka_kb'], 1):.3f} | bounded | |"
        )
    if sync:
        lines += ["", "Disk, same run (fio, " + cfg.get("fio_bs", "?") + " writes each followed by fdatasync): "
                  + ", ".join(f"fdatasync {k} {v:.2f} ms" for k, v in sync.items()) + "."]
    return lines


def table(results, plot_link=None):
    cases, failed = load(results)
    cfg = setup(results)
    machine = (results / "machine.txt").read_text().strip() if (results / "machine.txt").exists() else "?"
    lines = [
        BEGIN,
        "## Apache Kafka side by side",
        "",
        "Command: `make bench-kafka` (`perf/bench-kafka.sh`; this run: "
        f"`DURATION_S={cfg.get('duration_s', '?')} WARMUP_S={cfg.get('warmup_s', '?')} ROUNDS={cfg.get('rounds', '?')} "
        f"ACKS_LIST=\"{cfg.get('acks_list', '?')}\" PERF_TEST_RECORDS={cfg.get('perf_test_records', '?')} "
        f"E2E_RECORDS={cfg.get('e2e_records', '?')}`); each leg's exact command is in the run's `commands.txt`, "
        "the brokers' below.",
        "",
        f"Machine: {machine}. A shared 2-CPU VM: read the spreads, not only the medians.",
        "",
        f"Setup: Apache Kafka {cfg.get('kafka_version', '?')} (KRaft combined mode, one node, "
        f"heap {cfg.get('kafka_heap', '?')}, Kafka's own JVM flags) and Sluice (`--cores "
        f"{cfg.get('broker_cores', '?')}`: one shard per broker CPU), each pinned to CPUs "
        f"{cfg.get('broker_cpus', '?')}, both with `group.initial.rebalance.delay.ms=0` and default "
        f"segments and retention; every client pinned to CPUs {cfg.get('bench_cpus', '?')}; every topic deleted after "
        "its leg. Clients: sluice-bench `--client native` (the native Kafka-protocol producer, "
        f"workload `{cfg.get('workload', '?')}`: 16 partitions, 1 KiB, 4 producers, batch 128 KiB, "
        "linger 1 ms; producers only); Kafka's `kafka-producer-perf-test` (one Java producer, 1 KiB "
        "records, batch 128 KiB, linger 1 ms, into a fresh 16-partition topic); "
        "`kafka-consumer-perf-test` (one classic-group consumer reading those records back; its rate "
        "is over the fetch time, the group join excluded); `kafka-e2e-latency` (one 1 KiB record at a "
        "time: send, wait for the ack, poll it back; whole-millisecond percentiles, truncated, so "
        "the mean is the finer figure). `max` = as fast as the client goes; `half` = the native "
        "generator at half of Sluice's median max rate for that acks, the same rate against both "
        "brokers, latency from each message's intended send time (includes up to 1 ms of linger); "
        "`serial` = one record in flight. Legs alternate: odd rounds Sluice first, even rounds Kafka "
        "first. Cells: median over the rounds (min-max). CPU s per GB: utime+stime of the broker "
        "process over the whole leg (/proc/PID/stat) per GB produced or consumed; RSS: VmRSS at the "
        "end of the leg. MB = 10^6 bytes. Ratio Sluice/Kafka: above 1 is better for throughput, below "
        f"1 for latency, CPU and RSS. Sluice at git {cfg.get('git', '?')}.",
        "",
        *commands(results),
    ]
    lines += summary(results, cases)
    lines.append("")
    if plot_link:
        lines += [f"Plots of the same figures: [{plot_link}]({plot_link}).", ""]
    lines += [
        "| case | client | acks | metric | Sluice | Kafka | Sluice/Kafka (per round) |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for mode, client, acks, label, fmt, _lower, values in rows(cases):
        texts = [fmt_cell(values[b], fmt) for b in ("sluice", "kafka")]
        r = ratio_of(values)
        shown = CLIENT_NAMES.get(client, client)
        lines.append(
            f"| {mode} | {shown} | {acks} | {label} | {texts[0]} | {texts[1]} | "
            f"{'n/a' if r is None else f'{r:.2f} ({spread(values)})'} |"
        )
    bad = [
        f"{mode}/{client}/acks{acks}/{broker}"
        for (mode, client, acks), per in cases.items()
        for broker, entries in per.items()
        for run, _b, _w in entries.values()
        if run.get("lost") or run.get("duplicates") or run.get("produce_errors") or not run.get("complete", True)
    ]
    lines.append("")
    if bad:
        lines.append("Runs with produce errors, lost, duplicated or undrained messages: " + ", ".join(sorted(set(bad))) + ".")
    if failed:
        lines.append("Legs that failed (no figures): " + ", ".join(sorted(failed)) + ".")
    lines.append(END)
    return "\n".join(lines) + "\n"


PLOT_GROUPS = [
    ("Throughput (higher is better)", lambda label: label.endswith("/s") and "MB" in label),
    ("Publish-to-ack latency, ms (log)", lambda label: label.startswith("publish-to-ack")),
    ("End-to-end latency, ms (log)", lambda label: label.startswith("end-to-end")),
    ("Broker CPU s per GB", lambda label: label == "broker CPU s per GB"),
    ("Broker RSS MiB (log)", lambda label: label == "broker RSS MiB"),
]


def plot(results):
    """One figure: Sluice/Kafka ratios of every row, then the absolute medians (min-max as error
    bars) per metric family. Writes bench-kafka.svg and .png; returns the SVG path or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench-kafka: matplotlib not importable; no plots (make bench-kafka installs it)", file=sys.stderr)
        return None
    cases, _failed = load(results)
    data = rows(cases)
    if not data:
        return None
    fig, axes = plt.subplots(len(PLOT_GROUPS) + 1, 1, figsize=(13, 5 + 4.2 * len(PLOT_GROUPS)))
    ax = axes[0]
    labelled = [
        (f"{m} {CLIENT_NAMES.get(c, c)} acks={a}: {lab}", ratio_of(v), low) for m, c, a, lab, _f, low, v in data
    ]
    labelled = [x for x in labelled if x[1] is not None]
    ys = range(len(labelled))
    colors = [
        ("tab:green" if (r < 1) == low else "tab:red") if r != 1 else "tab:gray" for _n, r, low in labelled
    ]
    ax.barh(list(ys), [r for _n, r, _l in labelled], color=colors)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([n for n, _r, _l in labelled], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_title("Sluice / Kafka (green: Sluice better, red: Kafka better; log scale)")
    for ax, (title, wanted) in zip(axes[1:], PLOT_GROUPS):
        picked = [(m, c, a, lab, v) for m, c, a, lab, _f, _l, v in data if wanted(lab)]
        names = [f"{m} {CLIENT_NAMES.get(c, c)} acks={a}\n{lab}" for m, c, a, lab, _v in picked]
        xs = range(len(picked))
        for offset, broker, color in ((-0.2, "sluice", "tab:blue"), (0.2, "kafka", "tab:orange")):
            meds, lo, hi = [], [], []
            for _m, _c, _a, _lab, v in picked:
                vals = present(v[broker])
                med = statistics.median(vals) if vals else 0
                meds.append(med)
                lo.append(med - min(vals) if vals else 0)
                hi.append(max(vals) - med if vals else 0)
            ax.bar([x + offset for x in xs], meds, width=0.4, color=color, label=broker.capitalize(),
                   yerr=[lo, hi], capsize=2)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, fontsize=6, rotation=30, ha="right")
        ax.set_title(title)
        if "(log)" in title:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    cfg = setup(results)
    fig.suptitle(
        f"Sluice vs Apache Kafka {cfg.get('kafka_version', '?')}, acks {cfg.get('acks_list', '?')}, "
        f"medians of {cfg.get('rounds', '?')} alternating rounds (bars: min-max), git {cfg.get('git', '?')}"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    svg = results / "bench-kafka.svg"
    fig.savefig(svg)
    fig.savefig(results / "bench-kafka.png", dpi=90)
    plt.close(fig)
    return svg


def perf_test_summary(text):
    """kafka-producer-perf-test output as a sluice-bench-shaped summary (for the table)."""
    found = PERF_TEST.findall(text)
    if not found:
        sys.exit("no kafka-producer-perf-test summary line")
    sent, rate, mb, _avg, max_ms, p50, _p95, p99, p999 = found[-1]
    run = {
        "is_sink": False,
        "produced_acked": int(sent),
        "throughput": {"produce_msgs_per_s": float(rate), "produce_mb_per_s": float(mb) * 1.048576},
        "publish_latency_ms": {
            "p50_ms": float(p50), "p99_ms": float(p99), "p99_9_ms": float(p999),
            "p99_99_ms": None, "max_ms": float(max_ms),
        },
        "lost": 0, "duplicates": 0, "complete": True,
    }
    return {"runs": [run], "workload": {"message_size_bytes": 1024}}


def consumer_perf_summary(text):
    """kafka-consumer-perf-test output: rates over its fetch time (the group join excluded)."""
    found = CONSUMER_PERF.findall(text)
    if not found:
        sys.exit("no kafka-consumer-perf-test result line")
    mb, _mb_s, records, _rec_s, rebalance_ms, fetch_ms, fetch_mb_s, fetch_rec_s = found[-1]
    run = {
        "is_sink": False,
        "produced_acked": 0,
        "bytes_moved": float(mb) * 1048576,
        "consumed": int(records),
        "rebalance_ms": int(rebalance_ms),
        "fetch_ms": int(fetch_ms),
        "throughput": {"consume_msgs_per_s": float(fetch_rec_s), "consume_mb_per_s": float(fetch_mb_s) * 1.048576},
        "lost": 0, "duplicates": 0, "complete": True,
    }
    return {"runs": [run], "workload": {"message_size_bytes": 1024}}


def e2e_summary(text):
    """kafka-e2e-latency output: the mean and its (whole-millisecond) percentiles."""
    avg, pct = E2E_AVG.findall(text), E2E_PERCENTILES.findall(text)
    if not avg or not pct:
        sys.exit("no kafka-e2e-latency result lines")
    p50, p99, p999 = pct[-1]
    run = {
        "is_sink": False,
        "produced_acked": 0,
        "bytes_moved": 0,
        "end_to_end_latency_ms": {
            "mean_ms": float(avg[-1]), "p50_ms": float(p50), "p99_ms": float(p99),
            "p99_9_ms": float(p999), "p99_99_ms": None,
        },
        "lost": 0, "duplicates": 0, "complete": True,
    }
    return {"runs": [run], "workload": {"message_size_bytes": 1024}}


PARSERS = {"perftest": perf_test_summary, "consumerperf": consumer_perf_summary, "e2elatency": e2e_summary}


def main():
    if sys.argv[1] == "--half-rate":
        print(half_rate(Path(sys.argv[2]), sys.argv[3]))
        return
    if sys.argv[1] in ("--parse", "--perf-test"):
        kind, path = ("perftest", sys.argv[2]) if sys.argv[1] == "--perf-test" else sys.argv[2:4]
        print(json.dumps(PARSERS[kind](Path(path).read_text())))
        return
    results, markdown = Path(sys.argv[1]), Path(sys.argv[2])
    svg = plot(results)
    link = None
    if svg is not None:
        copy = os.environ.get("PLOT_COPY")
        if copy:
            shutil.copyfile(svg, copy)
            link = os.environ.get("PLOT_LINK") or copy
        else:
            link = str(svg)
    block = table(results, link)
    (results / "report.md").write_text(block)
    text = markdown.read_text() if markdown.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _old, tail = rest.split(END, 1)
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    markdown.write_text(text)
    print(block)


if __name__ == "__main__":
    main()
