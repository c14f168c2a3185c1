package io.troupe.models.infer;

/**
 * A float32 {@link LinearWeights} held transposed, {@code wt (in, out)}, so the product is a run of
 * axpy updates {@code y[r, :] = fma(x[r, k], wt[k, :], y[r, :])} that the JIT vectorises across output
 * channels (fused multiply-adds: one rounding per term, and half the arithmetic instructions).
 * Each output element is still summed in one fixed order (k = 0, 1, ..., then + bias), whatever
 * the number of rows: batch-invariant (four input channels are applied per pass over the
 * accumulators, still in ascending order: {@link #axpy4}). Rows are processed in tiles of {@link #ROW_TILE}, so a
 * weight
 * row, once loaded, serves every row of the tile: a batch of sequences reads the weights once.
 *
 * <p>When the JVM has the Vector API ({@code --add-modules jdk.incubator.vector}: {@link #VECTOR_API}),
 * the product runs on {@link VectorLinearKernel} instead, which keeps blocks of 4 rows x 4 vectors of
 * accumulators in registers; its bits are those of this class's loops (the same fused multiply-adds
 * in the same order), so either path gives the same tokens.
 */
public final class Fp32Linear implements LinearWeights {
    /** Rows sharing one pass over the weights (their outputs stay in cache). */
    static final int ROW_TILE = 16;
    /** True when the running JVM has the Vector API module: the product then runs on {@link VectorLinearKernel}. */
    static final boolean VECTOR_API = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
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
            throw new IllegalArgumentException("weight has " + weight.length + " values, expected " + outFeatures
                + "x" + inFeatures);
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

    /** Whether this JVM runs the float32 linears on the Vector API kernel (else the axpy form). */
    public static boolean usesVectorApi() {
        return VECTOR_API;
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
        forwardRows(x, 0, rows, y);
    }

    @Override
    public void forwardRows(float[] x, int fromRow, int toRow, float[] y) {
        if (VECTOR_API) {
            VectorLinearKernel.forwardRows(wt, in, out, x, fromRow, toRow, y);
            if (bias != null) {
                for (int r = fromRow; r < toRow; r++) {
                    int o = r * out;
                    for (int j = 0; j < out; j++) {
                        y[o + j] += bias[j];
                    }
                }
            }
            return;
        }
        forwardRowsAxpy(x, fromRow, toRow, y);
    }

    /** The one-row-at-a-time axpy form (any JVM): also the reference the Vector API kernel is tested against. */
    void forwardRowsAxpy(float[] x, int fromRow, int toRow, float[] y) {
        float[][] a = acc.get();
        for (int r0 = fromRow; r0 < toRow; r0 += ROW_TILE) {
            int r1 = Math.min(toRow, r0 + ROW_TILE);
            for (int r = r0; r < r1; r++) {
                java.util.Arrays.fill(a[r - r0], 0f);
            }
            int k = 0;
            for (; k + 4 <= in; k += 4) {              // four input channels per pass over the accumulators
                float[] w0 = wt[k];
                float[] w1 = wt[k + 1];
                float[] w2 = wt[k + 2];
                float[] w3 = wt[k + 3];
                for (int r = r0; r < r1; r++) {
                    int xo = r * in + k;
                    axpy4(x[xo], w0, x[xo + 1], w1, x[xo + 2], w2, x[xo + 3], w3, a[r - r0], out);
                }
            }
            for (; k < in; k++) {
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
     * acc[j] = fma(xr, w[j], acc[j]) (one rounding): both arrays indexed from 0 with the same index,
     * the shape the JIT vectorises (with differing offsets into the same array type it cannot rule
     * out overlap). {@link Math#fma} is exactly specified, so the bits do not depend on whether the
     * loop runs in vector lanes or one element at a time.
     */
    static void axpy(float xr, float[] w, float[] acc, int n) {
        for (int j = 0; j < n; j++) {
            acc[j] = Math.fma(xr, w[j], acc[j]);
        }
    }

    /**
     * Four {@link #axpy} updates in one pass: {@code acc[j] = fma(x3, w3[j], fma(x2, w2[j], fma(x1,
     * w1[j], fma(x0, w0[j], acc[j]))))}, so the bits equal four successive axpy calls while the
     * accumulators are loaded and stored once instead of four times.
     */
    static void axpy4(float x0, float[] w0, float x1, float[] w1, float x2, float[] w2, float x3, float[] w3,
                      float[] acc, int n) {
        for (int j = 0; j < n; j++) {
            acc[j] = Math.fma(x3, w3[j], Math.fma(x2, w2[j], Math.fma(x1, w1[j], Math.fma(x0, w0[j], acc[j]))));
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
