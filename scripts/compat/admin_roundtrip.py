#!/usr/bin/env python3
"""confluent-kafka (librdkafka) AdminClient round trip over Sluice's admin APIs.

Usage: admin_roundtrip.py BOOTSTRAP TOPIC
Creates TOPIC (3 partitions, retention.ms override), checks DescribeConfigs (value and
source), IncrementalAlterConfigs (SET, APPEND; APPEND on a non-list config is refused),
legacy AlterConfigs, DescribeConfigs of the broker, CreatePartitions 3 -> 6 with a produce to
partition 5, DeleteRecords, DeleteTopics (gone from metadata, unknown on a second delete).
Exits non-zero on the first difference from Kafka's behaviour.
"""
import sys
import time
import warnings

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

TIMEOUT_S = 30
# Legacy AlterConfigs is exercised on purpose.
warnings.filterwarnings("ignore", message="alter_configs has been deprecated")


def fail(message):
    raise SystemExit(f"admin: {message}")


def one(futures):
    """The only result of an admin call's future dict."""
    (fut,) = futures.values()
    return fut.result(timeout=TIMEOUT_S)


def error_code(futures):
    """The Kafka error code an admin call failed with (None when it succeeded)."""
    try:
        one(futures)
    except KafkaException as e:
        return e.args[0].code()
    return None


def topic_configs(admin, topic):
    return one(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]))


def wait_for(what, cond):
    deadline = time.monotonic() + TIMEOUT_S
    while not cond():
        if time.monotonic() > deadline:
            fail(f"timed out: {what}")
        time.sleep(0.1)


def partitions_of(admin, topic):
    md = admin.list_topics(timeout=TIMEOUT_S)
    return len(md.topics[topic].partitions) if topic in md.topics and not md.topics[topic].error else 0


def main() -> int:
    bootstrap, topic = sys.argv[1], sys.argv[2]
    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4"}
    admin = AdminClient(conf)

    one(admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                      config={"retention.ms": "3600000"})]))
    wait_for("topic listed", lambda: partitions_of(admin, topic) == 3)
    bad = NewTopic(topic + "-bad", num_partitions=1, replication_factor=1,
                   config={"retention.ms": "soon"})
    if error_code(admin.create_topics([bad])) != KafkaError.INVALID_CONFIG:
        fail("invalid config value accepted at creation")

    configs = topic_configs(admin, topic)
    retention = configs["retention.ms"]
    if retention.value != "3600000" or retention.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value:
        fail(f"retention.ms described as {retention}")
    if configs["segment.bytes"].source != ConfigSource.DEFAULT_CONFIG.value:
        fail(f"segment.bytes described as {configs['segment.bytes']}")

    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    one(admin.incremental_alter_configs([res]))
    configs = topic_configs(admin, topic)
    if configs["retention.ms"].value != "7200000":
        fail(f"incremental SET not applied: {configs['retention.ms']}")
    if configs["cleanup.policy"].value != "delete,compact":
        fail(f"incremental APPEND not applied: {configs['cleanup.policy']}")
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND),
    ])
    if error_code(admin.incremental_alter_configs([res])) != KafkaError.INVALID_CONFIG:
        fail("APPEND on a non-list config accepted")

    # Legacy AlterConfigs replaces the whole override set.
    one(admin.alter_configs([ConfigResource(ResourceType.TOPIC, topic,
                                            set_config={"segment.ms": "600000"})]))
    configs = topic_configs(admin, topic)
    if configs["retention.ms"].source != ConfigSource.DEFAULT_CONFIG.value:
        fail(f"AlterConfigs kept an unnamed override: {configs['retention.ms']}")
    if configs["segment.ms"].value != "600000":
        fail(f"AlterConfigs not applied: {configs['segment.ms']}")

    broker = one(admin.describe_configs([ConfigResource(ResourceType.BROKER, "0")]))
    # As in Kafka: log.segment.bytes is a dynamic broker config (not read-only), broker.id is not.
    if "log.segment.bytes" not in broker or broker["log.segment.bytes"].is_read_only:
        fail("dynamic broker config log.segment.bytes described read-only")
    if "broker.id" not in broker or not broker["broker.id"].is_read_only:
        fail("broker.id not described read-only")

    one(admin.create_partitions([NewPartitions(topic, 6)]))
    wait_for("6 partitions listed", lambda: partitions_of(admin, topic) == 6)
    if error_code(admin.create_partitions([NewPartitions(topic, 4)])) != KafkaError.INVALID_PARTITIONS:
        fail("shrinking partitions accepted")
    producer = Producer({**conf, "acks": "all"})
    delivered = []
    for i in range(10):
        producer.produce(topic, value=f"v{i}".encode(), partition=5,
                         on_delivery=lambda err, msg: delivered.append((err, msg.partition())))
    if producer.flush(TIMEOUT_S) or len(delivered) != 10 or any(e for e, _ in delivered):
        fail(f"produce to partition 5: {delivered}")

    result = one(admin.delete_records([TopicPartition(topic, 5, 4)]))
    if result.low_watermark != 4:
        fail(f"DeleteRecords low watermark {result.low_watermark}")

    one(admin.delete_topics([topic]))
    wait_for("topic gone", lambda: partitions_of(admin, topic) == 0)
    if error_code(admin.delete_topics([topic])) != KafkaError.UNKNOWN_TOPIC_OR_PART:
        fail("second delete did not answer UNKNOWN_TOPIC_OR_PARTITION")
    return 0


if __name__ == "__main__":
    sys.exit(main())
