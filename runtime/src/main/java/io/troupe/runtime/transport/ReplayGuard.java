package io.troupe.runtime.transport;

import org.agrona.collections.Long2LongHashMap;

/**
 * What a receiver remembers of its authenticated senders to refuse replayed frames: the highest
 * {@link FrameSequence} counter accepted from each (source rank, epoch) of its job. A tagged frame is fresh when its
 * counter is above that; it is {@link #accept accepted} only once its tag has been checked and the frame was taken
 * (delivered or dropped, not held back for a later poll), so a forged counter never moves it, and a frame Aeron
 * offers again after an {@code ABORT} is still fresh.
 *
 * <p>One sender stream per (source rank, epoch): a rank's frames in an epoch come from one exclusive publication
 * at a time (its session id names the rank and epoch), in the order they entered it, so counters only rise.
 * Frames of any other image claiming the rank (a stranger's session) are judged against the same counter.
 *
 * <p>Bounded: one entry per (source rank, epoch) a key holder has sent from, of the receiver's current epoch or a
 * later one; entries of older epochs are forgotten when the receiver's epoch moves ({@link #forgetOlderThan}),
 * all of them when its job changes. Epochs are told apart mod 2^44. Agent thread only; {@link #fresh} and
 * {@link #accept} of a known sender allocate nothing.
 */
final class ReplayGuard {
    /** The counter of a sender nothing was accepted from: below every counter a frame carries. */
    private static final long NONE = 0;

    private final Long2LongHashMap highest = new Long2LongHashMap(64, 0.65f, NONE);
    private int jobId;

    /** Whether a frame of {@code jobId}, {@code epoch} and {@code rank} with {@code counter} was not taken before. */
    boolean fresh(int frameJobId, long epoch, int rank, long counter) {
        return counter > (frameJobId == jobId ? highest.get(key(epoch, rank)) : NONE);
    }

    /** A tag-checked frame was taken: no frame of its sender with this counter or a lower one is taken again. */
    void accept(int frameJobId, long epoch, int rank, long counter) {
        if (frameJobId != jobId) { // the receiver moved to another job: the last one's senders are gone
            highest.clear();
            jobId = frameJobId;
        }
        long key = key(epoch, rank);
        if (counter > highest.get(key)) {
            highest.put(key, counter);
        }
    }

    /** Forgets the senders of epochs below {@code minEpoch}: their frames are stale from now on. */
    void forgetOlderThan(long minEpoch) {
        Long2LongHashMap.KeyIterator it = highest.keySet().iterator();
        while (it.hasNext()) {
            if (it.nextValue() >> SessionIds.RANK_BITS < minEpoch) {
                it.remove();
            }
        }
    }

    /** Senders remembered. */
    int size() {
        return highest.size();
    }

    private static long key(long epoch, int rank) {
        return epoch << SessionIds.RANK_BITS | rank;
    }
}
