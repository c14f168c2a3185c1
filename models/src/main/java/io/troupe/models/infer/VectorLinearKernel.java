package io.troupe.models.infer;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The float32 linear product register-blocked over rows with the Vector API (the incubator module
 * {@code jdk.incubator.vector}: {@link Fp32Linear#VECTOR_API} says whether this JVM has it, and only
 * then may this class be loaded). A block of 4 rows x 4 vectors of output channels keeps its 16 accumulators in
 * registers for the whole reduction, so each weight vector, loaded once, serves 4 rows and no
 * accumulator goes through memory: at 16 rows about 2x the multiply-adds per second of the
 * one-row-at-a-time axpy form ({@link Fp32Linear}), at 1 row the same.
 *
 * <p>Every output element is still {@code acc = fma(x[r, k], W^T[k, j], acc)} for k = 0, 1, ...
 * from 0 (a lane-wise fused multiply-add rounds once, exactly like {@link Math#fma}), the order of
 * {@link Fp32Linear}'s kernel: the same bits whatever the number of rows, the row's place in its
 * block of 4, or the channel's place in a vector block (batch invariance; tested against the scalar
 * reference).
 *
 * <pre>
 * L = lanes of the preferred species (16 floats with AVX-512)
 * columns: blocks of 4L, then of L, then one at a time; rows: blocks of 4, then one at a time
 * </pre>
 */
final class VectorLinearKernel {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private VectorLinearKernel() {
    }

    /**
     * y[r, j] = sum_k x[r, k] * wt[k][j] for rows [fromRow, toRow) (x row-major (rows, in), y
     * row-major (rows, out)), each sum fused multiply-adds in k order from 0; no bias.
     */
    static void forwardRows(float[][] wt, int in, int out, float[] x, int fromRow, int toRow, float[] y) {
        int j = 0;
        for (; j + 4 * L <= out; j += 4 * L) {
            int r = fromRow;
            for (; r + 4 <= toRow; r += 4) {
                block4x4(wt, in, out, x, r, j, y);
            }
            for (; r < toRow; r++) {
                block1x4(wt, in, out, x, r, j, y);
            }
        }
        for (; j + L <= out; j += L) {
            for (int r = fromRow; r < toRow; r++) {
                FloatVector a = FloatVector.zero(S);
                int xo = r * in;
                for (int k = 0; k < in; k++) {
                    a = FloatVector.fromArray(S, wt[k], j).fma(FloatVector.broadcast(S, x[xo + k]), a);
                }
                a.intoArray(y, r * out + j);
            }
        }
        for (; j < out; j++) {
            for (int r = fromRow; r < toRow; r++) {
                float a = 0f;
                int xo = r * in;
                for (int k = 0; k < in; k++) {
                    a = Math.fma(x[xo + k], wt[k][j], a);
                }
                y[r * out + j] = a;
            }
        }
    }

    /** Rows r..r+3, channels j..j+4L: 16 accumulators in registers over the whole reduction. */
    private static void block4x4(float[][] wt, int in, int out, float[] x, int r, int j, float[] y) {
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
        final int xa = r * in;
        final int xb = xa + in;
        final int xc = xb + in;
        final int xd = xc + in;
        for (int k = 0; k < in; k++) {
            float[] w = wt[k];
            FloatVector w0 = FloatVector.fromArray(S, w, j);
            FloatVector w1 = FloatVector.fromArray(S, w, j + L);
            FloatVector w2 = FloatVector.fromArray(S, w, j + 2 * L);
            FloatVector w3 = FloatVector.fromArray(S, w, j + 3 * L);
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
        int o = r * out + j;
        store4(a0, a1, a2, a3, y, o);
        store4(b0, b1, b2, b3, y, o + out);
        store4(c0, c1, c2, c3, y, o + 2 * out);
        store4(d0, d1, d2, d3, y, o + 3 * out);
    }

    /** One row, channels j..j+4L: four independent accumulators. */
    private static void block1x4(float[][] wt, int in, int out, float[] x, int r, int j, float[] y) {
        FloatVector z = FloatVector.zero(S);
        FloatVector a0 = z;
        FloatVector a1 = z;
        FloatVector a2 = z;
        FloatVector a3 = z;
        final int xa = r * in;
        for (int k = 0; k < in; k++) {
            float[] w = wt[k];
            FloatVector p = FloatVector.broadcast(S, x[xa + k]);
            a0 = FloatVector.fromArray(S, w, j).fma(p, a0);
            a1 = FloatVector.fromArray(S, w, j + L).fma(p, a1);
            a2 = FloatVector.fromArray(S, w, j + 2 * L).fma(p, a2);
            a3 = FloatVector.fromArray(S, w, j + 3 * L).fma(p, a3);
        }
        store4(a0, a1, a2, a3, y, r * out + j);
    }

    private static void store4(FloatVector v0, FloatVector v1, FloatVector v2, FloatVector v3, float[] y, int o) {
        v0.intoArray(y, o);
        v1.intoArray(y, o + L);
        v2.intoArray(y, o + 2 * L);
        v3.intoArray(y, o + 3 * L);
    }
}
