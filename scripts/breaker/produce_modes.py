"""Session 9 breaker probes of Produce, one mode per run (raw wire, scripts/breaker/wire.py):
  produce_modes.py HOST:PORT MODE [N]
modes: many corrupt repeat bigseg mixed latbit seqneg cluster acks0 flood dup alter codec baseoff
       magic zstdv3 bigcommit timeouts. Prints what the broker answered; docs/breaker-findings.md
("Session 9") says what Kafka answers."""
import sys, struct, time, zlib
sys.path.insert(0, __import__("os").path.dirname(__file__))
from wire import *
from confluent_kafka.admin import AdminClient, NewTopic
BS = sys.argv[1]
adm = AdminClient({"bootstrap.servers": BS})
def create(name, parts, cfg={}):
    fs = adm.create_topics([NewTopic(name, parts, 1, config=cfg)])
    for f in fs.values():
        try: f.result()
        except Exception as e: print("create", name, e)

def produce_multi(entries, acks=-1, txn=None):
    """entries: list of (topic, [(partition, records_bytes)])"""
    body = string(txn) + struct.pack(">hi", acks, 30000) + struct.pack(">i", len(entries))
    for t, parts in entries:
        body += string(t) + struct.pack(">i", len(parts))
        for p, r in parts:
            body += struct.pack(">i", p) + nbytes(r)
    return body

def parse_produce_v3(resp):
    o = 0; out = []
    n = struct.unpack_from(">i", resp, o)[0]; o += 4
    for _ in range(n):
        tl = struct.unpack_from(">h", resp, o)[0]; o += 2
        t = resp[o:o+tl].decode(); o += tl
        pn = struct.unpack_from(">i", resp, o)[0]; o += 4
        for _ in range(pn):
            p, err, base, lat = struct.unpack_from(">ihqq", resp, o); o += 4+2+8+8
            out.append((t, p, err, base, lat))
    return out

mode = sys.argv[2]
c = Conn(BS)
if mode == "many":
    create("many", 600)
    time.sleep(1)
    ents = [("many", [(p, batch([(b"k%d" % p, b"v%d" % p)])) for p in range(600)])]
    r = parse_produce_v3(c.call(0, 3, produce_multi(ents)))
    print(len(r), set(e[2] for e in r), r[:3])
elif mode == "corrupt":
    create("corr", 4)
    time.sleep(1)
    bs = [batch([(b"k", b"v%d" % p)]) for p in range(4)]
    bad = bytearray(bs[2]); bad[-1] ^= 0xff; bs[2] = bytes(bad)
    ents = [("corr", [(p, bs[p]) for p in range(4)])]
    print(parse_produce_v3(c.call(0, 3, produce_multi(ents))))
    for p in range(4):
        print(p, fetch_v4_parse(c.call(1, 4, fetch_v4("corr", p, 0)))[:2])
elif mode == "repeat":
    create("rep", 2)
    time.sleep(1)
    ents = [("rep", [(0, batch([(b"a", b"%d" % i)])) for i in range(3000)]), ("rep", [(1, batch([(b"b", b"x")]))]), ("nope", [(0, batch([(b"c", b"y")]))]), ("rep", [(0, batch([(b"a", b"last")]))])]
    print(parse_produce_v3(c.call(0, 3, produce_multi(ents))))
    for p in range(2):
        err, hw, data = fetch_v4_parse(c.call(1, 4, fetch_v4("rep", p, 0)))
        print(p, err, hw, batches(data))
if mode == "bigseg":
    create("bigseg", 1, {"segment.bytes": "1048576", "max.message.bytes": "3000000"})
    time.sleep(1)
    for size in [1048576 - 200, 1048576 + 1000, 2500000]:
        b = batch([(b"k", b"x" * size)])
        print(size, len(b), parse_produce_v3(c.call(0, 3, produce_multi([("bigseg", [(0, b)])]))))
    err, hw, data = fetch_v4_parse(c.call(1, 4, fetch_v4("bigseg", 0, 0, 10<<20, 10<<20)))
    print(err, hw, [(x[0], x[3]) for x in batches(data)])
