package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.Quantization;
import io.troupe.models.infer.SamplingParams;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The two requests the pipeline-serving fault tests send, a greedy one and a seeded sample, and the texts they give
 * offline with the whole model on one stage: a server that lost and wired a stage again must still give those.
 */
final class TwoPrompts {
    static final List<String> PROMPTS = List.of("To be", "or not");
    static final int TOKENS = 12;

    private TwoPrompts() {
    }

    /** The request bodies: the first prompt greedy, the second sampled at temperature 0.8 with seed 7. */
    static List<String> bodies() {
        return List.of("{\"prompt\":\"" + PROMPTS.get(0) + "\",\"max_tokens\":" + TOKENS + ",\"temperature\":0}",
            "{\"prompt\":\"" + PROMPTS.get(1) + "\",\"max_tokens\":" + TOKENS + ",\"temperature\":0.8,\"seed\":7}");
    }

    /** The texts the prompts give offline, with the whole model of {@code ckpt} on one stage. */
    static List<String> offline(Path ckpt) {
        InferenceWeights w = InferenceWeights.load(ckpt, Quantization.NONE);
        return List.of(
            ServeTestSupport.offlineGeneration(w, PROMPTS.get(0), SamplingParams.greedy(TOKENS), KvPrecision.F32)
                .text(),
            ServeTestSupport.offlineGeneration(w, PROMPTS.get(1), new SamplingParams(TOKENS, 0.8f, 1f, 7L, List.of()),
                KvPrecision.F32).text());
    }

    /** The texts of {@code sent}, each answered 200 with all its tokens (finish reason {@code length}). */
    static List<String> texts(List<CompletableFuture<HttpResponse<String>>> sent) throws Exception {
        List<String> out = new ArrayList<>();
        for (CompletableFuture<HttpResponse<String>> f : sent) {
            HttpResponse<String> r = f.get(60, TimeUnit.SECONDS);
            assertEquals(200, r.statusCode(), r.body());
            assertEquals("length", field(r.body(), "finish_reason"), r.body());
            out.add(field(r.body(), "text"));
        }
        return out;
    }
}
