package io.troupe.runtime.device;

import java.nio.FloatBuffer;

/**
 * The reference loops of the decoding ops ({@link Device#linearRowInvariant}, {@link Device#pagedKvWrite},
 * {@link Device#pagedAttention}): plain loops over buffers (host arrays wrapped, or the CPU device's
 * memory in place), one fixed reduction order per output element that depends on nothing but that
 * element's own row, so a row's results are the same bits whatever else the batch holds. The CUDA
 * kernels (decode.cu, and the FP32 sgemm for the linear) follow the same orders.
 *
 * <p>Orders: a linear's output is {@code acc = fma(x[k], w[j, k], acc)} for k ascending from 0, then
 * {@code + bias[j]}. Attention, per row and head: each score a dot product in the same fma order over
 * the head's channels, times the scale; the maximum; {@code e = (float) exp((double) (s - max))} and
 * their sum, positions ascending; each output channel {@code acc = fma(e[u], v[u], acc)} for u
 * ascending, then {@code acc / sum}.
 */
public final class DecodeReference {
    private DecodeReference() {
    }

    /** {@code out (rows, n) = x (rows, k) @ w^T + bias}, w (n, k), bias null for none. */
    public static void linear(int rows, int n, int k, FloatBuffer x, FloatBuffer w, FloatBuffer bias,
                              FloatBuffer out) {
        for (int r = 0; r < rows; r++) {
            int xo = r * k;
            for (int j = 0; j < n; j++) {
                int wo = j * k;
                float acc = 0f;
                for (int kk = 0; kk < k; kk++) {
                    acc = Math.fma(x.get(xo + kk), w.get(wo + kk), acc);
                }
                out.put(r * n + j, bias == null ? acc : acc + bias.get(j));
            }
        }
    }

    /**
     * Writes each row's key (columns [width, 2 width) of {@code qkv}, (rows, 3 width)) and value
     * (columns [2 width, 3 width)) at its position in one layer's {@code keys} and {@code values}
     * ({@link PagedKvLayout}).
     */
    public static void kvWrite(FloatBuffer qkv, FloatBuffer keys, FloatBuffer values, PagedRows rows, int width,
                               int blockSize) {
        int[] pos = rows.positions();
        for (int r = 0; r < rows.rows(); r++) {
            int p = pos[r];
            int block = rows.blockOf(r, p, blockSize);
            int ko = (int) PagedKvLayout.keyOffset(block, p % blockSize, blockSize, width);
            int vo = (int) PagedKvLayout.valueOffset(block, p % blockSize, blockSize, width);
            int src = r * 3 * width;
            for (int ch = 0; ch < width; ch++) {
                keys.put(ko + ch * blockSize, qkv.get(src + width + ch));
                values.put(vo + ch, qkv.get(src + 2 * width + ch));
            }
        }
    }

    /**
     * Each row's query (columns [0, width) of {@code qkv}) attends, head by head, over positions
     * [0, p] of its sequence in one layer's cache; the result is row r of {@code out} (rows, width).
     */
    public static void attention(FloatBuffer qkv, FloatBuffer keys, FloatBuffer values, FloatBuffer out,
                                 PagedRows rows, int heads, int headDim, int blockSize, float scale) {
        final int width = heads * headDim;
        int[] pos = rows.positions();
        float[] s = new float[rows.maxBlocks() * blockSize];
        int[] kBase = new int[s.length];
        int[] vBase = new int[s.length];
        for (int r = 0; r < rows.rows(); r++) {
            int positions = pos[r] + 1;
            for (int u = 0; u < positions; u++) {
                int block = rows.blockOf(r, u, blockSize);
                kBase[u] = (int) PagedKvLayout.keyOffset(block, u % blockSize, blockSize, width);
                vBase[u] = (int) PagedKvLayout.valueOffset(block, u % blockSize, blockSize, width);
            }
            for (int h = 0; h < heads; h++) {
                int qo = r * 3 * width + h * headDim;
                float max = Float.NEGATIVE_INFINITY;
                for (int u = 0; u < positions; u++) {
                    int ko = kBase[u] + h * headDim * blockSize;
                    float acc = 0f;
                    for (int d = 0; d < headDim; d++) {
                        acc = Math.fma(qkv.get(qo + d), keys.get(ko + d * blockSize), acc);
                    }
                    s[u] = acc * scale;
                    max = Math.max(max, s[u]);
                }
                float sum = 0f;
                for (int u = 0; u < positions; u++) {
                    s[u] = (float) Math.exp((double) (s[u] - max));
                    sum += s[u];
                }
                for (int d = 0; d < headDim; d++) {
                    float acc = 0f;
                    for (int u = 0; u < positions; u++) {
                        acc = Math.fma(s[u], values.get(vBase[u] + h * headDim + d), acc);
                    }
                    out.put(r * width + h * headDim + d, acc / sum);
                }
            }
        }
    }

    /**
     * Throws unless every row's position lies in the blocks its table can hold and every block it
     * reaches is one of the cache's {@code numBlocks}: a kernel reading the tables trusts them.
     */
    public static void checkRows(String op, PagedRows rows, int blockSize, long numBlocks) {
        if (blockSize < 1) {
            throw new IllegalArgumentException(op + ": blockSize must be >= 1: blockSize=" + blockSize);
        }
        int[] pos = rows.positions();
        for (int r = 0; r < rows.rows(); r++) {
            if (pos[r] / blockSize >= rows.maxBlocks()) {
                throw new IllegalArgumentException(op + ": row " + r + " at position " + pos[r] + " is past "
                    + rows.maxBlocks() + " blocks of " + blockSize + " tokens");
            }
            for (int b = 0; b <= pos[r] / blockSize; b++) {
                int block = rows.blockOf(r, b * blockSize, blockSize);
                if (block < 0 || block >= numBlocks) {
                    throw new IllegalArgumentException(op + ": row " + r + " reaches block " + block + " outside the "
                        + numBlocks + " blocks of the cache");
                }
            }
        }
    }
}
