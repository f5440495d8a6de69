#!/usr/bin/env python3
"""Report of perf/bench-kafka.sh: one Markdown table of Sluice and Apache Kafka per case
(max rate / fixed rate / serial x client) and metric, medians over the rounds with their
spread, and the ratio Sluice/Kafka; and one set of plots of the same figures (bench-kafka.svg
and .png in the results directory, when matplotlib is importable). It replaces the block
between the bench-kafka markers of the Markdown file (appends it the first time).

    perf/bench_kafka_report.py RESULTS_DIR BENCHMARKS.md
    perf/bench_kafka_report.py --parse perftest|consumerperf|e2elatency TOOL_OUTPUT  # -> summary.json

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
LEG = re.compile(r"^(max|fixed|serial)-(\w+)-r(\d+)-(sluice|kafka)$")
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
MODE_ORDER = {"max": 0, "fixed": 1, "serial": 2}


def lat(kind, key):
    return lambda r, b, w: r[kind][key]


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


def cpu_per_gb(run, broker, workload):
    """Broker CPU seconds over the leg per GB produced (sluice-bench: each message is also
    consumed once) or, for a tool leg, per GB it moved (`bytes_moved`)."""
    moved = run.get("bytes_moved")
    if moved is None:
        moved = run["produced_acked"] * workload["message_size_bytes"]
    gb = moved / 1e9
    if gb <= 0:
        return None
    return broker["cpu_ticks"] / broker["clk_tck"] / gb


def load(results):
    """{(mode, client): {broker: [(run, broker_json, workload), ...]}} and failed legs."""
    cases, failed = {}, []
    for out in sorted((results / "legs").iterdir()):
        m = LEG.match(out.name)
        if not m or not out.is_dir():
            continue
        mode, client, _round, broker = m.groups()
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
        cases.setdefault((mode, client), {}).setdefault(broker, []).append(entry)
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
        first = legs.read_text().splitlines()[:1]
        for line in first:
            name, _, cmd = line.partition("\t")
            out.append(f"- a leg ({name}): `{cmd.replace(ROOT, '')}`")
    return out + [""] if out else []


def rows(cases):
    """[(mode, client, label, fmt, lower, {broker: [values]})] in table order, all-n/a rows left out."""
    out = []
    for (mode, client) in sorted(cases, key=lambda k: (MODE_ORDER.get(k[0], 9), k[1])):
        per = cases[(mode, client)]
        for label, get, fmt, lower in METRICS:
            values = {}
            for broker in ("sluice", "kafka"):
                values[broker] = []
                for entry in per.get(broker, []):
                    try:
                        values[broker].append(get(*entry))
                    except (KeyError, TypeError, ZeroDivisionError):
                        values[broker].append(None)
            if all(v is None for vs in values.values() for v in vs):
                continue
            out.append((mode, client, label, fmt, lower, values))
    return out


def ratio_of(values):
    s = [v for v in values["sluice"] if v is not None]
    k = [v for v in values["kafka"] if v is not None]
    if not s or not k or not statistics.median(k):
        return None
    return statistics.median(s) / statistics.median(k)


def table(results, plot_link=None):
    cases, failed = load(results)
    cfg = setup(results)
    machine = (results / "machine.txt").read_text().strip() if (results / "machine.txt").exists() else "?"
    lines = [
        BEGIN,
        "## Apache Kafka side by side",
        "",
        "Command: `make bench-kafka` (`perf/bench-kafka.sh`, defaults: "
        f"`DURATION_S={cfg.get('duration_s', '?')} ROUNDS={cfg.get('rounds', '?')} ACKS={cfg.get('acks', '?')} "
        f"PERF_TEST_RECORDS={cfg.get('perf_test_records', '?')} E2E_RECORDS={cfg.get('e2e_records', '?')}`); "
        "each leg's exact command is in the run's `commands.txt`.",
        "",
        f"Machine: {machine}. **Taken on a busy machine** (2 CPUs shared with other jobs): "
        "read the spreads, not only the medians.",
        "",
        f"Setup: Apache Kafka {cfg.get('kafka_version', '?')} (KRaft combined mode, one node, "
        f"heap {cfg.get('kafka_heap', '?')}, Kafka's own JVM flags) and Sluice, each pinned to CPUs "
        f"{cfg.get('broker_cpus', '?')}, both with `group.initial.rebalance.delay.ms=0`; every client "
        f"pinned to CPUs {cfg.get('bench_cpus', '?')}. Clients: sluice-bench (`native`, `rdkafka`) with "
        "workload `omb-1topic-16p-1kb` (16 partitions, 1 KiB, 4 producers, 4 assign-mode consumers); "
        "Kafka's `kafka-producer-perf-test` (one producer, 1 KiB records, batch 128 KiB, linger 1 ms, "
        "no consumers, into a fresh 16-partition topic); `kafka-consumer-perf-test` (one classic-group "
        "consumer reading those records back; its rate is over the fetch time, the group join excluded); "
        "`kafka-e2e-latency` (one 1 KiB record at a time: send, wait for the ack, poll it back; "
        "its percentiles are whole milliseconds, truncated, so sub-millisecond cells read 0, and the "
        "mean is the finer figure). MB = 10^6 bytes. "
        f"acks={cfg.get('acks', '?')}; legs alternate Sluice, Kafka, Sluice, Kafka. "
        "`max` = as fast as the client goes; `fixed` = the fixed total rate of the run; `serial` = one "
        "record in flight. Cells: median over the rounds (min-max). CPU s per GB: utime+stime of the "
        "broker process over the whole leg (/proc/PID/stat) per GB produced (sluice-bench: each message "
        "is also consumed once) or consumed (kafka-consumer-perf-test); RSS: VmRSS at the end of the leg. "
        "Ratio Sluice/Kafka: above 1 is better for throughput, below 1 for latency, CPU and RSS. At max "
        "rate, publish-to-ack is mostly queueing in the producers (librdkafka queues far more than the "
        "native producer's 8 requests in flight); the fixed-rate and serial rows are the latency "
        f"comparison. Sluice at git {cfg.get('git', '?')}.",
        "",
        *commands(results),
    ]
    if plot_link:
        lines += [f"Plots of the same figures: [{plot_link}]({plot_link}).", ""]
    lines += [
        "| case | client | metric | Sluice | Kafka | Sluice/Kafka |",
        "|---|---|---|---:|---:|---:|",
    ]
    for mode, client, label, fmt, _lower, values in rows(cases):
        texts = [cell(values[b], fmt)[0] for b in ("sluice", "kafka")]
        r = ratio_of(values)
        shown = CLIENT_NAMES.get(client, client)
        lines.append(
            f"| {mode} | {shown} | {label} | {texts[0]} | {texts[1]} | {'n/a' if r is None else f'{r:.2f}'} |"
        )
    lost = [
        f"{mode}/{client}/{broker}"
        for (mode, client), per in cases.items()
        for broker, entries in per.items()
        for run, _b, _w in entries
        if run.get("lost") or run.get("duplicates") or not run.get("complete", True)
    ]
    lines.append("")
    if lost:
        lines.append("Runs with lost, duplicated or undrained messages: " + ", ".join(sorted(set(lost))) + ".")
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
    labelled = [(f"{m} {CLIENT_NAMES.get(c, c)}: {lab}", ratio_of(v), low) for m, c, lab, _f, low, v in data]
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
        picked = [(m, c, lab, v) for m, c, lab, _f, _l, v in data if wanted(lab)]
        names = [f"{m} {CLIENT_NAMES.get(c, c)}\n{lab}" for m, c, lab, _v in picked]
        xs = range(len(picked))
        for offset, broker, color in ((-0.2, "sluice", "tab:blue"), (0.2, "kafka", "tab:orange")):
            meds, lo, hi = [], [], []
            for _m, _c, _lab, v in picked:
                vals = [x for x in v[broker] if x is not None]
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
        f"Sluice vs Apache Kafka {cfg.get('kafka_version', '?')}, acks={cfg.get('acks', '?')}, "
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
