package io.troupe.models.infer;

import java.util.Arrays;

/**
 * One sequence's block table: logical block i (positions [i*blockSize, (i+1)*blockSize)) lives in
 * physical block {@code block(i)} of the {@link PagedKvCache}. Grows on demand; owned by one thread.
 */
public final class BlockTable {
    private int[] blocks = new int[4];
    private int size;
    /** Leading blocks already offered to (or taken from) the cache's prefix index. */
    int indexed;
    /** The index's key of the prefix those blocks hold (null for none): the parent of the next block's key. */
    PagedKvCache.Prefix indexedKey;

    /** Physical block of logical block {@code i}. */
    public int block(int i) {
        if (i >= size) {
            throw new IndexOutOfBoundsException("logical block " + i + " not allocated (" + size + " held)");
        }
        return blocks[i];
    }

    /** Blocks held. */
    public int size() {
        return size;
    }

    void add(int physical) {
        if (size == blocks.length) {
            blocks = Arrays.copyOf(blocks, 2 * size);
        }
        blocks[size++] = physical;
    }

    int removeLast() {
        indexed = Math.min(indexed, size - 1);
        return blocks[--size];
    }
}
