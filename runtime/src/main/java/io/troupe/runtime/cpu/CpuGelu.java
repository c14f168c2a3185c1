package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;

/**
 * GELU (tanh approximation) in blocks staged through heap arrays, so the JIT vectorises the inner
 * loops. tanh is a rational minimax approximation {@code u P(u^2) / Q(u^2)} (degrees 5/5 in u^2,
 * fitted for Troupe on [0, 9]: max abs error 3e-11 in exact arithmetic, ~4e-7 evaluated in float32;
 * P and Q by Horner's rule in fused multiply-adds, {@link Math#fma}, which the JIT vectorises: a fifth
 * less time than separate multiplies and adds, one rounding per step instead of two),
 * clamped to |u| <= 9 where tanh is 1 within float precision (the block loops leave the clamp out:
 * every |x| > 1.8 is recomputed exactly there). Tests hold it to the exact
 * (double, Math.tanh) reference in the test kit.
 */
final class CpuGelu {
    static final int BLOCK = 2048;
    private static final float SCALE = (float) Math.sqrt(2.0 / Math.PI);
    private static final float CUBIC = 0.044715f;
    private static final float CLAMP = 9f;
    private static final double SCALE_D = Math.sqrt(2.0 / Math.PI);
    private static final double CUBIC_D = 0.044715;
    /** |x| beyond which the exact path is taken (|u| > ~1.95 there, where 1 +- tanh starts to cancel). */
    private static final float X_TAIL = 1.8f;
    private static final float P0 = 0.99999999982055088f;
    private static final float P1 = 0.14097189616748285f;
    private static final float P2 = 0.0044232774158112402f;
    private static final float P3 = 4.220661634258352e-05f;
    private static final float P4 = 1.1081031136207517e-07f;
    private static final float P5 = 3.6533972600017159e-11f;
    private static final float Q1 = 0.47430522863427627f;
    private static final float Q2 = 0.029191688174799734f;
    private static final float Q3 = 0.00050032528631662224f;
    private static final float Q4 = 2.5977566381048034e-06f;
    private static final float Q5 = 2.9381143443644578e-09f;
    private static final long FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    private static final long INT_BASE = UNSAFE.arrayBaseOffset(int[].class);
    /** The bits of {@link #X_TAIL}: a float's magnitude bits above these mean |x| > X_TAIL (or NaN). */
    private static final int X_TAIL_BITS = Float.floatToRawIntBits(X_TAIL);

    private static final ThreadLocal<float[][]> STAGING = ThreadLocal.withInitial(() -> new float[4][BLOCK]);
    private static final ThreadLocal<int[]> BITS = ThreadLocal.withInitial(() -> new int[BLOCK]);
    /** The calling thread's (row blocks, cols) partial column sums of {@link #backwardBias}. */
    private static final ThreadLocal<float[][]> PARTIAL = ThreadLocal.withInitial(() -> new float[1][]);

    private CpuGelu() {
    }

    /** out[i] = gelu(inp[i]) for i in [start, end); addresses of float32 arrays. */
    static void forward(long inp, long out, long start, long end) {
        float[][] s = STAGING.get();
        float[] x = s[0];
        float[] y = s[1];
        int[] bits = BITS.get();
        for (long b = start; b < end; b += BLOCK) {
            int n = (int) Math.min(BLOCK, end - b);
            UNSAFE.copyMemory(null, inp + 4 * b, x, FLOAT_BASE, 4L * n);
            UNSAFE.copyMemory(null, inp + 4 * b, bits, INT_BASE, 4L * n);
            forwardBlock(x, y, n, hasTail(bits, n));
            UNSAFE.copyMemory(y, FLOAT_BASE, null, out + 4 * b, 4L * n);
        }
    }

