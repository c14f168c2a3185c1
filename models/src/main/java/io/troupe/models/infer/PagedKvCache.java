package io.troupe.models.infer;

import io.troupe.models.gpt.GptConfig;

/**
 * The paged KV cache (the PagedAttention layout): keys and values of every layer live in fixed-size
 * blocks of {@code blockSize} token positions, handed out from one pool under a memory budget; a
 * sequence reaches its positions through its {@link BlockTable}, so its blocks need not be
 * contiguous and only its last block is partly empty.
 *
 * <pre>
 * per layer l:  v[l] = float[numBlocks][blockSize][C]   a position's values side by side (heads in C)
 *               k[l] = float[numBlocks][C][blockSize]   a block's keys channel-major: channel ch of the
 *                                                       block's positions side by side
 * position p of a sequence: block table[p / blockSize], slot p % blockSize
 * bytes per block = 2 (k, v) * n_layer * blockSize * C * 4
 * </pre>
 *
 * Keys lie channel-major within a block so that one vector load reads one channel of consecutive
 * positions: a token's scores against a block are multiply-adds of that load by the query's
 * channels, each lane a position, with no sums across lanes.
 *
 * <p>Not thread-safe: the allocator and the tensors are used by one thread at a time (the serving
 * actor allocates between steps, the step executor reads and writes during one).
 */
public final class PagedKvCache {
    private final int blockSize;
    private final int numBlocks;
    private final int width;
    private final float[][] k;
    private final float[][] v;
    private final int[] freeList;
    private int freeCount;

    public PagedKvCache(GptConfig cfg, int blockSize, int numBlocks) {
        this(cfg, blockSize, numBlocks, cfg.nLayer());
    }

    /**
     * A cache holding {@code layers} layers (a pipeline stage's blocks, indexed from 0); the block
     * ids of another stage's allocator address the same positions here.
     */
    public PagedKvCache(GptConfig cfg, int blockSize, int numBlocks, int layers) {
        if (layers < 0 || layers > cfg.nLayer()) {
            throw new IllegalArgumentException("KV cache layers must be in [0, " + cfg.nLayer() + "]: layers="
                + layers);
        }
        if (blockSize < 1) {
            throw new IllegalArgumentException("KV block size must be >= 1 token: blockSize=" + blockSize);
        }
        if (numBlocks < 1) {
            throw new IllegalArgumentException("KV cache must hold >= 1 block: numBlocks=" + numBlocks);
        }
        if ((long) numBlocks * blockSize * cfg.dModel() > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("KV cache too large for one array per layer: numBlocks=" + numBlocks
                + ", blockSize=" + blockSize + ", d_model=" + cfg.dModel());
        }
        this.blockSize = blockSize;
        this.numBlocks = numBlocks;
        this.width = cfg.dModel();
        this.k = new float[layers][numBlocks * blockSize * width];
        this.v = new float[layers][numBlocks * blockSize * width];
        this.freeList = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) {
            freeList[i] = numBlocks - 1 - i;    // block 0 handed out first
        }
        this.freeCount = numBlocks;
    }

    /** Blocks that fit a budget of {@code mib} MiB for this model and block size (at least 1). */
    public static int blocksForBudget(GptConfig cfg, int blockSize, long mib) {
        long perBlock = bytesPerBlock(cfg, blockSize);
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE / 2, (mib << 20) / perBlock));
    }

    public static long bytesPerBlock(GptConfig cfg, int blockSize) {
        return 2L * cfg.nLayer() * blockSize * cfg.dModel() * 4L;
    }

    /** Layers held (the model's, or one pipeline stage's). */
    public int layers() {
        return k.length;
    }

    public int blockSize() {
        return blockSize;
    }

    public int numBlocks() {
        return numBlocks;
    }

    public int freeBlocks() {
        return freeCount;
    }

    public int usedBlocks() {
        return numBlocks - freeCount;
    }

    /** Blocks needed to hold {@code tokens} positions. */
    public int blocksFor(int tokens) {
        return (tokens + blockSize - 1) / blockSize;
    }

    /**
     * Grows {@code table} to cover {@code tokens} positions. Returns false, allocating nothing, when
     * the pool has too few free blocks.
     */
    public boolean ensureCapacity(BlockTable table, int tokens) {
        int need = blocksFor(tokens) - table.size();
        if (need <= 0) {
            return true;
        }
        if (need > freeCount) {
            return false;
        }
        for (int i = 0; i < need; i++) {
            table.add(freeList[--freeCount]);
        }
        return true;
    }

    /** Returns every block of {@code table} to the pool. */
    public void free(BlockTable table) {
        while (table.size() > 0) {
            freeList[freeCount++] = table.removeLast();
        }
    }

    /** Offset of (position, channel 0) in a layer's v array. */
    int offset(BlockTable table, int position) {
        return (table.block(position / blockSize) * blockSize + position % blockSize) * width;
    }

    /** out[u] = {@link #offset}(table, u) for u in [0, positions), block by block (no division per position). */
    void offsets(BlockTable table, int positions, int[] out) {
        int u = 0;
        for (int b = 0; u < positions; b++) {
            int base = table.block(b) * blockSize * width;
            for (int slot = 0; slot < blockSize && u < positions; slot++, u++) {
                out[u] = base + slot * width;
            }
        }
    }

    /** Offset of (position, channel 0) in a layer's k array; channel ch is {@code ch * blockSize} further on. */
    int keyOffset(BlockTable table, int position) {
        return table.block(position / blockSize) * blockSize * width + position % blockSize;
    }

    /** out[b] = offset of block b of {@code table} in a layer's k or v array, for the blocks of {@code positions}. */
    void blockBases(BlockTable table, int positions, int[] out) {
        for (int b = 0, n = blocksFor(positions); b < n; b++) {
            out[b] = table.block(b) * blockSize * width;
        }
    }

    /** A layer's keys, channel-major within each block (see the class comment). */
    float[] keys(int layer) {
        return k[layer];
    }

    float[] values(int layer) {
        return v[layer];
    }
}
