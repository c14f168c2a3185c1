package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;

/**
 * Row kernels (LayerNorm) and the AdamW update, staged through heap arrays so the JIT vectorises
 * them. Each method handles a range of rows (or elements) and is called from one thread.
 */
final class CpuRows {
    private static final long FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    private static final int BLOCK = 2048;
    /**
     * Rows summed in float (vectorised) before adding into the double accumulators;
     * fixed, so sums do not depend on threads.
     */
    private static final int ROW_BLOCK = 64;
    private static final ThreadLocal<float[][]> STAGING = ThreadLocal.withInitial(() -> new float[6][]);

    private CpuRows() {
    }

    private static float[] buf(int i, int n) {
        float[][] s = STAGING.get();
        if (s[i] == null || s[i].length < n) {
            s[i] = new float[Math.max(n, BLOCK)];
        }
        return s[i];
    }

    private static void load(long addr, long index, float[] dst, int n) {
        UNSAFE.copyMemory(null, addr + 4 * index, dst, FLOAT_BASE, 4L * n);
    }

    private static void store(float[] src, long addr, long index, int n) {
        UNSAFE.copyMemory(src, FLOAT_BASE, null, addr + 4 * index, 4L * n);
    }

    /** LayerNorm forward of rows [r0, r1). */
    static void layerNorm(long inp, long w, long b, long out, long mean, long rstd,
            int r0, int r1, int cols, float eps) {
        float[] x = buf(0, cols);
        float[] y = buf(1, cols);
        float[] wt = buf(2, cols);
        float[] bs = buf(3, cols);
        load(w, 0, wt, cols);
        load(b, 0, bs, cols);
        for (int r = r0; r < r1; r++) {
            long row = (long) r * cols;
            load(inp, row, x, cols);
            float sum = 0f;
            for (int c = 0; c < cols; c++) {
                sum += x[c];
            }
            float mu = sum / cols;
            float var = 0f;
            for (int c = 0; c < cols; c++) {
                float d = x[c] - mu;
                var += d * d;
            }
            float rs = (float) (1.0 / Math.sqrt(var / cols + eps));
            for (int c = 0; c < cols; c++) {
                y[c] = (x[c] - mu) * rs * wt[c] + bs[c];
            }
            store(y, out, row, cols);
            UNSAFE.putFloat(mean + 4L * r, mu);
            UNSAFE.putFloat(rstd + 4L * r, rs);
        }
    }

    /** LayerNorm input gradient of rows [r0, r1), accumulated into dinp. */
    static void layerNormBackwardInput(long dinp, long dout, long inp, long w, long mean, long rstd,
                                       int r0, int r1, int cols) {
        float[] x = buf(0, cols);
        float[] g = buf(1, cols);
        float[] wt = buf(2, cols);
        float[] di = buf(3, cols);
        float[] dn = buf(4, cols);
        load(w, 0, wt, cols);
        for (int r = r0; r < r1; r++) {
            long row = (long) r * cols;
            load(inp, row, x, cols);
            load(dout, row, g, cols);
            load(dinp, row, di, cols);
            float mu = UNSAFE.getFloat(mean + 4L * r);
            float rs = UNSAFE.getFloat(rstd + 4L * r);
            float dnormMean = 0f;
            float dnormNormMean = 0f;
            for (int c = 0; c < cols; c++) {
                float norm = (x[c] - mu) * rs;
                float dnorm = wt[c] * g[c];
                dn[c] = dnorm;
                x[c] = norm;
                dnormMean += dnorm;
                dnormNormMean += dnorm * norm;
            }
            dnormMean /= cols;
            dnormNormMean /= cols;
            for (int c = 0; c < cols; c++) {
                di[c] += (dn[c] - dnormMean - x[c] * dnormNormMean) * rs;
            }
            store(di, dinp, row, cols);
        }
    }

