package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The vectorised fp32 and int8 linears against plain scalar references on random shapes and inputs. */
@Timeout(60)
class Fp32LinearTest {
    /** The plain reference: per output, fma over k ascending from 0, then the bias; torch layout (out, in). */
    private static float[] reference(float[] w, float[] b, float[] x, int rows, int out, int in) {
        float[] y = new float[rows * out];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < out; j++) {
                float acc = 0f;
                for (int k = 0; k < in; k++) {
                    acc = Math.fma(x[r * in + k], w[j * in + k], acc);
                }
                y[r * out + j] = b == null ? acc : acc + b[j];
            }
        }
        return y;
    }

    private static float[] gaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return v;
    }

    @Test
    void shouldEqualTheScalarFmaReferenceBitForBit() {
        Random r = new Random(21);
        for (int trial = 0; trial < 40; trial++) {
            int out = 1 + r.nextInt(70);
            int in = 1 + r.nextInt(70);                  // tails of the four-channel passes included
            int rows = 1 + r.nextInt(40);                // more than one row tile
            float[] w = gaussian(r, out * in);
            float[] b = trial % 3 == 0 ? null : gaussian(r, out);
            float[] x = gaussian(r, rows * in);
            float[] y = new float[rows * out];
            new Fp32Linear(w, b, out, in).forward(x, rows, y);
            assertArrayEquals(reference(w, b, x, rows, out, in), y, 0f,
                "trial " + trial + ": " + rows + "x" + in + " -> " + out);
        }
    }

    /**
     * The Vector API kernel (this module's tests run with the incubator module, so it is the path
     * taken) against the scalar reference and the axpy form, bit for bit: shapes that hit the full
     * panels (blocks of 6 or 4 rows, the padded remainder block, the single row), the partial panel's
     * vectors and its scalar columns, any row count and any split of the rows (a row's bits do not
     * depend on its neighbours or its place in a block).
     */
    @Test
    void shouldGiveTheScalarReferenceBitsOnTheVectorApiKernelWhateverTheRowsAround() {
        assertTrue(Fp32Linear.VECTOR_API, "the models tests run with --add-modules jdk.incubator.vector");
        Random r = new Random(23);
        int[][] shapes = {{128, 384}, {128, 128}, {512, 128}, {128, 256}, {37, 64 + 16 + 3}, {5, 200}, {70, 15}};
        for (int trial = 0; trial < 42; trial++) {
            int[] shape = shapes[trial % shapes.length];
            int in = shape[0];
            int out = shape[1];
            int rows = 1 + trial % 21;                   // every row count 1-21 (7, 8, 13, 14: the split remainders)
            float[] w = gaussian(r, out * in);
            float[] b = trial % 4 == 0 ? null : gaussian(r, out);
            float[] x = gaussian(r, rows * in);
            Fp32Linear lin = new Fp32Linear(w, b, out, in);
            float[] whole = new float[rows * out];
            lin.forward(x, rows, whole);
            float[] axpy = new float[rows * out];
            new Fp32Linear(w, b, out, in, false).forward(x, rows, axpy);
            String what = "trial " + trial + ": " + rows + "x" + in + " -> " + out;
            assertArrayEquals(reference(w, b, x, rows, out, in), whole, 0f, what);
            assertArrayEquals(axpy, whole, 0f, what + " (axpy form)");
            float[] split = new float[rows * out];
            for (int from = 0; from < rows; ) {
                int to = Math.min(rows, from + 1 + r.nextInt(14));
                lin.forwardRows(x, from, to, split);
                from = to;
            }
            assertArrayEquals(whole, split, 0f, what + " (rows split)");
        }
    }

    /**
     * The row blocks of the Vector API kernel cover every row once, none wider than a register block,
     * and pad no more rows than full blocks then one padded block would (with 6-row blocks: 7 rows as
     * 4 + 3, 13 as 6 + 4 + 3, computing 14 rows instead of 16).
     */
    @Test
    void shouldSplitRowsIntoBlocksThatPadLess() {
        int r = VectorLinearKernel.R;
        for (int n = 2; n <= 64; n++) {
            int covered = VectorLinearKernel.fullBlocks(n) * r;
            int computed = covered;
            while (covered < n) {
                int rows = VectorLinearKernel.remainderBlock(n - covered);
                assertTrue(rows >= 1 && rows <= r, n + " rows: a block of " + rows);
                covered += rows;
                computed += rows > 4 ? r : 4;
            }
            assertEquals(n, covered, n + " rows");
            int before = n / r * r + (n % r == 0 ? 0 : n % r > 4 ? r : 4);
            assertTrue(computed <= before, n + " rows: " + computed + " computed against " + before);
            if (r == 6 && n == 13) {
                assertEquals(14, computed);
            }
        }
    }

    @Test
    void shouldGiveTheInt8ProductOfTheDequantizedWeightsBitForBit() {
        Random r = new Random(22);
        for (int trial = 0; trial < 20; trial++) {
            int out = 1 + r.nextInt(50);
            int in = 1 + r.nextInt(50);
            int rows = 1 + r.nextInt(30);
            float[] w = gaussian(r, out * in);
            float[] x = gaussian(r, rows * in);
            Int8Linear q = Int8Linear.quantize(w, null, out, in);
            float[] deq = q.dequantized();
            float[] y = new float[rows * out];
            q.forward(x, rows, y);
            // int8 sums x q in k order (fma), then scales: the reference below does the same in scalar code
            for (int row = 0; row < rows; row++) {
                for (int j = 0; j < out; j++) {
                    float scale = 0;
                    for (int k = 0; k < in; k++) {
                        scale = Math.max(scale, Math.abs(w[j * in + k]));
                    }
                    scale = scale == 0f ? 1f : scale / 127f;
                    float acc = 0f;
                    for (int k = 0; k < in; k++) {
                        acc = Math.fma(x[row * in + k], (float) Math.round(deq[j * in + k] / scale), acc);
                    }
                    float expected = acc * scale;
                    assertEquals(expected, y[row * out + j], 0f, "trial " + trial + " row " + row + " out " + j);
                }
            }
        }
    }
}
