package io.troupe.runtime.transport;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Counts dropped frames by {@link DropReason}. One writer (the receiver agent), any number of
 * readers (tests, metrics). Incrementing never allocates.
 */
public final class FrameDropCounters {
    private static final DropReason[] REASONS = DropReason.values();
    private final AtomicLongArray counts = new AtomicLongArray(REASONS.length);

    /** Adds one to the reason's counter (single writer: a plain read plus an ordered write). */
    public void increment(DropReason reason) {
        int i = reason.ordinal();
        counts.lazySet(i, counts.get(i) + 1);
    }

    public long count(DropReason reason) {
        return counts.get(reason.ordinal());
    }

    /** Sum over all reasons. */
    public long total() {
        long sum = 0;
        for (int i = 0; i < REASONS.length; i++) {
            sum += counts.get(i);
        }
        return sum;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("drops{");
        for (int i = 0; i < REASONS.length; i++) {
            long c = counts.get(i);
            if (c != 0) {
                sb.append(REASONS[i]).append('=').append(c).append(' ');
            }
        }
        return sb.append("total=").append(total()).append('}').toString();
    }
}
