package io.troupe.collectives;

/** Which algorithm an all-reduce uses. {@link #AUTO} picks by size ({@link CollectiveSettings#smallMaxBytes}). */
public enum CollectiveAlgorithm {
    /** Recursive doubling up to {@code smallMaxBytes}, pipelined ring above. */
    AUTO,
    /** Chunked, pipelined ring: reduce-scatter then all-gather; bandwidth-optimal. */
    RING,
    /** Recursive doubling (non-powers of two fold the extra ranks in first); latency-optimal. */
    RECURSIVE_DOUBLING,
    /** Gather to member 0, reduce there in double in member order, send back: the simple reference. */
    REFERENCE
}
