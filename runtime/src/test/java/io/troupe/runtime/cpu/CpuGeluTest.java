package io.troupe.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The block GELU (no clamp in its loop) against the clamped scalar formula, bitwise, below the tail threshold. */
class CpuGeluTest {
    @Test
    @Timeout(30)
    void shouldMatchTheClampedScalarFormulaBitwiseBelowTheTails() {
        Random rnd = new Random(3);
        int n = 5000;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = -1.8f + 3.6f * rnd.nextFloat();
        }
        x[0] = 1.8f;
        x[1] = -1.8f;
        float scale = (float) Math.sqrt(2.0 / Math.PI);
        try (CpuStorage in = new CpuStorage(4L * n); CpuStorage out = new CpuStorage(4L * n)) {
            for (int i = 0; i < n; i++) {
                CpuMemory.putFloat(in.address(), i, x[i]);
            }
            CpuGelu.forward(in.address(), out.address(), 0, n);
            for (int i = 0; i < n; i++) {
                float xi = x[i];
                float expected = 0.5f * xi * (1f + CpuGelu.tanh(scale * (xi + 0.044715f * xi * xi * xi)));
                float actual = CpuMemory.getFloat(out.address(), i);
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual), "gelu(" + xi + ")");
            }
        }
    }
}
