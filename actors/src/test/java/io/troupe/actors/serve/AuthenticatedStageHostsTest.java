package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.awaitHealth;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.send;
import static io.troupe.actors.serve.TwoPrompts.bodies;
import static io.troupe.actors.serve.TwoPrompts.texts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import io.troupe.runtime.transport.DropReason;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A 1x2 server with stage 1 on an in-process stage host (its own media driver, so the frames cross UDP on
 * 127.0.0.1) when the data plane is authenticated ({@code troupe.transport.auth-key}): with the same key on both,
 * it serves the tokens of a one-stage server and no frame is refused; with a key on one side only, or two keys, it
 * does not start, and says why in about a loss timeout; a stage host started again with another key while it runs
 * leaves it refusing completions at once with that reason, answering its other endpoints, until the host has the
 * key again.
 */
@Timeout(120)
class AuthenticatedStageHostsTest {
    private static final String KEY = "serve-key-0123456789";
    private static final String OTHER_KEY = "other-key-9876543210";
    /** The reasons a receiver refuses a frame for its tag. */
    private static final List<DropReason> TAG_REFUSALS = List.of(DropReason.MISSING_MAC, DropReason.BAD_MAC,
        DropReason.UNEXPECTED_MAC);

    @TempDir
    Path tmp;

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() {
        for (int i = open.size() - 1; i >= 0; i--) {
            try {
                open.get(i).close();
            } catch (Exception e) {
                System.out.println("closing: " + e);
            }
        }
    }

    /**
     * Loss timeout 5 s (the tests share the machine), wirings retried every 200 ms, a connect timeout of 30 s (a
     * start refused well within it was not refused for a timeout), with {@code key} as the data plane's auth key
     * (null: none).
     */
    private static Config config(String key) {
        return ConfigFactory.parseString((key == null ? "" : "troupe.transport.auth-key = \"" + key + "\"\n")
            + "troupe.serve.stage-link { loss-timeout = 5s, connect-timeout = 30s, retry-interval = 200ms }")
            .withFallback(ConfigFactory.load()).resolve();
    }

    private StageHostServer host(Path ckpt, int port, String key) {
        StageHostServer h = StageHostServer.start(ckpt, "127.0.0.1", port, config(key));
        open.add(h);
        return h;
    }

