package io.troupe.runtime.cpu;

import static io.troupe.runtime.testkit.RandomTensors.toDouble;
import static io.troupe.runtime.testkit.RandomTensors.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.ReferenceOps;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link CpuDevice#matmulBias}: the folded form (rows started at the bias, gemm with beta = 1) gives
 * bitwise the floats of gemm-then-{@code biasAdd} for every inner dimension up to
 * {@link CpuDevice#FOLD_BIAS_MAX_K}, including the small GPT's 128 (past it the fallback, e.g. k = 512), and
 * both match the reference.
 * Also {@link CpuDevice#biasAddResidual}, the bias add and residual add after the fc projection in one
 * pass: bitwise {@code biasAdd} then {@code add}, and against the reference.
 */
class CpuMatmulBiasTest extends CpuDeviceTestBase {

    @AfterEach
    void restoreFold() {
        CpuDevice.foldBiasIntoGemm(true);
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldFoldBiasBitwiseAsGemmThenAdd(int threads) {
        open(threads);
        int[][] shapes = {{1024, 384, 128}, {1024, 128, 512}, {1024, 512, 128}, {1024, 256, 128}, {67, 129, 33},
            {1031, 96, 256}, {300, 200, 384}, {257, 130, CpuDevice.FOLD_BIAS_MAX_K}, {64, 64, 640}};
        for (int[] s : shapes) {
            int rows = s[0];
            int n = s[1];
            int k = s[2];
            float[] x = uniform(rnd, rows * k, -1, 1);
            float[] w = uniform(rnd, n * k, -0.2f, 0.2f);
            float[] bias = uniform(rnd, n, -1, 1);
            float[] garbage = uniform(rnd, rows * n, -9, 9);
            Tensor tx = tensor(x, rows * k);
            Tensor tw = tensor(w, n * k);
            Tensor tb = tensor(bias, n);
            Tensor folded = tensor(garbage, rows * n);
            Tensor unfolded = tensor(garbage, rows * n);
            CpuDevice.foldBiasIntoGemm(true);
            device.matmulBias(rows, n, k, tx, tw, tb, folded);
            CpuDevice.foldBiasIntoGemm(false);
            device.matmulBias(rows, n, k, tx, tw, tb, unfolded);
            CpuDevice.foldBiasIntoGemm(true);
            float[] a = new float[rows * n];
            float[] b = new float[rows * n];
            device.copyToHost(folded, a);
            device.copyToHost(unfolded, b);
            assertArrayEquals(b, a, 0f, "matmulBias folded vs gemm+biasAdd rows=" + rows + " n=" + n + " k=" + k);
            double[] expected = new double[rows * n];
            ReferenceOps.matmul(false, true, rows, n, k, 1.0, toDouble(x), toDouble(w), 0.0, expected);
            ReferenceOps.biasAdd(expected, toDouble(bias), rows, n);
            check("matmulBias rows=" + rows + " n=" + n + " k=" + k, expected, folded, 1e-4, 1e-4);
        }
    }

    @ParameterizedTest(name = "threads={0}")
    @ValueSource(ints = {1, 2})
    void shouldAddBiasAndResidualInOnePassBitwiseAsTwo(int threads) {
        open(threads);
        for (int[] s : new int[][] {{1024, 128}, {67, 129}, {1031, 33}, {5, 700}}) {
            int rows = s[0];
            int cols = s[1];
            float[] y = uniform(rnd, rows * cols, -3, 3);
            float[] bias = uniform(rnd, cols, -1, 1);
            float[] res = uniform(rnd, rows * cols, -3, 3);
            Tensor tb = tensor(bias, cols);
            Tensor tr = tensor(res, rows * cols);
            Tensor fused = tensor(y, rows * cols);
            Tensor twoPasses = tensor(y, rows * cols);
            device.biasAddResidual(fused, tb, tr, rows, cols);
            device.biasAdd(twoPasses, tb, rows, cols);
            device.add(twoPasses, tr, twoPasses);
            float[] a = new float[rows * cols];
            float[] b = new float[rows * cols];
            device.copyToHost(fused, a);
            device.copyToHost(twoPasses, b);
            assertArrayEquals(b, a, 0f, "biasAddResidual vs biasAdd + add rows=" + rows + " cols=" + cols);
            double[] expected = toDouble(y);
            ReferenceOps.biasAdd(expected, toDouble(bias), rows, cols);
            for (int i = 0; i < expected.length; i++) {
                expected[i] += res[i];
            }
            check("biasAddResidual rows=" + rows + " cols=" + cols, expected, fused, 1e-5, 1e-5);
        }
    }
}
