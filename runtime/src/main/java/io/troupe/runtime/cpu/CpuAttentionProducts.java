package io.troupe.runtime.cpu;

/**
 * The three matrix products of causal attention for one (batch, head), on heap arrays, as plain loops: the
 * reference {@link CpuAttentionVectorKernel} and {@link CpuAttentionVectorTransposedKernel} are held to
 * bitwise. Each output element is one chain of {@link Math#fma} in ascending order of the summed index,
 * starting from 0, then one multiply by {@code scale}; only the terms the causal mask keeps are summed.
 *
 * <pre>
 * seq = T positions, hd = head width; all arrays row-major; a, b and c are (T, hd) windows of larger arrays:
 * row i at aOff + i * lda (likewise b, c), so a head's columns are read and written in place
 *   scoresCausal:         s (T, T)  = scale * a (T, hd) b^T,  given bt = b^T (hd, T) packed; entries j <= i only
 *   lowerTimes:           c (T, hd) = scale * p (T, T) b (T, hd),    row i sums j = 0..i
 *   lowerTransposedTimes: c (T, hd) = scale * p^T (T, T) b (T, hd),  row j sums i = j..T-1
 * </pre>
 *
 * Forward: scores = scoresCausal(Q, K^T), O = lowerTimes(P, V). Backward: dP = scoresCausal(dO, V^T),
 * dQ = lowerTimes(dS, K), dK = lowerTransposedTimes(dS, Q), dV = lowerTransposedTimes(P, dO).
 */
final class CpuAttentionProducts {
    private CpuAttentionProducts() {
    }

    /**
     * {@code s[i, j] = scale * sum_d a[i, d] bt[d, j]} for j <= i; entries j > i are left as they were.
     */
    static void scoresCausal(float[] a, int aOff, int lda, float[] bt, float[] s, int seq, int hd, float scale) {
        for (int i = 0; i < seq; i++) {
            for (int j = 0; j <= i; j++) {
                float acc = 0f;
                for (int d = 0; d < hd; d++) {
                    acc = Math.fma(a[aOff + i * lda + d], bt[d * seq + j], acc);
                }
                s[i * seq + j] = acc * scale;
            }
        }
    }

    /** {@code c[i, d] = scale * sum_{j <= i} p[i, j] b[j, d]}; entries of p above the diagonal are not read. */
    static void lowerTimes(float[] p, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc, int seq, int hd,
                           float scale) {
        for (int i = 0; i < seq; i++) {
            for (int d = 0; d < hd; d++) {
                float acc = 0f;
                for (int j = 0; j <= i; j++) {
                    acc = Math.fma(p[i * seq + j], b[bOff + j * ldb + d], acc);
                }
                c[cOff + i * ldc + d] = acc * scale;
            }
        }
    }

    /** {@code c[j, d] = scale * sum_{i >= j} p[i, j] b[i, d]}; entries of p above the diagonal are not read. */
    static void lowerTransposedTimes(float[] p, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc, int seq,
                                     int hd, float scale) {
        for (int j = 0; j < seq; j++) {
            for (int d = 0; d < hd; d++) {
                float acc = 0f;
                for (int i = j; i < seq; i++) {
                    acc = Math.fma(p[i * seq + j], b[bOff + i * ldb + d], acc);
                }
                c[cOff + j * ldc + d] = acc * scale;
            }
        }
    }
}
