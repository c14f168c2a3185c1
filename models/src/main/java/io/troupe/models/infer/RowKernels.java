package io.troupe.models.infer;

/**
 * The row-wise kernels of the inference forward. Each output element is reduced in one fixed order
 * that depends only on the row's own length, never on how many rows share the call: Java float
 * arithmetic is strict IEEE (no fused multiply-add unless asked), so a token's result is bit-equal
 * alone and in any batch.
 *
 * <p>Dot products (attention scores) keep four lane accumulators ({@code k mod 4}) summed as {@code (a0 + a1) + (a2 +
 * a3)}
 * plus the tail in order; the plain references in the tests use the same order.
 */
public final class RowKernels {
    private RowKernels() {
    }

    /** sum_k a[aOff + k] * b[bOff + k] for k in [0, n), in the fixed four-lane order. */
    public static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        int k = 0;
        for (; k + 3 < n; k += 4) {
            s0 += a[aOff + k] * b[bOff + k];
            s1 += a[aOff + k + 1] * b[bOff + k + 1];
            s2 += a[aOff + k + 2] * b[bOff + k + 2];
            s3 += a[aOff + k + 3] * b[bOff + k + 3];
        }
        float s = (s0 + s1) + (s2 + s3);
        for (; k < n; k++) {
            s += a[aOff + k] * b[bOff + k];
        }
        return s;
    }

    /** sum_k x[xOff + k] * q[qOff + k] with int8 {@code q}, in the same fixed order as {@link #dot}. */
    public static float dotInt8(float[] x, int xOff, byte[] q, int qOff, int n) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        int k = 0;
        for (; k + 3 < n; k += 4) {
            s0 += x[xOff + k] * q[qOff + k];
            s1 += x[xOff + k + 1] * q[qOff + k + 1];
            s2 += x[xOff + k + 2] * q[qOff + k + 2];
            s3 += x[xOff + k + 3] * q[qOff + k + 3];
        }
        float s = (s0 + s1) + (s2 + s3);
        for (; k < n; k++) {
            s += x[xOff + k] * q[qOff + k];
        }
        return s;
    }

    /**
     * out row = LayerNorm(x row) * w + b over {@code cols}, for {@code rows} rows; biased variance.
     * The mean and the variance are sums in {@link #laneSum}'s order (so the Vector API form,
     * {@link VectorRowKernels#layerNorm}, gives the same bits); the output element-wise.
     */
    public static void layerNorm(float[] x, float[] w, float[] b, float[] out, int rows, int cols, float eps) {
        float[] lanes = new float[LANES];
        float[] d = new float[cols];
        for (int r = 0; r < rows; r++) {
            int o = r * cols;
            float mean = laneSum(x, o, cols, lanes) / cols;
            for (int i = 0; i < cols; i++) {
                float e = x[o + i] - mean;
                d[i] = e * e;
            }
            float var = laneSum(d, 0, cols, lanes);
            float rstd = (float) (1.0 / Math.sqrt(var / cols + eps));
            for (int i = 0; i < cols; i++) {
                out[o + i] = (x[o + i] - mean) * rstd * w[i] + b[i];
            }
        }
    }

    /** Lanes of {@link #laneSum}: a sum's partial sums, one per element index modulo 16. */
    static final int LANES = 16;

    /**
     * sum of a[off, off + n) in a fixed order that vectors of 16 (or two of 8) lanes follow: lane l
     * adds the elements i = l (mod 16) of the first n - n % 16 in ascending order; the lanes are
     * folded pairwise, lane l + 8 into lane l, then + 4, + 2, + 1; the tail elements are added to
     * lane 0 in order. {@code lanes}: scratch of {@link #LANES} floats.
     */
    static float laneSum(float[] a, int off, int n, float[] lanes) {
        java.util.Arrays.fill(lanes, 0f);
        int body = n - n % LANES;
        for (int i = 0; i < body; i += LANES) {
            for (int l = 0; l < LANES; l++) {
                lanes[l] += a[off + i + l];
            }
        }
        float s = foldLanes(lanes);
        for (int i = body; i < n; i++) {
            s += a[off + i];
        }
        return s;
    }

    /** Lanes folded pairwise: l + 8 into l, then + 4, + 2, + 1; lane 0's result (the array is overwritten). */
    static float foldLanes(float[] lanes) {
        for (int half = LANES / 2; half > 0; half /= 2) {
            for (int l = 0; l < half; l++) {
                lanes[l] = lanes[l] + lanes[l + half];
            }
        }
        return lanes[0];
    }

    // tanh(u) = u P(u^2) / Q(u^2) on |u| <= 9 (tanh is 1 within float precision beyond): a rational
    // minimax fit (max abs error ~4e-7 evaluated in float32), cheaper per element than the exponential
    // of the training kernels' logistic form, whose accuracy at the negative tail decoding does not need
    private static final float P0 = 0.99999999982055088f;
    private static final float P1 = 0.14097189616748285f;
    private static final float P2 = 0.0044232774158112402f;
    private static final float P3 = 4.220661634258352e-05f;
    private static final float P4 = 1.1081031136207517e-07f;
    private static final float P5 = 3.6533972600017159e-11f;
    private static final float Q1 = 0.47430522863427627f;
    private static final float Q2 = 0.029191688174799734f;
    private static final float Q3 = 0.00050032528631662224f;
    private static final float Q4 = 2.5977566381048034e-06f;
    private static final float Q5 = 2.9381143443644578e-09f;
    private static final float GELU_SCALE = (float) Math.sqrt(2.0 / Math.PI);

    /**
     * GELU, tanh approximation (GPT-2), in place over [0, n); tanh by the branch-free rational
     * approximation above, so the loop vectorises. Within 2e-6 of the exact form relative to
     * max(1, |gelu|) (tested).
     */
    public static void gelu(float[] x, int n) {
        for (int i = 0; i < n; i++) {
            float v = x[i];
            float u = Math.max(-9f, Math.min(9f, GELU_SCALE * (v + 0.044715f * v * v * v)));
            float u2 = u * u;
            float p = P0 + u2 * (P1 + u2 * (P2 + u2 * (P3 + u2 * (P4 + u2 * P5))));
            float q = 1f + u2 * (Q1 + u2 * (Q2 + u2 * (Q3 + u2 * (Q4 + u2 * Q5))));
            x[i] = 0.5f * v * (1f + u * p / q);
        }
    }

    static final float LOG2E = 1.44269504f;
    static final float LN2_HI = 0.693359375f;
    static final float LN2_LO = -2.12194440e-4f;
    static final float E1 = 1.9875691500e-4f;
    static final float E2 = 1.3981999507e-3f;
    static final float E3 = 8.3334519073e-3f;
    static final float E4 = 4.1665795894e-2f;
    static final float E5 = 1.6666665459e-1f;
    static final float E6 = 5.0000001201e-1f;

    /**
     * e^x in float, the Cephes {@code expf} scheme: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in
     * two parts so n ln2 is exact), e^r by a degree-6 polynomial, times 2^n built from the exponent
     * bits. Within 2 ulp of {@link Math#exp} (tested), a few times cheaper, and a pure function of x
     * in float arithmetic (the same bits on every call). 0 below -87 (where e^x is subnormal),
     * infinity above 88, NaN for NaN.
     */
    public static float exp(float x) {
        if (x < -87f) {
            return 0f;
        }
        if (x > 88f) {
            return Float.POSITIVE_INFINITY;
        }
        float n = (float) Math.floor(x * LOG2E + 0.5f);
        float r = x - n * LN2_HI;
        r = r - n * LN2_LO;
        float y = E1;
        y = y * r + E2;
        y = y * r + E3;
        y = y * r + E4;
        y = y * r + E5;
        y = y * r + E6;
        y = y * (r * r) + r + 1f;
        return y * Float.intBitsToFloat(((int) n + 127) << 23);
    }

    /** out[i] = a[i] * b[i] for i in [0, n) (offset-0 arrays: vectorised). */
    public static void multiply(float[] a, float[] b, float[] out, int n) {
        for (int i = 0; i < n; i++) {
            out[i] = a[i] * b[i];
        }
    }

    /** acc[i] += a[i] * b[i] for i in [0, n) (offset-0 arrays: vectorised). */
    public static void multiplyAdd(float[] a, float[] b, float[] acc, int n) {
        for (int i = 0; i < n; i++) {
            acc[i] += a[i] * b[i];
        }
    }

    /** sum of a[off, off + n) in the fixed four-lane order of {@link #dot}. */
    public static float sum(float[] a, int off, int n) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        int k = 0;
        for (; k + 3 < n; k += 4) {
            s0 += a[off + k];
            s1 += a[off + k + 1];
            s2 += a[off + k + 2];
            s3 += a[off + k + 3];
        }
        float s = (s0 + s1) + (s2 + s3);
        for (; k < n; k++) {
            s += a[off + k];
        }
        return s;
    }

    /** a[i] += b[i] for i in [0, n). */
    public static void addInPlace(float[] a, float[] b, int n) {
        for (int i = 0; i < n; i++) {
            a[i] += b[i];
        }
    }
}
