package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cli.TroupeCli;
import io.troupe.models.gpt.GptConfig;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code troupe serve} as its own process, stopped with SIGTERM while it holds requests: it drains
 * (every request it accepted, decoding or queued, is answered in full, none cancelled), says so, and
 * exits.
 */
@Timeout(180)
class ServeDrainProcessTest {
    private static final Pattern BOUND = Pattern.compile("on http://127\\.0\\.0\\.1:(\\d+)");
    private static final Pattern DRAINING = Pattern.compile("draining: 503 to new requests; (\\d+) request");
    private static final int REQUESTS = 200;
    private static final int TOKENS = 48;
    private static final int HELD = 20;

    @TempDir
    Path tmp;

    @Test
    void shouldAnswerEveryAcceptedRequestInFullWhenStoppedWithSigterm() throws Exception {
        // the small preset (context 64): at max-batch 1 the server holds the requests for a second or more
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"), GptConfig.small());
        Process p = new ProcessBuilder(System.getProperty("java.home") + File.separator + "bin" + File.separator
            + "java", "-cp", System.getProperty("java.class.path"), TroupeCli.class.getName(), "serve",
            "--checkpoint", ckpt.toString(), "--port", "0", "--max-batch", "1", "--max-queue", "512",
            "--isolate-step-core", "false", "--drain-timeout", "60")
            .redirectErrorStream(true).start();
        LinkedBlockingQueue<String> out = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    out.add(line);
                }
            } catch (java.io.IOException ignored) {
                // the process ended
            }
        }, "serve-process-output");
        reader.setDaemon(true);
        reader.start();
        StringBuilder log = new StringBuilder();
        try {
            int port = -1;
            while (port < 0) {
                String line = out.poll(60, TimeUnit.SECONDS);
                assertTrue(line != null, "the server said where it listens:\n" + log);
                log.append(line).append('\n');
                Matcher m = BOUND.matcher(line);
                if (m.find()) {
                    port = Integer.parseInt(m.group(1));
                }
            }
            URI uri = URI.create("http://127.0.0.1:" + port + "/v1/completions");
            List<CompletableFuture<HttpResponse<String>>> sent = new ArrayList<>();
            for (int i = 0; i < REQUESTS; i++) {
                sent.add(ServeTestSupport.CLIENT.sendAsync(HttpRequest.newBuilder(uri).POST(
                    HttpRequest.BodyPublishers.ofString("{\"prompt\":\"r" + i + "\",\"max_tokens\":" + TOKENS + ","
                        + "\"temperature\":0}")).build(), HttpResponse.BodyHandlers.ofString()));
            }
            // stop it once every request has arrived and a good part are still held
            ServeTestSupport.awaitMetrics(port, m -> metric(m, "troupe_serve_requests_total") == REQUESTS
                && metric(m, "troupe_serve_requests_in_flight") >= HELD, 60_000);
            // SIGTERM (Process.destroy would also close our end of its output, losing what it says while it drains)
            assertTrue(p.toHandle().destroy(), "SIGTERM sent");
            int answered = 0;
            for (CompletableFuture<HttpResponse<String>> f : sent) {
                HttpResponse<String> r = f.get(90, TimeUnit.SECONDS);
                assertEquals(200, r.statusCode(), r.body());
                assertEquals("length", field(r.body(), "finish_reason"), r.body());
                assertEquals(String.valueOf(TOKENS), field(r.body(), "completion_tokens"), r.body());
                answered++;
            }
            assertTrue(p.waitFor(90, TimeUnit.SECONDS), "the server exited after draining:\n" + log);
            reader.join(10_000);
            for (String line; (line = out.poll()) != null; ) {
                log.append(line).append('\n');
            }
            System.out.print(log);
            System.out.println("exit status " + p.exitValue() + ", " + answered + " answered in full");
            Matcher held = DRAINING.matcher(log);
            assertTrue(held.find(), "it said it drains:\n" + log);
            assertTrue(Integer.parseInt(held.group(1)) >= 1, "requests were in flight at SIGTERM:\n" + log);
            assertTrue(log.toString().contains("troupe serve: drained in "), log.toString());
            assertTrue(log.toString().contains("troupe serve: stopped"), log.toString());
            assertEquals(REQUESTS, answered, "every request accepted before the stop was answered in full");
        } finally {
            p.destroyForcibly();
        }
    }
}
