package io.troupe.runtime.transport;

/**
 * Maps (source rank, epoch) to the Aeron session id of a sender's exclusive publication, so a
 * receiver knows the peer rank of an image the moment it appears (for "peer connected/lost") and
 * can reject frames whose source rank disagrees with the publication they came on.
 *
 * <p>Layout: bits 19..0 rank, bits 29..20 the low 10 bits of the epoch (a restarted peer in a new
 * epoch gets a fresh session, so its stream never merges with a lingering old image). Ids are
 * chosen explicitly; nothing else on a Troupe driver lets Aeron pick session ids.
 */
public final class SessionIds {
    /** Largest rank a session id carries. */
    public static final int MAX_RANK = (1 << 20) - 1;

    private SessionIds() {
    }

    public static int of(int rank, long epoch) {
        if (rank < 0 || rank > MAX_RANK) {
            throw new IllegalArgumentException("rank must be in [0, " + MAX_RANK + "]: rank=" + rank);
        }
        return (int) ((epoch & 0x3FF) << 20) | rank;
    }

    public static int rankOf(int sessionId) {
        return sessionId & MAX_RANK;
    }
}
