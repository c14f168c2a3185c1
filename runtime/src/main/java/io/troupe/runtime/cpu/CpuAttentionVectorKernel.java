package io.troupe.runtime.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link CpuAttentionProducts}' causal products with the Vector API (the incubator module
 * {@code jdk.incubator.vector}; {@link CpuAttention#VECTOR_API} says whether this JVM has it, and only then
 * may this class be loaded): the operand packing ({@link #transpose}) and the two products that read the
 * causal matrix along its rows ({@link #scoresCausal}, {@link #lowerTimes}); the one that reads it down its
 * columns is {@link CpuAttentionVectorTransposedKernel}'s. Blocks of 4 rows x 2 vectors keep 8 accumulators
 * in registers for the whole sum, and only the blocks the causal mask needs are computed: about 60% of a full
 * (64, 64) product's multiply-adds, with no call into native code.
 *
 * <p>Every output element is the reference's chain: {@code acc = fma(x, y, acc)} in ascending order of the
 * summed index from 0 (a lane-wise fused multiply-add rounds once, like {@link Math#fma}), then one
 * multiply by {@code scale}; the diagonal 4 x 4 block of the lower products is summed as a triangle in
 * straight-line code, so no masked term joins a sum. Bitwise {@link CpuAttentionProducts} for any shape
 * ({@code CpuAttentionProductsTest}).
 *
 * <pre>
 * L = lanes of the preferred species (16 floats with AVX-512, 8 with AVX2)
 * scoresCausal: row blocks of 4; columns 0 .. the block's last row, rounded up to L (at most seq), in blocks
 *               of 2L, then L, then one at a time; rows left over one at a time
 * lowerTimes:   row blocks of 4 x columns (of hd) in blocks of 2L, then L, then one at a time
 * </pre>
 */
final class CpuAttentionVectorKernel {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private CpuAttentionVectorKernel() {
    }

    /** Per thread: the gather offsets {@code i * ld} of {@link #transpose}, for the last {@code ld} seen. */
    private static final ThreadLocal<int[]> GATHER = ThreadLocal.withInitial(() -> new int[L + 1]);

    /**
     * {@link CpuAttention#transpose} with gathers: each vector of a column (L rows at stride {@code ld}) is one
     * gather and one store; plain data movement, the same floats.
     */
    static void transpose(float[] src, int off, int ld, float[] dst, int rows, int cols) {
        int[] map = GATHER.get();
        if (map[L] != ld) {
            for (int l = 0; l < L; l++) {
                map[l] = l * ld;
            }
            map[L] = ld;
        }
        int i = 0;
        for (; i + L <= rows; i += L) {
            int base = off + i * ld;
            for (int d = 0; d < cols; d++) {
                FloatVector.fromArray(S, src, base + d, map, 0).intoArray(dst, d * rows + i);
            }
        }
        for (; i < rows; i++) {
            int row = off + i * ld;
            for (int d = 0; d < cols; d++) {
                dst[d * rows + i] = src[row + d];
            }
        }
    }

    /** {@link CpuAttentionProducts#scoresCausal}; some entries j > i are overwritten too. */
    static void scoresCausal(float[] a, int aOff, int lda, float[] bt, float[] s, int seq, int hd, float scale) {
        int i0 = 0;
        for (; i0 + 4 <= seq; i0 += 4) {
            int need = i0 + 4;
            int n = Math.min(seq, (need + L - 1) / L * L);
            int j = 0;
            for (; j + 2 * L <= n; j += 2 * L) {
                scores4x2(a, aOff, lda, bt, s, seq, hd, scale, i0, j);
            }
            for (; j + L <= n; j += L) {
                scores4x1(a, aOff, lda, bt, s, seq, hd, scale, i0, j);
            }
            for (; j < need; j++) {
                for (int i = i0; i < need; i++) {
                    s[i * seq + j] = dot(a, aOff, lda, bt, seq, hd, i, j) * scale;
                }
            }
        }
        for (; i0 < seq; i0++) {
            int j = 0;
            for (; j + L <= i0 + 1; j += L) {
                FloatVector c = FloatVector.zero(S);
                for (int d = 0; d < hd; d++) {
                    FloatVector x = FloatVector.broadcast(S, a[aOff + i0 * lda + d]);
                    c = FloatVector.fromArray(S, bt, d * seq + j).fma(x, c);
                }
                c.mul(scale).intoArray(s, i0 * seq + j);
            }
            for (; j <= i0; j++) {
                s[i0 * seq + j] = dot(a, aOff, lda, bt, seq, hd, i0, j) * scale;
            }
        }
    }

    private static float dot(float[] a, int aOff, int lda, float[] bt, int seq, int hd, int i, int j) {
        float acc = 0f;
        for (int d = 0; d < hd; d++) {
            acc = Math.fma(a[aOff + i * lda + d], bt[d * seq + j], acc);
        }
        return acc;
    }

    private static void scores4x2(float[] a, int aOff, int lda, float[] bt, float[] s, int seq, int hd, float scale,
                                  int i0, int j) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z;
        FloatVector c01 = z;
        FloatVector c10 = z;
        FloatVector c11 = z;
        FloatVector c20 = z;
        FloatVector c21 = z;
        FloatVector c30 = z;
        FloatVector c31 = z;
        final int a0 = aOff + i0 * lda;
        final int a1 = a0 + lda;
        final int a2 = a1 + lda;
        final int a3 = a2 + lda;
        for (int d = 0; d < hd; d++) {
            int bo = d * seq + j;
            FloatVector b0 = FloatVector.fromArray(S, bt, bo);
            FloatVector b1 = FloatVector.fromArray(S, bt, bo + L);
            FloatVector x = FloatVector.broadcast(S, a[a0 + d]);
            c00 = b0.fma(x, c00);
            c01 = b1.fma(x, c01);
            x = FloatVector.broadcast(S, a[a1 + d]);
            c10 = b0.fma(x, c10);
            c11 = b1.fma(x, c11);
            x = FloatVector.broadcast(S, a[a2 + d]);
            c20 = b0.fma(x, c20);
            c21 = b1.fma(x, c21);
            x = FloatVector.broadcast(S, a[a3 + d]);
            c30 = b0.fma(x, c30);
            c31 = b1.fma(x, c31);
        }
        int o = i0 * seq + j;
        c00.mul(scale).intoArray(s, o);
        c01.mul(scale).intoArray(s, o + L);
        c10.mul(scale).intoArray(s, o + seq);
        c11.mul(scale).intoArray(s, o + seq + L);
        c20.mul(scale).intoArray(s, o + 2 * seq);
        c21.mul(scale).intoArray(s, o + 2 * seq + L);
        c30.mul(scale).intoArray(s, o + 3 * seq);
        c31.mul(scale).intoArray(s, o + 3 * seq + L);
    }

    private static void scores4x1(float[] a, int aOff, int lda, float[] bt, float[] s, int seq, int hd, float scale,
                                  int i0, int j) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c0 = z;
        FloatVector c1 = z;
        FloatVector c2 = z;
        FloatVector c3 = z;
        final int a0 = aOff + i0 * lda;
        for (int d = 0; d < hd; d++) {
            FloatVector b0 = FloatVector.fromArray(S, bt, d * seq + j);
            c0 = b0.fma(FloatVector.broadcast(S, a[a0 + d]), c0);
            c1 = b0.fma(FloatVector.broadcast(S, a[a0 + lda + d]), c1);
            c2 = b0.fma(FloatVector.broadcast(S, a[a0 + 2 * lda + d]), c2);
            c3 = b0.fma(FloatVector.broadcast(S, a[a0 + 3 * lda + d]), c3);
        }
        int o = i0 * seq + j;
        c0.mul(scale).intoArray(s, o);
        c1.mul(scale).intoArray(s, o + seq);
        c2.mul(scale).intoArray(s, o + 2 * seq);
        c3.mul(scale).intoArray(s, o + 3 * seq);
    }

    /** {@link CpuAttentionProducts#lowerTimes}. */
    static void lowerTimes(float[] p, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc, int seq, int hd,
                           float scale) {
        int i0 = 0;
        for (; i0 + 4 <= seq; i0 += 4) {
            int d = 0;
            for (; d + 2 * L <= hd; d += 2 * L) {
                lower4x2(p, b, bOff, ldb, c, cOff, ldc, seq, hd, scale, i0, d);
            }
            for (; d + L <= hd; d += L) {
                lower4x1(p, b, bOff, ldb, c, cOff, ldc, seq, hd, scale, i0, d);
            }
            for (; d < hd; d++) {
                for (int i = i0; i < i0 + 4; i++) {
                    c[cOff + i * ldc + d] = lowerDot(p, b, bOff, ldb, seq, hd, i, d) * scale;
                }
            }
        }
        for (; i0 < seq; i0++) {
            int d = 0;
            for (; d + L <= hd; d += L) {
                FloatVector acc = FloatVector.zero(S);
                for (int j = 0; j <= i0; j++) {
                    FloatVector x = FloatVector.broadcast(S, p[i0 * seq + j]);
                    acc = FloatVector.fromArray(S, b, bOff + j * ldb + d).fma(x, acc);
                }
                acc.mul(scale).intoArray(c, cOff + i0 * ldc + d);
            }
            for (; d < hd; d++) {
                c[cOff + i0 * ldc + d] = lowerDot(p, b, bOff, ldb, seq, hd, i0, d) * scale;
            }
        }
    }

    private static float lowerDot(float[] p, float[] b, int bOff, int ldb, int seq, int hd, int i, int d) {
        float acc = 0f;
        for (int j = 0; j <= i; j++) {
            acc = Math.fma(p[i * seq + j], b[bOff + j * ldb + d], acc);
        }
        return acc;
    }

    /** Rows i0..i0+3, columns d..d+2L: j below the block for all four rows, then the diagonal triangle. */
    private static void lower4x2(float[] p, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc, int seq,
                                 int hd, float scale, int i0, int d) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z;
        FloatVector c01 = z;
        FloatVector c10 = z;
        FloatVector c11 = z;
        FloatVector c20 = z;
        FloatVector c21 = z;
        FloatVector c30 = z;
        FloatVector c31 = z;
        final int p0 = i0 * seq;
        final int p1 = p0 + seq;
        final int p2 = p1 + seq;
        final int p3 = p2 + seq;
        for (int j = 0; j < i0; j++) {
            int bo = bOff + j * ldb + d;
            FloatVector b0 = FloatVector.fromArray(S, b, bo);
            FloatVector b1 = FloatVector.fromArray(S, b, bo + L);
            FloatVector x = FloatVector.broadcast(S, p[p0 + j]);
            c00 = b0.fma(x, c00);
            c01 = b1.fma(x, c01);
            x = FloatVector.broadcast(S, p[p1 + j]);
            c10 = b0.fma(x, c10);
            c11 = b1.fma(x, c11);
            x = FloatVector.broadcast(S, p[p2 + j]);
            c20 = b0.fma(x, c20);
            c21 = b1.fma(x, c21);
            x = FloatVector.broadcast(S, p[p3 + j]);
            c30 = b0.fma(x, c30);
            c31 = b1.fma(x, c31);
        }
        // the diagonal block: row r takes j = i0 .. i0 + r (straight-line code: vectors merged across
        // branches would be boxed)
        int j = i0;
        int bo = bOff + j * ldb + d;
        FloatVector b0 = FloatVector.fromArray(S, b, bo);
        FloatVector b1 = FloatVector.fromArray(S, b, bo + L);
        FloatVector x = FloatVector.broadcast(S, p[p0 + j]);
        c00 = b0.fma(x, c00);
        c01 = b1.fma(x, c01);
        x = FloatVector.broadcast(S, p[p1 + j]);
        c10 = b0.fma(x, c10);
        c11 = b1.fma(x, c11);
        x = FloatVector.broadcast(S, p[p2 + j]);
        c20 = b0.fma(x, c20);
        c21 = b1.fma(x, c21);
        x = FloatVector.broadcast(S, p[p3 + j]);
        c30 = b0.fma(x, c30);
        c31 = b1.fma(x, c31);
        j++;
        bo += ldb;
        b0 = FloatVector.fromArray(S, b, bo);
        b1 = FloatVector.fromArray(S, b, bo + L);
        x = FloatVector.broadcast(S, p[p1 + j]);
        c10 = b0.fma(x, c10);
        c11 = b1.fma(x, c11);
        x = FloatVector.broadcast(S, p[p2 + j]);
        c20 = b0.fma(x, c20);
        c21 = b1.fma(x, c21);
        x = FloatVector.broadcast(S, p[p3 + j]);
        c30 = b0.fma(x, c30);
        c31 = b1.fma(x, c31);
        j++;
        bo += ldb;
        b0 = FloatVector.fromArray(S, b, bo);
        b1 = FloatVector.fromArray(S, b, bo + L);
        x = FloatVector.broadcast(S, p[p2 + j]);
        c20 = b0.fma(x, c20);
        c21 = b1.fma(x, c21);
        x = FloatVector.broadcast(S, p[p3 + j]);
        c30 = b0.fma(x, c30);
        c31 = b1.fma(x, c31);
        j++;
        bo += ldb;
        b0 = FloatVector.fromArray(S, b, bo);
        b1 = FloatVector.fromArray(S, b, bo + L);
        x = FloatVector.broadcast(S, p[p3 + j]);
        c30 = b0.fma(x, c30);
        c31 = b1.fma(x, c31);
        int o = cOff + i0 * ldc + d;
        c00.mul(scale).intoArray(c, o);
        c01.mul(scale).intoArray(c, o + L);
        c10.mul(scale).intoArray(c, o + ldc);
        c11.mul(scale).intoArray(c, o + ldc + L);
        c20.mul(scale).intoArray(c, o + 2 * ldc);
        c21.mul(scale).intoArray(c, o + 2 * ldc + L);
        c30.mul(scale).intoArray(c, o + 3 * ldc);
        c31.mul(scale).intoArray(c, o + 3 * ldc + L);
    }

    private static void lower4x1(float[] p, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc, int seq,
                                 int hd, float scale, int i0, int d) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c0 = z;
        FloatVector c1 = z;
        FloatVector c2 = z;
        FloatVector c3 = z;
        final int p0 = i0 * seq;
        final int p1 = p0 + seq;
        final int p2 = p1 + seq;
        final int p3 = p2 + seq;
        for (int j = 0; j < i0; j++) {
            FloatVector b0 = FloatVector.fromArray(S, b, bOff + j * ldb + d);
            c0 = b0.fma(FloatVector.broadcast(S, p[p0 + j]), c0);
            c1 = b0.fma(FloatVector.broadcast(S, p[p1 + j]), c1);
            c2 = b0.fma(FloatVector.broadcast(S, p[p2 + j]), c2);
            c3 = b0.fma(FloatVector.broadcast(S, p[p3 + j]), c3);
        }
        int j = i0;
        FloatVector b0 = FloatVector.fromArray(S, b, bOff + j * ldb + d);
        c0 = b0.fma(FloatVector.broadcast(S, p[p0 + j]), c0);
        c1 = b0.fma(FloatVector.broadcast(S, p[p1 + j]), c1);
        c2 = b0.fma(FloatVector.broadcast(S, p[p2 + j]), c2);
        c3 = b0.fma(FloatVector.broadcast(S, p[p3 + j]), c3);
        j++;
        b0 = FloatVector.fromArray(S, b, bOff + j * ldb + d);
        c1 = b0.fma(FloatVector.broadcast(S, p[p1 + j]), c1);
        c2 = b0.fma(FloatVector.broadcast(S, p[p2 + j]), c2);
        c3 = b0.fma(FloatVector.broadcast(S, p[p3 + j]), c3);
        j++;
        b0 = FloatVector.fromArray(S, b, bOff + j * ldb + d);
        c2 = b0.fma(FloatVector.broadcast(S, p[p2 + j]), c2);
        c3 = b0.fma(FloatVector.broadcast(S, p[p3 + j]), c3);
        j++;
        b0 = FloatVector.fromArray(S, b, bOff + j * ldb + d);
        c3 = b0.fma(FloatVector.broadcast(S, p[p3 + j]), c3);
        int o = cOff + i0 * ldc + d;
        c0.mul(scale).intoArray(c, o);
        c1.mul(scale).intoArray(c, o + ldc);
        c2.mul(scale).intoArray(c, o + 2 * ldc);
        c3.mul(scale).intoArray(c, o + 3 * ldc);
    }
}
