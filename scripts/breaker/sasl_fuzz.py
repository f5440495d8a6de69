#!/usr/bin/env python3
"""Mutated SASL PLAIN / SCRAM-SHA-256/512 exchanges (SaslHandshake v1, SaslAuthenticate v2)
against a SASL_PLAINTEXT listener; prints how each kind was answered and whether the broker
still answers ApiVersions. Usage: sasl_fuzz.py HOST:PORT COUNT [SEED]"""
import sys, struct, random, time, socket, base64
sys.path.insert(0, __import__("os").path.dirname(__file__))
from wire import *
A = sys.argv[1]; N = int(sys.argv[2]); seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
rng = random.Random(seed)
def uvarint(n):
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80); n >>= 7
    out.append(n); return bytes(out)
def auth_body(tok):  # SaslAuthenticate v2: compact bytes + tags
    return uvarint(len(tok) + 1) + tok + b"\x00"
def send_flex(c, api, ver, body):
    c.corr += 1
    p = struct.pack(">hhi", api, ver, c.corr) + string("f") + b"\x00" + body
    c.s.sendall(struct.pack(">i", len(p)) + p)
    return c.recv()
def mutate(b):
    b = bytearray(b)
    for _ in range(rng.choice([1, 2, 4])):
        op = rng.randrange(6)
        if op == 0 and b: b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and b: del b[rng.randrange(len(b)):]
        elif op == 2: b[rng.randrange(len(b) + 1):0] = bytes([rng.choice([0, 44, 61, 255, 0x80, 0xC3])]) * rng.choice([1, 3, 100])
        elif op == 3: b += b"," + rng.choice([b"r=", b"n=", b"p=", b"c=", b"a=", b"m=", b"=", b"=2C", b"=3D", b"=ZZ", b"i=-1", b"s=", b""]) * rng.choice([1, 2])
        elif op == 4 and b: i = rng.randrange(len(b)); b[i:i] = b[i:]  # duplicate tail
        elif op == 5: b = bytearray(rng.choice([b"", b",", b"n,,", b"y,,n=a,r=", b"p=tls-unique,,n=a,r=x", b"\x00", b"\x00\x00", b"a\x00b\x00c\x00d"]))
    return bytes(b)
outcomes = {}
for i in range(N):
    mech = rng.choice(["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
    try:
        c = Conn(A, timeout=5)
        r = send_flex(c, 17, 1, string(mech)[0:0] + struct.pack(">h", len(mech)) + mech.encode()) if False else None
        # SaslHandshake v1 is not flexible
        c.corr += 1
        p = struct.pack(">hhi", 17, 1, c.corr) + string("f") + string(mech)
        c.s.sendall(struct.pack(">i", len(p)) + p)
        r = c.recv()
        if mech == "PLAIN":
            tok = mutate(b"\x00alice\x00alice-secret")
            r = send_flex(c, 36, 2, auth_body(tok))
            key = (mech, "first", "closed" if r is None else struct.unpack_from(">h", r, 1)[0])
        else:
            first = b"n,,n=alice,r=" + base64.b64encode(bytes(rng.randrange(256) for _ in range(12)))
            if rng.random() < 0.6:
                r = send_flex(c, 36, 2, auth_body(mutate(first)))
                key = (mech, "first", "closed" if r is None else struct.unpack_from(">h", r, 1)[0])
            else:
                r = send_flex(c, 36, 2, auth_body(first))
                if r is None:
                    key = (mech, "valid-first", "closed")
                else:
                    # server-first inside: compact bytes after error(2)+errmsg
                    final = b"c=biws,r=" + b"x" * 40 + b",p=" + base64.b64encode(b"y" * 32)
                    r2 = send_flex(c, 36, 2, auth_body(mutate(final)))
                    key = (mech, "final", "closed" if r2 is None else struct.unpack_from(">h", r2, 1)[0])
        c.close()
    except Exception as e:
        key = (mech, "exc", type(e).__name__)
    outcomes[key] = outcomes.get(key, 0) + 1
print(outcomes)
c = Conn(A); print("alive:", c.call(18, 0, b"") is not None)
