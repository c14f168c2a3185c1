package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.infer.Generation;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.SamplingParams;
import java.math.BigDecimal;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;

/**
 * What the tests of a real server on 127.0.0.1 share ({@link InferenceServerTest}, {@link InferenceServerHttpTest},
 * {@link InferenceServerLifecycleTest}): servers started on a small random model, as they are or with slowed or
 * gated steps, closed after each test; the text the model gives offline; and readers of the JSON answers.
 */
abstract class InferenceServerFixture {
    static final InferenceWeights WEIGHTS = ServeTestSupport.weights(3);
    final List<AutoCloseable> open = new ArrayList<>();
    ExecutorService slowPool;

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
        if (slowPool != null) {
            slowPool.shutdownNow();
        }
    }

    InferenceServer start(ServeSettings s) {
        InferenceServer server = InferenceServer.start(WEIGHTS, s);
        open.add(server);
        return server;
    }

    /** A server whose every step takes at least {@code stepMs}: requests stay in flight long enough to observe. */
    InferenceServer startSlow(ServeSettings s, long stepMs) {
        slowPool = Executors.newSingleThreadExecutor();
        Executor slow = r -> slowPool.execute(() -> {
            try {
                Thread.sleep(stepMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            r.run();
        });
        InferenceServer server = InferenceServer.start(WEIGHTS, s, slow);
        open.add(server);
        return server;
    }

    /**
     * A server whose every step waits for a permit of {@code steps}: the test decides how many steps the loop
     * takes, so a request the test needs decoding still decodes, however slow the machine.
     */
    InferenceServer startGated(ServeSettings s, Semaphore steps) {
        slowPool = Executors.newSingleThreadExecutor();
        Executor gated = r -> slowPool.execute(() -> {
            try {
                steps.acquire();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            r.run();
        });
        InferenceServer server = InferenceServer.start(WEIGHTS, s, gated);
        open.add(server);
        return server;
    }

    /**
     * Lets a {@link #startGated gated} loop take one step at a time until {@code /metrics} satisfies {@code ok}
     * (what a step boundary admits or applies shows at the next), giving each step up to a second, at most
     * {@code maxSteps} steps; returns the metrics that satisfied it.
     */
    static String stepUntil(int port, Semaphore steps, java.util.function.Predicate<String> ok, int maxSteps)
        throws Exception {
        String m = get(port, "/metrics").body();
        for (int step = 0; !ok.test(m); step++) {
            assertTrue(step < maxSteps, "not reached in " + maxSteps + " steps:\n" + m);
            steps.release();
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            do {
                Thread.sleep(5);
                m = get(port, "/metrics").body();
            } while (!ok.test(m) && System.nanoTime() < end);
        }
        return m;
    }

    /** The text the model gives offline (no server) for a greedy prompt. */
    static String offline(String prompt, int maxTokens) {
        return offline(prompt, maxTokens, KvPrecision.F32);
    }

    static String offline(String prompt, int maxTokens, KvPrecision kv) {
        return offlineGeneration(prompt, maxTokens, kv).text();
    }

    static Generation offlineGeneration(String prompt, int maxTokens, KvPrecision kv) {
        return offlineGeneration(prompt, SamplingParams.greedy(maxTokens), kv);
    }

    static Generation offlineGeneration(String prompt, SamplingParams p, KvPrecision kv) {
        return ServeTestSupport.offlineGeneration(WEIGHTS, prompt, p, kv);
    }

    static int[] bytes(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        int[] t = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            t[i] = b[i] & 0xFF;
        }
        return t;
    }

    static Map<String, Object> choice(String body) {
        return choices(body).get(0);
    }

    /** Every choice of a whole response, in order. */
    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> choices(String body) {
        return (List<Map<String, Object>>) ((Map<String, Object>) Json.parse(body)).get("choices");
    }

    @SuppressWarnings("unchecked")
    static List<Object> list(Map<String, Object> logprobs, String key) {
        return (List<Object>) logprobs.get(key);
    }

    static double num(Object o) {
        return ((BigDecimal) o).doubleValue();
    }

    static void assertJsonError(HttpResponse<String> r, String code) {
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"),
            r.headers().toString());
        assertEquals(code, field(r.body(), "code"), r.body());
        assertEquals("invalid_request_error", field(r.body(), "type"), r.body());
        assertFalse(field(r.body(), "message").isEmpty(), r.body());
    }

    static CompletableFuture<HttpResponse<String>> sendAsync(int port, String body) {
        return ServeTestSupport.CLIENT.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
            + "/v1/completions"))
            .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }
}
