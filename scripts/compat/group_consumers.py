#!/usr/bin/env python3
"""Consumer groups with kafka-python and confluent-kafka: subscribe, consume, commit, re-open.

Usage: group_consumers.py BOOTSTRAP TOPIC PARTITIONS
Produces COUNT messages, then for each client library: a group consumer subscribes, consumes
half of them and commits (sync) what it processed, closes; a new consumer in the same group
must resume exactly at the committed offsets (nothing below them re-read) and read the rest.
Exits non-zero on any mismatch. The topic must exist (create_topics.py) with PARTITIONS.
"""
import sys
import time
import uuid

COUNT = 1200
TIMEOUT_S = 60


def produce(bootstrap, topic):
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(COUNT):
        producer.produce(topic, key=f"k{i % 40}".encode(), value=f"group-{i}".encode())
        producer.poll(0)
    if producer.flush(TIMEOUT_S) != 0:
        raise SystemExit("produce: messages not delivered")


def fail(msg):
    print(f"group_consumers: {msg}", file=sys.stderr)
    raise SystemExit(1)


def check_resume(name, first_seen, committed, second_seen):
    """Second consumer starts at the commits and, together with them, covers everything."""
    for (p, off) in second_seen:
        if off < committed.get(p, 0):
            fail(f"{name}: partition {p} offset {off} re-read below commit {committed[p]}")
    if len(set(second_seen)) != len(second_seen):
        fail(f"{name}: duplicates after re-open")
    covered = set(second_seen) | {(p, o) for (p, o) in first_seen if o < committed.get(p, 0)}
    if len(covered) != COUNT:
        fail(f"{name}: {len(covered)} of {COUNT} messages seen across both consumers")


def kafka_python(bootstrap, topic, partitions):
    from kafka import KafkaConsumer, TopicPartition
    group = f"compat-kp-{uuid.uuid4().hex[:8]}"

    def consumer():
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                          auto_offset_reset="earliest", session_timeout_ms=10000,
                          request_timeout_ms=TIMEOUT_S * 1000)
        c.subscribe([topic])
        return c

    first, seen = consumer(), []
    deadline = time.time() + TIMEOUT_S
    while len(seen) < COUNT // 2 and time.time() < deadline:
        for tp, msgs in first.poll(timeout_ms=500).items():
            seen.extend((tp.partition, m.offset) for m in msgs)
    first.commit()
    committed = {p: first.committed(TopicPartition(topic, p)) or 0 for p in range(partitions)}
    first.close()
    if sum(committed.values()) < COUNT // 2:
        fail(f"kafka-python: commits {committed} below what was consumed")
    second, again = consumer(), []
    remaining = COUNT - sum(committed.values())
    deadline = time.time() + TIMEOUT_S
    while len(again) < remaining and time.time() < deadline:
        for tp, msgs in second.poll(timeout_ms=500).items():
            again.extend((tp.partition, m.offset) for m in msgs)
    second.close()
    check_resume("kafka-python", seen, committed, again)


def confluent(bootstrap, topic, partitions):
    from confluent_kafka import Consumer, TopicPartition
    group = f"compat-ck-{uuid.uuid4().hex[:8]}"

    def consumer():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": 10000})
        c.subscribe([topic])
        return c

    first, seen = consumer(), []
    deadline = time.time() + TIMEOUT_S
    while len(seen) < COUNT // 2 and time.time() < deadline:
        m = first.poll(0.5)
        if m is not None and m.error() is None:
            seen.append((m.partition(), m.offset()))
    first.commit(asynchronous=False)
    tps = first.committed([TopicPartition(topic, p) for p in range(partitions)], TIMEOUT_S)
    committed = {tp.partition: max(tp.offset, 0) for tp in tps}
    first.close()
    if sum(committed.values()) < COUNT // 2:
        fail(f"confluent-kafka: commits {committed} below what was consumed")
    second, again = consumer(), []
    remaining = COUNT - sum(committed.values())
    deadline = time.time() + TIMEOUT_S
    while len(again) < remaining and time.time() < deadline:
        m = second.poll(0.5)
        if m is not None and m.error() is None:
            again.append((m.partition(), m.offset()))
    second.close()
    check_resume("confluent-kafka", seen, committed, again)


def main() -> int:
    bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    produce(bootstrap, topic)
    kafka_python(bootstrap, topic, partitions)
    confluent(bootstrap, topic, partitions)
    print(f"group_consumers: ok ({COUNT} messages, kafka-python and confluent-kafka groups)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
