#!/usr/bin/env python3
"""ACL checks with confluent-kafka (librdkafka) against a broker with an authorizer
(`super.users` includes User:ANONYMOUS, so the PLAINTEXT admin client manages ACLs and users):
create_acls / describe_acls / delete_acls, then alice (PREFIXED ALLOW ALL on acl-*, READ on
group acl-g) produces and consumes in a group over SASL_PLAINTEXT, bob (no ACL) is refused and
sees no topics, and after delete_acls alice is refused too.

usage: security_acls.py PLAINTEXT SASL_PLAINTEXT
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

PLAIN_ADDR, SASL_ADDR = sys.argv[1:3]
TIMEOUT = 30
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
ANY_FILTER = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                              AclOperation.ANY, AclPermissionType.ANY)


def sasl(user):
    return {"bootstrap.servers": SASL_ADDR, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user,
            "sasl.password": USERS[user]}


def setup(admin):
    upserts = [UserScramCredentialUpsertion(u, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256,
                                                                   8192), p.encode())
               for u, p in USERS.items()]
    for fut in admin.alter_user_scram_credentials(upserts).values():
        fut.result(TIMEOUT)
    bindings = [
        AclBinding(ResourceType.TOPIC, "acl-", ResourcePatternType.PREFIXED, "User:alice", "*",
                   AclOperation.ALL, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "acl-g", ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
    ]
    for fut in admin.create_acls(bindings).values():
        fut.result(TIMEOUT)
    described = admin.describe_acls(ANY_FILTER).result(TIMEOUT)
    assert sorted(map(str, described)) == sorted(map(str, bindings)), described
    print(f"PASS create_acls + describe_acls: {len(described)} bindings")


def produce(user, topic, n):
    errors = []
    producer = Producer({**sasl(user), "acks": "all", "message.timeout.ms": 10000})
    for i in range(n):
        producer.produce(topic, value=f"v{i}", on_delivery=lambda e, _m: e and errors.append(e))
    producer.flush(TIMEOUT)
    return errors


def alice_allowed(topic):
    admin = AdminClient(sasl("alice"))
    for fut in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        fut.result(TIMEOUT)
    errors = produce("alice", topic, 20)
    assert not errors, errors
    consumer = Consumer({**sasl("alice"), "group.id": "acl-g", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got, deadline = 0, time.time() + TIMEOUT
    while got < 20 and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        got += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    assert got == 20, got
    print("PASS alice: create topic, produce, consume in group acl-g, commit")


def refused(user, topic):
    errors = produce(user, topic, 1)
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
    topics = AdminClient(sasl(user)).list_topics(timeout=TIMEOUT).topics
    assert topic not in topics, topics
    print(f"PASS {user} refused: {errors[0].name()}, topic not listed")


def main():
    admin = AdminClient({"bootstrap.servers": PLAIN_ADDR})
    setup(admin)
    topic = f"acl-{uuid.uuid4().hex[:6]}"
    alice_allowed(topic)
    refused("bob", topic)
    alice_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice",
                                    None, AclOperation.ANY, AclPermissionType.ANY)
    deleted = admin.delete_acls([alice_filter])[alice_filter].result(TIMEOUT)
    assert len(deleted) == 2, deleted
    assert admin.describe_acls(ANY_FILTER).result(TIMEOUT) == []
    print("PASS delete_acls: 2 deleted, none left")
    refused("alice", topic)
    print("security acls: all PASS")


if __name__ == "__main__":
    main()
