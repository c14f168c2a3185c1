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
 * {@link CpuDevice#FOLD_BIAS_MAX_K}, including the small GPT's 128 (past it the fallback, e.g. k = 512), and both match the reference.
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
}
