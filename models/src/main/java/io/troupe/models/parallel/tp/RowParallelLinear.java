package io.troupe.models.parallel.tp;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;

/**
 * {@code Y = X A^T + b} with A {@code (out, in)} split by input columns: member i holds
 * {@code A_i (out, in/tp)} and the matching columns {@code X_i (N, in/tp)} of its input (the
 * output of a column-parallel layer, so no re-split is needed). Each member's {@code X_i A_i^T} is a
 * partial sum; g = {@link TensorParallelRegions#reduceFromTensorParallelRegion} all-reduces it, and
 * the replicated bias is added once, after the reduction. Backward needs no communication:
 * dY is replicated, so {@code dX_i = dY A_i} and {@code db = colsum(dY)} (the same on every member).
 * With tp = 1 it is a plain linear.
 *
 * <p>The weights are views into the caller's flat parameter and gradient buffers; the bias may be
 * {@code null}. Weight gradients accumulate. Threading: the member's device executor.
 */
public final class RowParallelLinear implements LinearWeightGradient {
    private final Device dev;
    private final TensorParallelGroup group;
    private final int inLocal;
    private final int outDim;
    private final Tensor weight;
    private final Tensor bias;
    private final Tensor dWeight;
    private final Tensor dBias;
    private final SequenceParallel sp;

    /** Without sequence parallelism; see the full constructor. */
    public RowParallelLinear(Device dev, TensorParallelGroup group, int inDim, int outDim, Tensor weight, Tensor bias,
                             Tensor dWeight, Tensor dBias) {
        this(dev, group, inDim, outDim, weight, bias, dWeight, dBias, null);
    }

    /**
     * @param inDim  the global input width; must divide by tp
     * @param weight A_i, {@code (outDim, inDim/tp)}
     * @param bias   b, {@code (outDim)}, replicated on every member, or {@code null}
     * @param dWeight the weight's gradient, or {@code null} when it is formed by row blocks only
     *               ({@link #backwardWeightRows})
     * @param sp     sequence parallelism (the output leaves split by tokens), or {@code null}
     */
    public RowParallelLinear(Device dev, TensorParallelGroup group, int inDim, int outDim, Tensor weight, Tensor bias,
                             Tensor dWeight, Tensor dBias, SequenceParallel sp) {
        this.sp = sp;
        this.dev = dev;
        this.group = group;
        this.inLocal = TensorParallelChecks.divide("input width", inDim, group.size());
        this.outDim = outDim;
        LinearChecks.shape("row-parallel weight", weight, (long) outDim * inLocal);
        if (dWeight != null) {
            LinearChecks.shape("row-parallel weight grad", dWeight, (long) outDim * inLocal);
        }
        if (bias != null) {
            LinearChecks.shape("row-parallel bias", bias, outDim);
            LinearChecks.shape("row-parallel bias grad", dBias, outDim);
        }
        this.weight = weight;
        this.bias = bias;
        this.dWeight = dWeight;
        this.dBias = dBias;
    }

    /** This member's input width, in/tp. */
    public int inLocal() {
        return inLocal;
    }

    /**
     * {@code out (N, out) = sum over members of in_i (N, in/tp) @ A_i^T, + b}; under sequence
     * parallelism {@code out} receives only this member's N/tp tokens (reduce-scatter).
     *
     * @param rows N, all tokens
     */
    public void forward(Tensor in, Tensor out, int rows) {
        if (sp == null) {
            dev.matmul(false, true, rows, outDim, inLocal, 1f, in, weight, 0f, out);      // (N, out), partial
            TensorParallelRegions.reduceFromTensorParallelRegion(group, out);
        } else {
            Tensor partial = sp.scratch(rows, outDim);
            dev.matmul(false, true, rows, outDim, inLocal, 1f, in, weight, 0f, partial);  // (N, out), partial
            TensorParallelRegions.reduceScatterToSequenceParallelRegion(group, partial, out.view(0, mine(rows),
                outDim));
        }
        if (bias != null) {
            dev.biasAdd(out, bias, mine(rows), outDim);
        }
    }

    /** Rows of the output this member holds: N, or N/tp under sequence parallelism. */
    private int mine(int rows) {
        return sp == null ? rows : rows / group.size();
    }

    /** {@code dIn_i (N, in/tp) = dOut @ A_i} (under sequence parallelism dOut's tokens are all-gathered first). */
    public void backwardInput(Tensor dOut, Tensor dIn, int rows) {
        Tensor dy = gradOutput(dOut, rows);
        dev.matmul(false, false, rows, inLocal, outDim, 1f, dy, weight, 0f, dIn);
    }

    /**
     * {@code dA_i += dOut^T @ in_i}, {@code db += colsum(dOut)}; local, except that under sequence
     * parallelism dOut's tokens are all-gathered again for the weight, and the bias gradient covers
     * this member's tokens only (a partial sum the tp group adds up before the step).
     */
    public void backwardWeight(Tensor dOut, Tensor in, int rows) {
        Tensor dy = gradOutput(dOut, rows);
        dev.matmul(true, false, outDim, inLocal, rows, 1f, dy, in, 1f, dWeight);
        if (bias != null) {
            dev.biasBackward(dBias, dOut, mine(rows), outDim);
        }
    }

    /** {@link #backwardWeight(Tensor, Tensor, int)}, the bias gradient only when {@code withBias}. */
    @Override
    public void backwardWeight(Tensor dOut, Tensor in, int rows, boolean withBias) {
        if (withBias) {
            backwardWeight(dOut, in, rows);
            return;
        }
        dev.matmul(true, false, outDim, inLocal, rows, 1f, gradOutput(dOut, rows), in, 1f, dWeight);
    }

    @Override
    public void backwardWeightRows(Tensor dOut, Tensor in, int rows, int firstRow, Tensor dWeightRows) {
        int n = LinearChecks.rowBlock("row-parallel weight rows", dWeightRows, inLocal, firstRow, outDim);
        Tensor dy = gradOutput(dOut, rows);
        dev.gemm(true, false, n, inLocal, rows, 1f, dy.view(firstRow, (int) (dy.numel() - firstRow)), outDim, in,
            inLocal, 1f, dWeightRows, inLocal);                                            // (n, in/tp)
    }

    @Override
    public void backwardBias(Tensor dOut, int rows) {
        if (bias != null) {
            dev.biasBackward(dBias, dOut, mine(rows), outDim);
        }
    }

    private Tensor gradOutput(Tensor dOut, int rows) {
        return sp == null ? TensorParallelRegions.reduceFromTensorParallelRegionBackward(group, dOut)
            : sp.gather(dOut, rows, outDim);
    }
}
