#!/usr/bin/env python3
"""read_committed with kafka-python (an independent protocol stack) and confluent-kafka:
transactions committed and aborted by a confluent-kafka transactional producer on one
partition, interleaved with plain records; each consumer in read_committed mode sees exactly
the committed and plain records in offset order, in read_uncommitted mode every data record,
and neither ever hands a control record (commit/abort marker) to the application.

Usage: txn_read_committed.py HOST:PORT   (exit status 0 when every check passed)
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

BOOT = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
TIMEOUT = 30


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def make_topic():
    name = f"rc-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOT})
    for f in admin.create_topics([NewTopic(name, 1, 1)]).values():
        f.result()
    return name


def produce(name):
    """Returns (committed + plain values in order, every data value in order)."""
    txn = Producer({"bootstrap.servers": BOOT, "transactional.id": f"rc-{uuid.uuid4().hex[:6]}",
                    "transaction.timeout.ms": 20000, "linger.ms": 0})
    plain = Producer({"bootstrap.servers": BOOT, "linger.ms": 0})
    txn.init_transactions(TIMEOUT)
    visible, everything = [], []
    for round_no in range(4):
        commit = round_no % 2 == 0
        txn.begin_transaction()
        for i in range(3):
            value = f"{'c' if commit else 'a'}{round_no}-{i}"
            txn.produce(name, value.encode(), partition=0)
            txn.flush(TIMEOUT)
            everything.append(value)
            if commit:
                visible.append(value)
        value = f"plain{round_no}"
        plain.produce(name, value.encode(), partition=0)
        plain.flush(TIMEOUT)
        everything.append(value)
        visible.append(value)
        if commit:
            txn.commit_transaction(TIMEOUT)
        else:
            txn.abort_transaction(TIMEOUT)
    return visible, everything


def kafka_python_values(name, isolation, expected):
    consumer = KafkaConsumer(bootstrap_servers=BOOT, isolation_level=isolation,
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    tp = KpTopicPartition(name, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got, deadline = [], time.time() + TIMEOUT
    while len(got) < expected and time.time() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend(r.value.decode() for r in batch)
    # Anything past what is expected (a control record would be) arrives within a short wait.
    for batch in consumer.poll(timeout_ms=1000).values():
        got.extend(r.value.decode() for r in batch)
    consumer.close()
    return got


def confluent_values(name, isolation, expected):
    consumer = Consumer({"bootstrap.servers": BOOT, "group.id": f"rc-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "isolation.level": isolation,
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(name, 0, 0)])
    got, deadline = [], time.time() + TIMEOUT
    while time.time() < deadline:
        m = consumer.poll(0.2)
        if m is None:
            continue
        if m.error():
            if len(got) >= expected:
                break
            continue
        got.append(m.value().decode())
    consumer.close()
    return got


def main():
    name = make_topic()
    visible, everything = produce(name)
    for client, read in (("kafka-python", kafka_python_values), ("confluent-kafka", confluent_values)):
        got = read(name, "read_committed", len(visible))
        check(got == visible, f"{client} read_committed sees the committed and plain records only ({len(got)})")
        got = read(name, "read_uncommitted", len(everything))
        check(got == everything, f"{client} read_uncommitted sees every data record, no marker ({len(got)})")


if __name__ == "__main__":
    main()
