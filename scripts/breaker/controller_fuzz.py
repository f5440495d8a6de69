#!/usr/bin/env python3
"""Sends random frames of the controller listener's own protocol (length u32, version 0, kind,
postcard payload; src/cluster/quorum/network.rs) to one controller, one frame per connection.

Usage: controller_fuzz.py HOST:PORT KINDS COUNT [SEED] [--save FILE] [--replay FILE]
KINDS: comma-separated frame kinds (1 AppendEntries, 2 Vote, 3 PreVote, 4 FullSnapshot,
5..12 broker lifecycle RPCs). With --save, each frame sent is written as one hex line; with
--replay, the frames of FILE are sent instead (all, or the 1-based line range START:END).
Prints how each kind was answered. Deterministic for a seed.
"""
import random
import socket
import struct
import sys


def frames(kinds, count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        kind = rng.choice(kinds)
        length = rng.choice([0, 1, 2, 3, 5, 8, 13, 20, 40, 100, 300])
        payload = bytes(rng.choice([0, 1, 2, 0x7F, 0x80, 0xFF, rng.randrange(256)])
                        for _ in range(length))
        yield bytes([0, kind]) + payload


def send(addr, body):
    try:
        s = socket.create_connection(addr, timeout=2)
        s.sendall(struct.pack(">I", len(body)) + body)
        s.settimeout(1.0)
        try:
            answer = "data" if s.recv(4096) else "closed"
        except socket.timeout:
            answer = "timeout"
        except ConnectionResetError:
            answer = "reset"
        s.close()
        return answer
    except OSError as e:
        return "error:" + type(e).__name__


def main():
    args = [a for a in sys.argv[1:]]
    save = replay = None
    if "--save" in args:
        i = args.index("--save"); save = args[i + 1]; del args[i:i + 2]
    if "--replay" in args:
        i = args.index("--replay"); replay = args[i + 1]; del args[i:i + 2]
    host, port = args[0].rsplit(":", 1)
    addr = (host, int(port))
    if replay:
        path, _, span = replay.partition("@")
        lines = open(path).read().split()
        if span:
            start, end = (int(x) for x in span.split(":"))
            lines = lines[start - 1:end]
        bodies = [bytes.fromhex(line) for line in lines]
    else:
        kinds = [int(k) for k in args[1].split(",")]
        bodies = list(frames(kinds, int(args[2]), int(args[3]) if len(args) > 3 else 1))
    if save:
        with open(save, "w") as f:
            f.write("\n".join(b.hex() for b in bodies) + "\n")
    stats = {}
    for index, body in enumerate(bodies, 1):
        key = (body[1], send(addr, body))
        stats[key] = stats.get(key, 0) + 1
        if key[1] != "closed":
            print("frame", index, "kind", body[1], "answered", key[1], body.hex())
    print(sorted(stats.items()))


if __name__ == "__main__":
    main()
