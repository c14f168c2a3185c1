package io.troupe.models.infer;

import static io.troupe.runtime.testkit.RandomTensors.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.testkit.ReferenceOps;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The serving LayerNorm: the Vector API form against the plain loop bit for bit, the plain loop against doubles. */
@Timeout(30)
class LayerNormKernelsTest {
    private static float[] random(SplittableRandom r, int n, double scale, double shift) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) ((r.nextDouble() * 2 - 1) * scale + shift);
        }
        return v;
    }

    /** Widths with and without a tail past the 16 lanes, offsets of rows included; shifted and scaled rows. */
    @Test
    void shouldGiveThePlainLoopsBitsOnTheVectorApi() {
        assertTrue(Fp32Linear.VECTOR_API && VectorRowKernels.fits(), "the models tests run with the Vector API");
        SplittableRandom r = new SplittableRandom(5);
        float[] lanes = new float[RowKernels.LANES];
        for (int cols : new int[] {128, 48, 16, 37, 5, 200}) {
            for (int trial = 0; trial < 20; trial++) {
                int rows = 1 + r.nextInt(7);
                float[] x = random(r, rows * cols, 1 + r.nextInt(100), r.nextInt(3) * 5.0);
                float[] w = random(r, cols, 1, 1);
                float[] b = random(r, cols, 1, 0);
                float[] plain = new float[rows * cols];
                float[] vector = new float[rows * cols];
                RowKernels.layerNorm(x, w, b, plain, rows, cols, 1e-5f);
                VectorRowKernels.layerNorm(x, w, b, vector, rows, cols, 1e-5f, lanes);
                for (int i = 0; i < plain.length; i++) {
                    assertEquals(Float.floatToIntBits(plain[i]), Float.floatToIntBits(vector[i]),
                        cols + " columns, element " + i + ": " + plain[i] + " vs " + vector[i]);
                }
            }
        }
    }

    /** The lane order is a float summation like any other: within 1e-5 of the double-precision normalisation. */
    @Test
    void shouldNormaliseLikeTheExactFormula() {
        SplittableRandom r = new SplittableRandom(6);
        int cols = 128;
        float[] x = random(r, 3 * cols, 4, 2);
        float[] w = random(r, cols, 1, 1);
        float[] b = random(r, cols, 1, 0);
        float[] y = new float[x.length];
        RowKernels.layerNorm(x, w, b, y, 3, cols, 1e-5f);
        double[] expected = ReferenceOps.layerNorm(toDouble(x), toDouble(w), toDouble(b), new double[3],
            new double[3], 3, cols, 1e-5);
        for (int i = 0; i < y.length; i++) {
            assertEquals(expected[i], y[i], 1e-5 * Math.max(1, Math.abs(expected[i])), "element " + i);
        }
    }
}
