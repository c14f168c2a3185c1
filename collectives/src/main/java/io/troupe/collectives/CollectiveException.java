package io.troupe.collectives;

/**
 * A collective failed on this rank. Carries the epoch (so the control plane can abort and re-plan)
 * and the global rank this rank was waiting for, or -1.
 */
public class CollectiveException extends RuntimeException {
    private final long epoch;
    private final int missingRank;

    public CollectiveException(String message, long epoch, int missingRank, Throwable cause) {
        super(message, cause);
        this.epoch = epoch;
        this.missingRank = missingRank;
    }

    /** The epoch of the group the collective ran in. */
    public long epoch() {
        return epoch;
    }

    /** The global rank whose data never came (timeout) or that was lost, or -1 when not known. */
    public int missingRank() {
        return missingRank;
    }

    /** The same failure with the caller's stack (rethrown by a waiting thread). */
    CollectiveException rethrown() {
        return new CollectiveException(getMessage(), epoch, missingRank, this);
    }
}
