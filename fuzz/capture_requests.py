#!/usr/bin/env python3
"""Captures real client requests as seeds for the `request_decode` fuzz target.

Starts a sluice broker (SLUICE_BIN, default target/debug/sluice) on a loopback port, puts a
TCP proxy in front of it (the broker advertises the proxy, so every client connection goes
through it), runs kafka-python and confluent-kafka (librdkafka) through a producer, consumer
group, admin and offset workload, and writes each distinct (API key, version) request frame
the clients sent, without its 4-byte size prefix, to fuzz/corpus/request_decode/.

Run: .venv/bin/python fuzz/capture_requests.py   (from the repository root)
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus", "request_decode")
FRAME_MAX = 64 * 1024  # seeds stay small

frames = {}
lock = threading.Lock()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pipe(src, dst, record):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if record:
                buf += data
                while len(buf) >= 4:
                    (size,) = struct.unpack(">i", buf[:4])
                    if len(buf) < 4 + size:
                        break
                    frame, buf = buf[4 : 4 + size], buf[4 + size :]
                    if len(frame) >= 4 and len(frame) <= FRAME_MAX:
                        key, version = struct.unpack(">hh", frame[:4])
                        with lock:
                            frames.setdefault((key, version), frame)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen_port, broker_port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(64)
    while True:
        client, _ = srv.accept()
        upstream = socket.create_connection(("127.0.0.1", broker_port))
        threading.Thread(target=pipe, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client, False), daemon=True).start()


def kafka_python_workload(bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("kp-topic", 2, 1), NewTopic("kp-gone", 1, 1)])
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-topic")])
    admin.create_partitions({"kp-topic": NewPartitions(3)})
    for codec in (None, "gzip", "snappy", "lz4", "zstd"):
        try:
            p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all")
        except Exception as e:  # a codec library missing from the venv
            print(f"kafka-python {codec}: {e}", file=sys.stderr)
            continue
        for i in range(5):
            p.send("kp-topic", key=b"k%d" % i, value=b"value %d" % i, headers=[("h", b"v")])
        p.flush()
        p.close()
    c = KafkaConsumer(
        "kp-topic",
        bootstrap_servers=bootstrap,
        group_id="kp-group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    for _ in c:
        pass
    c.commit()
    tp = TopicPartition("kp-topic", 0)
    c.offsets_for_times({tp: 0})
    c.end_offsets([tp])
    c.close()
    for step in (
        lambda: admin.list_groups(),
        lambda: admin.describe_consumer_groups(["kp-group"]),
        lambda: admin.list_consumer_group_offsets("kp-group"),
        lambda: admin.delete_topics(["kp-gone"]),
    ):
        try:
            step()
        except Exception as e:  # older/newer kafka-python admin APIs differ
            print(f"kafka-python admin step: {e!r}", file=sys.stderr)
    admin.close()


def confluent_workload(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("ck-topic", 2, 1)]).values():
        f.result()
    for f in admin.describe_configs([ConfigResource("topic", "ck-topic")]).values():
        f.result()
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        p = Producer(
            {"bootstrap.servers": bootstrap, "compression.codec": codec, "enable.idempotence": True}
        )
        for i in range(5):
            p.produce("ck-topic", key=b"k%d" % i, value=b"v %d" % i, headers={"h": b"v"})
        p.flush(10)
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ck-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe(["ck-topic"])
    deadline = time.time() + 8
    got = 0
    while time.time() < deadline and got < 10:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    c.commit(asynchronous=False)
    c.offsets_for_times([TopicPartition("ck-topic", 0, 0)], timeout=5)
    c.committed([TopicPartition("ck-topic", 0)], timeout=5)
    c.close()
    for f in admin.delete_topics(["ck-topic"]).values():
        f.result()


def main():
    binary = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "target", "debug", "sluice"))
    broker_port, proxy_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "sluice.toml")
        with open(conf, "w") as f:
            f.write(f'advertise = "127.0.0.1:{proxy_port}"\n')
        log = open(os.path.join(tmp, "sluice.log"), "w")
        broker = subprocess.Popen(
            [binary, "--listen", f"127.0.0.1:{broker_port}", "--admin-listen", "127.0.0.1:0",
             "--data-dir", os.path.join(tmp, "data"), "--config", conf, "--cores", "1"],
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            for _ in range(300):
                if "ready listening=" in open(log.name).read():
                    break
                time.sleep(0.1)
            else:
                sys.exit("broker did not start")
            threading.Thread(target=proxy, args=(proxy_port, broker_port), daemon=True).start()
            bootstrap = f"127.0.0.1:{proxy_port}"
            for workload in (kafka_python_workload, confluent_workload):
                try:
                    workload(bootstrap)
                except Exception as e:
                    print(f"{workload.__name__}: {e!r}", file=sys.stderr)
            time.sleep(0.5)
        finally:
            broker.terminate()
            broker.wait(30)
    os.makedirs(OUT, exist_ok=True)
    with lock:
        for (key, version), frame in sorted(frames.items()):
            with open(os.path.join(OUT, f"captured-key{key}-v{version}"), "wb") as f:
                f.write(frame)
        print(f"wrote {len(frames)} request frames to {OUT}")


if __name__ == "__main__":
    main()
