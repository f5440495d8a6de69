#!/usr/bin/env python3
"""The README's compatibility table, made from the compatibility suites' own results.

Inputs (any number of each):
  --surefire DIR   JUnit XML reports of the Java suite (compat/java/target/surefire-reports);
                   test names are the tests' @DisplayName, the client version comes from the
                   `kafka.version` system property the pom passes to the tests.
  --tsv FILE       lines `client<TAB>feature<TAB>result<TAB>detail` (compat/tools/run.sh and
                   scripts/compat/run.sh write them; result is pass, fail or "not yet"; any
                   other suite can add its own file the same way).
  --gotest FILE    `go test -v` output of compat/go: one row per top-level test from its
                   `--- PASS/FAIL/SKIP: TestName` line, the client versions from go.mod.

Writes the markdown table to --out, and with --readme FILE rewrites the part of FILE between
`<!-- compat-table:begin -->` and `<!-- compat-table:end -->` with it. A test aborted with a
reason starting "not yet:" (a feature Sluice does not serve yet) is listed as "not yet" with
the client's error; a failed test is listed as "FAIL". Nothing in the table is typed by hand:
run `make compat-table` after the suites.
"""

import argparse
import glob
import os
import sys
import xml.etree.ElementTree as ET

BEGIN = "<!-- compat-table:begin -->"
END = "<!-- compat-table:end -->"
NOT_YET = "not yet:"


def surefire_rows(directory):
    """(client, feature, result, detail) for each test case in the reports of `directory`."""
    rows = []
    for path in sorted(glob.glob(os.path.join(directory, "TEST-*.xml"))):
        suite = ET.parse(path).getroot()
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        version = props.get("kafka.version", "?")
        for case in suite.iter("testcase"):
            area = case.get("classname", "")
            if area.startswith("Kafka Streams"):
                client = f"Java: kafka-streams {version}"
            else:
                client = f"Java: kafka-clients {version}"
            feature = f"{area}: {case.get('name')}"
            result, detail = case_result(case)
            rows.append((client, feature, result, detail))
    return rows


def case_result(case):
    for tag in ("failure", "error"):
        el = case.find(tag)
        if el is not None:
            return "FAIL", first_line(el.get("message") or el.text or tag)
    el = case.find("skipped")
    if el is not None:
        reason = first_line(el.get("message") or el.text or "")
        reason = reason.removeprefix("org.opentest4j.TestAbortedException: ")
        if reason.startswith("Assumption failed: "):
            reason = reason.removeprefix("Assumption failed: ")
        if reason.startswith(NOT_YET):
            return "not yet", reason[len(NOT_YET):].strip()
        return "skipped", reason
    return "pass", ""


def first_line(text):
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def tsv_rows(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            client, feature, result = parts[:3]
            detail = parts[3] if len(parts) > 3 else ""
            rows.append((client, feature, "FAIL" if result == "fail" else result, detail))
    return rows


# What each Go test covers (compat/go/*_test.go); a test missing here is listed by its name.
GO_FEATURES = {
    "TestProduceEveryCodecAndConsume": ("franz-go", "kgo: idempotent produce in every codec, consume"),
    "TestProduceAcks": ("franz-go", "kgo: produce with acks 1 and 0"),
    "TestConsumerGroup": ("franz-go", "kgo: cooperative consumer group, commits until lag 0"),
    "TestAdmin": ("franz-go", "kadm: topics, configs, partitions, offsets, DeleteRecords, groups"),
    "TestConsumeEdgeCases": ("franz-go", "kgo: small fetch limits, start by time, static member, OffsetForLeaderEpoch"),
    "TestSaramaProduceConsume": ("sarama", "producer in every codec, consumer"),
    "TestSaramaConsumerGroupAndAdmin": ("sarama", "consumer group and ClusterAdmin"),
}


def go_versions(go_mod):
    versions = {}
    with open(go_mod, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "github.com/twmb/franz-go":
                versions["franz-go"] = parts[1]
            elif len(parts) >= 2 and parts[0] == "github.com/IBM/sarama":
                versions["sarama"] = parts[1]
    return versions


def go_rows(path, go_mod):
    versions = go_versions(go_mod)
    results = {"PASS": "pass", "FAIL": "FAIL", "SKIP": "skipped"}
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            # Top-level tests only: subtests are indented under their parent.
            if not line.startswith("--- "):
                continue
            parts = line.split()
            if len(parts) < 3 or parts[1].rstrip(":") not in results:
                continue
            name = parts[2]
            client, feature = GO_FEATURES.get(name, ("franz-go", name))
            label = f"Go: {client} {versions.get(client, '?')}"
            rows.append((label, feature, results[parts[1].rstrip(":")], ""))
    return rows


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows):
    out = [
        "| client | feature | result | note (the client's error where not yet) |",
        "|---|---|---|---|",
    ]
    for client, feature, result, detail in rows:
        shown = {"pass": "pass", "not yet": "**not yet**", "FAIL": "**FAIL**"}.get(result, result)
        out.append(f"| {cell(client)} | {cell(feature)} | {shown} | {cell(detail)} |")
    passed = sum(1 for r in rows if r[2] == "pass")
    not_yet = sum(1 for r in rows if r[2] == "not yet")
    failed = sum(1 for r in rows if r[2] == "FAIL")
    out.append("")
    out.append(f"{passed} pass, {not_yet} not yet, {failed} failed "
               "(generated by `make compat-table` from the suites' results).")
    return "\n".join(out) + "\n"


def rewrite_readme(path, body):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        sys.exit(f"{path}: no {BEGIN} ... {END} section")
    new = text[: start + len(BEGIN)] + "\n" + body + text[end:]
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
        print(f"compat-table: {path} updated")
    else:
        print(f"compat-table: {path} already up to date")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--surefire", action="append", default=[])
    ap.add_argument("--tsv", action="append", default=[])
    ap.add_argument("--gotest", action="append", default=[])
    ap.add_argument("--gomod", default="compat/go/go.mod")
    ap.add_argument("--out", required=True)
    ap.add_argument("--readme")
    args = ap.parse_args()
    rows = []
    for d in args.surefire:
        if not glob.glob(os.path.join(d, "TEST-*.xml")):
            sys.exit(f"compat-table: no reports in {d} (run `make test` or `make test-java` first)")
        # Report files come in class order: sort by client, then feature.
        rows += sorted(surefire_rows(d), key=lambda r: (r[0], r[1]))
    for t in args.tsv:
        if not os.path.exists(t):
            sys.exit(
                f"compat-table: no {t} (run `make test`, or the suite that writes it: "
                "`make test-kafka-tools` or `make test-compat-py`, first)"
            )
        rows += tsv_rows(t)
    for g in args.gotest:
        if not os.path.exists(g):
            sys.exit(f"compat-table: no {g} (run `make test` or `make test-go` first)")
        rows += go_rows(g, args.gomod)
    if not rows:
        sys.exit("compat-table: no results")
    # Script results keep the order their checks ran in.
    body = table(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(body)
    print(f"compat-table: {args.out} ({len(rows)} rows)")
    if args.readme:
        rewrite_readme(args.readme, body)


if __name__ == "__main__":
    main()
