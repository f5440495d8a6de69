"""The hand-off a linked WRITE -> FSYNC (IOSQE_IO_LINK) would save in the broker, from `perf
script` output of the io_uring_submit_req, io_uring_file_get and io_uring_complete tracepoints
(perf/acks-tail.sh records them): for every FSYNC whose file had an io_uring WRITE/WRITEV
complete since that file's previous FSYNC submission, the time from that write's completion
to the FSYNC's submission (what a link would remove), split by whether an FSYNC of the file
was still in flight when the write ended (the sync batch then chains the next fsync to it),
next to the FSYNC ops' own latency.
Also counts the FSYNCs with no such write: appends up to log.write.inline.max.bytes are a
`pwritev` on the shard thread, with no op to link to. Reads stdin (decision 0039)."""
import re
import sys

ops = {}  # req -> [submit s, opcode, fd]
last_write_done = {}  # fd -> (completion s, an FSYNC of the fd was in flight then) of its
# latest io_uring write not yet followed by an FSYNC
fsync_in_flight = {}  # fd -> FSYNC ops of the fd submitted and not completed
pending_fsync = []  # FSYNC reqs submitted whose fd is not known yet
fsyncs = linkable = 0
gaps_us = {False: [], True: []}  # by: an FSYNC of the file was in flight at the write's end
fsync_us = []


def fsync_submitted(t, fd):
    global linkable
    done = last_write_done.pop(fd, None)
    fsync_in_flight[fd] = fsync_in_flight.get(fd, 0) + 1
    if done is not None and done[0] <= t:
        linkable += 1
        gaps_us[done[1]].append((t - done[0]) * 1e6)


for line in sys.stdin:
    m = re.search(r"\s(\d+\.\d+):\s+io_uring:(\w+):(.*)", line)
    if not m:
        continue
    t, event, rest = float(m.group(1)), m.group(2), m.group(3)
    req = re.search(r"req (0x[0-9a-f]+)", rest)
    if not req:
        continue
    r = req.group(1)
    if event == "io_uring_submit_req":
        op = re.search(r"opcode (\S+)", rest)
        ops[r] = [t, op.group(1).rstrip(",") if op else "?", None]
        if ops[r][1] == "FSYNC":
            fsyncs += 1
    elif event == "io_uring_file_get" and r in ops:
        fd = re.search(r"fd (\d+)", rest)
        if fd and ops[r][2] is None:
            ops[r][2] = int(fd.group(1))
            if ops[r][1] == "FSYNC":
                fsync_submitted(ops[r][0], ops[r][2])
    elif event == "io_uring_complete" and r in ops:
        t0, name, fd = ops.pop(r)
        if name in ("WRITE", "WRITEV") and fd is not None:
            last_write_done[fd] = (t, fsync_in_flight.get(fd, 0) > 0)
        elif name == "FSYNC":
            fsync_us.append((t - t0) * 1e6)
            if fd is not None and fsync_in_flight.get(fd, 0) > 0:
                fsync_in_flight[fd] -= 1


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


print(f"FSYNC ops {fsyncs}; after an io_uring write of the same file (linkable) {linkable}")
rows = (
    ("write done -> its file's FSYNC submitted (all)", gaps_us[False] + gaps_us[True]),
    ("  of which no FSYNC of the file in flight at the write's end", gaps_us[False]),
    ("  of which an FSYNC of the file in flight (the next is chained to it)", gaps_us[True]),
    ("FSYNC op latency", fsync_us),
)
for name, xs in rows:
    if xs:
        print(f"{name}: n={len(xs)} mean={sum(xs) / len(xs):.0f} p50={pct(xs, 0.5):.0f} "
              f"p90={pct(xs, 0.9):.0f} p99={pct(xs, 0.99):.0f} us")
