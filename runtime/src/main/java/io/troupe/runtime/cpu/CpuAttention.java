package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;

import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;

/**
 * Causal multi-head attention on the CPU: per (batch, head) two OpenBLAS gemms around a masked
 * softmax, split over the device's threads by (batch, head). The softmax probabilities
 * (batch, heads, seq, seq) are saved for the backward.
 */
final class CpuAttention {
    private static final long FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    private static final ThreadLocal<float[][]> ROWS = ThreadLocal.withInitial(() -> new float[3][]);
    private final CpuParallel parallel;
    private CpuStorage scratch;

    CpuAttention(CpuParallel parallel) {
        this.parallel = parallel;
    }

    void forward(Tensor qkv, Tensor out, Tensor saved, int batch, int seq, int heads, int headDim) {
        final int c = heads * headDim;
        final int c3 = 3 * c;
        CpuDevice.requireCapacity(qkv, (long) batch * seq * c3, "attention qkv");
        CpuDevice.requireCapacity(out, (long) batch * seq * c, "attention out");
        CpuDevice.requireCapacity(saved, (long) batch * heads * seq * seq, "attention saved");
        final long qkvA = qkv.address();
        final long outA = out.address();
        final long pA = saved.address();
        final float scale = (float) (1.0 / Math.sqrt(headDim));
        parallel.forRange(batch * heads, 1, (s, e) -> {
            for (int bh = s; bh < e; bh++) {
                int b = bh / heads;
                int h = bh % heads;
                long q = qkvA + 4L * ((long) b * seq * c3 + (long) h * headDim);
                long k = q + 4L * c;
                long v = q + 8L * c;
                long p = pA + 4L * bh * seq * seq;
                // (T, T) = (T, hd) @ (hd, T)
                CpuBlas.sgemm(false, true, seq, seq, headDim, scale, q, c3, k, c3, 0f, p, seq);
                softmaxCausal(p, seq);
                // (T, hd) = (T, T) @ (T, hd), written into columns h*hd.. of out
                long o = outA + 4L * ((long) b * seq * c + (long) h * headDim);
                CpuBlas.sgemm(false, false, seq, headDim, seq, 1f, p, seq, v, c3, 0f, o, c);
            }
        });
    }

    /**
     * Row t of the (seq, seq) scores at {@code p} becomes softmax over columns 0..t, zeros after. The
     * matrix is staged through a heap array; each row's max (in four interleaved partial maxima) and
     * shift go into a packed array of the causal entries only (row t at t(t+1)/2), whose exponentials
     * are one {@link CpuMath#expBlock} (long loops vectorise better than one per row, and the masked
     * half is never exponentiated); then per row the sum in four double partial sums combined in a
     * fixed order, and the scaling back into the row. Bitwise the same as {@link #softmaxCausalUnpacked}.
     */
    static void softmaxCausal(long p, int seq) {
        int nn = seq * seq;
        int packed = seq * (seq + 1) / 2;
        float[] m = rowBuffer(0, nn);
        float[] q = rowBuffer(1, packed);
        float[] scratch = rowBuffer(2, packed);
        UNSAFE.copyMemory(null, p, m, FLOAT_BASE, 4L * nn);
        for (int t = 0, o = 0; t < seq; o += ++t) {
            int row = t * seq;
            float max = max4(m, row, row + t + 1);
            for (int j = 0; j <= t; j++) {
                q[o + j] = m[row + j] - max;
            }
        }
        CpuMath.expBlock(q, scratch, packed);
        for (int t = 0, o = 0; t < seq; o += ++t) {
            int row = t * seq;
            float inv = (float) (1.0 / sum4(q, o, o + t + 1));
            for (int j = 0; j <= t; j++) {
                m[row + j] = q[o + j] * inv;
            }
            Arrays.fill(m, row + t + 1, row + seq, 0f);
        }
        UNSAFE.copyMemory(m, FLOAT_BASE, null, p, 4L * nn);
    }

