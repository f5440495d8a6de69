#!/usr/bin/env python3
"""B14: DeleteRecords before offset 5 on topics with cleanup.policy compact, compact,delete and
delete (10 keyed records each). Kafka: the compact one fails with POLICY_VIOLATION.
Usage: delete_records_policy.py HOST:PORT"""
import sys, time
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
A = sys.argv[1]
adm = AdminClient({"bootstrap.servers": A})
for pol in ("compact", "compact,delete", "delete"):
    t = "dr-%s-%d" % (pol.replace(",", "-"), int(time.time()))
    adm.create_topics([NewTopic(t, 1, 1, config={"cleanup.policy": pol})])[t].result()
    time.sleep(0.5)
    p = Producer({"bootstrap.servers": A})
    for i in range(10): p.produce(t, key=b"k%d" % i, value=b"v")
    p.flush()
    f = adm.delete_records([TopicPartition(t, 0, 5)])
    for k, fut in f.items():
        try: print(pol, "delete_records ->", fut.result())
        except Exception as e: print(pol, "delete_records ->", e)
