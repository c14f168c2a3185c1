package io.troupe.runtime.cpu;

/** Scalar float math for the CPU kernels. */
final class CpuMath {
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float ROUND = 12582912f; // 1.5 * 2^23: adding it rounds to an integer

    private CpuMath() {
    }

    /**
     * e^x in float: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its degree-6
     * Taylor polynomial, 2^k built in the exponent bits. Max relative error ~2.5e-7 over
     * [-87, 88]; below -87 it returns 0 (softmax and cross-entropy only feed it x <= 0), above 88
     * it saturates at e^88. About three times faster than {@link Math#exp} here.
     */
    static float exp(float x) {
        if (x < -87f) {
            return 0f;
        }
        float v = Math.min(88f, x);
        float k = (v * LOG2E + ROUND) - ROUND;
        float r = v - k * LN2_HI - k * LN2_LO;
        float p = 1f + r * (1f + r * (0.5f + r * (1.6666666e-1f + r * (4.1666664e-2f
            + r * (8.333335e-3f + r * 1.3888889e-3f)))));
        return p * Float.intBitsToFloat(((int) k + 127) << 23);
    }

    /**
     * {@code x[i] = exp(x[i])} for i in [0, n), each result bitwise equal to {@link #exp}: the range
     * reduction and polynomial run in a loop the JIT vectorises (the polynomial into {@code x}, the
     * clamped argument into {@code scratch}), then a scalar loop builds 2^k from its bits (a conversion
     * the JIT does not vectorise) and applies the cut-off below -87. About four times faster than
     * calling {@link #exp} per element.
     */
    static void expBlock(float[] x, float[] scratch, int n) {
        for (int i = 0; i < n; i++) {
            float v = Math.min(88f, x[i]);
            float k = (v * LOG2E + ROUND) - ROUND;
            float r = v - k * LN2_HI - k * LN2_LO;
            scratch[i] = v;
            x[i] = 1f + r * (1f + r * (0.5f + r * (1.6666666e-1f + r * (4.1666664e-2f
                + r * (8.333335e-3f + r * 1.3888889e-3f)))));
        }
        for (int i = 0; i < n; i++) {
            float v = scratch[i];
            float k = (v * LOG2E + ROUND) - ROUND;
            x[i] = v < -87f ? 0f : x[i] * Float.intBitsToFloat(((int) k + 127) << 23);
        }
    }
}
