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

    /** All heads at once (the sums four heads at a time, vectors past n into the rows' spare room) as one by one. */
    @Test
    void shouldGiveEachHeadsSoftmaxBitsWhenTheHeadsRunTogether() {
        Random rnd = new Random(7);
        int room = 4 * L;
        for (int nh : new int[] {1, 4, 6, 8}) {
            for (int n = 1; n <= room; n++) {
                float[][] heads = new float[nh][room];
                float[][] alone = new float[nh][];
                for (int h = 0; h < nh; h++) {
                    for (int u = 0; u < room; u++) {
                        heads[h][u] = (float) (rnd.nextGaussian() * (h % 2 == 0 ? 3 : 40));
                    }
                    alone[h] = java.util.Arrays.copyOf(heads[h], n);
                    VectorAttentionKernel.softmax(alone[h], n);
                }
                VectorAttentionKernel.softmaxHeads(heads, nh, n);
                for (int h = 0; h < nh; h++) {
                    for (int u = 0; u < n; u++) {
                        assertEquals(Float.floatToIntBits(alone[h][u]), Float.floatToIntBits(heads[h][u]),
                            nh + " heads, n " + n + ", head " + h + ", u " + u);
                    }
                }
            }
        }
    }
}
