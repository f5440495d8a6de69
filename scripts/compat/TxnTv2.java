// Transaction version 2 (KIP-890) with the Java client (kafka-clients 4.x), run as a single
// source file: java -cp 'compat/tools/lib/*' scripts/compat/TxnTv2.java BOOTSTRAP TOPIC PARTITIONS
//
// Against a cluster whose brokers finalize transaction.version=2 in ApiVersions, the client
// uses TV2: no AddPartitionsToTxn (the partition leaders add the partitions), EndTxn v5 bumps
// the producer epoch with every transaction. The program commits, aborts and commits again
// across every partition, and checks (exit status 0 only when all hold):
// - the epoch DescribeTransactions reports goes up by exactly one per transaction;
// - DescribeProducers on each partition shows the last transaction's bumped epoch (its marker);
// - a read_committed consumer reads exactly the committed records, in order per partition;
//   a read_uncommitted one reads the aborted ones too.
// Prints one "ok: ..." line per check, or "FAIL: ..." and exits 1.
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnTv2 {
    static final int PER_PARTITION = 20;
    static final long TIMEOUT_MS = 60_000;

    static void fail(String what) {
        System.out.println("FAIL: " + what);
        System.exit(1);
    }

    static int epoch(Admin admin, String id) throws Exception {
        TransactionDescription d = admin.describeTransactions(List.of(id)).description(id)
                .get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        return d.producerEpoch();
    }

    // Kafka's ApiExceptions carry no stack trace, and the JDK 17 source launcher then fails in
    // its own stack pruning ("IllegalArgumentException: 0 > -7", JDK-8362237), hiding the
    // exception: print it here instead.
    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable t) {
            System.out.println("FAIL: " + t);
            for (Throwable c = t.getCause(); c != null; c = c.getCause()) {
                System.out.println("  caused by: " + c);
            }
            t.printStackTrace(System.out);
            System.exit(1);
        }
    }

    static void run(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        String id = "tv2-" + UUID.randomUUID();
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        Properties p = (Properties) common.clone();
        p.put("transactional.id", id);
        p.put("transaction.timeout.ms", "30000");
        p.put("max.block.ms", "60000");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        List<String> committed = new ArrayList<>();
        List<String> aborted = new ArrayList<>();
        List<Integer> epochs = new ArrayList<>();
        long producerId;
        try (Admin admin = Admin.create(common);
             KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            epochs.add(epoch(admin, id));
            String[] outcomes = {"commit", "abort", "commit"};
            for (int t = 0; t < outcomes.length; t++) {
                producer.beginTransaction();
                for (int part = 0; part < partitions; part++) {
                    for (int i = 0; i < PER_PARTITION; i++) {
                        String value = outcomes[t] + "-" + t + "-" + part + "-" + i;
                        producer.send(new ProducerRecord<>(topic, part, "k" + part, value));
                        (outcomes[t].equals("commit") ? committed : aborted).add(value);
                    }
                }
                producer.flush();
                if (outcomes[t].equals("commit")) {
                    producer.commitTransaction();
                } else {
                    producer.abortTransaction();
                }
                epochs.add(epoch(admin, id));
            }
            for (int i = 1; i < epochs.size(); i++) {
                if (epochs.get(i).intValue() != epochs.get(i - 1).intValue() + 1) {
                    fail("epochs per transaction " + epochs + ": not bumped by one each (TV2 not used?)");
                }
            }
            System.out.println("ok: epoch bumped by every transaction " + epochs);
            producerId = admin.describeTransactions(List.of(id)).description(id)
                    .get(TIMEOUT_MS, TimeUnit.MILLISECONDS).producerId();
            List<TopicPartition> tps = new ArrayList<>();
            for (int part = 0; part < partitions; part++) {
                tps.add(new TopicPartition(topic, part));
            }
            var described = admin.describeProducers(tps).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            int last = epochs.get(epochs.size() - 1);
            for (TopicPartition tp : tps) {
                boolean seen = false;
                for (ProducerState s : described.get(tp).activeProducers()) {
                    if (s.producerId() == producerId) {
                        seen = true;
                        if (s.producerEpoch() != last) {
                            fail(tp + ": producer epoch " + s.producerEpoch() + ", the last marker's is " + last);
                        }
                    }
                }
                if (!seen) {
                    fail(tp + ": producer " + producerId + " not described");
                }
            }
            System.out.println("ok: every partition's last marker carries epoch " + last);
        }
        check(common, topic, partitions, "read_committed", committed);
        List<String> all = new ArrayList<>(committed);
        all.addAll(aborted);
        checkCount(common, topic, partitions, "read_uncommitted", all.size());
        System.out.println("ok");
    }

    static List<ConsumerRecord<String, String>> read(Properties common, String topic, int partitions,
                                                    String isolation, int expected) {
        Properties c = (Properties) common.clone();
        c.put("isolation.level", isolation);
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        List<ConsumerRecord<String, String>> got = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int part = 0; part < partitions; part++) {
                tps.add(new TopicPartition(topic, part));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            long quietUntil = System.currentTimeMillis() + 1000;
            while (System.currentTimeMillis() < deadline) {
                var records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    got.add(r);
                }
                if (!records.isEmpty()) {
                    quietUntil = System.currentTimeMillis() + 1000;
                } else if (got.size() >= expected && System.currentTimeMillis() > quietUntil) {
                    break;
                }
            }
        }
        return got;
    }

    static void check(Properties common, String topic, int partitions, String isolation,
                      List<String> expected) {
        List<ConsumerRecord<String, String>> got = read(common, topic, partitions, isolation, expected.size());
        Map<Integer, List<String>> perPartition = new HashMap<>();
        for (ConsumerRecord<String, String> r : got) {
            perPartition.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r.value());
        }
        for (int part = 0; part < partitions; part++) {
            List<String> want = new ArrayList<>();
            for (String v : expected) {
                if (v.split("-")[2].equals(String.valueOf(part))) {
                    want.add(v);
                }
            }
            List<String> have = perPartition.getOrDefault(part, List.of());
            if (!have.equals(want)) {
                fail(isolation + " partition " + part + ": read " + have.size() + " records, expected "
                        + want.size() + " committed in order; first read " + have.subList(0, Math.min(3, have.size())));
            }
        }
        System.out.println("ok: " + isolation + " read exactly the " + expected.size() + " committed records in order");
    }

    static void checkCount(Properties common, String topic, int partitions, String isolation, int expected) {
        int got = read(common, topic, partitions, isolation, expected).size();
        if (got != expected) {
            fail(isolation + " read " + got + " records, expected " + expected);
        }
        System.out.println("ok: " + isolation + " read all " + expected + " records, aborted ones too");
    }
}
