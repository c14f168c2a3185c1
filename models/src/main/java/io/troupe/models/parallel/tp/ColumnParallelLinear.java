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
public final class ColumnParallelLinear implements LinearWeightGradient {
    private final Device dev;
    private final TensorParallelGroup group;
    private final int inDim;
    private final int outLocal;
    private final Tensor weight;
    private final Tensor bias;
    private final Tensor dWeight;
    private final Tensor dBias;
    private final SequenceParallel sp;

    /** Without sequence parallelism; see the full constructor. */
    public ColumnParallelLinear(Device dev, TensorParallelGroup group, int inDim, int outDim, Tensor weight,
                                Tensor bias, Tensor dWeight, Tensor dBias) {
        this(dev, group, inDim, outDim, weight, bias, dWeight, dBias, null);
    }

    /**
     * @param outDim  the global output width; must divide by tp
     * @param weight  A_i, {@code (outDim/tp, inDim)}
     * @param bias    b_i, {@code (outDim/tp)}, or {@code null}
     * @param dWeight the weight's gradient, or {@code null} when it is formed by row blocks only
     *                ({@link #backwardWeightRows})
     * @param sp      sequence parallelism (the input arrives split by tokens), or {@code null}
     */
    public ColumnParallelLinear(Device dev, TensorParallelGroup group, int inDim, int outDim, Tensor weight,
                                Tensor bias, Tensor dWeight, Tensor dBias, SequenceParallel sp) {
        this.sp = sp;
        this.dev = dev;
        this.group = group;
        this.inDim = inDim;
        this.outLocal = TensorParallelChecks.divide("output width", outDim, group.size());
        LinearChecks.shape("column-parallel weight", weight, (long) outLocal * inDim);
        if (dWeight != null) {
            LinearChecks.shape("column-parallel weight grad", dWeight, (long) outLocal * inDim);
        }
        if (bias != null) {
            LinearChecks.shape("column-parallel bias", bias, outLocal);
            LinearChecks.shape("column-parallel bias grad", dBias, outLocal);
        }
        this.weight = weight;
        this.bias = bias;
        this.dWeight = dWeight;
        this.dBias = dBias;
    }

