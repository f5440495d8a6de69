#!/usr/bin/env python3
"""Produce/Fetch probes with raw requests: timestamp limits, LogAppendTime, max.message.bytes,
magic 0/1/3 batches, odd base offsets and timestamps, empty batches, fetch max_bytes 0/1; each
line prints Sluice's answer and Kafka's. Usage: produce_probes.py HOST:PORT"""
import sys, time, struct
sys.path.insert(0, __import__("os").path.dirname(__file__))
from wire import *
from confluent_kafka.admin import AdminClient, NewTopic
A = sys.argv[1]
adm = AdminClient({"bootstrap.servers": A})
sfx = str(int(time.time()))
tops = {
 "ts-after-"+sfx: {"message.timestamp.after.max.ms": "60000", "message.timestamp.before.max.ms": "60000"},
 "lat-"+sfx: {"message.timestamp.type": "LogAppendTime"},
 "small-"+sfx: {"max.message.bytes": "200"},
 "plain-"+sfx: {},
}
fs = adm.create_topics([NewTopic(t, 1, 1, config=c) for t, c in tops.items()])
for t, f in fs.items(): f.result()
time.sleep(0.5)
c = Conn(A)
now = int(time.time()*1000)
t = "ts-after-"+sfx
print("P1 ts +1h:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], ts=now+3600_000))), t), "(Kafka: 32 INVALID_TIMESTAMP)")
print("P1 ts -1h:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], ts=now-3600_000))), t), "(Kafka: 32)")
print("P1 ts now:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], ts=now))), t))
t = "lat-"+sfx
r = c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], ts=12345)))
err, base = produce_error(r, t)
lat = struct.unpack_from(">q", r, 4+2+len(t)+4+4+2+8)[0]
print("P2 LogAppendTime produce:", err, base, "log_append_time", lat)
e, hw, data = fetch_v4_parse(c.call(1, 4, fetch_v4(t, 0, 0)))
print("P2 fetch:", e, hw, batches(data), "(Kafka: attrs bit 3 set, max ts = broker time)")
t = "small-"+sfx
print("P3 400B value to max.message.bytes=200:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v"*400)]))), t), "(Kafka: 10 MESSAGE_TOO_LARGE)")
t = "plain-"+sfx
print("P4 magic 1 batch:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], magic=1))), t), "(Kafka: 87 INVALID_RECORD or 2 CORRUPT)")
print("P4b magic 0 batch:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], magic=0))), t))
print("P4c magic 3 batch:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], magic=3))), t))
print("P4d base_offset 77:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], base_offset=77))), t))
print("P4e ts -5:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], ts=-5))), t), "(Kafka: INVALID_TIMESTAMP? )")
print("P4f ts -1:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], ts=-1))), t))
print("P4g max_ts < first ts:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v")], ts=now, max_ts=now-1000))), t))
print("P4h 0 records:", produce_error(c.call(0, 3, produce_v3(t, 0, batch([])))  , t) if True else None)
for mb in (0, 1):
    e, hw, data = fetch_v4_parse(c.call(1, 4, fetch_v4(t, 0, 0, max_bytes=mb, partition_max=mb)))
    print("P6 fetch max_bytes=%d:" % mb, e, hw, batches(data), len(data), "(Kafka: first batch anyway)")
