#!/usr/bin/env python3
"""kafka-python (pure Python client) producer + assign/seek consumer round trip.

Usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC PARTITIONS
Produces keyed, gzip-compressed messages with headers (acks=all), reads every partition from
offset 0 with group_id=None, and exits non-zero unless received == sent (each message once,
offsets contiguous, per-key order kept).
"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

COUNT = 3000
KEYS = 30
TIMEOUT_S = 60


def main() -> int:
    bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sent = [(f"k{i % KEYS}".encode(), f"kafka-python-{i}".encode(), [("i", str(i).encode())])
            for i in range(COUNT)]

    # kafka-python's default producer is idempotent (InitProducerId, sequenced batches).
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip",
                             linger_ms=5, request_timeout_ms=TIMEOUT_S * 1000)
    futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in sent]
    producer.flush(timeout=TIMEOUT_S)
    for fut in futures:
        fut.get(timeout=TIMEOUT_S)  # raises on a failed delivery
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, request_timeout_ms=TIMEOUT_S * 1000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < COUNT and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    consumer.close()

    problems = []
    received = [(r.key, r.value, [(k, bytes(v)) for k, v in r.headers]) for r in got]
    if len(received) != len(sent):
        problems.append(f"received {len(received)} messages, sent {len(sent)}")
    if sorted(received) != sorted(sent):
        problems.append("received != sent")
    by_partition = {}
    for r in got:
        by_partition.setdefault(r.partition, []).append(r.offset)
    for p, offsets in by_partition.items():
        if offsets != list(range(offsets[0], offsets[0] + len(offsets))):
            problems.append(f"partition {p}: offsets not contiguous")
    last_index = {}
    for r in got:
        index = int(r.value.rsplit(b"-", 1)[1])
        if last_index.get(r.key, -1) >= index:
            problems.append(f"key {r.key} out of order at partition {r.partition} offset {r.offset}")
        last_index[r.key] = index
    for p in problems[:10]:
        print(f"kafka-python: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
