package io.troupe.models.infer;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

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
 * @param frequencyPenalty subtracted from a token's logit once for each time it was generated so far, in
 *                    [-2, 2] (the prompt does not count)
 * @param presencePenalty subtracted from a token's logit once it was generated at all so far, in [-2, 2]
 * @param logitBias   added to the logits of the token ids it maps, each in [-100, 100] (-100 all but bans a
 *                    token, 100 all but forces it); applied before the penalties and the temperature. The
 *                    log-probabilities reported stay the model's own.
 */
public record SamplingParams(int maxTokens, float temperature, float topP, long seed, List<String> stop,
                             int logprobs, boolean echo, float frequencyPenalty, float presencePenalty,
                             Map<Integer, Float> logitBias) {
    /** The largest penalty either way. */
    public static final float MAX_PENALTY = 2f;
    /** The largest bias either way. */
    public static final float MAX_BIAS = 100f;

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
        if (!(Math.abs(frequencyPenalty) <= MAX_PENALTY)) {
            throw new IllegalArgumentException("frequency_penalty must be in [-2, 2]: frequency_penalty="
                + frequencyPenalty);
        }
        if (!(Math.abs(presencePenalty) <= MAX_PENALTY)) {
            throw new IllegalArgumentException("presence_penalty must be in [-2, 2]: presence_penalty="
                + presencePenalty);
        }
        logitBias = java.util.Collections.unmodifiableMap(new TreeMap<>(logitBias));
        for (Map.Entry<Integer, Float> e : logitBias.entrySet()) {
            if (e.getKey() < 0) {
                throw new IllegalArgumentException("logit_bias: token id " + e.getKey() + " is negative");
            }
            if (!(Math.abs(e.getValue()) <= MAX_BIAS)) {
                throw new IllegalArgumentException("logit_bias of token " + e.getKey() + " must be in [-100, 100]: "
                    + e.getValue());
            }
        }
        stop = List.copyOf(stop);
        for (String s : stop) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("stop strings must not be empty");
            }
        }
    }

    /** Sampling without log-probabilities, echo, penalties or biases. */
    public SamplingParams(int maxTokens, float temperature, float topP, long seed, List<String> stop) {
        this(maxTokens, temperature, topP, seed, stop, -1, false, 0f, 0f, Map.of());
    }

    /** The same sampling, reporting {@code logprobs} alternatives (-1: none) and echoing the prompt or not. */
    public SamplingParams withLogprobs(int logprobs, boolean echo) {
        return new SamplingParams(maxTokens, temperature, topP, seed, stop, logprobs, echo, frequencyPenalty,
            presencePenalty, logitBias);
    }

    /** The same sampling from another random stream. */
    public SamplingParams withSeed(long s) {
        return new SamplingParams(maxTokens, temperature, topP, s, stop, logprobs, echo, frequencyPenalty,
            presencePenalty, logitBias);
    }

    /** The same sampling with these penalties and biases ({@code frequency_penalty} and the others). */
    public SamplingParams withPenalties(float frequency, float presence, Map<Integer, Float> bias) {
        return new SamplingParams(maxTokens, temperature, topP, seed, stop, logprobs, echo, frequency, presence,
            bias);
    }

    /** Whether the logits are changed before sampling (a penalty or a bias is set). */
    public boolean adjustsLogits() {
        return frequencyPenalty != 0f || presencePenalty != 0f || !logitBias.isEmpty();
    }

    /**
     * Changes a row of {@code vocab} logits as these parameters say, given the tokens generated so far
     * ({@code generated[from, to)}): first each biased id's bias is added (ids at or past {@code vocab} are
     * ignored), then each generated id's logit loses {@code count * frequencyPenalty + presencePenalty}. A
     * pure function of the row and the tokens, in a fixed order, so a request's tokens still do not depend
     * on the batch.
     */
    public void adjust(float[] row, int off, int vocab, int[] generated, int from, int to, int[] counts) {
        for (Map.Entry<Integer, Float> e : logitBias.entrySet()) {
            if (e.getKey() < vocab) {
                row[off + e.getKey()] += e.getValue();
            }
        }
        if (frequencyPenalty == 0f && presencePenalty == 0f) {
            return;
        }
        java.util.Arrays.fill(counts, 0, vocab, 0);
        for (int i = from; i < to; i++) {
            counts[generated[i]]++;
        }
        for (int t = 0; t < vocab; t++) {
            if (counts[t] > 0) {
                row[off + t] -= counts[t] * frequencyPenalty + presencePenalty;
            }
        }
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
