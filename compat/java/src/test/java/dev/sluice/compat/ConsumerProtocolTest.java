package dev.sluice.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * KIP-848's consumer group protocol (`group.protocol=consumer`, ConsumerGroupHeartbeat). Sluice
 * does not serve it yet: the test then aborts (reported as skipped, "not yet" in the README's
 * table) with the client's exact error; once the broker serves it, the test checks it works.
 */
@DisplayName("Consumer")
class ConsumerProtocolTest extends BrokerTest {

    @Test
    @DisplayName("group.protocol=consumer (KIP-848)")
    void consumerProtocol() throws Exception {
        String topic = unique("kip848");
        createTopic(topic, 2, Map.of());
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k", "v" + i));
            }
            p.flush();
        }
        try (KafkaConsumer<String, String> c = consumer(unique("g848"), Map.of(
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer"))) {
            c.subscribe(List.of(topic));
            int got = 0;
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (got < 10 && System.nanoTime() < deadline) {
                try {
                    got += c.poll(Duration.ofMillis(200)).count();
                } catch (UnsupportedVersionException e) {
                    Assumptions.abort("not yet: " + e.getClass().getSimpleName() + ": " + e.getMessage());
                } catch (KafkaException e) {
                    if (e.getCause() instanceof UnsupportedVersionException) {
                        Assumptions.abort("not yet: " + e.getCause().getClass().getSimpleName()
                                + ": " + e.getCause().getMessage());
                    }
                    throw e;
                }
            }
            assertEquals(10, got);
        }
    }
}
