package io.troupe.models.parallel.tp;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;

/**
 * {@code Y = X A^T + b} with A {@code (out, in)} split by output rows: member i holds
 * {@code A_i (out/tp, in)} and {@code b_i (out/tp)} and computes its own columns of Y,
 * {@code Y_i = X A_i^T + b_i (N, out/tp)}, from the replicated X. No communication forward
 * (f = {@link TensorParallelRegions#copyToTensorParallelRegion}); backward, every member's
 * {@code dY_i A_i} is a partial input gradient, summed by f's all-reduce. Which global rows make
 * up A_i (contiguous, or one run per fused part such as q, k, v) is the parameter layout's business;
 * this layer sees only its shard. With tp = 1 it is a plain linear.
 *
 * <p>The weights are views into the caller's flat parameter and gradient buffers; the bias may be
 * {@code null} (no bias). Weight gradients accumulate. Threading: the member's device executor.
 */
public final class ColumnParallelLinear {
    private final Device dev;
    private final TensorParallelGroup group;
    private final int inDim;
    private final int outLocal;
    private final Tensor weight;
    private final Tensor bias;
    private final Tensor dWeight;
    private final Tensor dBias;

    /**
     * @param outDim  the global output width; must divide by tp
     * @param weight  A_i, {@code (outDim/tp, inDim)}
     * @param bias    b_i, {@code (outDim/tp)}, or {@code null}
     */
    public ColumnParallelLinear(Device dev, TensorParallelGroup group, int inDim, int outDim, Tensor weight, Tensor bias,
                                Tensor dWeight, Tensor dBias) {
        this.dev = dev;
        this.group = group;
        this.inDim = inDim;
        this.outLocal = TensorParallelChecks.divide("output width", outDim, group.size());
        LinearChecks.shape("column-parallel weight", weight, (long) outLocal * inDim);
        LinearChecks.shape("column-parallel weight grad", dWeight, (long) outLocal * inDim);
        if (bias != null) {
            LinearChecks.shape("column-parallel bias", bias, outLocal);
            LinearChecks.shape("column-parallel bias grad", dBias, outLocal);
        }
        this.weight = weight;
        this.bias = bias;
        this.dWeight = dWeight;
        this.dBias = dBias;
    }

    /** This member's output width, out/tp. */
    public int outLocal() {
        return outLocal;
    }

    public Tensor weight() {
        return weight;
    }

    public Tensor bias() {
        return bias;
    }

    /** {@code out (N, out/tp) = in (N, in) @ A_i^T + b_i}. */
    public void forward(Tensor in, Tensor out, int rows) {
        Tensor x = TensorParallelRegions.copyToTensorParallelRegion(group, in);
        dev.matmul(false, true, rows, outLocal, inDim, 1f, x, weight, 0f, out);           // (N, out/tp)
        if (bias != null) {
            dev.biasAdd(out, bias, rows, outLocal);
        }
    }

    /** {@code preact = in @ A_i^T}, then {@code out = gelu(preact + b_i)} (preact keeps the sum for backward). */
    public void forwardGelu(Tensor in, Tensor preact, Tensor out, int rows) {
        Tensor x = TensorParallelRegions.copyToTensorParallelRegion(group, in);
        dev.matmul(false, true, rows, outLocal, inDim, 1f, x, weight, 0f, preact);        // (N, out/tp)
        dev.biasAddGelu(preact, bias, out, rows, outLocal);
    }

    /** {@code dIn (N, in) = sum over members of dOut_i @ A_i}: every member gets the whole input gradient. */
    public void backwardInput(Tensor dOut, Tensor dIn, int rows) {
        dev.matmul(false, false, rows, inDim, outLocal, 1f, dOut, weight, 0f, dIn);       // (N, in), partial
        TensorParallelRegions.copyToTensorParallelRegionBackward(group, dIn);
    }

    /** {@code dA_i += dOut^T @ in}, {@code db_i += colsum(dOut)}; local, no communication. */
    public void backwardWeight(Tensor dOut, Tensor in, int rows) {
        dev.matmul(true, false, outLocal, inDim, rows, 1f, dOut, in, 1f, dWeight);
        if (bias != null) {
            dev.biasBackward(dBias, dOut, rows, outLocal);
        }
    }
}
