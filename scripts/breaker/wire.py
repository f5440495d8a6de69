#!/usr/bin/env python3
"""Raw Kafka wire helpers for breaker probes: framing, CRC-32C, v2 record batches, and the
few non-flexible request bodies the probes send (Produce v3, Fetch v4, ListOffsets v1,
OffsetCommit v2, OffsetFetch v1, JoinGroup v1). Pure Python 3, no client library.
"""
import socket
import struct
import time

_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _T.append(_c)


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def string(s):
    if s is None:
        return struct.pack(">h", -1)
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">h", len(s)) + s


def nbytes(b):
    if b is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(b)) + b


def record(key, value, offset_delta=0, ts_delta=0):
    body = b"\x00" + varint(ts_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(0)
    return varint(len(body)) + body


def batch(records, ts=None, attributes=0, pid=-1, epoch=-1, seq=-1, magic=2, base_offset=0,
          max_ts=None):
    """records: list of (key, value)."""
    ts = int(time.time() * 1000) if ts is None else ts
    max_ts = ts if max_ts is None else max_ts
    recs = b"".join(record(k, v, i) for i, (k, v) in enumerate(records))
    after = struct.pack(">hiqqqhii", attributes, len(records) - 1, ts, max_ts, pid, epoch, seq,
                        len(records)) + recs
    rest = struct.pack(">ibI", -1, magic, crc32c(after)) + after
    return struct.pack(">qi", base_offset, len(rest)) + rest


class Conn:
    def __init__(self, addr, timeout=30):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout)
        self.corr = 0

    def send(self, api, ver, body, client=b"breaker"):
        self.corr += 1
        p = struct.pack(">hhi", api, ver, self.corr) + string(client) + body
        self.s.sendall(struct.pack(">i", len(p)) + p)
        return self.corr

    def recv(self):
        head = self._exact(4)
        if head is None:
            return None
        n = struct.unpack(">i", head)[0]
        data = self._exact(n)
        return data[4:] if data is not None else None   # drop correlation id

    def call(self, api, ver, body):
        self.send(api, ver, body)
        return self.recv()

    def _exact(self, n):
        b = b""
        while len(b) < n:
            try:
                c = self.s.recv(min(n - len(b), 1 << 20))
            except (ConnectionResetError, socket.timeout):
                return None
            if not c:
                return None
            b += c
        return b

    def close(self):
        self.s.close()


def produce_v3(topic, partition, records_bytes, acks=-1, timeout_ms=30000, txn_id=None):
    body = string(txn_id) + struct.pack(">hi", acks, timeout_ms) + struct.pack(">i", 1)
    body += string(topic) + struct.pack(">ii", 1, partition) + nbytes(records_bytes)
    return body


def produce_error(resp, topic):
    """Error code and base offset of the single partition of a Produce v3 response."""
    t = topic.encode() if isinstance(topic, str) else topic
    off = 4 + 2 + len(t) + 4 + 4
    return struct.unpack_from(">hq", resp, off)


def fetch_v4(topic, partition, offset, max_bytes=1 << 20, partition_max=1 << 20, wait_ms=0,
             isolation=0):
    body = struct.pack(">iiiib", -1, wait_ms, 1, max_bytes, isolation) + struct.pack(">i", 1)
    body += string(topic) + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset,
                                                                partition_max)
    return body


def fetch_v4_parse(resp):
    """(error, high watermark, record bytes) of the single partition of a Fetch v4 response."""
    o = 4 + 4                        # throttle, topic count
    tl = struct.unpack_from(">h", resp, o)[0]
    o += 2 + tl + 4                  # name, partition count
    _p, err, hw, _lso = struct.unpack_from(">ihqq", resp, o)
    o += 4 + 2 + 8 + 8
    na = struct.unpack_from(">i", resp, o)[0]
    o += 4 + max(na, 0) * 16
    n = struct.unpack_from(">i", resp, o)[0]
    o += 4
    return err, hw, resp[o:o + max(n, 0)]


def batches(data):
    """(base offset, magic, attributes, record count, first ts, max ts) of each whole batch."""
    out, o = [], 0
    while o + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, o)
        if o + 12 + length > len(data):
            break
        magic = data[o + 16]
        attrs, _lod, fts, mts = struct.unpack_from(">hiqq", data, o + 21)
        count = struct.unpack_from(">i", data, o + 57)[0]
        out.append((base, magic, attrs, count, fts, mts))
        o += 12 + length
    return out
