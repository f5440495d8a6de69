#!/usr/bin/env python3
"""Does a Produce to an unknown topic create it? (Kafka: no, UNKNOWN_TOPIC_OR_PARTITION.)

Usage: produce_autocreate.py HOST:PORT [TOPIC]. Needs kafka-python >= 3 (the test venv).
Exits 0 when the broker behaves as Kafka (the produce is refused and the topic stays unknown).
"""
import socket
import struct
import sys
import time

from kafka.protocol.metadata.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

UNKNOWN_TOPIC_OR_PARTITION = 3


class Conn:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.correlation = 0

    def read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def call(self, req_cls, resp_cls, version, **fields):
        request = req_cls[version](**fields)
        self.correlation += 1
        request.with_header(correlation_id=self.correlation, client_id="breaker")
        self.sock.sendall(request.encode(header=True, framed=True))
        size = struct.unpack(">i", self.read(4))[0]
        return resp_cls.decode(self.read(size), version=version, header=True)


def metadata(conn, topic):
    topics = [MetadataRequest.MetadataRequestTopic(name=topic)]
    response = conn.call(MetadataRequest, MetadataResponse, 9, topics=topics,
                         allow_auto_topic_creation=False,
                         include_cluster_authorized_operations=False,
                         include_topic_authorized_operations=False)
    return response.topics[0].error_code


def main():
    addr = sys.argv[1]
    topic = sys.argv[2] if len(sys.argv) > 2 else "breaker-never-created-%d" % time.time()
    conn = Conn(addr)
    before = metadata(conn, topic)
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    builder.append(0, timestamp=int(time.time() * 1000), key=None, value=b"v", headers=[])
    partition = ProduceRequest.TopicProduceData.PartitionProduceData(
        index=0, records=bytes(builder.build()))
    data = [ProduceRequest.TopicProduceData(name=topic, partition_data=[partition])]
    produced = conn.call(ProduceRequest, ProduceResponse, 9, transactional_id=None, acks=1,
                         timeout_ms=5000, topic_data=data)
    code = produced.responses[0].partition_responses[0].error_code
    after = metadata(conn, topic)
    print(f"metadata before: {before}; produce: {code}; metadata after: {after}")
    ok = before == UNKNOWN_TOPIC_OR_PARTITION and code == UNKNOWN_TOPIC_OR_PARTITION \
        and after == UNKNOWN_TOPIC_OR_PARTITION
    print("as Kafka" if ok else "NOT as Kafka: the produce created the topic")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
