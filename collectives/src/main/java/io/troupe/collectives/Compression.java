package io.troupe.collectives;

/**
 * What all-reduces of a communicator put on the wire. Reduction always accumulates in float32.
 */
public enum Compression {
    /** float32 on the wire: exact. */
    NONE,
    /**
     * bfloat16 on the wire (round to nearest even); half the bytes; every rank ends with the same bf16-exact values.
     */
    BF16,
    /**
     * int8 with a float32 scale per block of {@link io.troupe.collectives.compress.Int8Codec#BLOCK} elements, and
     * error feedback: each rank sends {@code C(g + e)} and keeps {@code e <- (g + e) - C(g + e)} per tag
     * (see {@link io.troupe.collectives.compress.ErrorFeedback}).
     */
    INT8_ERROR_FEEDBACK,
    /** int8 as above but without the residual: biased, for comparison only. */
    INT8
}