    private static InferenceServer serve(Path ckpt, String hostPort, String key) {
        int front = StagePartition.balanced(ServeTestSupport.CFG, 2).endBlock(0);
        return InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE, 0, front),
            ServeTestSupport.settings(), 2, StageLinks.from(config(key), List.of(hostPort)));
    }

    /** Frames {@code plane}'s node refused for their tag, by {@link #TAG_REFUSALS}. */
    private static List<Long> tagRefusals(DataPlane plane) {
        List<Long> n = new ArrayList<>();
        for (DropReason r : TAG_REFUSALS) {
            n.add(plane.current().framesDropped(r));
        }
        return n;
    }

    @Test
    void shouldServeTheTokensOfOneStageWithTheSameKeyOnServerAndStageHost() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> prompts = List.of("To be", "or not", "that is", "the q");
        List<String> expected;
        try (InferenceServer one = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE),
            ServeTestSupport.settings(), 1)) {
            expected = ServeTestSupport.greedyTexts(one, prompts);
        }
        StageHostServer host = host(ckpt, 0, KEY);
        InferenceServer server = serve(ckpt, host.hostPort(), KEY);
        open.add(server);
        assertEquals(expected, ServeTestSupport.greedyTexts(server, prompts), "keyed 1x2: the tokens of 1x1");
        assertEquals(List.of(0L, 0L, 0L), tagRefusals(host.dataPlane()), "the stage host refused no frame");
        assertEquals(List.of(0L, 0L, 0L), tagRefusals(server.pipelineDataPlane()), "the server refused no frame");
        assertEquals(200, get(server.port(), "/health").statusCode());
        String metrics = get(server.port(), "/metrics").body();
        for (DropReason r : DropReason.values()) {
            String line = "troupe_serve_frames_dropped_total{reason=\"" + r + "\"} "
                + server.pipelineDataPlane().current().framesDropped(r);
            assertTrue(metrics.contains(line + "\n"), line + " in /metrics");
        }
    }

    /** A server keyed {@code serverKey} and a host keyed {@code hostKey} (empty: none); what the host refuses. */
    @ParameterizedTest(name = "server key {0}, host key {1}")
    @CsvSource({KEY + ",,UNEXPECTED_MAC", "," + KEY + ",MISSING_MAC", KEY + "," + OTHER_KEY + ",BAD_MAC"})
    void shouldNotStartWhenTheKeysDiffer(String serverKey, String hostKey, DropReason refused) {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        StageHostServer host = host(ckpt, 0, hostKey);
        long t0 = System.nanoTime();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> serve(ckpt, host.hostPort(),
            serverKey));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(e.getMessage().contains("refuse the pipeline's frames")
            && e.getMessage().contains("troupe.transport.auth-key") && e.getMessage().contains(host.hostPort())
            && e.getMessage().contains("this server has " + (serverKey == null ? "none" : "one")), e.getMessage());
        assertTrue(ms < 20_000, "refused in " + ms + " ms, not at the 30 s connect timeout: " + e.getMessage());
        List<Long> drops = tagRefusals(host.dataPlane());
        assertTrue(drops.get(TAG_REFUSALS.indexOf(refused)) >= 1, "the stage host refused the probe as " + refused
            + ": " + TAG_REFUSALS + "=" + drops);
    }

    @Test
    @Timeout(200)
    void shouldRefuseCompletionsWhileAStageHostHasAnotherKeyAndServeOnceItHasTheKeyAgain() throws Exception {
        Keyed keyed = keyedServerServing();
        Path ckpt = keyed.ckpt();
        List<String> expected = keyed.expected();
        int hostTcp = keyed.hostTcp();
        int port = keyed.port();

        keyed.host().close();
        StageHostServer other = host(ckpt, hostTcp, OTHER_KEY);
        String health = awaitHealth(port, h -> h.statusCode() == 503 && h.body().contains("troupe.transport.auth-key"),
            30_000);
        assertTrue(health.contains("\"status\":\"degraded\"") && health.contains("refuse the pipeline's frames"),
            health);
        long t0 = System.nanoTime();
        HttpResponse<String> refused = ServeTestSupport.post(port,
            "{\"prompt\":\"To be\",\"max_tokens\":4,\"temperature\":0,\"deadline_ms\":20000}");
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertEquals(503, refused.statusCode(), refused.body());
        assertTrue(refused.body().contains("troupe.transport.auth-key") && ms < 5_000, ms + " ms: " + refused.body());
        assertEquals(200, get(port, "/v1/models").statusCode(), "other endpoints answer");
        assertEquals(200, get(port, "/health/live").statusCode(), "alive: it recovers once the keys agree");
        assertTrue(get(port, "/metrics").body().contains("troupe_serve_pipeline_up 0"));

        other.close();
        host(ckpt, hostTcp, KEY);
        // a wiring begun as the other host closed ends once it is known gone, well before the 30 s connect timeout
        awaitHealth(port, h -> h.statusCode() == 200, 25_000);
        assertEquals(expected, texts(send(port, bodies())), "the key agrees again: the tokens they have offline");
    }

    /**
     * Requests that wait while a stage host is lost (merely lost: they wait for it) are answered at once with an
     * error naming the cause when the host, back with another key, is found to refuse the frames, long before their
     * deadline: a
     * non-streamed one 503 in OpenAI's error shape, a streamed one (200, its events begun) an error event, then
     * {@code data: [DONE]}, and no finish.
     */
    @Test
    @Timeout(200)
    void shouldAnswerTheRequestsWaitingWithTheCauseOnceTheStageHostRefusesTheFrames() throws Exception {
        Keyed keyed = keyedServerServing();
        Path ckpt = keyed.ckpt();
        List<String> expected = keyed.expected();
        int hostTcp = keyed.hostTcp();
        int port = keyed.port();

        keyed.host().close();
        host(ckpt, hostTcp, OTHER_KEY);
        // the pipeline is down for the lost host until the new one's probe fails, a loss timeout (5 s) after its
        // wiring began: requests sent now wait for it, as for any lost host
        long t0 = System.nanoTime();
        String body = "{\"prompt\":\"To be\",\"max_tokens\":4,\"temperature\":0,\"deadline_ms\":90000";
        CompletableFuture<HttpResponse<String>> unary = send(port, List.of(body + "}")).get(0);
        CompletableFuture<HttpResponse<String>> streamed = send(port, List.of(body + ",\"stream\":true}")).get(0);
        ServeTestSupport.awaitMetrics(port, m -> ServeTestSupport.metric(m, "troupe_serve_queue_depth") == 2
            || unary.isDone(), 20_000);
        assertTrue(!unary.isDone() && !streamed.isDone(), "the requests wait while the host is lost: " + unary);

        HttpResponse<String> u = unary.get(60, TimeUnit.SECONDS);
        HttpResponse<String> st = streamed.get(60, TimeUnit.SECONDS);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms < 45_000, "answered " + ms + " ms after they were sent, not at their 90 s deadline");
        assertEquals(503, u.statusCode(), u.body());
        assertTrue(u.body().startsWith("{\"error\":{\"message\":\"the server cannot serve: the stage hosts refuse the"
            + " pipeline's frames") && u.body().contains("troupe.transport.auth-key")
            && u.body().contains("\"type\":\"unavailable\""), u.body());
        assertEquals(200, st.statusCode(), st.body());
        String[] events = st.body().split("\n\n");
        assertEquals(2, events.length, st.body());
        assertTrue(events[0].startsWith("data: {\"error\":{\"message\":\"the server cannot serve: the stage hosts"
            + " refuse the pipeline's frames") && events[0].contains("troupe.transport.auth-key"), st.body());
        assertEquals("data: [DONE]", events[1], st.body());
        assertTrue(!st.body().contains("finish_reason"), st.body());
        assertEquals(0.0, ServeTestSupport.metric(get(port, "/metrics").body(), "troupe_serve_queue_depth"));
    }

    /** A keyed server serving through a keyed stage host: its checkpoint, the host, its TCP port, the server's. */
    private record Keyed(Path ckpt, List<String> expected, StageHostServer host, int hostTcp, int port) {
    }

    /** Starts a host and a server with the same key and checks they serve the tokens of the checkpoint offline. */
    private Keyed keyedServerServing() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = TwoPrompts.offline(ckpt);
        StageHostServer host = host(ckpt, 0, KEY);
        String hostPort = host.hostPort();
        InferenceServer server = serve(ckpt, hostPort, KEY);
        open.add(server);
        assertEquals(expected, texts(send(server.port(), bodies())), "before: the tokens they have offline");
        return new Keyed(ckpt, expected, host, Integer.parseInt(hostPort.substring(hostPort.lastIndexOf(':') + 1)),
            server.port());
    }
}
