package io.troupe.collectives;

import io.troupe.runtime.transport.TensorKey;

/**
 * The descriptor of what identifies a collective message: the layout of the frame's tensor key and
 * of its step field (the op signature). The one place these bits are packed and read.
 *
 * <pre>
 *  tensor key (int64), the layout of {@link TensorKey}:
 *   63..40  op sequence number mod 2^23 (the microbatch field)
 *   39..32  group id (the virtual-stage field)
 *   31      0
 *   30..20  algorithm step (0..2047)
 *   19..0   piece within the step (0..2^20-1)
 *
 *  step field (int64): the op signature, checked on every receive
 *   63..44  tag (bucket id) mod 2^20
 *   43..40  op code ({@link OpKind} ordinal)
 *   39..36  variant: bits 3..2 the algorithm's wire code ({@link #variant}), bits 1..0 the {@link Compression} ordinal
 *   35..0   element count mod 2^36
 * </pre>
 */
final class CollectiveKey {
    static final int PIECE_BITS = 20;
    static final int STEP_SHIFT = PIECE_BITS;
    static final int STEP_BITS = 11;
    static final int GROUP_SHIFT = TensorKey.VIRTUAL_STAGE_SHIFT;
    static final int GROUP_BITS = 8;
    static final int SEQ_SHIFT = TensorKey.MICROBATCH_SHIFT;
    static final int SEQ_BITS = 23;
    static final int MAX_PIECE = (1 << PIECE_BITS) - 1;
    static final int MAX_STEP = (1 << STEP_BITS) - 1;
    static final int MAX_GROUP_ID = (1 << GROUP_BITS) - 1;
    static final long SEQ_MASK = (1L << SEQ_BITS) - 1;

    static final int COUNT_BITS = 36;
    static final int VARIANT_SHIFT = COUNT_BITS;
    static final int VARIANT_BITS = 4;
    static final int OP_SHIFT = VARIANT_SHIFT + VARIANT_BITS;
    static final int OP_BITS = 4;
    static final int TAG_SHIFT = OP_SHIFT + OP_BITS;
    static final int TAG_BITS = 20;
    static final long COUNT_MASK = (1L << COUNT_BITS) - 1;
    static final int VARIANT_MASK = (1 << VARIANT_BITS) - 1;
    static final int OP_MASK = (1 << OP_BITS) - 1;
    static final int TAG_MASK = (1 << TAG_BITS) - 1;
    /** Compression takes the low two bits of the variant, the algorithm's wire code the high two. */
    static final int COMPRESSION_BITS = 2;
    static final int MAX_ALGORITHM_CODE = (1 << (VARIANT_BITS - COMPRESSION_BITS)) - 1;

    private CollectiveKey() {
    }

    // ------------------------------------------------------------------ tensor key

    /**
     * The key of piece {@code piece} of step {@code step} of op {@code seq} (kept mod 2^23) in group
     * {@code groupId}; the caller keeps {@code groupId}, {@code step} and {@code piece} in range
     * (hot path: not checked).
     */
    static long key(long seq, int groupId, int step, int piece) {
        return ((seq & SEQ_MASK) << SEQ_SHIFT) | ((long) groupId << GROUP_SHIFT) | ((long) step << STEP_SHIFT) | piece;
    }

    static int groupId(long key) {
        return (int) ((key >>> GROUP_SHIFT) & MAX_GROUP_ID);
    }

    /** The op sequence number a key carries: {@link #seqBits} of the sender's. */
    static long seq(long key) {
        return key >>> SEQ_SHIFT;
    }

    /** What of op sequence number {@code seq} a key carries (its low 23 bits). */
    static long seqBits(long seq) {
        return seq & SEQ_MASK;
    }

    static int step(long key) {
        return (int) ((key >>> STEP_SHIFT) & MAX_STEP);
    }

    static int piece(long key) {
        return (int) (key & MAX_PIECE);
    }

    // ------------------------------------------------------------------ signature (step field)

    /** The signature of an op; {@code tag} and {@code count} are kept mod 2^20 and mod 2^36. */
    static long signature(int tag, int opCode, int variant, long count) {
        return ((long) (tag & TAG_MASK) << TAG_SHIFT) | ((long) (opCode & OP_MASK) << OP_SHIFT)
            | ((long) (variant & VARIANT_MASK) << VARIANT_SHIFT) | (count & COUNT_MASK);
    }

    static int tag(long signature) {
        return (int) (signature >>> TAG_SHIFT);
    }

    static int opCode(long signature) {
        return (int) ((signature >>> OP_SHIFT) & OP_MASK);
    }

    static int variant(long signature) {
        return (int) ((signature >>> VARIANT_SHIFT) & VARIANT_MASK);
    }

    static long count(long signature) {
        return signature & COUNT_MASK;
    }

    /**
     * The variant of an op run by the algorithm with wire code {@code algorithmCode} (0..3) with {@code compression}.
     */
    static int variant(int algorithmCode, Compression compression) {
        if (algorithmCode < 0 || algorithmCode > MAX_ALGORITHM_CODE) {
            throw new IllegalArgumentException("algorithm code must be in [0, " + MAX_ALGORITHM_CODE
                + "]: algorithmCode=" + algorithmCode);
        }
        return (algorithmCode << COMPRESSION_BITS) | compression.ordinal();
    }

    /** Human-readable signature, for error messages only. */
    static String describe(long signature) {
        int op = opCode(signature);
        return "{op=" + (op < OpKind.VALUES.length ? OpKind.VALUES[op].name() : "?" + op) + ", tag=" + tag(signature)
            + ", variant=" + variant(signature) + ", count=" + count(signature) + "}";
    }
}
