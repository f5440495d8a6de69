#!/usr/bin/env python3
"""Does this kernel offer kernel TLS (kTLS) to a TCP socket? (docs/decisions/0011-tls-rustls.md)

Prints the kernel release, /proc/sys/net/ipv4/tcp_available_ulp, CONFIG_TLS from
/proc/config.gz when readable, and the result of setsockopt(SOL_TCP, TCP_ULP, "tls") on a
connected loopback socket (the call kTLS starts with). Exit status 0 when kTLS is available, 1
when not: a benchmark script can gate the kTLS measurement on it.
"""
import gzip
import os
import platform
import socket

TCP_ULP = 31  # linux/tcp.h


def config_tls():
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_TLS=") or line.startswith("# CONFIG_TLS is not set"):
                    return line.strip()
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return "absent from /proc/config.gz"


def ulp_tls():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    client.connect(server.getsockname())
    try:
        client.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
        return True, "ok"
    except OSError as e:
        return False, f"{os.strerror(e.errno)} (errno {e.errno})"
    finally:
        client.close()
        server.close()


def main():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            available = f.read().strip() or "(empty)"
    except OSError as e:
        available = f"unreadable ({e.strerror})"
    ok, why = ulp_tls()
    print(f"kernel: {platform.release()}")
    print(f"tcp_available_ulp: {available}")
    print(f"CONFIG_TLS: {config_tls()}")
    print(f"setsockopt(TCP_ULP, tls): {why}")
    print("kTLS: available" if ok else "kTLS: NOT available")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
