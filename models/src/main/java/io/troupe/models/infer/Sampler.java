package io.troupe.models.infer;

import java.util.SplittableRandom;

/**
 * Picks the next token from one row of logits: argmax at temperature 0, else softmax(logits / T)
 * restricted to the top-p nucleus (the most likely tokens first, ties by id), drawn from the
 * request's own random stream. With top-p 1 there is no nucleus to cut: the weights
 * {@code e[i] = exp((l[i] - max) / T)} in float ({@link RowKernels#exp}, lane-wise on the Vector API
 * where the JVM has it, the same bits), their sum in double in id order, and the draw walks the ids
 * in order until the running sum passes {@code u * sum}. Depends only on the row and the stream,
 * never on the batch.
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
        if (topP >= 1f && max > Float.NEGATIVE_INFINITY && max < Float.POSITIVE_INFINITY) {   // (NaN fails both)
            return drawWhole(logits, off, vocab, max, temperature, rng);
        }
        double[] p = new double[vocab];
        double sum = 0;
        boolean finite = max != Float.POSITIVE_INFINITY && !Float.isNaN(max);
        for (int i = 0; i < vocab; i++) {
            p[i] = Math.exp((logits[off + i] - max) / (double) temperature);
            sum += p[i];
        }
        for (int i = 0; i < vocab; i++) {
            p[i] /= sum;
            finite &= !Double.isNaN(p[i]);
        }
        // most likely first; ties by id, so the order is a pure function of the row
        int[] order = finite ? orderByProbability(logits, off, p, vocab) : orderByComparator(p, vocab);
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

    /** The top-p 1 draw over a row whose max is finite (see the class comment). */
    private static int drawWhole(float[] logits, int off, int vocab, float max, float temperature,
                                 SplittableRandom rng) {
        float[] e = new float[vocab];
        if (Fp32Linear.VECTOR_API) {
            VectorAttentionKernel.expScaled(logits, off, vocab, max, temperature, e);
        } else {
            for (int i = 0; i < vocab; i++) {
                e[i] = RowKernels.exp((logits[off + i] - max) / temperature);
            }
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            sum += e[i];
        }
        double u = rng.nextDouble() * sum;
        double acc = 0;
        for (int i = 0; i < vocab; i++) {
            acc += e[i];
            if (u < acc) {
                return i;
            }
        }
        return vocab - 1;
    }

    /**
     * Token ids by p descending, ties by id ascending: the order of {@link #orderByComparator}, built
     * without boxing. p is a non-decreasing function of the logit (a float difference, a division by
     * the positive temperature, exp, a division by the sum: each monotone), so sorting primitive
     * keys (logit descending, id ascending) puts equal p next to each other; a run of equal p whose
     * logits differed is then put in id order. Needs finite p (no NaN).
     */
    static int[] orderByProbability(float[] logits, int off, double[] p, int vocab) {
        long[] keys = new long[vocab];
        for (int i = 0; i < vocab; i++) {
            int bits = Float.floatToIntBits(logits[off + i] + 0f);     // -0 as +0: they are equal logits
            int ascending = bits >= 0 ? bits : bits ^ 0x7fffffff;        // int order == float order
            keys[i] = ((long) ~ascending << 32) | i;                     // logit descending, then id ascending
        }
        java.util.Arrays.sort(keys);
        int[] order = new int[vocab];
        for (int i = 0; i < vocab; i++) {
            order[i] = (int) keys[i];
        }
        for (int start = 0; start < vocab; ) {
            int end = start + 1;
            while (end < vocab && p[order[end]] == p[order[start]]) {
                end++;
            }
            if (end - start > 1) {
                java.util.Arrays.sort(order, start, end);               // equal p: by id
            }
            start = end;
        }
        return order;
    }

    /** The reference order: p descending, ties by id ascending, by a comparator on boxed ids. */
    static int[] orderByComparator(double[] p, int vocab) {
        Integer[] boxed = new Integer[vocab];
        for (int i = 0; i < vocab; i++) {
            boxed[i] = i;
        }
        java.util.Arrays.sort(boxed, (a, b) -> p[a] != p[b] ? Double.compare(p[b], p[a]) : Integer.compare(a, b));
        int[] order = new int[vocab];
        for (int i = 0; i < vocab; i++) {
            order[i] = boxed[i];
        }
        return order;
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
