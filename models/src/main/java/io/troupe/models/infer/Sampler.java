package io.troupe.models.infer;

import java.util.SplittableRandom;

/**
 * Picks the next token from one row of logits: argmax at temperature 0, else softmax(logits / T)
 * restricted to the top-p nucleus, drawn from the request's own random stream. Depends only on the
 * row and the stream, never on the batch.
 */
public final class Sampler {
    private Sampler() {
    }

    /** Samples from {@code logits[off, off + vocab)}. */
    public static int sample(float[] logits, int off, int vocab, float temperature, float topP, SplittableRandom rng) {
        if (temperature == 0f) {
            return argmax(logits, off, vocab);
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[off + i]);
        }
        double[] p = new double[vocab];
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            p[i] = Math.exp((logits[off + i] - max) / (double) temperature);
            sum += p[i];
        }
        Integer[] order = new Integer[vocab];
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
            p[i] /= sum;
        }
        // most likely first; ties by id, so the order is a pure function of the row
        java.util.Arrays.sort(order, (a, b) -> p[a] != p[b] ? Double.compare(p[b], p[a]) : Integer.compare(a, b));
        int keep = 0;
        double mass = 0;
        while (keep < vocab && (keep == 0 || mass < topP)) {
            mass += p[order[keep]];
            keep++;
        }
        double u = rng.nextDouble() * mass;
        double acc = 0;
        for (int j = 0; j < keep; j++) {
            acc += p[order[j]];
            if (u < acc) {
                return order[j];
            }
        }
        return order[keep - 1];
    }

    /** Index of the largest logit in the row; the lowest index among ties. */
    public static int argmax(float[] logits, int off, int vocab) {
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (logits[off + i] > logits[off + best]) {
                best = i;
            }
        }
        return best;
    }
}
