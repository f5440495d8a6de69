package dev.sluice.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListConfigResourcesOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** The Java AdminClient. */
@DisplayName("AdminClient")
class AdminTest extends BrokerTest {

    @Test
    @DisplayName("createTopics, listTopics, describeTopics, deleteTopics")
    void topics() throws Exception {
        String topic = unique("adm-topic");
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)
                    .configs(Map.of("retention.ms", "3600000")))).all().get();
            ExecutionException dup = assertThrows(ExecutionException.class, () -> admin
                    .createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get());
            assertInstanceOf(TopicExistsException.class, dup.getCause());
            assertTrue(admin.listTopics().names().get().contains(topic));
            // Kafka 4's client describes topics with DescribeTopicPartitions (KIP-966), paged:
            // two partitions per response makes it follow the broker's cursor.
            long before = broker.requestCount("DescribeTopicPartitions");
            TopicDescription d = admin.describeTopics(List.of(topic),
                    new DescribeTopicsOptions().partitionSizeLimitPerResponse(2))
                    .allTopicNames().get().get(topic);
            assertEquals(2, broker.requestCount("DescribeTopicPartitions") - before,
                    "3 partitions, 2 per response: two DescribeTopicPartitions requests");
            assertEquals(3, d.partitions().size());
            for (int i = 0; i < 3; i++) {
                assertEquals(i, d.partitions().get(i).partition());
            }
            assertFalse(d.isInternal());
            assertNotNull(d.topicId());
            d.partitions().forEach(p -> {
                assertEquals(1, p.replicas().size());
                assertEquals(p.leader(), p.replicas().get(0));
                assertEquals(p.replicas(), p.isr());
            });
            // By id too.
            TopicDescription byId = admin.describeTopics(
                    org.apache.kafka.common.TopicCollection.ofTopicIds(List.of(d.topicId())))
                    .allTopicIds().get().get(d.topicId());
            assertEquals(topic, byId.name());
            admin.deleteTopics(List.of(topic)).all().get();
            waitUntil("the topic is gone from listTopics", () -> {
                try {
                    return !admin.listTopics().names().get().contains(topic);
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });
            ExecutionException gone = assertThrows(ExecutionException.class,
                    () -> admin.describeTopics(List.of(topic)).allTopicNames().get());
            assertInstanceOf(UnknownTopicOrPartitionException.class, gone.getCause());
        }
    }

    @Test
    @DisplayName("describeConfigs, incrementalAlterConfigs (topic and broker), listConfigResources")
    void configs() throws Exception {
        String topic = unique("adm-cfg");
        createTopic(topic, 1, Map.of("retention.ms", "3600000"));
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = admin()) {
            Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
            assertEquals("3600000", cfg.get("retention.ms").value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("retention.ms").source());
            assertNotNull(cfg.get("segment.bytes"), "defaults are listed too");
            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("segment.bytes", "1048576"), AlterConfigOp.OpType.SET))))
                    .all().get();
            cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
            assertEquals("7200000", cfg.get("retention.ms").value());
            assertEquals("1048576", cfg.get("segment.bytes").value());
            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("segment.bytes", ""), AlterConfigOp.OpType.DELETE))))
                    .all().get();
            cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
            assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, cfg.get("segment.bytes").source());

            // Kafka 4.1+: which resources have configs (ListConfigResources).
            Collection<ConfigResource> listed = admin.listConfigResources(
                    Set.of(ConfigResource.Type.TOPIC), new ListConfigResourcesOptions()).all().get();
            assertTrue(listed.contains(res), listed.toString());

            Node node = admin.describeCluster().nodes().get().iterator().next();
            ConfigResource brokerRes = new ConfigResource(ConfigResource.Type.BROKER, node.idString());
            Config brokerCfg = admin.describeConfigs(List.of(brokerRes)).all().get().get(brokerRes);
            assertFalse(brokerCfg.entries().isEmpty(), "broker configs listed");
        }
    }

    @Test
    @DisplayName("createPartitions")
    void partitions() throws Exception {
        String topic = unique("adm-parts");
        createTopic(topic, 2, Map.of());
        try (Admin admin = admin()) {
            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get();
            waitUntil("describeTopics reports 5 partitions", () -> {
                try {
                    return admin.describeTopics(List.of(topic)).allTopicNames().get()
                            .get(topic).partitions().size() == 5;
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });
        }
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            assertEquals(4, p.send(new ProducerRecord<>(topic, 4, "k", "v")).get().partition());
        }
    }

    @Test
    @DisplayName("listOffsets (earliest, latest, timestamp, max-timestamp) and deleteRecords")
    void offsetsAndDeleteRecords() throws Exception {
        String topic = unique("adm-del");
        createTopic(topic, 1, Map.of());
        TopicPartition tp = new TopicPartition(topic, 0);
        long base = 1_700_000_000_000L;
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (int i = 0; i < 50; i++) {
                p.send(new ProducerRecord<>(topic, 0, base + i, "k", "v" + i));
            }
            p.flush();
        }
        try (Admin admin = admin()) {
            assertEquals(0L, offset(admin, tp, OffsetSpec.earliest()));
            assertEquals(50L, offset(admin, tp, OffsetSpec.latest()));
            assertEquals(20L, offset(admin, tp, OffsetSpec.forTimestamp(base + 20)));
            assertEquals(49L, offset(admin, tp, OffsetSpec.maxTimestamp()));
            long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(30)))
                    .lowWatermarks().get(tp).get().lowWatermark();
            assertEquals(30L, low);
            assertEquals(30L, offset(admin, tp, OffsetSpec.earliest()));
        }
        assertEquals("v30", readAll(List.of(tp), 20).get(0).value());
    }

    private static long offset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        ListOffsetsResultInfo info = admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get();
        return info.offset();
    }

    @Test
    @DisplayName("consumer groups: list, describe, list/alter/delete offsets, delete group")
    void groups() throws Exception {
        String topic = unique("adm-grp");
        String group = unique("g");
        createTopic(topic, 2, Map.of());
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (Admin admin = admin()) {
            try (KafkaConsumer<String, String> c = consumer(group, Map.of())) {
                c.subscribe(List.of(topic));
                waitUntil("the member owns both partitions", () -> {
                    c.poll(Duration.ofMillis(100));
                    return c.assignment().size() == 2;
                });
                c.commitSync(Map.of(p0, new OffsetAndMetadata(0), p1, new OffsetAndMetadata(0)));
                Collection<GroupListing> listed = admin.listGroups().all().get();
                assertTrue(listed.stream().anyMatch(g -> g.groupId().equals(group)), listed.toString());
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                        .describedGroups().get(group).get();
                assertEquals(GroupState.STABLE, d.groupState());
                assertEquals(1, d.members().size());
                assertEquals(Set.of(p0, p1), d.members().iterator().next().assignment().topicPartitions());
                // The 4.x client offers range first, then cooperative-sticky.
                assertEquals("range", d.partitionAssignor());
            }
            Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get();
            assertEquals(0L, offsets.get(p0).offset());
            admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(0),
                    p1, new OffsetAndMetadata(0, "reset"))).all().get();
            offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            assertEquals("reset", offsets.get(p1).metadata());
            admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all().get();
            offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            assertFalse(offsets.containsKey(p1) && offsets.get(p1) != null, offsets.toString());
            // The member left on close, so the group is empty and can be deleted.
            admin.deleteConsumerGroups(List.of(group)).all().get();
            Set<String> left = admin.listGroups().all().get().stream()
                    .map(GroupListing::groupId).collect(Collectors.toSet());
            assertFalse(left.contains(group));
        }
    }

    @Test
    @DisplayName("electLeaders (preferred): already elected on one node")
    void electLeaders() throws Exception {
        String topic = unique("adm-elect");
        createTopic(topic, 2, Map.of());
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition missing = new TopicPartition(topic, 7);
        try (Admin admin = admin()) {
            Map<TopicPartition, Optional<Throwable>> r = admin
                    .electLeaders(ElectionType.PREFERRED, Set.of(p0, missing)).partitions().get();
            assertInstanceOf(ElectionNotNeededException.class, r.get(p0).orElseThrow());
            assertInstanceOf(UnknownTopicOrPartitionException.class, r.get(missing).orElseThrow());
            // All partitions: only those that needed an election are listed, here none.
            assertTrue(admin.electLeaders(ElectionType.PREFERRED, null).partitions().get().isEmpty());
        }
    }

    @Test
    @DisplayName("describeCluster")
    void cluster() throws Exception {
        try (Admin admin = admin()) {
            DescribeClusterResult r = admin.describeCluster();
            Collection<Node> nodes = r.nodes().get();
            assertEquals(1, nodes.size());
            Node node = nodes.iterator().next();
            assertEquals(broker.bootstrap(), node.host() + ":" + node.port());
            assertEquals(node, r.controller().get());
            assertNotNull(r.clusterId().get());
        }
    }
}
