package dev.sluice.compat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A Sluice broker run for one test class: the binary named by SLUICE_BIN, a temp data dir, a
 * port the kernel picks on loopback. {@link #start()} returns once the broker logged its
 * {@code ready listening=ADDR} line; {@link #close()} stops it (SIGTERM, then SIGKILL) and
 * removes the data dir. The broker's log is kept in the data dir's parent until then and
 * printed on a failed start.
 */
public final class SluiceBroker implements AutoCloseable {
    private static final Pattern READY = Pattern.compile("ready listening=\"?([0-9.]+:[0-9]+)");
    private static final Pattern ADMIN = Pattern.compile("admin listening=\"?([0-9.]+:[0-9]+)");
    private static final long READY_TIMEOUT_MS = 30_000;

    private final Path dir;
    private final Process process;
    private final String bootstrap;
    private final String adminAddr;
    private final StringBuffer log = new StringBuffer();

    private SluiceBroker(Path dir, Process process, String bootstrap, String adminAddr) {
        this.dir = dir;
        this.process = process;
        this.bootstrap = bootstrap;
        this.adminAddr = adminAddr;
    }

    /** Where SLUICE_BIN points (the debug build by default, relative to the repository). */
    public static Path binary() {
        String env = System.getenv("SLUICE_BIN");
        Path bin = (env == null || env.isBlank() || env.equals("null"))
                ? Path.of("../../target/debug/sluice")
                : Path.of(env);
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException("no sluice binary at " + bin.toAbsolutePath()
                    + " (build it, or set SLUICE_BIN)");
        }
        return bin.toAbsolutePath();
    }

    public static SluiceBroker start() throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("sluice-java-");
        Path data = dir.resolve("data");
        Files.createDirectories(data);
        // Tests join groups often: no initial rebalance delay (Kafka's test brokers use 0 too).
        Path config = dir.resolve("sluice.toml");
        Files.writeString(config, "\"group.initial.rebalance.delay.ms\" = 0\n");
        ProcessBuilder pb = new ProcessBuilder(List.of(binary().toString(),
                "--config", config.toString(),
                "--listen", "127.0.0.1:0",
                "--admin-listen", "127.0.0.1:0",
                "--data-dir", data.toString(),
                "--cores", "2"));
        pb.environment().put("NO_COLOR", "1");
        pb.environment().putIfAbsent("RUST_LOG", "info");
        pb.redirectErrorStream(true);
        pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        Process process = pb.start();
        StringBuffer log = new StringBuffer();
        CompletableFuture<String> ready = new CompletableFuture<>();
        CompletableFuture<String> admin = new CompletableFuture<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(
                    new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    log.append(line).append('\n');
                    Matcher a = ADMIN.matcher(line);
                    if (!admin.isDone() && a.find()) {
                        admin.complete(a.group(1));
                    }
                    Matcher m = READY.matcher(line);
                    if (!ready.isDone() && m.find()) {
                        ready.complete(m.group(1));
                    }
                }
            } catch (IOException ignored) {
                // The process ended; whoever waits for readiness times out or sees it exit.
            }
            ready.complete(null);
            admin.complete(null);
        }, "sluice-log");
        reader.setDaemon(true);
        reader.start();
        String addr;
        try {
            addr = ready.get(READY_TIMEOUT_MS, TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            addr = null;
        }
        if (addr == null) {
            process.destroyForcibly();
            deleteTree(dir);
            throw new IllegalStateException("sluice did not become ready; log:\n" + log);
        }
        // The admin line comes before the ready line.
        SluiceBroker broker = new SluiceBroker(dir, process, addr, admin.getNow(null));
        broker.log.append(log);
        return broker;
    }

    /** host:port for bootstrap.servers. */
    public String bootstrap() {
        return bootstrap;
    }

    /**
     * How many requests of one API (Kafka's name, e.g. "DescribeTopicPartitions") the broker
     * handled so far, from its Prometheus endpoint: tells which API a client really used.
     */
    public long requestCount(String api) throws IOException, InterruptedException {
        if (adminAddr == null) {
            throw new IllegalStateException("the broker logged no admin address");
        }
        java.net.http.HttpResponse<String> response = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + adminAddr + "/metrics")).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        String prefix = "sluice_requests_total{api=\"" + api + "\"} ";
        return response.body().lines()
                .filter(l -> l.startsWith(prefix))
                .mapToLong(l -> (long) Double.parseDouble(l.substring(prefix.length()).trim()))
                .findFirst()
                .orElseThrow(() -> new IllegalStateException("no " + prefix + "in the metrics"));
    }

    /** The last `lines` lines the broker logged (for failure messages). */
    public String logTail(int lines) {
        String[] all = log.toString().split("\n");
        return String.join("\n", java.util.Arrays.copyOfRange(all, Math.max(0, all.length - lines), all.length));
    }

    public boolean alive() {
        return process.isAlive();
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(15, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(5, TimeUnit.SECONDS);
        }
        deleteTree(dir);
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // A temp dir left behind is not worth failing a test for.
        }
    }
}
