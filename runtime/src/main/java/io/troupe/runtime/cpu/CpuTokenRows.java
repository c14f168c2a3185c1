package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;
import static io.troupe.runtime.cpu.CpuRows.BLOCK;
import static io.troupe.runtime.cpu.CpuRows.buf;
import static io.troupe.runtime.cpu.CpuRows.load;
import static io.troupe.runtime.cpu.CpuRows.store;

/**
 * Row kernels indexed by token ids: the softmax cross-entropy forward and backward of logit rows
 * against target ids, and the embedding table's row gather ({@code out += table[ids]}) and
 * scatter-add of its gradient, each with the element-by-element form kept as its reference. Rows
 * are staged through {@link CpuRows}' per-thread heap arrays so the JIT vectorises them; each
 * method handles a range of rows (or columns) and is called from one thread.
 */
final class CpuTokenRows {
    private CpuTokenRows() {
    }

    /**
     * Softmax and cross-entropy of rows [r0, r1) of (rows, vocab) logits: probabilities into
     * {@code probs}, {@code losses[r] = log(sum) - (logit[target] - max)}. Each row is staged: the max
     * ({@link CpuAttention#max4}), the shift, the exponentials ({@link CpuMath#expBlock}), their sum in
     * four double partial sums (as {@link CpuAttention#sum4}), the scaling.
     */
    static void crossEntropy(long logits, long targets, long probs, long losses, int r0, int r1, int vocab) {
        float[] x = buf(0, vocab);
        float[] scratch = buf(1, vocab);
        for (int r = r0; r < r1; r++) {
            long row = (long) r * vocab;
            load(logits, row, x, vocab);
            float max = CpuAttention.max4(x, 0, vocab);
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

    /**
     * {@code out[r, :] += table[ids[r], :]} for rows [r0, r1): each row and its table row staged, added in a loop
     * the JIT vectorises; bitwise {@link #addTableRowsReference}.
     */
    static void addTableRows(long out, long ids, long table, int r0, int r1, int dim) {
        float[] o = buf(0, dim);
        float[] t = buf(1, dim);
        for (int r = r0; r < r1; r++) {
            long row = (long) r * dim;
            load(out, row, o, dim);
            load(table, (long) UNSAFE.getInt(ids + 4L * r) * dim, t, dim);
            for (int c = 0; c < dim; c++) {
                o[c] += t[c];
            }
            store(o, out, row, dim);
        }
    }

    /** The element-by-element form of {@link #addTableRows}, kept as its reference. */
    static void addTableRowsReference(long out, long ids, long table, int r0, int r1, int dim) {
        for (int r = r0; r < r1; r++) {
            long src = (long) UNSAFE.getInt(ids + 4L * r) * dim;
            long dst = (long) r * dim;
            for (int c = 0; c < dim; c++) {
                UNSAFE.putFloat(out + 4 * (dst + c),
                    UNSAFE.getFloat(out + 4 * (dst + c)) + UNSAFE.getFloat(table + 4 * (src + c)));
            }
        }
    }

    /**
     * {@code dtable[ids[r], c] += dout[r, c]} for columns [c0, c1), rows in order (repeated ids add up in row
     * order): each row's slice and its table slice staged, added in a loop the JIT vectorises; bitwise
     * {@link #scatterAddRowsReference}.
     */
    static void scatterAddRows(long dtable, long dout, long ids, int rows, int dim, int c0, int c1) {
        int w = c1 - c0;
        float[] g = buf(0, w);
        float[] t = buf(1, w);
        for (int r = 0; r < rows; r++) {
            long dst = (long) UNSAFE.getInt(ids + 4L * r) * dim + c0;
            load(dout, (long) r * dim + c0, g, w);
            load(dtable, dst, t, w);
            for (int c = 0; c < w; c++) {
                t[c] += g[c];
            }
            store(t, dtable, dst, w);
        }
    }

    /** The element-by-element form of {@link #scatterAddRows}, kept as its reference. */
    static void scatterAddRowsReference(long dtable, long dout, long ids, int rows, int dim, int c0, int c1) {
        for (int r = 0; r < rows; r++) {
            long dst = (long) UNSAFE.getInt(ids + 4L * r) * dim;
            long src = (long) r * dim;
            for (int c = c0; c < c1; c++) {
                UNSAFE.putFloat(dtable + 4 * (dst + c),
                    UNSAFE.getFloat(dtable + 4 * (dst + c)) + UNSAFE.getFloat(dout + 4 * (src + c)));
            }
        }
    }

    /**
     * {@code dlogits[r, c] = (probs[r, c] - [c == target[r]]) * scale} for rows [r0, r1): blocks of the rows staged
     * and scaled in one loop the JIT vectorises ({@code p - 0 = p}), then each row's target element; bitwise
     * {@link #crossEntropyBackwardReference}.
     */
    static void crossEntropyBackward(long dlogits, long probs, long targets, int r0, int r1, int vocab, float scale) {
        float[] x = buf(0, BLOCK);
        long end = (long) r1 * vocab;
        for (long b = (long) r0 * vocab; b < end; b += BLOCK) {
            int n = (int) Math.min(BLOCK, end - b);
            load(probs, b, x, n);
            for (int i = 0; i < n; i++) {
                x[i] *= scale;
            }
            store(x, dlogits, b, n);
        }
        for (int r = r0; r < r1; r++) {
            long at = (long) r * vocab + UNSAFE.getInt(targets + 4L * r);
            UNSAFE.putFloat(dlogits + 4 * at, (UNSAFE.getFloat(probs + 4 * at) - 1f) * scale);
        }
    }

    /** The element-by-element form of {@link #crossEntropyBackward}, kept as its reference. */
    static void crossEntropyBackwardReference(long dlogits, long probs, long targets, int r0, int r1, int vocab,
                                              float scale) {
        for (int r = r0; r < r1; r++) {
            long row = (long) r * vocab;
            int t = UNSAFE.getInt(targets + 4L * r);
            for (int c = 0; c < vocab; c++) {
                float p = UNSAFE.getFloat(probs + 4 * (row + c));
                UNSAFE.putFloat(dlogits + 4 * (row + c), (p - (c == t ? 1f : 0f)) * scale);
            }
        }
    }
}
