#!/usr/bin/env python3
"""Exactly-once consume-transform-produce under kill -9 (issue 12), with confluent-kafka
(librdkafka): a processor process reads an input topic with read_committed, writes each record
transformed to the same partition of an output topic and commits its input offsets with
send_offsets_to_transaction, one transaction per poll batch. The driver kills the processor
with SIGKILL several times mid-run (at input positions it reports, so a fast machine
cannot finish first) and restarts it (same transactional.id: the new one fences
the zombie and its open transaction is aborted), then lets it finish. The output topic read
with read_committed must hold every input record exactly once, in order per key.

Usage: txn_eos_kill.py HOST:PORT [RECORDS=12000] [KILLS=4] [RF=1]   (exit status 0 when the check
       passed; RF: the replication factor of its topics, 3 on a three-broker cluster)
       txn_eos_kill.py --process HOST:PORT INPUT OUTPUT PARTITIONS   (the processor)
"""
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT = 30
GROUP = "eos-processor"
TXN_ID = "eos-processor-txn"
BATCH = 20


def fail(what):
    print(f"FAIL: {what}", flush=True)
    sys.exit(1)


def process(boot, src, dst, partitions):
    """The processor: runs until it has committed every input offset, then exits 0."""
    producer = Producer({"bootstrap.servers": boot, "transactional.id": TXN_ID,
                         "transaction.timeout.ms": 10000, "linger.ms": 2})
    producer.init_transactions(TIMEOUT)
    consumer = Consumer({"bootstrap.servers": boot, "group.id": GROUP,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    tps = [TopicPartition(src, p) for p in range(partitions)]
    # The next offset to read per partition: the group's committed one (librdkafka's
    # position() is unknown until a partition has handed out a record).
    positions = {tp.partition: max(tp.offset, 0) for tp in consumer.committed(tps, TIMEOUT)}
    consumer.assign([TopicPartition(src, p, o) for p, o in positions.items()])
    ends = {p: consumer.get_watermark_offsets(TopicPartition(src, p), TIMEOUT)[1]
            for p in range(partitions)}
    print("processing", flush=True)
    while any(positions[p] < ends[p] for p in range(partitions)):
        msgs = [m for m in consumer.consume(BATCH, 0.5) if not m.error()]
        if not msgs:
            continue
        producer.begin_transaction()
        for m in msgs:
            producer.produce(dst, key=m.key(), value=m.value() + b"|out",
                             partition=m.partition())
            positions[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(src, p, o) for p, o in positions.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(),
                                             TIMEOUT)
        producer.commit_transaction(TIMEOUT)
        # Progress for the driver, which kills at input positions, not at times (a fast
        # machine would otherwise finish before the kill).
        print(f"committed {sum(positions.values())}", flush=True)
    consumer.close()
    print("done", flush=True)


def read_committed(boot, name, partitions, expected):
    c = Consumer({"bootstrap.servers": boot, "group.id": f"r-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.assign([TopicPartition(name, p, 0) for p in range(partitions)])
    got, deadline, idle_until = [], time.time() + 60, time.time() + 3
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if len(got) >= expected and time.time() > idle_until:
                break
            continue
        if m.error():
            continue
        got.append((m.partition(), m.key().decode(), m.value().decode()))
        idle_until = time.time() + 2
    c.close()
    return got


def start(boot, src, dst, partitions):
    proc = subprocess.Popen([sys.executable, __file__, "--process", boot, src, dst,
                             str(partitions)], stdout=subprocess.PIPE, text=True)
    lines = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    first = next_line(lines, TIMEOUT)
    if first != "processing":
        proc.kill()
        fail(f"processor did not start: {first!r}")
    return proc, lines


def next_line(lines, timeout_s):
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        return None


def wait_committed(proc, lines, target):
    """Waits until the processor reports `target` input records committed in total."""
    deadline = time.time() + 120
    while time.time() < deadline:
        line = next_line(lines, max(deadline - time.time(), 0.1))
        if line is None or line == "done":
            proc.kill()
            fail(f"processor ended ({line!r}) before committing {target} records")
        if line.startswith("committed ") and int(line.split()[1]) >= target:
            return
    proc.kill()
    fail(f"processor did not commit {target} records in time")


def main():
    boot = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
    records = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
    kills = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    rf = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    partitions, keys = 3, 30
    suffix = uuid.uuid4().hex[:8]
    src, dst = f"eos-in-{suffix}", f"eos-out-{suffix}"
    admin = AdminClient({"bootstrap.servers": boot})
    for f in admin.create_topics([NewTopic(src, partitions, rf),
                                  NewTopic(dst, partitions, rf)]).values():
        f.result()
    producer = Producer({"bootstrap.servers": boot, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    for i in range(records):
        k = i % keys
        producer.produce(src, key=f"k{k}", value=f"k{k}|{i // keys}")
    if producer.flush(TIMEOUT) != 0:
        fail("input not produced")
    rng = random.Random(12)
    for n in range(kills):
        proc, lines = start(boot, src, dst, partitions)
        # Killed once it has committed its share of the input, then a moment later (often
        # inside the next transaction).
        wait_committed(proc, lines, records * (n + 1) // (kills + 1))
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"ok: processor killed with SIGKILL ({n + 1})", flush=True)
    started = time.time()
    proc, lines = start(boot, src, dst, partitions)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("the last processor did not finish")
    out = []
    while (line := next_line(lines, 5)) is not None:
        out.append(line)
    if proc.returncode != 0 or "done" not in out:
        fail(f"the last processor failed: {proc.returncode} {out[-3:]!r}")
    print(f"ok: the last processor finished the input in {time.time() - started:.1f} s",
          flush=True)
    got = read_committed(boot, dst, partitions, records)
    values = sorted(v for _, _, v in got)
    want = sorted(f"k{i % keys}|{i // keys}|out" for i in range(records))
    dupes = len(values) - len(set(values))
    if values != want:
        missing = len(set(want) - set(values))
        fail(f"output holds {len(values)} records for {records} inputs "
             f"({missing} missing, {dupes} duplicated)")
    print(f"ok: every one of {records} inputs exactly once in the read_committed output",
          flush=True)
    last = {}
    for _, key, value in got:
        seq = int(value.split("|")[1])
        if seq <= last.get(key, -1):
            fail(f"key {key}: seq {seq} after {last[key]}")
        last[key] = seq
    print("ok: in order per key", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--process":
        try:
            process(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        except KafkaException as e:
            print(f"processor error: {e}", flush=True)
            sys.exit(3)
    else:
        main()
