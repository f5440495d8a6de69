#!/usr/bin/env python3
"""Transactional produce throughput (confluent-kafka / librdkafka) at 1, 10 and 100 records
per transaction, against non-transactional acks=all produce of the same records waited for
in the same groups, in one run against one broker; then a read_committed consumer's read
rate over the transactional topic; then the LSO lag under load: while a producer commits
10-record transactions back to back, a sampler reads the partition's high watermark
(read_uncommitted ListOffsets) and LSO (read_committed ListOffsets) every 20 ms and reports
the distance HW - LSO in records, with the commit_transaction() latency. Prints one line per
case.

Usage: txn_throughput.py HOST:PORT [SECONDS_PER_CASE]
"""
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOT = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
VALUE = b"x" * 100


def make_topic(partitions=1):
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOT})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result()
    return name


def run(per_txn, transactional):
    name = make_topic()
    conf = {"bootstrap.servers": BOOT, "linger.ms": 0, "acks": "all"}
    if transactional:
        conf["transactional.id"] = f"bench-{uuid.uuid4().hex[:6]}"
    p = Producer(conf)
    if transactional:
        p.init_transactions(30)
    sent, groups, start = 0, 0, time.time()
    while time.time() - start < SECONDS:
        if transactional:
            p.begin_transaction()
        for _ in range(per_txn):
            p.produce(name, VALUE, partition=0)
        if transactional:
            p.commit_transaction(30)
        else:
            p.flush(30)
        sent += per_txn
        groups += 1
    elapsed = time.time() - start
    kind = "transactional" if transactional else "acks=all, flushed per group"
    print(f"{per_txn:>3} records/group {kind:<28} {sent / elapsed:>9.0f} records/s "
          f"{groups / elapsed:>7.1f} groups/s")
    return name, sent


def read_committed_rate(name, expected):
    c = Consumer({"bootstrap.servers": BOOT, "group.id": f"b-{uuid.uuid4().hex[:6]}",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(name, 0, 0)])
    got, start = 0, time.time()
    while got < expected and time.time() - start < 60:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    elapsed = time.time() - start
    c.close()
    print(f"read_committed consumer: {got} records in {elapsed:.2f} s ({got / elapsed:.0f} records/s)")


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def lso_lag(per_txn=10):
    name = make_topic()
    p = Producer({"bootstrap.servers": BOOT, "linger.ms": 0, "acks": "all",
                  "transactional.id": f"bench-lag-{uuid.uuid4().hex[:6]}"})
    p.init_transactions(30)
    watch = {iso: Consumer({"bootstrap.servers": BOOT, "group.id": f"w-{uuid.uuid4().hex[:6]}",
                            "isolation.level": iso})
             for iso in ("read_uncommitted", "read_committed")}
    tp = TopicPartition(name, 0)
    lags, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            hw = watch["read_uncommitted"].get_watermark_offsets(tp, 10)[1]
            lso = watch["read_committed"].get_watermark_offsets(tp, 10)[1]
            lags.append(max(hw - lso, 0))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    commits, start = [], time.time()
    while time.time() - start < SECONDS:
        p.begin_transaction()
        for _ in range(per_txn):
            p.produce(name, VALUE, partition=0)
        t = time.time()
        p.commit_transaction(30)
        commits.append((time.time() - t) * 1000)
    stop.set()
    sampler.join()
    rate = len(commits) * per_txn / (time.time() - start)
    print(f"LSO lag under load ({per_txn} records/transaction, {rate:.0f} records/s): "
          f"HW - LSO p50 {percentile(lags, 0.5)} p99 {percentile(lags, 0.99)} "
          f"max {max(lags, default=0)} records over {len(lags)} samples; "
          f"commit_transaction p50 {percentile(commits, 0.5):.1f} ms "
          f"p99 {percentile(commits, 0.99):.1f} ms")
    for c in watch.values():
        c.close()


def main():
    last = None
    for per_txn in (1, 10, 100):
        run(per_txn, False)
        last = run(per_txn, True)
    read_committed_rate(*last)
    lso_lag()


if __name__ == "__main__":
    main()
