package io.troupe.runtime.cpu;

import static io.troupe.runtime.testkit.RandomTensors.toDouble;
import static io.troupe.runtime.testkit.RandomTensors.uniform;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.device.AdamWStep;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import io.troupe.runtime.testkit.ReferenceOps;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The BLAS-like ops and AdamW of {@link CpuDevice} against {@link ReferenceOps} on random inputs of
 * odd shapes, with one and two threads; shapes are large enough to cross the device's split
 * thresholds (rows vs columns split of gemm, batch split, elementwise grain). Transformer kernels:
 * {@link CpuDeviceKernelsTest}.
 */
class CpuDeviceOpsTest extends CpuDeviceTestBase {

    private static final boolean[][] TRANSPOSES = {{false, false}, {false, true}, {true, false}, {true, true}};

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceGemmForAllTransposesAndBetas(int threads) {
        open(threads);
        // (m, n, k): below the split threshold, above it split by rows (m >= n), above it split by columns.
        int[][] shapes = {{37, 53, 71}, {131, 67, 71}, {37, 129, 71}};
        float[][] alphaBeta = {{1f, 0f}, {0.7f, 1f}, {-1.3f, 0.5f}};
        for (int[] s : shapes) {
            int m = s[0];
            int n = s[1];
            int k = s[2];
            for (boolean[] tr : TRANSPOSES) {
                float[] a = uniform(rnd, m * k, -1, 1);
                float[] b = uniform(rnd, k * n, -1, 1);
                Tensor ta = tensor(a, m * k);
                Tensor tb = tensor(b, k * n);
                for (float[] ab : alphaBeta) {
                    // C starts non-zero: beta=0 must overwrite it, beta=1 must accumulate onto it.
                    float[] c0 = uniform(rnd, m * n, -1, 1);
                    Tensor tc = tensor(c0, m * n);
                    device.matmul(tr[0], tr[1], m, n, k, ab[0], ta, tb, ab[1], tc);
                    double[] expected = toDouble(c0);
                    ReferenceOps.matmul(tr[0], tr[1], m, n, k, ab[0], toDouble(a), toDouble(b), ab[1], expected);
                    check(String.format("gemm m=%d n=%d k=%d transA=%b transB=%b alpha=%s beta=%s",
                        m, n, k, tr[0], tr[1], ab[0], ab[1]), expected, tc, 2e-5, 1e-5);
                }
            }
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldHonourLeadingDimensionsAndUnalignedViews(int threads) {
        open(threads);
        int m = 67;
        int n = 45;
        int k = 129;
        for (boolean[] tr : TRANSPOSES) {
            int aCols = tr[0] ? m : k;
            int aRows = tr[0] ? k : m;
            int bCols = tr[1] ? k : n;
            int bRows = tr[1] ? n : k;
            int lda = aCols + 3;
            int ldb = bCols + 5;
            int ldc = n + 7;
            // Views start 1..3 floats into their storage: not 64-byte aligned.
            float[] a = uniform(rnd, 1 + aRows * lda, -1, 1);
            float[] b = uniform(rnd, 2 + bRows * ldb, -1, 1);
            float[] c0 = uniform(rnd, 3 + m * ldc, -1, 1);
            Tensor ta = tensor(a, a.length).view(1, aRows * lda);
            Tensor tb = tensor(b, b.length).view(2, bRows * ldb);
            Tensor tcAll = tensor(c0, c0.length);
            Tensor tc = tcAll.view(3, m * ldc);
            device.gemm(tr[0], tr[1], m, n, k, 0.9f, ta, lda, tb, ldb, 1f, tc, ldc);
            double[] expected = toDouble(c0);
            ReferenceOps.gemmBatched(tr[0], tr[1], m, n, k, 0.9, toDouble(a), 1, lda, 0, toDouble(b), 2, ldb, 0,
                1, expected, 3, ldc, 0, 1);
            // Whole storage compared: padding columns and the 3 leading floats must be untouched.
            check(String.format("gemm lda=%d ldb=%d ldc=%d transA=%b transB=%b (views at offsets 1,2,3)",
                lda, ldb, ldc, tr[0], tr[1]), expected, tcAll, 2e-5, 1e-5);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceBatchedGemmWithStridesAndSharedOperand(int threads) {
        open(threads);
        int m = 17;
        int n = 19;
        int k = 23;
        int batch = 5;
        for (boolean[] tr : TRANSPOSES) {
            int aSize = m * k;
            int bSize = k * n;
            long strideA = aSize + 11;
            long strideC = m * n + 13;
            float[] a = uniform(rnd, (int) (strideA * batch), -1, 1);
            float[] b = uniform(rnd, bSize, -1, 1); // stride 0: one B for every batch
            float[] c0 = uniform(rnd, (int) (strideC * batch), -1, 1);
            Tensor ta = tensor(a, a.length);
            Tensor tb = tensor(b, b.length);
            Tensor tc = tensor(c0, c0.length);
            int lda = tr[0] ? m : k;
            int ldb = tr[1] ? k : n;
            device.gemmBatched(tr[0], tr[1], m, n, k, 1.1f, ta, lda, strideA, tb, ldb, 0, 1f, tc, n, strideC, batch);
            double[] expected = toDouble(c0);
            ReferenceOps.gemmBatched(tr[0], tr[1], m, n, k, 1.1, toDouble(a), 0, lda, strideA, toDouble(b), 0, ldb, 0,
                1, expected, 0, n, strideC, batch);
            check(String.format("gemmBatched batch=%d m=%d n=%d k=%d strideA=%d strideB=0 strideC=%d transA=%b "
                + "transB=%b beta=1", batch, m, n, k, strideA, strideC, tr[0], tr[1]), expected, tc, 2e-5, 1e-5);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldApplyBatchesInOrderWhenStrideCIsZero(int threads) {
        open(threads);
        // strideC = 0 reuses one C for every batch: with beta = 1 the products sum into C (e.g. a
        // weight gradient over micro-batches), with beta = 0.5 each batch first halves what the
        // earlier ones left. Either way the batches must run one after another: concurrent batches
        // lose sums (beta = 1, under contention) or scale each other's work (beta = 0.5, always).
        int m = 509;
        int n = 515;
        int k = 2;
        int batch = 64;
        for (float beta : new float[] {1f, 0.5f, 1f, 0.5f}) {
            float[] a = uniform(rnd, batch * m * k, -1, 1);
            float[] b = uniform(rnd, batch * k * n, -1, 1);
            float[] c0 = uniform(rnd, m * n, -1, 1);
            Tensor tc = tensor(c0, m * n);
            device.gemmBatched(true, false, m, n, k, 1f, tensor(a, a.length), m, (long) m * k, tensor(b, b.length), n,
                (long) k * n, beta, tc, n, 0, batch);
            double[] expected = toDouble(c0);
            ReferenceOps.gemmBatched(true, false, m, n, k, 1, toDouble(a), 0, m, (long) m * k, toDouble(b), 0, n,
                (long) k * n, beta, expected, 0, n, 0, batch);
            check(String.format("gemmBatched strideC=0 beta=%s batch=%d m=%d n=%d k=%d", beta, batch, m, n, k),
                expected, tc, 2e-5, 1e-5);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldRejectGemmWhoseOutputIsTooSmall(int threads) {
        open(threads);
        Tensor a = zeros(5 * 4);
        Tensor b = zeros(4 * 3);
        Tensor c = zeros(5 * 3 - 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> device.matmul(false, false, 5, 3, 4, 1f, a, b, 0f, c));
        System.out.println("gemm small C: " + e.getMessage());
        assertTrue(e.getMessage().contains("14"), e.getMessage());
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceElementwiseOps(int threads) {
        open(threads);
        int n = 40009; // > 2 elementwise grains: split across threads
        float[] x = uniform(rnd, n, -2, 2);
        float[] y = uniform(rnd, n, -2, 2);
        Tensor tx = tensor(x, n);
        Tensor ty = tensor(y, n);

        device.axpy(-0.75f, tx, ty);
        double[] expected = toDouble(y);
        ReferenceOps.axpy(-0.75, toDouble(x), expected);
        check("axpy n=" + n, expected, ty, 1e-6, 1e-6);

        Tensor tz = tensor(x, n);
        device.scale(tz, 1.7f);
        check("scale n=" + n, ReferenceOps.scale(toDouble(x), 1.7f), tz, 1e-6, 1e-6);

        float[] before = uniform(rnd, n + 5, -1, 1);
        Tensor dst = tensor(before, n + 5);
        device.copy(tx, dst);
        double[] copied = toDouble(before); // the 5 tail elements are not part of the copy
        System.arraycopy(toDouble(x), 0, copied, 0, n);
        check("copy n=" + n, copied, dst, 0, 0);

        device.fill(tz, 0.25f);
        double[] quarter = new double[n];
        java.util.Arrays.fill(quarter, 0.25);
        check("fill 0.25 n=" + n, quarter, tz, 0, 0);
        device.fill(tz, 0f);
        check("fill 0 n=" + n, new double[n], tz, 0, 0);

        float[] a = uniform(rnd, n, -2, 2);
        float[] b = uniform(rnd, n, -2, 2);
        Tensor ta = tensor(a, n);
        Tensor tb = tensor(b, n);
        Tensor out = tensor(uniform(rnd, n, -1, 1), n);
        device.add(ta, tb, out);
        check("add n=" + n, ReferenceOps.add(toDouble(a), toDouble(b)), out, 1e-6, 1e-6);
        device.add(ta, tb, ta); // out aliases a (the residual connection)
        check("add in place n=" + n, ReferenceOps.add(toDouble(a), toDouble(b)), ta, 1e-6, 1e-6);
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchDoubleReferenceSumOfSquares(int threads) {
        open(threads);
        for (int n : new int[] {1, 13, 8193, 100003}) {
            float[] x = uniform(rnd, n, -3, 3);
            double expected = ReferenceOps.sumOfSquares(toDouble(x));
            // Double accumulation of float squares: only double rounding remains.
            RandomTensors.assertClose("sumOfSquares n=" + n + " [threads=" + threads + "]", expected,
                device.sumOfSquares(tensor(x, n)), 0, 1e-12);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldMatchReferenceAdamWOverSeveralStepsWithWeightDecay(int threads) {
        open(threads);
        int n = 40009;
        // A large eps relative to the gradients makes its placement (outside the bias-corrected sqrt) matter.
        double[][] settings = {{1e-2, 1e-8, 1.0}, {3e-3, 1e-3, 1e-3}}; // lr, eps, gradient scale
        for (double[] set : settings) {
            float lr = (float) set[0];
            float eps = (float) set[1];
            double gscale = set[2];
            float[] p0 = uniform(rnd, n, -1, 1);
            Tensor param = tensor(p0, n);
            Tensor m = zeros(n);
            Tensor v = zeros(n);
            double[] rp = toDouble(p0);
            double[] rm = new double[n];
            double[] rv = new double[n];
            for (int step = 1; step <= 5; step++) {
                float[] g = uniform(rnd, n, -gscale, gscale);
                AdamWStep s = new AdamWStep(lr, 0.9f, 0.95f, eps, 0.1f, step);
                device.adamw(param, tensor(g, n), m, v, s);
                ReferenceOps.adamw(rp, toDouble(g), rm, rv, s.lr(), s.beta1(), s.beta2(),
                    s.eps(), s.weightDecay(), step);
                String what = String.format(" lr=%s eps=%s gscale=%s wd=0.1 after step %d [threads=%d]",
                    lr, eps, gscale, step, threads);
                RandomTensors.assertClose("adamw param" + what, rp, RandomTensors.read(param), 1e-6, 1e-5);
                RandomTensors.assertClose("adamw m" + what, rm, RandomTensors.read(m), 1e-7 * gscale, 1e-5);
                RandomTensors.assertClose("adamw v" + what, rv, RandomTensors.read(v), 1e-7 * gscale * gscale, 1e-5);
            }
        }
    }
}