    /**
     * {@code preact[r, c] += bias[c]}, then {@code out[r, c] = gelu(preact[r, c])}, for rows [r0, r1)
     * of (rows, cols): the bias added on the staged row, so the pre-activation is read once. Bitwise
     * the same as a bias add followed by {@link #forward}.
     */
    static void biasForward(long preact, long bias, long out, int r0, int r1, int cols) {
        float[][] s = STAGING.get();
        float[] x = s[0];
        float[] y = s[1];
        float[] bs = s[3];
        int[] bits = BITS.get();
        for (int c0 = 0; c0 < cols; c0 += BLOCK) {
            int n = Math.min(BLOCK, cols - c0);
            UNSAFE.copyMemory(null, bias + 4L * c0, bs, FLOAT_BASE, 4L * n);
            for (int r = r0; r < r1; r++) {
                long at = 4L * ((long) r * cols + c0);
                UNSAFE.copyMemory(null, preact + at, x, FLOAT_BASE, 4L * n);
                for (int i = 0; i < n; i++) {
                    x[i] += bs[i];
                }
                UNSAFE.copyMemory(x, FLOAT_BASE, null, preact + at, 4L * n);
                UNSAFE.copyMemory(x, FLOAT_BASE, bits, INT_BASE, 4L * n);
                forwardBlock(x, y, n, hasTail(bits, n));
                UNSAFE.copyMemory(y, FLOAT_BASE, null, out + at, 4L * n);
            }
        }
    }

    /**
     * Whether any of the n floats whose bits are {@code bits} has |x| > {@link #X_TAIL} (or is NaN):
     * an integer OR over the magnitudes' distance below the threshold, which the JIT vectorises,
     * so blocks without tails skip the scalar tail pass.
     */
    static boolean hasTail(int[] bits, int n) {
        int acc = 0;
        for (int i = 0; i < n; i++) {
            acc |= X_TAIL_BITS - (bits[i] & 0x7fffffff);
        }
        return acc < 0;
    }

    /** dinp[i] = dout[i] * gelu'(inp[i]) for i in [start, end). */
    static void backward(long inp, long dout, long dinp, long start, long end) {
        float[][] s = STAGING.get();
        float[] x = s[0];
        float[] g = s[1];
        float[] d = s[2];
        int[] bits = BITS.get();
        for (long b = start; b < end; b += BLOCK) {
            int n = (int) Math.min(BLOCK, end - b);
            UNSAFE.copyMemory(null, inp + 4 * b, x, FLOAT_BASE, 4L * n);
            UNSAFE.copyMemory(null, inp + 4 * b, bits, INT_BASE, 4L * n);
            UNSAFE.copyMemory(null, dout + 4 * b, g, FLOAT_BASE, 4L * n);
            backwardBlock(x, g, d, n, hasTail(bits, n));
            UNSAFE.copyMemory(d, FLOAT_BASE, null, dinp + 4 * b, 4L * n);
        }
    }

    /**
     * A zeroed array of at least n floats for the column sums of one {@link #backwardBias} call, owned
     * by the calling thread (the device's workers write disjoint row blocks of it).
     */
    static float[] partialSums(int n) {
        float[][] p = PARTIAL.get();
        if (p[0] == null || p[0].length < n) {
            p[0] = new float[n];
        } else {
            java.util.Arrays.fill(p[0], 0, n, 0f);
        }
        return p[0];
    }

    /**
     * {@link #backward} over row blocks [b0, b1) of a (rows, cols) matrix (block i: rows
     * i*rowBlock .. (i+1)*rowBlock), then each of the block's gradient rows, still in cache, added into
     * {@code partial[i*cols + c]} (float, rows in order): the per-block float sums of
     * {@link CpuRows#columnSums}, which {@link CpuRows#addBlockSums} completes. (The sums go through a
     * block-local array indexed like the row: the JIT does not vectorise the add into {@code partial}
     * at an offset.)
     */
    static void backwardBias(long inp, long dout, long dinp, float[] partial, int b0, int b1, int rows, int cols,
                             int rowBlock) {
        float[] row = STAGING.get()[3];
        float[] part = STAGING.get()[1]; // backward's staging, free between its calls
        for (int blk = b0; blk < b1; blk++) {
            int r0 = blk * rowBlock;
            int r1 = Math.min(rows, r0 + rowBlock);
            backward(inp, dout, dinp, (long) r0 * cols, (long) r1 * cols);
            for (int c0 = 0; c0 < cols; c0 += BLOCK) {
                int n = Math.min(BLOCK, cols - c0);
                java.util.Arrays.fill(part, 0, n, 0f);
                for (int r = r0; r < r1; r++) {
                    UNSAFE.copyMemory(null, dinp + 4L * ((long) r * cols + c0), row, FLOAT_BASE, 4L * n);
                    for (int c = 0; c < n; c++) {
                        part[c] += row[c];
                    }
                }
                System.arraycopy(part, 0, partial, blk * cols + c0, n);
            }
        }
    }

