package io.troupe.models.infer;

/**
 * int8 weight-only {@link LinearWeights}: each output channel j holds {@code q[j, k]} in [-127, 127]
 * and one symmetric scale {@code s[j] = max_k |w[j, k]| / 127}. Dequantization is fused into the
 * product: {@code y[r, j] = s[j] * sum_k x[r, k] * q[j, k] + b[j]}, the weight never expanded to float.
 */
public final class Int8Linear implements LinearWeights {
    private final byte[] q;
    private final float[] scale;
    private final float[] bias;
    private final int out;
    private final int in;

    private Int8Linear(byte[] q, float[] scale, float[] bias, int out, int in) {
        this.q = q;
        this.scale = scale;
        this.bias = bias;
        this.out = out;
        this.in = in;
    }

    /** Quantizes float32 weights (outFeatures, inFeatures) per output channel; round to nearest. */
    public static Int8Linear quantize(float[] weight, float[] bias, int outFeatures, int inFeatures) {
        if (weight.length != outFeatures * inFeatures) {
            throw new IllegalArgumentException("weight has " + weight.length + " values, expected " + outFeatures + "x" + inFeatures);
        }
        byte[] q = new byte[weight.length];
        float[] scale = new float[outFeatures];
        quantizeRows(weight, outFeatures, inFeatures, q, scale);
        return new Int8Linear(q, scale, bias, outFeatures, inFeatures);
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
        for (int j = 0; j < out; j++) {
            float b = bias == null ? 0f : bias[j];
            float s = scale[j];
            int qOff = j * in;
            for (int r = 0; r < rows; r++) {
                y[r * out + j] = RowKernels.dotInt8(x, r * in, q, qOff, in) * s + b;
            }
        }
    }

    @Override
    public long weightBytes() {
        return q.length + 4L * scale.length;
    }

    /** The dequantized weight (for tests): {@code q * scale} row by row. */
    public float[] dequantized() {
        float[] w = new float[q.length];
        for (int j = 0; j < out; j++) {
            for (int k = 0; k < in; k++) {
                w[j * in + k] = q[j * in + k] * scale[j];
            }
        }
        return w;
    }
}
