package io.troupe.collectives;

/**
 * Which phases of the ring a run takes: of its {@code 2n - 2} steps, reduce-scatter is steps
 * {@code 0..n-2} and all-gather steps {@code n-1..2n-3}.
 */
enum RingPhases {
    /** Reduce-scatter then all-gather: every member ends with the whole reduced buffer. */
    ALL_REDUCE,
    /** Reduce-scatter only: member {@code i} ends with its reduced segment {@code i}. */
    REDUCE_SCATTER,
    /** All-gather only: every member ends with every member's segment. */
    ALL_GATHER;

    /** The first ring step of these phases in a ring of {@code n}. */
    int firstStep(int n) {
        return this == ALL_GATHER ? n - 1 : 0;
    }

    /** The last ring step of these phases in a ring of {@code n}. */
    int lastStep(int n) {
        return this == REDUCE_SCATTER ? n - 2 : 2 * n - 3;
    }
}
