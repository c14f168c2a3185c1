package io.troupe.models.parallel.tp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.BlasRowBlocks;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link LinearWeightGradient#backwardWeightRows} in uneven blocks of rows, each into its own
 * buffer, against the whole {@link LinearWeightGradient#backwardWeight} of the same layer on fresh
 * random inputs: bitwise equal rows (the same gemm cut by rows of its result, so every element is
 * summed in the same order), and the bias of {@link LinearWeightGradient#backwardBias} bitwise the
 * whole pass's. Two sizes: every gemm small, and every gemm large with blocks of at least 16 rows.
 * (OpenBLAS takes a different kernel, with another summation order, for products of at most about
 * 10^6 multiply-adds on some CPUs, so a tiny block of a large gemm may differ in the last bit. Where its kernels
 * differ in the last bits for every block ({@link BlasRowBlocks}), the rows are held to float rounding instead.)
 */
@Timeout(60)
class LinearWeightRowsTest {
    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void shouldFormBitwiseTheWholeWeightGradientBlockOfRowsByBlock(int threads) {
        check(threads, 64, 48, 40, new int[][] {{0, 1}, {1, 4}, {4, 23}, {23, 40}});
        check(threads, 1024, 256, 96, new int[][] {{0, 16}, {16, 40}, {40, 96}});
    }

    private static void check(int threads, int tokens, int in, int out, int[][] blocks) {
        Random rnd = new Random(17 + threads + tokens);
        float[] x = RandomTensors.normal(rnd, tokens * in, 0, 1);
        float[] dy = RandomTensors.normal(rnd, tokens * out, 0, 0.1);
        float[] w = RandomTensors.normal(rnd, out * in, 0, 0.2);
        float[] b = RandomTensors.normal(rnd, out, 0, 0.1);
        try (CpuDevice dev = new CpuDevice(threads)) {
            for (boolean column : new boolean[] {true, false}) {
                Tensor xt = RandomTensors.tensor(dev, x, tokens, in);
                Tensor dyt = RandomTensors.tensor(dev, dy, tokens, out);
                Tensor wt = RandomTensors.tensor(dev, w, out, in);
                Tensor bt = RandomTensors.tensor(dev, b, out);
                Tensor dW = dev.allocate(out, in);
                Tensor db = dev.allocate(out);
                Tensor dbRows = dev.allocate(out);
                dev.fill(dW, 0f);
                dev.fill(db, 0f);
                dev.fill(dbRows, 0f);
                LinearWeightGradient whole = column
                    ? new ColumnParallelLinear(dev, TensorParallelGroup.single(), in, out, wt, bt, dW, db)
                    : new RowParallelLinear(dev, TensorParallelGroup.single(), in, out, wt, bt, dW, db);
                LinearWeightGradient rows = column
                    ? new ColumnParallelLinear(dev, TensorParallelGroup.single(), in, out, wt, bt, null, dbRows)
                    : new RowParallelLinear(dev, TensorParallelGroup.single(), in, out, wt, bt, null, dbRows);
                whole.backwardWeight(dyt, xt, tokens, true);
                rows.backwardBias(dyt, tokens);
                float[] expected = dW.toFloatArray();
                for (int[] block : blocks) {
                    Tensor part = dev.allocate(block[1] - block[0], in);
                    dev.fill(part, 0f);
                    rows.backwardWeightRows(dyt, xt, tokens, block[0], part);
                    float[] want = Arrays.copyOfRange(expected, block[0] * in, block[1] * in);
                    String what = (column ? "column" : "row") + " (" + tokens + " tokens, " + out + "x" + in
                        + ") rows " + block[0] + ".." + block[1] + " with " + threads + " thread(s)";
                    if (BlasRowBlocks.bitwise()) {
                        assertArrayEquals(want, part.toFloatArray(), 0f, what);
                    } else {
                        float[] got = part.toFloatArray();
                        for (int i = 0; i < want.length; i++) {
                            // sums of up to 1024 products of order 0.1: float rounding, not a lost term
                            assertEquals(want[i], got[i], 2e-5f * (Math.abs(want[i]) + 1f), what + " at " + i);
                        }
                    }
                    part.close();
                }
                assertArrayEquals(db.toFloatArray(), dbRows.toFloatArray(), 0f, "bias");
                for (Tensor t : new Tensor[] {xt, dyt, wt, bt, dW, db, dbRows}) {
                    t.close();
                }
            }
        }
    }
}
