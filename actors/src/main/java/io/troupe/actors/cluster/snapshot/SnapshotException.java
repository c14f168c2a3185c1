package io.troupe.actors.cluster.snapshot;

/** A snapshot is missing, of another version, or damaged; the message names which and why. */
public final class SnapshotException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public SnapshotException(String message) {
        super(message);
    }
}
