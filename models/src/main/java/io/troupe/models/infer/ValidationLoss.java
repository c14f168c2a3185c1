package io.troupe.models.infer;

import io.troupe.models.data.TokenStream;
import io.troupe.models.data.ValidationPlan;

/**
 * The exact validation loss of inference weights (float32 or int8): the mean next-token
 * cross-entropy over every position of every non-overlapping window of a token stream, as
 * {@link ValidationPlan} defines the windows and combines the passes; nothing is sampled, so the
 * figure is the same on every run.
 */
public final class ValidationLoss {
    /** The loss with the count it averages. */
    public record Result(double loss, long windows, long tokens) {
    }

    private ValidationLoss() {
    }

    /** Evaluates {@code rowsPerStep} windows per forward step, the KV cache in float32. */
    public static Result exact(InferenceWeights weights, TokenStream stream, int rowsPerStep) {
        return exact(weights, stream, rowsPerStep, KvPrecision.F32);
    }

    /**
     * As {@link #exact(InferenceWeights, TokenStream, int)} with the KV cache held in {@code kv}: every
     * window's attention reads its keys and values back from the cache, so a bfloat16 cache's
     * rounding shows in the loss exactly as it does in generation.
     */
    public static Result exact(InferenceWeights weights, TokenStream stream, int rowsPerStep, KvPrecision kv) {
        if (rowsPerStep < 1) {
            throw new IllegalArgumentException("rows per step must be >= 1: rowsPerStep=" + rowsPerStep);
        }
        int t = weights.config().seqLen();
        int v = weights.config().vocabSize();
        PagedKvCache cache = new PagedKvCache(weights.config(), t, rowsPerStep, weights.config().nLayer(), kv);
        KvCachedGpt model = new KvCachedGpt(weights, cache);
        BlockTable[] tables = new BlockTable[rowsPerStep];
        for (int r = 0; r < rowsPerStep; r++) {
            tables[r] = new BlockTable();
            cache.ensureCapacity(tables[r], t);
        }
        StepBatch batch = new StepBatch();
        ValidationPlan plan = new ValidationPlan(stream, t, rowsPerStep, rowsPerStep, ValidationPlan.ALL);
        double loss = plan.meanLoss((x, y) -> {
            int rows = x.length / t;
            batch.clear();
            for (int i = 0; i < x.length; i++) {
                batch.add(x[i], i % t, tables[i / t], true);
            }
            float[] logits = model.forward(batch);
            double total = 0;
            for (int i = 0; i < rows * t; i++) {
                total += LogProbs.crossEntropy(logits, i * v, v, y[i]);
            }
            return total / (rows * t);
        });
        return new Result(loss, plan.windows(), plan.windows() * t);
    }
}
