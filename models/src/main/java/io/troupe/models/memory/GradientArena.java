package io.troupe.models.memory;

import java.util.List;

/**
 * Where a stage keeps its parameter gradients under ZeRO stage 2 when it does not hold them whole:
 * one buffer (the stage's {@code grads()}) of {@code residentElements + bucketElements} floats,
 * cut into {@link Piece pieces}: a whole parameter, or a block of rows of a linear's weight.
 * <ul>
 *   <li>The first {@code residentElements} hold the parameters whose gradients the input-gradient
 *       pass (B) writes (a GPT's LayerNorms): they accumulate over the step's micro-batches and are
 *       reduced once, after the step's backward.</li>
 *   <li>The rest is one bucket-sized window that every bucket of {@link #buckets} shares: the
 *       weight-gradient pass (W) writes a bucket's pieces, reports each one done
 *       ({@link io.troupe.models.StageModule#backwardWeight(int, java.util.function.IntConsumer)}
 *       reports piece indices once a stage has an arena), and before it writes the next bucket's
 *       the runtime has reduce-scattered the window into its owned slice and zeroed it. So W
 *       writes the pieces of one bucket between reports. A bucket may end inside a parameter: a
 *       large weight's gradient is computed block of rows by block of rows, each into the window,
 *       so the window does not grow with the largest parameter.</li>
 * </ul>
 *
 * @param residentElements floats at the start of the buffer that are never shared
 * @param bucketElements   floats of the shared window (the largest bucket)
 * @param pieces           every piece, resident ones first, then in the order W completes them
 * @param buckets          per bucket, in the order W completes them, its piece indices; every
 *                         non-resident piece is in exactly one
 * @param resident         indices of the resident pieces (whole parameters)
 */
public record GradientArena(long residentElements, long bucketElements, List<Piece> pieces, int[][] buckets,
                            int[] resident) {
    public GradientArena {
        pieces = List.copyOf(pieces);
    }

    /**
     * Elements {@code [firstElement, firstElement + elements)} of parameter {@code parameter}'s
     * gradient (row-major, so a block of whole rows of a weight), kept at {@code arenaOffset} of
     * the buffer.
     *
     * @param parameter index into the stage's {@code parameters()}
     */
    public record Piece(int parameter, long firstElement, long elements, long arenaOffset) {
    }

    /** Bytes of the buffer (float32). */
    public long bytes() {
        return (residentElements + bucketElements) * 4;
    }
}
