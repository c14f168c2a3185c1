package io.troupe.models.infer;

/**
 * The prefix-cache reuse of a {@link BatchScheduler} (see {@link BatchScheduler#cachePrefixes}): a request
 * about to be admitted takes the indexed blocks its tokens begin with, and a completed forward offers the
 * full blocks it wrote to the index. Off by default. Not thread-safe: the scheduler's thread.
 */
final class PrefixReuse {
    private final PagedKvCache cache;
    private boolean cachePrefixes;

    PrefixReuse(PagedKvCache cache) {
        this.cache = cache;
    }

    /** See {@link BatchScheduler#cachePrefixes}. */
    void cachePrefixes(boolean on) {
        this.cachePrefixes = on;
    }

    /**
     * Gives a request about to be admitted (it holds no block) the indexed blocks its tokens begin
     * with, up to {@code limit} positions, as computed; returns the positions taken.
     */
    int reusePrefix(Generation g, int limit) {
        if (!reusesPrefix(g, limit)) {
            return 0;
        }
        int taken = cache.reuse(g, limit);
        g.advanceComputed(taken);
        return taken;
    }

    private boolean reusesPrefix(Generation g, int limit) {
        return cachePrefixes && !g.params().scoresPrompt() && g.numComputed() == 0 && limit >= cache.blockSize();
    }

    /**
     * Whether the cache has room for {@code g} to hold {@code positions} positions once it takes its
     * prefix (up to {@code limit} positions): blocks it would share with sequences holding them cost
     * no free block (a cached one does: it counts as free).
     */
    boolean fits(Generation g, int positions, int limit) {
        int need = cache.blocksFor(positions);
        if (cache.freeBlocks() >= need) {
            return true;
        }
        return reusesPrefix(g, limit) && cache.freeBlocks() + cache.heldPrefixBlocks(g, limit) >= need;
    }

    /** Offers the full blocks a completed forward wrote for {@code g} to the prefix index (prefixes cached). */
    void offerPrefix(Generation g) {
        if (cachePrefixes) {
            cache.offer(g, g.numComputed());
        }
    }
}
