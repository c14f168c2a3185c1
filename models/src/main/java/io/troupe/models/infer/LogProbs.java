package io.troupe.models.infer;

/**
 * Log-probabilities of one row of logits under the model's own distribution, {@code log softmax(row)}
 * at temperature 1 whatever the request samples with (what a scorer wants: the temperature and the
 * nucleus shape the draw, not the model). The maximum and the sum of {@code exp(l - max)} are taken in
 * double in id order, so a value depends only on the row (and the row does not depend on the batch).
 * The validation loss ({@link ValidationLoss}) is the same arithmetic: {@code crossEntropy = -logProb}.
 */
public final class LogProbs {
    /** The most alternatives a request may ask for at each position. */
    public static final int MAX_TOP = 5;

    private LogProbs() {
    }

    /**
     * The reference for a scored prompt: one plain forward of {@code tokens} from position 0 (a cache of
     * its own, every row's logits kept), and {@code out[p] = log P(tokens[p] | tokens[0..p))} for p >= 1
     * ({@code out[0]} is NaN: nothing precedes the first token). The scheduler scores prompt rows wherever
     * they are computed; tests hold it to this.
     */
    public static double[] plainScores(InferenceWeights weights, int[] tokens) {
        PagedKvCache cache = new PagedKvCache(weights.config(), 16, (tokens.length + 15) / 16);
        KvCachedGpt model = new KvCachedGpt(weights, cache);
        BlockTable table = new BlockTable();
        cache.ensureCapacity(table, tokens.length);
        StepBatch batch = new StepBatch();
        for (int i = 0; i < tokens.length; i++) {
            batch.add(tokens[i], i, table, true);
        }
        float[] logits = model.forward(batch);
        int v = weights.config().vocabSize();
        double[] out = new double[tokens.length];
        out[0] = Double.NaN;
        for (int p = 1; p < tokens.length; p++) {
            out[p] = logProb(logits, (p - 1) * v, v, tokens[p]);
        }
        return out;
    }

    /** The row's maximum, in double. */
    private static double max(float[] logits, int off, int vocab) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[off + i]);
        }
        return max;
    }

    /** {@code log(sum exp(l - max))} over the row, summed in id order. */
    private static double logSum(float[] logits, int off, int vocab, double max) {
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            sum += Math.exp(logits[off + i] - max);
        }
        return Math.log(sum);
    }

    /** {@code -log softmax(row)[target]}, in double: the next-token cross-entropy of one position. */
    public static double crossEntropy(float[] logits, int off, int vocab, int target) {
        double max = max(logits, off, vocab);
        return crossEntropy(logSum(logits, off, vocab, max), max, logits[off + target]);
    }

    /** The one formula every value here comes from: {@code logSum + max - l}. */
    private static double crossEntropy(double logSum, double max, float l) {
        return logSum + max - l;
    }

    /** {@code log softmax(row)[target]}: exactly {@code -crossEntropy}. */
    public static double logProb(float[] logits, int off, int vocab, int target) {
        return -crossEntropy(logits, off, vocab, target);
    }

    /**
     * The log-probability of {@code target} into {@code out[0]} and of the {@code k} most likely ids
     * (ties by the lower id) into {@code ids[0..k)} and {@code out[1..k]}, most likely first; every
     * value the same bits as {@link #logProb} of that id.
     */
    static void topAndTarget(float[] logits, int off, int vocab, int target, int k, int[] ids, double[] out) {
        double max = max(logits, off, vocab);
        double logSum = logSum(logits, off, vocab, max);
        out[0] = -crossEntropy(logSum, max, logits[off + target]);
        int taken = 0;
        for (int i = 0; i < vocab && k > 0; i++) {      // insertion into a sorted list of k: k is at most 5
            float l = logits[off + i];
            if (taken == k && !(l > logits[off + ids[k - 1]])) {
                continue;                               // not above the k-th (an equal one has a lower id first)
            }
            int j = Math.min(taken, k - 1);
            while (j > 0 && l > logits[off + ids[j - 1]]) {
                ids[j] = ids[j - 1];
                j--;
            }
            ids[j] = i;
            if (taken < k) {
                taken++;
            }
        }
        for (int j = 0; j < k; j++) {
            out[1 + j] = -crossEntropy(logSum, max, logits[off + ids[j]]);
        }
    }
}