    /**
     * The simple staged form of {@link #softmaxCausal}, kept as its reference: per row the max and the
     * shift (masked entries set to -infinity), the exponentials of the whole matrix in one
     * {@link CpuMath#expBlock} (the masked entries come out 0), per row the sum and the scaling.
     */
    static void softmaxCausalUnpacked(long p, int seq) {
        int nn = seq * seq;
        float[] m = rowBuffer(0, nn);
        float[] scratch = rowBuffer(1, nn);
        UNSAFE.copyMemory(null, p, m, FLOAT_BASE, 4L * nn);
        for (int t = 0; t < seq; t++) {
            int row = t * seq;
            int end = row + t + 1;
            float max = m[row];
            for (int j = row + 1; j < end; j++) {
                float x = m[j];
                max = x > max ? x : max;
            }
            for (int j = row; j < end; j++) {
                m[j] -= max;
            }
            Arrays.fill(m, end, row + seq, Float.NEGATIVE_INFINITY);
        }
        CpuMath.expBlock(m, scratch, nn);
        for (int t = 0; t < seq; t++) {
            int row = t * seq;
            int end = row + t + 1;
            float inv = (float) (1.0 / sum4(m, row, end));
            for (int j = row; j < end; j++) {
                m[j] *= inv;
            }
        }
        UNSAFE.copyMemory(m, FLOAT_BASE, null, p, 4L * nn);
    }

    /**
     * The max of x[from..to) (to > from) in four interleaved partial maxima of {@link Math#max}, which
     * the JIT compiles without branches: the same value as {@link #max1}'s one chain for numbers (of +0
     * and -0 either may come back, and a shift by either gives the same exponentials); a NaN anywhere
     * gives NaN, where one chain keeps it only at x[from] (a row with a NaN comes out all NaN either way).
     */
    static float max4(float[] x, int from, int to) {
        float m0 = x[from];
        float m1 = m0;
        float m2 = m0;
        float m3 = m0;
        int j = from + 1;
        for (; j + 3 < to; j += 4) {
            m0 = Math.max(m0, x[j]);
            m1 = Math.max(m1, x[j + 1]);
            m2 = Math.max(m2, x[j + 2]);
            m3 = Math.max(m3, x[j + 3]);
        }
        for (; j < to; j++) {
            m0 = Math.max(m0, x[j]);
        }
        return Math.max(Math.max(m0, m1), Math.max(m2, m3));
    }

    /**
     * The max of x[from..to) as one chain of {@code v > max ? v : max}: {@link #max4}'s reference. The
     * JIT compiles the comparison as a branch, which random scores mispredict about half the time.
     */
    static float max1(float[] x, int from, int to) {
        float max = x[from];
        for (int j = from + 1; j < to; j++) {
            max = x[j] > max ? x[j] : max;
        }
        return max;
    }

    /** The sum of x[0..n) in four double partial sums (elements i mod 4), combined as (s0 + s1) + (s2 + s3). */
    static double sum4(float[] x, int n) {
        return sum4(x, 0, n);
    }

