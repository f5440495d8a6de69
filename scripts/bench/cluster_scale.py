#!/usr/bin/env python3
"""Metadata scale benchmark (issue 10): a KRaft cluster of N sluice processes on loopback (the
first three `broker,controller`, the rest broker-only), then many partitions created through
every broker (CreateTopics, forwarded to the active controller by the others). Reports:

- the controller's metadata records/s while creating (TopicRecord + PartitionRecords committed);
- metadata propagation latency: from a CreateTopics being sent until each broker's Metadata
  lists the topic with all its partitions (sampled topics x every broker), p50/p99;
- the metadata snapshot size on a controller;
- Metadata latency for all topics (v4, topics = null), per broker;
- start time of a restarted broker-only node and of a restarted controller with that image
  (spawn -> ready line, and spawn -> its Metadata lists every topic);
- each node's resident memory and open file descriptors after the creation.

Pure standard library (a minimal Kafka wire client: Metadata v4, CreateTopics v4), so the
figures are the broker's, not a client library's. Not a test: run it by hand
(`make bench-cluster-scale`), it takes minutes and creates many files in --dir (removed at the
end unless --keep).

Usage: scripts/bench/cluster_scale.py [--bin target/release/sluice] [--brokers 5]
       [--partitions 100000] [--per-topic 100] [--inflight 8] [--dir /var/tmp/sluice-cluster-scale-bench]
"""

import argparse
import concurrent.futures as futures
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

METADATA = 3
CREATE_TOPICS = 19


# Reservation files held for this process's life (see free_port).
_HELD_PORTS = {}


def free_port():
    """A loopback port free now, below the ephemeral range (a port-0 one could be taken as the
    source port of a running node's outgoing connection before its node binds it), reserved as
    tests/common/ports.rs does: an exclusive flock on $TMPDIR/sluice-ports/<port>.lock, held
    until this process exits (a dead holder's lock is gone with it; files are never removed)."""
    import fcntl
    import random

    directory = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sluice-ports")
    os.makedirs(directory, exist_ok=True)
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            high = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        high = 32768
    for _ in range(100_000):
        port = random.randrange(10_000, high)
        if port in _HELD_PORTS:
            continue
        try:
            held = open(os.path.join(directory, f"{port}.lock"), "a")
        except OSError:
            continue
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
        except OSError:
            held.close()
            continue
        held.truncate(0)
        held.write(f"{os.getpid()}\n")
        held.flush()
        _HELD_PORTS[port] = held
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def kstr(text):
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


