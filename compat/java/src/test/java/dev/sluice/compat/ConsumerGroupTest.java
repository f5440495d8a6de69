package dev.sluice.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** The Java consumer in a group with `group.protocol=classic`, and its position controls. */
@DisplayName("Consumer")
class ConsumerGroupTest extends BrokerTest {

    /** Records the partitions a consumer's rebalance listener was told about. */
    static final class Tracker implements ConsumerRebalanceListener {
        final Set<TopicPartition> owned = new HashSet<>();
        final List<Set<TopicPartition>> revocations = new ArrayList<>();

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            revocations.add(new HashSet<>(partitions));
            owned.removeAll(partitions);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            owned.addAll(partitions);
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            owned.removeAll(partitions);
        }
    }

    private static void produce(String topic, int partitions, int perPartition) throws Exception {
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (int part = 0; part < partitions; part++) {
                for (int i = 0; i < perPartition; i++) {
                    p.send(new ProducerRecord<>(topic, part, "k", part + ":" + i));
                }
            }
            p.flush();
        }
    }

    /** Two members join one after the other; the partitions end split 2/2 with none twice. */
    private static void twoMembers(String assignor, boolean cooperative) throws Exception {
        String topic = unique("grp-" + (cooperative ? "coop" : "eager"));
        String group = unique("g");
        createTopic(topic, 4, Map.of());
        produce(topic, 4, 50);
        Map<String, Object> cfg = Map.of(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
        Tracker ta = new Tracker();
        Tracker tb = new Tracker();
        Set<String> consumed = new HashSet<>();
        try (KafkaConsumer<String, String> a = consumer(group, cfg);
             KafkaConsumer<String, String> b = consumer(group, cfg)) {
            a.subscribe(List.of(topic), ta);
            waitUntil("the first member owns all 4 partitions", () -> {
                a.poll(Duration.ofMillis(100)).forEach(r -> consumed.add(r.value()));
                return ta.owned.size() == 4;
            });
            a.commitSync();
            b.subscribe(List.of(topic), tb);
            waitUntil("the partitions are split 2/2", () -> {
                a.poll(Duration.ofMillis(50)).forEach(r -> consumed.add(r.value()));
                b.poll(Duration.ofMillis(50)).forEach(r -> consumed.add(r.value()));
                return ta.owned.size() == 2 && tb.owned.size() == 2;
            });
            Set<TopicPartition> all = new HashSet<>(ta.owned);
            all.addAll(tb.owned);
            assertEquals(4, all.size(), "each partition owned once");
            assertEquals(ta.owned, a.assignment());
            assertEquals(tb.owned, b.assignment());
            // Eager revokes everything the first member had; cooperative only what moved.
            Set<TopicPartition> revokedFromA = new HashSet<>();
            ta.revocations.forEach(revokedFromA::addAll);
            if (cooperative) {
                assertEquals(tb.owned, revokedFromA, "cooperative revokes only the moved partitions");
            } else {
                assertEquals(new HashSet<>(partitions(topic, 4)), revokedFromA, "eager revokes all");
            }
            waitUntil("all 200 records consumed", () -> {
                a.poll(Duration.ofMillis(50)).forEach(r -> consumed.add(r.value()));
                b.poll(Duration.ofMillis(50)).forEach(r -> consumed.add(r.value()));
                return consumed.size() == 200;
            });
            assertEquals(a.groupMetadata().generationId(), b.groupMetadata().generationId());
        }
    }

    @Test
    @DisplayName("group.protocol=classic, eager assignor (range)")
    void eager() throws Exception {
        twoMembers(RangeAssignor.class.getName(), false);
    }

    @Test
    @DisplayName("group.protocol=classic, cooperative assignor (cooperative-sticky)")
    void cooperative() throws Exception {
        twoMembers(CooperativeStickyAssignor.class.getName(), true);
    }

    @Test
    @DisplayName("static membership (group.instance.id): rejoin without a rebalance")
    void staticMembership() throws Exception {
        String topic = unique("static");
        String group = unique("g");
        createTopic(topic, 2, Map.of());
        Map<String, Object> cfg = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-1");
        Tracker t1 = new Tracker();
        int generation;
        try (KafkaConsumer<String, String> c = consumer(group, cfg)) {
            c.subscribe(List.of(topic), t1);
            waitUntil("the static member owns both partitions", () -> {
                c.poll(Duration.ofMillis(100));
                return t1.owned.size() == 2;
            });
            generation = c.groupMetadata().generationId();
            assertEquals("instance-1", c.groupMetadata().groupInstanceId().orElse(null));
            try (Admin admin = admin()) {
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                        .describedGroups().get(group).get();
                assertEquals(1, d.members().size());
                MemberDescription m = d.members().iterator().next();
                assertEquals("instance-1", m.groupInstanceId().orElse(null));
            }
        }
        // A static member's close sends no LeaveGroup: the group keeps it until its session
        // times out, and the same instance rejoining gets its partitions back at once, in the
        // same generation.
        Tracker t2 = new Tracker();
        try (KafkaConsumer<String, String> c = consumer(group, cfg)) {
            c.subscribe(List.of(topic), t2);
            waitUntil("the restarted static member owns both partitions", () -> {
                c.poll(Duration.ofMillis(100));
                return t2.owned.size() == 2;
            });
            assertEquals(generation, c.groupMetadata().generationId(), "no rebalance on static rejoin");
        }
    }

    @Test
    @DisplayName("commitSync/commitAsync, committed(), resume from the committed offset")
    void commits() throws Exception {
        String topic = unique("commit");
        String group = unique("g");
        createTopic(topic, 2, Map.of());
        produce(topic, 2, 10);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = consumer(group, Map.of())) {
            c.subscribe(List.of(topic));
            pollUntil(c, 20);
            c.commitSync(Map.of(p0, new OffsetAndMetadata(4, "meta-p0")));
            Map<TopicPartition, Exception> asyncResult = new HashMap<>();
            boolean[] done = {false};
            c.commitAsync(Map.of(p1, new OffsetAndMetadata(7)), (offsets, e) -> {
                done[0] = true;
                if (e != null) {
                    asyncResult.put(p1, e);
                }
            });
            waitUntil("commitAsync completed", () -> {
                c.poll(Duration.ofMillis(50));
                return done[0];
            });
            assertTrue(asyncResult.isEmpty(), "commitAsync failed: " + asyncResult);
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.of(p0, p1));
            assertEquals(4, committed.get(p0).offset());
            assertEquals("meta-p0", committed.get(p0).metadata());
            assertEquals(7, committed.get(p1).offset());
        }
        // A new member of the group starts where the group committed: 6 + 3 records left.
        try (KafkaConsumer<String, String> c = consumer(group, Map.of())) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> rest = pollUntil(c, 9);
            Set<String> values = new HashSet<>();
            rest.forEach(r -> values.add(r.value()));
            assertEquals(9, values.size());
            assertTrue(values.contains("0:4") && !values.contains("0:3"), values.toString());
            assertTrue(values.contains("1:7") && !values.contains("1:6"), values.toString());
        }
    }

    @Test
    @DisplayName("seek, seekToBeginning/End, position, offsetsForTimes, beginning/endOffsets")
    void seekAndTimes() throws Exception {
        String topic = unique("seek");
        createTopic(topic, 1, Map.of());
        TopicPartition tp = new TopicPartition(topic, 0);
        long base = 1_700_000_000_000L;
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (int i = 0; i < 100; i++) {
                p.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "k", "v" + i));
            }
            p.flush();
        }
        try (KafkaConsumer<String, String> c = consumer(null, Map.of())) {
            c.assign(List.of(tp));
            assertEquals(0L, c.beginningOffsets(List.of(tp)).get(tp));
            assertEquals(100L, c.endOffsets(List.of(tp)).get(tp));
            // The first record at or after base + 41.5 s is the one stamped base + 42 s.
            Map<TopicPartition, OffsetAndTimestamp> found = c.offsetsForTimes(Map.of(tp, base + 41_500));
            assertNotNull(found.get(tp));
            assertEquals(42L, found.get(tp).offset());
            assertEquals(base + 42_000, found.get(tp).timestamp());
            // Past the last timestamp: no offset.
            assertEquals(null, c.offsetsForTimes(Map.of(tp, base + 1_000_000)).get(tp));
            c.seek(tp, found.get(tp).offset());
            assertEquals("v42", pollUntil(c, 1).get(0).value());
            c.seekToEnd(List.of(tp));
            assertEquals(100L, c.position(tp));
            c.seekToBeginning(List.of(tp));
            assertEquals(0L, c.position(tp));
            c.seek(tp, 97);
            List<ConsumerRecord<String, String>> tail = pollUntil(c, 3);
            assertEquals("v97", tail.get(0).value());
            assertEquals(100L, c.position(tp));
        }
    }
}
