package io.troupe.models.infer;

import io.troupe.models.gpt.GptConfig;

/**
 * A whole model's decoding forward as {@link BatchScheduler} drives it: the scheduler plans a
 * {@link StepBatch} over blocks of {@link #cache()}, and {@link #forward} returns the logits of the rows
 * that ask for them. {@link KvCachedGpt} (CPU kernels on Java arrays) and {@link DeviceKvCachedGpt}
 * (any {@code Device}, a GPU among them) are the two.
 */
public interface DecodingModel {
    GptConfig config();

    /** The cache whose blocks the scheduler hands to sequences (the block tables of every step). */
    PagedKvCache cache();

    /** Runs one step; the logits (logitCount, V) of the marked rows. Not thread-safe. */
    float[] forward(StepBatch batch);
}
