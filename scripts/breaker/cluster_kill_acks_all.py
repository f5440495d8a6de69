#!/usr/bin/env python3
"""Cluster faults under an idempotent acks=all producer (RF=3, min.insync.replicas=2).
Usage: cluster_kill_acks_all.py N MODE BIN ROOT   with a cluster started by
`scripts/breaker/cluster3.sh BIN ROOT 29100 > ROOT/pids` (clients on 29100-29102).
MODE one: kill -9 the leader of partition 0 at N/4 and again at 5N/8, restart at N/2 and 3N/4;
two: kill the leader, then the new leader, restart both at 2N/3; all: kill -9 all three at
N/2 and restart them. Then reads everything back: every acked value at its offset, no
duplicates (exit 0), else exit 1.
"""
"""acks=all idempotent producer over RF=3 min.insync=2; kill -9 the partition leader(s) mid-run,
restart it, then read everything back and check every acked value once, in order per partition."""
import sys, time, subprocess, os, signal, json, threading
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
BOOT = "127.0.0.1:29100,127.0.0.1:29101,127.0.0.1:29102"
pids = [int(x) for x in open(sys.argv[4] + "/pids").read().split()]
BIN, ROOT = sys.argv[3], sys.argv[4]
topic = "ka-%d" % int(time.time())
adm = AdminClient({"bootstrap.servers": BOOT})
adm.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[topic].result()
time.sleep(2)
acked, errs = {}, []
def cb(err, msg):
    if err: errs.append(str(err))
    else: acked.setdefault(msg.partition(), []).append((msg.offset(), msg.value()))
p = Producer({"bootstrap.servers": BOOT, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
              "message.timeout.ms": 120000})
def leader_of(part):
    for _ in range(10):
        try:
            md = adm.list_topics(topic, timeout=10)
            return md.topics[topic].partitions[part].leader
        except Exception as e:
            print("list_topics:", e, flush=True)
    raise SystemExit("no metadata")
def alive(b):
    try:
        st = open("/proc/%d/stat" % pids[b - 1]).read()
    except FileNotFoundError:
        return False
    return st.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
def restart_dead():
    for b in range(1, 4):
        if not alive(b):
            d = "%s/broker-%d" % (ROOT, b)
            pr = subprocess.Popen([BIN, "--config", d + "/sluice.toml"], stdout=open(d + "/sluice.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)
            pids[b - 1] = pr.pid
            print("restarted broker", b, "pid", pr.pid, flush=True)
    open(ROOT + "/pids", "w").write(" ".join(map(str, pids)))
MODE = sys.argv[2]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
kills = 0
t0 = time.time()
for i in range(N):
    while True:
        try:
            p.produce(topic, value=b"%08d" % i, key=b"%d" % (i % 7), on_delivery=cb); break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if i % 200 == 0: time.sleep(0.05)
    if MODE == "all" and i == N // 2:
        for b in range(1, 4):
            os.kill(pids[b - 1], signal.SIGKILL)
        print("killed all at", i, flush=True)
        while any(alive(b) for b in range(1, 4)): time.sleep(0.1)
        restart_dead()
    if MODE == "two" and i == N // 3:
        ld = leader_of(0)
        os.kill(pids[ld - 1], signal.SIGKILL); print("killed", ld, flush=True)
        t1 = time.time()
        while True:
            l2 = leader_of(0)
            if l2 > 0 and l2 != ld: break
            time.sleep(0.2)
        print("new leader", l2, "after %.1fs" % (time.time() - t1), flush=True)
        os.kill(pids[l2 - 1], signal.SIGKILL); print("killed", l2, flush=True)
    if MODE == "two" and i == 2 * N // 3:
        restart_dead()
    if MODE == "one" and i in (N // 4, 5 * N // 8):
        dead = [b for b in range(1, 4) if not alive(b)]
        ld = leader_of(0)
        while ld in dead or ld < 0:
            time.sleep(0.5); ld = leader_of(0)
        os.kill(pids[ld - 1], signal.SIGKILL)
        print("killed broker", ld, "at", i, flush=True)
    if MODE == "one" and i in (N // 2, 3 * N // 4):
        restart_dead()
left = p.flush(180)
print("produced in %.1fs, unflushed %d, errors %d %s" % (time.time() - t0, left, len(errs), errs[:3]))
total = sum(len(v) for v in acked.values())
print("acked", total)
c = Consumer({"bootstrap.servers": BOOT, "group.id": "chk-" + topic, "auto.offset.reset": "earliest", "enable.auto.commit": False})
got = {}
c.assign([TopicPartition(topic, q, 0) for q in range(3)])
deadline = time.time() + 120
n = 0
while time.time() < deadline and n < total:
    m = c.poll(1.0)
    if m is None or m.error():
        if m is not None: print("consume err", m.error())
        continue
    got.setdefault(m.partition(), []).append((m.offset(), m.value())); n += 1
c.close()
bad = 0
for q, lst in acked.items():
    g = dict(got.get(q, []))
    for off, v in lst:
        if g.get(off) != v:
            bad += 1
            if bad < 5: print("partition", q, "acked offset", off, v, "read", g.get(off))
allv = [v for lst in got.values() for _, v in lst]
dups = len(allv) - len(set(allv))
print("read %d, acked-but-missing-or-different %d, duplicates %d" % (n, bad, dups))
sys.exit(1 if bad or dups else 0)
