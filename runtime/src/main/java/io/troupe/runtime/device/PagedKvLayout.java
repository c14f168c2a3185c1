package io.troupe.runtime.device;

/**
 * Where a token's key and value live in a paged KV cache (the PagedAttention layout), one layer's
 * keys and values each in one flat float32 array or tensor of {@code numBlocks * blockSize * width}
 * elements. Shared by the host cache of the decoding forward ({@code io.troupe.models.infer.PagedKvCache})
 * and the device ops {@link Device#pagedKvWrite} and {@link Device#pagedAttention}, so both read the
 * same block tables the same way.
 *
 * <pre>
 * values: (numBlocks, blockSize, width)   a position's values side by side (heads in width)
 * keys:   (numBlocks, width, blockSize)   channel-major within a block: channel ch of the block's
 *                                         positions side by side
 * position p of a sequence: physical block table[p / blockSize], slot p % blockSize
 * </pre>
 *
 * Keys are channel-major so that consecutive positions of one channel are adjacent: one vector load
 * (CPU) or one coalesced warp load (GPU, a thread per position) reads one channel of many positions.
 */
public final class PagedKvLayout {
    private PagedKvLayout() {
    }

    /** Offset of (block, slot, channel 0) in a layer's values; channel ch is {@code ch} further on. */
    public static long valueOffset(int block, int slot, int blockSize, int width) {
        return ((long) block * blockSize + slot) * width;
    }

    /** Offset of (block, slot, channel 0) in a layer's keys; channel ch is {@code ch * blockSize} further on. */
    public static long keyOffset(int block, int slot, int blockSize, int width) {
        return (long) block * blockSize * width + slot;
    }

    /** Elements of one layer's keys (or values) for {@code numBlocks} blocks. */
    public static long layerElements(int numBlocks, int blockSize, int width) {
        return (long) numBlocks * blockSize * width;
    }
}
