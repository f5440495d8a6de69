"""Latency of each io_uring op per opcode, from `perf script` output of the io_uring_submit_req
and io_uring_complete tracepoints (perf/offcpu-acks.sh): submission to completion of the same
request (matched by its `req` address). Reads stdin, prints one line per opcode.

`--slowest N` (perf/acks-tail.sh) also prints the N slowest ops with their submit time in the
recording, and every 100 ms window whose longest op took over 20 ms, with the ops of each
opcode that completed in it and the most ops in flight at once."""
import collections
import re
import statistics
import sys

slowest = int(sys.argv[sys.argv.index("--slowest") + 1]) if "--slowest" in sys.argv else 0
submitted = {}
latency_ms = collections.defaultdict(list)
ops = []  # (submit s, complete s, opcode)
start = None
for line in sys.stdin:
    m = re.search(r"\s(\d+\.\d+):\s+io_uring:(\w+):(.*)", line)
    if not m:
        continue
    t, event, rest = float(m.group(1)), m.group(2), m.group(3)
    start = t if start is None else start
    req = re.search(r"req (0x[0-9a-f]+)", rest)
    if not req:
        continue
    if event == "io_uring_submit_req":
        op = re.search(r"opcode (\S+)", rest)
        submitted[req.group(1)] = (t, op.group(1).rstrip(",") if op else "?")
    elif event == "io_uring_complete" and req.group(1) in submitted:
        t0, op = submitted.pop(req.group(1))
        latency_ms[op].append((t - t0) * 1000)
        ops.append((t0 - start, t - start, op))
for op, xs in sorted(latency_ms.items(), key=lambda kv: -len(kv[1])):
    xs.sort()
    n = len(xs)
    print(f"io_uring {op:16s} n={n:6d} mean={statistics.mean(xs):7.3f} p50={xs[n // 2]:7.3f} "
          f"p90={xs[int(n * 0.9)]:7.3f} p99={xs[int(n * 0.99)]:7.3f} ms")

if slowest:
    for t0, t1, op in sorted(ops, key=lambda o: o[0] - o[1])[:slowest]:
        print(f"  slow {op:16s} {1000 * (t1 - t0):8.1f} ms, submitted at {t0:7.3f} s")
    windows = collections.defaultdict(list)
    for o in ops:
        windows[int(o[1] * 10)].append(o)
    events = sorted([(o[0], 1) for o in ops] + [(o[1], -1) for o in ops])
    for w in sorted(windows):
        worst = max(1000 * (o[1] - o[0]) for o in windows[w])
        if worst < 20:
            continue
        lo, hi = w / 10, (w + 1) / 10
        depth = peak = 0
        for t, d in events:
            if t > hi:
                break
            depth += d
            if t >= lo:
                peak = max(peak, depth)
        per = collections.Counter(o[2] for o in windows[w])
        print(f"  window {lo:5.1f}-{hi:4.1f} s: longest op {worst:6.1f} ms, completed {dict(per)}, "
              f"in flight max {peak}")
