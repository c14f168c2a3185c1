package io.troupe.models.parallel.tp;

import io.troupe.runtime.tensor.Tensor;

/**
 * The weight-gradient pass of a linear layer {@code Y = X A^T + b}, whole or one block of A's rows
 * (output features) at a time: ZeRO stage 2 forms a large weight's gradient block by block in a
 * bucket-sized window that is reduce-scattered and reused between blocks. Threading: the member's
 * device executor.
 */
public interface LinearWeightGradient {
    /**
     * {@code dA += dOut^T @ in} into the layer's gradient view, and {@code db += colsum(dOut)} when
     * {@code withBias}.
     */
    void backwardWeight(Tensor dOut, Tensor in, int rows, boolean withBias);

    /**
     * Rows {@code [firstRow, firstRow + n)} of {@code dOut^T @ in} added into {@code dWeightRows}
     * ({@code n} whole rows of A, row-major), not into the layer's gradient view: the same gemm over
     * the same tokens as {@link #backwardWeight}, cut by rows of its result, so every element is
     * summed in the same order. Under sequence parallelism each call gathers its operand again.
     *
     * @param rows N, the tokens
     */
    void backwardWeightRows(Tensor dOut, Tensor in, int rows, int firstRow, Tensor dWeightRows);

    /** {@code db += colsum(dOut)} alone (the bias gradient of {@link #backwardWeight}). */
    void backwardBias(Tensor dOut, int rows);
}