if mode == "mixed":
    create("mixA", 6); create("mixB", 3)
    time.sleep(1)
    good = lambda v: batch([(b"k", v)])
    bad = bytearray(good(b"bad")); bad[-1] ^= 1; bad = bytes(bad)
    two = good(b"a") + good(b"b")
    ents = [("mixA", [(5, good(b"a5")), (0, good(b"a0")), (99, good(b"x")), (3, bad), (1, two), (-1, good(b"n"))]),
            ("nope", [(0, good(b"x")), (1, good(b"y"))]),
            ("__consumer_offsets", [(0, good(b"x"))]),
            ("mixB", [(2, good(b"b2")), (0, None), (1, good(b"b1"))]),
            ("", [(0, good(b"e"))]),
            ("mixA", [(4, good(b"a4"))])]
    for r in parse_produce_v3(c.call(0, 3, produce_multi(ents))): print(r)
if mode == "latbit":
    create("latbit-lat", 1, {"message.timestamp.type": "LogAppendTime"}); create("latbit-ct", 1)
    time.sleep(1)
    for t in ("latbit-lat", "latbit-ct"):
        r = c.call(0, 3, produce_v3(t, 0, batch([(b"k", b"v"), (b"k2", b"v2")], ts=1000, max_ts=5000, attributes=8), acks=1))
        print(t, produce_error(r, t))
        err, hw, data = fetch_v4_parse(c.call(1, 4, fetch_v4(t, 0, 0)))
        print(" stored:", batches(data))
if mode == "seqneg":
    create("seqneg", 1)
    time.sleep(1)
    for pid, ep, seq in [(5, 0, -1), (5, -1, 0), (-1, 0, 3), (-1, -1, 7)]:
        r = c.call(0, 3, produce_v3("seqneg", 0, batch([(b"k", b"v")], pid=pid, epoch=ep, seq=seq), acks=1))
        print(pid, ep, seq, produce_error(r, "seqneg"))
if mode == "cluster":
    adm2 = AdminClient({"bootstrap.servers": BS})
    for f in adm2.create_topics([NewTopic("cl6", 6, 1), NewTopic("cl3r", 3, 3)]).values():
        try: f.result()
        except Exception as e: print(e)
    time.sleep(4)
    from confluent_kafka import Consumer
    md = Consumer({"bootstrap.servers": BS, "group.id": "x"}).list_topics(timeout=10)
    for t in ("cl6", "cl3r"):
        print(t, {p: pm.leader for p, pm in md.topics[t].partitions.items()})
    good = lambda v: batch([(b"k", v)])
    bad = bytearray(good(b"bad")); bad[-1] ^= 1; bad = bytes(bad)
    ents = [("cl6", [(p, good(b"x%d" % p)) for p in (5, 0, 3, 1, 4, 2)] + [(9, good(b"z"))]),
            ("nope", [(0, good(b"q"))]),
            ("cl3r", [(2, bad), (0, good(b"r0")), (1, good(b"r1"))])]
    for r in parse_produce_v3(c.call(0, 3, produce_multi(ents, acks=-1))): print(r)
if mode == "acks0":
    create("acks0", 2)
    time.sleep(1)
    good = batch([(b"k", b"v")])
    bad = bytearray(good); bad[-1] ^= 1; bad = bytes(bad)
    for name, ents in [("good", [("acks0", [(0, good)])]), ("corrupt", [("acks0", [(0, bad)])]), ("unknown topic", [("nope0", [(0, good)])]), ("unknown partition", [("acks0", [(7, good)])])]:
        cc = Conn(BS, timeout=3)
        cc.send(0, 3, produce_multi(ents, acks=0))
        time.sleep(0.5)
        r = cc.call(18, 0, b"")   # ApiVersions v0
        print(name, "connection after acks=0:", "open" if r is not None else "closed")
