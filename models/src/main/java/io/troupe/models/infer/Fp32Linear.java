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
    private final float[][] wt;
    private final float[] bias;
    private final int out;
    private final int in;
    private final ThreadLocal<float[][]> acc;

    /**
     * @param weight (outFeatures, inFeatures) as in torch.nn.Linear
     * @param bias   null for none
     */
    public Fp32Linear(float[] weight, float[] bias, int outFeatures, int inFeatures) {
        if (weight.length != outFeatures * inFeatures) {
            throw new IllegalArgumentException("weight has " + weight.length
                + " values, expected " + outFeatures + "x" + inFeatures);
        }
        this.wt = new float[inFeatures][outFeatures];
        for (int j = 0; j < outFeatures; j++) {
            for (int k = 0; k < inFeatures; k++) {
                wt[k][j] = weight[j * inFeatures + k];
            }
        }
        this.bias = bias;
        this.out = outFeatures;
        this.in = inFeatures;
        this.acc = accumulators(outFeatures);
    }

    /** Per-thread accumulators, one row per tile row, each its own array (offset 0: see {@link #axpy}). */
    static ThreadLocal<float[][]> accumulators(int out) {
        return ThreadLocal.withInitial(() -> new float[ROW_TILE][out]);
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
        float[][] a = acc.get();
        for (int r0 = 0; r0 < rows; r0 += ROW_TILE) {
            int r1 = Math.min(rows, r0 + ROW_TILE);
            for (int r = r0; r < r1; r++) {
                java.util.Arrays.fill(a[r - r0], 0f);
            }
            for (int k = 0; k < in; k++) {
                float[] w = wt[k];
                for (int r = r0; r < r1; r++) {
                    axpy(x[r * in + k], w, a[r - r0], out);
                }
            }
            for (int r = r0; r < r1; r++) {
                store(a[r - r0], null, bias, y, r * out, out);
            }
        }
    }

    /**
     * acc[j] += xr * w[j]: both arrays indexed from 0 with the same index, the shape the JIT
     * vectorises (with differing offsets into the same array type it cannot rule out overlap).
     */
    static void axpy(float xr, float[] w, float[] acc, int n) {
        for (int j = 0; j < n; j++) {
            acc[j] += xr * w[j];
        }
    }

    /** y[yOff + j] = acc[j] (* scale[j] when given) (+ bias[j] when given). */
    static void store(float[] acc, float[] scale, float[] bias, float[] y, int yOff, int n) {
        if (scale != null) {
            for (int j = 0; j < n; j++) {
                acc[j] *= scale[j];
            }
        }
        if (bias != null) {
            for (int j = 0; j < n; j++) {
                acc[j] += bias[j];
            }
        }
        System.arraycopy(acc, 0, y, yOff, n);
    }

    @Override
    public long weightBytes() {
        return 4L * in * out;
    }
}
