"""Session 9, B18: a batch above a lowered max.message.bytes on a follower (cluster3.sh).
  follower_limit.py BOOTSTRAP create|produce|isr"""
import sys, time, subprocess
sys.path.insert(0, __import__("os").path.dirname(__file__))
from wire import *
from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource, ConfigEntry, AlterConfigOpType
from confluent_kafka import Consumer
BS = sys.argv[1]; step = sys.argv[2]
adm = AdminClient({"bootstrap.servers": BS})
def isr():
    md = Consumer({"bootstrap.servers": BS, "group.id": "x"}).list_topics("mm", timeout=10)
    p = md.topics["mm"].partitions[0]; return p.leader, p.replicas, p.isrs
if step == "create":
    for f in adm.create_topics([NewTopic("mm", 1, 3, config={"max.message.bytes": "3000000"})]).values(): f.result()
    time.sleep(3); print(isr())
elif step == "produce":
    leader = isr()[0]
    b = batch([(b"k", b"x" * 2000000)])
    c = Conn("127.0.0.1:%d" % (31899 + leader)); r = c.call(0, 3, produce_v3("mm", 0, b, acks=1)); print("produce", produce_error(r, "mm"))
    res = ConfigResource("topic", "mm", incremental_configs=[ConfigEntry("max.message.bytes", "1000000", incremental_operation=AlterConfigOpType.SET)])
    for f in adm.incremental_alter_configs([res]).values(): print("alter", f.result())
    print(isr())
elif step == "isr":
    print(isr())
