package io.troupe.collectives;

/**
 * The algorithm a {@link CollectiveEngine} runs for its current collective. The wire code goes into
 * the op signature's variant ({@link CollectiveKey#variant(int, Compression)}), so members running
 * different algorithms for the same op refuse each other's pieces; codes never change meaning.
 */
enum EngineAlgorithm {
    /** Nothing running: no collective, or one that finished at start (a group of one). No wire code. */
    NONE(-1),
    RING(0),
    RECURSIVE_DOUBLING(1),
    CHAIN(2),
    REFERENCE(3);

    /** This algorithm's code in the signature's variant bits (0..3), or -1 for {@link #NONE}. */
    final int wireCode;

    EngineAlgorithm(int wireCode) {
        this.wireCode = wireCode;
    }
}
