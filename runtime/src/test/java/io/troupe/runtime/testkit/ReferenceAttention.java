package io.troupe.runtime.testkit;

/**
 * Naive double-precision causal multi-head self-attention on a fused projection, forward and
 * backward, for testing backends.
 *
 * <p>Layout (the {@code Device.attention} contract): {@code qkv} is (B, T, 3C) with C = NH*hd, the
 * q block at columns [0, C), k at [C, 2C), v at [2C, 3C), and head h at columns h*hd within each
 * block; {@code out} is (B, T, C); {@code att} is (B, NH, T, T) softmax probabilities, zero above
 * the diagonal.
 *
 * <p>Per (b, h): {@code S[i][j] = q_i . k_j / sqrt(hd)} for j &le; i, {@code P = softmax_j(S)},
 * {@code out_i = sum_j P[i][j] v_j}.
 */
public final class ReferenceAttention {
    private ReferenceAttention() {
    }

    private static int qIndex(int b, int t, int h, int d, int seq, int heads, int headDim) {
        int c = heads * headDim;
        return (b * seq + t) * 3 * c + h * headDim + d;
    }

    /** Forward; writes the probabilities into {@code att} (B*NH*T*T) and returns out (B*T*C). */
    public static double[] forward(double[] qkv, double[] att, int batch, int seq, int heads, int headDim) {
        int c = heads * headDim;
        double scale = 1 / Math.sqrt(headDim);
        double[] out = new double[batch * seq * c];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int attBase = (b * heads + h) * seq * seq;
                for (int i = 0; i < seq; i++) {
                    double[] s = new double[i + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) {
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) {
                            dot += qkv[qIndex(b, i, h, d, seq, heads, headDim)]
                                * qkv[qIndex(b, j, h, d, seq, heads, headDim) + c];
                        }
                        s[j] = dot * scale;
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) {
                        sum += Math.exp(s[j] - max);
                    }
                    for (int j = 0; j < seq; j++) {
                        att[attBase + i * seq + j] = j <= i ? Math.exp(s[j] - max) / sum : 0;
                    }
                    for (int d = 0; d < headDim; d++) {
                        double o = 0;
                        for (int j = 0; j <= i; j++) {
                            o += att[attBase + i * seq + j] * qkv[qIndex(b, j, h, d, seq, heads, headDim) + 2 * c];
                        }
                        out[(b * seq + i) * c + h * headDim + d] = o;
                    }
                }
            }
        }
        return out;
    }

    /**
     * Backward; returns dqkv (overwritten semantics: a fresh array). With {@code dP[i][j] = dout_i . v_j}:
     * {@code dv_j = sum_i P[i][j] dout_i}, {@code dS[i][j] = P[i][j] (dP[i][j] - sum_l P[i][l] dP[i][l])},
     * {@code dq_i = scale sum_j dS[i][j] k_j}, {@code dk_j = scale sum_i dS[i][j] q_i}.
     */
    public static double[] backward(double[] dout, double[] qkv, double[] att,
                                    int batch, int seq, int heads, int headDim) {
        int c = heads * headDim;
        double scale = 1 / Math.sqrt(headDim);
        double[] dqkv = new double[qkv.length];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int attBase = (b * heads + h) * seq * seq;
                for (int i = 0; i < seq; i++) {
                    double[] dp = new double[i + 1];
                    double rowDot = 0;
                    for (int j = 0; j <= i; j++) {
                        double p = att[attBase + i * seq + j];
                        for (int d = 0; d < headDim; d++) {
                            double g = dout[(b * seq + i) * c + h * headDim + d];
                            dp[j] += g * qkv[qIndex(b, j, h, d, seq, heads, headDim) + 2 * c];
                            dqkv[qIndex(b, j, h, d, seq, heads, headDim) + 2 * c] += p * g;
                        }
                        rowDot += p * dp[j];
                    }
                    for (int j = 0; j <= i; j++) {
                        double ds = att[attBase + i * seq + j] * (dp[j] - rowDot);
                        for (int d = 0; d < headDim; d++) {
                            int qi = qIndex(b, i, h, d, seq, heads, headDim);
                            int kj = qIndex(b, j, h, d, seq, heads, headDim) + c;
                            dqkv[qi] += scale * ds * qkv[kj];
                            dqkv[kj] += scale * ds * qkv[qi];
                        }
                    }
                }
            }
        }
        return dqkv;
    }
}
