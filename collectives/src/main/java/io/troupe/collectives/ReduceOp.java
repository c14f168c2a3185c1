package io.troupe.collectives;

/** How an all-reduce or reduce-scatter combines the members' values. */
public enum ReduceOp {
    /** Elementwise sum. */
    SUM,
    /** Elementwise sum divided by the group size (once, by the element's owner, so every rank agrees bitwise). */
    AVERAGE
}
