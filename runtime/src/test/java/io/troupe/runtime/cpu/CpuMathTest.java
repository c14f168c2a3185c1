package io.troupe.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The float exponential: the scalar one against Math.exp, the block one bitwise against the scalar one. */
class CpuMathTest {
    @Test
    @Timeout(30)
    void shouldStayWithinItsErrorBoundOfMathExp() {
        Random rnd = new Random(7);
        for (int i = 0; i < 200_000; i++) {
            float x = -87f + rnd.nextFloat() * 175f;
            double expected = Math.exp(x);
            double err = Math.abs(CpuMath.exp(x) - expected) / expected;
            assertTrue(err < 3e-7, "exp(" + x + ") = " + CpuMath.exp(x) + " vs " + expected
                + ": relative error " + err);
        }
        assertEquals(0f, CpuMath.exp(-87.7f));
        assertEquals(0f, CpuMath.exp(-1000f));
        assertEquals(0f, CpuMath.exp(Float.NEGATIVE_INFINITY));
    }

    @Test
    @Timeout(30)
    void shouldMatchTheScalarExpBitwiseInBlocks() {
        Random rnd = new Random(11);
        for (int n : new int[] {1, 3, 17, 64, 257, 2048}) {
            float[] x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = switch (i % 7) {
                    case 0 -> -100f + rnd.nextFloat() * 20f; // across the cut-off and the subnormals
                    case 1 -> 80f + rnd.nextFloat() * 20f;   // across the 88 saturation
                    case 2 -> Float.NEGATIVE_INFINITY;
                    default -> (float) (rnd.nextGaussian() * 10);
                };
            }
            float[] y = x.clone();
            CpuMath.expBlock(y, new float[n], n);
            float[] z = x.clone();
            CpuMath.expBlockScalarScale(z, new float[n], n);
            for (int i = 0; i < n; i++) {
                assertEquals(Float.floatToRawIntBits(CpuMath.exp(x[i])), Float.floatToRawIntBits(y[i]),
                    "n=" + n + " i=" + i + " x=" + x[i] + ": block " + y[i] + " vs scalar " + CpuMath.exp(x[i]));
                assertEquals(Float.floatToRawIntBits(CpuMath.exp(x[i])), Float.floatToRawIntBits(z[i]),
                    "n=" + n + " i=" + i + " x=" + x[i] + ": reference block " + z[i] + " vs scalar "
                    + CpuMath.exp(x[i]));
            }
        }
    }
}
