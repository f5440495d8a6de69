package dev.sluice.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Future;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The Java producer: idempotence (its default), every codec, headers, each acks level. */
@DisplayName("Producer")
class ProducerTest extends BrokerTest {

    /** Sends `n` keyed records and returns their metadata, in send order. */
    private static List<RecordMetadata> send(KafkaProducer<String, String> p, String topic, int n)
            throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            futures.add(p.send(new ProducerRecord<>(topic, "k" + (i % 13), "v" + i)));
        }
        p.flush();
        List<RecordMetadata> out = new ArrayList<>();
        for (Future<RecordMetadata> f : futures) {
            out.add(f.get());
        }
        return out;
    }

    /** Every value v0..v{n-1} came back exactly once, and per key in send order. */
    private static void assertExactlyOnceInOrder(List<ConsumerRecord<String, String>> got, int n) {
        assertEquals(n, got.size(), "record count");
        Set<String> seen = new HashSet<>();
        Map<String, Integer> lastPerKey = new HashMap<>();
        for (ConsumerRecord<String, String> r : got) {
            assertTrue(seen.add(r.value()), "duplicate " + r.value());
            int i = Integer.parseInt(r.value().substring(1));
            assertEquals("k" + (i % 13), r.key(), "key of " + r.value());
            Integer last = lastPerKey.put(r.key(), i);
            assertTrue(last == null || last < i, "order of key " + r.key());
        }
    }

    @Test
    @DisplayName("idempotent by default (acks=all, enable.idempotence=true)")
    void idempotentDefault() throws Exception {
        String topic = unique("idem");
        createTopic(topic, 3, Map.of());
        int n = 3000;
        // No overrides: the 4.x producer is idempotent with acks=all unless told otherwise, so
        // this needs InitProducerId and sequence numbers accepted by the broker.
        try (KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 2))) {
            List<RecordMetadata> acks = send(p, topic, n);
            Map<Integer, Long> next = new HashMap<>();
            for (RecordMetadata md : acks) {
                // Offsets per partition are dense and in send order.
                long expected = next.getOrDefault(md.partition(), 0L);
                assertEquals(expected, md.offset(), "offset in partition " + md.partition());
                next.put(md.partition(), expected + 1);
            }
        }
        assertExactlyOnceInOrder(readAll(partitions(topic, 3), n), n);
    }

    @ParameterizedTest(name = "compression.type={0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    @DisplayName("compression codecs")
    void codecs(String codec) throws Exception {
        String topic = unique("codec-" + codec);
        createTopic(topic, 2, Map.of());
        int n = 2000;
        try (KafkaProducer<String, String> p = producer(Map.of(
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                ProducerConfig.LINGER_MS_CONFIG, 5))) {
            send(p, topic, n);
        }
        assertExactlyOnceInOrder(readAll(partitions(topic, 2), n), n);
    }

    @Test
    @DisplayName("record headers, null keys and values, timestamps")
    void headers() throws Exception {
        String topic = unique("headers");
        createTopic(topic, 1, Map.of());
        long ts = 1_700_000_000_000L;
        List<Header> headers = List.of(
                new RecordHeader("trace", "abc".getBytes(StandardCharsets.UTF_8)),
                new RecordHeader("trace", "dup".getBytes(StandardCharsets.UTF_8)),
                new RecordHeader("empty", new byte[0]),
                new RecordHeader("null", null));
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            p.send(new ProducerRecord<>(topic, 0, ts, "key", "value", headers)).get();
            p.send(new ProducerRecord<String, String>(topic, 0, (Long) (ts + 1), null, null)).get();
        }
        List<ConsumerRecord<String, String>> got = readAll(partitions(topic, 1), 2);
        ConsumerRecord<String, String> first = got.get(0);
        assertEquals("key", first.key());
        assertEquals("value", first.value());
        assertEquals(ts, first.timestamp());
        Header[] back = first.headers().toArray();
        assertEquals(4, back.length, "header count");
        for (int i = 0; i < 4; i++) {
            assertEquals(headers.get(i).key(), back[i].key());
            if (headers.get(i).value() == null) {
                assertNull(back[i].value());
            } else {
                assertArrayEquals(headers.get(i).value(), back[i].value());
            }
        }
        assertNull(got.get(1).key());
        assertNull(got.get(1).value());
        assertEquals(ts + 1, got.get(1).timestamp());
        assertEquals(0, got.get(1).headers().toArray().length);
    }

    @ParameterizedTest(name = "acks={0}")
    @ValueSource(strings = {"0", "1", "all"})
    @DisplayName("acks levels")
    void acks(String acks) throws Exception {
        String topic = unique("acks-" + acks);
        createTopic(topic, 2, Map.of());
        int n = 1000;
        Map<String, Object> config = new HashMap<>();
        config.put(ProducerConfig.ACKS_CONFIG, acks);
        // Idempotence needs acks=all; turn it off for the weaker levels as users must.
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, acks.equals("all"));
        try (KafkaProducer<String, String> p = producer(config)) {
            List<RecordMetadata> mds = send(p, topic, n);
            for (RecordMetadata md : mds) {
                if (acks.equals("0")) {
                    assertEquals(-1L, md.offset(), "acks=0 learns no offset");
                } else {
                    assertTrue(md.offset() >= 0, "offset " + md.offset());
                }
            }
        }
        assertExactlyOnceInOrder(readAll(partitions(topic, 2), n), n);
    }

    @Test
    @DisplayName("large records (900 KiB) and many partitions")
    void largeRecords() throws Exception {
        String topic = unique("large");
        createTopic(topic, 8, Map.of());
        String big = "x".repeat(900 * 1024);
        try (KafkaProducer<String, String> p = producer(Map.of(
                ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 1_000_000))) {
            for (int i = 0; i < 8; i++) {
                p.send(new ProducerRecord<>(topic, i, "big" + i, big)).get();
            }
        }
        List<ConsumerRecord<String, String>> got = readAll(partitions(topic, 8), 8);
        Set<TopicPartition> where = new HashSet<>();
        for (ConsumerRecord<String, String> r : got) {
            assertEquals(big, r.value());
            assertEquals("big" + r.partition(), r.key());
            where.add(new TopicPartition(r.topic(), r.partition()));
        }
        assertEquals(8, where.size());
    }
}
