#!/usr/bin/env python3
"""What an fdatasync after a 128 KiB append costs on this file system, by how the segment's
blocks were prepared (issue 16, session 9): device write requests and flushes per fdatasync
(from /sys/block/<dev>/stat) and the fdatasync latency.

Modes (each a fresh file of SIZE_MIB under DIR, N appends of BS bytes, fdatasync after each):
  none    append past the end (the broker's segments today): blocks allocated at writeback
  keep    fallocate(KEEP_SIZE) of the whole file first: unwritten extents, the size grows
  native  fallocate(0): unwritten extents, the size already SIZE (Kafka's log.preallocate)
  zeroed  the whole file written with zeros and fdatasynced first: appends are overwrites
  ahead   zeros written (and fdatasynced with the next append) AHEAD_MIB ahead of the append
          position, as a background zero-ahead would; the size grows with the zeros
  keepahead  fallocate(KEEP_SIZE) of AHEAD_MIB ahead of the append position, in steps (the
          size grows with the appends; the extents stay long)

Usage: perf/prealloc_fsync.py [DIR] ; env N, BS, SIZE_MIB, AHEAD_MIB, FILES, MODES, DEV.
FILES > 1 appends to FILES files in turn (the broker's 16 partitions), one fdatasync each.
"""
import os, sys, time

DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp/prealloc-fsync"
N = int(os.environ.get("N", "400"))
BS = int(os.environ.get("BS", str(128 * 1024)))
SIZE = int(os.environ.get("SIZE_MIB", "256")) * 1024 * 1024
AHEAD = int(os.environ.get("AHEAD_MIB", "4")) * 1024 * 1024
FILES = int(os.environ.get("FILES", "1"))
MODES = os.environ.get("MODES", "none keep native zeroed ahead").split()
DEV = os.environ.get("DEV", "vda")
FALLOC_FL_KEEP_SIZE = 1


def disk():
    f = open(f"/sys/block/{DEV}/stat").read().split()
    # write I/Os, write sectors, flush I/Os
    return int(f[4]), int(f[6]), int(f[15]) if len(f) > 15 else 0


def fallocate(fd, mode, off, length):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if libc.fallocate(fd, mode, off, length) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")


def prepare(mode, path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if mode == "keep":
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, SIZE)
    elif mode == "native":
        fallocate(fd, 0, 0, SIZE)
    elif mode == "zeroed":
        z = bytes(4 << 20)
        for off in range(0, SIZE, len(z)):
            os.pwrite(fd, z, off)
    os.fdatasync(fd)
    return fd


def run(mode):
    os.makedirs(DIR, exist_ok=True)
    fds = [prepare(mode, f"{DIR}/{mode}-{i}.log") for i in range(FILES)]
    ahead = [0] * FILES
    zeros = bytes(AHEAD)
    buf = os.urandom(BS)
    lat = []
    pos = [0] * FILES
    w0, s0, f0 = disk()
    for i in range(N):
        k = i % FILES
        fd = fds[k]
        if mode == "ahead" and pos[k] + BS > ahead[k] - AHEAD // 2:
            os.pwrite(fd, zeros, ahead[k])  # stands in for the background zero-ahead
            ahead[k] += AHEAD
        if mode == "keepahead" and pos[k] + BS > ahead[k] - AHEAD // 2:
            fallocate(fd, FALLOC_FL_KEEP_SIZE, ahead[k], AHEAD)
            ahead[k] += AHEAD
        os.pwrite(fd, buf, pos[k])
        pos[k] += BS
        t = time.perf_counter()
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
    w1, s1, f1 = disk()
    for fd in fds:
        os.close(fd)
    for i in range(FILES):
        os.unlink(f"{DIR}/{mode}-{i}.log")
    lat.sort()
    ms = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3
    print(f"{mode:7s} files={FILES} n={N} bs={BS // 1024}KiB  write_ios/fsync={(w1 - w0) / N:5.2f}  "
          f"KiB/fsync={(s1 - s0) / 2 / N:7.1f}  flushes/fsync={(f1 - f0) / N:4.2f}  "
          f"fdatasync ms mean={sum(lat) / len(lat) * 1e3:6.2f} p50={ms(0.5):6.2f} p99={ms(0.99):6.2f}",
          flush=True)


for m in MODES:
    run(m)
