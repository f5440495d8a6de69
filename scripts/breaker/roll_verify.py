"""Session 9: 8 connections producing small batches to one partition with 8 KiB segments,
then every stored CRC, offset continuity and 200 random-offset fetches checked.
  roll_verify.py HOST:PORT load TOPIC LogAppendTime|CreateTime ; roll_verify.py HOST:PORT verify TOPIC"""
import sys, struct, time, threading, random
sys.path.insert(0, __import__("os").path.dirname(__file__))
from wire import *
from confluent_kafka.admin import AdminClient, NewTopic
BS = sys.argv[1]; mode = sys.argv[2]; topic = sys.argv[3]
def verify(topic, part=0):
    c = Conn(BS); off = 0; n = 0; nb = 0; bad = 0; hw = None; ts_types = set()
    while True:
        err, hw, data = fetch_v4_parse(c.call(1, 4, fetch_v4(topic, part, off, 1 << 20, 1 << 20)))
        if err: print("fetch err", err, off); break
        o = 0; progressed = False
        while o + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, o)
            if o + 12 + length > len(data): break
            b = data[o:o + 12 + length]
            crc = struct.unpack_from(">I", b, 17)[0]
            if crc32c(b[21:]) != crc: bad += 1
            attrs, lod = struct.unpack_from(">hi", b, 21)
            ts_types.add((attrs >> 3) & 1)
            if base + lod < off: pass
            elif base > off: print("GAP", off, base); bad += 1
            off = base + lod + 1; nb += 1; progressed = True
            o += 12 + length
        if not progressed: break
    print(topic, part, "batches", nb, "next offset", off, "hw", hw, "crc/gap bad", bad, "ts types", ts_types)
    # index check: random offsets
    for _ in range(200):
        if hw is None or hw == 0: break
        t = random.randrange(hw)
        err, _, data = fetch_v4_parse(c.call(1, 4, fetch_v4(topic, part, t, 1 << 16, 1 << 16)))
        bs = batches(data)
        if err or not bs: print("seek fail", t, err); bad += 1; break
        base, _, attrs, count, _, _ = bs[0]
        lod = struct.unpack_from(">i", data, 23)[0]
        if not (base <= t <= base + lod): print("seek wrong", t, base, lod); bad += 1; break
    return bad
if mode == "load":
    adm = AdminClient({"bootstrap.servers": BS})
    cfg = {"segment.bytes": "8192", "message.timestamp.type": sys.argv[4]}
    for f in adm.create_topics([NewTopic(topic, 1, 1, config=cfg)]).values():
        try: f.result()
        except Exception as e: print(e)
    time.sleep(1)
    acked = [0]; errs = []
    def worker(w):
        c = Conn(BS)
        for i in range(300):
            recs = [(b"w%d" % w, b"v%d-%d" % (w, i) * random.randint(1, 60)) for _ in range(random.randint(1, 5))]
            r = c.call(0, 3, produce_v3(topic, 0, batch(recs), acks=1))
            e, base = produce_error(r, topic)
            if e: errs.append(e)
            else: acked[0] += len(recs)
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    [t.start() for t in ts]; [t.join() for t in ts]
    print("acked records", acked[0], "errors", set(errs))
verify(topic)
