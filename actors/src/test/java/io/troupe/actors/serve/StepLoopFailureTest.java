package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.SamplingParams;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A real server whose step loop fails outside the model's forward (its metrics' calls made to throw,
 * as a bug in planning or sampling would): the requests held end, the loop serves on, and a loop that
 * keeps failing stops, says so on {@code /health} and {@code /health/live}, and refuses new requests
 * with 503 instead of leaving them unanswered.
 */
@Timeout(120)
class StepLoopFailureTest {
    private static final InferenceWeights WEIGHTS = ServeTestSupport.weights(3);
    private static final String BODY = "{\"prompt\":\"To be\",\"max_tokens\":8,\"temperature\":0}";
    private InferenceServer server;

    @AfterEach
    void close() {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void shouldEndTheRequestsHeldAndServeOnAfterAFailureOutsideTheForward() throws Exception {
        AtomicInteger failSteps = new AtomicInteger();
        ServeSettings settings = ServeTestSupport.settings();
        server = InferenceServer.startOneStage(WEIGHTS, settings, blocks -> new ServeMetrics(blocks) {
            @Override
            void onStep(int generated, long nowNs) {
                if (failSteps.getAndDecrement() > 0) {
                    throw new IllegalStateException("injected failure after a step's sampling");
                }
                super.onStep(generated, nowNs);
            }
        });
        int port = server.port();
        failSteps.set(1);
        HttpResponse<String> failed = post(port, BODY);
        assertEquals(200, failed.statusCode(), failed.body());
        assertEquals("cancelled", field(failed.body(), "finish_reason"), failed.body());

        HttpResponse<String> after = post(port, BODY);
        assertEquals(200, after.statusCode(), after.body());
        assertEquals("length", field(after.body(), "finish_reason"), after.body());
        SamplingParams greedy = SamplingParams.greedy(8);
        String alone = ServeTestSupport.offlineGeneration(WEIGHTS, "To be", greedy, KvPrecision.F32).text();
        assertEquals(alone, field(after.body(), "text"));
        HttpResponse<String> health = get(port, "/health");
        assertEquals(200, health.statusCode(), health.body());
        assertEquals("ok", field(health.body(), "status"));
        assertEquals(200, get(port, "/health/live").statusCode());
        assertEquals(1.0, metric(get(port, "/metrics").body(), "troupe_serve_up"));
    }

    @Test
    void shouldStopSayWhyAndRefuseNewRequestsWhenTheLoopKeepsFailing() throws Exception {
        AtomicBoolean broken = new AtomicBoolean();
        ServeSettings settings = ServeTestSupport.settings();
        server = InferenceServer.startOneStage(WEIGHTS, settings, blocks -> new ServeMetrics(blocks) {
            @Override
            void setGauges(int queueDepth, int runningBatch, PagedKvCache cache, long preemptionsTotal) {
                if (broken.get()) {
                    throw new IllegalStateException("injected failure at every step boundary");
                }
                super.setGauges(queueDepth, runningBatch, cache, preemptionsTotal);
            }
        });
        int port = server.port();
        assertEquals("length", field(post(port, BODY).body(), "finish_reason"));

        CompletableFuture<HttpResponse<String>> running = ServeTestSupport.send(port,
            List.of("{\"prompt\":\"To\",\"max_tokens\":20,\"temperature\":0}")).get(0);
        // broken only once the request runs (or is done): broken before it arrives, the loop could stop first
        ServeTestSupport.awaitMetrics(port, m -> running.isDone() || metric(m, "troupe_serve_running_batch_size") >= 1,
            30_000);
        broken.set(true);
        HttpResponse<String> held = running.get(60, TimeUnit.SECONDS);          // answered, not left hanging
        assertEquals(200, held.statusCode(), held.body());
        assertTrue(Set.of("length", "cancelled").contains(field(held.body(), "finish_reason")), held.body());

        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        HttpResponse<String> health = get(port, "/health");
        while (health.statusCode() == 200 && System.nanoTime() < end) {
            Thread.sleep(10);
            health = get(port, "/health");
        }
        assertEquals(503, health.statusCode(), health.body());
        assertEquals("failed", field(health.body(), "status"));
        assertTrue(field(health.body(), "reason").contains("injected failure at every step boundary"), health.body());
        String failures = (DecodeLoop.MAX_FAILURES_IN_A_ROW + 1) + " failures in a row";
        assertTrue(field(health.body(), "reason").contains(failures), health.body());
        HttpResponse<String> live = get(port, "/health/live");
        assertEquals(503, live.statusCode(), live.body());

        HttpResponse<String> refused = post(port, BODY);
        assertEquals(503, refused.statusCode(), refused.body());
        assertTrue(field(refused.body(), "message").contains("the server cannot serve: the step loop stopped"),
            refused.body());
        HttpResponse<String> stream = post(port, "{\"prompt\":\"To be\",\"max_tokens\":8,\"stream\":true}");
        assertEquals(503, stream.statusCode(), stream.body());
        assertEquals(0.0, metric(get(port, "/metrics").body(), "troupe_serve_up"));
    }
}
