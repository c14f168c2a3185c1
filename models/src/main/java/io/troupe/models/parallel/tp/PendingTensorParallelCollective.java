package io.troupe.models.parallel.tp;

/**
 * A tensor-parallel collective in flight, started by one of {@link TensorParallelGroup}'s
 * {@code xxxAsync} calls. Its tensors belong to the collective until {@link #await} returns: the
 * caller neither reads the output nor writes the input before then, and issues no other collective
 * on the group meanwhile (one collective in flight per member). A handle may be reused by its group
 * for the next async collective once awaited, so the caller drops it after {@link #await}.
 *
 * <p>Threading: the member's thread that started it.
 */
public interface PendingTensorParallelCollective {

    /** True once the result is in place (or the collective failed: {@link #await} then throws). */
    boolean isDone();

    /**
     * Returns when this member's result is complete.
     *
     * @param timeoutNs the longest to wait
     * @throws TensorParallelTimeoutException when it expires, naming the group, this member, the
     *                                        collective and the peers it still waited for; the
     *                                        in-process group then fails the collective for every
     *                                        member, the data-plane group leaves it in flight (it may
     *                                        be awaited again, or fails by the communicator's timeout)
     * @throws IllegalStateException          when the collective failed (a peer issued another one, the
     *                                        group was aborted, the data plane lost a peer)
     */
    void await(long timeoutNs);

    /** {@link #await(long)} with the group's own collective timeout. */
    void await();
}
