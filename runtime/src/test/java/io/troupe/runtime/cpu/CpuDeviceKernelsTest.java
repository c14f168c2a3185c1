package io.troupe.runtime.cpu;

import static io.troupe.runtime.testkit.RandomTensors.ints;
import static io.troupe.runtime.testkit.RandomTensors.normal;
import static io.troupe.runtime.testkit.RandomTensors.toDouble;
import static io.troupe.runtime.testkit.RandomTensors.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.ReferenceAttention;
import io.troupe.runtime.testkit.ReferenceOps;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The transformer kernels of {@link CpuDevice} (bias, GELU, LayerNorm, attention, cross-entropy,
 * embedding), forward and backward, against {@link ReferenceOps} and {@link ReferenceAttention} on
 * random inputs of odd shapes, with one and two threads. Outputs that must be overwritten start
 * filled with garbage; gradients that must accumulate start non-zero.
 */
class CpuDeviceKernelsTest extends CpuDeviceTestBase {

    private static double[] plus(float[] base, double[] delta) {
        double[] out = toDouble(base);
        for (int i = 0; i < out.length; i++) {
            out[i] += delta[i];
        }
        return out;
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceBiasAddAndAccumulatingBiasBackward(int threads) {
        open(threads);
        for (int[] s : new int[][] {{67, 129}, {1031, 33}}) {
            int rows = s[0];
            int cols = s[1];
            float[] x = uniform(rnd, rows * cols, -1, 1);
            float[] bias = uniform(rnd, cols, -1, 1);
            Tensor out = tensor(x, rows * cols);
            device.biasAdd(out, tensor(bias, cols), rows, cols);
            double[] expected = toDouble(x);
            ReferenceOps.biasAdd(expected, toDouble(bias), rows, cols);
            check("biasAdd rows=" + rows + " cols=" + cols, expected, out, 1e-6, 1e-6);

            float[] dout = uniform(rnd, rows * cols, -1, 1);
            float[] dbias0 = uniform(rnd, cols, -1, 1);
            Tensor dbias = tensor(dbias0, cols);
            device.biasBackward(dbias, tensor(dout, rows * cols), rows, cols);
            double[] expectedDbias = toDouble(dbias0);
            ReferenceOps.biasBackward(expectedDbias, toDouble(dout), rows, cols);
            check("biasBackward (+=) rows=" + rows + " cols=" + cols, expectedDbias, dbias, 1e-5, 1e-5);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceGeluInPlaceAndOverwritingBackward(int threads) {
        open(threads);
        int n = 40009;
        float[] x = normal(rnd, n, 0, 3);
        Tensor inp = tensor(x, n);
        Tensor out = tensor(uniform(rnd, n, -9, 9), n);
        device.gelu(inp, out, n);
        double[] expected = ReferenceOps.gelu(toDouble(x));
        check("gelu n=" + n, expected, out, 1e-6, 1e-5);
        Tensor inPlace = tensor(x, n);
        device.gelu(inPlace, inPlace, n);
        check("gelu in place n=" + n, expected, inPlace, 1e-6, 1e-5);

        float[] dout = uniform(rnd, n, -1, 1);
        Tensor dinp = tensor(uniform(rnd, n, -9, 9), n); // garbage: must be overwritten
        device.geluBackward(inp, tensor(dout, n), dinp, n);
        check("geluBackward (overwrite) n=" + n,
            ReferenceOps.geluBackward(toDouble(x), toDouble(dout)), dinp, 1e-6, 1e-5);
    }

    /** Small inputs with a few tails, and far tails, where u overflows float and e^(-2u) is clamped. */
    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceGeluWhereOnlySomeBlocksHaveTails(int threads) {
        open(threads);
        int n = 40009;
        float[] x = normal(rnd, n, 0, 0.3);
        x[5] = -4.5f;
        x[5000] = 2.5f;
        x[30001] = -1.9f;
        x[n - 1] = 7f;
        // Far tails, where u overflows float: the clamped exponent must still give gelu(x) = x or 0.
        x[7] = 1e10f;
        x[8] = -1e10f;
        x[9] = 50f;
        x[10] = -50f;
        Tensor inp = tensor(x, n);
        Tensor out = tensor(uniform(rnd, n, -9, 9), n);
        device.gelu(inp, out, n);
        check("gelu (few tails) n=" + n, ReferenceOps.gelu(toDouble(x)), out, 1e-6, 1e-5);
        float[] dout = uniform(rnd, n, -1, 1);
        Tensor dinp = tensor(uniform(rnd, n, -9, 9), n);
        device.geluBackward(inp, tensor(dout, n), dinp, n);
        check("geluBackward (few tails) n=" + n,
            ReferenceOps.geluBackward(toDouble(x), toDouble(dout)), dinp, 1e-6, 1e-5);
    }

    /** The fused bias + GELU: bitwise the unfused bias add then GELU, and close to the reference. */
    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchUnfusedBiasAddThenGeluBitwise(int threads) {
        open(threads);
        for (int[] s : new int[][] {{67, 129}, {3, 2500}, {1031, 33}}) {
            int rows = s[0];
            int cols = s[1];
            int n = rows * cols;
            float[] x = normal(rnd, n, 0, 1);
            float[] bias = uniform(rnd, cols, -1, 1);
            Tensor preact = tensor(x, n);
            Tensor out = tensor(uniform(rnd, n, -9, 9), n);
            device.biasAddGelu(preact, tensor(bias, cols), out, rows, cols);
            Tensor preact2 = tensor(x, n);
            Tensor out2 = tensor(uniform(rnd, n, -9, 9), n);
            device.biasAdd(preact2, tensor(bias, cols), rows, cols);
            device.gelu(preact2, out2, n);
            String shape = " rows=" + rows + " cols=" + cols;
            float[] a = new float[n];
            float[] b = new float[n];
            device.copyToHost(preact, a);
            device.copyToHost(preact2, b);
            assertArrayEquals(b, a, "biasAddGelu preact" + shape);
            device.copyToHost(out, a);
            device.copyToHost(out2, b);
            assertArrayEquals(b, a, "biasAddGelu out" + shape);
            double[] expected = toDouble(x);
            ReferenceOps.biasAdd(expected, toDouble(bias), rows, cols);
            check("biasAddGelu out vs reference" + shape, ReferenceOps.gelu(expected), out, 1e-5, 1e-5);
        }
    }

    /**
     * The fused GELU backward + bias gradient: bitwise the unfused GELU backward then the bias
     * backward (tails included, rows not a multiple of the row block, rows wider than a staging
     * block, the gradient written over dout), and close to the reference.
     */
    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchUnfusedGeluBackwardThenBiasBackwardBitwise(int threads) {
        open(threads);
        for (int[] s : new int[][] {{67, 129}, {3, 2500}, {1031, 33}, {200, 512}}) {
            int rows = s[0];
            int cols = s[1];
            int n = rows * cols;
            String shape = " rows=" + rows + " cols=" + cols;
            float[] x = normal(rnd, n, 0, 1.5);
            float[] dout = uniform(rnd, n, -1, 1);
            float[] dbias0 = uniform(rnd, cols, -1, 1);
            Tensor inp = tensor(x, n);
            Tensor dinp = tensor(uniform(rnd, n, -9, 9), n);
            Tensor dbias = tensor(dbias0, cols);
            device.geluBackwardBias(inp, tensor(dout, n), dinp, dbias, rows, cols);
            Tensor dinp2 = tensor(uniform(rnd, n, -9, 9), n);
            Tensor dbias2 = tensor(dbias0, cols);
            device.geluBackward(inp, tensor(dout, n), dinp2, n);
            device.biasBackward(dbias2, dinp2, rows, cols);
            float[] a = new float[n];
            float[] b = new float[n];
            device.copyToHost(dinp, a);
            device.copyToHost(dinp2, b);
            assertArrayEquals(b, a, "geluBackwardBias dpreact" + shape);
            float[] da = new float[cols];
            float[] db = new float[cols];
            device.copyToHost(dbias, da);
            device.copyToHost(dbias2, db);
            assertArrayEquals(db, da, "geluBackwardBias dbias" + shape);

            Tensor inPlace = tensor(dout, n);
            Tensor dbias3 = tensor(dbias0, cols);
            device.geluBackwardBias(inp, inPlace, inPlace, dbias3, rows, cols);
            device.copyToHost(inPlace, a);
            assertArrayEquals(b, a, "geluBackwardBias dpreact over dout" + shape);
            device.copyToHost(dbias3, da);
            assertArrayEquals(db, da, "geluBackwardBias dbias (dpreact over dout)" + shape);

            double[] expected = ReferenceOps.geluBackward(toDouble(x), toDouble(dout));
            check("geluBackwardBias vs reference" + shape, expected, dinp, 1e-6, 1e-5);
            double[] expectedDbias = toDouble(dbias0);
            ReferenceOps.biasBackward(expectedDbias, expected, rows, cols);
            check("geluBackwardBias dbias vs reference" + shape, expectedDbias, dbias, 1e-4, 1e-4);
        }
    }

    /** The fused residual + LayerNorm: bitwise the add then the LayerNorm, and close to the reference. */
    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchUnfusedAddThenLayerNormBitwise(int threads) {
        open(threads);
        for (int[] s : new int[][] {{7, 13}, {131, 129}, {64, 128}}) {
            int rows = s[0];
            int cols = s[1];
            int n = rows * cols;
            String shape = " rows=" + rows + " cols=" + cols;
            float[] xa = normal(rnd, n, 0.5, 2);
            float[] xb = normal(rnd, n, 0, 1);
            float[] w = uniform(rnd, cols, 0.5, 1.5);
            float[] b = uniform(rnd, cols, -0.5, 0.5);
            Tensor[] fused = {tensor(xa, n), tensor(uniform(rnd, n, -9, 9), n), tensor(new float[rows], rows),
                tensor(new float[rows], rows)};
            device.residualLayerNorm(fused[0], tensor(xb, n), fused[0], tensor(w, cols), tensor(b, cols), fused[1],
                fused[2], fused[3], rows, cols, 1e-5f);
            Tensor[] plain = {tensor(xa, n), tensor(uniform(rnd, n, -9, 9), n), tensor(new float[rows], rows),
                tensor(new float[rows], rows)};
            device.add(plain[0], tensor(xb, n), plain[0]);
            device.layerNorm(plain[0], tensor(w, cols), tensor(b, cols), plain[1], plain[2], plain[3], rows, cols,
                1e-5f);
            String[] names = {"sum", "out", "mean", "rstd"};
            for (int i = 0; i < names.length; i++) {
                float[] got = new float[(int) fused[i].numel()];
                float[] want = new float[got.length];
                device.copyToHost(fused[i], got);
                device.copyToHost(plain[i], want);
                assertArrayEquals(want, got, "residualLayerNorm " + names[i] + shape);
            }
            double[] sum = toDouble(xa);
            double[] db = toDouble(xb);
            for (int i = 0; i < n; i++) {
                sum[i] += db[i];
            }
            double[] rMean = new double[rows];
            double[] rRstd = new double[rows];
            double[] expected = ReferenceOps.layerNorm(sum, toDouble(w), toDouble(b), rMean, rRstd, rows, cols, 1e-5f);
            check("residualLayerNorm out vs reference" + shape, expected, fused[1], 1e-5, 1e-5);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceLayerNormAndAccumulatingBackward(int threads) {
        open(threads);
        for (int[] s : new int[][] {{7, 13}, {131, 129}}) {
            int rows = s[0];
            int cols = s[1];
            String shape = " rows=" + rows + " cols=" + cols;
            float eps = 1e-5f;
            float[] x = normal(rnd, rows * cols, 0.5, 2);
            float[] w = uniform(rnd, cols, 0.5, 1.5);
            float[] b = uniform(rnd, cols, -0.5, 0.5);
            Tensor inp = tensor(x, rows * cols);
            Tensor weight = tensor(w, cols);
            Tensor bias = tensor(b, cols);
            Tensor out = tensor(uniform(rnd, rows * cols, -9, 9), rows * cols);
            Tensor mean = tensor(uniform(rnd, rows, -9, 9), rows);
            Tensor rstd = tensor(uniform(rnd, rows, -9, 9), rows);
            device.layerNorm(inp, weight, bias, out, mean, rstd, rows, cols, eps);
            double[] rMean = new double[rows];
            double[] rRstd = new double[rows];
            double[] expected = ReferenceOps.layerNorm(toDouble(x), toDouble(w), toDouble(b),
                rMean, rRstd, rows, cols, eps);
            check("layerNorm out" + shape, expected, out, 1e-5, 1e-5);
            check("layerNorm mean" + shape, rMean, mean, 1e-6, 1e-5);
            check("layerNorm rstd" + shape, rRstd, rstd, 1e-6, 1e-5);

            float[] dout = uniform(rnd, rows * cols, -1, 1);
            float[] dinp0 = uniform(rnd, rows * cols, -1, 1);
            float[] dw0 = uniform(rnd, cols, -1, 1);
            float[] db0 = uniform(rnd, cols, -1, 1);
            Tensor dinp = tensor(dinp0, rows * cols);
            Tensor dweight = tensor(dw0, cols);
            Tensor dbias = tensor(db0, cols);
            device.layerNormBackward(dinp, dweight, dbias, tensor(dout, rows * cols),
                inp, weight, mean, rstd, rows, cols);
            double[] eDinp = toDouble(dinp0);
            double[] eDw = toDouble(dw0);
            double[] eDb = toDouble(db0);
            ReferenceOps.layerNormBackward(eDinp, eDw, eDb, toDouble(dout), toDouble(x), toDouble(w), rMean, rRstd,
                rows, cols);
            check("layerNormBackward dinp (+=)" + shape, eDinp, dinp, 1e-5, 1e-5);
            check("layerNormBackward dweight (+=)" + shape, eDw, dweight, 1e-5, 1e-5);
            check("layerNormBackward dbias (+=)" + shape, eDb, dbias, 1e-5, 1e-5);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceAttentionAndOverwritingBackward(int threads) {
        open(threads);
        for (int[] s : new int[][] {{3, 17, 2, 8}, {2, 64, 4, 16}}) {
            int batch = s[0];
            int seq = s[1];
            int heads = s[2];
            int headDim = s[3];
            int c = heads * headDim;
            String shape = String.format(" B=%d T=%d NH=%d hd=%d", batch, seq, heads, headDim);
            float[] qkv = uniform(rnd, batch * seq * 3 * c, -1.5, 1.5);
            Tensor tqkv = tensor(qkv, batch * seq * 3 * c);
            Tensor out = tensor(uniform(rnd, batch * seq * c, -9, 9), batch * seq * c);
            // Garbage in saved: every entry, masked ones included, must be written.
            Tensor saved = tensor(uniform(rnd, batch * heads * seq * seq, -9, 9), batch * heads * seq * seq);
            device.attention(tqkv, out, saved, batch, seq, heads, headDim);
            double[] att = new double[batch * heads * seq * seq];
            double[] expected = ReferenceAttention.forward(toDouble(qkv), att, batch, seq, heads, headDim);
            check("attention out" + shape, expected, out, 1e-5, 1e-5);
            check("attention saved probabilities" + shape, att, saved, 1e-6, 1e-5);

            float[] dout = uniform(rnd, batch * seq * c, -1, 1);
            Tensor dqkv = tensor(uniform(rnd, batch * seq * 3 * c, -9, 9), batch * seq * 3 * c); // overwritten
            device.attentionBackward(dqkv, tensor(dout, batch * seq * c), tqkv, saved, batch, seq, heads, headDim);
            check("attentionBackward dqkv (overwrite)" + shape,
                ReferenceAttention.backward(toDouble(dout), toDouble(qkv), att, batch, seq, heads, headDim),
                dqkv, 1e-5, 1e-5);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceCrossEntropyAndOverwritingBackward(int threads) {
        open(threads);
        int rows = 67;
        int vocab = 257;
        float[] logits = normal(rnd, rows * vocab, 0, 3);
        for (int v = 0; v < vocab; v++) {
            logits[5 * vocab + v] += 80; // exp(80+) overflows float: the softmax must subtract the max
        }
        int[] targets = ints(rnd, rows, vocab);
        targets[0] = 0;
        targets[1] = vocab - 1;
        Tensor tl = tensor(logits, rows * vocab);
        Tensor tt = intTensor(targets, rows);
        Tensor probs = tensor(uniform(rnd, rows * vocab, -9, 9), rows * vocab);
        Tensor losses = tensor(uniform(rnd, rows, -9, 9), rows);
        device.crossEntropy(tl, tt, probs, losses, rows, vocab);
        double[] rProbs = new double[rows * vocab];
        double[] rLosses = ReferenceOps.crossEntropy(toDouble(logits), targets, rProbs, rows, vocab);
        check("crossEntropy probs rows=" + rows + " vocab=" + vocab, rProbs, probs, 1e-8, 1e-5);
        check("crossEntropy losses rows=" + rows + " vocab=" + vocab, rLosses, losses, 1e-5, 1e-5);

        float scale = 1f / rows;
        Tensor dlogits = tensor(uniform(rnd, rows * vocab, -9, 9), rows * vocab);
        device.crossEntropyBackward(dlogits, probs, tt, scale, rows, vocab);
        check("crossEntropyBackward dlogits (overwrite) rows=" + rows + " vocab=" + vocab,
            ReferenceOps.crossEntropyBackward(rProbs, targets, scale, rows, vocab), dlogits, 1e-8, 1e-5);
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldRejectCrossEntropyTargetOutsideVocabNamingIt(int threads) {
        open(threads);
        int rows = 7;
        int vocab = 11;
        Tensor logits = tensor(uniform(rnd, rows * vocab, -1, 1), rows * vocab);
        Tensor probs = zeros(rows * vocab);
        Tensor losses = zeros(rows);
        Tensor dlogits = zeros(rows * vocab);
        for (int bad : new int[] {vocab, -1, 1234567}) {
            int[] targets = ints(rnd, rows, vocab);
            targets[4] = bad;
            Tensor tt = intTensor(targets, rows);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> device.crossEntropy(logits, tt, probs, losses, rows, vocab));
            System.out.println("crossEntropy target=" + bad + ": " + e.getMessage());
            assertTrue(e.getMessage().contains(Integer.toString(bad)), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                () -> device.crossEntropyBackward(dlogits, probs, tt, 1f, rows, vocab));
            assertTrue(e.getMessage().contains(Integer.toString(bad)), e.getMessage());
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceEmbeddingAndScatterAddBackward(int threads) {
        open(threads);
        int rows = 131; // 131 ids over 11 entries: many repeats in the scatter-add
        int vocab = 11;
        int dim = 129;
        int[] ids = ints(rnd, rows, vocab);
        float[] table = uniform(rnd, vocab * dim, -1, 1);
        Tensor tids = intTensor(ids, rows);
        Tensor ttable = tensor(table, vocab * dim);
        for (boolean accumulate : new boolean[] {false, true}) {
            float[] out0 = uniform(rnd, rows * dim, -1, 1);
            Tensor out = tensor(out0, rows * dim);
            device.embedding(out, tids, ttable, rows, dim, accumulate);
            double[] expected = toDouble(out0);
            ReferenceOps.embedding(expected, ids, toDouble(table), rows, dim, accumulate);
            check("embedding accumulate=" + accumulate + " rows=" + rows + " dim=" + dim, expected, out, 1e-6, 1e-6);
        }
        float[] dout = uniform(rnd, rows * dim, -1, 1);
        float[] dtable0 = uniform(rnd, vocab * dim, -1, 1);
        Tensor dtable = tensor(dtable0, vocab * dim);
        device.embeddingBackward(dtable, tensor(dout, rows * dim), tids, rows, dim);
        double[] delta = new double[vocab * dim];
        ReferenceOps.embeddingBackward(delta, toDouble(dout), ids, rows, dim);
        check("embeddingBackward (+=) rows=" + rows + " vocab=" + vocab + " dim=" + dim, plus(dtable0, delta), dtable,
            1e-5, 1e-5);
    }
}
