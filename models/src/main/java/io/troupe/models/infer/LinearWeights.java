package io.troupe.models.infer;

/**
 * A linear layer {@code out = x @ W^T + b} with W (outFeatures, inFeatures) as in torch.nn.Linear,
 * computed row by row: every output element is one fixed-order dot product of its own input row
 * ({@link RowKernels}), so results do not depend on how many rows are passed together.
 */
public interface LinearWeights {
    int inFeatures();

    int outFeatures();

    /** out (rows, outFeatures) = x (rows, inFeatures) @ W^T + b. */
    void forward(float[] x, int rows, float[] out);

    /**
     * Rows {@code [fromRow, toRow)} of {@link #forward}: each row's result is the same bits as in
     * any other call (callers may split a batch's rows over threads).
     */
    void forwardRows(float[] x, int fromRow, int toRow, float[] out);

    /** Bytes held by the weight matrix and its scales (bias excluded). */
    long weightBytes();

    /** Wraps float32 weights, quantizing them when asked. */
    static LinearWeights of(float[] weight, float[] bias, int outFeatures, int inFeatures, Quantization q) {
        return q == Quantization.INT8 ? Int8Linear.quantize(weight, bias, outFeatures, inFeatures)
            : new Fp32Linear(weight, bias, outFeatures, inFeatures);
    }
}
