"""Session 9: confluent-kafka producers (each codec, idempotent or not, transactions) to
LogAppendTime / CreateTime topics, then read back with check.crcs=true.
  client_codecs.py HOST:PORT produce [N] ; client_codecs.py HOST:PORT read"""
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
BS = sys.argv[1]; mode = sys.argv[2]
adm = AdminClient({"bootstrap.servers": BS})
def create(name, parts, cfg={}):
    for f in adm.create_topics([NewTopic(name, parts, 1, config=cfg)]).values():
        try: f.result()
        except Exception as e: print("create", name, e)
N = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
topics = {"lat-none": ("none", {"message.timestamp.type": "LogAppendTime"}),
          "lat-zstd": ("zstd", {"message.timestamp.type": "LogAppendTime"}),
          "lat-gzip": ("gzip", {"message.timestamp.type": "LogAppendTime", "segment.bytes": "1048576"}),
          "ct-lz4": ("lz4", {"segment.bytes": "1048576"}),
          "ct-snappy": ("snappy", {})}
if mode == "produce":
    for t, (codec, cfg) in topics.items():
        create(t, 3, cfg)
    time.sleep(1)
    for t, (codec, cfg) in topics.items():
        for idem in (True, False):
            p = Producer({"bootstrap.servers": BS, "compression.type": codec, "enable.idempotence": idem, "linger.ms": 5, "batch.num.messages": 50 if idem else 10000})
            acked = [0]
            def cb(err, msg):
                if err: print("ERR", err)
                else: acked[0] += 1
            for i in range(N):
                p.produce(t, key=b"%d" % i, value=(b"%s-%d-%d-" % (t.encode(), idem, i)) * (1 + i % 7), on_delivery=cb)
                if i % 1000 == 0: p.poll(0)
            p.flush()
            print(t, "idem", idem, "acked", acked[0])
    # transactional
    p = Producer({"bootstrap.servers": BS, "transactional.id": "brk-tx", "compression.type": "zstd"})
    p.init_transactions()
    for k in range(5):
        p.begin_transaction()
        for i in range(500): p.produce("lat-zstd", key=b"tx", value=b"tx-%d-%d" % (k, i))
        if k % 2: p.abort_transaction()
        else: p.commit_transaction()
    print("txn done")
elif mode == "read":
    for iso in ("read_uncommitted", "read_committed"):
        for t, (codec, cfg) in topics.items():
            c = Consumer({"bootstrap.servers": BS, "group.id": "g-%s-%f" % (t, time.time()), "auto.offset.reset": "earliest", "check.crcs": True, "enable.auto.commit": False, "isolation.level": iso})
            md = c.list_topics(t).topics[t]
            c.assign([TopicPartition(t, p, 0) for p in md.partitions])
            n = 0; errs = 0; lat = set(); ts_types = set(); last = time.time(); bad = 0
            expect_lat = "LogAppendTime" in cfg.get("message.timestamp.type", "")
            while time.time() - last < 5:
                m = c.poll(0.5)
                if m is None: continue
                if m.error(): errs += 1; print("ERR", m.error()); continue
                last = time.time(); n += 1
                tt, ts = m.timestamp(); ts_types.add(tt)
                v = m.value()
                if not v.startswith(b"tx") and not v.startswith(t.encode()): bad += 1
            c.close()
            print(iso, t, "read", n, "errors", errs, "bad", bad, "ts types", ts_types)
