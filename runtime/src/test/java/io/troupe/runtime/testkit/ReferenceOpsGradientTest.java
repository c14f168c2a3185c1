package io.troupe.runtime.testkit;

import static io.troupe.runtime.testkit.RandomTensors.assertClose;
import static io.troupe.runtime.testkit.RandomTensors.ints;
import static io.troupe.runtime.testkit.RandomTensors.uniformDouble;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.ToDoubleFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Checks the references themselves: every backward of {@link ReferenceOps} and
 * {@link ReferenceAttention} against central finite differences of its forward, through the scalar
 * loss {@code L = sum(out * w)} with random weights w; a few closed forms for the forwards.
 */
@Timeout(30)
class ReferenceOpsGradientTest {
    private static final double H = 1e-6;
    private static final double ATOL = 1e-7;
    private static final double RTOL = 1e-6;

    private final Random rnd = new Random(20261128);

    /** Central differences of {@code loss} with respect to every element of {@code x} (restored after). */
    private static double[] numericGradient(ToDoubleFunction<double[]> loss, double[] x) {
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double saved = x[i];
            x[i] = saved + H;
            double plus = loss.applyAsDouble(x);
            x[i] = saved - H;
            double minus = loss.applyAsDouble(x);
            x[i] = saved;
            g[i] = (plus - minus) / (2 * H);
        }
        return g;
    }

    private static double dot(double[] a, double[] w) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * w[i];
        }
        return s;
    }

    private static double[] minus(double[] a, double[] b) {
        double[] out = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i] - b[i];
        }
        return out;
    }

    @ParameterizedTest(name = "transA={0} transB={1}")
    @CsvSource({"false,false", "false,true", "true,false", "true,true"})
    void shouldMatchFiniteDifferencesForMatmulBackward(boolean transA, boolean transB) {
        int m = 7;
        int n = 5;
        int k = 3;
        double[] a = uniformDouble(rnd, m * k, -1, 1);
        double[] b = uniformDouble(rnd, k * n, -1, 1);
        double[] w = uniformDouble(rnd, m * n, -1, 1);
        ToDoubleFunction<double[]> lossOfA = x -> {
            double[] c = new double[m * n];
            ReferenceOps.matmul(transA, transB, m, n, k, 1, x, b, 0, c);
            return dot(c, w);
        };
        ToDoubleFunction<double[]> lossOfB = x -> {
            double[] c = new double[m * n];
            ReferenceOps.matmul(transA, transB, m, n, k, 1, a, x, 0, c);
            return dot(c, w);
        };
        double[] da0 = uniformDouble(rnd, m * k, -1, 1);
        double[] db0 = uniformDouble(rnd, k * n, -1, 1);
        double[] da = da0.clone();
        double[] db = db0.clone();
        ReferenceOps.matmulBackward(transA, transB, m, n, k, a, b, w, da, db);
        assertClose("matmul dA", numericGradient(lossOfA, a), minus(da, da0), ATOL, RTOL);
        assertClose("matmul dB", numericGradient(lossOfB, b), minus(db, db0), ATOL, RTOL);
    }

    @Test
    void shouldMatchHandComputedGemmWithStridesAlphaBeta() {
        // A = [[1,2],[3,4]] stored with lda=3 (padding 9), B = [[5,6],[7,8]], C0 = [[1,1],[1,1]].
        double[] a = {1, 2, 9, 3, 4, 9};
        double[] b = {5, 6, 7, 8};
        double[] c = {1, 1, 1, 1};
        ReferenceOps.gemmBatched(false, false, 2, 2, 2, 2, a, 0, 3, 0, b, 0, 2, 0, 0.5, c, 0, 2, 0, 1);
        // A@B = [[19,22],[43,50]]; 2*AB + 0.5 = [[38.5,44.5],[86.5,100.5]]
        assertArrayEquals(new double[] {38.5, 44.5, 86.5, 100.5}, c, 0);
        // Transposed A: stored (k, m) = A^T; same product.
        double[] at = {1, 3, 2, 4};
        double[] c2 = new double[4];
        ReferenceOps.matmul(true, false, 2, 2, 2, 1, at, b, 0, c2);
        assertArrayEquals(new double[] {19, 22, 43, 50}, c2, 0);
        // beta == 0 ignores NaN in C (BLAS semantics).
        double[] c3 = {Double.NaN, Double.NaN, Double.NaN, Double.NaN};
        ReferenceOps.matmul(false, true, 2, 2, 2, 1, new double[] {1, 2, 3, 4}, new double[] {5, 7, 6, 8}, 0, c3);
        assertArrayEquals(new double[] {19, 22, 43, 50}, c3, 0);
    }

    @Test
    void shouldMatchPerSliceMatmulForBatchedGemmWithStrides() {
        int m = 3;
        int n = 4;
        int k = 5;
        int batch = 3;
        int lda = k + 2;
        long strideA = (long) m * lda + 1;
        double[] a = uniformDouble(rnd, (int) (batch * strideA), -1, 1);
        double[] b = uniformDouble(rnd, k * n, -1, 1); // stride 0: shared by every batch
        double[] c = new double[batch * m * n];
        ReferenceOps.gemmBatched(false, false, m, n, k, 1, a, 0, lda, strideA, b, 0, n, 0, 0, c, 0, n, m * n, batch);
        for (int bi = 0; bi < batch; bi++) {
            double[] packed = new double[m * k];
            for (int i = 0; i < m; i++) {
                System.arraycopy(a, (int) (bi * strideA) + i * lda, packed, i * k, k);
            }
            double[] expected = new double[m * n];
            ReferenceOps.matmul(false, false, m, n, k, 1, packed, b, 0, expected);
            double[] actual = java.util.Arrays.copyOfRange(c, bi * m * n, (bi + 1) * m * n);
            assertArrayEquals(expected, actual, 1e-15, "batch " + bi);
        }
    }

    @Test
    void shouldMatchFiniteDifferencesForBiasBackward() {
        int rows = 7;
        int cols = 13;
        double[] x = uniformDouble(rnd, rows * cols, -1, 1);
        double[] bias = uniformDouble(rnd, cols, -1, 1);
        double[] w = uniformDouble(rnd, rows * cols, -1, 1);
        double[] dbias0 = uniformDouble(rnd, cols, -1, 1);
        double[] dbias = dbias0.clone();
        ReferenceOps.biasBackward(dbias, w, rows, cols);
        double[] expected = numericGradient(bv -> {
            double[] out = x.clone();
            ReferenceOps.biasAdd(out, bv, rows, cols);
            return dot(out, w);
        }, bias);
        assertClose("biasBackward dbias", expected, minus(dbias, dbias0), ATOL, RTOL);
    }

    @Test
    void shouldMatchFiniteDifferencesForGeluBackward() {
        int n = 7 * 13;
        double[] x = uniformDouble(rnd, n, -4, 4);
        double[] w = uniformDouble(rnd, n, -1, 1);
        double[] expected = numericGradient(v -> dot(ReferenceOps.gelu(v), w), x);
        assertClose("geluBackward dinp", expected, ReferenceOps.geluBackward(x, w), ATOL, RTOL);
        // Closed forms: gelu(0) = 0, gelu(x) -> x for large x, -> 0 for very negative x.
        double[] g = ReferenceOps.gelu(new double[] {0, 10, -10});
        assertArrayEquals(new double[] {0, 10, 0}, g, 1e-12);
    }

    @Test
    void shouldMatchFiniteDifferencesForLayerNormBackward() {
        int rows = 7;
        int cols = 13;
        double eps = 1e-5;
        double[] inp = uniformDouble(rnd, rows * cols, -2, 3);
        double[] weight = uniformDouble(rnd, cols, 0.5, 1.5);
        double[] bias = uniformDouble(rnd, cols, -1, 1);
        double[] w = uniformDouble(rnd, rows * cols, -1, 1);
        double[] mean = new double[rows];
        double[] rstd = new double[rows];
        double[] out = ReferenceOps.layerNorm(inp, weight, bias, mean, rstd, rows, cols, eps);
        // Normalized rows: out - bias over weight has mean 0 and (nearly) unit variance.
        for (int r = 0; r < rows; r++) {
            double s = 0;
            double s2 = 0;
            for (int c = 0; c < cols; c++) {
                double xhat = (out[r * cols + c] - bias[c]) / weight[c];
                s += xhat;
                s2 += xhat * xhat;
            }
            assertEquals(0, s / cols, 1e-12);
            assertEquals(1, s2 / cols, 1e-3);
        }
        double[] dinp0 = uniformDouble(rnd, rows * cols, -1, 1);
        double[] dweight0 = uniformDouble(rnd, cols, -1, 1);
        double[] dbias0 = uniformDouble(rnd, cols, -1, 1);
        double[] dinp = dinp0.clone();
        double[] dweight = dweight0.clone();
        double[] dbias = dbias0.clone();
        ReferenceOps.layerNormBackward(dinp, dweight, dbias, w, inp, weight, mean, rstd, rows, cols);
        double[] mu = new double[rows];
        double[] rs = new double[rows];
        assertClose("layerNorm dinp",
            numericGradient(v -> dot(ReferenceOps.layerNorm(v, weight, bias, mu, rs, rows, cols, eps), w), inp),
            minus(dinp, dinp0), ATOL, RTOL);
        assertClose("layerNorm dweight",
            numericGradient(v -> dot(ReferenceOps.layerNorm(inp, v, bias, mu, rs, rows, cols, eps), w), weight),
            minus(dweight, dweight0), ATOL, RTOL);
        assertClose("layerNorm dbias",
            numericGradient(v -> dot(ReferenceOps.layerNorm(inp, weight, v, mu, rs, rows, cols, eps), w), bias),
            minus(dbias, dbias0), ATOL, RTOL);
    }

    @Test
    void shouldMatchFiniteDifferencesForAttentionBackward() {
        int batch = 2;
        int seq = 5;
        int heads = 3;
        int headDim = 4;
        int c = heads * headDim;
        double[] qkv = uniformDouble(rnd, batch * seq * 3 * c, -1.5, 1.5);
        double[] w = uniformDouble(rnd, batch * seq * c, -1, 1);
        double[] att = new double[batch * heads * seq * seq];
        ReferenceAttention.forward(qkv, att, batch, seq, heads, headDim);
        double[] scratch = new double[att.length];
        double[] expected = numericGradient(
            v -> dot(ReferenceAttention.forward(v, scratch, batch, seq, heads, headDim), w), qkv);
        assertClose("attention dqkv", expected, ReferenceAttention.backward(w, qkv, att, batch, seq, heads, headDim),
            ATOL, RTOL);
    }

    @Test
    void shouldProduceCausalRowStochasticProbabilitiesAndCopyVAtFirstPosition() {
        int batch = 2;
        int seq = 5;
        int heads = 3;
        int headDim = 4;
        int c = heads * headDim;
        double[] qkv = uniformDouble(rnd, batch * seq * 3 * c, -1, 1);
        double[] att = new double[batch * heads * seq * seq];
        double[] out = ReferenceAttention.forward(qkv, att, batch, seq, heads, headDim);
        for (int row = 0; row < batch * heads * seq; row++) {
            int i = row % seq;
            double sum = 0;
            for (int j = 0; j < seq; j++) {
                double p = att[row * seq + j];
                if (j > i) {
                    assertEquals(0, p, "masked probability at row " + row + ", col " + j);
                } else {
                    assertTrue(p > 0);
                }
                sum += p;
            }
            assertEquals(1, sum, 1e-12);
        }
        // Position 0 attends only to itself: out = v of position 0, head by head.
        for (int b = 0; b < batch; b++) {
            for (int ch = 0; ch < c; ch++) {
                assertEquals(qkv[b * seq * 3 * c + 2 * c + ch], out[b * seq * c + ch], 1e-15);
            }
        }
    }

    @Test
    void shouldMatchFiniteDifferencesForCrossEntropyBackward() {
        int rows = 7;
        int vocab = 11;
        double scale = 1.0 / rows;
        double[] logits = uniformDouble(rnd, rows * vocab, -3, 3);
        int[] targets = ints(rnd, rows, vocab);
        double[] probs = new double[rows * vocab];
        ReferenceOps.crossEntropy(logits, targets, probs, rows, vocab);
        double[] scratch = new double[probs.length];
        double[] expected = numericGradient(v -> {
            double[] losses = ReferenceOps.crossEntropy(v, targets, scratch, rows, vocab);
            double s = 0;
            for (double l : losses) {
                s += l;
            }
            return s * scale;
        }, logits);
        assertClose("crossEntropy dlogits", expected,
            ReferenceOps.crossEntropyBackward(probs, targets, scale, rows, vocab), ATOL, RTOL);
    }

    @Test
    void shouldGiveLogVocabLossForUniformLogitsAndRejectBadTargets() {
        int vocab = 11;
        double[] logits = new double[2 * vocab];
        java.util.Arrays.fill(logits, 1000); // large and equal: stable softmax must not overflow
        double[] probs = new double[logits.length];
        double[] losses = ReferenceOps.crossEntropy(logits, new int[] {0, 10}, probs, 2, vocab);
        assertArrayEquals(new double[] {Math.log(vocab), Math.log(vocab)}, losses, 1e-12);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> ReferenceOps.crossEntropy(logits, new int[] {0, 11}, probs, 2, vocab));
        assertTrue(e.getMessage().contains("11"), e.getMessage());
    }

    @Test
    void shouldMatchFiniteDifferencesForEmbeddingBackward() {
        int rows = 17;
        int vocab = 11;
        int dim = 5;
        int[] ids = ints(rnd, rows, vocab); // 17 ids over 11 entries: repeats guaranteed
        double[] table = uniformDouble(rnd, vocab * dim, -1, 1);
        double[] prior = uniformDouble(rnd, rows * dim, -1, 1);
        double[] w = uniformDouble(rnd, rows * dim, -1, 1);
        double[] dtable0 = uniformDouble(rnd, vocab * dim, -1, 1);
        double[] dtable = dtable0.clone();
        ReferenceOps.embeddingBackward(dtable, w, ids, rows, dim);
        for (boolean accumulate : new boolean[] {false, true}) {
            double[] expected = numericGradient(v -> {
                double[] out = prior.clone();
                ReferenceOps.embedding(out, ids, v, rows, dim, accumulate);
                return dot(out, w);
            }, table);
            assertClose("embedding dtable (accumulate=" + accumulate + ")", expected, minus(dtable, dtable0),
                ATOL, RTOL);
        }
        double[] out = prior.clone();
        ReferenceOps.embedding(out, ids, table, rows, dim, true);
        assertEquals(prior[3 * dim + 2] + table[ids[3] * dim + 2], out[3 * dim + 2], 1e-15);
    }

    @Test
    void shouldMoveEachParameterByLrOnFirstAdamWStepAndDecayWithZeroGradient() {
        int n = 13;
        double lr = 1e-2;
        double[] param = uniformDouble(rnd, n, -1, 1);
        double[] grad = uniformDouble(rnd, n, -1, 1);
        double[] p = param.clone();
        double[] m = new double[n];
        double[] v = new double[n];
        ReferenceOps.adamw(p, grad, m, v, lr, 0.9, 0.95, 1e-12, 0, 1);
        // t=1: m_hat = g, v_hat = g^2, so the step is lr * g/|g|.
        for (int i = 0; i < n; i++) {
            assertEquals(param[i] - lr * Math.signum(grad[i]), p[i], 1e-9, "param " + i);
            assertEquals(0.1 * grad[i], m[i], 1e-15);
            assertEquals(0.05 * grad[i] * grad[i], v[i], 1e-15);
        }
        // Zero gradient, zero moments: only the decoupled decay acts.
        double[] q = param.clone();
        ReferenceOps.adamw(q, new double[n], new double[n], new double[n], lr, 0.9, 0.95, 1e-8, 0.1, 3);
        for (int i = 0; i < n; i++) {
            assertEquals(param[i] * (1 - lr * 0.1), q[i], 1e-15);
        }
    }

    @Test
    void shouldComputeBlasLikeClosedForms() {
        double[] x = {1, -2, 3};
        double[] y = {10, 20, 30};
        ReferenceOps.axpy(2, x, y);
        assertArrayEquals(new double[] {12, 16, 36}, y, 0);
        assertArrayEquals(new double[] {-0.5, 1, -1.5}, ReferenceOps.scale(x, -0.5), 0);
        assertArrayEquals(new double[] {13, 14, 39}, ReferenceOps.add(x, y), 0);
        assertEquals(14, ReferenceOps.sumOfSquares(x), 0);
    }
}
