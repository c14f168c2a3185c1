package io.troupe.models.infer;

/**
 * int8 weight-only {@link LinearWeights}: each output channel j holds {@code q[j, k]} in [-127, 127]
 * and one symmetric scale {@code s[j] = max_k |w[j, k]| / 127}. Dequantization is fused into the
 * product: {@code y[r, j] = s[j] * sum_k x[r, k] * q[j, k] + b[j]}. The weight is stored transposed
 * {@code (in, out)}; inside the product one row k of it at a time is widened to float in a
 * cache-resident buffer and applied to every row of the tile (as {@link Fp32Linear}), so the full
 * float matrix never exists. Summation order per output is fixed (k ascending, then scale, then
 * bias): batch-invariant.
 */
public final class Int8Linear implements LinearWeights {
    private final byte[] qt;
    private final float[] scale;
    private final float[] bias;
    private final int out;
    private final int in;
    private final ThreadLocal<float[]> widened;
    private final ThreadLocal<float[][]> acc;

    private Int8Linear(byte[] qt, float[] scale, float[] bias, int out, int in) {
        this.qt = qt;
        this.scale = scale;
        this.bias = bias;
        this.out = out;
        this.in = in;
        this.widened = ThreadLocal.withInitial(() -> new float[out]);
        this.acc = Fp32Linear.accumulators(out);
    }

    /** Quantizes float32 weights (outFeatures, inFeatures) per output channel; round to nearest. */
    public static Int8Linear quantize(float[] weight, float[] bias, int outFeatures, int inFeatures) {
        if (weight.length != outFeatures * inFeatures) {
            throw new IllegalArgumentException("weight has " + weight.length
                + " values, expected " + outFeatures + "x" + inFeatures);
        }
        byte[] q = new byte[weight.length];
        float[] scale = new float[outFeatures];
        quantizeRows(weight, outFeatures, inFeatures, q, scale);
        byte[] qt = new byte[q.length];
        for (int j = 0; j < outFeatures; j++) {
            for (int k = 0; k < inFeatures; k++) {
                qt[k * outFeatures + j] = q[j * inFeatures + k];
            }
        }
        return new Int8Linear(qt, scale, bias, outFeatures, inFeatures);
    }

    /** Per-row symmetric int8: {@code scale[j] = max|w[j,:]| / 127} (1 for an all-zero row). */
    static void quantizeRows(float[] w, int rows, int cols, byte[] q, float[] scale) {
        for (int j = 0; j < rows; j++) {
            float max = 0f;
            for (int k = 0; k < cols; k++) {
                max = Math.max(max, Math.abs(w[j * cols + k]));
            }
            float s = max == 0f ? 1f : max / 127f;
            scale[j] = s;
            for (int k = 0; k < cols; k++) {
                int v = Math.round(w[j * cols + k] / s);
                q[j * cols + k] = (byte) Math.max(-127, Math.min(127, v));
            }
        }
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
        float[] wk = widened.get();
        float[][] a = acc.get();
        for (int r0 = 0; r0 < rows; r0 += Fp32Linear.ROW_TILE) {
            int r1 = Math.min(rows, r0 + Fp32Linear.ROW_TILE);
            for (int r = r0; r < r1; r++) {
                java.util.Arrays.fill(a[r - r0], 0f);
            }
            for (int k = 0; k < in; k++) {
                int qOff = k * out;
                for (int j = 0; j < out; j++) {
                    wk[j] = qt[qOff + j];
                }
                for (int r = r0; r < r1; r++) {
                    Fp32Linear.axpy(x[r * in + k], wk, a[r - r0], out);
                }
            }
            for (int r = r0; r < r1; r++) {
                Fp32Linear.store(a[r - r0], scale, bias, y, r * out, out);
            }
        }
    }

    @Override
    public long weightBytes() {
        return qt.length + 4L * scale.length;
    }

    /** The dequantized weight (outFeatures, inFeatures), for tests: {@code q * scale} row by row. */
    public float[] dequantized() {
        float[] w = new float[qt.length];
        for (int j = 0; j < out; j++) {
            for (int k = 0; k < in; k++) {
                w[j * in + k] = qt[k * out + j] * scale[j];
            }
        }
        return w;
    }
}
