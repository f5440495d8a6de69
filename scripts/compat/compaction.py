#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a compacted topic: log compaction end to end.

Usage: compaction.py BOOTSTRAP TOPIC
Creates TOPIC with cleanup.policy=compact, small segments, min.cleanable.dirty.ratio=0.01 and
delete.retention.ms=0; produces keyed updates (gzip, lz4 and zstd producers), tombstones for a
third of the keys, then unique filler keys so every update is in a sealed segment. Checks that
a keyless record is refused with INVALID_RECORD, then waits (the broker runs with a short
log.cleaner.backoff.ms) until a new consumer reading from the beginning sees exactly one record
per live key, the latest value at the offset its produce was acknowledged at, no deleted key,
and far fewer records than were produced. Exits non-zero on the first difference.
"""
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

KEYS = 150
ROUNDS = 12
FILLER = 400
TIMEOUT_S = 90


def fail(message):
    raise SystemExit(f"compaction: {message}")


def produce(bootstrap, topic, records, compression):
    """Produces (key, value) pairs; returns {key: offset of its last acknowledged record}."""
    acked, errors = {}, []
    producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                         "acks": "all", "linger.ms": 2, "compression.type": compression,
                         # Batches must fit the 16 KiB segments: a larger one is refused
                         # (RECORD_LIST_TOO_LARGE), as by Kafka's UnifiedLog.append.
                         "batch.size": 8192, "enable.idempotence": True})

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            key = msg.key()
            acked[key] = max(acked.get(key, -1), msg.offset())

    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=0, on_delivery=on_delivery)
        producer.poll(0)
    if producer.flush(TIMEOUT_S) != 0 or errors:
        fail(f"produce failed: {errors[:3]}")
    return acked


def keyless_is_refused(bootstrap, topic):
    result = []
    producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                         "acks": "all", "retries": 0})
    producer.produce(topic, value=b"no key", partition=0,
                     on_delivery=lambda err, msg: result.append(err))
    producer.flush(TIMEOUT_S)
    if not result or result[0] is None or result[0].code() != KafkaError.INVALID_RECORD:
        fail(f"keyless record on a compacted topic: {result}")


def read_all(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                         "group.id": "unused", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                break
            fail(f"consume error: {msg.error()}")
        out.append((msg.offset(), msg.key(), msg.value()))
    consumer.close()
    return out


def main() -> int:
    bootstrap, topic = sys.argv[1], sys.argv[2]
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    config = {"cleanup.policy": "compact", "segment.bytes": "16384",
              "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"}
    for fut in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        fut.result(timeout=TIMEOUT_S)
    time.sleep(0.5)
    keyless_is_refused(bootstrap, topic)

    latest, acked, produced = {}, {}, 0
    for round_ in range(ROUNDS):
        records = [(f"key-{k}".encode(), f"value-{k}-{round_}-{'x' * 60}".encode())
                   for k in range(KEYS)]
        codec = ("gzip", "lz4", "zstd")[round_ % 3]
        acked.update(produce(bootstrap, topic, records, codec))
        latest.update(dict(records))
        produced += len(records)
    deleted = {f"key-{k}".encode() for k in range(0, KEYS, 3)}
    acked.update(produce(bootstrap, topic, [(k, None) for k in sorted(deleted)], "lz4"))
    for k in deleted:
        latest.pop(k)
    filler = [(f"filler-{i}".encode(), b"f" * 100) for i in range(FILLER)]
    acked.update(produce(bootstrap, topic, filler, "none"))
    latest.update(dict(filler))
    produced += len(deleted) + FILLER

    deadline = time.monotonic() + TIMEOUT_S
    while True:
        got = read_all(bootstrap, topic)
        keys = [k for _, k, _ in got]
        seen = {k: (o, v) for o, k, v in got}
        live = {k for k, (_, v) in seen.items() if v is not None}
        done = (len(keys) == len(set(keys)) and live == set(latest)
                and not (set(seen) & deleted))
        if done:
            break
        if time.monotonic() > deadline:
            fail(f"not compacted in time: {len(got)} records, {len(set(keys))} keys, "
                 f"{len(set(seen) & deleted)} deleted keys still present")
        time.sleep(1)
    for k, value in latest.items():
        offset, got_value = seen[k]
        if got_value != value or offset != acked[k]:
            fail(f"{k!r}: got {got_value[:20]!r}@{offset}, want {value[:20]!r}@{acked[k]}")
    offsets = [o for o, _, _ in got]
    if offsets != sorted(offsets):
        fail("offsets out of order")
    if len(got) >= produced // 2:
        fail(f"{len(got)} records left of {produced}")
    print(f"compaction: {produced} produced, {len(got)} left, one per live key")
    return 0


if __name__ == "__main__":
    sys.exit(main())
