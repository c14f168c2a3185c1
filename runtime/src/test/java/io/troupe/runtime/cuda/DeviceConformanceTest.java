package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.cuda.TwinTensors.Twin;
import io.troupe.runtime.device.AdamWStep;
import io.troupe.runtime.device.Device;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every op of {@link Device}, forward and backward, on a device under test against the CPU backend,
 * on fresh random inputs (seeded per test), outputs poisoned with NaN first. Float32 tolerance:
 * {@code |diff| <= 1e-4 + 1e-4 |ref|} unless a test says otherwise.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(120)
abstract class DeviceConformanceTest {
    static final double ATOL = 1e-4;
    static final double RTOL = 1e-4;

    private CpuDevice ref;
    private Device dut;
    TwinTensors tw;

    /**
     * Opens the device under test, or returns null when this machine has none; each test is then
     * skipped, visibly, with {@link #skipReason()}.
     */
    abstract Device openDeviceUnderTest();

    /** Why {@link #openDeviceUnderTest()} returned null. */
    String skipReason() {
        return "device under test unavailable";
    }

    /** True when the device's attention leaves softmax probabilities in {@code saved} (as the CPU does). */
    boolean savesProbabilities() {
        return true;
    }

    @BeforeAll
    void openDevices() {
        dut = openDeviceUnderTest();
        ref = new CpuDevice(2);
    }

    @AfterAll
    void closeDevices() {
        if (dut != null) {
            dut.close();
        }
        if (ref != null) {
            ref.close();
        }
    }

    @BeforeEach
    void newTwins(TestInfo info) {
        assumeTrue(dut != null, skipReason());
        tw = new TwinTensors(ref, dut, info.getDisplayName().hashCode() * 31L + 17);
    }

    @AfterEach
    void closeTwins() {
        if (tw == null) {
            return;
        }
        dut.synchronize();
        tw.closeTensors();
        tw = null;
    }

    // ---------------------------------------------------------------- gemm

