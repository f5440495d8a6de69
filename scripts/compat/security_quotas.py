#!/usr/bin/env python3
"""Client quotas with real clients (run by scripts/compat/security.sh).

1. kafka-python sends AlterClientQuotas (producer_byte_rate = 100 KiB/s for client id
   `quota-producer`, plus a default-user request_percentage to remove again) and reads it
   back with DescribeClientQuotas (exact, default and strict filters).
2. A confluent-kafka (librdkafka) producer with that client id produces as fast as it can for
   two whole quota periods (quota.window.num 11 x quota.window.size.seconds 1: Kafka's rate
   lets a fresh client burst (samples - 1) windows' worth, so only whole periods measure the
   long-run rate). The acknowledged payload rate must be within 10% of the quota, the client
   must have been told throttle times (throttle_cb), and every delivery must succeed.

Usage: security_quotas.py BOOTSTRAP
"""
import sys
import time

from confluent_kafka import Producer
from kafka import KafkaAdminClient
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest

QUOTA_BYTES_PER_S = 100 * 1024
import os
# A client id of its own per run: the measurement starts from a fresh rate (a client whose rate
# still holds samples from an earlier run starts at another phase of Kafka's sample period).
CLIENT_ID = f"quota-producer-{os.getpid()}"
PERIOD_S = 11  # quota.window.num * quota.window.size.seconds
MEASURE_S = 2 * PERIOD_S
VALUE = b"q" * 1000
TOLERANCE = 0.10


def send(admin, request):
    return admin._manager.run(admin._manager.send, request)


def alter(admin, entries):
    A = AlterClientQuotasRequest
    data = [
        A.EntryData(
            entity=[A.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in entity],
            ops=[A.EntryData.OpData(key=k, value=v, remove=r) for k, v, r in ops],
        )
        for entity, ops in entries
    ]
    resp = send(admin, A(entries=data, validate_only=False))
    return [e.error_code for e in resp.entries]


def describe(admin, components, strict=False):
    D = DescribeClientQuotasRequest
    comps = [D.ComponentData(entity_type=t, match_type=m, match=n) for t, m, n in components]
    resp = send(admin, D(components=comps, strict=strict))
    assert resp.error_code == 0, resp
    out = {}
    for e in resp.entries or []:
        key = tuple((p.entity_type, p.entity_name) for p in e.entity)
        out[key] = {v.key: v.value for v in e.values}
    return out


def admin_round_trip(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="quota-admin")
    codes = alter(admin, [
        ([("client-id", CLIENT_ID)], [("producer_byte_rate", float(QUOTA_BYTES_PER_S), False)]),
        ([("user", None)], [("request_percentage", 400.0, False)]),
        ([("client-id", CLIENT_ID)], [("no_such_quota", 1.0, False)]),
    ])
    assert codes == [0, 0, 42], codes
    exact = describe(admin, [("client-id", 0, CLIENT_ID)])
    assert exact == {(("client-id", CLIENT_ID),): {"producer_byte_rate": QUOTA_BYTES_PER_S}}, exact
    default_user = describe(admin, [("user", 1, None)], strict=True)
    assert default_user == {(("user", None),): {"request_percentage": 400.0}}, default_user
    everything = describe(admin, [])
    assert (("client-id", CLIENT_ID),) in everything and (("user", None),) in everything
    assert alter(admin, [([("user", None)], [("request_percentage", 0.0, True)])]) == [0]
    assert (("user", None),) not in describe(admin, [])
    admin.close()
    print(f"PASS quota admin round trip (kafka-python): {exact}")


def throttled_rate(bootstrap):
    throttles = []
    acked = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append((time.monotonic(), len(msg.value())))

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": CLIENT_ID,
        "acks": 1,
        "linger.ms": 5,
        "batch.size": 16384,
        "queue.buffering.max.kbytes": 512,
        "throttle_cb": lambda event: throttles.append(event.throttle_time),
    })
    topic = "quota-rate"
    start = time.monotonic()
    end = start + MEASURE_S
    while time.monotonic() < end:
        try:
            producer.produce(topic, VALUE, on_delivery=on_delivery)
            producer.poll(0)
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)
    failed = list(errors)  # the purge below fails what is still queued, on purpose
    producer.purge()
    producer.flush(5)
    assert not failed, failed[:3]
    sent = sum(n for t, n in acked if t <= end)
    rate = sent / MEASURE_S
    ratio = rate / QUOTA_BYTES_PER_S
    print(f"producer rate {rate:.0f} B/s over {MEASURE_S} s against a {QUOTA_BYTES_PER_S} B/s "
          f"quota ({ratio:.3f}); {len(throttles)} throttle events, max "
          f"{max(throttles, default=0):.3f} s")
    assert throttles, "the client was never told a throttle time"
    assert abs(ratio - 1) <= TOLERANCE, f"rate {rate:.0f} B/s is not within 10% of the quota"
    print("PASS throttled producer within 10% of producer_byte_rate (confluent-kafka)")


def main():
    bootstrap = sys.argv[1]
    admin_round_trip(bootstrap)
    throttled_rate(bootstrap)


if __name__ == "__main__":
    main()
