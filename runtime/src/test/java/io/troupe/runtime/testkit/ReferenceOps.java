package io.troupe.runtime.testkit;

/**
 * Naive, single-threaded, double-precision reference implementations of every
 * {@link io.troupe.runtime.device.Device} op except attention (see {@link ReferenceAttention}).
 *
 * <p>Written straight from the math for readability, never for speed: each backend is tested
 * against these on random inputs, and each backward here is tested against central finite
 * differences of its forward ({@code ReferenceOpsGradientTest}).
 *
 * <p>Layouts and accumulate/overwrite rules are those of the {@code Device} contract: arrays are
 * row-major and contiguous, gradients of parameters accumulate ({@code +=}), gradients of
 * activations overwrite, except {@link #layerNormBackward} which accumulates into {@code dinp}.
 * Methods that write into an argument say so; the others return a fresh array.
 */
public final class ReferenceOps {
    private ReferenceOps() {
    }

    // ---------------------------------------------------------------- BLAS-like

    /**
     * {@code C = alpha * op(A) @ op(B) + beta * C} for {@code batch} matrices, row-major; matrix
     * {@code i} of A starts at {@code offA + i*strideA} (likewise B, C). {@code op(A)} is (m, k):
     * A is stored (m, k) with row stride lda, or (k, m) when {@code transA}. Writes {@code c}.
     */
    public static void gemmBatched(boolean transA, boolean transB, int m, int n, int k, double alpha,
                                   double[] a, int offA, int lda, long strideA,
                                   double[] b, int offB, int ldb, long strideB,
                                   double beta, double[] c, int offC, int ldc, long strideC, int batch) {
        for (int bi = 0; bi < batch; bi++) {
            long baseA = offA + bi * strideA;
            long baseB = offB + bi * strideB;
            long baseC = offC + bi * strideC;
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    for (int p = 0; p < k; p++) {
                        double aip = transA ? a[(int) (baseA + (long) p * lda + i)] : a[(int) (baseA + (long) i * lda
                            + p)];
                        double bpj = transB ? b[(int) (baseB + (long) j * ldb + p)] : b[(int) (baseB + (long) p * ldb
                            + j)];
                        sum += aip * bpj;
                    }
                    int ci = (int) (baseC + (long) i * ldc + j);
                    // beta == 0 must not read C (BLAS semantics: C may hold garbage or NaN).
                    c[ci] = beta == 0 ? alpha * sum : alpha * sum + beta * c[ci];
                }
            }
        }
    }

    /** Single, contiguous {@code C = alpha * op(A) @ op(B) + beta * C}; writes {@code c}. */
    public static void matmul(boolean transA, boolean transB, int m, int n, int k, double alpha,
                              double[] a, double[] b, double beta, double[] c) {
        gemmBatched(transA, transB, m, n, k, alpha, a, 0, transA ? m : k, 0, b, 0, transB ? k : n, 0,
            beta, c, 0, n, 0, 1);
    }

    /**
     * Backward of {@code C = op(A) @ op(B)} (contiguous): accumulates {@code da += dL/dA} and
     * {@code db += dL/dB} in A's and B's stored layouts, from {@code dc} (m, n).
     * With {@code op(A)[i][p]} and {@code op(B)[p][j]}: {@code dop(A)[i][p] = sum_j dc[i][j] op(B)[p][j]},
     * {@code dop(B)[p][j] = sum_i op(A)[i][p] dc[i][j]}.
     */
    public static void matmulBackward(boolean transA, boolean transB, int m, int n, int k,
                                      double[] a, double[] b, double[] dc, double[] da, double[] db) {
        for (int i = 0; i < m; i++) {
            for (int p = 0; p < k; p++) {
                int ai = transA ? p * m + i : i * k + p;
                for (int j = 0; j < n; j++) {
                    int bi = transB ? j * k + p : p * n + j;
                    da[ai] += dc[i * n + j] * b[bi];
                    db[bi] += a[ai] * dc[i * n + j];
                }
            }
        }
    }

    /** {@code y += alpha * x}; writes {@code y}. */
    public static void axpy(double alpha, double[] x, double[] y) {
        for (int i = 0; i < x.length; i++) {
            y[i] += alpha * x[i];
        }
    }

    /** {@code alpha * x}. */
    public static double[] scale(double[] x, double alpha) {
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] * alpha;
        }
        return out;
    }

    /** {@code a + b} elementwise. */
    public static double[] add(double[] a, double[] b) {
        double[] out = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i] + b[i];
        }
        return out;
    }

    /** {@code sum x[i]^2}. */
    public static double sumOfSquares(double[] x) {
        double s = 0;
        for (double v : x) {
            s += v * v;
        }
        return s;
    }

    // ---------------------------------------------------------------- bias

    /** {@code out[r, c] += bias[c]}; writes {@code out}. */
    public static void biasAdd(double[] out, double[] bias, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[r * cols + c] += bias[c];
            }
        }
    }

    /** {@code dbias[c] += sum_r dout[r, c]}; writes {@code dbias}. */
    public static void biasBackward(double[] dbias, double[] dout, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                dbias[c] += dout[r * cols + c];
            }
        }
    }

    // ---------------------------------------------------------------- GELU (tanh approximation)

    private static final double GELU_K = Math.sqrt(2.0 / Math.PI);
    private static final double GELU_C = 0.044715;

    /** {@code 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))}. */
    public static double[] gelu(double[] inp) {
        double[] out = new double[inp.length];
        for (int i = 0; i < inp.length; i++) {
            double x = inp[i];
            out[i] = 0.5 * x * (1 + Math.tanh(GELU_K * (x + GELU_C * x * x * x)));
        }
        return out;
    }

    /**
     * {@code dout * gelu'(inp)}, with u = k(x + c x^3), gelu' = 0.5(1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3c x^2).
     */
    public static double[] geluBackward(double[] inp, double[] dout) {
        double[] dinp = new double[inp.length];
        for (int i = 0; i < inp.length; i++) {
            double x = inp[i];
            double t = Math.tanh(GELU_K * (x + GELU_C * x * x * x));
            double du = GELU_K * (1 + 3 * GELU_C * x * x);
            dinp[i] = dout[i] * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du);
        }
        return dinp;
    }

    // ---------------------------------------------------------------- LayerNorm

    /**
     * LayerNorm over the last dimension of (rows, cols), population variance:
     * {@code out = (x - mean) * rstd * weight + bias}, {@code rstd = 1/sqrt(var + eps)}.
     * Writes {@code mean} and {@code rstd} (rows); returns out.
     */
    public static double[] layerNorm(double[] inp, double[] weight, double[] bias, double[] mean, double[] rstd,
                                     int rows, int cols, double eps) {
        double[] out = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            double mu = 0;
            for (int c = 0; c < cols; c++) {
                mu += inp[r * cols + c];
            }
            mu /= cols;
            double var = 0;
            for (int c = 0; c < cols; c++) {
                double d = inp[r * cols + c] - mu;
                var += d * d;
            }
            var /= cols;
            double rs = 1 / Math.sqrt(var + eps);
            for (int c = 0; c < cols; c++) {
                out[r * cols + c] = (inp[r * cols + c] - mu) * rs * weight[c] + bias[c];
            }
            mean[r] = mu;
            rstd[r] = rs;
        }
        return out;
    }

    /**
     * Accumulates {@code dinp}, {@code dweight}, {@code dbias}. With {@code xhat = (x - mean) rstd} and
     * {@code g = dout * weight}: {@code dx = rstd (g - mean(g) - xhat mean(g xhat))},
     * {@code dweight += sum_r dout xhat}, {@code dbias += sum_r dout}.
     */
    public static void layerNormBackward(double[] dinp, double[] dweight, double[] dbias, double[] dout,
                                         double[] inp, double[] weight, double[] mean, double[] rstd,
                                         int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            double meanG = 0;
            double meanGXhat = 0;
            for (int c = 0; c < cols; c++) {
                double xhat = (inp[r * cols + c] - mean[r]) * rstd[r];
                double g = dout[r * cols + c] * weight[c];
                meanG += g;
                meanGXhat += g * xhat;
            }
            meanG /= cols;
            meanGXhat /= cols;
            for (int c = 0; c < cols; c++) {
                int i = r * cols + c;
                double xhat = (inp[i] - mean[r]) * rstd[r];
                double g = dout[i] * weight[c];
                dinp[i] += rstd[r] * (g - meanG - xhat * meanGXhat);
                dweight[c] += dout[i] * xhat;
                dbias[c] += dout[i];
            }
        }
    }

    // ---------------------------------------------------------------- cross-entropy

    /**
     * Per row: {@code probs = softmax(logits)} (written into {@code probs}), returns
     * {@code losses[r] = -log probs[r, targets[r]]}. A target outside [0, vocab) throws.
     */
    public static double[] crossEntropy(double[] logits, int[] targets, double[] probs, int rows, int vocab) {
        double[] losses = new double[rows];
        for (int r = 0; r < rows; r++) {
            int t = targets[r];
            if (t < 0 || t >= vocab) {
                throw new IllegalArgumentException("target out of range: target=" + t + ", row=" + r + ", vocab="
                    + vocab);
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < vocab; v++) {
                max = Math.max(max, logits[r * vocab + v]);
            }
            double sum = 0;
            for (int v = 0; v < vocab; v++) {
                sum += Math.exp(logits[r * vocab + v] - max);
            }
            for (int v = 0; v < vocab; v++) {
                probs[r * vocab + v] = Math.exp(logits[r * vocab + v] - max) / sum;
            }
            losses[r] = -(logits[r * vocab + t] - max - Math.log(sum));
        }
        return losses;
    }

    /** {@code dlogits = (probs - onehot(targets)) * dlossScale}: the gradient of {@code dlossScale * sum(losses)}. */
    public static double[] crossEntropyBackward(double[] probs, int[] targets, double dlossScale, int rows, int vocab) {
        double[] dlogits = new double[rows * vocab];
        for (int r = 0; r < rows; r++) {
            for (int v = 0; v < vocab; v++) {
                double indicator = v == targets[r] ? 1 : 0;
                dlogits[r * vocab + v] = (probs[r * vocab + v] - indicator) * dlossScale;
            }
        }
        return dlogits;
    }

    // ---------------------------------------------------------------- embedding

    /** {@code out[r] = table[ids[r]]}, or {@code +=} when {@code accumulate}; writes {@code out}. */
    public static void embedding(double[] out, int[] ids, double[] table, int rows, int dim, boolean accumulate) {
        for (int r = 0; r < rows; r++) {
            for (int d = 0; d < dim; d++) {
                double e = table[ids[r] * dim + d];
                out[r * dim + d] = accumulate ? out[r * dim + d] + e : e;
            }
        }
    }

    /** Scatter-add {@code dtable[ids[r]] += dout[r]}; writes {@code dtable}. */
    public static void embeddingBackward(double[] dtable, double[] dout, int[] ids, int rows, int dim) {
        for (int r = 0; r < rows; r++) {
            for (int d = 0; d < dim; d++) {
                dtable[ids[r] * dim + d] += dout[r * dim + d];
            }
        }
    }

    // ---------------------------------------------------------------- AdamW

    /**
     * One AdamW update in place (PyTorch 1.13, decoupled decay), {@code t} 1-based:
     * <pre>
     *   p *= 1 - lr*wd
     *   m  = b1*m + (1-b1)*g
     *   v  = b2*v + (1-b2)*g^2
     *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
     * </pre>
     */
    public static void adamw(double[] param, double[] grad, double[] m, double[] v, double lr, double beta1,
                             double beta2, double eps, double weightDecay, long t) {
        double bc1 = 1 - Math.pow(beta1, t);
        double bc2 = 1 - Math.pow(beta2, t);
        for (int i = 0; i < param.length; i++) {
            double g = grad[i];
            param[i] *= 1 - lr * weightDecay;
            m[i] = beta1 * m[i] + (1 - beta1) * g;
            v[i] = beta2 * v[i] + (1 - beta2) * g * g;
            param[i] -= lr / bc1 * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
        }
    }
}
