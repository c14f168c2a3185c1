package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.infer.InferenceWeights;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Pipeline-parallel serving (layout 1x2): two stage actors passing hidden states over the Aeron
 * data plane, two micro-batches in flight; a real server on 127.0.0.1 gives exactly the tokens of
 * the single-stage server for the same requests, alone and among sixteen concurrent ones.
 */
@Timeout(180)
class PipelineServingTest {
    private static final InferenceWeights WEIGHTS = ServeTestSupport.weights(3);

    private static List<String> texts(InferenceServer server, List<String> bodies) throws Exception {
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (String body : bodies) {
            all.add(ServeTestSupport.CLIENT.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + server.port() + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString()));
        }
        List<String> out = new ArrayList<>();
        for (CompletableFuture<HttpResponse<String>> f : all) {
            assertEquals(200, f.get().statusCode(), f.get().body());
            out.add(choices(f.get().body()));
        }
        return out;
    }

    /** The part of a completion that does not vary from server to server: text, log-probabilities, finish, usage. */
    private static String choices(String body) {
        return body.substring(body.indexOf("\"choices\""));
    }

    @Test
    void shouldGiveTheSameTokensOnTwoStagesAsOnOne() throws Exception {
        List<String> bodies = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            bodies.add(i % 2 == 0
                ? "{\"prompt\":\"request " + i + "\",\"max_tokens\":" + (4 + i) + ",\"temperature\":0}"
                : "{\"prompt\":\"other " + i + "\",\"max_tokens\":" + (3 + i) + ",\"temperature\":0.8,\"seed\":" + i
                    + "}");
        }
        // prompts scored too (echo with log-probabilities): every prompt row's logits come from the last stage
        bodies.set(4, "{\"prompt\":\"scored four\",\"max_tokens\":0,\"echo\":true,\"logprobs\":2}");
        bodies.set(9, "{\"prompt\":\"scored nine\",\"max_tokens\":5,\"seed\":9,\"echo\":true,\"logprobs\":3}");
        String needle = bodies.get(9);
        List<String> one;
        String oneAlone;
        try (InferenceServer server = InferenceServer.start(WEIGHTS, ServeTestSupport.settings(), 1)) {
            oneAlone = choices(post(server.port(), needle).body());
            one = texts(server, bodies);
        }
        try (InferenceServer server = InferenceServer.start(WEIGHTS, ServeTestSupport.settings(), 2)) {
            assertEquals(oneAlone, choices(post(server.port(), needle).body()), "alone");
            List<String> two = texts(server, bodies);
            assertEquals(one, two, "16 concurrent requests on 1x1 and 1x2");
            String metrics = ServeTestSupport.awaitMetrics(server.port(),
                m -> metric(m, "troupe_serve_kv_cache_blocks_used") == 0.0, 10_000);
            assertEquals(0.0, metric(metrics, "troupe_serve_kv_cache_blocks_used"), "every block returned");
            assertTrue(metric(metrics, "troupe_serve_overlapped_steps_total") > 0,
                "two micro-batches were in flight at once: " + metrics);
            assertFalse(one.get(0).isEmpty());
        }
    }

    @Test
    void shouldRefuseMoreStagesThanBlocks() {
        int layers = WEIGHTS.config().nLayer();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> InferenceServer.start(WEIGHTS, ServeTestSupport.settings(), layers + 1));
        assertEquals(true, e.getMessage().contains("stages=" + (layers + 1)), e.getMessage());
    }
}
