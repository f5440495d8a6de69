#!/usr/bin/env python3
"""One Metadata v9 request naming COUNT unknown topics PREFIX-0.. with
allow_auto_topic_creation=true; prints the error codes answered and the time taken.

Usage: metadata_flood.py HOST:PORT COUNT PREFIX (kafka-python >= 3, the test venv)."""
import socket
import struct
import sys
import time

from kafka.protocol.metadata.metadata import MetadataRequest, MetadataResponse


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    count, prefix = int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection((host, int(port)), timeout=300)
    topics = [MetadataRequest.MetadataRequestTopic(name=f"{prefix}-{i}") for i in range(count)]
    request = MetadataRequest[9](topics=topics, allow_auto_topic_creation=True,
                                 include_cluster_authorized_operations=False,
                                 include_topic_authorized_operations=False)
    request.with_header(correlation_id=1, client_id="breaker")
    start = time.time()
    sock.sendall(request.encode(header=True, framed=True))
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            sys.exit("connection closed")
        body += chunk
    response = MetadataResponse.decode(body, version=9, header=True)
    codes = {}
    for topic in response.topics:
        codes[topic.error_code] = codes.get(topic.error_code, 0) + 1
    print(f"{count} topics: error codes {codes} in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
