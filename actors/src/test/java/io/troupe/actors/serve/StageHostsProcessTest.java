package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.metric;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cli.TroupeCli;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.transport.DriverDirectory;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pipeline stages on stage hosts ({@code troupe serve-stage}): a 1x3 server whose stages 1 and 2 run in
 * two other processes, over the data plane on 127.0.0.1, gives exactly the tokens of a one-stage server;
 * and when the last stage's process is killed (SIGKILL) while requests decode, the server reports itself
 * degraded, waits, and once that stage host is started again every request is answered in full with the
 * same tokens: nothing is lost. The same holds when the first stage host is stopped (SIGSTOP) past the
 * loss timeout and then continued.
 */
@Timeout(240)
class StageHostsProcessTest {
    private static final int REQUESTS = 48;
    private static final int TOKENS = 40;

    @TempDir
    Path tmp;

    /** A stage host process; its output lines go to a queue. */
    private static final class StageHostProcess implements AutoCloseable {
        final Process process;
        final LinkedBlockingQueue<String> out = new LinkedBlockingQueue<>();
        final StringBuilder log = new StringBuilder();

        StageHostProcess(Path checkpoint, int port) throws Exception {
            List<String> cmd = new ArrayList<>(List.of(System.getProperty("java.home") + File.separator + "bin"
                + File.separator + "java", "-Xmx512m", "-Dtroupe.serve.stage-link.loss-timeout=2s"));
            for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
                if (a.startsWith("--add-opens") || a.startsWith("--add-exports")) {
                    cmd.add(a.replace(' ', '='));          // the data plane's Agrona needs the test JVM's exports
                }
            }
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), TroupeCli.class.getName(), "serve-stage",
                "--checkpoint", checkpoint.toString(), "--port", String.valueOf(port)));
            process = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            Thread reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(),
                    StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null; ) {
                        out.add(line);
                    }
                } catch (java.io.IOException ignored) {
                    // the process ended
                }
            }, "stage-host-output");
            reader.setDaemon(true);
            reader.start();
            while (true) {
                String line = out.poll(60, TimeUnit.SECONDS);
                assertTrue(line != null, "the stage host said it is up:\n" + log);
                log.append(line).append('\n');
                if (line.contains("troupe serve-stage: up at 127.0.0.1:" + port)) {
                    return;
                }
            }
        }

        /** Ends the process and removes the Aeron directory its embedded driver could not (a SIGKILL). */
        @Override
        public void close() throws Exception {
            process.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            Path shm = Path.of("/dev/shm");
            if (!java.nio.file.Files.isDirectory(shm)) {
                return;
            }
            try (var dirs = java.nio.file.Files.newDirectoryStream(shm, "troupe-" + process.pid() + "-*")) {
                for (Path d : dirs) {
                    if (java.nio.file.Files.isRegularFile(d.resolve(DriverDirectory.MARKER))) {
                        try (var files = java.nio.file.Files.walk(d)) {
                            for (Path f : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                                java.nio.file.Files.deleteIfExists(f);
                            }
                        }
                    }
                }
            }
        }
    }

    private static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static StageLinks links(int... ports) {
        List<String> hosts = new ArrayList<>();
        for (int p : ports) {
            hosts.add("127.0.0.1:" + p);
        }
        return new StageLinks(hosts, "127.0.0.1", 0, Duration.ofSeconds(2), Duration.ofSeconds(30),
            Duration.ofMillis(200));
    }

    private static List<CompletableFuture<HttpResponse<String>>> send(int port, List<String> bodies) {
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (String body : bodies) {
            all.add(ServeTestSupport.CLIENT.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString()));
        }
        return all;
    }

    private static List<String> choices(List<CompletableFuture<HttpResponse<String>>> sent) throws Exception {
        List<String> out = new ArrayList<>();
        for (CompletableFuture<HttpResponse<String>> f : sent) {
            HttpResponse<String> r = f.get(120, TimeUnit.SECONDS);
            assertEquals(200, r.statusCode(), r.body());
            out.add(r.body().substring(r.body().indexOf("\"choices\"")));
        }
        return out;
    }

    @Test
    void shouldServeOnStageHostsAndLoseNothingWhenOneIsKilledAndComesBack() throws Exception {
        GptConfig cfg = GptConfig.small();
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"), cfg);
        List<String> bodies = new ArrayList<>();
        for (int i = 0; i < REQUESTS; i++) {
            bodies.add(i % 3 == 0
                ? "{\"prompt\":\"r" + i + "\",\"max_tokens\":" + TOKENS + ",\"temperature\":0}"
                : "{\"prompt\":\"s" + i + "\",\"max_tokens\":" + TOKENS + ",\"temperature\":0.9,\"seed\":" + i + "}");
        }
        List<String> expected;
        try (InferenceServer one = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE),
            ServeTestSupport.settings(), 1)) {
            expected = choices(send(one.port(), bodies));
        }
        int port1 = freePort();
        int port2 = freePort();
        StageHostProcess host1 = new StageHostProcess(ckpt, port1);
        StageHostProcess host2 = new StageHostProcess(ckpt, port2);
        StageHostProcess restarted = null;
        int front = StagePartition.balanced(cfg, 3).endBlock(0);
        try (InferenceServer server = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE, 0, front),
            ServeTestSupport.settings().withMaxBatch(3), 3, links(port1, port2))) {
            assertEquals(expected.subList(0, 6), choices(send(server.port(), bodies.subList(0, 6))),
                "stages on two stage hosts give the tokens of one stage");

            List<CompletableFuture<HttpResponse<String>>> sent = send(server.port(), bodies);
            ServeTestSupport.awaitMetrics(server.port(), m -> metric(m, "troupe_serve_requests_total") >= 6 + REQUESTS
                && metric(m, "troupe_serve_generated_tokens_total") > 6 * TOKENS + 50, 60_000);
            host2.process.destroyForcibly();              // SIGKILL: the last stage and its KV cache are gone
            assertTrue(host2.process.waitFor(30, TimeUnit.SECONDS));
            String health = awaitHealth(server.port(), 503, 30_000);
            assertTrue(health.contains("\"status\":\"degraded\"") && health.contains("127.0.0.1:" + port2), health);
            long pending = sent.stream().filter(f -> !f.isDone()).count();
            assertTrue(pending > 0, "requests were still waiting when the stage was lost");

            restarted = new StageHostProcess(ckpt, port2);
            assertEquals(expected, choices(sent), "every request answered in full, with the tokens of one stage");
            assertEquals(200, ServeTestSupport.get(server.port(), "/health").statusCode());
            String metrics = ServeTestSupport.get(server.port(), "/metrics").body();
            assertTrue(metric(metrics, "troupe_serve_pipeline_pauses_total") >= 1, metrics);
            assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_up"), metrics);
            assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);
            System.out.println("stage host killed with " + pending + " of " + REQUESTS + " requests unanswered; all "
                + REQUESTS + " answered in full after it came back");

            // the first stage host stopped (SIGSTOP) past the loss timeout, then continued (SIGCONT)
            double tokensBefore = metric(metrics, "troupe_serve_generated_tokens_total");
            List<CompletableFuture<HttpResponse<String>>> again = send(server.port(), bodies);
            ServeTestSupport.awaitMetrics(server.port(), m -> metric(m, "troupe_serve_generated_tokens_total")
                > tokensBefore + 50, 60_000);
            signal("STOP", host1.process);
            try {
                health = awaitHealth(server.port(), 503, 30_000);
                assertTrue(health.contains("127.0.0.1:" + port1), health);
            } finally {
                signal("CONT", host1.process);
            }
            assertEquals(expected, choices(again), "every request answered in full after the pause");
            metrics = ServeTestSupport.get(server.port(), "/metrics").body();
            assertTrue(metric(metrics, "troupe_serve_pipeline_pauses_total") >= 2, metrics);
            assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);
        } finally {
            for (StageHostProcess h : new StageHostProcess[] {host1, host2, restarted}) {
                if (h != null) {
                    for (String line; (line = h.out.poll()) != null; ) {
                        System.out.println("stage host " + h.process.pid() + ": " + line);
                    }
                }
            }
            host1.close();
            host2.close();
            if (restarted != null) {
                restarted.close();
            }
        }
    }

    private static void signal(String name, Process p) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + name, String.valueOf(p.pid())).inheritIO().start();
        assertTrue(kill.waitFor(10, TimeUnit.SECONDS) && kill.exitValue() == 0, "kill -" + name);
    }

    private static String awaitHealth(int port, int status, long timeoutMs) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        HttpResponse<String> r = ServeTestSupport.get(port, "/health");
        while (r.statusCode() != status) {
            assertTrue(System.nanoTime() < deadline, "health did not become " + status + ": " + r.body());
            Thread.sleep(50);
            r = ServeTestSupport.get(port, "/health");
        }
        return r.body();
    }

    @Test
    void shouldRefuseAStageHostWhoseCheckpointDiffers() throws Exception {
        Path ours = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ours"), GptConfig.small());
        Path other = ServeTestSupport.twoStageCheckpoint(tmp.resolve("other"), new GptConfig("small", 256, 128, 4, 4,
            48, 1e-5f));
        try (StageHostServer host = StageHostServer.start(other, "127.0.0.1", 0, ConfigFactory.load())) {
            int port = Integer.parseInt(host.hostPort().substring(host.hostPort().lastIndexOf(':') + 1));
            StageLinks l = new StageLinks(List.of("127.0.0.1:" + port), "127.0.0.1", 0, Duration.ofSeconds(2),
                Duration.ofSeconds(3), Duration.ofMillis(200));
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> InferenceServer.start(
                InferenceWeights.load(ours, Quantization.NONE), ServeTestSupport.settings(), 2, l));
            assertTrue(e.getMessage().contains("refused the load of stage 1") && e.getMessage().contains("the server's"
                + " is 'small step 5"), e.getMessage());
        }
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class, () -> InferenceServer.start(
            InferenceWeights.load(ours, Quantization.NONE), ServeTestSupport.settings(), 3, links(7001)));
        assertTrue(count.getMessage().contains("needs 2 stage host(s)"), count.getMessage());
    }
}
