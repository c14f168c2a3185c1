package io.troupe.bench;

import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.train.TrainConfig;

/**
 * The fixed training recipe the benchmarks time: a model preset's batch size, peak lr 1e-3 with 10% warm-up, cosine
 * to 1e-4, clip 1.0, seed 1337. It is part of what a benchmark measures (the PyTorch baseline of the step bench runs
 * the same recipe), so it stays put when the training defaults in {@code reference.conf} change.
 */
public final class BenchRecipe {
    private BenchRecipe() {
    }

    /** The recipe for {@code steps} steps of {@code model}. */
    public static TrainConfig of(GptConfig model, int steps) {
        return new TrainConfig(model, model.defaultBatchSize(), 1, steps, 1e-3f, 1e-4f, Math.max(1, steps / 10), 1.0f,
            1337, Math.max(1, steps / 5), 8, 0, AdamWConfig.defaults());
    }
}
