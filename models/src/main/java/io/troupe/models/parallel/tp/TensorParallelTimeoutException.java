package io.troupe.models.parallel.tp;

/**
 * An async tensor-parallel collective did not complete in time: the message names the group, the
 * waiting member, the collective and the peers it waited for.
 */
public final class TensorParallelTimeoutException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public TensorParallelTimeoutException(String message) {
        super(message);
    }
}
