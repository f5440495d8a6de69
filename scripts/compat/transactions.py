#!/usr/bin/env python3
"""Transactions with confluent-kafka (librdkafka): commit and abort across partitions, read
committed vs uncommitted, zombie fencing, and consume-transform-produce with
send_offsets_to_transaction (offsets visible only after commit).

Usage: transactions.py HOST:PORT   (exit status 0 when every check passed)
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOT = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
TIMEOUT = 30


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def topic(partitions):
    name = f"txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOT})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result()
    return name


def producer(txn_id):
    p = Producer({"bootstrap.servers": BOOT, "transactional.id": txn_id,
                  "transaction.timeout.ms": 20000, "linger.ms": 5})
    p.init_transactions(TIMEOUT)
    return p


def read_all(name, partitions, isolation, expect_at_least=0):
    c = Consumer({"bootstrap.servers": BOOT, "group.id": f"r-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": isolation})
    c.assign([TopicPartition(name, p, 0) for p in range(partitions)])
    got, idle_until = [], time.time() + 3
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if len(got) >= expect_at_least and time.time() > idle_until:
                break
            continue
        if m.error():
            continue
        got.append(m.value().decode())
        idle_until = time.time() + 2
    c.close()
    return got


def commit_and_abort():
    name = topic(3)
    p = producer(f"tx-{uuid.uuid4().hex[:6]}")
    p.begin_transaction()
    for i in range(30):
        p.produce(name, f"c1-{i}".encode(), partition=i % 3)
    p.commit_transaction(TIMEOUT)
    p.begin_transaction()
    for i in range(30):
        p.produce(name, f"a-{i}".encode(), partition=i % 3)
    p.flush(TIMEOUT)
    p.abort_transaction(TIMEOUT)
    p.begin_transaction()
    for i in range(10):
        p.produce(name, f"c2-{i}".encode(), partition=i % 3)
    p.commit_transaction(TIMEOUT)
    committed = read_all(name, 3, "read_committed", 40)
    check(sorted(committed) == sorted([f"c1-{i}" for i in range(30)] + [f"c2-{i}" for i in range(10)]),
          f"read_committed sees exactly the 40 committed records (got {len(committed)})")
    everything = read_all(name, 3, "read_uncommitted", 70)
    check(len(everything) == 70, f"read_uncommitted sees all 70 records (got {len(everything)})")


def fencing():
    name = topic(1)
    txn_id = f"tx-{uuid.uuid4().hex[:6]}"
    old = producer(txn_id)
    old.begin_transaction()
    old.produce(name, b"zombie")
    old.flush(TIMEOUT)
    new = producer(txn_id)  # fences the old one, aborting its transaction
    fenced = False
    try:
        old.produce(name, b"zombie-2")
        old.commit_transaction(TIMEOUT)
    except KafkaException as e:
        fenced = e.args[0].fatal() or "fenced" in str(e).lower()
    check(fenced, "the older producer with the same transactional.id is fenced")
    new.begin_transaction()
    new.produce(name, b"live")
    new.commit_transaction(TIMEOUT)
    check(read_all(name, 1, "read_committed", 1) == ["live"], "only the new producer's record is committed")


def consume_transform_produce():
    src, dst = topic(2), topic(2)
    plain = Producer({"bootstrap.servers": BOOT})
    for i in range(20):
        plain.produce(src, f"in-{i}".encode(), partition=i % 2)
    plain.flush(TIMEOUT)
    group = f"g-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": BOOT, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.assign([TopicPartition(src, 0, 0), TopicPartition(src, 1, 0)])
    p = producer(f"tx-{uuid.uuid4().hex[:6]}")
    seen = []
    deadline = time.time() + TIMEOUT
    while len(seen) < 20 and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            seen.append(m)
    check(len(seen) == 20, "consumed the 20 input records")

    def committed():
        probe = Consumer({"bootstrap.servers": BOOT, "group.id": group,
                          "isolation.level": "read_uncommitted"})
        offs = probe.committed([TopicPartition(src, 0), TopicPartition(src, 1)], TIMEOUT)
        probe.close()
        return sorted(t.offset for t in offs)

    p.begin_transaction()
    for m in seen:
        p.produce(dst, m.value().replace(b"in", b"out"), partition=m.partition())
    p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
    p.flush(TIMEOUT)
    check(committed() == [-1001, -1001], f"offsets invisible before the commit ({committed()})")
    p.commit_transaction(TIMEOUT)
    check(committed() == [10, 10], f"offsets visible after the commit ({committed()})")
    p.begin_transaction()
    p.produce(dst, b"aborted", partition=0)
    p.send_offsets_to_transaction([TopicPartition(src, 0, 15), TopicPartition(src, 1, 15)],
                                  c.consumer_group_metadata(), TIMEOUT)
    p.abort_transaction(TIMEOUT)
    check(committed() == [10, 10], f"aborted offsets are dropped ({committed()})")
    out = read_all(dst, 2, "read_committed", 20)
    check(sorted(out) == sorted(f"out-{i}" for i in range(20)), f"output holds each input once ({len(out)})")
    c.close()


if __name__ == "__main__":
    commit_and_abort()
    fencing()
    consume_transform_produce()
    print("all transaction checks passed")
