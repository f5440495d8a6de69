#!/usr/bin/env python3
"""B15: N TLS connections each send a Fetch for a whole 20 MB partition and never read the
answer; prints the broker's RSS before, with them open, and after closing them.
Usage: slow_tls_readers.py PLAINTEXT_ADDR TLS_ADDR CA_PEM N BROKER_PID
(a broker with a PLAINTEXT and an SSL listener, e.g. listeners =
"PLAINTEXT://127.0.0.1:29097,SSL://127.0.0.1:29098" and a PEM keystore)."""
import sys, socket, ssl, time, struct, subprocess
sys.path.insert(0, __import__("os").path.dirname(__file__))
from wire import *
PLAIN, TLS, CA = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4]); pid = sys.argv[5]
TLS_HOST, TLS_PORT = TLS.rsplit(':', 1)
def rss():
    return int(open("/proc/%s/status" % pid).read().split("VmRSS:")[1].split()[0]) // 1024
t = "big20"
c = Conn(PLAIN)
for i in range(20):
    r = c.call(0, 3, produce_v3(t, 0, batch([(b"k", bytes(1000000))]))) if i else None
    if i == 0:
        c.call(3, 4, struct.pack(">i", 1) + string(t) + b"\x01"); time.sleep(1)
        r = c.call(0, 3, produce_v3(t, 0, batch([(b"k", bytes(1000000))])))
print("produced; rss %d MiB" % rss())
ctx = ssl.create_default_context(cafile=CA)
socks = []
for i in range(N):
    s = ctx.wrap_socket(socket.create_connection((TLS_HOST, int(TLS_PORT)), 10), server_hostname="127.0.0.1")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = fetch_v4(t, 0, 0, max_bytes=50 << 20, partition_max=50 << 20)
    p = struct.pack(">hhi", 1, 4, 1) + string("slow") + body
    s.sendall(struct.pack(">i", len(p)) + p)
    socks.append(s)
time.sleep(5)
print("%d TLS connections with an unread 20 MB fetch response: broker rss %d MiB" % (N, rss()))
for s in socks: s.close()
time.sleep(3)
print("after closing: rss %d MiB" % rss())
