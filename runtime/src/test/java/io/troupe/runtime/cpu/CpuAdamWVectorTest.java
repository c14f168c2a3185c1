package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** AdamW on the Vector API over the tensors in place, bitwise against the staged {@link CpuRows#adamw}. */
class CpuAdamWVectorTest {
    @Test
    @Timeout(60)
    void shouldGiveTheStagedBitsOnEveryRange() {
        assertTrue(CpuAttention.VECTOR_API, "the runtime tests run with --add-modules jdk.incubator.vector");
        assertTrue(CpuDirectViews.AVAILABLE, "the runtime tests run with --add-opens java.base/java.nio");
        Random rnd = new Random(12);
        for (int n : new int[] {1, 7, 16, 17, 63, 4096, 10_007}) {
            for (int[] range : new int[][] {{0, n}, {n / 3, n}, {0, (n + 1) / 2}}) {
                float[][] init = new float[4][n];
                for (int i = 0; i < n; i++) {
                    init[0][i] = (float) rnd.nextGaussian();
                    init[1][i] = i % 11 == 0 ? 0f : (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(9) - 6));
                    init[2][i] = (float) (rnd.nextGaussian() * 1e-3);
                    init[3][i] = i % 13 == 0 ? 0f : (float) (rnd.nextDouble() * 1e-4);
                }
                try (CpuStorage a = tensors(init); CpuStorage b = tensors(init)) {
                    for (int step = 1; step <= 3; step++) {
                        float stepSize = (float) (1e-3 / (1 - Math.pow(0.9, step)));
                        float bc2Sqrt = (float) Math.sqrt(1 - Math.pow(0.999, step));
                        long bytes = 4L * n;
                        CpuRows.adamw(a.address(), a.address() + bytes, a.address() + 2 * bytes,
                            a.address() + 3 * bytes, range[0], range[1], 0.9f, 0.999f, 1e-8f, 1f - 1e-5f, stepSize,
                            bc2Sqrt);
                        CpuAdamWVector.adamw(b.address(), b.address() + bytes, b.address() + 2 * bytes,
                            b.address() + 3 * bytes, range[0], range[1], 0.9f, 0.999f, 1e-8f, 1f - 1e-5f, stepSize,
                            bc2Sqrt);
                    }
                    for (long i = 0; i < 4L * n; i++) {
                        assertEquals(Float.floatToRawIntBits(UNSAFE.getFloat(a.address() + 4 * i)),
                            Float.floatToRawIntBits(UNSAFE.getFloat(b.address() + 4 * i)), "n=" + n + " range "
                                + range[0] + ".." + range[1] + ", tensor " + i / n + " element " + i % n);
                    }
                }
            }
        }
    }

    /** The four tensors p, g, m, v side by side in one allocation. */
    private static CpuStorage tensors(float[][] init) {
        int n = init[0].length;
        CpuStorage s = new CpuStorage(16L * n);
        for (int t = 0; t < 4; t++) {
            for (int i = 0; i < n; i++) {
                UNSAFE.putFloat(s.address() + 4L * (t * n + i), init[t][i]);
            }
        }
        return s;
    }
}
