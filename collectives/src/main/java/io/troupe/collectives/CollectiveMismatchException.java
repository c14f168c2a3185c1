package io.troupe.collectives;

/**
 * Members issued different collectives at the same position (another op, size or bucket tag): a
 * program error (e.g. buckets issued in different orders), reported instead of a hang.
 */
public final class CollectiveMismatchException extends CollectiveException {
    public CollectiveMismatchException(String message, long epoch, int otherRank) {
        super(message, epoch, otherRank, null);
    }

    @Override
    CollectiveException rethrown() {
        CollectiveMismatchException e = new CollectiveMismatchException(getMessage(), epoch(), missingRank());
        e.initCause(this);
        return e;
    }
}
