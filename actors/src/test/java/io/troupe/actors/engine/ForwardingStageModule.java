package io.troupe.actors.engine;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.memory.GradientArena;
import io.troupe.models.memory.Recompute;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * Test fixture: a stage module that passes every call, the interface's defaults included, on to {@code delegate};
 * a test's stage overrides only the calls it watches or changes.
 */
public abstract class ForwardingStageModule implements StageModule {
    protected final StageModule delegate;

    protected ForwardingStageModule(StageModule delegate) {
        this.delegate = delegate;
    }

    @Override
    public void zeroGrads() {
        delegate.zeroGrads();
    }

    @Override
    public boolean isFirst() {
        return delegate.isFirst();
    }

    @Override
    public Device device() {
        return delegate.device();
    }

    @Override
    public List<ParamSpec> parameters() {
        return delegate.parameters();
    }

    @Override
    public TensorParallelPlacement tensorParallelPlacement(int i) {
        return delegate.tensorParallelPlacement(i);
    }

    @Override
    public boolean isLast() {
        return delegate.isLast();
    }

    @Override
    public Tensor params() {
        return delegate.params();
    }

    @Override
    public Tensor grads() {
        return delegate.grads();
    }

    @Override
    public Tensor forward(int slot, Tensor input, Tensor targets) {
        return delegate.forward(slot, input, targets);
    }

    @Override
    public double loss(int slot) {
        return delegate.loss(slot);
    }

    @Override
    public Tensor backwardInput(int slot, Tensor gradOutput, float lossScale) {
        return delegate.backwardInput(slot, gradOutput, lossScale);
    }

    @Override
    public void backwardWeight(int slot) {
        delegate.backwardWeight(slot);
    }

    @Override
    public void backwardWeight(int slot, IntConsumer parameterDone) {
        delegate.backwardWeight(slot, parameterDone);
    }

    @Override
    public long activationBytes() {
        return delegate.activationBytes();
    }

    @Override
    public void recompute(Recompute mode) {
        delegate.recompute(mode);
    }

    @Override
    public long activationBytesLive() {
        return delegate.activationBytesLive();
    }

    @Override
    public long activationBytesShared() {
        return delegate.activationBytesShared();
    }

    @Override
    public GradientArena shardGradients(long bucketElements) {
        return delegate.shardGradients(bucketElements);
    }

    @Override
    public GradientArena shardGradients(long[] bucketStartElements, long[] bucketNumels) {
        return delegate.shardGradients(bucketStartElements, bucketNumels);
    }

    @Override
    public int gradientRowElements(int i) {
        return delegate.gradientRowElements(i);
    }

    @Override
    public long activationBytesPerSlot() {
        return delegate.activationBytesPerSlot();
    }

    @Override
    public Tensor backward(int slot, Tensor gradOutput, float lossScale) {
        return delegate.backward(slot, gradOutput, lossScale);
    }

    @Override
    public Tensor backward(int slot, Tensor gradOutput, float lossScale, IntConsumer parameterDone) {
        return delegate.backward(slot, gradOutput, lossScale, parameterDone);
    }

    @Override
    public void close() {
        delegate.close();
    }
}
