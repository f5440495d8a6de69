#!/usr/bin/env python3
"""Security checks with real clients: confluent-kafka (librdkafka) and kafka-python over SSL,
mTLS, SASL_SSL (PLAIN, SCRAM-SHA-512) and SASL_PLAINTEXT (SCRAM-SHA-256, OAUTHBEARER with an
unsecured JWS): produce, consume in
a group, admin calls; SCRAM users are created with AlterUserScramCredentials over PLAINTEXT.
Bad input: wrong passwords, unknown user, untrusted client certificate, plaintext client on the
TLS port; each must be refused and the broker must keep serving.

usage: security_clients.py PKI_DIR PLAINTEXT SSL SASL_SSL SASL_PLAINTEXT MTLS_REQUIRED
(MTLS_REQUIRED: an SSL listener of a broker with ssl.client.auth=required)
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

PKI, PLAIN_ADDR, SSL_ADDR, SASL_SSL_ADDR, SASL_PLAIN_ADDR, MTLS_ADDR = sys.argv[1:7]
N = 200
TIMEOUT = 30
USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def ssl_conf(mtls=False, rogue=False):
    conf = {"security.protocol": "SSL", "ssl.ca.location": f"{PKI}/ca.pem",
            "ssl.endpoint.identification.algorithm": "https"}
    if mtls:
        name = "rogue" if rogue else "client"
        conf["ssl.certificate.location"] = f"{PKI}/{name}.crt"
        conf["ssl.key.location"] = f"{PKI}/{name}.key"
    return conf


def sasl_conf(protocol, mechanism, user, password):
    conf = {"security.protocol": protocol, "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}
    if protocol == "SASL_SSL":
        conf["ssl.ca.location"] = f"{PKI}/ca.pem"
    return conf


def create_users():
    admin = AdminClient({"bootstrap.servers": PLAIN_ADDR})
    upserts = []
    for user, password in USERS.items():
        for mech in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
            upserts.append(UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, 8192),
                                                        password.encode()))
    for user, fut in admin.alter_user_scram_credentials(upserts).items():
        fut.result(TIMEOUT)
    futures = admin.describe_user_scram_credentials(["alice"])
    described = {user: fut.result(TIMEOUT) for user, fut in futures.items()}
    infos = described["alice"].scram_credential_infos
    mechs = sorted(str(i.mechanism) for i in infos)
    assert len(infos) == 2 and all(i.iterations == 8192 for i in infos), described
    print(f"created SCRAM users {sorted(USERS)}; alice has {mechs}")


def roundtrip(name, addr, extra):
    """Admin create topic, produce N, consume them in a group; returns nothing, raises on error."""
    topic = f"sec-{name}-{uuid.uuid4().hex[:6]}"
    base = {"bootstrap.servers": addr, **extra}
    admin = AdminClient(base)
    for fut in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        fut.result(TIMEOUT)
    md = admin.list_topics(timeout=TIMEOUT)
    broker = md.brokers[0]
    assert f"{broker.host}:{broker.port}" == addr, f"advertised {broker} for listener {addr}"
    errors = []
    producer = Producer({**base, "acks": "all"})
    for i in range(N):
        producer.produce(topic, key=str(i % 7), value=f"{name}-{i}",
                         on_delivery=lambda err, _m: err and errors.append(err))
    assert producer.flush(TIMEOUT) == 0 and not errors, errors
    consumer = Consumer({**base, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = set()
    deadline = time.time() + TIMEOUT
    while len(got) < N and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        got.add(msg.value().decode())
    consumer.commit(asynchronous=False)
    committed = consumer.committed([p for p in consumer.assignment()], timeout=TIMEOUT)
    consumer.close()
    assert got == {f"{name}-{i}" for i in range(N)}, f"{name}: got {len(got)} of {N}"
    assert sum(max(tp.offset, 0) for tp in committed) == N, committed
    print(f"PASS {name}: admin, {N} produced and consumed in a group, offsets committed")


def refused(name, addr, extra):
    """A client that must not get metadata."""
    admin = AdminClient({"bootstrap.servers": addr, **extra, "socket.timeout.ms": 3000})
    try:
        admin.list_topics(timeout=4)
    except KafkaException as e:
        print(f"PASS {name} refused: {e.args[0].str()[:100]}")
        return
    raise AssertionError(f"{name}: was not refused")


def kafka_python_checks():
    from kafka import KafkaConsumer, KafkaProducer
    topic = f"sec-kp-{uuid.uuid4().hex[:6]}"
    for label, conf in [
        ("kafka-python SSL", dict(bootstrap_servers=SSL_ADDR, security_protocol="SSL",
                                  ssl_cafile=f"{PKI}/ca.pem")),
        ("kafka-python mTLS", dict(bootstrap_servers=SSL_ADDR, security_protocol="SSL",
                                   ssl_cafile=f"{PKI}/ca.pem", ssl_certfile=f"{PKI}/client.crt",
                                   ssl_keyfile=f"{PKI}/client.key")),
        ("kafka-python SASL_SSL SCRAM-SHA-512", dict(
            bootstrap_servers=SASL_SSL_ADDR, security_protocol="SASL_SSL",
            ssl_cafile=f"{PKI}/ca.pem", sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username="bob", sasl_plain_password=USERS["bob"])),
        ("kafka-python SASL_PLAINTEXT PLAIN", dict(
            bootstrap_servers=SASL_PLAIN_ADDR, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN", sasl_plain_username="alice",
            sasl_plain_password=USERS["alice"])),
    ]:
        t = f"{topic}-{label.split()[-1].lower()}"
        producer = KafkaProducer(acks="all", **conf)
        for i in range(50):
            producer.send(t, f"v{i}".encode())
        producer.flush(TIMEOUT)
        producer.close()
        consumer = KafkaConsumer(t, group_id=f"g-{t}", auto_offset_reset="earliest",
                                 consumer_timeout_ms=10000, **conf)
        got = {m.value.decode() for m in consumer}
        consumer.close()
        assert got == {f"v{i}" for i in range(50)}, f"{label}: got {len(got)}"
        print(f"PASS {label}: 50 produced and consumed in a group")


def main():
    create_users()
    roundtrip("ssl", SSL_ADDR, ssl_conf())
    roundtrip("mtls", SSL_ADDR, ssl_conf(mtls=True))
    roundtrip("sasl-ssl-plain", SASL_SSL_ADDR, sasl_conf("SASL_SSL", "PLAIN", "alice", USERS["alice"]))
    roundtrip("sasl-ssl-scram512", SASL_SSL_ADDR,
              sasl_conf("SASL_SSL", "SCRAM-SHA-512", "bob", USERS["bob"]))
    roundtrip("sasl-plaintext-scram256", SASL_PLAIN_ADDR,
              sasl_conf("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", USERS["alice"]))
    # OAUTHBEARER (unsecured JWS, Kafka's default validation) where the listener enables it
    # (`listener.name.sasl_plaintext.sasl.enabled.mechanisms`), refused where it does not.
    oauth = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
             "enable.sasl.oauthbearer.unsecure.jwt": True,
             "sasl.oauthbearer.config": "principal=carol"}
    roundtrip("sasl-plaintext-oauthbearer", SASL_PLAIN_ADDR, oauth)
    refused("OAUTHBEARER where the listener does not enable it", SASL_SSL_ADDR,
            {**oauth, "security.protocol": "SASL_SSL", "ssl.ca.location": f"{PKI}/ca.pem"})
    kafka_python_checks()
    refused("wrong PLAIN password", SASL_SSL_ADDR, sasl_conf("SASL_SSL", "PLAIN", "alice", "nope"))
    refused("wrong SCRAM password", SASL_SSL_ADDR,
            sasl_conf("SASL_SSL", "SCRAM-SHA-512", "alice", "nope"))
    refused("unknown SCRAM user", SASL_PLAIN_ADDR,
            sasl_conf("SASL_PLAINTEXT", "SCRAM-SHA-256", "mallory", "x"))
    refused("client certificate from another CA", MTLS_ADDR, ssl_conf(mtls=True, rogue=True))
    refused("no client certificate where required", MTLS_ADDR, ssl_conf())
    roundtrip("mtls-required", MTLS_ADDR, ssl_conf(mtls=True))
    refused("plaintext client on the TLS port", SSL_ADDR, {})
    # Still serving after all that.
    roundtrip("ssl-after-bad-input", SSL_ADDR, ssl_conf())
    print("security clients: all PASS")


if __name__ == "__main__":
    main()