    private static void forwardBlock(float[] x, float[] y, int n, boolean tails) {
        for (int i = 0; i < n; i++) {
            float xi = x[i];
            float t = tanhInner(SCALE * (xi + CUBIC * xi * xi * xi));
            y[i] = 0.5f * xi * (1f + t);
        }
        // In the tails 1 + t and 1 - t^2 cancel, amplifying the float error of t; recompute the
        // (few) tail elements exactly. This loop is only a compare per element otherwise, and is
        // skipped for blocks without tails.
        if (!tails) {
            return;
        }
        for (int i = 0; i < n; i++) {
            float xi = x[i];
            if (xi > X_TAIL || xi < -X_TAIL) {
                y[i] = (float) (0.5 * xi * onePlusTanh(xi));
            }
        }
    }

    private static void backwardBlock(float[] x, float[] g, float[] d, int n, boolean tails) {
        // Two simple loops vectorise; one fused loop does not (C2's SuperWord gives up on it).
        for (int i = 0; i < n; i++) {
            float xi = x[i];
            d[i] = tanhInner(SCALE * (xi + CUBIC * xi * xi * xi));
        }
        for (int i = 0; i < n; i++) {
            float xi = x[i];
            float t = d[i];
            d[i] = (0.5f * (1f + t) + 0.5f * xi * (1f - t * t) * SCALE * (1f + 3f * CUBIC * xi * xi)) * g[i];
        }
        if (!tails) {
            return;
        }
        for (int i = 0; i < n; i++) {
            float xi = x[i];
            if (xi > X_TAIL || xi < -X_TAIL) {
                double xd = xi;
                double u = SCALE_D * (xd + CUBIC_D * xd * xd * xd);
                double e = Math.exp(-2 * Math.abs(u));
                double sech2 = 4 * e / ((1 + e) * (1 + e));
                double local = 0.5 * onePlusTanh(xi) + 0.5 * xd * sech2 * SCALE_D * (1 + 3 * CUBIC_D * xd * xd);
                d[i] = (float) (local * g[i]);
            }
        }
    }

    /** 1 + tanh(u(x)) without cancellation: 2/(1+e) for u >= 0, 2e/(1+e) for u < 0, e = exp(-2|u|). */
    private static double onePlusTanh(double x) {
        double u = SCALE_D * (x + CUBIC_D * x * x * x);
        double e = Math.exp(-2 * Math.abs(u));
        return u >= 0 ? 2 / (1 + e) : 2 * e / (1 + e);
    }

    /** The rational tanh, clamped to |u| <= 9 where it is 1 within float precision. */
    static float tanh(float u) {
        return tanhInner(Math.max(-CLAMP, Math.min(CLAMP, u)));
    }

    /**
     * The rational tanh without the clamp, for the block loops above: there |x| <= {@link #X_TAIL}
     * keeps |u| below 1.7, and every element beyond (where an unclamped u could reach the
     * approximation's limits, or overflow) is recomputed exactly by the tail pass, so the clamp (two
     * min/max per element, a third of the loop's time) never changes a result.
     */
    private static float tanhInner(float c) {
        float z = c * c;
        float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(P5, z, P4), z, P3), z, P2), z, P1), z, P0);
        float q = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(Q5, z, Q4), z, Q3), z, Q2), z, Q1), z, 1f);
        return c * p / q;
    }
}