    private Tensor input(Tensor in, int rows) {
        return sp == null ? TensorParallelRegions.copyToTensorParallelRegion(group, in) : sp.gather(in, rows, inDim);
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

    /**
     * {@code out (N, out/tp) = in (N, in) @ A_i^T + b_i}; under sequence parallelism {@code in} holds
     * this member's N/tp tokens and is all-gathered first.
     *
     * @param rows N, all tokens
     */
    public void forward(Tensor in, Tensor out, int rows) {
        Tensor x = input(in, rows);
        dev.matmul(false, true, rows, outLocal, inDim, 1f, x, weight, 0f, out);           // (N, out/tp)
        if (bias != null) {
            dev.biasAdd(out, bias, rows, outLocal);
        }
    }

    /** {@code preact = in @ A_i^T}, then {@code out = gelu(preact + b_i)} (preact keeps the sum for backward). */
    public void forwardGelu(Tensor in, Tensor preact, Tensor out, int rows) {
        Tensor x = input(in, rows);
        dev.matmul(false, true, rows, outLocal, inDim, 1f, x, weight, 0f, preact);        // (N, out/tp)
        dev.biasAddGelu(preact, bias, out, rows, outLocal);
    }

    /**
     * {@code dIn (N, in) = sum over members of dOut_i @ A_i}: every member gets the whole input
     * gradient, or under sequence parallelism the rows of its N/tp tokens.
     */
    public void backwardInput(Tensor dOut, Tensor dIn, int rows) {
        if (sp == null) {
            dev.matmul(false, false, rows, inDim, outLocal, 1f, dOut, weight, 0f, dIn);   // (N, in), partial
            TensorParallelRegions.copyToTensorParallelRegionBackward(group, dIn);
            return;
        }
        Tensor partial = sp.scratch(rows, inDim);
        dev.matmul(false, false, rows, inDim, outLocal, 1f, dOut, weight, 0f, partial);   // (N, in), partial
        TensorParallelRegions.gatherFromSequenceParallelRegionBackward(group, partial,
            dIn.view(0, rows / group.size(), inDim));                                      // (N/tp, in)
    }

    /**
     * {@link #backwardInput} with its reduction started rather than finished (Megatron's overlap of
     * the input-gradient all-reduce with the weight gradient): computes this member's partial
     * {@code dOut @ A_i} and returns the all-reduce (under sequence parallelism the reduce-scatter)
     * in flight; {@code dIn} holds the sum once the handle is awaited. Under sequence parallelism the
     * input {@code in} is all-gathered for the weight gradient meanwhile, overlapping the matmul, and
     * kept for {@link #backwardWeightInFlight}. Until the await, the caller issues no other tp
     * collective; bitwise the same as {@link #backwardInput}.
     */
    public PendingTensorParallelCollective backwardInputAsync(Tensor dOut, Tensor in, Tensor dIn, int rows) {
        if (sp == null) {
            dev.matmul(false, false, rows, inDim, outLocal, 1f, dOut, weight, 0f, dIn);   // (N, in), partial
            return TensorParallelRegions.copyToTensorParallelRegionBackwardAsync(group, dIn);
        }
        int mine = rows / group.size();
        Tensor x = sp.weightInput(rows, inDim);
        PendingTensorParallelCollective gather = group.allGatherAsync(in.view(0, mine, inDim), x);   // (N, in)
        Tensor partial = sp.scratch(rows, inDim);
        dev.matmul(false, false, rows, inDim, outLocal, 1f, dOut, weight, 0f, partial);   // (N, in), partial
        gather.await();
        return TensorParallelRegions.gatherFromSequenceParallelRegionBackwardAsync(group, partial,
            dIn.view(0, mine, inDim));                                                      // (N/tp, in)
    }

    /**
     * The weight gradient while {@link #backwardInputAsync}'s reduction is in flight: as {@link
     * #backwardWeight(Tensor, Tensor, int, boolean)}, but under sequence parallelism from the input
     * that call gathered, so it issues no collective.
     */
    public void backwardWeightInFlight(Tensor dOut, Tensor in, int rows, boolean withBias) {
        Tensor x = sp == null ? in : sp.weightInput(rows, inDim);
        dev.matmul(true, false, outLocal, inDim, rows, 1f, dOut, x, 1f, dWeight);
        if (bias != null && withBias) {
            dev.biasBackward(dBias, dOut, rows, outLocal);
        }
    }

    /**
     * {@code dA_i += dOut^T @ in}, {@code db_i += colsum(dOut)}; local, except that under sequence
     * parallelism the input is all-gathered again (it is kept split by tokens).
     */
    public void backwardWeight(Tensor dOut, Tensor in, int rows) {
        backwardWeight(dOut, in, rows, true);
    }

    /**
     * {@link #backwardWeight(Tensor, Tensor, int)}, the bias gradient only when {@code withBias} (false
     * after {@link #backwardGelu}, which formed it).
     */
    @Override
    public void backwardWeight(Tensor dOut, Tensor in, int rows, boolean withBias) {
        Tensor x = sp == null ? in : sp.gather(in, rows, inDim);
        dev.matmul(true, false, outLocal, inDim, rows, 1f, dOut, x, 1f, dWeight);
        if (bias != null && withBias) {
            dev.biasBackward(dBias, dOut, rows, outLocal);
        }
    }

    @Override
    public void backwardWeightRows(Tensor dOut, Tensor in, int rows, int firstRow, Tensor dWeightRows) {
        int n = LinearChecks.rowBlock("column-parallel weight rows", dWeightRows, inDim, firstRow, outLocal);
        Tensor x = sp == null ? in : sp.gather(in, rows, inDim);
        dev.gemm(true, false, n, inDim, rows, 1f, dOut.view(firstRow, (int) (dOut.numel() - firstRow)), outLocal, x,
            inDim, 1f, dWeightRows, inDim);                                                // (n, in)
    }

    @Override
    public void backwardBias(Tensor dOut, int rows) {
        if (bias != null) {
            dev.biasBackward(dBias, dOut, rows, outLocal);
        }
    }

    /**
     * The backward of {@link #forwardGelu}'s GELU and bias in one pass ({@link
     * io.troupe.runtime.device.Device#geluBackwardBias}): {@code dPreact = dOut * gelu'(preact)},
     * {@code db_i += colsum(dPreact)}; the weight gradient then is {@code backwardWeight(dPreact, in,
     * rows, false)}.
     */
    public void backwardGelu(Tensor preact, Tensor dOut, Tensor dPreact, int rows) {
        dev.geluBackwardBias(preact, dOut, dPreact, dBias, rows, outLocal);
    }
}
