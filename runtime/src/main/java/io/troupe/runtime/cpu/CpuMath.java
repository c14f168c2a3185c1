package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;

/** Scalar float math for the CPU kernels. */
final class CpuMath {
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float ROUND = 12582912f; // 1.5 * 2^23: adding it rounds to an integer
    /** The bits of {@link #ROUND} less the exponent bias: t's bits minus this are k + 127. */
    private static final int ROUND_BITS_MINUS_BIAS = Float.floatToRawIntBits(ROUND) - 127;
    private static final long FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    private static final long INT_BASE = UNSAFE.arrayBaseOffset(int[].class);
    private static final ThreadLocal<int[][]> INTS = ThreadLocal.withInitial(() -> new int[1][]);

    private CpuMath() {
    }

    /**
     * e^x in float: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its degree-6
     * Taylor polynomial, 2^k built in the exponent bits. The argument is clamped to [-88, 88], so k lies
     * in [-127, 127], and k = -127 (x below about -87.68) gives the bits of 0: it returns 0 there, a
     * subnormal between there and about -87.34, max relative error ~2.5e-7 over [-87, 88], and e^88
     * above 88. Softmax and cross-entropy only feed it x <= 0. About three times faster than
     * {@link Math#exp} here.
     */
    static float exp(float x) {
        float v = Math.max(-88f, Math.min(88f, x));
        float t = v * LOG2E + ROUND;
        float k = t - ROUND;
        float r = v - k * LN2_HI - k * LN2_LO;
        float p = 1f + r * (1f + r * (0.5f + r * (1.6666666e-1f + r * (4.1666664e-2f
            + r * (8.333335e-3f + r * 1.3888889e-3f)))));
        return p * Float.intBitsToFloat(((int) k + 127) << 23);
    }

    /**
     * {@code x[i] = exp(x[i])} for i in [0, n), each result bitwise equal to {@link #exp}, in three loops
     * the JIT vectorises: the range reduction and polynomial (the polynomial into {@code x}, the rounded
     * {@code t = v log2(e) + 1.5 * 2^23} into {@code scratch}); 2^k built from t's bits in an int array
     * (t's bits are those of 1.5 * 2^23 plus k; the float-to-int conversion of {@link #exp} is what the
     * JIT does not vectorise); the product. {@link #expBlockScalarScale} is its simpler reference.
     */
    static void expBlock(float[] x, float[] scratch, int n) {
        int[] bits = intScratch(n);
        for (int i = 0; i < n; i++) {
            float v = Math.max(-88f, Math.min(88f, x[i]));
            float t = v * LOG2E + ROUND;
            float k = t - ROUND;
            float r = v - k * LN2_HI - k * LN2_LO;
            scratch[i] = t;
            x[i] = 1f + r * (1f + r * (0.5f + r * (1.6666666e-1f + r * (4.1666664e-2f
                + r * (8.333335e-3f + r * 1.3888889e-3f)))));
        }
        UNSAFE.copyMemory(scratch, FLOAT_BASE, bits, INT_BASE, 4L * n);
        for (int i = 0; i < n; i++) {
            bits[i] = (bits[i] - ROUND_BITS_MINUS_BIAS) << 23;
        }
        UNSAFE.copyMemory(bits, INT_BASE, scratch, FLOAT_BASE, 4L * n);
        for (int i = 0; i < n; i++) {
            x[i] *= scratch[i];
        }
    }

    /**
     * The two-loop form of {@link #expBlock}, kept as its reference: the range reduction and
     * polynomial vectorised, 2^k built per element by a scalar conversion.
     */
    static void expBlockScalarScale(float[] x, float[] scratch, int n) {
        for (int i = 0; i < n; i++) {
            float v = Math.max(-88f, Math.min(88f, x[i]));
            float k = (v * LOG2E + ROUND) - ROUND;
            float r = v - k * LN2_HI - k * LN2_LO;
            scratch[i] = k;
            x[i] = 1f + r * (1f + r * (0.5f + r * (1.6666666e-1f + r * (4.1666664e-2f
                + r * (8.333335e-3f + r * 1.3888889e-3f)))));
        }
        for (int i = 0; i < n; i++) {
            x[i] *= Float.intBitsToFloat(((int) scratch[i] + 127) << 23);
        }
    }

    private static int[] intScratch(int n) {
        int[][] b = INTS.get();
        if (b[0] == null || b[0].length < n) {
            b[0] = new int[Math.max(n, 2048)];
        }
        return b[0];
    }
}
