#!/usr/bin/env python3
"""Report of perf/bench-kafka.sh: one Markdown table of Sluice and Apache Kafka per case
(max rate / fixed rate x producer client) and metric, medians over the rounds with their
spread, and the ratio Sluice/Kafka. It replaces the block between the bench-kafka markers of
the Markdown file (appends it the first time).

    perf/bench_kafka_report.py RESULTS_DIR BENCHMARKS.md
"""
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent) + "/"
BEGIN = "<!-- bench-kafka:begin -->"
END = "<!-- bench-kafka:end -->"
LEG = re.compile(r"^(max|fixed)-(\w+)-r(\d+)-(sluice|kafka)$")
# kafka-producer-perf-test's final line.
PERF_TEST = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th"
)
CLIENT_NAMES = {"perftest": "kafka-producer-perf-test"}

# (label, how to get it from (run, broker.json, workload), format, lower is better)
METRICS = [
    ("produce msg/s", lambda r, b, w: r["throughput"]["produce_msgs_per_s"], "{:,.0f}", False),
    ("produce MB/s", lambda r, b, w: r["throughput"]["produce_mb_per_s"], "{:.1f}", False),
    ("publish-to-ack p50 ms", lambda r, b, w: r["publish_latency_ms"]["p50_ms"], "{:.2f}", True),
    ("publish-to-ack p99 ms", lambda r, b, w: r["publish_latency_ms"]["p99_ms"], "{:.2f}", True),
    ("publish-to-ack p99.9 ms", lambda r, b, w: r["publish_latency_ms"]["p99_9_ms"], "{:.2f}", True),
    ("publish-to-ack p99.99 ms", lambda r, b, w: r["publish_latency_ms"]["p99_99_ms"], "{:.2f}", True),
    ("broker CPU s per GB", lambda r, b, w: cpu_per_gb(r, b, w), "{:.2f}", True),
    ("broker RSS MiB", lambda r, b, w: b["rss_kb"] / 1024, "{:.0f}", True),
]


def cpu_per_gb(run, broker, workload):
    """Broker CPU seconds over the leg per GB produced (each message also consumed once)."""
    gb = run["produced_acked"] * workload["message_size_bytes"] / 1e9
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


def table(results):
    cases, failed = load(results)
    cfg = setup(results)
    machine = (results / "machine.txt").read_text().strip() if (results / "machine.txt").exists() else "?"
    lines = [
        BEGIN,
        "## Apache Kafka side by side",
        "",
        "Command: `make bench-kafka` (`perf/bench-kafka.sh`, defaults: "
        f"`DURATION_S={cfg.get('duration_s', '?')} ROUNDS={cfg.get('rounds', '?')} ACKS={cfg.get('acks', '?')}`); "
        "each leg's exact command is in the run's `commands.txt`.",
        "",
        f"Machine: {machine}. **Taken on a busy machine** (2 CPUs shared with other jobs): "
        "read the spreads, not only the medians.",
        "",
        f"Setup: Apache Kafka {cfg.get('kafka_version', '?')} (KRaft combined mode, one node, "
        f"heap {cfg.get('kafka_heap', '?')}, Kafka's own JVM flags) and Sluice, each pinned to CPUs "
        f"{cfg.get('broker_cpus', '?')}; sluice-bench pinned to CPUs {cfg.get('bench_cpus', '?')}; "
        "workload `omb-1topic-16p-1kb` (16 partitions, 1 KiB, 4 producers, 4 assign-mode consumers), "
        "and Kafka's `kafka-producer-perf-test` (one producer, 1 KiB records, batch 128 KiB, linger 1 ms, "
        "no consumers; its MB/s converted to 10^6 bytes), "
        f"acks={cfg.get('acks', '?')}; legs alternate Sluice, Kafka, Sluice, Kafka. "
        "`max` = as fast as the producers go; `fixed` = the fixed total rate of the run. "
        "Cells: median over the rounds (min-max). CPU s per GB: utime+stime of the broker "
        "process over the whole leg per GB produced (each message is also consumed once); RSS: "
        "at the end of the leg. Ratio Sluice/Kafka: above 1 is better for throughput, below 1 "
        "for latency, CPU and RSS. At max rate, publish-to-ack is mostly queueing in the producers "
        "(librdkafka queues far more than the native producer's 8 requests in flight); the fixed-rate "
        f"rows are the latency comparison. Sluice at git {cfg.get('git', '?')}.",
        "",
        *commands(results),
        "| case | client | metric | Sluice | Kafka | Sluice/Kafka |",
        "|---|---|---|---:|---:|---:|",
    ]
    for (mode, client) in sorted(cases, key=lambda k: (k[0] != "max", k[1])):
        per = cases[(mode, client)]
        for label, get, fmt, _lower in METRICS:
            texts, meds = [], []
            for broker in ("sluice", "kafka"):
                values = []
                for entry in per.get(broker, []):
                    try:
                        values.append(get(*entry))
                    except (KeyError, TypeError, ZeroDivisionError):
                        values.append(None)
                t, med = cell(values, fmt)
                texts.append(t)
                meds.append(med)
            ratio = "n/a"
            if meds[0] is not None and meds[1]:
                ratio = f"{meds[0] / meds[1]:.2f}"
            shown = CLIENT_NAMES.get(client, client)
            lines.append(f"| {mode} | {shown} | {label} | {texts[0]} | {texts[1]} | {ratio} |")
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


def perf_test_summary(path):
    """kafka-producer-perf-test output as a sluice-bench-shaped summary (for the table)."""
    found = PERF_TEST.findall(Path(path).read_text())
    if not found:
        sys.exit(f"{path}: no kafka-producer-perf-test summary line")
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


def main():
    if sys.argv[1] == "--perf-test":
        print(json.dumps(perf_test_summary(sys.argv[2])))
        return
    results, markdown = Path(sys.argv[1]), Path(sys.argv[2])
    block = table(results)
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
