package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;

import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;

/**
 * Causal multi-head attention on the CPU, split over the device's threads by (batch, head), around a
 * masked softmax; the softmax probabilities (batch, heads, seq, seq) are saved for the backward. The
 * products run on {@link CpuAttentionVectorKernel} and {@link CpuAttentionVectorTransposedKernel} when the JVM
 * has the Vector API ({@link #VECTOR_API}), split by batch rows: each row's qkv block (backward: and dout block)
 * staged into a heap array in one copy, per head only the causal blocks computed, no native call; otherwise, and
 * when switched off ({@link #useVectorKernel}), per (batch, head) as OpenBLAS gemms of the whole (seq, seq)
 * matrices. The two differ in the last bits (summation order).
 */
final class CpuAttention {
    /** True when the running JVM has the Vector API module ({@code --add-modules jdk.incubator.vector}). */
    static final boolean VECTOR_API = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    private static final long FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    private static final ThreadLocal<float[][]> ROWS = ThreadLocal.withInitial(() -> new float[3][]);
    /** Per thread: the staged operands of the vector kernel's (batch, head). */
    private static final ThreadLocal<float[][]> STAGED = ThreadLocal.withInitial(() -> new float[7][]);
    /** Largest staged array of the vector kernel, in floats (64 Mi: 256 MiB per array and thread). */
    private static final long MAX_STAGED = 1L << 26;
    private static volatile boolean vectorKernel =
        Boolean.parseBoolean(System.getProperty("troupe.cpu.vectorKernels", "true"));
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
        if (usesVectorKernel() && vectorKernelFits(seq, c3)) {
            parallel.forRange(batch, 1, (s, e) -> {
                for (int b = s; b < e; b++) {
                    forwardOnVectorKernel(qkvA, outA, pA, b, seq, heads, headDim, scale);
                }
            });
            return;
        }
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
        float[] m = rowBuffer(0, nn);
        UNSAFE.copyMemory(null, p, m, FLOAT_BASE, 4L * nn);
        softmaxCausalInPlace(m, seq);
        UNSAFE.copyMemory(m, FLOAT_BASE, null, p, 4L * nn);
    }

    /**
     * {@link #softmaxCausal} on a heap (seq, seq) matrix: row t of {@code m} becomes softmax over columns
     * 0..t, zeros after; only those columns are read.
     */
    static void softmaxCausalInPlace(float[] m, int seq) {
        int packed = seq * (seq + 1) / 2;
        float[] q = rowBuffer(1, packed);
        float[] scratch = rowBuffer(2, packed);
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
        softmaxBackwardCausalInPlace(pm, dm, seq);
        UNSAFE.copyMemory(dm, FLOAT_BASE, null, dp, 4L * nn);
    }

    /**
     * {@link #softmaxBackwardCausal} on heap (seq, seq) matrices: {@code dm} becomes dS in place; of
     * {@code pm} and {@code dm} only the causal entries are read.
     */
    static void softmaxBackwardCausalInPlace(float[] pm, float[] dm, int seq) {
        for (int t = 0; t < seq; t++) {
            int row = t * seq;
            int end = row + t + 1;
            float dot = dot4(pm, dm, row, end);
            for (int k = row; k < end; k++) {
                dm[k] = pm[k] * (dm[k] - dot);
            }
            Arrays.fill(dm, end, row + seq, 0f);
        }
    }

    /**
     * The sum of pm[j] dm[j] over [from, to) in four double partial sums (elements from + i, i mod 4), combined
     * as (s0 + s1) + (s2 + s3), rounded to float.
     */
    static float dot4(float[] pm, float[] dm, int from, int to) {
        double s0 = 0;
        double s1 = 0;
        double s2 = 0;
        double s3 = 0;
        int j = from;
        for (; j + 3 < to; j += 4) {
            s0 += (double) pm[j] * dm[j];
            s1 += (double) pm[j + 1] * dm[j + 1];
            s2 += (double) pm[j + 2] * dm[j + 2];
            s3 += (double) pm[j + 3] * dm[j + 3];
        }
        for (; j < to; j++) {
            s0 += (double) pm[j] * dm[j];
        }
        return (float) ((s0 + s1) + (s2 + s3));
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
        if (usesVectorKernel() && vectorKernelFits(seq, c3)) {
            parallel.forRange(batch, 1, (s, e) -> {
                for (int b = s; b < e; b++) {
                    backwardOnVectorKernel(dqkvA, doutA, qkvA, pA, b, seq, heads, headDim, scale);
                }
            });
            return;
        }
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

    /** Whether the products run on {@link CpuAttentionVectorKernel}: the JVM has the Vector API and it is on. */
    static boolean usesVectorKernel() {
        return VECTOR_API && vectorKernel;
    }

    /** Whether a batch row's (seq, 3C) block and a (seq, seq) matrix fit the vector kernel's heap arrays. */
    private static boolean vectorKernelFits(int seq, int c3) {
        return (long) seq * c3 <= MAX_STAGED && (long) seq * seq <= MAX_STAGED;
    }

    /**
     * Switches the vector kernel on or off (default on where the JVM has the Vector API; system property
     * {@code troupe.cpu.vectorKernels=false} starts it off), for same-run comparisons with the OpenBLAS form;
     * {@link CpuDevice#useVectorKernels} switches the cross-entropy's vector rows with it.
     */
    static void useVectorKernel(boolean on) {
        vectorKernel = on;
    }

    /**
     * One batch row of the forward on the vector kernel: its (seq, 3C) qkv block staged in one copy; per head
     * K^T packed, the scaled scores of the causal blocks, the softmax in place, P saved, O = P V into the
     * head's columns of a staged (seq, C) block, written back in one copy.
     */
    private static void forwardOnVectorKernel(long qkvA, long outA, long pA, int b, int seq, int heads, int hd,
                                              float scale) {
        final int c = heads * hd;
        final int c3 = 3 * c;
        final int nn = seq * seq;
        final int pad = CpuAttentionSoftmaxVector.PAD;
        float[] blk = staged(0, seq * c3);
        float[] kt = staged(1, seq * hd);
        float[] s = staged(2, nn + pad);
        float[] o = staged(3, seq * c);
        float[] packed = staged(5, seq * (seq + 1) / 2 + pad);
        float[] scratch = staged(6, seq * (seq + 1) / 2 + pad);
        UNSAFE.copyMemory(null, qkvA + 4L * b * seq * c3, blk, FLOAT_BASE, 4L * seq * c3);
        for (int h = 0; h < heads; h++) {
            int q = h * hd;
            CpuAttentionVectorKernel.transpose(blk, c + q, c3, kt, seq, hd);
            CpuAttentionVectorKernel.scoresCausal(blk, q, c3, kt, s, seq, hd, scale);
            CpuAttentionSoftmaxVector.causal(s, packed, scratch, seq);
            UNSAFE.copyMemory(s, FLOAT_BASE, null, pA + 4L * ((long) b * heads + h) * nn, 4L * nn);
            CpuAttentionVectorKernel.lowerTimes(s, blk, 2 * c + q, c3, o, q, c, seq, hd, 1f);
        }
        UNSAFE.copyMemory(o, FLOAT_BASE, null, outA + 4L * b * seq * c, 4L * seq * c);
    }

    /**
     * One batch row of the backward on the vector kernel: its qkv and dout blocks staged in one copy each; per
     * head V^T packed, dP = dO V^T (causal blocks), dS in place, dQ = scale dS K, dK = scale dS^T Q,
     * dV = P^T dO into the head's columns of a staged (seq, 3C) block, written back in one copy.
     */
    private static void backwardOnVectorKernel(long dqkvA, long doutA, long qkvA, long pA, int b, int seq, int heads,
                                               int hd, float scale) {
        final int c = heads * hd;
        final int c3 = 3 * c;
        final int nn = seq * seq;
        float[] blk = staged(0, seq * c3);
        float[] vt = staged(1, seq * hd);
        final int pad = CpuAttentionSoftmaxVector.PAD;
        float[] ds = staged(2, nn + pad);
        float[] dblk = staged(3, seq * c3);
        float[] dO = staged(4, seq * c);
        float[] pm = staged(5, nn + pad);
        UNSAFE.copyMemory(null, qkvA + 4L * b * seq * c3, blk, FLOAT_BASE, 4L * seq * c3);
        UNSAFE.copyMemory(null, doutA + 4L * b * seq * c, dO, FLOAT_BASE, 4L * seq * c);
        for (int h = 0; h < heads; h++) {
            int q = h * hd;
            CpuAttentionVectorKernel.transpose(blk, 2 * c + q, c3, vt, seq, hd);
            UNSAFE.copyMemory(null, pA + 4L * ((long) b * heads + h) * nn, pm, FLOAT_BASE, 4L * nn);
            CpuAttentionVectorKernel.scoresCausal(dO, q, c, vt, ds, seq, hd, 1f);
            CpuAttentionSoftmaxVector.causalBackward(pm, ds, seq);
            CpuAttentionVectorKernel.lowerTimes(ds, blk, c + q, c3, dblk, q, c3, seq, hd, scale);
            CpuAttentionVectorTransposedKernel.lowerTransposedTimes(ds, blk, q, c3, dblk, c + q, c3, seq, hd, scale);
            CpuAttentionVectorTransposedKernel.lowerTransposedTimes(pm, dO, q, c, dblk, 2 * c + q, c3, seq, hd, 1f);
        }
        UNSAFE.copyMemory(dblk, FLOAT_BASE, null, dqkvA + 4L * b * seq * c3, 4L * seq * c3);
    }

    /**
     * dst (cols, rows) packed = the (rows, cols) window of src at {@code off}, row stride {@code ld}, transposed:
     * the reference of {@link CpuAttentionVectorKernel#transpose}.
     */
    static void transpose(float[] src, int off, int ld, float[] dst, int rows, int cols) {
        for (int i = 0; i < rows; i++) {
            int row = off + i * ld;
            for (int d = 0; d < cols; d++) {
                dst[d * rows + i] = src[row + d];
            }
        }
    }

    private static float[] staged(int i, int n) {
        float[][] b = STAGED.get();
        if (b[i] == null || b[i].length < n) {
            b[i] = new float[n];
        }
        return b[i];
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