class Conn:
    """One connection to one broker; requests one at a time."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation = 0

    def call(self, api_key, version, body):
        self.correlation += 1
        header = struct.pack(">hhi", api_key, version, self.correlation) + kstr("scale-bench")
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self.recv(4))[0]
        payload = self.recv(size)
        (correlation,) = struct.unpack(">i", payload[:4])
        assert correlation == self.correlation, "correlation mismatch"
        return payload[4:]

    def recv(self, n):
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise ConnectionError("closed")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self):
        self.sock.close()


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0]

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def metadata_body(topics):
    """Metadata v4: topics (None: all), allow_auto_topic_creation false."""
    if topics is None:
        return struct.pack(">i", -1) + b"\x00"
    return struct.pack(">i", len(topics)) + b"".join(kstr(t) for t in topics) + b"\x00"


def metadata_brokers_and_first_topic(payload):
    """(broker ids, (error_code, partition count) of the first topic or None)."""
    r = Reader(payload)
    r.take(">i")  # throttle
    brokers = []
    for _ in range(r.take(">i")):
        brokers.append(r.take(">i"))
        r.string()
        r.take(">i")
        r.string()
    r.string()  # cluster id
    r.take(">i")  # controller id
    if r.take(">i") == 0:
        return brokers, None
    error = r.take(">h")
    r.string()
    r.take(">b")
    return brokers, (error, r.take(">i"))


def create_topics_body(names, partitions):
    body = struct.pack(">i", len(names))
    for name in names:
        body += kstr(name) + struct.pack(">ihii", partitions, -1, 0, 0)
    return body + struct.pack(">ib", 120_000, 0)


def create_topics_errors(payload):
    r = Reader(payload)
    r.take(">i")
    errors = []
    for _ in range(r.take(">i")):
        r.string()
        errors.append(r.take(">h"))
        r.string()
    return errors


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Node:
    def __init__(self, root, node_id, voters, controller, client_port, admin_port, args):
        self.node_id = node_id
        self.dir = os.path.join(root, f"node-{node_id}")
        self.client_port = client_port
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        roles = "broker,controller" if controller else "broker"
        self.config = os.path.join(self.dir, "sluice.toml")
        with open(self.config, "w") as f:
            f.write(
                f'listen = "127.0.0.1:{client_port}"\n'
                f'"admin.listen" = "127.0.0.1:{admin_port}"\n'
                f'data_dir = "{self.dir}/data"\n'
                f'"node.id" = {node_id}\n'
                f'"process.roles" = "{roles}"\n'
                f'"controller.quorum.voters" = "{voters}"\n'
                '"controller.listener.names" = "CONTROLLER"\n'
                '"pin.threads" = false\n'
                "cores = 1\n"
                '"auto.create.topics.enable" = false\n'
                f'"max.partitions.per.topic" = {max(10_000, args.per_topic)}\n'
                f'"metadata.log.max.entries.between.snapshots" = {args.snapshot_every}\n'
            )
        self.bin = args.bin
        self.proc = None
        self.log_path = os.path.join(self.dir, "sluice.log")

    def start(self):
        self.started = time.monotonic()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "--config", self.config],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env={**os.environ, "RUST_LOG": "warn,sluice=info"},
            start_new_session=True,
        )

    def wait_ready(self, timeout=600):
        """Seconds from spawn to the ready line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                text = f.read()
            if text.count(b" ready listening=") >= self.ready_lines_expected:
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited; see {self.log_path}")
            time.sleep(0.02)
        raise TimeoutError(f"node {self.node_id} not ready; see {self.log_path}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024)
        return -1

    def open_fds(self):
        """Descriptors the process holds now (bounded by log.*.segment.files.open.max)."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def snapshot_bytes(self):
        best = 0
        for dirpath, _, files in os.walk(os.path.join(self.dir, "data")):
            for name in files:
                if name.startswith("snapshot-") and name.endswith(".snap"):
                    best = max(best, os.path.getsize(os.path.join(dirpath, name)))
        return best


def wait_listing(port, brokers, topics_expected, timeout):
    """Waits until the broker lists `brokers` brokers and (Metadata for all) that many topics."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = Conn(port)
            try:
                payload = conn.call(METADATA, 4, metadata_body(None))
            finally:
                conn.close()
            r = Reader(payload)
            r.take(">i")
            listed = r.take(">i")
            if listed >= brokers:
                for _ in range(listed):
                    r.take(">i"), r.string(), r.take(">i"), r.string()
                r.string()
                r.take(">i")
                if r.take(">i") >= topics_expected:
                    return
        except (OSError, ConnectionError, struct.error):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"broker on {port} did not list {brokers} brokers / {topics_expected} topics")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/sluice")
    ap.add_argument("--brokers", type=int, default=5)
    ap.add_argument("--partitions", type=int, default=100_000)
    ap.add_argument("--per-topic", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=8)
    ap.add_argument("--sample-every", type=int, default=10)
    ap.add_argument("--snapshot-every", type=int, default=200)
    ap.add_argument("--dir", default="/var/tmp/sluice-cluster-scale-bench")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.path.exists(args.dir):
        shutil.rmtree(args.dir)
    controllers = min(3, args.brokers)
    controller_ports = [free_port() for _ in range(controllers)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(controller_ports))
    nodes = []
    for i in range(args.brokers):
        node = Node(args.dir, i + 1, voters, i < controllers, free_port(), free_port(), args)
        node.ready_lines_expected = 1
        nodes.append(node)
    results = {"command": " ".join(sys.argv), "brokers": args.brokers, "controllers": controllers}
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        for node in nodes:
            wait_listing(node.client_port, args.brokers, 0, 120)
        topics = args.partitions // args.per_topic
        results.update(topics=topics, partitions=topics * args.per_topic, per_topic=args.per_topic)
        latencies = []
        errors = []
        lock = threading.Lock()
        local = threading.local()

        def conns():
            if not hasattr(local, "conns"):
                local.conns = [Conn(n.client_port) for n in nodes]
            return local.conns

        def create(index):
            name = f"scale-{index:07d}"
            mine = conns()
            via = index % len(nodes)
            sent = time.monotonic()
            try:
                codes = create_topics_errors(
                    mine[via].call(CREATE_TOPICS, 4, create_topics_body([name], args.per_topic))
                )
            except (OSError, ConnectionError) as e:
                # No answer within the socket timeout (120 s): counted, on a new connection.
                codes = [f"no answer from node {nodes[via].node_id}: {e!r}"]
                mine[via].close()
                mine[via] = Conn(nodes[via].client_port)
            if codes != [0]:
                with lock:
                    errors.append((name, codes))
                return
            if index % args.sample_every:
                return
            for conn in mine:
                while True:
                    _, topic = metadata_brokers_and_first_topic(
                        conn.call(METADATA, 4, metadata_body([name]))
                    )
                    if topic == (0, args.per_topic):
                        break
                    time.sleep(0.001)
                with lock:
                    latencies.append(time.monotonic() - sent)

        started = time.monotonic()
        with futures.ThreadPoolExecutor(args.inflight) as pool:
            for f in futures.as_completed([pool.submit(create, i) for i in range(topics)]):
                f.result()
        elapsed = time.monotonic() - started
        records = topics * (1 + args.per_topic)
        results.update(
            create_seconds=round(elapsed, 2),
            metadata_records=records,
            records_per_second=round(records / elapsed),
            create_errors=len(errors),
            first_errors=errors[:5],
            propagation_samples=len(latencies),
            propagation_p50_ms=round(pct(latencies, 0.50) * 1000, 1),
            propagation_p99_ms=round(pct(latencies, 0.99) * 1000, 1),
            propagation_max_ms=round(max(latencies, default=0) * 1000, 1),
        )
        print(json.dumps(results), file=sys.stderr, flush=True)
        for node in nodes:
            wait_listing(node.client_port, args.brokers, topics, 600)
        all_topics = []
        size = 0
        for node in nodes:
            conn = Conn(node.client_port)
            for _ in range(3):
                t0 = time.monotonic()
                payload = conn.call(METADATA, 4, metadata_body(None))
                all_topics.append(time.monotonic() - t0)
                size = len(payload)
            conn.close()
        results.update(
            metadata_all_topics_p50_ms=round(pct(all_topics, 0.5) * 1000, 1),
            metadata_all_topics_max_ms=round(max(all_topics) * 1000, 1),
            metadata_all_topics_bytes=size,
        )
        time.sleep(2)
        results["snapshot_bytes"] = max(n.snapshot_bytes() for n in nodes[:controllers])
        results["rss_mib_per_node"] = [n.rss_mib() for n in nodes]
        results["open_fds_per_node"] = [n.open_fds() for n in nodes]
        print(json.dumps(results), file=sys.stderr, flush=True)
        # Restarts: the last node (broker-only when there are more than 3) and node 1.
        for key, node in (("restart_broker", nodes[-1]), ("restart_controller", nodes[0])):
            node.stop()
            node.ready_lines_expected += 1
            node.start()
            ready = node.wait_ready()
            wait_listing(node.client_port, args.brokers, topics, 600)
            results[f"{key}_ready_s"] = round(ready, 2)
            results[f"{key}_serving_all_topics_s"] = round(time.monotonic() - node.started, 2)
    finally:
        for node in nodes:
            node.stop()
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
