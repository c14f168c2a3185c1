package io.troupe.collectives;

/** The collectives a communicator runs; the ordinal is the op code in the signature. */
enum OpKind {
    ALL_REDUCE, REDUCE_SCATTER, ALL_GATHER, BROADCAST, BARRIER;

    static final OpKind[] VALUES = values();
}