    /**
     * The sum of x[from..to) in four double partial sums (elements from + i, i mod 4), combined as
     * (s0 + s1) + (s2 + s3).
     */
    static double sum4(float[] x, int from, int to) {
        double s0 = 0;
        double s1 = 0;
        double s2 = 0;
        double s3 = 0;
        int n = to;
        int j = from;
        for (; j + 3 < n; j += 4) {
            s0 += x[j];
            s1 += x[j + 1];
            s2 += x[j + 2];
            s3 += x[j + 3];
        }
        for (; j < n; j++) {
            s0 += x[j];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /**
     * dS = P * (dP - rowsum(P * dP)) over the causal entries of the (seq, seq) {@code dp} (in place),
     * zeros after; both matrices staged whole through heap arrays (one copy each way instead of
     * three per row), the row sum in four double partial sums.
     */
    static void softmaxBackwardCausal(long p, long dp, int seq) {
        int nn = seq * seq;
        float[] pm = rowBuffer(0, nn);
        float[] dm = rowBuffer(1, nn);
        UNSAFE.copyMemory(null, p, pm, FLOAT_BASE, 4L * nn);
        UNSAFE.copyMemory(null, dp, dm, FLOAT_BASE, 4L * nn);
        for (int t = 0; t < seq; t++) {
            int row = t * seq;
            int end = row + t + 1;
            double s0 = 0;
            double s1 = 0;
            double s2 = 0;
            double s3 = 0;
            int j = row;
            for (; j + 3 < end; j += 4) {
                s0 += (double) pm[j] * dm[j];
                s1 += (double) pm[j + 1] * dm[j + 1];
                s2 += (double) pm[j + 2] * dm[j + 2];
                s3 += (double) pm[j + 3] * dm[j + 3];
            }
            for (; j < end; j++) {
                s0 += (double) pm[j] * dm[j];
            }
            float dot = (float) ((s0 + s1) + (s2 + s3));
            for (int k = row; k < end; k++) {
                dm[k] = pm[k] * (dm[k] - dot);
            }
            Arrays.fill(dm, end, row + seq, 0f);
        }
        UNSAFE.copyMemory(dm, FLOAT_BASE, null, dp, 4L * nn);
    }

    /** The row-by-row form of {@link #softmaxBackwardCausal}, kept as its reference (bitwise the same). */
    static void softmaxBackwardCausalRows(long p, long dp, int seq) {
        float[] pr = rowBuffer(0, seq);
        float[] dr = rowBuffer(1, seq);
        for (int t = 0; t < seq; t++) {
            long off = 4L * t * seq;
            int n = t + 1;
            UNSAFE.copyMemory(null, p + off, pr, FLOAT_BASE, 4L * n);
            UNSAFE.copyMemory(null, dp + off, dr, FLOAT_BASE, 4L * n);
            double s0 = 0;
            double s1 = 0;
            double s2 = 0;
            double s3 = 0;
            int j = 0;
            for (; j + 3 < n; j += 4) {
                s0 += (double) pr[j] * dr[j];
                s1 += (double) pr[j + 1] * dr[j + 1];
                s2 += (double) pr[j + 2] * dr[j + 2];
                s3 += (double) pr[j + 3] * dr[j + 3];
            }
            for (; j < n; j++) {
                s0 += (double) pr[j] * dr[j];
            }
            float dot = (float) ((s0 + s1) + (s2 + s3));
            for (int k = 0; k < n; k++) {
                dr[k] = pr[k] * (dr[k] - dot);
            }
            Arrays.fill(dr, n, seq, 0f);
            UNSAFE.copyMemory(dr, FLOAT_BASE, null, dp + off, 4L * seq);
        }
    }

    private static float[] rowBuffer(int i, int seq) {
        float[][] b = ROWS.get();
        if (b[i] == null || b[i].length < seq) {
            b[i] = new float[seq];
        }
        return b[i];
    }

    void backward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor saved, int batch, int seq, int heads, int headDim) {
        final int c = heads * headDim;
        final int c3 = 3 * c;
        CpuDevice.requireCapacity(dqkv, (long) batch * seq * c3, "attentionBackward dqkv");
        CpuDevice.requireCapacity(dout, (long) batch * seq * c, "attentionBackward dout");
        CpuDevice.requireCapacity(qkv, (long) batch * seq * c3, "attentionBackward qkv");
        CpuDevice.requireCapacity(saved, (long) batch * heads * seq * seq, "attentionBackward saved");
        final long dqkvA = dqkv.address();
        final long doutA = dout.address();
        final long qkvA = qkv.address();
        final long pA = saved.address();
        final long dpA = scratch((long) batch * heads * seq * seq * 4);
        final float scale = (float) (1.0 / Math.sqrt(headDim));
        parallel.forRange(batch * heads, 1, (s, e) -> {
            for (int bh = s; bh < e; bh++) {
                int b = bh / heads;
                int h = bh % heads;
                long off = (long) b * seq * c3 + (long) h * headDim;
                long q = qkvA + 4L * off;
                long k = q + 4L * c;
                long v = q + 8L * c;
                long dq = dqkvA + 4L * off;
                long dk = dq + 4L * c;
                long dv = dq + 8L * c;
                long p = pA + 4L * bh * seq * seq;
                long dp = dpA + 4L * bh * seq * seq;
                long dO = doutA + 4L * ((long) b * seq * c + (long) h * headDim);
                // dP = dO @ V^T  (T, T)
                CpuBlas.sgemm(false, true, seq, seq, headDim, 1f, dO, c, v, c3, 0f, dp, seq);
                // dS = P * (dP - rowsum(P * dP)), causal entries only
                softmaxBackwardCausal(p, dp, seq);
                // dQ = scale dS @ K, dK = scale dS^T @ Q, dV = P^T @ dO   (T, hd) each
                CpuBlas.sgemm(false, false, seq, headDim, seq, scale, dp, seq, k, c3, 0f, dq, c3);
                CpuBlas.sgemm(true, false, seq, headDim, seq, scale, dp, seq, q, c3, 0f, dk, c3);
                CpuBlas.sgemm(true, false, seq, headDim, seq, 1f, p, seq, dO, c, 0f, dv, c3);
            }
        });
    }

    /** Frees the backward's scratch; the device calls this from its close. */
    void close() {
        if (scratch != null) {
            scratch.close();
            scratch = null;
        }
    }

    private long scratch(long bytes) {
        if (scratch == null || scratch.lengthBytes() < bytes) {
            if (scratch != null) {
                scratch.close();
            }
            scratch = new CpuStorage(bytes);
        }
        return scratch.address();
    }
}
