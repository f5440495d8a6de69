package dev.sluice.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.errors.TransactionalIdAuthorizationException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * Kafka Streams word count against Sluice, at-least-once: lines in, counts out. The topology
 * re-keys by word (a repartition topic) and counts into a persistent store (a changelog topic),
 * both of which Streams creates through the AdminClient.
 */
@DisplayName("Kafka Streams")
class StreamsWordCountTest extends BrokerTest {

    @Test
    @DisplayName("word count with a state store (repartition + changelog topics), at_least_once")
    void wordCountAtLeastOnce() throws Exception {
        wordCount(StreamsConfig.AT_LEAST_ONCE);
    }

    @Test
    @DisplayName("word count, exactly_once_v2 (transactions)")
    void wordCountExactlyOnce() throws Exception {
        wordCount(StreamsConfig.EXACTLY_ONCE_V2);
    }

    /** The first exception in `e`'s cause chain that says the broker lacks transactions. */
    private static Throwable transactionsMissing(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof TransactionalIdAuthorizationException || t instanceof UnsupportedVersionException) {
                return t;
            }
        }
        return null;
    }

    private void wordCount(String guarantee) throws Exception {
        String app = unique("wc");
        String input = app + "-lines";
        String output = app + "-counts";
        createTopic(input, 2, Map.of());
        createTopic(output, 2, Map.of());

        List<String> lines = List.of(
                "the quick brown fox", "jumps over the lazy dog", "The dog barks",
                "a fox and a dog", "the end");
        Map<String, Long> expected = new HashMap<>();
        for (String line : lines) {
            for (String w : line.toLowerCase(Locale.ROOT).split("\\W+")) {
                expected.merge(w, 1L, Long::sum);
            }
        }

        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> text = builder.stream(input);
        KTable<String, Long> counts = text
                .flatMapValues(v -> Arrays.asList(v.toLowerCase(Locale.ROOT).split("\\W+")))
                .groupBy((k, word) -> word)
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts-store"));
        counts.toStream().to(output, Produced.with(Serdes.String(), Serdes.Long()));

        Path stateDir = Files.createTempDirectory("sluice-streams-");
        Properties props = common();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.GROUP_PROTOCOL_CONFIG), "classic");
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 500);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 10_000);

        Map<String, Long> latest = new HashMap<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        try (KafkaStreams streams = new KafkaStreams(builder.build(), props)) {
            streams.setUncaughtExceptionHandler(e -> {
                failure.compareAndSet(null, e);
                return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            streams.start();
            waitUntil("streams is RUNNING (or failed)", () -> streams.state() == KafkaStreams.State.RUNNING
                    || failure.get() != null);
            Throwable missing = transactionsMissing(failure.get());
            if (missing != null) {
                Assumptions.abort("not yet: " + missing.getClass().getSimpleName() + ": " + missing.getMessage());
            }
            assertNull(failure.get(), "stream thread failed");
            try (KafkaProducer<String, String> p = producer(Map.of())) {
                for (String line : lines) {
                    p.send(new ProducerRecord<>(input, null, line));
                }
                p.flush();
            }
            Properties cp = common();
            cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
            cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cp.put(ConsumerConfig.GROUP_ID_CONFIG, app + "-check");
            cp.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
            cp.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
            cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
                c.subscribe(List.of(output));
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (!latest.equals(expected) && System.nanoTime() < deadline) {
                    for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                        latest.put(r.key(), r.value());
                    }
                }
            }
            assertNull(failure.get(), "stream thread failed");
            assertEquals(expected, latest, "final counts");
            streams.close(Duration.ofSeconds(20));
        } finally {
            try (var paths = Files.walk(stateDir)) {
                paths.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
        // Streams made its internal topics on the broker.
        try (Admin admin = admin()) {
            Set<String> names = admin.listTopics().names().get();
            assertTrue(names.contains(app + "-counts-store-changelog"), names.toString());
            assertTrue(names.contains(app + "-counts-store-repartition"), names.toString());
        }
    }
}
