package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.awaitHealth;
import static io.troupe.actors.serve.ServeTestSupport.choices;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.send;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cli.TroupeCli;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.launch.ChildJvm;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pipeline stages on stage hosts ({@code troupe serve-stage}): a 1x3 server whose stages 1 and 2 run in
 * two other processes, with a third as a spare, over the data plane on 127.0.0.1, gives exactly the
 * tokens of a one-stage server. Whatever happens to a host while requests decode, every request is
 * answered in full with the same tokens and none is cancelled: the last stage's process killed (SIGKILL;
 * its stage moves to the spare), the first stage's host stopped (SIGSTOP) past the loss timeout (its
 * stage moves to the killed host, started again as a spare), and a stage host stopped while the only
 * spare is stopped too (the stage waits for its own host, continued). Stopped with SIGTERM, a stage host
 * holding a stage and then its server exit 0 and log no error.
 */
@Timeout(300)
class StageHostsProcessTest {
    private static final int REQUESTS = 48;
    private static final int TOKENS = 40;
    private static final Pattern BOUND = Pattern.compile("on http://127\\.0\\.0\\.1:(\\d+)");
    private static final Pattern UP_AT = Pattern.compile("troupe serve-stage: up at 127\\.0\\.0\\.1:(\\d+),");

    @TempDir
    Path tmp;

    /**
     * A {@code troupe serve-stage} process on 127.0.0.1:{@code port} (0: a port it binds itself, so that no
     * other process can take it between a probe and the bind), once it says it is up.
     */
    private static ChildJvm stageHost(Path checkpoint, int port) throws Exception {
        ChildJvm c = ChildJvm.start(TroupeCli.class, List.of("-Xmx512m", "-Dtroupe.serve.stage-link.loss-timeout=2s"),
            List.of("serve-stage", "--checkpoint", checkpoint.toString(), "--port", String.valueOf(port)));
        int bound = Integer.parseInt(c.awaitMatch(UP_AT, 60_000).group(1));
        assertTrue(port == 0 || bound == port, "up at " + bound + ", asked for " + port);
        return c;
    }

    /** The port a stage host started on port 0 bound. */
    private static int portOf(ChildJvm host) throws Exception {
        return Integer.parseInt(host.awaitMatch(UP_AT, 1_000).group(1));
    }

    private static StageLinks links(int... ports) {
        return links(Duration.ofSeconds(30), ports);
    }

    /** Links to stage hosts on 127.0.0.1 {@code ports}: loss timeout 2 s, retried every 200 ms. */
    private static StageLinks links(Duration connectTimeout, int... ports) {
        List<String> hosts = new ArrayList<>();
        for (int p : ports) {
            hosts.add("127.0.0.1:" + p);
        }
        String link = "troupe.serve.stage-link { loss-timeout = 2s, connect-timeout = " + connectTimeout.toMillis()
            + "ms, retry-interval = 200ms }";
        return StageLinks.from(ConfigFactory.parseString(link).withFallback(ConfigFactory.load()), hosts);
    }

