package io.troupe.runtime.device;

import io.troupe.runtime.tensor.Tensor;

/**
 * {@link StagedInput} of a device whose tensors are host memory: one tensor is both the network's
 * buffer and the kernels' input, so nothing moves; the call order is still checked.
 */
final class HostStagedInput extends AbstractStagedInput {
    private final Tensor tensor;

    HostStagedInput(Tensor tensor) {
        super("staged input " + java.util.Arrays.toString(tensor.shape()) + " on " + tensor.device().name());
        this.tensor = tensor;
    }

    @Override
    public Tensor host() {
        return tensor;
    }

    @Override
    protected void onUpload() {
        // Host memory is device memory: the bytes are already where the kernels read them.
    }

    @Override
    protected Tensor onAcquire() {
        return tensor;
    }

    @Override
    protected void onRelease() {
    }

    @Override
    public void awaitUpload() {
    }

    @Override
    public void close() {
        tensor.close();
    }
}
