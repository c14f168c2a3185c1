package io.troupe.models.infer;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * How one request samples, when it stops and what it reports beside its tokens.
 *
 * @param maxTokens   new tokens at most (>= 1; 0 with {@code echo}: the prompt is only scored)
 * @param temperature 0 for greedy (argmax, lowest id on ties); else logits are divided by it
 * @param topP        nucleus: sample among the most likely tokens whose mass reaches it, in (0, 1]
 * @param seed        the request's random stream; a fixed seed gives the same tokens alone or batched
 * @param stop        stop strings (UTF-8): generation ends when the output ends with one, which is
 *                    cut from the text
 * @param logprobs    -1: no log-probabilities; 0 to {@link LogProbs#MAX_TOP}: each generated token's
 *                    log-probability under the model ({@link LogProbs}) and that many most likely
 *                    alternatives at its position
 * @param echo        the prompt comes back with the output; with {@code logprobs} >= 0 each prompt token
 *                    but the first gets its log-probability (and alternatives) too: the prompt is scored
 */
public record SamplingParams(int maxTokens, float temperature, float topP, long seed, List<String> stop,
                             int logprobs, boolean echo) {
    public SamplingParams {
        if (maxTokens < (echo ? 0 : 1)) {
            throw new IllegalArgumentException("max_tokens must be >= " + (echo ? "0" : "1 (0 only with echo)")
                + ": max_tokens=" + maxTokens);
        }
        if (logprobs < -1 || logprobs > LogProbs.MAX_TOP) {
            throw new IllegalArgumentException("logprobs must be in [0, " + LogProbs.MAX_TOP + "] (-1: none): logprobs="
                + logprobs);
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

    /** Sampling without log-probabilities or echo. */
    public SamplingParams(int maxTokens, float temperature, float topP, long seed, List<String> stop) {
        this(maxTokens, temperature, topP, seed, stop, -1, false);
    }

    /** The same sampling, reporting {@code logprobs} alternatives (-1: none) and echoing the prompt or not. */
    public SamplingParams withLogprobs(int logprobs, boolean echo) {
        return new SamplingParams(maxTokens, temperature, topP, seed, stop, logprobs, echo);
    }

    /** Whether every prompt token but the first is scored (echo with log-probabilities). */
    public boolean scoresPrompt() {
        return echo && logprobs >= 0;
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
