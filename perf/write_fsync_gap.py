"""The hand-off a linked WRITE -> FSYNC (IOSQE_IO_LINK) would save in the broker, from `perf
script` output of the io_uring_submit_req and io_uring_complete tracepoints
(perf/acks-tail.sh records them): for every FSYNC submission, the time since the latest
WRITE/WRITEV completion before it (its own write completed at or before that one, so this is
a lower bound of its own hand-off), next to the FSYNC ops' own latency. Also counts how many
fsyncs had an io_uring write to link to at all: appends up to log.write.inline.max.bytes are
a `pwritev` on the shard thread, with no op. Reads stdin (decision 0039)."""
import re
import sys

submitted = {}
last_write_done = None
writes = fsyncs = 0
gaps_us = []
fsync_us = []
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
        name = op.group(1).rstrip(",") if op else "?"
        submitted[req.group(1)] = (t, name)
        if name == "FSYNC":
            fsyncs += 1
            if last_write_done is not None:
                gaps_us.append((t - last_write_done) * 1e6)
    elif event == "io_uring_complete" and req.group(1) in submitted:
        t0, name = submitted.pop(req.group(1))
        if name in ("WRITE", "WRITEV"):
            writes += 1
            last_write_done = t
        elif name == "FSYNC":
            fsync_us.append((t - t0) * 1e6)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


print(f"io_uring writes {writes}, FSYNC ops {fsyncs}")
for name, xs in (("write done -> next FSYNC submitted", gaps_us), ("FSYNC op latency", fsync_us)):
    if xs:
        print(f"{name}: n={len(xs)} mean={sum(xs) / len(xs):.0f} p50={pct(xs, 0.5):.0f} "
              f"p90={pct(xs, 0.9):.0f} p99={pct(xs, 0.99):.0f} us")
