#!/usr/bin/env python3
"""confluent-kafka and kafka-python against a multi-broker cluster, through ONE bootstrap broker.

Usage: cluster_clients.py BOOTSTRAP TOPIC PARTITIONS GROUP
The topic's partitions are led by several brokers; BOOTSTRAP is one of them. For each client
library: produce PER_PARTITION messages to every partition explicitly (acks=all; the client
must find each partition's leader from Metadata), read every partition back from the
beginning (assign, no group), then consume the topic in consumer group GROUP-<lib> (subscribe,
commit synchronously) and check that the committed offsets are the partitions' ends. The caller
picks GROUP so that its coordinator is another broker than BOOTSTRAP. Exits non-zero on any
mismatch, printing what differed.
"""
import sys
import time

PER_PARTITION = 30
TIMEOUT_S = 60


def fail(msg):
    print(f"cluster_clients: {msg}", file=sys.stderr)
    raise SystemExit(1)


def own(seen, lib):
    """How many of `seen` this library produced (the topic also holds the other's)."""
    return sum(1 for (_, v) in seen if v.startswith(f"{lib}-"))


def expected(lib, partitions):
    return {(p, f"{lib}-{p}-{i}") for p in range(partitions) for i in range(PER_PARTITION)}


def check(lib, what, seen, partitions):
    want = expected(lib, partitions)
    got = {(p, v) for (p, v) in seen if v.startswith(f"{lib}-")}
    if got != want or own(seen, lib) != len(want):
        missing = sorted(want - got)[:5]
        fail(f"{lib} {what}: {len(got)}/{len(want)} distinct values, {len(seen)} read; "
             f"missing e.g. {missing}")


def confluent(bootstrap, topic, partitions, group):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                         "acks": "all", "linger.ms": 2})

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    for p in range(partitions):
        for i in range(PER_PARTITION):
            producer.produce(topic, value=f"confluent-{p}-{i}".encode(), partition=p,
                             on_delivery=on_delivery)
        producer.poll(0)
    if producer.flush(TIMEOUT_S) != 0 or errors:
        fail(f"confluent produce: {errors[:3]}")

    def read(consumer, want):
        seen, deadline = [], time.time() + TIMEOUT_S
        while own(seen, "confluent") < want and time.time() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                fail(f"confluent consume: {msg.error()}")
            seen.append((msg.partition(), msg.value().decode()))
        return seen

    total = partitions * PER_PARTITION
    assigned = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                         "group.id": "unused", "enable.auto.commit": False})
    assigned.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    seen = read(assigned, total)
    assigned.close()
    check("confluent", "assign", seen, partitions)

    grouped = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                        "group.id": f"{group}-confluent", "auto.offset.reset": "earliest",
                        "enable.auto.commit": False, "session.timeout.ms": 10000})
    grouped.subscribe([topic])
    seen = read(grouped, total)
    check("confluent", "group", seen, partitions)
    grouped.commit(asynchronous=False)
    committed = grouped.committed([TopicPartition(topic, p) for p in range(partitions)],
                                  timeout=TIMEOUT_S)
    grouped.close()
    offsets = sorted((tp.partition, tp.offset) for tp in committed)
    if any(off < PER_PARTITION for (_, off) in offsets):
        fail(f"confluent committed offsets {offsets}")


def kafka_python(bootstrap, topic, partitions, group):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                             request_timeout_ms=TIMEOUT_S * 1000)
    futures = [producer.send(topic, value=f"kafka_python-{p}-{i}".encode(), partition=p)
               for p in range(partitions) for i in range(PER_PARTITION)]
    producer.flush(TIMEOUT_S)
    for f in futures:
        f.get(timeout=TIMEOUT_S)
    producer.close()

    def read(consumer, want):
        seen, deadline = [], time.time() + TIMEOUT_S
        while own(seen, "kafka_python") < want and time.time() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                seen.extend((tp.partition, m.value.decode()) for m in msgs)
        return seen

    total = partitions * PER_PARTITION
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    assigned = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             request_timeout_ms=TIMEOUT_S * 1000)
    assigned.assign(tps)
    assigned.seek_to_beginning(*tps)
    seen = read(assigned, total)
    assigned.close()
    check("kafka_python", "assign", seen, partitions)

    grouped = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"{group}-kafka_python",
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            session_timeout_ms=10000, request_timeout_ms=TIMEOUT_S * 1000)
    grouped.subscribe([topic])
    seen = read(grouped, total)
    check("kafka_python", "group", seen, partitions)
    grouped.commit()
    offsets = sorted((tp.partition, grouped.committed(tp)) for tp in tps)
    grouped.close()
    if any(off is None or off < PER_PARTITION for (_, off) in offsets):
        fail(f"kafka_python committed offsets {offsets}")


def main():
    if len(sys.argv) != 5:
        fail("usage: cluster_clients.py BOOTSTRAP TOPIC PARTITIONS GROUP")
    bootstrap, topic, partitions, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    confluent(bootstrap, topic, partitions, group)
    kafka_python(bootstrap, topic, partitions, group)
    print("cluster_clients: ok")


if __name__ == "__main__":
    main()
