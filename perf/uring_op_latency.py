"""Latency of each io_uring op per opcode, from `perf script` output of the io_uring_submit_req
and io_uring_complete tracepoints (perf/offcpu-acks.sh): submission to completion of the same
request (matched by its `req` address). Reads stdin, prints one line per opcode."""
import collections
import re
import statistics
import sys

submitted = {}
latency_ms = collections.defaultdict(list)
for line in sys.stdin:
    m = re.search(r"\s(\d+\.\d+):\s+io_uring:(\w+):(.*)", line)
    if not m:
        continue
    t, event, rest = float(m.group(1)), m.group(2), m.group(3)
    req = re.search(r"req (0x[0-9a-f]+)", rest)
    if not req:
        continue
    if event == "io_uring_submit_req":
        op = re.search(r"opcode (\S+)", rest)
        submitted[req.group(1)] = (t, op.group(1).rstrip(",") if op else "?")
    elif event == "io_uring_complete" and req.group(1) in submitted:
        t0, op = submitted.pop(req.group(1))
        latency_ms[op].append((t - t0) * 1000)
for op, xs in sorted(latency_ms.items(), key=lambda kv: -len(kv[1])):
    xs.sort()
    n = len(xs)
    print(f"io_uring {op:16s} n={n:6d} mean={statistics.mean(xs):7.3f} p50={xs[n // 2]:7.3f} "
          f"p90={xs[int(n * 0.9)]:7.3f} p99={xs[int(n * 0.99)]:7.3f} ms")
