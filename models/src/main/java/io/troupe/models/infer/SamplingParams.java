package io.troupe.models.infer;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * How one request samples and when it stops.
 *
 * @param maxTokens   new tokens at most (>= 1)
 * @param temperature 0 for greedy (argmax, lowest id on ties); else logits are divided by it
 * @param topP        nucleus: sample among the most likely tokens whose mass reaches it, in (0, 1]
 * @param seed        the request's random stream; a fixed seed gives the same tokens alone or batched
 * @param stop        stop strings (UTF-8): generation ends when the output ends with one, which is
 *                    cut from the text
 */
public record SamplingParams(int maxTokens, float temperature, float topP, long seed, List<String> stop) {
    public SamplingParams {
        if (maxTokens < 1) {
            throw new IllegalArgumentException("max_tokens must be >= 1: max_tokens=" + maxTokens);
        }
        if (!(temperature >= 0f) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0: temperature=" + temperature);
        }
        if (!(topP > 0f && topP <= 1f)) {
            throw new IllegalArgumentException("top_p must be in (0, 1]: top_p=" + topP);
        }
        stop = List.copyOf(stop);
        for (String s : stop) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("stop strings must not be empty");
            }
        }
    }

    /** Greedy decoding of up to {@code maxTokens} tokens, no stop strings. */
    public static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(maxTokens, 0f, 1f, 0L, List.of());
    }

    byte[][] stopBytes() {
        byte[][] out = new byte[stop.size()][];
        for (int i = 0; i < out.length; i++) {
            out[i] = stop.get(i).getBytes(StandardCharsets.UTF_8);
        }
        return out;
    }
}
