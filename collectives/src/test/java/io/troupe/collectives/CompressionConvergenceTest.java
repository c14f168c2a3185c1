package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.LocalGroup.Buffers;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Data-parallel SGD on a convex quadratic, {@code f(x) = mean_r 1/2 sum_i a_i (x_i - b_ri)^2}, whose
 * optimum is {@code x* = mean_r b_r}. Coordinate 0 has a large curvature and rank-dependent targets,
 * so every rank's gradient keeps a large entry even at the optimum: int8 block quantisation then
 * rounds the small coordinates' gradients to zero. With error feedback they still converge to the
 * optimum (like uncompressed SGD; the learning rate decays linearly to 0 so the residual's noise
 * dies out); without it they stall measurably further away.
 */
class CompressionConvergenceTest {
    private static final int N = 4;
    private static final int D = 256;
    private static final int STEPS = 400;
    private static final float LR = 0.05f;

    @Test
    @Timeout(60)
    void shouldConvergeWithInt8ErrorFeedbackAndStallWithoutIt() {
        double[] a = new double[D];
        double[][] b = new double[N][D];
        double[] opt = new double[D];
        SplittableRandom rnd = new SplittableRandom(42);
        for (int i = 0; i < D; i++) {
            a[i] = i == 0 ? 10 : 1;
            double c = rnd.nextDouble(-1, 1);
            for (int r = 0; r < N; r++) {
                b[r][i] = i == 0 ? (r % 2 == 0 ? 5 : -5) : c + rnd.nextDouble(-0.1, 0.1);
                opt[i] += b[r][i] / N;
            }
        }
        try (LocalGroup g = new LocalGroup(N); Buffers grad = new Buffers(N, D)) {
            Compression[] modes = {Compression.NONE, Compression.INT8_ERROR_FEEDBACK, Compression.INT8};
            double[] distance = new double[modes.length];
            for (int m = 0; m < modes.length; m++) {
                Communicator[] c = g.communicators(m, LocalGroup.collectiveSettings().withCompression(modes[m]));
                float[][] x = new float[N][D];
                CollectiveHandle[] h = new CollectiveHandle[N];
                for (int r = 0; r < N; r++) {
                    h[r] = new CollectiveHandle();
                }
                for (int step = 0; step < STEPS; step++) {
                    float lr = LR * (1 - step / (float) STEPS); // decaying, so error feedback's noise dies out
                    for (int r = 0; r < N; r++) {
                        for (int i = 0; i < D; i++) {
                            grad.set(r, i, (float) (a[i] * (x[r][i] - b[r][i])));
                        }
                        c[r].allReduceAsync(grad.address[r], D, ReduceOp.AVERAGE, 7, h[r]);
                    }
                    g.awaitAll(h);
                    for (int r = 0; r < N; r++) {
                        for (int i = 0; i < D; i++) {
                            x[r][i] -= lr * grad.get(r, i);
                        }
                    }
                }
                for (int r = 1; r < N; r++) {
                    assertArrayEquals(x[0], x[r], modes[m] + ": replicas diverged");
                }
                double d2 = 0;
                for (int i = 0; i < D; i++) {
                    d2 += (x[0][i] - opt[i]) * (x[0][i] - opt[i]);
                }
                distance[m] = Math.sqrt(d2);
                System.out.printf("SGD %d steps, %-20s |x - x*| = %.5f%n", STEPS, modes[m], distance[m]);
                if (modes[m] == Compression.INT8_ERROR_FEEDBACK) {
                    float[] residual = c[0].errorFeedback().residual(7);
                    assertNotNull(residual, "residual of tag 7 is kept for checkpoints");
                    assertEquals(D, residual.length);
                }
            }
            assertTrue(distance[0] < 1e-3, "uncompressed SGD must converge: " + distance[0]);
            assertTrue(distance[1] < 0.02, "int8 + error feedback must reach the optimum: " + distance[1]);
            assertTrue(distance[2] > 10 * distance[1] && distance[2] > 0.1,
                "int8 without feedback should stall further away: " + distance[2] + " vs " + distance[1]);
        }
    }
}