    @Test
    void shouldMatchGemmForEveryTransposeWithAlphaAndBeta() {
        int m = 67;
        int n = 45;
        int k = 33;
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                boolean transA = ta == 1;
                boolean transB = tb == 1;
                Twin a = tw.random(transA ? k : m, transA ? m : k);
                Twin b = tw.random(transB ? n : k, transB ? k : n);
                Twin c = tw.random(m, n);
                tw.ref.matmul(transA, transB, m, n, k, 0.7f, a.ref(), b.ref(), 0.3f, c.ref());
                tw.dut.matmul(transA, transB, m, n, k, 0.7f, a.dut(), b.dut(), 0.3f, c.dut());
                tw.assertClose("gemm trans=" + transA + "," + transB + " beta=0.3", c, ATOL, RTOL);
            }
        }
    }

    @Test
    void shouldIgnoreGarbageInCWhenBetaIsZero() {
        Twin a = tw.random(130, 70);
        Twin b = tw.random(70, 260);
        Twin c = tw.poisoned(130, 260);
        tw.ref.matmul(false, false, 130, 260, 70, 1f, a.ref(), b.ref(), 0f, c.ref());
        tw.dut.matmul(false, false, 130, 260, 70, 1f, a.dut(), b.dut(), 0f, c.dut());
        tw.assertClose("gemm beta=0 over NaN C (multi-tile)", c, ATOL, RTOL);
    }

    @Test
    void shouldMatchBatchedGemmWithStridesAndPaddedRows() {
        int m = 20;
        int n = 17;
        int k = 24;
        int batch = 3;
        int lda = k + 5;
        int ldb = k + 3;   // B transposed: stored (n, k)
        int ldc = n + 2;
        Twin a = tw.random(batch, m, lda);
        Twin b = tw.random(batch, n, ldb);
        Twin c = tw.random(batch, m, ldc);
        tw.ref.gemmBatched(false, true, m, n, k, 1.5f, a.ref(), lda, (long) m * lda, b.ref(), ldb, (long) n * ldb,
            1f, c.ref(), ldc, (long) m * ldc, batch);
        tw.dut.gemmBatched(false, true, m, n, k, 1.5f, a.dut(), lda, (long) m * lda, b.dut(), ldb, (long) n * ldb,
            1f, c.dut(), ldc, (long) m * ldc, batch);
        tw.assertClose("gemmBatched strided, padded", c, ATOL, RTOL);
    }

    // ---------------------------------------------------------------- BLAS-like

    @Test
    void shouldMatchAxpyScaleCopyFillAdd() {
        int n = 5003;
        Twin x = tw.random(n);
        Twin y = tw.random(n);
        tw.ref.axpy(-0.75f, x.ref(), y.ref());
        tw.dut.axpy(-0.75f, x.dut(), y.dut());
        tw.assertClose("axpy", y, 1e-6, 1e-6);   // a fused multiply-add may round once less
        tw.dut.copyFromHost(y.ref().toFloatArray(), y.dut());   // the ops below start from equal values
        tw.ref.scale(y.ref(), 3.25f);
        tw.dut.scale(y.dut(), 3.25f);
        tw.assertClose("scale", y, 0, 1e-6);
        Twin z = tw.poisoned(n);
        tw.ref.copy(y.ref(), z.ref());
        tw.dut.copy(y.dut(), z.dut());
        tw.assertClose("copy", z, 0, 0);
        Twin sum = tw.poisoned(n);
        tw.ref.add(x.ref(), z.ref(), sum.ref());
        tw.dut.add(x.dut(), z.dut(), sum.dut());
        tw.assertClose("add", sum, 0, 1e-6);
        tw.ref.add(sum.ref(), x.ref(), sum.ref());
        tw.dut.add(sum.dut(), x.dut(), sum.dut());
        tw.assertClose("add in place (out aliases a)", sum, 0, 1e-6);
        tw.ref.fill(z.ref(), 2.5f);
        tw.dut.fill(z.dut(), 2.5f);
        tw.assertClose("fill", z, 0, 0);
    }

    /**
     * The element-wise ops of the 1-D launches at sizes around one block of threads: below it (the
     * grid is one partial block), exactly one block, and one element past it (a second block).
     */
    @ParameterizedTest(name = "n = {0}")
    @ValueSource(ints = {1, 7, 255, 256, 257})
    void shouldMatchElementWiseOpsAroundOneBlock(int n) {
        String tag = " n=" + n;
        Twin x = tw.random(n);
        Twin y = tw.random(n);
        tw.ref.axpy(-0.75f, x.ref(), y.ref());
        tw.dut.axpy(-0.75f, x.dut(), y.dut());
        tw.assertClose("axpy" + tag, y, 1e-6, 1e-6);
        tw.dut.copyFromHost(y.ref().toFloatArray(), y.dut());
        tw.ref.scale(y.ref(), 3.25f);
        tw.dut.scale(y.dut(), 3.25f);
        tw.assertClose("scale" + tag, y, 0, 1e-6);
        Twin z = tw.poisoned(n);
        tw.ref.copy(y.ref(), z.ref());
        tw.dut.copy(y.dut(), z.dut());
        tw.assertClose("copy" + tag, z, 0, 0);
        Twin sum = tw.poisoned(n);
        tw.ref.add(x.ref(), z.ref(), sum.ref());
        tw.dut.add(x.dut(), z.dut(), sum.dut());
        tw.assertClose("add" + tag, sum, 0, 1e-6);
        tw.ref.fill(z.ref(), 2.5f);
        tw.dut.fill(z.dut(), 2.5f);
        tw.assertClose("fill" + tag, z, 0, 0);

        Twin inp = tw.of(tw.uniform(n, -5f, 5f), n);
        Twin out = tw.poisoned(n);
        tw.ref.gelu(inp.ref(), out.ref(), n);
        tw.dut.gelu(inp.dut(), out.dut(), n);
        tw.assertClose("gelu" + tag, out, 1e-6, 1e-5);
        Twin dout = tw.random(n);
        Twin dinp = tw.poisoned(n);
        tw.ref.geluBackward(inp.ref(), dout.ref(), dinp.ref(), n);
        tw.dut.geluBackward(inp.dut(), dout.dut(), dinp.dut(), n);
        tw.assertClose("geluBackward" + tag, dinp, 1e-6, 1e-5);

        // One row of n columns: the bias, cross-entropy and embedding kernels cover rows * cols elements.
        Twin bias = tw.random(n);
        tw.ref.biasAdd(x.ref(), bias.ref(), 1, n);
        tw.dut.biasAdd(x.dut(), bias.dut(), 1, n);
        tw.assertClose("biasAdd 1x" + n, x, ATOL, RTOL);
        Twin probs = tw.of(tw.uniform(n, 0f, 1f), 1, n);
        Twin target = tw.ids(tw.ints(1, n));
        Twin dlogits = tw.poisoned(1, n);
        tw.ref.crossEntropyBackward(dlogits.ref(), probs.ref(), target.ref(), 0.5f, 1, n);
        tw.dut.crossEntropyBackward(dlogits.dut(), probs.dut(), target.dut(), 0.5f, 1, n);
        tw.assertClose("crossEntropyBackward 1x" + n, dlogits, 1e-7, 1e-6);
        Twin table = tw.random(3, n);
        Twin id = tw.ids(tw.ints(1, 3));
        Twin row = tw.poisoned(1, n);
        tw.ref.embedding(row.ref(), id.ref(), table.ref(), 1, n, false);
        tw.dut.embedding(row.dut(), id.dut(), table.dut(), 1, n, false);
        tw.assertClose("embedding 1x" + n, row, 0, 0);

        Twin p = tw.random(n);
        Twin m = tw.of(new float[n], n);
        Twin v = tw.of(new float[n], n);
        Twin g = tw.random(n);
        AdamWStep step = new AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1);
        tw.ref.adamw(p.ref(), g.ref(), m.ref(), v.ref(), step);
        tw.dut.adamw(p.dut(), g.dut(), m.dut(), v.dut(), step);
        tw.assertClose("adamw param" + tag, p, 1e-6, 1e-5);
        tw.assertClose("adamw m" + tag, m, 1e-7, 1e-5);
        tw.assertClose("adamw v" + tag, v, 1e-8, 1e-5);
    }

    @Test
    void shouldMatchSumOfSquaresInDoublePrecision() {
        Twin x = tw.of(tw.uniform(100_003, -3f, 3f), 100_003);
        double expected = tw.ref.sumOfSquares(x.ref());
        double actual = tw.dut.sumOfSquares(x.dut());
        System.out.printf("sumOfSquares: ref %.12g, dut %.12g%n", expected, actual);
        assertEquals(expected, actual, 1e-9 * expected);
        assertEquals(actual, tw.dut.sumOfSquares(x.dut()), 0.0, "sumOfSquares must be repeatable bit for bit");
    }

    // ---------------------------------------------------------------- transformer kernels

    @Test
    void shouldMatchBiasForwardAndBackward() {
        int rows = 37;
        int cols = 70;
        Twin out = tw.random(rows, cols);
        Twin bias = tw.random(cols);
        tw.ref.biasAdd(out.ref(), bias.ref(), rows, cols);
        tw.dut.biasAdd(out.dut(), bias.dut(), rows, cols);
        tw.assertClose("biasAdd", out, ATOL, RTOL);
        Twin dbias = tw.random(cols);   // accumulates
        tw.ref.biasBackward(dbias.ref(), out.ref(), rows, cols);
        tw.dut.biasBackward(dbias.dut(), out.dut(), rows, cols);
        tw.assertClose("biasBackward (accumulate)", dbias, ATOL, RTOL);
    }

    @Test
    void shouldMatchGeluForwardAndBackward() {
        int n = 4099;
        Twin inp = tw.of(tw.uniform(n, -5f, 5f), n);
        Twin out = tw.poisoned(n);
        tw.ref.gelu(inp.ref(), out.ref(), n);
        tw.dut.gelu(inp.dut(), out.dut(), n);
        tw.assertClose("gelu", out, 1e-6, 1e-5);
        Twin dout = tw.random(n);
        Twin dinp = tw.poisoned(n);
        tw.ref.geluBackward(inp.ref(), dout.ref(), dinp.ref(), n);
        tw.dut.geluBackward(inp.dut(), dout.dut(), dinp.dut(), n);
        tw.assertClose("geluBackward", dinp, 1e-6, 1e-5);
        tw.ref.gelu(inp.ref(), inp.ref(), n);
        tw.dut.gelu(inp.dut(), inp.dut(), n);
        tw.assertClose("gelu in place", inp, 1e-6, 1e-5);
    }

    @Test
    void shouldMatchLayerNormForwardAndBackward() {
        int rows = 19;
        int cols = 96;
        Twin inp = tw.of(tw.uniform(rows * cols, -2f, 3f), rows, cols);
        Twin w = tw.random(cols);
        Twin b = tw.random(cols);
        Twin out = tw.poisoned(rows, cols);
        Twin mean = tw.poisoned(rows);
        Twin rstd = tw.poisoned(rows);
        tw.ref.layerNorm(inp.ref(), w.ref(), b.ref(), out.ref(), mean.ref(), rstd.ref(), rows, cols, 1e-5f);
        tw.dut.layerNorm(inp.dut(), w.dut(), b.dut(), out.dut(), mean.dut(), rstd.dut(), rows, cols, 1e-5f);
        tw.assertClose("layerNorm out", out, ATOL, RTOL);
        tw.assertClose("layerNorm mean", mean, ATOL, RTOL);
        tw.assertClose("layerNorm rstd", rstd, ATOL, RTOL);
        Twin dout = tw.random(rows, cols);
        Twin dinp = tw.random(rows, cols);   // all three accumulate
        Twin dw = tw.random(cols);
        Twin db = tw.random(cols);
        tw.ref.layerNormBackward(dinp.ref(), dw.ref(), db.ref(), dout.ref(), inp.ref(), w.ref(), mean.ref(), rstd.ref(),
            rows, cols);
        tw.dut.layerNormBackward(dinp.dut(), dw.dut(), db.dut(), dout.dut(), inp.dut(), w.dut(), mean.dut(), rstd.dut(),
            rows, cols);
        tw.assertClose("layerNormBackward dinp", dinp, ATOL, RTOL);
        tw.assertClose("layerNormBackward dweight", dw, ATOL, RTOL);
        tw.assertClose("layerNormBackward dbias", db, ATOL, RTOL);
    }

    // ------------------------------------------------------- fused ops: device under test fused, reference unfused

    @Test
    void shouldMatchFusedBiasGeluAgainstBiasAddThenGelu() {
        int rows = 300;   // > 256 rows: two partials of the bias gradient on the GPU
        int cols = 300;   // > 256 columns: two blocks along a row
        long n = (long) rows * cols;
        Twin preact = tw.of(tw.uniform(rows * cols, -4f, 4f), rows, cols);
        Twin bias = tw.random(cols);
        Twin out = tw.poisoned(rows, cols);
        tw.ref.biasAdd(preact.ref(), bias.ref(), rows, cols);
        tw.ref.gelu(preact.ref(), out.ref(), n);
        tw.dut.biasAddGelu(preact.dut(), bias.dut(), out.dut(), rows, cols);
        tw.assertClose("biasAddGelu preact (bias added)", preact, 1e-6, 1e-6);
        tw.assertClose("biasAddGelu out", out, 1e-6, 1e-5);
        Twin dout = tw.random(rows, cols);
        Twin dpre = tw.poisoned(rows, cols);
        Twin dbias = tw.random(cols);   // accumulates
        tw.ref.geluBackward(preact.ref(), dout.ref(), dpre.ref(), n);
        tw.ref.biasBackward(dbias.ref(), dpre.ref(), rows, cols);
        tw.dut.geluBackwardBias(preact.dut(), dout.dut(), dpre.dut(), dbias.dut(), rows, cols);
        tw.assertClose("geluBackwardBias dpreact", dpre, 1e-6, 1e-5);
        tw.assertClose("geluBackwardBias dbias", dbias, ATOL, RTOL);
        // In place: the gradient overwrites dout.
        tw.ref.geluBackward(preact.ref(), dout.ref(), dout.ref(), n);
        tw.ref.biasBackward(dbias.ref(), dout.ref(), rows, cols);
        tw.dut.geluBackwardBias(preact.dut(), dout.dut(), dout.dut(), dbias.dut(), rows, cols);
        tw.assertClose("geluBackwardBias in place dpreact", dout, 1e-6, 1e-5);
        tw.assertClose("geluBackwardBias in place dbias", dbias, ATOL, RTOL);
    }

    @Test
    void shouldMatchFusedResidualLayerNormAgainstAddThenLayerNorm() {
        checkResidualLayerNorm(70, 96, false);    // 70 rows: three row blocks of the GPU backward, the last partial
        checkResidualLayerNorm(33, 300, true);    // > 256 columns; sum and dsum in place
    }

    void checkResidualLayerNorm(int rows, int cols, boolean inPlace) {
        String tag = " " + rows + "x" + cols + (inPlace ? " in place" : "");
        Twin a = tw.of(tw.uniform(rows * cols, -2f, 3f), rows, cols);
        Twin b = tw.random(rows, cols);
        Twin w = tw.random(cols);
        Twin bias = tw.random(cols);
        Twin sum = inPlace ? a : tw.poisoned(rows, cols);
        Twin out = tw.poisoned(rows, cols);
        Twin mean = tw.poisoned(rows);
        Twin rstd = tw.poisoned(rows);
        tw.ref.add(a.ref(), b.ref(), sum.ref());
        tw.ref.layerNorm(sum.ref(), w.ref(), bias.ref(), out.ref(), mean.ref(), rstd.ref(), rows, cols, 1e-5f);
        tw.dut.residualLayerNorm(a.dut(), b.dut(), sum.dut(), w.dut(), bias.dut(), out.dut(), mean.dut(), rstd.dut(),
            rows, cols, 1e-5f);
        tw.assertClose("residualLayerNorm sum" + tag, sum, 0, 1e-7);
        tw.assertClose("residualLayerNorm out" + tag, out, ATOL, RTOL);
        tw.assertClose("residualLayerNorm mean" + tag, mean, ATOL, RTOL);
        tw.assertClose("residualLayerNorm rstd" + tag, rstd, ATOL, RTOL);
        Twin dresidual = tw.random(rows, cols);
        Twin dsum = inPlace ? dresidual : tw.poisoned(rows, cols);
        Twin dout = tw.random(rows, cols);
        Twin dw = tw.random(cols);   // accumulate
        Twin db = tw.random(cols);
        if (!inPlace) {
            tw.ref.copy(dresidual.ref(), dsum.ref());
        }
        tw.ref.layerNormBackward(dsum.ref(), dw.ref(), db.ref(), dout.ref(), sum.ref(), w.ref(), mean.ref(), rstd.ref(),
            rows, cols);
        tw.dut.residualLayerNormBackward(dsum.dut(), dw.dut(), db.dut(), dresidual.dut(), dout.dut(), sum.dut(),
            w.dut(),
            mean.dut(), rstd.dut(), rows, cols);
        tw.assertClose("residualLayerNormBackward dsum" + tag, dsum, ATOL, RTOL);
        tw.assertClose("residualLayerNormBackward dweight" + tag, dw, ATOL, RTOL);
        tw.assertClose("residualLayerNormBackward dbias" + tag, db, ATOL, RTOL);
        if (!inPlace) {
            tw.assertClose("residualLayerNormBackward leaves dresidual" + tag, dresidual, 0, 0);
        }
    }

    @Test
    void shouldMatchCausalAttentionForwardAndBackward() {
        checkAttention(2, 37, 3, 16);
        checkAttention(1, 70, 2, 48);
    }

    void checkAttention(int batch, int seq, int heads, int headDim) {
        int c = heads * headDim;
        String tag = " B" + batch + " T" + seq + " H" + heads + " hd" + headDim;
        Twin qkv = tw.random(batch, seq, 3 * c);
        Twin out = tw.poisoned(batch, seq, c);
        Twin saved = tw.poisoned(batch, heads, seq, seq);
        tw.ref.attention(qkv.ref(), out.ref(), saved.ref(), batch, seq, heads, headDim);
        tw.dut.attention(qkv.dut(), out.dut(), saved.dut(), batch, seq, heads, headDim);
        tw.assertClose("attention out" + tag, out, ATOL, RTOL);
        if (savesProbabilities()) {
            tw.assertClose("attention saved probabilities" + tag, saved, ATOL, RTOL);
        }
        Twin dout = tw.random(batch, seq, c);
        Twin dqkv = tw.poisoned(batch, seq, 3 * c);
        tw.ref.attentionBackward(dqkv.ref(), dout.ref(), qkv.ref(), saved.ref(), batch, seq, heads, headDim);
        tw.dut.attentionBackward(dqkv.dut(), dout.dut(), qkv.dut(), saved.dut(), batch, seq, heads, headDim);
        tw.assertClose("attentionBackward dqkv" + tag, dqkv, ATOL, RTOL);
    }

    @Test
    void shouldMatchCrossEntropyForwardAndBackward() {
        int rows = 7;
        int vocab = 1000;
        Twin logits = tw.of(tw.uniform(rows * vocab, -4f, 4f), rows, vocab);
        Twin targets = tw.ids(tw.ints(rows, vocab));
        Twin probs = tw.poisoned(rows, vocab);
        Twin losses = tw.poisoned(rows);
        tw.ref.crossEntropy(logits.ref(), targets.ref(), probs.ref(), losses.ref(), rows, vocab);
        tw.dut.crossEntropy(logits.dut(), targets.dut(), probs.dut(), losses.dut(), rows, vocab);
        tw.assertClose("crossEntropy probs", probs, 1e-7, 1e-4);
        tw.assertClose("crossEntropy losses", losses, ATOL, RTOL);
        Twin dlogits = tw.poisoned(rows, vocab);
        tw.ref.crossEntropyBackward(dlogits.ref(), probs.ref(), targets.ref(), 1f / rows, rows, vocab);
        tw.dut.crossEntropyBackward(dlogits.dut(), probs.dut(), targets.dut(), 1f / rows, rows, vocab);
        tw.assertClose("crossEntropyBackward", dlogits, 1e-7, 1e-4);
    }

    @Test
    void shouldMatchEmbeddingForwardAndScatterAddBackward() {
        int rows = 50;
        int dim = 40;
        int tableRows = 9;   // few rows: ids repeat, so the scatter-add really adds
        Twin table = tw.random(tableRows, dim);
        Twin ids = tw.ids(tw.ints(rows, tableRows));
        Twin out = tw.poisoned(rows, dim);
        tw.ref.embedding(out.ref(), ids.ref(), table.ref(), rows, dim, false);
        tw.dut.embedding(out.dut(), ids.dut(), table.dut(), rows, dim, false);
        tw.assertClose("embedding", out, 0, 0);
        tw.ref.embedding(out.ref(), ids.ref(), table.ref(), rows, dim, true);
        tw.dut.embedding(out.dut(), ids.dut(), table.dut(), rows, dim, true);
        tw.assertClose("embedding (accumulate)", out, 0, 1e-6);
        Twin dout = tw.random(rows, dim);
        Twin dtable = tw.random(tableRows, dim);
        tw.ref.embeddingBackward(dtable.ref(), dout.ref(), ids.ref(), rows, dim);
        tw.dut.embeddingBackward(dtable.dut(), dout.dut(), ids.dut(), rows, dim);
        tw.assertClose("embeddingBackward", dtable, ATOL, RTOL);
    }

    @Test
    void shouldMatchAdamWOverThreeSteps() {
        int n = 3001;
        Twin p = tw.random(n);
        Twin m = tw.of(new float[n], n);
        Twin v = tw.of(new float[n], n);
        for (int t = 1; t <= 3; t++) {
            Twin g = tw.random(n);
            AdamWStep step = new AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
            tw.ref.adamw(p.ref(), g.ref(), m.ref(), v.ref(), step);
            tw.dut.adamw(p.dut(), g.dut(), m.dut(), v.dut(), step);
        }
        tw.assertClose("adamw param", p, 1e-6, 1e-5);
        tw.assertClose("adamw m", m, 1e-7, 1e-5);
        tw.assertClose("adamw v", v, 1e-8, 1e-5);
    }
}
