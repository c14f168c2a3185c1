package io.troupe.actors.engine;

import io.troupe.runtime.tensor.Tensor;

/**
 * Where a stage worker sends what its neighbours need: activations to the next model stage,
 * input gradients to the previous one. In one process a link copies into the peer's buffer; across
 * nodes it sends over the Aeron data plane. The tensor may be reused by the sender after the call
 * returns, so a link copies (or finishes sending) before returning.
 */
public interface StageLink {

    /**
     * Sends the output activation of micro-batch {@code mb} to replica {@code dp}'s pipeline rank {@code pp}, virtual
     * stage {@code v}.
     */
    void sendActivation(int dp, int pp, long step, int mb, int v, Tensor activation);

    /**
     * Sends the input gradient of micro-batch {@code mb} back to replica {@code dp}'s pipeline rank {@code pp}, virtual
     * stage {@code v}.
     */
    void sendGradient(int dp, int pp, long step, int mb, int v, Tensor gradient);

    /**
     * Whether a waiting worker should drive the link's receive side itself ({@link #progress}) in a
     * spin-then-yield loop instead of sleeping on its inbox.
     */
    default boolean drivable() {
        return false;
    }

    /**
     * Runs one receive duty cycle on the calling (waiting) worker thread; returns the work done,
     * 0 when there was none or another thread is running it.
     */
    default int progress() {
        return 0;
    }
}
