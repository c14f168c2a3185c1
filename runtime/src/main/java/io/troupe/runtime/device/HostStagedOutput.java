package io.troupe.runtime.device;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;

/**
 * {@link StagedOutput} of a device whose tensors are host memory: {@link #host()} is the downloaded
 * tensor itself, done at once (send it before the tensor is next written).
 */
final class HostStagedOutput implements StagedOutput {
    private final DType dtype;
    private final int[] shape;
    private final long numel;
    private Tensor last;

    HostStagedOutput(DType dtype, int[] shape) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.numel = Tensor.numelOf(shape);
    }

    @Override
    public void download(Tensor src) {
        checkFits(src, dtype, shape, numel);
        last = src;
    }

    /** Shared by the backends: {@code src} must have the buffer's dtype and element count. */
    static void checkFits(Tensor src, DType dtype, int[] shape, long numel) {
        if (src.dtype() != dtype || src.numel() != numel) {
            throw new IllegalArgumentException("staged output of " + dtype + " " + Arrays.toString(shape)
                + " cannot take " + src.dtype() + " " + Arrays.toString(src.shape()));
        }
    }

    @Override
    public boolean isDone() {
        return last != null;
    }

    @Override
    public void await() {
    }

    @Override
    public Tensor host() {
        if (last == null) {
            throw new IllegalStateException("staged output " + Arrays.toString(shape) + ": host() before any download");
        }
        return last;
    }

    @Override
    public void close() {
        last = null;
    }
}
