#!/usr/bin/env python3
"""Stop and start time of a broker holding many idle partitions (issue 8 item 11).

usage: perf/partitions_stop_start.py SLUICE_BINARY [PARTITIONS=10000] [CORES=2] [DATA_PARENT=target]
                                     [DIRTY=0]

Starts the broker on a fresh data dir, creates one topic of PARTITIONS partitions (CreateTopics
v2, nothing produced, no client connected), then measures: the first SIGTERM -> exit, a restart
-> `ready`, and a second SIGTERM -> exit. DIRTY=1 first produces one record (acks=1) to every
partition, so the first stop must flush and checkpoint all of them. Pure Python 3. The broker raises its own soft
RLIMIT_NOFILE to the hard limit; each open partition holds 3 fds, so this script first raises
the hard limit to 3 * PARTITIONS + 4096 when it runs as root (else the broker may run out)."""
import os, resource, shutil, signal, socket, struct, subprocess, sys, tempfile, time

binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
cores = sys.argv[3] if len(sys.argv) > 3 else "2"
parent = sys.argv[4] if len(sys.argv) > 4 else "target"
dirty = len(sys.argv) > 5 and sys.argv[5] == "1"
need = 3 * n + 4096
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard < need:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
    except (ValueError, OSError) as e:
        print("cannot raise the fd limit to %d (%s); the broker may fail" % (need, e))
else:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
os.makedirs(parent, exist_ok=True)
d = tempfile.mkdtemp(prefix="partitions-bench-", dir=parent)
s0 = socket.socket(); s0.bind(("127.0.0.1", 0)); port = s0.getsockname()[1]; s0.close()
addr = "127.0.0.1:%d" % port
logp = os.path.join(d, "broker.log")
open(logp, "w").close()

def ready_count():
    with open(logp, "rb") as f:
        return f.read().count(b"ready listening=")

def start():
    k = ready_count()
    p = subprocess.Popen([binary, "--listen", addr, "--advertise", addr, "--data-dir",
                          os.path.join(d, "data"), "--admin-listen", "127.0.0.1:0", "--cores", cores],
                         stdout=open(logp, "ab"), stderr=subprocess.STDOUT)
    t0 = time.time()
    while ready_count() == k:
        if p.poll() is not None or time.time() - t0 > 600:
            sys.exit("broker did not start; log in " + logp)
        time.sleep(0.01)
    return p, time.time() - t0

def stop(p):
    t0 = time.time(); p.send_signal(signal.SIGTERM)
    rc = p.wait(600)
    return rc, time.time() - t0

def call(data):
    s = socket.create_connection(("127.0.0.1", port), 600); s.settimeout(600); s.sendall(data)
    b = b""
    while len(b) < 4 or len(b) < 4 + struct.unpack(">i", b[:4])[0]:
        c = s.recv(65536)
        if not c: break
        b += c
    s.close(); return b

p, first_start = start()
name = b"many"
body = (struct.pack(">i", 1) + struct.pack(">h", len(name)) + name + struct.pack(">ihii", n, 1, 0, 0)
        + struct.pack(">ib", 600000, 0))
hdr = struct.pack(">hhih", 19, 2, 1, 5) + b"bench"
t0 = time.time(); resp = call(struct.pack(">i", len(hdr + body)) + hdr + body); create_s = time.time() - t0
err = struct.unpack_from(">h", resp, 4 + 4 + 4 + 4 + 2 + len(name))[0]
if err != 0:
    sys.exit("CreateTopics failed with error %d" % err)
_T = []
for i in range(256):
    c = i
    for _ in range(8): c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _T.append(c)
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b: c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
def batch(v):
    body = b"\x00\x00\x00\x01" + bytes([len(v) * 2]) + v + b"\x00"
    recs = bytes([len(body) * 2]) + body
    ts = int(time.time() * 1000)
    after = struct.pack(">hiqqqhii", 0, 0, ts, ts, -1, -1, -1, 1) + recs
    rest = struct.pack(">ibI", -1, 2, crc32c(after)) + after
    return struct.pack(">qi", 0, len(rest)) + rest
produce_s = 0.0
if dirty:
    recs = batch(b"x" * 100)
    parts = b"".join(struct.pack(">ii", i, len(recs)) + recs for i in range(n))
    body = (struct.pack(">hhi", -1, 1, 60000) + struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
            + struct.pack(">i", n) + parts)
    hdr = struct.pack(">hhih", 0, 3, 2, 5) + b"bench"
    t0 = time.time(); call(struct.pack(">i", len(hdr + body)) + hdr + body); produce_s = time.time() - t0
rc1, stop1 = stop(p)
p, start2 = start()
rc2, stop2 = stop(p)
with open(logp, errors="replace") as f:
    closes = [l.split("logs closed")[1].strip() for l in f if "logs closed" in l]
shutil.rmtree(d, ignore_errors=True)
print("per-shard closes (first stop, then second):", closes)
print("partitions=%d cores=%s dirty=%d produce=%.2fs create=%.2fs first_stop=%.2fs(rc=%s) restart_to_ready=%.2fs second_stop=%.2fs(rc=%s)"
      % (n, cores, dirty, produce_s, create_s, stop1, rc1, start2, stop2, rc2))
