package io.troupe.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The block GELU and its gradient against their scalar reference, bitwise, over the whole float range of use. */
class CpuGeluTest {
    @Test
    @Timeout(30)
    void shouldMatchTheScalarReferenceBitwiseAtEveryMagnitude() {
        Random rnd = new Random(3);
        int n = 5000 + CpuGelu.BLOCK; // two blocks, the second one partial
        float[] x = new float[n];
        float[] g = new float[n];
        for (int i = 0; i < n; i++) {
            // magnitudes from 1e-6 to 1e3, both signs: the small, the middle, both tails and u far past exp's clamp
            x[i] = (rnd.nextBoolean() ? 1 : -1) * (float) Math.pow(10, -6 + 9 * rnd.nextDouble());
            g[i] = (float) rnd.nextGaussian();
        }
        x[0] = 0f;
        x[1] = -0f;
        x[2] = 1e10f;
        x[3] = -1e10f;
        try (CpuStorage in = new CpuStorage(4L * n); CpuStorage out = new CpuStorage(4L * n);
             CpuStorage dout = new CpuStorage(4L * n); CpuStorage dinp = new CpuStorage(4L * n)) {
            for (int i = 0; i < n; i++) {
                CpuMemory.putFloat(in.address(), i, x[i]);
                CpuMemory.putFloat(dout.address(), i, g[i]);
            }
            CpuGelu.forward(in.address(), out.address(), 0, n);
            CpuGelu.backward(in.address(), dout.address(), dinp.address(), 0, n);
            for (int i = 0; i < n; i++) {
                float xi = x[i];
                assertEquals(Float.floatToRawIntBits(CpuGelu.gelu(xi)),
                    Float.floatToRawIntBits(CpuMemory.getFloat(out.address(), i)), "gelu(" + xi + ")");
                assertEquals(Float.floatToRawIntBits(CpuGelu.geluGrad(xi) * g[i]),
                    Float.floatToRawIntBits(CpuMemory.getFloat(dinp.address(), i)), "gelu'(" + xi + ") * " + g[i]);
            }
        }
    }

    /** The scalar reference against the formula in double. */
    @Test
    @Timeout(30)
    void shouldKeepTheScalarReferenceWithinAFewUlpsOfTheExactFormula() {
        double k = Math.sqrt(2.0 / Math.PI);
        for (float x = -9f; x <= 9f; x += 1f / 512) {
            double u = k * (x + 0.044715 * x * x * x);
            // 0.5 x (1 + tanh u) in the logistic form, which does not cancel in double either at x = -9
            double e = Math.exp(-2 * u);
            double s = 1 / (1 + e);
            double y = x * s;
            double dy = s + 2 * x * k * (1 + 3 * 0.044715 * x * x) * e * s * s;
            // u is rounded to float: e^(-2u) is off by about 2|u| ulp relative, which dominates at the negative tail
            double rel = Math.ulp(1f) * (8 + 4 * Math.abs(u));
            assertEquals(y, CpuGelu.gelu(x), rel * Math.abs(y) + 1e-37, "gelu(" + x + ")");
            assertEquals(dy, CpuGelu.geluGrad(x), rel * (1 + Math.abs(dy)), "gelu'(" + x + ")");
        }
    }
}
