package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.getFloat;
import static io.troupe.runtime.cpu.CpuMemory.putFloat;

import io.troupe.runtime.tensor.Tensor;

/**
 * Causal multi-head attention on the CPU: per (batch, head) two OpenBLAS gemms around a masked
 * softmax, split over the device's threads by (batch, head). The softmax probabilities
 * (batch, heads, seq, seq) are saved for the backward.
 */
final class CpuAttention {
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

    private static void softmaxCausal(long p, int seq) {
        for (int t = 0; t < seq; t++) {
            long row = (long) t * seq;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j <= t; j++) {
                max = Math.max(max, getFloat(p, row + j));
            }
            double sum = 0;
            for (int j = 0; j <= t; j++) {
                float ex = CpuMath.exp(getFloat(p, row + j) - max);
                sum += ex;
                putFloat(p, row + j, ex);
            }
            float inv = (float) (1.0 / sum);
            for (int j = 0; j <= t; j++) {
                putFloat(p, row + j, getFloat(p, row + j) * inv);
            }
            for (int j = t + 1; j < seq; j++) {
                putFloat(p, row + j, 0f);
            }
        }
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
                for (int t = 0; t < seq; t++) {
                    long row = (long) t * seq;
                    double dot = 0;
                    for (int j = 0; j <= t; j++) {
                        dot += (double) getFloat(p, row + j) * getFloat(dp, row + j);
                    }
                    for (int j = 0; j <= t; j++) {
                        putFloat(dp, row + j, (float) (getFloat(p, row + j) * (getFloat(dp, row + j) - dot)));
                    }
                    for (int j = t + 1; j < seq; j++) {
                        putFloat(dp, row + j, 0f);
                    }
                }
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
