package io.troupe.models.parallel.tp;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;

/**
 * Sequence parallelism for the layers of one tp member: the residual stream between tensor-parallel
 * regions (LayerNorms, residual adds, biases of row-parallel layers, embeddings) is split by tokens
 * over the tp group, member k holding tokens {@code [k·N/tp, (k+1)·N/tp)} of the N = B·T tokens.
 * A column-parallel layer all-gathers its input ({@link TensorParallelRegions#gatherFromSequenceParallelRegion})
 * and reduce-scatters its input gradient; a row-parallel layer reduce-scatters its output
 * ({@link TensorParallelRegions#reduceScatterToSequenceParallelRegion}) and all-gathers its output
 * gradient. Weight gradients that need the whole input re-gather it rather than keep it, so
 * activations outside the tensor-parallel regions stay split by tp.
 *
 * <p>The layers of one member share this one scratch of N × width floats: every use is transient
 * (one op at a time on the member's thread). Threading: the member's device executor.
 */
public final class SequenceParallel implements AutoCloseable {
    private final TensorParallelGroup group;
    private final int tokens;
    private final Tensor scratch;
    private final Device dev;
    private final int width;
    /** The input a column-parallel layer gathers for its weight gradient while its input gradient is reduced. */
    private Tensor weightInput;

    /**
     * @param tokens N, the tokens of a micro-batch; must divide by tp
     * @param width  the widest gathered row (the model width C)
     */
    public SequenceParallel(Device dev, TensorParallelGroup group, int tokens, int width) {
        this.group = group;
        this.tokens = tokens;
        TensorParallelChecks.divide("tokens per micro-batch", tokens, group.size());
        this.scratch = dev.allocate(tokens, width);
        this.dev = dev;
        this.width = width;
    }

    public TensorParallelGroup group() {
        return group;
    }

    /** N/tp: the tokens this member holds. */
    public int localTokens(int allTokens) {
        return allTokens / group.size();
    }

    /** The first token this member holds. */
    public int firstToken(int allTokens) {
        return group.index() * localTokens(allTokens);
    }

    /** A {@code (rows, width)} view of the shared scratch. */
    Tensor scratch(int rows, int width) {
        if ((long) rows * width > scratch.numel()) {
            throw new IllegalArgumentException("sequence-parallel scratch holds " + scratch.numel() + " floats, needs "
                + rows + " x " + width);
        }
        return scratch.view(0, rows, width);
    }

    /**
     * A {@code (rows, width)} view of a second scratch, allocated on first use, that holds a gathered
     * input while the first scratch holds a partial gradient in flight (the overlapped backward).
     */
    Tensor weightInput(int rows, int width) {
        if ((long) rows * width > (long) tokens * this.width) {
            throw new IllegalArgumentException("sequence-parallel weight-input scratch holds " + (long) tokens
                * this.width + " floats, needs " + rows + " x " + width);
        }
        if (weightInput == null) {
            weightInput = dev.allocate(tokens, this.width);
        }
        return weightInput.view(0, rows, width);
    }

    /** All tokens of {@code shard}'s rows into the scratch: {@code (N, width)}. */
    Tensor gather(Tensor shard, int rows, int width) {
        Tensor full = scratch(rows, width);
        TensorParallelRegions.gatherFromSequenceParallelRegion(group, shard.view(0, rows / group.size(), width), full);
        return full;
    }

    @Override
    public void close() {
        scratch.close();
        if (weightInput != null) {
            weightInput.close();
        }
    }
}
