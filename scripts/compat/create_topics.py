#!/usr/bin/env python3
"""Create the compat topics with confluent-kafka's AdminClient (CreateTopics).

Usage: create_topics.py BOOTSTRAP TOPIC:PARTITIONS...
Exits non-zero unless every topic was created and shows up in metadata.
"""
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30


def main() -> int:
    bootstrap, specs = sys.argv[1], sys.argv[2:]
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    wanted = {}
    for spec in specs:
        name, partitions = spec.rsplit(":", 1)
        wanted[name] = int(partitions)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in wanted.items()],
        request_timeout=TIMEOUT_S,
    )
    ok = True
    for name, fut in futures.items():
        try:
            fut.result(timeout=TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - report any client error as a failure
            print(f"create {name}: {e}", file=sys.stderr)
            ok = False
    deadline = time.monotonic() + TIMEOUT_S
    while ok and time.monotonic() < deadline:
        md = admin.list_topics(timeout=TIMEOUT_S)
        if all(n in md.topics and len(md.topics[n].partitions) == p for n, p in wanted.items()):
            return 0
        time.sleep(0.1)
    print(f"topics not listed with their partitions: {wanted}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
