package io.troupe.models.infer;

import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.device.PagedKvLayout;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.Map;

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
 * This is {@link PagedKvLayout}, the layout the device ops ({@code Device.pagedKvWrite},
 * {@code Device.pagedAttention}) use too, so a device cache reads the same block tables the same way.
 *
 * With {@link KvPrecision#BF16} the same layout holds bfloat16 bits in {@code short} arrays
 * ({@link #keys16}, {@link #values16}): the values are rounded once, when a step writes them.
 *
 * Keys lie channel-major within a block so that one vector load reads one channel of consecutive
 * positions: a token's scores against a block are multiply-adds of that load by the query's
 * channels, each lane a position, with no sums across lanes.
 *
 * <p><b>Prefix caching.</b> A full block whose positions a step has computed can be offered to the
 * cache's index ({@link #offer}), keyed by every token from the sequence's start to the block's end
 * (as the block's tokens and the key of the block before it: {@link Prefix}): keys and values at a
 * position depend on those tokens and nothing else (the kernels are
 * row-independent), so another sequence that starts with the same tokens takes the block instead of
 * computing it ({@link #reuse}), and gets the same bits. Blocks are reference-counted; a block no
 * table holds any more stays cached, counted as free, until an allocation that finds no never-used
 * block evicts it, least recently released first. Shared blocks are full and never written: a
 * sequence writes only past what it computed or took.
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
    /** Tables holding each block. */
    private final int[] refs;
    /** The prefix each indexed block holds (null: not indexed). */
    private final Prefix[] prefixOf;
    private final Map<Prefix, Integer> index = new HashMap<>();
    /** Indexed blocks no table holds, least recently released first: free, and taken back by {@link #reuse}. */
    private final LinkedHashSet<Integer> cached = new LinkedHashSet<>();
    private long reusedTokens;
    private long evictions;

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
        this.refs = new int[numBlocks];
        this.prefixOf = new Prefix[numBlocks];
    }

    /** The tokens from a sequence's start to a block's end: an index key compared token by token. */
    /**
     * The key of an indexed block: the key of the block before it in the sequence (the index's own
     * object: compared by identity, null for the first block) and this block's tokens. Two keys are
     * equal exactly when their whole prefixes are, by induction, and building one costs a block's
     * tokens, not the whole prefix. A key whose parent left the index is never matched again.
     */
    static final class Prefix {
        private final Prefix parent;
        private final int[] tokens;
        private final int hash;

        private Prefix(Prefix parent, int[] tokens) {
            this.parent = parent;
            this.tokens = tokens;
            this.hash = 31 * (parent == null ? 0 : parent.hash) + Arrays.hashCode(tokens);
        }

        /** The key of the block of {@code g} over positions [start, start + size) after {@code parent}. */
        static Prefix of(Prefix parent, Generation g, int start, int size) {
            int[] t = new int[size];
            for (int i = 0; i < size; i++) {
                t[i] = g.token(start + i);
            }
            return new Prefix(parent, t);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Prefix p && p.hash == hash && p.parent == parent && Arrays.equals(p.tokens, tokens);
        }

        @Override
        public int hashCode() {
            return hash;
        }
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

    /** Blocks an allocation can have: never used or released, and cached ones no table holds. */
    public int freeBlocks() {
        return freeCount + cached.size();
    }

    /** Blocks some sequence holds. */
    public int usedBlocks() {
        return numBlocks - freeBlocks();
    }

    /** Blocks that hold a cached prefix and no sequence (free, and reusable until evicted). */
    public int cachedBlocks() {
        return cached.size();
    }

    /** Blocks held in the prefix index: cached ones and those sequences hold. */
    public int indexedBlocks() {
        return index.size();
    }

    /** Token positions sequences took from the prefix index instead of computing them, since the start. */
    public long reusedTokens() {
        return reusedTokens;
    }

    /** Cached blocks evicted for an allocation, since the start. */
    public long evictions() {
        return evictions;
    }

    /**
     * Gives {@code g}, which holds no block yet, the longest run of indexed blocks that its tokens
     * begin with, up to {@code limit} positions; returns the positions taken (a multiple of the block
     * size), which the sequence need not compute.
     */
    int reuse(Generation g, int limit) {
        BlockTable table = g.table();
        if (table.size() != 0) {
            throw new IllegalStateException("prefix reuse needs an empty block table: " + table.size() + " held");
        }
        int taken = 0;
        Prefix parent = null;
        while (taken + blockSize <= limit) {
            Integer block = index.get(Prefix.of(parent, g, taken, blockSize));
            if (block == null) {
                break;
            }
            if (refs[block]++ == 0) {
                cached.remove(block);
            }
            table.add(block);
            parent = prefixOf[block];
            taken += blockSize;
        }
        table.indexed = table.size();
        table.indexedKey = parent;
        reusedTokens += taken;
        return taken;
    }

    /**
     * Of the blocks {@link #reuse} would give {@code g} (up to {@code limit} positions), those a table
     * holds now: taking them costs no free block, so admission counts them beside the free ones.
     */
    int heldPrefixBlocks(Generation g, int limit) {
        int held = 0;
        Prefix parent = null;
        for (int start = 0; start + blockSize <= limit; start += blockSize) {
            Integer block = index.get(Prefix.of(parent, g, start, blockSize));
            if (block == null) {
                break;
            }
            if (refs[block] > 0) {
                held++;
            }
            parent = prefixOf[block];
        }
        return held;
    }

    /**
     * Offers the full blocks of {@code g} within its first {@code computed} positions, which a finished
     * step wrote, to the prefix index. A prefix another block holds already keeps that block.
     */
    void offer(Generation g, int computed) {
        BlockTable table = g.table();
        for (int b = table.indexed; (b + 1) * blockSize <= computed && b < table.size(); b++) {
            int block = table.block(b);
            Prefix key = prefixOf[block];
            if (key == null) {
                key = Prefix.of(table.indexedKey, g, b * blockSize, blockSize);
                Integer holder = index.putIfAbsent(key, block);
                if (holder == null) {
                    prefixOf[block] = key;
                } else {
                    key = prefixOf[holder];         // the index's key is the parent of this sequence's next
                }
            }
            table.indexed = b + 1;
            table.indexedKey = key;
        }
    }

    /**
     * Empties the prefix index (the blocks' contents are gone: a pipeline stage lost its cache). Cached
     * blocks become plain free ones; held ones are no longer shared with newcomers.
     */
    void forgetPrefixes() {
        for (int block : cached) {
            freeList[freeCount++] = block;
        }
        cached.clear();
        index.clear();
        Arrays.fill(prefixOf, null);
    }

    /** A block for a table: a never-used or released one, else the least recently released cached one. */
    private int take() {
        int block;
        if (freeCount > 0) {
            block = freeList[--freeCount];
        } else {
            Iterator<Integer> oldest = cached.iterator();
            block = oldest.next();
            oldest.remove();
            index.remove(prefixOf[block]);
            prefixOf[block] = null;
            evictions++;
        }
        refs[block] = 1;
        return block;
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
        if (need > freeBlocks()) {
            return false;
        }
        for (int i = 0; i < need; i++) {
            table.add(take());
        }
        return true;
    }

    /** Returns every block of {@code table} to the pool; an indexed one no other table holds stays cached. */
    public void free(BlockTable table) {
        while (table.size() > 0) {
            int block = table.removeLast();
            if (--refs[block] > 0) {
                continue;
            }
            if (prefixOf[block] != null) {
                cached.add(block);
            } else {
                freeList[freeCount++] = block;
            }
        }
        table.indexed = 0;
        table.indexedKey = null;
    }

    /** Offset of (position, channel 0) in a layer's v array. */
    int offset(BlockTable table, int position) {
        return (int) PagedKvLayout.valueOffset(table.block(position / blockSize), position % blockSize, blockSize,
            width);
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
        return (int) PagedKvLayout.keyOffset(table.block(position / blockSize), position % blockSize, blockSize,
            width);
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
