package io.troupe.runtime.transport;

/**
 * Packs the tensor key of a frame into one {@code long}: micro-batch (bits 63..40, 23 usable bits),
 * virtual stage (bits 39..32) and bucket or chunk id (bits 31..0). Collectives use
 * {@code of(0, 0, chunkId)}, pipelines {@code of(microbatch, virtualStage, 0)}.
 */
public final class TensorKey {
    /** Where the micro-batch field starts (it runs to bit 63). */
    public static final int MICROBATCH_SHIFT = 40;
    /** Where the 8-bit virtual-stage field starts. */
    public static final int VIRTUAL_STAGE_SHIFT = 32;
    /** Largest micro-batch index a key holds. */
    public static final int MAX_MICROBATCH = (1 << 23) - 1;
    /** Largest virtual stage a key holds. */
    public static final int MAX_VIRTUAL_STAGE = 255;

    private TensorKey() {
    }

    /** The key for (micro-batch, virtual stage, bucket/chunk id); all must be non-negative. */
    public static long of(int microbatch, int virtualStage, int bucketId) {
        if (microbatch < 0 || microbatch > MAX_MICROBATCH) {
            throw new IllegalArgumentException("microbatch must be in [0, " + MAX_MICROBATCH + "]: microbatch="
                + microbatch);
        }
        if (virtualStage < 0 || virtualStage > MAX_VIRTUAL_STAGE) {
            throw new IllegalArgumentException("virtualStage must be in [0, " + MAX_VIRTUAL_STAGE + "]: virtualStage="
                + virtualStage);
        }
        if (bucketId < 0) {
            throw new IllegalArgumentException("bucketId must be non-negative: bucketId=" + bucketId);
        }
        return ((long) microbatch << MICROBATCH_SHIFT) | ((long) virtualStage << VIRTUAL_STAGE_SHIFT) | bucketId;
    }

    public static int microbatch(long key) {
        return (int) (key >>> MICROBATCH_SHIFT);
    }

    public static int virtualStage(long key) {
        return (int) ((key >>> VIRTUAL_STAGE_SHIFT) & MAX_VIRTUAL_STAGE);
    }

    public static int bucketId(long key) {
        return (int) key;
    }

    /** Human-readable form for messages (not for hot paths). */
    public static String toString(long key) {
        return "mb=" + microbatch(key) + ",vs=" + virtualStage(key) + ",bucket=" + bucketId(key);
    }
}
