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
 * bytes per block = 2 (k, v) * n_layer * blockSize * C * (4 for f32, 2 for bf16)
 * </pre>
 *
 * With {@link KvPrecision#BF16} the same layout holds bfloat16 bits in {@code short} arrays
 * ({@link #keys16}, {@link #values16}): the values are rounded once, when a step writes them.
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
    private final KvPrecision precision;
    private final int layers;
    private final float[][] k;
    private final float[][] v;
    private final short[][] k16;
    private final short[][] v16;
    private final int[] freeList;
    private int freeCount;

    public PagedKvCache(GptConfig cfg, int blockSize, int numBlocks) {
        this(cfg, blockSize, numBlocks, cfg.nLayer());
    }

    public PagedKvCache(GptConfig cfg, int blockSize, int numBlocks, int layers) {
        this(cfg, blockSize, numBlocks, layers, KvPrecision.F32);
    }

    /**
     * A cache holding {@code layers} layers (a pipeline stage's blocks, indexed from 0); the block
     * ids of another stage's allocator address the same positions here.
     */
    public PagedKvCache(GptConfig cfg, int blockSize, int numBlocks, int layers, KvPrecision precision) {
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
        this.precision = precision;
        this.layers = layers;
        int n = numBlocks * blockSize * width;
        boolean wide = precision == KvPrecision.F32;
        this.k = wide ? new float[layers][n] : null;
        this.v = wide ? new float[layers][n] : null;
        this.k16 = wide ? null : new short[layers][n];
        this.v16 = wide ? null : new short[layers][n];
        this.freeList = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) {
            freeList[i] = numBlocks - 1 - i;    // block 0 handed out first
        }
        this.freeCount = numBlocks;
    }

    /** Blocks that fit a budget of {@code mib} MiB for this model and block size (at least 1). */
    public static int blocksForBudget(GptConfig cfg, int blockSize, long mib) {
        return blocksForBudget(cfg, blockSize, mib, KvPrecision.F32);
    }

    /** Blocks of {@code precision} that fit a budget of {@code mib} MiB (at least 1). */
    public static int blocksForBudget(GptConfig cfg, int blockSize, long mib, KvPrecision precision) {
        long perBlock = bytesPerBlock(cfg, blockSize, precision);
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE / 2, (mib << 20) / perBlock));
    }

    public static long bytesPerBlock(GptConfig cfg, int blockSize) {
        return bytesPerBlock(cfg, blockSize, KvPrecision.F32);
    }

    public static long bytesPerBlock(GptConfig cfg, int blockSize, KvPrecision precision) {
        return 2L * cfg.nLayer() * blockSize * cfg.dModel() * precision.bytes();
    }

    /** Layers held (the model's, or one pipeline stage's). */
    public int layers() {
        return layers;
    }

    /** How keys and values are held. */
    public KvPrecision precision() {
        return precision;
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

    /** A layer's keys, channel-major within each block (see the class comment); f32 caches only. */
    float[] keys(int layer) {
        return k[layer];
    }

    float[] values(int layer) {
        return v[layer];
    }

    /** A layer's keys as bfloat16 bits, in {@link #keys}' layout; bf16 caches only. */
    short[] keys16(int layer) {
        return k16[layer];
    }

    short[] values16(int layer) {
        return v16[layer];
    }
}
