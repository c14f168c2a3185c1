package io.troupe.models.memory;

/**
 * Where a stage keeps its parameter gradients under ZeRO stage 2 when it does not hold them whole:
 * one buffer (the stage's {@code grads()}) of {@code residentElements + bucketElements} floats.
 * <ul>
 *   <li>The first {@code residentElements} hold the parameters whose gradients the input-gradient
 *       pass (B) writes (a GPT's LayerNorms): they accumulate over the step's micro-batches and are
 *       reduced once, after the step's backward.</li>
 *   <li>The rest is one bucket-sized window that every bucket of {@link #buckets} shares: the
 *       weight-gradient pass (W) writes a bucket's parameters, reports each one done
 *       ({@link io.troupe.models.StageModule#backwardWeight(int, java.util.function.IntConsumer)}),
 *       and before it writes the next bucket's the runtime has reduce-scattered the window into its
 *       owned slice and zeroed it. So W writes the parameters of one bucket between reports.</li>
 * </ul>
 *
 * @param residentElements floats at the start of the buffer that are never shared
 * @param bucketElements   floats of the shared window (the largest bucket)
 * @param arenaOffset      per parameter (index into {@code parameters()}): where its gradient starts
 *                         in the buffer
 * @param buckets          per bucket, in the order W completes them, its parameter indices; every
 *                         parameter outside the resident region is in exactly one
 * @param resident         indices of the resident parameters
 */
public record GradientArena(long residentElements, long bucketElements, long[] arenaOffset, int[][] buckets,
                            int[] resident) {
    /** Bytes of the buffer (float32). */
    public long bytes() {
        return (residentElements + bucketElements) * 4;
    }
}
