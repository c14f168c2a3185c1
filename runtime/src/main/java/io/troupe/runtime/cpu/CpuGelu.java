package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;

/**
 * GELU (tanh approximation) in blocks staged through heap arrays, so the JIT vectorises the inner
 * loops. It is evaluated in its logistic form, {@code gelu(x) = 0.5 x (1 + tanh u) = x / (1 + e^(-2u))}
 * with {@code u = sqrt(2/pi) (x + 0.044715 x^3)}, and its derivative as
 * {@code s + 2 x u' (1 - s) s} with {@code s = 1 / (1 + e^(-2u))} and {@code 1 - s = e^(-2u) s}: neither
 * form cancels at either tail (where {@code 1 + tanh u} and {@code 1 - tanh^2 u} do), so every element
 * takes the same branch-free path, three loops the JIT vectorises with {@link CpuMath#expBlock} in between
 * (about 2.5 ulp from the exact value; e^(-2u) is clamped at e^88, where the result is below 1e-38).
 * {@link #gelu} and {@link #geluGrad} are the scalar reference, bitwise equal to the blocks; tests also
 * hold both to the exact (double, Math.tanh) formula in the test kit.
 */
final class CpuGelu {
    static final int BLOCK = 2048;
    private static final float SCALE = (float) Math.sqrt(2.0 / Math.PI);
    private static final float CUBIC = 0.044715f;
    /** -2 sqrt(2/pi): the exponent of e^(-2u) is this times (x + 0.044715 x^3). */
    private static final float MINUS_TWO_SCALE = -2f * SCALE;
    /** 3 * 0.044715, as the derivative's u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2) uses it. */
    private static final float CUBIC3 = 3f * CUBIC;
    private static final long FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);

    /** Per thread: x, y (or the output gradient), the input gradient, the bias (or a row), the exp's scratch. */
    private static final ThreadLocal<float[][]> STAGING = ThreadLocal.withInitial(() -> new float[5][BLOCK]);
    /** The calling thread's (row blocks, cols) partial column sums of {@link #backwardBias}. */
    private static final ThreadLocal<float[][]> PARTIAL = ThreadLocal.withInitial(() -> new float[1][]);

    private CpuGelu() {
    }

    /** out[i] = gelu(inp[i]) for i in [start, end); addresses of float32 arrays. */
    static void forward(long inp, long out, long start, long end) {
        float[][] s = STAGING.get();
        float[] x = s[0];
        float[] y = s[1];
        float[] scratch = s[4];
        for (long b = start; b < end; b += BLOCK) {
            int n = (int) Math.min(BLOCK, end - b);
            UNSAFE.copyMemory(null, inp + 4 * b, x, FLOAT_BASE, 4L * n);
            forwardBlock(x, y, scratch, n);
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
        float[] scratch = s[4];
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
                forwardBlock(x, y, scratch, n);
                UNSAFE.copyMemory(y, FLOAT_BASE, null, out + at, 4L * n);
            }
        }
    }

    /** dinp[i] = dout[i] * gelu'(inp[i]) for i in [start, end). */
    static void backward(long inp, long dout, long dinp, long start, long end) {
        float[][] s = STAGING.get();
        float[] x = s[0];
        float[] g = s[1];
        float[] d = s[2];
        float[] scratch = s[4];
        for (long b = start; b < end; b += BLOCK) {
            int n = (int) Math.min(BLOCK, end - b);
            UNSAFE.copyMemory(null, inp + 4 * b, x, FLOAT_BASE, 4L * n);
            UNSAFE.copyMemory(null, dout + 4 * b, g, FLOAT_BASE, 4L * n);
            backwardBlock(x, g, d, scratch, n);
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

    /** y[i] = gelu(x[i]) for i in [0, n): the exponent, {@link CpuMath#expBlock} in place in y, the quotient. */
    private static void forwardBlock(float[] x, float[] y, float[] scratch, int n) {
        for (int i = 0; i < n; i++) {
            float xi = x[i];
            y[i] = MINUS_TWO_SCALE * (xi + CUBIC * xi * xi * xi);
        }
        CpuMath.expBlock(y, scratch, n);
        for (int i = 0; i < n; i++) {
            y[i] = x[i] / (1f + y[i]);
        }
    }

    /** d[i] = g[i] * gelu'(x[i]) for i in [0, n), the same way as {@link #forwardBlock}. */
    private static void backwardBlock(float[] x, float[] g, float[] d, float[] scratch, int n) {
        for (int i = 0; i < n; i++) {
            float xi = x[i];
            d[i] = MINUS_TWO_SCALE * (xi + CUBIC * xi * xi * xi);
        }
        CpuMath.expBlock(d, scratch, n);
        for (int i = 0; i < n; i++) {
            float xi = x[i];
            float e = d[i];
            float s = 1f / (1f + e);
            float es = e * s;
            d[i] = (s + 2f * xi * SCALE * (1f + CUBIC3 * xi * xi) * es * s) * g[i];
        }
    }

    /** The scalar reference of the block loops: gelu(x), bitwise what {@link #forward} gives. */
    static float gelu(float x) {
        return x / (1f + CpuMath.exp(MINUS_TWO_SCALE * (x + CUBIC * x * x * x)));
    }

    /** The scalar reference of the block loops: gelu'(x), bitwise {@link #backward} for an output gradient 1. */
    static float geluGrad(float x) {
        float e = CpuMath.exp(MINUS_TWO_SCALE * (x + CUBIC * x * x * x));
        float s = 1f / (1f + e);
        float es = e * s;
        return s + 2f * x * SCALE * (1f + CUBIC3 * x * x) * es * s;
    }
}
