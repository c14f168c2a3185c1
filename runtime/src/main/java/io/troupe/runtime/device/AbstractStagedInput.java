package io.troupe.runtime.device;

import io.troupe.runtime.tensor.Tensor;

/**
 * The call order of {@link StagedInput} (upload, acquire, release, repeat), enforced the same way by
 * every backend so that a misuse found by a CPU test is the one a GPU would hit. Subclasses move the
 * bytes in the {@code on...} hooks.
 *
 * <p>Threading: the device's issuing thread (the order state is not shared).
 */
public abstract class AbstractStagedInput implements StagedInput {
    private enum State { EMPTY, UPLOADED, ACQUIRED }

    private final String what;
    private State state = State.EMPTY;

    /** @param what names the buffer in error messages, e.g. {@code "staged input [4, 64, 128] on cuda:0"} */
    protected AbstractStagedInput(String what) {
        this.what = what;
    }

    @Override
    public final void upload() {
        if (state != State.EMPTY) {
            throw new IllegalStateException(what + ": upload while " + state
                + " (release the previous use before the next upload)");
        }
        onUpload();
        state = State.UPLOADED;
    }

    @Override
    public final Tensor acquire() {
        if (state != State.UPLOADED) {
            throw new IllegalStateException(what + ": acquire while " + state + " (upload first, acquire once)");
        }
        Tensor t = onAcquire();
        state = State.ACQUIRED;
        return t;
    }

    @Override
    public final void release() {
        if (state != State.ACQUIRED) {
            throw new IllegalStateException(what + ": release while " + state + " (acquire first)");
        }
        onRelease();
        state = State.EMPTY;
    }

    /** Starts the host-to-device copy (may return before it completes). */
    protected abstract void onUpload();

    /** Orders later kernels after the copy; returns the device tensor. */
    protected abstract Tensor onAcquire();

    /** Records that the readers of the device tensor have been issued. */
    protected abstract void onRelease();

    @Override
    public String toString() {
        return what;
    }
}
