package io.troupe.models.infer;

/**
 * The row-wise kernels of the inference forward. Each output element is reduced in one fixed order
 * that depends only on the row's own length, never on how many rows share the call: Java float
 * arithmetic is strict IEEE (no fused multiply-add unless asked), so a token's result is bit-equal
 * alone and in any batch.
 *
 * <p>Dot products (attention scores) keep four lane accumulators ({@code k mod 4}) summed as {@code (a0 + a1) + (a2 + a3)}
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

    /** out row = LayerNorm(x row) * w + b over {@code cols}, for {@code rows} rows; biased variance. */
    public static void layerNorm(float[] x, float[] w, float[] b, float[] out, int rows, int cols, float eps) {
        for (int r = 0; r < rows; r++) {
            int o = r * cols;
            float sum = 0f;
            for (int i = 0; i < cols; i++) {
                sum += x[o + i];
            }
            float mean = sum / cols;
            float var = 0f;
            for (int i = 0; i < cols; i++) {
                float d = x[o + i] - mean;
                var += d * d;
            }
            float rstd = (float) (1.0 / Math.sqrt(var / cols + eps));
            for (int i = 0; i < cols; i++) {
                out[o + i] = (x[o + i] - mean) * rstd * w[i] + b[i];
            }
        }
    }

    /** GELU, tanh approximation (GPT-2), in place over [0, n). */
    public static void gelu(float[] x, int n) {
        final double scale = Math.sqrt(2.0 / Math.PI);
        for (int i = 0; i < n; i++) {
            double v = x[i];
            x[i] = (float) (0.5 * v * (1.0 + Math.tanh(scale * (v + 0.044715 * v * v * v))));
        }
    }

    /** a[i] += b[i] for i in [0, n). */
    public static void addInPlace(float[] a, float[] b, int n) {
        for (int i = 0; i < n; i++) {
            a[i] += b[i];
        }
    }
}
