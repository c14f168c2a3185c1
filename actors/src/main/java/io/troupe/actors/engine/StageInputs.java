package io.troupe.actors.engine;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;

/**
 * The token ids and targets of the micro-batch a {@link StageWorker}'s first or last model stage runs
 * next: host arrays a batch source fills ({@link #x}, {@link #y}) and their device copies
 * ({@link #tokens}, {@link #targets}). The worker allocates and frees the device tensors; this stages the
 * host rows into them. Used only on the worker's compute thread.
 */
final class StageInputs {
    private final Device device;
    private final int[] x;
    private final int[] y;
    private final Tensor tokens;
    private final Tensor targets;

    /** Host arrays the size of {@code tokens} and {@code targets} (one micro-batch, I32). */
    StageInputs(Device device, Tensor tokens, Tensor targets) {
        this.device = device;
        this.tokens = tokens;
        this.targets = targets;
        this.x = new int[(int) tokens.numel()];
        this.y = new int[(int) targets.numel()];
    }

    /** Host token ids, filled by the caller before {@link #load}. */
    int[] x() {
        return x;
    }

    /** Host targets, filled by the caller before {@link #load}. */
    int[] y() {
        return y;
    }

    Tensor tokens() {
        return tokens;
    }

    Tensor targets() {
        return targets;
    }

    /** Copies the host token ids and/or targets ({@link #x}, {@link #y}) to the device. */
    void load(boolean ids, boolean labels) {
        if (ids) {
            device.copyFromHost(x, tokens);
        }
        if (labels) {
            device.copyFromHost(y, targets);
        }
    }
}
