package io.troupe.collectives;

import java.util.concurrent.TimeUnit;

/**
 * A collective in flight, completed by the communicator's agent: {@link #isDone()}, {@link #await()}.
 * A handle may be reused for another collective once done (the gradient bucketer keeps one per
 * bucket, so its steady state allocates nothing).
 *
 * <p>Threading: the submitting thread and the agent thread; state changes are published through a
 * volatile field. The memory of the collective must not be touched until the handle is done.
 */
public final class CollectiveHandle {
    static final int IDLE = 0;
    static final int PENDING = 1;
    static final int DONE = 2;
    static final int FAILED = 3;

    // request, written by the submitter before the handle is queued
    OpKind op;
    long address;
    long count;
    long otherAddress;
    ReduceOp reduceOp;
    int root;
    int tag;
    Communicator communicator;

    long startNs;
    long endNs;
    private CollectiveException failure;
    private volatile int state = IDLE;

    public CollectiveHandle() {
    }

    void prepare(Communicator c, OpKind op, long address, long count, long otherAddress, ReduceOp reduceOp, int root,
                 int tag) {
        if (state == PENDING) {
            throw new IllegalStateException("handle is still in flight: " + this);
        }
        this.communicator = c;
        this.op = op;
        this.address = address;
        this.count = count;
        this.otherAddress = otherAddress;
        this.reduceOp = reduceOp;
        this.root = root;
        this.tag = tag;
        this.failure = null;
        this.startNs = 0;
        this.endNs = 0;
        this.state = PENDING;
    }

    void complete(long nowNs) {
        endNs = nowNs;
        state = DONE;
    }

    void fail(CollectiveException e, long nowNs) {
        failure = e;
        endNs = nowNs;
        state = FAILED;
    }

    /** True once the collective finished, successfully or not. */
    public boolean isDone() {
        int s = state;
        return s == DONE || s == FAILED;
    }

    /** True once the collective failed; {@link #failure()} says why. */
    public boolean isFailed() {
        return state == FAILED;
    }

    /** The failure, or {@code null}. */
    public CollectiveException failure() {
        return state == FAILED ? failure : null;
    }

    /** Nanoseconds from when the agent started the collective to when it finished (0 before). */
    public long elapsedNs() {
        return isDone() && startNs != 0 ? endNs - startNs : 0;
    }

    /**
     * Waits until done; when the agent is driven by its caller, this thread drives it meanwhile.
     *
     * @throws CollectiveException when the collective failed (timeout, lost peer, mismatch)
     */
    public void await() {
        if (!isDone()) {
            communicator.agent().awaitDone(this, Long.MAX_VALUE);
        }
        throwIfFailed();
    }

    /** As {@link #await()}, giving up (returning false) after {@code timeoutNs}. */
    public boolean await(long timeout, TimeUnit unit) {
        if (!isDone()) {
            communicator.agent().awaitDone(this, System.nanoTime() + unit.toNanos(timeout));
        }
        if (!isDone()) {
            return false;
        }
        throwIfFailed();
        return true;
    }

    private void throwIfFailed() {
        if (state == FAILED) {
            throw failure.rethrown();
        }
    }

    @Override
    public String toString() {
        return "CollectiveHandle{op=" + op + ", count=" + count + ", tag=" + tag + ", state=" + state + "}";
    }
}