    /**
     * {@code out[c] += sum_r m[r, c]} for columns [c0, c1) of a (rows, cols) matrix: blocks of
     * {@link #ROW_BLOCK} rows summed in float, blocks added in double, always in row order (so the
     * result does not depend on how columns are split).
     */
    static void columnSums(long m, long out, int rows, int cols, int c0, int c1) {
        int w = c1 - c0;
        float[] row = buf(0, w);
        float[] part = buf(1, w);
        double[] acc = new double[w];
        for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
            int r1 = Math.min(rows, r0 + ROW_BLOCK);
            java.util.Arrays.fill(part, 0, w, 0f);
            for (int r = r0; r < r1; r++) {
                load(m, (long) r * cols + c0, row, w);
                for (int c = 0; c < w; c++) {
                    part[c] += row[c];
                }
            }
            for (int c = 0; c < w; c++) {
                acc[c] += part[c];
            }
        }
        for (int c = 0; c < w; c++) {
            UNSAFE.putFloat(out + 4L * (c0 + c), (float) (UNSAFE.getFloat(out + 4L * (c0 + c)) + acc[c]));
        }
    }

    /**
     * LayerNorm parameter gradients for columns [c0, c1): {@code dw[c] += sum_r dout[r,c] norm[r,c]},
     * {@code db[c] += sum_r dout[r,c]}, summed like {@link #columnSums}.
     */
    static void layerNormParamGrads(long dw, long db, long dout, long inp, long mean, long rstd, int rows, int cols,
                                    int c0, int c1) {
        int w = c1 - c0;
        float[] x = buf(0, w);
        float[] g = buf(1, w);
        float[] partW = buf(2, w);
        float[] partB = buf(3, w);
        double[] accW = new double[w];
        double[] accB = new double[w];
        for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
            int r1 = Math.min(rows, r0 + ROW_BLOCK);
            java.util.Arrays.fill(partW, 0, w, 0f);
            java.util.Arrays.fill(partB, 0, w, 0f);
            for (int r = r0; r < r1; r++) {
                long row = (long) r * cols + c0;
                load(inp, row, x, w);
                load(dout, row, g, w);
                float mu = UNSAFE.getFloat(mean + 4L * r);
                float rs = UNSAFE.getFloat(rstd + 4L * r);
                for (int c = 0; c < w; c++) {
                    float gc = g[c];
                    partW[c] += gc * ((x[c] - mu) * rs);
                    partB[c] += gc;
                }
            }
            for (int c = 0; c < w; c++) {
                accW[c] += partW[c];
                accB[c] += partB[c];
            }
        }
        for (int c = 0; c < w; c++) {
            long o = 4L * (c0 + c);
            UNSAFE.putFloat(dw + o, (float) (UNSAFE.getFloat(dw + o) + accW[c]));
            UNSAFE.putFloat(db + o, (float) (UNSAFE.getFloat(db + o) + accB[c]));
        }
    }

    /** AdamW over elements [s, e); see {@link io.troupe.runtime.device.AdamWStep} for the math. */
    static void adamw(long p, long g, long m, long v, long s, long e, float beta1, float beta2, float eps,
                      float decay, float stepSize, float bc2Sqrt) {
        float[] pb = buf(0, BLOCK);
        float[] gb = buf(1, BLOCK);
        float[] mb = buf(2, BLOCK);
        float[] vb = buf(3, BLOCK);
        float oneMinusB1 = 1f - beta1;
        float oneMinusB2 = 1f - beta2;
        for (long b = s; b < e; b += BLOCK) {
            int n = (int) Math.min(BLOCK, e - b);
            load(p, b, pb, n);
            load(g, b, gb, n);
            load(m, b, mb, n);
            load(v, b, vb, n);
            for (int i = 0; i < n; i++) {
                float gi = gb[i];
                float mi = beta1 * mb[i] + oneMinusB1 * gi;
                float vi = beta2 * vb[i] + oneMinusB2 * gi * gi;
                mb[i] = mi;
                vb[i] = vi;
                pb[i] = pb[i] * decay - stepSize * mi / ((float) Math.sqrt(vi) / bc2Sqrt + eps);
            }
            store(pb, p, b, n);
            store(mb, m, b, n);
            store(vb, v, b, n);
        }
    }

    /**
     * Softmax and cross-entropy of rows [r0, r1) of (rows, vocab) logits: probabilities into
     * {@code probs}, {@code losses[r] = log(sum) - (logit[target] - max)}. Each row is staged: the max,
     * the shift, the exponentials ({@link CpuMath#expBlock}), their sum in four double partial sums
     * (as {@link CpuAttention#sum4}), the scaling.
     */
    static void crossEntropy(long logits, long targets, long probs, long losses, int r0, int r1, int vocab) {
        float[] x = buf(0, vocab);
        float[] scratch = buf(1, vocab);
        for (int r = r0; r < r1; r++) {
            long row = (long) r * vocab;
            load(logits, row, x, vocab);
            float max = x[0];
            for (int c = 1; c < vocab; c++) {
                float v = x[c];
                max = v > max ? v : max;
            }
            for (int c = 0; c < vocab; c++) {
                x[c] -= max;
            }
            float shiftedTarget = x[UNSAFE.getInt(targets + 4L * r)];
            CpuMath.expBlock(x, scratch, vocab);
            double sum = CpuAttention.sum4(x, vocab);
            float inv = (float) (1.0 / sum);
            for (int c = 0; c < vocab; c++) {
                x[c] *= inv;
            }
            store(x, probs, row, vocab);
            UNSAFE.putFloat(losses + 4L * r, (float) (Math.log(sum) - shiftedTarget));
        }
    }

    /** {@code x[i] *= alpha} for i in [s, e), staged in blocks so the JIT vectorises it. */
    static void scale(long x, long s, long e, float alpha) {
        float[] xb = buf(0, BLOCK);
        for (long b = s; b < e; b += BLOCK) {
            int n = (int) Math.min(BLOCK, e - b);
            load(x, b, xb, n);
            for (int i = 0; i < n; i++) {
                xb[i] *= alpha;
            }
            store(xb, x, b, n);
        }
    }

    /** {@code out[i] = a[i] + b[i]} for i in [s, e) (out may alias a or b), staged in blocks. */
    static void add(long a, long b, long out, long s, long e) {
        float[] ab = buf(0, BLOCK);
        float[] bb = buf(1, BLOCK);
        for (long k = s; k < e; k += BLOCK) {
            int n = (int) Math.min(BLOCK, e - k);
            load(a, k, ab, n);
            load(b, k, bb, n);
            for (int i = 0; i < n; i++) {
                ab[i] += bb[i];
            }
            store(ab, out, k, n);
        }
    }

    /** {@code y[i] += alpha * x[i]} for i in [s, e), staged in blocks. */
    static void axpy(float alpha, long x, long y, long s, long e) {
        float[] xb = buf(0, BLOCK);
        float[] yb = buf(1, BLOCK);
        for (long k = s; k < e; k += BLOCK) {
            int n = (int) Math.min(BLOCK, e - k);
            load(x, k, xb, n);
            load(y, k, yb, n);
            for (int i = 0; i < n; i++) {
                yb[i] += alpha * xb[i];
            }
            store(yb, y, k, n);
        }
    }

    /** {@code out[r, c] += bias[c]} for rows [r0, r1) of (rows, cols), each row staged in blocks of columns. */
    static void biasAdd(long out, long bias, int r0, int r1, int cols) {
        float[] ob = buf(0, BLOCK);
        float[] bs = buf(1, BLOCK);
        for (int c0 = 0; c0 < cols; c0 += BLOCK) {
            int n = Math.min(BLOCK, cols - c0);
            load(bias, c0, bs, n);
            for (int r = r0; r < r1; r++) {
                long at = (long) r * cols + c0;
                load(out, at, ob, n);
                for (int i = 0; i < n; i++) {
                    ob[i] += bs[i];
                }
                store(ob, out, at, n);
            }
        }
    }
}