if mode == "flood":
    good = batch([(b"k", b"v")])
    n = int(sys.argv[3])
    for name, ents in [("unknown", [("nope-flood", [(i, good) for i in range(n)])]),
                       ("repeat", [("many", [(i % 600, good) for i in range(n)])]),
                       ("topics", [("t%d" % i, [(0, good)]) for i in range(n // 10)])]:
        body = produce_multi(ents, acks=1)
        t0 = time.time(); r = c.call(0, 3, body); dt = time.time() - t0
        res = parse_produce_v3(r) if r else None
        print(name, "request bytes", len(body), "answers", len(res) if res else r, "errors", set(x[2] for x in res) if res else None, "%.2fs" % dt)
if mode == "dup":
    create("dup-lat", 1, {"message.timestamp.type": "LogAppendTime"})
    time.sleep(1)
    # InitProducerId v1: transactional_id null, timeout
    r = c.call(22, 1, string(None) + struct.pack(">i", 60000))
    _thr, err, pid, ep = struct.unpack_from(">ihqh", r, 0)
    b = batch([(b"k", b"v")], pid=pid, epoch=ep, seq=0)
    for i in range(2):
        r = c.call(0, 3, produce_v3("dup-lat", 0, b, acks=1))
        print(parse_produce_v3(r))
        time.sleep(1.2)
if mode == "alter":
    from confluent_kafka.admin import ConfigResource, ConfigEntry, AlterConfigOpType
    create("alt", 1)
    time.sleep(1)
    def prod(v):
        r = c.call(0, 3, produce_v3("alt", 0, batch([(b"k", v)], ts=1000), acks=1)); return produce_error(r, "alt")
    print("before", prod(b"a"))
    res = ConfigResource("topic", "alt", incremental_configs=[ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET), ConfigEntry("segment.bytes", "100", incremental_operation=AlterConfigOpType.SET)])
    for f in adm.incremental_alter_configs([res]).values(): print("alter", f.result())
    time.sleep(0.5)
    print("after small", prod(b"b"))
    print("after big", prod(b"c" * 200))
    err, hw, data = fetch_v4_parse(c.call(1, 4, fetch_v4("alt", 0, 0)))
    print([ (b[0], b[2], b[5]) for b in batches(data)])
if mode == "timeouts":
    create("tmo", 1)
    time.sleep(1)
    for t in (0, -1, -2147483648, 2147483647):
        body = string(None) + struct.pack(">hi", -1, t) + struct.pack(">i", 1) + string("tmo") + struct.pack(">ii", 1, 0) + nbytes(batch([(b"k", b"v")]))
        t0 = time.time(); r = c.call(0, 3, body)
        print(t, parse_produce_v3(r) if r else "closed", "%.2fs" % (time.time() - t0))
if mode == "codec":
    create("codec-z", 1, {"compression.type": "zstd", "max.message.bytes": "100000"})
    create("codec-p", 1, {"max.message.bytes": "100000"})
    time.sleep(1)
    big = batch([(b"k", b"a" * 150000)])
    for t in ("codec-z", "codec-p"):
        r = c.call(0, 3, produce_v3(t, 0, big, acks=1)); print(t, len(big), produce_error(r, t))
        err, hw, data = fetch_v4_parse(c.call(1, 4, fetch_v4(t, 0, 0)))
        print(" stored", [(b[0], b[2], len(data)) for b in batches(data)])
if mode == "bigcommit":
    n = int(sys.argv[3])
    create("bc", n)
    time.sleep(2)
    body = string("bigcommit-g") + struct.pack(">i", -1) + string("") + struct.pack(">q", -1) + struct.pack(">i", 1) + string("bc") + struct.pack(">i", n)
    for p in range(n):
        body += struct.pack(">iq", p, 5) + string("m" * 4000)
    t0 = time.time(); r = c.call(8, 2, body)
    o = 4; tl = struct.unpack_from(">h", r, o)[0]; o += 2 + tl; pn = struct.unpack_from(">i", r, o)[0]; o += 4
    errs = {}
    for _ in range(pn):
        p, e = struct.unpack_from(">ih", r, o); o += 6; errs[e] = errs.get(e, 0) + 1
    print("commit of", n, "partitions:", errs, "%.1fs" % (time.time() - t0))
if mode == "baseoff":
    create("baseoff", 1)
    time.sleep(1)
    for bo in (0, 5, -1):
        r = c.call(0, 3, produce_v3("baseoff", 0, batch([(b"k", b"v")], base_offset=bo), acks=1)); print(bo, produce_error(r, "baseoff"))
if mode == "zstdv3":
    create("zv", 1)
    time.sleep(1)
    for v in (3, 6, 7):
        r = c.call(0, v, produce_v3("zv", 0, batch([(b"k", b"v")], attributes=4), acks=1)); print(v, produce_error(r, "zv"))
if mode == "magic":
    create("mg", 1)
    time.sleep(1)
    for m in (0, 1, 3):
        r = c.call(0, 3, produce_v3("mg", 0, batch([(b"k", b"v")], magic=m), acks=1)); print(m, produce_error(r, "mg"))
