#!/usr/bin/env python3
"""Produce and consume throughput over PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512) against one
broker, in the same run, with confluent-kafka (librdkafka). Prints one table row per protocol:
throughput at full speed (with the p99 produce latency of that run: queueing included), then
the produce latency p50/p99 at a fixed rate (RATE msg/s for RATE_S s, linger.ms=0, acks=1, so
the fsync of acks=all does not hide the protocol's own cost). Latency = produce() to delivery
report (librdkafka's `Message.latency()`).

usage: bench_tls.py PKI_DIR PLAINTEXT SSL SASL_SSL [messages] [size]
(the broker needs user bench/bench-secret, created by this script over PLAINTEXT)
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

PKI, PLAIN, SSL, SASL_SSL = sys.argv[1:5]
N = int(sys.argv[5]) if len(sys.argv) > 5 else 200_000
SIZE = int(sys.argv[6]) if len(sys.argv) > 6 else 1024
PARTITIONS = 4
RATE = 1000
RATE_S = 5

admin = AdminClient({"bootstrap.servers": PLAIN})
for fut in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "bench", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"bench-secret")]).values():
    fut.result(30)

CONFIGS = {
    "PLAINTEXT": {"bootstrap.servers": PLAIN},
    "SSL": {"bootstrap.servers": SSL, "security.protocol": "SSL", "ssl.ca.location": f"{PKI}/ca.pem"},
    "SASL_SSL": {"bootstrap.servers": SASL_SSL, "security.protocol": "SASL_SSL",
                 "ssl.ca.location": f"{PKI}/ca.pem", "sasl.mechanism": "SCRAM-SHA-512",
                 "sasl.username": "bench", "sasl.password": "bench-secret"},
}


def run(name, conf):
    topic = f"bench-{name.lower()}-{uuid.uuid4().hex[:6]}"
    for fut in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        fut.result(30)
    payload = b"x" * SIZE
    producer = Producer({**conf, "acks": "all", "linger.ms": 5, "batch.size": 1_000_000,
                         "queue.buffering.max.messages": 1_000_000})
    latencies = []

    def delivered(err, msg):
        assert err is None, err
        latencies.append(msg.latency())

    start = time.perf_counter()
    for i in range(N):
        while True:
            try:
                producer.produce(topic, payload, partition=i % PARTITIONS, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    produce_s = time.perf_counter() - start
    full_p99 = percentile(latencies, 0.99)
    paced = fixed_rate(conf, f"{topic}-paced", payload)
    consumer = Consumer({**conf, "group.id": f"g-{topic}", "enable.auto.commit": False,
                         "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = 0
    start = time.perf_counter()
    while got < N and time.perf_counter() - start < 120:
        for msg in consumer.consume(10_000, 1.0):
            if not msg.error():
                got += 1
    consume_s = time.perf_counter() - start
    consumer.close()
    assert got == N, f"{name}: consumed {got} of {N}"
    mb = N * SIZE / 1e6
    print(f"| {name} | {N} x {SIZE} B | {N / produce_s:,.0f} msg/s ({mb / produce_s:,.1f} MB/s) "
          f"| {full_p99 * 1000:.1f} ms | {N / consume_s:,.0f} msg/s ({mb / consume_s:,.1f} MB/s) "
          f"| {paced[0] * 1000:.2f} / {paced[1] * 1000:.2f} ms |", flush=True)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def fixed_rate(conf, topic, payload):
    """Produce latency (p50, p99) at RATE msg/s for RATE_S seconds, linger.ms=0, acks=1."""
    for fut in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        fut.result(30)
    producer = Producer({**conf, "acks": 1, "linger.ms": 0})
    latencies = []

    def delivered(err, msg):
        assert err is None, err
        latencies.append(msg.latency())

    start = time.perf_counter()
    for i in range(RATE * RATE_S):
        due = start + i / RATE
        while time.perf_counter() < due:
            producer.poll(max(0.0, min(0.001, due - time.perf_counter())))
        producer.produce(topic, payload, partition=i % PARTITIONS, on_delivery=delivered)
    producer.flush(60)
    return percentile(latencies, 0.50), percentile(latencies, 0.99)


print(f"| protocol | messages | produce (acks=all) | produce p99 at full speed | consume "
      f"| produce p50 / p99 at {RATE} msg/s (acks=1) |")
print("|---|---|---|---|---|---|")
for name, conf in CONFIGS.items():
    run(name, conf)