    @Test
    void shouldServeOnStageHostsAndLoseNothingWhenTheyAreKilledOrStopped() throws Exception {
        GptConfig cfg = GptConfig.small();
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"), cfg);
        List<String> bodies = new ArrayList<>();
        // every prompt begins with the same two KV blocks (of 4 tokens), which the prefix cache shares,
        // across the losses and pauses below as well
        for (int i = 0; i < REQUESTS; i++) {
            bodies.add(i % 3 == 0
                ? "{\"prompt\":\"To be: r" + i + "\",\"max_tokens\":" + TOKENS + ",\"temperature\":0}"
                : "{\"prompt\":\"To be: s" + i + "\",\"max_tokens\":" + TOKENS + ",\"temperature\":0.9,\"seed\":"
                    + i + "}");
        }
        List<String> expected;
        try (InferenceServer one = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE),
            ServeTestSupport.settings(), 1)) {
            expected = choices(send(one.port(), bodies));
        }
        int[] ports = new int[3];
        List<ChildJvm> hosts = new ArrayList<>();
        for (int i = 0; i < ports.length; i++) {
            hosts.add(stageHost(ckpt, 0));
            ports[i] = portOf(hosts.get(i));
        }
        int front = StagePartition.balanced(cfg, 3).endBlock(0);
        try (InferenceServer server = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE, 0, front),
            ServeTestSupport.settings().withMaxBatch(3), 3, links(ports))) {
            int port = server.port();
            assertEquals(expected.subList(0, 6), choices(send(port, bodies.subList(0, 6))),
                "stages on two stage hosts give the tokens of one stage");

            // the last stage's host killed: its stage and KV cache are gone; the spare takes the stage
            List<CompletableFuture<HttpResponse<String>>> sent = sendOnceDecoding(port, bodies);
            hosts.get(1).kill();     // ChildJvm removes the Aeron directory a SIGKILL leaves behind
            String health = awaitHealth(port, 503);
            assertTrue(health.contains("\"status\":\"degraded\"") && health.contains("127.0.0.1:" + ports[1]), health);
            assertTrue(sent.stream().anyMatch(f -> !f.isDone()), "requests were still waiting when the stage was lost");
            assertEquals(expected, choices(sent), "every request answered in full by the spare, with the tokens of one"
                + " stage");
            health = ServeTestSupport.get(port, "/health").body();
            assertTrue(health.contains(hostJson(ports[2], "2", true)) && health.contains(hostJson(ports[1], "null",
                false)), "stage 2 on the spare: " + health);
            assertMetrics(port, 1, 1);

            // the killed host started again (a spare now); the first stage's host stopped past the loss timeout:
            // every request is answered while it stays stopped
            System.out.println("killed stage host " + hosts.get(1).pid() + ":\n" + hosts.get(1).output());
            hosts.get(1).close();
            hosts.set(1, stageHost(ckpt, ports[1]));       // on its own port: the server's links name it
            sent = sendOnceDecoding(port, bodies);
            signal("STOP", hosts.get(0).process());
            try {
                health = awaitHealth(port, 503);
                assertTrue(health.contains("127.0.0.1:" + ports[0]), health);
                assertEquals(expected, choices(sent), "every request answered in full while the host is stopped");
            } finally {
                signal("CONT", hosts.get(0).process());
            }
            assertMetrics(port, 2, 2);

            // stage 2's host (the first spare) stopped while the only other spare is stopped too: the stage waits
            // for its own host, which comes back when continued. The spare is first seen answering again after
            // its continue, so that heartbeats it answered on waking cannot make it look alive once stopped.
            awaitHealth(port, 200, hostJson(ports[0], "null", true));
            signal("STOP", hosts.get(0).process());
            try {
                awaitHealth(port, 200, hostJson(ports[0], "null", false));
                sent = sendOnceDecoding(port, bodies);
                signal("STOP", hosts.get(2).process());
                try {
                    health = awaitHealth(port, 503);
                    assertTrue(health.contains("127.0.0.1:" + ports[2]), health);
                } finally {
                    signal("CONT", hosts.get(2).process());
                }
                assertEquals(expected, choices(sent), "every request answered in full once the host continued");
            } finally {
                signal("CONT", hosts.get(0).process());
            }
            assertMetrics(port, 3, 2);
            assertTrue(metric(ServeTestSupport.get(port, "/metrics").body(),
                "troupe_serve_prefix_cache_reused_tokens_total") > 0, "prompts shared their first blocks");
            System.out.println("stage hosts killed and stopped three times under " + REQUESTS + " requests each:"
                + " every one answered in full");
        } finally {
            for (ChildJvm h : hosts) {
                System.out.println("stage host " + h.pid() + ":\n" + h.output());
                h.close();
            }
        }
    }

    @Test
    void shouldStopQuietlyWithExitCodeZeroWhenServeStageAndServeGetSigterm() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        try (ChildJvm host = stageHost(ckpt, 0)) {
            try (ChildJvm server = ChildJvm.start(TroupeCli.class, List.of(), List.of("serve", "--checkpoint",
                ckpt.toString(), "--port", "0", "--layout", "1x2", "--stage-hosts", "127.0.0.1:" + portOf(host),
                "--isolate-step-core", "false"))) {
                int port = Integer.parseInt(server.awaitMatch(BOUND, 60_000).group(1));
                assertEquals(200, ServeTestSupport.post(port, "{\"prompt\":\"To be\",\"max_tokens\":4}").statusCode(),
                    "the stage host runs stage 1");

                // the stage host, holding the stage, stopped: it closes the stage, says nothing went wrong
                assertTrue(host.process().toHandle().destroy(), "SIGTERM sent to the stage host");
                assertEquals(0, host.waitFor(30_000), "serve-stage exits 0:\n" + host.output());
                String hostLog = host.output();
                System.out.print(hostLog);
                ServeDrainProcessTest.assertQuiet(hostLog);
                assertFalse(hostLog.contains(" WARN "), "no warning from a stage host stopped cleanly:\n" + hostLog);

                // the server, which lost its stage host, stopped: it drains (nothing held) and exits 0
                assertTrue(server.process().toHandle().destroy(), "SIGTERM sent to the server");
                assertEquals(0, server.waitFor(60_000), "serve exits 0 after a complete drain:\n" + server.output());
                String serverLog = server.output();
                System.out.print(serverLog);
                assertTrue(serverLog.contains("troupe serve: drained in "), serverLog);
                ServeDrainProcessTest.assertQuiet(serverLog);
            }
        }
    }

    /** Sends {@code bodies} and returns once tokens are being generated for them. */
    private static List<CompletableFuture<HttpResponse<String>>> sendOnceDecoding(int port, List<String> bodies)
        throws Exception {
        double before = metric(ServeTestSupport.get(port, "/metrics").body(), "troupe_serve_generated_tokens_total");
        List<CompletableFuture<HttpResponse<String>>> sent = send(port, bodies);
        ServeTestSupport.awaitMetrics(port, m -> metric(m, "troupe_serve_generated_tokens_total") > before + 50,
            60_000);
        return sent;
    }

    private static void assertMetrics(int port, int pauses, int moves) throws Exception {
        awaitHealth(port, 200);
        String metrics = ServeTestSupport.get(port, "/metrics").body();
        assertTrue(metric(metrics, "troupe_serve_pipeline_pauses_total") >= pauses, metrics);
        assertEquals(moves, metric(metrics, "troupe_serve_pipeline_stage_moves_total"), metrics);
        assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_up"), metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);
    }

    private static void signal(String name, Process p) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + name, String.valueOf(p.pid())).inheritIO().start();
        assertTrue(kill.waitFor(10, TimeUnit.SECONDS) && kill.exitValue() == 0, "kill -" + name);
    }

    private static int portOf(StageHostServer host) {
        return Integer.parseInt(host.hostPort().substring(host.hostPort().lastIndexOf(':') + 1));
    }

    /** A stage host as {@code /health} lists it. */
    private static String hostJson(int port, String stage, boolean answering) {
        return "{\"host\":\"127.0.0.1:" + port + "\",\"stage\":" + stage + ",\"answering\":" + answering
            + ",\"refuses\":null}";
    }

    @Test
    void shouldRefuseAStageHostWhoseCheckpointDiffers() throws Exception {
        Path ours = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ours"), GptConfig.small());
        Path other = ServeTestSupport.twoStageCheckpoint(tmp.resolve("other"), new GptConfig("small", 256, 128, 4, 4,
            48, 1e-5f));
        try (StageHostServer host = StageHostServer.start(other, "127.0.0.1", 0, ConfigFactory.load())) {
            int port = portOf(host);
            StageLinks l = links(port);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> InferenceServer.start(
                InferenceWeights.load(ours, Quantization.NONE), ServeTestSupport.settings(), 2, l));
            assertTrue(e.getMessage().contains("refused the load of stage 1") && e.getMessage().contains("the server's"
                + " is 'small step 5"), e.getMessage());
        }
        // as a spare, such a host says so before any load: /health gives its reason, and it is given no stage
        try (StageHostServer a = StageHostServer.start(ours, "127.0.0.1", 0, ConfigFactory.load());
             StageHostServer b = StageHostServer.start(other, "127.0.0.1", 0, ConfigFactory.load());
             InferenceServer s = InferenceServer.start(InferenceWeights.load(ours, Quantization.NONE),
                 ServeTestSupport.settings(), 2, links(portOf(a), portOf(b)))) {
            String health = awaitHealth(s.port(), 200, "the server's is 'small step 5");
            assertTrue(health.contains(hostJson(portOf(a), "1", true)), health);
            assertTrue(health.contains("{\"host\":\"127.0.0.1:" + portOf(b) + "\",\"stage\":null,\"answering\":true,"
                + "\"refuses\":\"its checkpoint "), health);
        }
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class, () -> InferenceServer.start(
            InferenceWeights.load(ours, Quantization.NONE), ServeTestSupport.settings(), 3, links(7001)));
        assertTrue(count.getMessage().contains("needs 2 stage host(s)"), count.getMessage());
    }
}
