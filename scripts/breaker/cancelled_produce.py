#!/usr/bin/env python3
"""Session 10 breaker probe (B22): a Produce whose connection is closed while its append is
being written, with other producers appending to the same partition at once.

  cancelled_produce.py HOST:PORT [ROUNDS] [TOPIC]

Canceller: one connection per round sends, pipelined, an acks=0 Produce with a corrupt batch
(the broker closes the connection for it, Kafka's acks=0 error rule) and an acks=1 Produce of
one ~260 KB batch (written through io_uring), then waits for the close. Three producers
append small acks=1 batches to the same partition meanwhile and remember what each
acknowledged offset holds. At the end the partition is read back from offset 0: every batch
must have a valid CRC-32C and every acknowledged offset must hold the value acknowledged
for it. Exit 1 (and a count) when an acknowledged record was replaced or a batch is corrupt.
"""
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from wire import Conn, batch, crc32c, fetch_v4, fetch_v4_parse, produce_error, produce_v3  # noqa: E402

BS = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
TOPIC = sys.argv[3] if len(sys.argv) > 3 else "cw"


def create_topic():
    from confluent_kafka.admin import AdminClient, NewTopic
    adm = AdminClient({"bootstrap.servers": BS})
    for f in adm.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        try:
            f.result()
        except Exception as e:  # already there from an earlier run
            print("create:", e)


def uvarint(data, o):
    shift = n = 0
    while True:
        b = data[o]
        o += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (n >> 1) ^ -(n & 1), o


def records(data):
    """(offset, value) of every record of every whole batch; raises on a bad CRC."""
    out, o = [], 0
    while o + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, o)
        end = o + 12 + length
        if end > len(data):
            break
        crc = struct.unpack_from(">I", data, o + 17)[0]
        if crc32c(data[o + 21:end]) != crc:
            raise ValueError(f"batch at offset {base} (file order {len(out)}): CRC mismatch")
        count = struct.unpack_from(">i", data, o + 57)[0]
        p = o + 61
        for _ in range(count):
            length_r, p = uvarint(data, p)
            q = p + 1
            _ts, q = uvarint(data, q)
            delta, q = uvarint(data, q)
            klen, q = uvarint(data, q)
            q += max(klen, 0)
            vlen, q = uvarint(data, q)
            out.append((base + delta, bytes(data[q:q + max(vlen, 0)])))
            p += length_r
        o = end
    return out, o


acked = {}
errors = {}
lock = threading.Lock()
stop = threading.Event()


def small_producer(n):
    c = Conn(BS)
    i = 0
    while not stop.is_set():
        value = b"s-%d-%d" % (n, i)
        c.send(0, 3, produce_v3(TOPIC, 0, batch([(None, value)]), acks=1))
        resp = c.recv()
        if resp is None:
            c = Conn(BS)
            continue
        err, base = produce_error(resp, TOPIC)
        with lock:
            if err == 0:
                acked[base] = value
            else:
                errors[err] = errors.get(err, 0) + 1
        i += 1


BIG = batch([(None, b"BIG" + b"x" * 1021)] * 1000)
FILL = TOPIC + "-fill"


def prefill():
    """A partition whose fetch response no socket buffer holds (30 MB)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    adm = AdminClient({"bootstrap.servers": BS})
    for f in adm.create_topics([NewTopic(FILL, 1, 1)]).values():
        try:
            f.result()
        except Exception as e:
            print("create:", e)
    time.sleep(1)
    c = Conn(BS)
    for _ in range(30):
        c.call(0, 3, produce_v3(FILL, 0, BIG, acks=1))


def canceller():
    """Each round: a Fetch of 30 MB the client never reads (the broker's writer blocks on
    it), then a ~1 MB Produce; a reset (SO_LINGER 0) a random moment later fails the
    blocked write, which ends the connection's reader, in the middle of the append or not."""
    import random
    import socket
    rnd = random.Random(7)
    for _ in range(ROUNDS):
        c = Conn(BS)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(1, 4, fetch_v4(FILL, 0, 0, max_bytes=50 << 20, partition_max=50 << 20))
        c.send(0, 3, produce_v3(TOPIC, 0, BIG, acks=1))
        time.sleep(rnd.uniform(0, 0.015))
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()


create_topic()
prefill()
threads = [threading.Thread(target=small_producer, args=(n,)) for n in range(3)]
for t in threads:
    t.start()
canceller()
stop.set()
for t in threads:
    t.join()

c = Conn(BS)
offset, stored, corrupt = 0, {}, None
while True:
    resp = c.call(1, 4, fetch_v4(TOPIC, 0, offset, max_bytes=8 << 20, partition_max=8 << 20))
    err, hw, data = fetch_v4_parse(resp)
    if err != 0:
        corrupt = f"fetch at {offset}: error {err}"
        break
    try:
        recs, _ = records(data)
    except ValueError as e:
        corrupt = str(e)
        break
    recs = [r for r in recs if r[0] >= offset]
    if not recs:
        break
    stored.update(recs)
    offset = recs[-1][0] + 1
    if offset >= hw:
        break
replaced = {o: (v, stored.get(o)) for o, v in acked.items() if stored.get(o) != v}
big = sum(1 for v in stored.values() if v.startswith(b"BIG"))
print(f"acknowledged small records: {len(acked)}; read back: {len(stored)} records "
      f"({big} of the cancelled big batches); high watermark {hw}")
if errors:
    print(f"ERRORS answered to the small producers (code: count): {errors}")
if corrupt:
    print("CORRUPT:", corrupt)
if replaced:
    first = sorted(replaced.items())[:5]
    print(f"REPLACED: {len(replaced)} acknowledged records hold something else, e.g. {first}")
if corrupt or replaced or errors:
    sys.exit(1)
print("every acknowledged record read back as acknowledged")
