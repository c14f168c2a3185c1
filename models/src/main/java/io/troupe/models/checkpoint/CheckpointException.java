package io.troupe.models.checkpoint;

/** A checkpoint that cannot be written or must not be loaded (missing, truncated, corrupt, mismatched). */
public final class CheckpointException extends RuntimeException {
    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
