package dev.sluice.compat;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Base of every test class: one Sluice broker for the class (started before the first test,
 * stopped after the last, which also checks it is still alive), and builders for clients
 * pointed at it. Topic and group names are unique per call so tests do not see each other.
 */
abstract class BrokerTest {
    static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final AtomicInteger SEQ = new AtomicInteger();

    static SluiceBroker broker;

    @BeforeAll
    static void startBroker() throws Exception {
        broker = SluiceBroker.start();
    }

    @AfterAll
    static void stopBroker() throws Exception {
        if (broker == null) {
            return;
        }
        boolean alive = broker.alive();
        String tail = alive ? "" : broker.logTail(40);
        broker.close();
        broker = null;
        assertTrue(alive, "the broker exited during the tests; its log ends:\n" + tail);
    }

    static String unique(String prefix) {
        return prefix + "-" + SEQ.incrementAndGet() + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    static Properties common() {
        Properties p = new Properties();
        p.put("bootstrap.servers", broker.bootstrap());
        return p;
    }

    static Admin admin() {
        Properties p = common();
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        return Admin.create(p);
    }

    static KafkaProducer<String, String> producer(Map<String, Object> overrides) {
        Properties p = common();
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30_000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        p.putAll(overrides);
        return new KafkaProducer<>(p);
    }

    /** A consumer; with a group id the classic protocol unless overridden. */
    static KafkaConsumer<String, String> consumer(String groupId, Map<String, Object> overrides) {
        Properties p = common();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        if (groupId != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        }
        p.putAll(overrides);
        if ("consumer".equals(p.get(ConsumerConfig.GROUP_PROTOCOL_CONFIG))) {
            // KIP-848 moves these to the broker; the client refuses them.
            p.remove(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG);
            p.remove(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG);
        }
        return new KafkaConsumer<>(p);
    }

    static void createTopic(String name, int partitions, Map<String, String> configs) throws Exception {
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs)))
                    .all().get();
        }
    }

    /** Reads every record of the given partitions from their start until `expected` arrived. */
    static List<ConsumerRecord<String, String>> readAll(Collection<TopicPartition> partitions, int expected) {
        try (KafkaConsumer<String, String> c = consumer(null, Map.of())) {
            c.assign(partitions);
            c.seekToBeginning(partitions);
            return pollUntil(c, expected);
        }
    }

    static List<ConsumerRecord<String, String>> pollUntil(KafkaConsumer<String, String> c, int expected) {
        List<ConsumerRecord<String, String>> got = new ArrayList<>();
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (got.size() < expected && System.nanoTime() < deadline) {
            c.poll(Duration.ofMillis(200)).forEach(got::add);
        }
        if (got.size() < expected) {
            fail("got " + got.size() + " of " + expected + " records within " + TIMEOUT);
        }
        return got;
    }

    static void waitUntil(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out waiting until " + what);
            }
            Thread.sleep(20);
        }
    }

    static List<TopicPartition> partitions(String topic, int count) {
        List<TopicPartition> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(new TopicPartition(topic, i));
        }
        return out;
    }
}
