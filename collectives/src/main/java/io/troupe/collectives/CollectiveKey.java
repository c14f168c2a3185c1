package io.troupe.collectives;

/**
 * Packs what identifies a collective message into the frame's tensor key and step fields.
 *
 * <pre>
 *  tensor key (int64), the layout of {@link io.troupe.runtime.transport.TensorKey}:
 *   63..40  op sequence number mod 2^23 (the microbatch field)
 *   39..32  group id (the virtual-stage field)
 *   31      0
 *   30..20  algorithm step (0..2047)
 *   19..0   piece within the step (0..2^20-1)
 *
 *  step field (int64): the op signature, checked on every receive
 *   63..44  tag (bucket id) mod 2^20
 *   43..40  op code
 *   39..36  variant (algorithm and compression)
 *   35..0   element count mod 2^36
 * </pre>
 */
final class CollectiveKey {
    static final int MAX_STEP = (1 << 11) - 1;
    static final int MAX_PIECE = (1 << 20) - 1;
    private static final long SEQ_MASK = (1L << 23) - 1;

    private CollectiveKey() {
    }

    static long key(long seq, int groupId, int step, int piece) {
        return ((seq & SEQ_MASK) << 40) | ((long) groupId << 32) | ((long) step << 20) | piece;
    }

    static int groupId(long key) {
        return (int) ((key >>> 32) & 0xFF);
    }

    static long seq(long key) {
        return key >>> 40;
    }

    static int step(long key) {
        return (int) ((key >>> 20) & MAX_STEP);
    }

    static int piece(long key) {
        return (int) (key & MAX_PIECE);
    }

    static long signature(int tag, int opCode, int variant, long count) {
        return ((long) (tag & 0xFFFFF) << 44) | ((long) (opCode & 0xF) << 40) | ((long) (variant & 0xF) << 36)
            | (count & ((1L << 36) - 1));
    }

    /** Human-readable signature, for error messages only. */
    static String describe(long signature) {
        int op = (int) ((signature >>> 40) & 0xF);
        return "{op=" + (op < OpKind.VALUES.length ? OpKind.VALUES[op].name() : "?" + op) + ", tag="
            + (signature >>> 44) + ", variant=" + ((signature >>> 36) & 0xF) + ", count=" + (signature & ((1L << 36) - 1))
            + "}";
    }
}
