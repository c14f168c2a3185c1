package io.troupe.models.infer;

/**
 * A float32 {@link LinearWeights}. Where the JVM has the Vector API ({@code --add-modules
 * jdk.incubator.vector}: {@link #VECTOR_API}) the product runs on {@link VectorLinearKernel}: the
 * weights packed in column panels, blocks of rows x 4 vectors of accumulators in registers.
 * Elsewhere the weights are held transposed, {@code wt (in, out)}, and the product is a run of axpy
 * updates {@code y[r, :] = fma(x[r, k], wt[k, :], y[r, :])} that the JIT vectorises across output
 * channels, rows in tiles of {@link #ROW_TILE} so a weight row, once loaded, serves every row of the
 * tile. Either way each output element is summed in one fixed order (fused multiply-adds, k = 0, 1,
 * ..., then + bias) whatever the number of rows: batch-invariant, and both paths give the same bits,
 * so the same tokens.
 */
public final class Fp32Linear implements LinearWeights {
    /** Rows sharing one pass over the weights (their outputs stay in cache). */
    static final int ROW_TILE = 16;
    /** True when the running JVM has the Vector API module: the product then runs on {@link VectorLinearKernel}. */
    static final boolean VECTOR_API = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    /** W^T (in, out) for the axpy form, or null where the Vector API kernel runs on {@link #packed}. */
    private final float[][] wt;
    /** The weights in {@link VectorLinearKernel#pack}'s panels, or null where the axpy form runs. */
    private final float[] packed;
    /** The vector kernel's bias: the layer's, or -0.0f everywhere (x + -0.0f is x, bit for bit). */
    private final float[] kernelBias;
    private final float[] bias;
    private final int out;
    private final int in;
    private final ThreadLocal<float[][]> acc;

    /**
     * @param weight (outFeatures, inFeatures) as in torch.nn.Linear
     * @param bias   null for none
     */
    public Fp32Linear(float[] weight, float[] bias, int outFeatures, int inFeatures) {
        this(weight, bias, outFeatures, inFeatures, VECTOR_API);
    }

    /** @param vectorKernel run on {@link VectorLinearKernel} (only where {@link #VECTOR_API}), else the axpy form */
    Fp32Linear(float[] weight, float[] bias, int outFeatures, int inFeatures, boolean vectorKernel) {
        if (weight.length != outFeatures * inFeatures) {
            throw new IllegalArgumentException("weight has " + weight.length + " values, expected " + outFeatures
                + "x" + inFeatures);
        }
        if (vectorKernel && !VECTOR_API) {
            throw new IllegalStateException("the Vector API kernel needs --add-modules jdk.incubator.vector");
        }
        if (vectorKernel) {
            this.packed = VectorLinearKernel.pack(weight, outFeatures, inFeatures);
            if (bias != null) {
                this.kernelBias = bias;
            } else {
                this.kernelBias = new float[outFeatures];
                java.util.Arrays.fill(kernelBias, -0.0f);
            }
            this.wt = null;
            this.acc = null;
        } else {
            this.packed = null;
            this.kernelBias = null;
            this.wt = new float[inFeatures][outFeatures];
            for (int j = 0; j < outFeatures; j++) {
                for (int k = 0; k < inFeatures; k++) {
                    wt[k][j] = weight[j * inFeatures + k];
                }
            }
            this.acc = accumulators(outFeatures);
        }
        this.bias = bias;
        this.out = outFeatures;
        this.in = inFeatures;
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
        if (packed != null) {
            VectorLinearKernel.forwardRows(packed, kernelBias, in, out, x, fromRow, toRow, y);
        } else {
            forwardRowsAxpy(x, fromRow, toRow, y);
        }
    }

    /** The one-row-at-a-time axpy form (any JVM; an instance made without the vector kernel). */
    private void forwardRowsAxpy(float[] x, int fromRow, int toRow, float[] y) {
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
