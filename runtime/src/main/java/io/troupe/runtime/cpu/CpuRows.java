package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;

/**
 * Row kernels (LayerNorm) and the AdamW update, staged through heap arrays so the JIT vectorises
 * them. Each method handles a range of rows (or elements) and is called from one thread.
 */
final class CpuRows {
    private static final long FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    static final int BLOCK = 2048;
    /**
     * Rows summed in float (vectorised) before adding into the double accumulators;
     * fixed, so sums do not depend on threads.
     */
    static final int ROW_BLOCK = 64;
    private static final ThreadLocal<float[][]> STAGING = ThreadLocal.withInitial(() -> new float[8][]);

    private CpuRows() {
    }

    static float[] buf(int i, int n) {
        float[][] s = STAGING.get();
        if (s[i] == null || s[i].length < n) {
            s[i] = new float[Math.max(n, BLOCK)];
        }
        return s[i];
    }

    static void load(long addr, long index, float[] dst, int n) {
        UNSAFE.copyMemory(null, addr + 4 * index, dst, FLOAT_BASE, 4L * n);
    }

    static void store(float[] src, long addr, long index, int n) {
        UNSAFE.copyMemory(src, FLOAT_BASE, null, addr + 4 * index, 4L * n);
    }

    /**
     * LayerNorm forward of rows [r0, r1): the mean and the variance as float sums in the order of
     * {@link #sum8}.
     */
    static void layerNorm(long inp, long w, long b, long out, long mean, long rstd, int r0, int r1, int cols,
                          float eps) {
        residualLayerNorm(inp, 0L, 0L, w, b, out, mean, rstd, r0, r1, cols, eps);
    }

    /**
     * {@code sum = a + b} then {@link #layerNorm} of {@code sum}, for rows [r0, r1), the row staged
     * once: bitwise the same as {@link #add} followed by {@link #layerNorm}. With {@code b == 0} the
     * row of {@code a} is normalised as it is and {@code sum} is not written.
     */
    static void residualLayerNorm(long a, long b, long sum, long w, long bias, long out, long mean, long rstd,
                                  int r0, int r1, int cols, float eps) {
        float[] x = buf(0, cols);
        float[] y = buf(1, cols);
        float[] wt = buf(2, cols);
        float[] bs = buf(3, cols);
        load(w, 0, wt, cols);
        load(bias, 0, bs, cols);
        for (int r = r0; r < r1; r++) {
            long row = (long) r * cols;
            load(a, row, x, cols);
            if (b != 0L) {
                load(b, row, y, cols);
                for (int c = 0; c < cols; c++) {
                    x[c] += y[c];
                }
                store(x, sum, row, cols);
            }
            float mu = sum8(x, cols) / cols;
            for (int c = 0; c < cols; c++) {
                y[c] = x[c] - mu;
            }
            float var = sumSquares8(y, cols);
            float rs = (float) (1.0 / Math.sqrt(var / cols + eps));
            for (int c = 0; c < cols; c++) {
                y[c] = y[c] * rs * wt[c] + bs[c];
            }
            store(y, out, row, cols);
            UNSAFE.putFloat(mean + 4L * r, mu);
            UNSAFE.putFloat(rstd + 4L * r, rs);
        }
    }

