package io.troupe.models.infer;

/**
 * A float32 {@link LinearWeights} held transposed, {@code wt (in, out)}, so the product is a run of
 * axpy updates {@code y[r, :] += x[r, k] * wt[k, :]} that the JIT vectorises across output channels.
 * Each output element is still summed in one fixed order (k = 0, 1, ..., then + bias), whatever
 * the number of rows: batch-invariant. Rows are processed in tiles of {@link #ROW_TILE}, so a weight
 * row, once loaded, serves every row of the tile: a batch of sequences reads the weights once.
 */
public final class Fp32Linear implements LinearWeights {
    /** Rows sharing one pass over the weights (their outputs stay in cache). */
    static final int ROW_TILE = 16;
    private final float[] wt;
    private final float[] bias;
    private final int out;
    private final int in;

    /**
     * @param weight (outFeatures, inFeatures) as in torch.nn.Linear
     * @param bias   null for none
     */
    public Fp32Linear(float[] weight, float[] bias, int outFeatures, int inFeatures) {
        if (weight.length != outFeatures * inFeatures) {
            throw new IllegalArgumentException("weight has " + weight.length + " values, expected " + outFeatures + "x" + inFeatures);
        }
        this.wt = new float[weight.length];
        for (int j = 0; j < outFeatures; j++) {
            for (int k = 0; k < inFeatures; k++) {
                wt[k * outFeatures + j] = weight[j * inFeatures + k];
            }
        }
        this.bias = bias;
        this.out = outFeatures;
        this.in = inFeatures;
    }

    @Override
    public int inFeatures() {
        return in;
    }

    @Override
    public int outFeatures() {
        return out;
    }

    @Override
    public void forward(float[] x, int rows, float[] y) {
        for (int r0 = 0; r0 < rows; r0 += ROW_TILE) {
            int r1 = Math.min(rows, r0 + ROW_TILE);
            java.util.Arrays.fill(y, r0 * out, r1 * out, 0f);
            for (int k = 0; k < in; k++) {
                axpyRows(x, k, in, wt, k * out, y, r0, r1, out);
            }
            addBias(y, bias, r0, r1, out);
        }
    }

    /** y[r, :] += x[r, k] * w[wOff, wOff + out) for r in [r0, r1). */
    static void axpyRows(float[] x, int k, int in, float[] w, int wOff, float[] y, int r0, int r1, int out) {
        for (int r = r0; r < r1; r++) {
            float xr = x[r * in + k];
            int yOff = r * out;
            for (int j = 0; j < out; j++) {
                y[yOff + j] += xr * w[wOff + j];
            }
        }
    }

    static void addBias(float[] y, float[] bias, int r0, int r1, int out) {
        if (bias == null) {
            return;
        }
        for (int r = r0; r < r1; r++) {
            int yOff = r * out;
            for (int j = 0; j < out; j++) {
                y[yOff + j] += bias[j];
            }
        }
    }

    @Override
    public long weightBytes() {
        return 4L * wt.length;
    }
}
