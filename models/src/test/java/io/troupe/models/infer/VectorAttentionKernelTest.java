package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The attention's lane-wise exponential and softmax against the scalar forms, bit for bit. */
@Timeout(60)
class VectorAttentionKernelTest {
    private static final int L = FloatVector.SPECIES_PREFERRED.length();

    @Test
    void shouldComputeTheExponentialOfRowKernelsLaneByLane() {
        assertTrue(Fp32Linear.VECTOR_API, "the models tests run with --add-modules jdk.incubator.vector");
        Random rnd = new Random(5);
        float[] edges = {-87f, Math.nextDown(-87f), Math.nextUp(-87f), 88f, Math.nextUp(88f), -88f, -0f, 0f,
            Float.NaN, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, 1e-30f, -1e-30f, 0.5f, -0.5f,
            0.34657359f, -0.34657359f, -1e30f, 1e30f, Float.MIN_VALUE};
        float[] x = new float[L];
        float[] y = new float[L];
        for (int trial = 0; trial < 20_000; trial++) {
            for (int i = 0; i < L; i++) {
                x[i] = switch (rnd.nextInt(4)) {
                    case 0 -> edges[rnd.nextInt(edges.length)];
                    case 1 -> (float) (rnd.nextDouble() * 200 - 100);
                    case 2 -> (float) (-rnd.nextDouble() * 20);
                    default -> Float.intBitsToFloat(rnd.nextInt());
                };
            }
            VectorAttentionKernel.exp(FloatVector.fromArray(FloatVector.SPECIES_PREFERRED, x, 0)).intoArray(y, 0);
            for (int i = 0; i < L; i++) {
                assertEquals(Float.floatToIntBits(RowKernels.exp(x[i])), Float.floatToIntBits(y[i]), "exp(" + x[i]
                    + ")");
            }
        }
    }

    @Test
    void shouldGiveTheScalarSoftmaxBits() {
        Random rnd = new Random(6);
        for (int n = 1; n <= 3 * L + 5; n++) {
            for (int trial = 0; trial < 50; trial++) {
                float[] s = new float[n];
                for (int u = 0; u < n; u++) {
                    s[u] = (float) (rnd.nextGaussian() * (trial % 2 == 0 ? 3 : 40));
                }
                float[] expected = s.clone();
                float max = Float.NEGATIVE_INFINITY;
                for (float v : expected) {
                    max = Math.max(max, v);
                }
                double sum = 0;
                for (int u = 0; u < n; u++) {
                    expected[u] = RowKernels.exp(expected[u] - max);
                    sum += expected[u];
                }
                float inv = (float) (1.0 / sum);
                for (int u = 0; u < n; u++) {
                    expected[u] *= inv;
                }
                VectorAttentionKernel.softmax(s, n);
                for (int u = 0; u < n; u++) {
                    assertEquals(Float.floatToIntBits(expected[u]), Float.floatToIntBits(s[u]), "n " + n + " u " + u);
                }
            }
        }
    }
}