    /**
     * The float sum of x[0..n) in eight partial sums (elements i mod 8), combined as
     * ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), then the remainder in order: eight independent
     * chains instead of one, so a 128-wide row costs a sixth of the serial sum's latency.
     */
    static float sum8(float[] x, int n) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        float s4 = 0f;
        float s5 = 0f;
        float s6 = 0f;
        float s7 = 0f;
        int i = 0;
        for (; i + 7 < n; i += 8) {
            s0 += x[i];
            s1 += x[i + 1];
            s2 += x[i + 2];
            s3 += x[i + 3];
            s4 += x[i + 4];
            s5 += x[i + 5];
            s6 += x[i + 6];
            s7 += x[i + 7];
        }
        float s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
        for (; i < n; i++) {
            s += x[i];
        }
        return s;
    }

    /** The float sum of x[i]^2 over [0, n), in the order of {@link #sum8}. */
    static float sumSquares8(float[] x, int n) {
        return dot8(x, x, n);
    }

    /** The float sum of a[i] b[i] over [0, n), in the order of {@link #sum8}. */
    static float dot8(float[] a, float[] b, int n) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        float s4 = 0f;
        float s5 = 0f;
        float s6 = 0f;
        float s7 = 0f;
        int i = 0;
        for (; i + 7 < n; i += 8) {
            s0 += a[i] * b[i];
            s1 += a[i + 1] * b[i + 1];
            s2 += a[i + 2] * b[i + 2];
            s3 += a[i + 3] * b[i + 3];
            s4 += a[i + 4] * b[i + 4];
            s5 += a[i + 5] * b[i + 5];
            s6 += a[i + 6] * b[i + 6];
            s7 += a[i + 7] * b[i + 7];
        }
        float s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
        for (; i < n; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    /**
     * LayerNorm input gradient of rows [r0, r1), accumulated into dinp; the two row means as float
     * sums in the order of {@link #sum8}.
     */
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
            for (int c = 0; c < cols; c++) {
                x[c] = (x[c] - mu) * rs;
                dn[c] = wt[c] * g[c];
            }
            float dnormMean = sum8(dn, cols) / cols;
            float dnormNormMean = dot8(dn, x, cols) / cols;
            for (int c = 0; c < cols; c++) {
                di[c] += (dn[c] - dnormMean - x[c] * dnormNormMean) * rs;
            }
            store(di, dinp, row, cols);
        }
    }

    /**
     * The whole LayerNorm backward of all rows in one pass (one thread): each row's input gradient as
     * {@link #layerNormBackwardInput}, and the parameter gradients summed on the way exactly as
     * {@link #layerNormParamGrads} over all columns sums them (same float products, same
     * {@link #ROW_BLOCK} blocks in row order), so the results are bitwise those of the two passes.
     */
    static void layerNormBackward(long dinp, long dw, long db, long dout, long inp, long w, long mean, long rstd,
                                  int rows, int cols) {
        float[] x = buf(0, cols);
        float[] g = buf(1, cols);
        float[] wt = buf(2, cols);
        float[] di = buf(3, cols);
        float[] dn = buf(4, cols);
        float[] partW = buf(5, cols);
        float[] partB = buf(6, cols);
        double[] accW = new double[cols];
        double[] accB = new double[cols];
        load(w, 0, wt, cols);
        for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
            int r1 = Math.min(rows, r0 + ROW_BLOCK);
            java.util.Arrays.fill(partW, 0, cols, 0f);
            java.util.Arrays.fill(partB, 0, cols, 0f);
            for (int r = r0; r < r1; r++) {
                long row = (long) r * cols;
                load(inp, row, x, cols);
                load(dout, row, g, cols);
                load(dinp, row, di, cols);
                float mu = UNSAFE.getFloat(mean + 4L * r);
                float rs = UNSAFE.getFloat(rstd + 4L * r);
                for (int c = 0; c < cols; c++) {
                    x[c] = (x[c] - mu) * rs;
                    dn[c] = wt[c] * g[c];
                }
                for (int c = 0; c < cols; c++) {
                    float gc = g[c];
                    partW[c] += gc * x[c];
                    partB[c] += gc;
                }
                float dnormMean = sum8(dn, cols) / cols;
                float dnormNormMean = dot8(dn, x, cols) / cols;
                for (int c = 0; c < cols; c++) {
                    di[c] += (dn[c] - dnormMean - x[c] * dnormNormMean) * rs;
                }
                store(di, dinp, row, cols);
            }
            for (int c = 0; c < cols; c++) {
                accW[c] += partW[c];
                accB[c] += partB[c];
            }
        }
        for (int c = 0; c < cols; c++) {
            long o = 4L * c;
            UNSAFE.putFloat(dw + o, (float) (UNSAFE.getFloat(dw + o) + accW[c]));
            UNSAFE.putFloat(db + o, (float) (UNSAFE.getFloat(db + o) + accB[c]));
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
     * {@code out[c] += sum_i partial[i*cols + c]} over {@code blocks} per-block float sums, added in
     * double in block order: the last step of {@link #columnSums}, for kernels that form the block sums
     * while they have the rows staged ({@link CpuGelu#backwardBias}); bitwise {@link #columnSums}.
     */
    static void addBlockSums(float[] partial, int blocks, int cols, long out) {
        double[] acc = new double[cols];
        for (int blk = 0; blk < blocks; blk++) {
            int base = blk * cols;
            for (int c = 0; c < cols; c++) {
                acc[c] += partial[base + c];
            }
        }
        for (int c = 0; c < cols; c++) {
            UNSAFE.putFloat(out + 4L * c, (float) (UNSAFE.getFloat(out + 4L * c) + acc[c]));
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
     * The sum of x[i]^2 over [s, e) in double: the block staged, four double partial sums (elements
     * s + i, i mod 4) combined as (s0 + s1) + (s2 + s3), four independent chains instead of one.
     */
    static double sumOfSquares(long x, long s, long e) {
        int n = (int) (e - s);
        float[] xb = buf(0, n);
        load(x, s, xb, n);
        double s0 = 0;
        double s1 = 0;
        double s2 = 0;
        double s3 = 0;
        int i = 0;
        for (; i + 3 < n; i += 4) {
            double v0 = xb[i];
            double v1 = xb[i + 1];
            double v2 = xb[i + 2];
            double v3 = xb[i + 3];
            s0 += v0 * v0;
            s1 += v1 * v1;
            s2 += v2 * v2;
            s3 += v3 * v3;
        }
        for (; i < n; i++) {
            double v = xb[i];
            s0 += v * v;
        }
        return (s0 + s1) + (s2 + s3);
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

    /** {@code out[r, c] = bias[c]} for rows [r0, r1) of (rows, cols): each row a copy of the bias. */
    static void broadcastRows(long out, long bias, int r0, int r1, int cols) {
        long bytes = 4L * cols;
        for (int r = r0; r < r1; r++) {
            UNSAFE.copyMemory(bias, out + (long) r * bytes, bytes);
        }
    }

    /**
     * {@code out[r, c] = (out[r, c] + bias[c]) + res[r, c]} for rows [r0, r1) of (rows, cols), each row staged in
     * blocks of columns; the same floats as {@link #biasAdd} then {@link #add}.
     */
    static void biasAddResidual(long out, long bias, long res, int r0, int r1, int cols) {
        float[] ob = buf(0, BLOCK);
        float[] bs = buf(1, BLOCK);
        float[] rb = buf(2, BLOCK);
        for (int c0 = 0; c0 < cols; c0 += BLOCK) {
            int n = Math.min(BLOCK, cols - c0);
            load(bias, c0, bs, n);
            for (int r = r0; r < r1; r++) {
                long at = (long) r * cols + c0;
                load(out, at, ob, n);
                load(res, at, rb, n);
                for (int i = 0; i < n; i++) {
                    ob[i] = (ob[i] + bs[i]) + rb[i];
                }
                store(ob, out, at, n);
            }
        }
    }
}
