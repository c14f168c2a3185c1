package io.troupe.collectives;

/** A collective passed its deadline ({@link CollectiveSettings#timeoutNs}), or a peer it needed was lost. */
public final class CollectiveTimeoutException extends CollectiveException {
    public CollectiveTimeoutException(String message, long epoch, int missingRank, Throwable cause) {
        super(message, epoch, missingRank, cause);
    }

    @Override
    CollectiveException rethrown() {
        return new CollectiveTimeoutException(getMessage(), epoch(), missingRank(), this);
    }
}
