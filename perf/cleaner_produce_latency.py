#!/usr/bin/env python3
"""Produce latency on a shard while its log cleaner runs (run by perf/bench-cleaner.sh).

Usage: cleaner_produce_latency.py BOOTSTRAP FILL_MB RATE SECONDS
Creates `lat` (1 partition) and `cmp` (1 partition, cleanup.policy=delete, 1 MiB segments)
on a broker with one shard, fills `cmp` with FILL_MB of 1 KiB keyed records of which 10% are
the latest of their key, then measures acks=1 produce latency to `lat` at RATE msg/s for
SECONDS: first with nothing else running ("idle"), then right after switching `cmp` to
cleanup.policy=compact, so the shard's cleaner compacts it meanwhile ("cleaning").
Latency = delivery report time - send time (librdkafka, linger.ms=0). Prints
`RESULT <phase> p50_ms=.. p99_ms=.. max_ms=.. n=..`.
"""
import sys
import time
import warnings

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType


warnings.filterwarnings("ignore", message="alter_configs has been deprecated")


def measure(bootstrap, rate, seconds):
    lat = []
    producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                         "acks": "1", "linger.ms": 0})
    value = b"x" * 1024
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        due = start + n / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        sent = time.monotonic()
        producer.produce("lat", value=value, partition=0,
                         on_delivery=lambda err, msg, sent=sent: lat.append(time.monotonic() - sent))
        producer.poll(0)
        n += 1
    producer.flush(30)
    lat.sort()
    return lat


def report(name, lat):
    at = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000
    print(f"RESULT {name} p50_ms={at(0.5):.2f} p99_ms={at(0.99):.2f} max_ms={lat[-1] * 1000:.2f} n={len(lat)}")


def main():
    bootstrap, fill_mb, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    topics = [NewTopic("lat", 1, 1),
              NewTopic("cmp", 1, 1, config={"cleanup.policy": "delete", "segment.bytes": "1048576",
                                            "min.cleanable.dirty.ratio": "0.01"})]
    for f in admin.create_topics(topics).values():
        f.result(30)
    time.sleep(1)
    records = fill_mb * 1000
    keys = records // 10
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "acks": "1",
                  "linger.ms": 20, "batch.size": 500000})
    errors = []
    value = b"v" * 1000
    for i in range(records):
        k = i if i < keys else (i * 2654435761) % keys
        while True:
            try:
                p.produce("cmp", key=f"key-{k:010}".encode(), value=value, partition=0,
                          on_delivery=lambda err, msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)
    if errors:
        raise SystemExit(f"fill failed: {errors[:3]}")
    report("idle", measure(bootstrap, rate, seconds))
    res = ConfigResource(ResourceType.TOPIC, "cmp", set_config={
        "cleanup.policy": "compact", "segment.bytes": "1048576", "min.cleanable.dirty.ratio": "0.01"})
    for f in admin.alter_configs([res]).values():  # the whole set, as Kafka's AlterConfigs
        f.result(30)
    report("cleaning", measure(bootstrap, rate, seconds))


if __name__ == "__main__":
    main()
