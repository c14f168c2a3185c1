package io.troupe.runtime.transport;

/**
 * The descriptor of a sender's Aeron session id: maps (source rank, epoch) to the session id of its
 * exclusive publication, so a receiver knows the peer rank of an image the moment it appears (for
 * "peer connected/lost") and can reject frames whose source rank disagrees with the publication
 * they came on. The one place these bits are packed and read.
 *
 * <pre>
 *  session id (int32, never negative):
 *   31      0
 *   30      0
 *   29..20  epoch mod 2^10 (a restarted peer in a new epoch gets a fresh session, so its stream
 *           never merges with a lingering old image)
 *   19..0   source rank
 * </pre>
 *
 * Ids are chosen explicitly; nothing else on a Troupe driver lets Aeron pick session ids.
 */
public final class SessionIds {
    /** Bits of the rank field. */
    public static final int RANK_BITS = 20;
    /** Largest rank a session id carries. */
    public static final int MAX_RANK = (1 << RANK_BITS) - 1;
    /** Where the epoch field starts. */
    public static final int EPOCH_SHIFT = RANK_BITS;
    /** Bits of the epoch field: epochs travel mod 2^10. */
    public static final int EPOCH_BITS = 10;
    /** Mask of an epoch's bits as a session id carries them. */
    public static final int EPOCH_MASK = (1 << EPOCH_BITS) - 1;

    private SessionIds() {
    }

    /** The session id of rank {@code rank}'s publication in epoch {@code epoch} (kept mod 2^10). */
    public static int of(int rank, long epoch) {
        if (rank < 0 || rank > MAX_RANK) {
            throw new IllegalArgumentException("rank must be in [0, " + MAX_RANK + "]: rank=" + rank);
        }
        if (epoch < 0) {
            throw new IllegalArgumentException("epoch must be non-negative: epoch=" + epoch);
        }
        return (epochBits(epoch) << EPOCH_SHIFT) | rank;
    }

    /** The source rank a session id carries. */
    public static int rankOf(int sessionId) {
        return sessionId & MAX_RANK;
    }

    /** The epoch bits a session id carries. */
    public static int epochBitsOf(int sessionId) {
        return (sessionId >>> EPOCH_SHIFT) & EPOCH_MASK;
    }

    /** What of {@code epoch} a session id carries (its low 10 bits). */
    public static int epochBits(long epoch) {
        return (int) (epoch & EPOCH_MASK);
    }

    /**
     * Whether session {@code sessionId} is of epoch {@code epoch} or a later one, judged on the 10
     * epoch bits: an older epoch is a distance 1..511 back, mod 1024; anything else is current.
     */
    public static boolean isCurrentOrLater(int sessionId, long epoch) {
        int behind = (epochBits(epoch) - epochBitsOf(sessionId)) & EPOCH_MASK;
        return behind == 0 || behind > EPOCH_MASK / 2;
    }
}
