#!/usr/bin/env python3
"""confluent-kafka (librdkafka) producer + assign-based consumer round trip.

Usage: confluent_roundtrip.py BOOTSTRAP TOPIC PARTITIONS
Produces keyed messages with headers and explicit timestamps (acks=all), reads every
partition from the beginning without a consumer group, and exits non-zero unless what came
back equals what was sent: each message once, per-key order kept, one partition per key.
"""
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

COUNT = 5000
KEYS = 50
TIMEOUT_S = 60
TS_BASE_MS = 1_600_000_000_000


def sent_messages():
    return [
        (f"k{i % KEYS}".encode(), f"confluent-{i}".encode(), [("i", str(i).encode())], TS_BASE_MS + i)
        for i in range(COUNT)
    ]


def produce(bootstrap, topic, msgs):
    errors, acked = [], []
    producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                         "acks": "all", "linger.ms": 5})

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append((msg.partition(), msg.offset()))

    for key, value, headers, ts in msgs:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, timestamp=ts,
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    if remaining or errors or len(acked) != len(msgs):
        raise SystemExit(f"produce: {remaining} unflushed, {len(errors)} errors {errors[:3]}, "
                         f"{len(acked)}/{len(msgs)} acked")


def consume(bootstrap, topic, partitions, expected):
    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4",
            "enable.auto.commit": False, "enable.auto.offset.store": False}
    try:
        consumer = Consumer(conf)
    except (KafkaException, ValueError):
        # Some client versions insist on a group.id; it is never used (assign, no commits).
        consumer = Consumer({**conf, "group.id": "sluice-compat-unused"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            raise SystemExit(f"consume: {msg.error()}")
        got.append(msg)
    # A short extra poll would reveal duplicates beyond the expected count.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            got.append(msg)
    consumer.close()
    return got


def check(msgs, got):
    problems = []
    if len(got) != len(msgs):
        problems.append(f"received {len(got)} messages, sent {len(msgs)}")
    sent = {(k, v, tuple(h), ts) for k, v, h, ts in msgs}
    received = [(m.key(), m.value(), tuple(m.headers() or []), m.timestamp()[1]) for m in got]
    if set(received) != sent or len(set(received)) != len(received):
        problems.append("received set != sent set (or duplicates)")
    key_partition, last = {}, {}
    for m in got:
        if key_partition.setdefault(m.key(), m.partition()) != m.partition():
            problems.append(f"key {m.key()} in two partitions")
        index = int(m.value().split(b"-")[1])
        prev_index, prev_offset = last.get(m.key(), (-1, -1))
        if prev_index >= index:
            problems.append(f"key {m.key()} out of order: partition {m.partition()} offset "
                            f"{prev_offset} has message {prev_index}, offset {m.offset()} has {index}")
        last[m.key()] = (index, m.offset())
    return problems


def main() -> int:
    bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    msgs = sent_messages()
    produce(bootstrap, topic, msgs)
    problems = check(msgs, consume(bootstrap, topic, partitions, len(msgs)))
    for p in problems[:10]:
        print(f"confluent-kafka: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
