package io.troupe.runtime.transport;

import org.agrona.ErrorHandler;

/**
 * A {@link TensorReceiverAgent}'s counters and error path: frames dropped by {@link DropReason},
 * chunks and tensors taken, back-pressure aborts and errors. Written on the agent thread, readable
 * from any thread.
 */
final class ReceiverCounters {
    final FrameDropCounters drops = new FrameDropCounters();
    private final ErrorHandler errorHandler;

    volatile long chunksReceived;
    volatile long tensorsDelivered;
    volatile long backPressureAborts;
    volatile long errors;

    ReceiverCounters(ErrorHandler errorHandler) {
        this.errorHandler = errorHandler;
    }

    /** Counts an error and hands it to the error handler (never throws back into the duty cycle's caller). */
    void onError(Throwable t) {
        errors++;
        errorHandler.onError(t);
    }

    /** Hands an error to the error handler without counting it (from the client conductor thread). */
    void report(Throwable t) {
        errorHandler.onError(t);
    }
}
