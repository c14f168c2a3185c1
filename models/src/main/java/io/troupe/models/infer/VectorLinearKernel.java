package io.troupe.models.infer;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The float32 linear product register-blocked over rows with the Vector API (the incubator module
 * {@code jdk.incubator.vector}: {@link Fp32Linear#VECTOR_API} says whether this JVM has it, and only
 * then may this class be loaded).
 *
 * <p>The weights are packed in column panels of {@code P = 4L} output channels ({@link #pack}): a
 * panel's {@code in x P} values are contiguous, row k of the panel being {@code W^T[k, j..j+P)}, so
 * the reduction streams one array front to back (the hardware prefetcher follows it, and the JIT
 * checks one array's bounds instead of one per input channel). A block of {@code R} rows x 4
 * vectors keeps its {@code 4R} accumulators in registers for the whole reduction, so each weight
 * vector, loaded once, serves R rows: R = 6 with 512-bit vectors (24 accumulators of the 32
 * registers), R = 4 with narrower ones (16 registers: six rows would spill). A remainder of rows
 * smaller than a block runs as a block whose missing rows repeat the last real row and are not
 * stored (a padded block does the work of R rows, still far cheaper than the remainder row by row,
 * which reads every weight once per row); with R = 6, a remainder of 1 or 2 rows joins the last full
 * block and the 7 or 8 rows run as two blocks of 4 (less padding); a single row (the decode step of
 * one sequence) runs as a row, 4 vectors wide.
 *
 * <p>Every output element is {@code acc = fma(x[r, k], W^T[k, j], acc)} for k = 0, 1, ... from 0
 * (a lane-wise fused multiply-add rounds once, exactly like {@link Math#fma}), then {@code + bias[j]},
 * the order of {@link Fp32Linear}'s scalar kernel: the same bits whatever the number of rows, the
 * row's place in its block, or the channel's place in a vector (batch invariance; tested against
 * the scalar reference).
 *
 * <pre>
 * L = lanes of the preferred species (16 floats with AVX-512), P = 4L
 * columns: full panels of P (blocks of R rows, then one or two padded blocks), then the last partial
 *          panel of w &lt; P columns: vectors of L, then one column at a time (stride w)
 * </pre>
 */
final class VectorLinearKernel {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Output channels per packed panel. */
    static final int P = 4 * L;
    /** Rows per register block: 6 where the ISA has 32 vector registers (512-bit vectors), else 4. */
    static final int R = S.vectorBitSize() >= 512 ? 6 : 4;

    private VectorLinearKernel() {
    }

    /**
     * {@code weight} (out, in) in torch's layout packed in panels of {@link #P} output channels: the
     * panel at column j (width {@code w = min(P, out - j)}) holds {@code W^T[k, j + c]} at
     * {@code j * in + k * w + c}.
     */
    static float[] pack(float[] weight, int out, int in) {
        float[] p = new float[out * in];
        for (int j = 0; j < out; j += P) {
            int w = Math.min(P, out - j);
            for (int k = 0; k < in; k++) {
                int o = j * in + k * w;
                for (int c = 0; c < w; c++) {
                    p[o + c] = weight[(j + c) * in + k];
                }
            }
        }
        return p;
    }

    /**
     * y[r, j] = sum_k x[r, k] * W^T[k, j] (+ bias[j]) for rows [fromRow, toRow) (x row-major
     * (rows, in), y row-major (rows, out)), each sum fused multiply-adds in k order from 0, the bias
     * added last ({@code bias} has {@code out} values; a layer without one passes -0.0f everywhere, which
     * adds nothing: x + -0.0f is x, bit for bit, -0.0f included). The stores are written out in each
     * block: a vector passed to a method the JIT does not inline is boxed, and that cost 3-4x.
     */
    static void forwardRows(float[] packed, float[] bias, int in, int out, float[] x, int fromRow, int toRow,
                            float[] y) {
        int full = out - out % P;
        final int blocks = fullBlocks(toRow - fromRow);           // the same row split in every panel
        for (int j = 0; j < full; j += P) {
            int base = j * in;
            if (toRow - fromRow == 1) {
                block1x4(packed, base, bias, in, out, x, fromRow, j, y);
                continue;
            }
            int r = fromRow;
            for (int k = 0; k < blocks; k++, r += R) {
                blockRows(packed, base, bias, in, out, x, r, R, j, y);
            }
            while (r < toRow) {
                int rows = remainderBlock(toRow - r);
                blockRows(packed, base, bias, in, out, x, r, rows, j, y);
                r += rows;
            }
        }
        if (full < out) {
            partialPanel(packed, bias, in, out, full, x, fromRow, toRow, y);
        }
    }

    /**
     * Full blocks of R rows for {@code n} rows. With R = 6, a remainder of 1 or 2 rows takes the last
     * full block with it, and the 7 or 8 rows run as two blocks of 4 ({@link #remainderBlock}): 8 rows
     * of multiply-adds instead of 6 + a padded 4 (13 rows: 6 + 4 + 3 padded to 4, 14 instead of 16).
     */
    static int fullBlocks(int n) {
        int blocks = n / R;
        int rem = n % R;
        return R == 6 && blocks >= 1 && (rem == 1 || rem == 2) ? blocks - 1 : blocks;
    }

    /** Rows of the next remainder block when {@code left} rows remain after the full blocks (at most 8). */
    static int remainderBlock(int left) {
        return left > R ? 4 : left;
    }

    /** A block of {@code rows <= R} rows from r (fewer than R: padded with the last row, not stored). */
    private static void blockRows(float[] wp, int base, float[] bias, int in, int out, float[] x, int r, int rows,
                                  int j, float[] y) {
        if (rows > 4) {
            block6x4(wp, base, bias, in, out, x, r, rows, j, y);        // only where R = 6
        } else {
            block4x4(wp, base, bias, in, out, x, r, rows, j, y);
        }
    }

    /** x offset of row {@code i} of a block of {@code rows} real rows from r (the last real one past them). */
    private static int rowOffset(int r, int i, int rows, int in) {
        return (r + Math.min(i, rows - 1)) * in;
    }

    /** Rows r..r+5 (the first {@code rows} real), channels j..j+4L: 24 accumulators in registers. */
    private static void block6x4(float[] wp, int base, float[] bias, int in, int out, float[] x, int r, int rows,
                                 int j, float[] y) {
        FloatVector z = FloatVector.zero(S);
        FloatVector a0 = z;
        FloatVector a1 = z;
        FloatVector a2 = z;
        FloatVector a3 = z;
        FloatVector b0 = z;
        FloatVector b1 = z;
        FloatVector b2 = z;
        FloatVector b3 = z;
        FloatVector c0 = z;
        FloatVector c1 = z;
        FloatVector c2 = z;
        FloatVector c3 = z;
        FloatVector d0 = z;
        FloatVector d1 = z;
        FloatVector d2 = z;
        FloatVector d3 = z;
        FloatVector e0 = z;
        FloatVector e1 = z;
        FloatVector e2 = z;
        FloatVector e3 = z;
        FloatVector f0 = z;
        FloatVector f1 = z;
        FloatVector f2 = z;
        FloatVector f3 = z;
        final int xa = rowOffset(r, 0, rows, in);
        final int xb = rowOffset(r, 1, rows, in);
        final int xc = rowOffset(r, 2, rows, in);
        final int xd = rowOffset(r, 3, rows, in);
        final int xe = rowOffset(r, 4, rows, in);
        final int xf = rowOffset(r, 5, rows, in);
        for (int k = 0; k < in; k++) {
            int wo = base + k * P;
            FloatVector w0 = FloatVector.fromArray(S, wp, wo);
            FloatVector w1 = FloatVector.fromArray(S, wp, wo + L);
            FloatVector w2 = FloatVector.fromArray(S, wp, wo + 2 * L);
            FloatVector w3 = FloatVector.fromArray(S, wp, wo + 3 * L);
            FloatVector p = FloatVector.broadcast(S, x[xa + k]);
            a0 = w0.fma(p, a0);
            a1 = w1.fma(p, a1);
            a2 = w2.fma(p, a2);
            a3 = w3.fma(p, a3);
            p = FloatVector.broadcast(S, x[xb + k]);
            b0 = w0.fma(p, b0);
            b1 = w1.fma(p, b1);
            b2 = w2.fma(p, b2);
            b3 = w3.fma(p, b3);
            p = FloatVector.broadcast(S, x[xc + k]);
            c0 = w0.fma(p, c0);
            c1 = w1.fma(p, c1);
            c2 = w2.fma(p, c2);
            c3 = w3.fma(p, c3);
            p = FloatVector.broadcast(S, x[xd + k]);
            d0 = w0.fma(p, d0);
            d1 = w1.fma(p, d1);
            d2 = w2.fma(p, d2);
            d3 = w3.fma(p, d3);
            p = FloatVector.broadcast(S, x[xe + k]);
            e0 = w0.fma(p, e0);
            e1 = w1.fma(p, e1);
            e2 = w2.fma(p, e2);
            e3 = w3.fma(p, e3);
            p = FloatVector.broadcast(S, x[xf + k]);
            f0 = w0.fma(p, f0);
            f1 = w1.fma(p, f1);
            f2 = w2.fma(p, f2);
            f3 = w3.fma(p, f3);
        }
        FloatVector q0 = FloatVector.fromArray(S, bias, j);
        FloatVector q1 = FloatVector.fromArray(S, bias, j + L);
        FloatVector q2 = FloatVector.fromArray(S, bias, j + 2 * L);
        FloatVector q3 = FloatVector.fromArray(S, bias, j + 3 * L);
        int o = r * out + j;
        a0.add(q0).intoArray(y, o);
        a1.add(q1).intoArray(y, o + L);
        a2.add(q2).intoArray(y, o + 2 * L);
        a3.add(q3).intoArray(y, o + 3 * L);
        b0.add(q0).intoArray(y, o + out);
        b1.add(q1).intoArray(y, o + out + L);
        b2.add(q2).intoArray(y, o + out + 2 * L);
        b3.add(q3).intoArray(y, o + out + 3 * L);
        c0.add(q0).intoArray(y, o + 2 * out);
        c1.add(q1).intoArray(y, o + 2 * out + L);
        c2.add(q2).intoArray(y, o + 2 * out + 2 * L);
        c3.add(q3).intoArray(y, o + 2 * out + 3 * L);
        d0.add(q0).intoArray(y, o + 3 * out);
        d1.add(q1).intoArray(y, o + 3 * out + L);
        d2.add(q2).intoArray(y, o + 3 * out + 2 * L);
        d3.add(q3).intoArray(y, o + 3 * out + 3 * L);
        e0.add(q0).intoArray(y, o + 4 * out);
        e1.add(q1).intoArray(y, o + 4 * out + L);
        e2.add(q2).intoArray(y, o + 4 * out + 2 * L);
        e3.add(q3).intoArray(y, o + 4 * out + 3 * L);
        if (rows == 6) {
            f0.add(q0).intoArray(y, o + 5 * out);
            f1.add(q1).intoArray(y, o + 5 * out + L);
            f2.add(q2).intoArray(y, o + 5 * out + 2 * L);
            f3.add(q3).intoArray(y, o + 5 * out + 3 * L);
        }
    }

    /** Rows r..r+3 (the first {@code rows} real), channels j..j+4L: 16 accumulators in registers. */
    private static void block4x4(float[] wp, int base, float[] bias, int in, int out, float[] x, int r, int rows,
                                 int j, float[] y) {
        FloatVector z = FloatVector.zero(S);
        FloatVector a0 = z;
        FloatVector a1 = z;
        FloatVector a2 = z;
        FloatVector a3 = z;
        FloatVector b0 = z;
        FloatVector b1 = z;
        FloatVector b2 = z;
        FloatVector b3 = z;
        FloatVector c0 = z;
        FloatVector c1 = z;
        FloatVector c2 = z;
        FloatVector c3 = z;
        FloatVector d0 = z;
        FloatVector d1 = z;
        FloatVector d2 = z;
        FloatVector d3 = z;
        final int xa = rowOffset(r, 0, rows, in);
        final int xb = rowOffset(r, 1, rows, in);
        final int xc = rowOffset(r, 2, rows, in);
        final int xd = rowOffset(r, 3, rows, in);
        for (int k = 0; k < in; k++) {
            int wo = base + k * P;
            FloatVector w0 = FloatVector.fromArray(S, wp, wo);
            FloatVector w1 = FloatVector.fromArray(S, wp, wo + L);
            FloatVector w2 = FloatVector.fromArray(S, wp, wo + 2 * L);
            FloatVector w3 = FloatVector.fromArray(S, wp, wo + 3 * L);
            FloatVector p = FloatVector.broadcast(S, x[xa + k]);
            a0 = w0.fma(p, a0);
            a1 = w1.fma(p, a1);
            a2 = w2.fma(p, a2);
            a3 = w3.fma(p, a3);
            p = FloatVector.broadcast(S, x[xb + k]);
            b0 = w0.fma(p, b0);
            b1 = w1.fma(p, b1);
            b2 = w2.fma(p, b2);
            b3 = w3.fma(p, b3);
            p = FloatVector.broadcast(S, x[xc + k]);
            c0 = w0.fma(p, c0);
            c1 = w1.fma(p, c1);
            c2 = w2.fma(p, c2);
            c3 = w3.fma(p, c3);
            p = FloatVector.broadcast(S, x[xd + k]);
            d0 = w0.fma(p, d0);
            d1 = w1.fma(p, d1);
            d2 = w2.fma(p, d2);
            d3 = w3.fma(p, d3);
        }
        FloatVector q0 = FloatVector.fromArray(S, bias, j);
        FloatVector q1 = FloatVector.fromArray(S, bias, j + L);
        FloatVector q2 = FloatVector.fromArray(S, bias, j + 2 * L);
        FloatVector q3 = FloatVector.fromArray(S, bias, j + 3 * L);
        int o = r * out + j;
        a0.add(q0).intoArray(y, o);
        a1.add(q1).intoArray(y, o + L);
        a2.add(q2).intoArray(y, o + 2 * L);
        a3.add(q3).intoArray(y, o + 3 * L);
        if (rows > 1) {
            b0.add(q0).intoArray(y, o + out);
            b1.add(q1).intoArray(y, o + out + L);
            b2.add(q2).intoArray(y, o + out + 2 * L);
            b3.add(q3).intoArray(y, o + out + 3 * L);
        }
        if (rows > 2) {
            c0.add(q0).intoArray(y, o + 2 * out);
            c1.add(q1).intoArray(y, o + 2 * out + L);
            c2.add(q2).intoArray(y, o + 2 * out + 2 * L);
            c3.add(q3).intoArray(y, o + 2 * out + 3 * L);
        }
        if (rows > 3) {
            d0.add(q0).intoArray(y, o + 3 * out);
            d1.add(q1).intoArray(y, o + 3 * out + L);
            d2.add(q2).intoArray(y, o + 3 * out + 2 * L);
            d3.add(q3).intoArray(y, o + 3 * out + 3 * L);
        }
    }

    /** One row, channels j..j+4L: four independent accumulators. */
    private static void block1x4(float[] wp, int base, float[] bias, int in, int out, float[] x, int r, int j,
                                 float[] y) {
        FloatVector z = FloatVector.zero(S);
        FloatVector a0 = z;
        FloatVector a1 = z;
        FloatVector a2 = z;
        FloatVector a3 = z;
        final int xa = r * in;
        for (int k = 0; k < in; k++) {
            int wo = base + k * P;
            FloatVector p = FloatVector.broadcast(S, x[xa + k]);
            a0 = FloatVector.fromArray(S, wp, wo).fma(p, a0);
            a1 = FloatVector.fromArray(S, wp, wo + L).fma(p, a1);
            a2 = FloatVector.fromArray(S, wp, wo + 2 * L).fma(p, a2);
            a3 = FloatVector.fromArray(S, wp, wo + 3 * L).fma(p, a3);
        }
        FloatVector q0 = FloatVector.fromArray(S, bias, j);
        FloatVector q1 = FloatVector.fromArray(S, bias, j + L);
        FloatVector q2 = FloatVector.fromArray(S, bias, j + 2 * L);
        FloatVector q3 = FloatVector.fromArray(S, bias, j + 3 * L);
        int o = r * out + j;
        a0.add(q0).intoArray(y, o);
        a1.add(q1).intoArray(y, o + L);
        a2.add(q2).intoArray(y, o + 2 * L);
        a3.add(q3).intoArray(y, o + 3 * L);
    }

    /** The last panel, {@code w = out - j0 < P} columns wide: single vectors per row, then scalar columns. */
    private static void partialPanel(float[] wp, float[] bias, int in, int out, int j0, float[] x, int fromRow,
                                     int toRow, float[] y) {
        int w = out - j0;
        int base = j0 * in;
        int c = 0;
        for (; c + L <= w; c += L) {
            for (int r = fromRow; r < toRow; r++) {
                FloatVector a = FloatVector.zero(S);
                int xo = r * in;
                for (int k = 0, wo = base + c; k < in; k++, wo += w) {
                    a = FloatVector.fromArray(S, wp, wo).fma(FloatVector.broadcast(S, x[xo + k]), a);
                }
                a.add(FloatVector.fromArray(S, bias, j0 + c)).intoArray(y, r * out + j0 + c);
            }
        }
        for (; c < w; c++) {
            for (int r = fromRow; r < toRow; r++) {
                float a = 0f;
                int xo = r * in;
                for (int k = 0, wo = base + c; k < in; k++, wo += w) {
                    a = Math.fma(x[xo + k], wp[wo], a);
                }
                y[r * out + j0 + c] = a + bias[j0 + c];
            }
        }
    }
}
