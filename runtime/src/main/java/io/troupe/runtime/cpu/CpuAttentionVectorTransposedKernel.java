package io.troupe.runtime.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link CpuAttentionProducts#lowerTransposedTimes} with the Vector API: the product that reads the causal
 * (lower-triangular) matrix down its columns, {@code c = scale * p^T b}, where output row {@code j} sums
 * {@code i = j .. seq - 1}. The backward's {@code dK = scale dS^T Q} and {@code dV = P^T dO}; the other two
 * causal products and the packing of operands are {@link CpuAttentionVectorKernel}'s. The same rules hold
 * (only when {@link CpuAttention#VECTOR_API}, then loaded; bitwise the reference, {@code CpuAttentionProductsTest}):
 * each output element is {@code acc = fma(x, y, acc)} in ascending {@code i} from the diagonal, then one
 * multiply by {@code scale}, with the diagonal 4 x 4 block summed as a triangle in straight-line code.
 *
 * <pre>
 * L = lanes of the preferred species (16 floats with AVX-512, 8 with AVX2)
 * output row blocks of 4 x columns (of hd) in blocks of 2L, then L, then one at a time; rows left over one at a time
 * </pre>
 */
final class CpuAttentionVectorTransposedKernel {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private CpuAttentionVectorTransposedKernel() {
    }

    /** {@link CpuAttentionProducts#lowerTransposedTimes}. */
    static void lowerTransposedTimes(float[] p, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc, int seq,
                                     int hd, float scale) {
        int j0 = 0;
        for (; j0 + 4 <= seq; j0 += 4) {
            int d = 0;
            for (; d + 2 * L <= hd; d += 2 * L) {
                upper4x2(p, b, bOff, ldb, c, cOff, ldc, seq, hd, scale, j0, d);
            }
            for (; d + L <= hd; d += L) {
                upper4x1(p, b, bOff, ldb, c, cOff, ldc, seq, hd, scale, j0, d);
            }
            for (; d < hd; d++) {
                for (int j = j0; j < j0 + 4; j++) {
                    c[cOff + j * ldc + d] = upperDot(p, b, bOff, ldb, seq, hd, j, d) * scale;
                }
            }
        }
        for (; j0 < seq; j0++) {
            int d = 0;
            for (; d + L <= hd; d += L) {
                FloatVector acc = FloatVector.zero(S);
                for (int i = j0; i < seq; i++) {
                    FloatVector x = FloatVector.broadcast(S, p[i * seq + j0]);
                    acc = FloatVector.fromArray(S, b, bOff + i * ldb + d).fma(x, acc);
                }
                acc.mul(scale).intoArray(c, cOff + j0 * ldc + d);
            }
            for (; d < hd; d++) {
                c[cOff + j0 * ldc + d] = upperDot(p, b, bOff, ldb, seq, hd, j0, d) * scale;
            }
        }
    }

    private static float upperDot(float[] p, float[] b, int bOff, int ldb, int seq, int hd, int j, int d) {
        float acc = 0f;
        for (int i = j; i < seq; i++) {
            acc = Math.fma(p[i * seq + j], b[bOff + i * ldb + d], acc);
        }
        return acc;
    }

    /** Output rows j0..j0+3, columns d..d+2L: the diagonal triangle (i = j0..j0+3), then i below it for all four. */
    private static void upper4x2(float[] p, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc, int seq,
                                 int hd, float scale, int j0, int d) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z;
        FloatVector c01 = z;
        FloatVector c10 = z;
        FloatVector c11 = z;
        FloatVector c20 = z;
        FloatVector c21 = z;
        FloatVector c30 = z;
        FloatVector c31 = z;
        // the diagonal block first: output row r takes i = j0 + r .. j0 + 3 (straight-line code: vectors
        // merged across branches would be boxed)
        int i = j0;
        int bo = bOff + i * ldb + d;
        int po = i * seq + j0;
        FloatVector b0 = FloatVector.fromArray(S, b, bo);
        FloatVector b1 = FloatVector.fromArray(S, b, bo + L);
        FloatVector x = FloatVector.broadcast(S, p[po]);
        c00 = b0.fma(x, c00);
        c01 = b1.fma(x, c01);
        i++;
        bo += ldb;
        po += seq;
        b0 = FloatVector.fromArray(S, b, bo);
        b1 = FloatVector.fromArray(S, b, bo + L);
        x = FloatVector.broadcast(S, p[po]);
        c00 = b0.fma(x, c00);
        c01 = b1.fma(x, c01);
        x = FloatVector.broadcast(S, p[po + 1]);
        c10 = b0.fma(x, c10);
        c11 = b1.fma(x, c11);
        i++;
        bo += ldb;
        po += seq;
        b0 = FloatVector.fromArray(S, b, bo);
        b1 = FloatVector.fromArray(S, b, bo + L);
        x = FloatVector.broadcast(S, p[po]);
        c00 = b0.fma(x, c00);
        c01 = b1.fma(x, c01);
        x = FloatVector.broadcast(S, p[po + 1]);
        c10 = b0.fma(x, c10);
        c11 = b1.fma(x, c11);
        x = FloatVector.broadcast(S, p[po + 2]);
        c20 = b0.fma(x, c20);
        c21 = b1.fma(x, c21);
        for (i++; i < seq; i++) {
            bo = bOff + i * ldb + d;
            po = i * seq + j0;
            b0 = FloatVector.fromArray(S, b, bo);
            b1 = FloatVector.fromArray(S, b, bo + L);
            x = FloatVector.broadcast(S, p[po]);
            c00 = b0.fma(x, c00);
            c01 = b1.fma(x, c01);
            x = FloatVector.broadcast(S, p[po + 1]);
            c10 = b0.fma(x, c10);
            c11 = b1.fma(x, c11);
            x = FloatVector.broadcast(S, p[po + 2]);
            c20 = b0.fma(x, c20);
            c21 = b1.fma(x, c21);
            x = FloatVector.broadcast(S, p[po + 3]);
            c30 = b0.fma(x, c30);
            c31 = b1.fma(x, c31);
        }
        int o = cOff + j0 * ldc + d;
        c00.mul(scale).intoArray(c, o);
        c01.mul(scale).intoArray(c, o + L);
        c10.mul(scale).intoArray(c, o + ldc);
        c11.mul(scale).intoArray(c, o + ldc + L);
        c20.mul(scale).intoArray(c, o + 2 * ldc);
        c21.mul(scale).intoArray(c, o + 2 * ldc + L);
        c30.mul(scale).intoArray(c, o + 3 * ldc);
        c31.mul(scale).intoArray(c, o + 3 * ldc + L);
    }

    private static void upper4x1(float[] p, float[] b, int bOff, int ldb, float[] c, int cOff, int ldc, int seq,
                                 int hd, float scale, int j0, int d) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c0 = z;
        FloatVector c1 = z;
        FloatVector c2 = z;
        FloatVector c3 = z;
        int i = j0;
        FloatVector b0 = FloatVector.fromArray(S, b, bOff + i * ldb + d);
        int po = i * seq + j0;
        c0 = b0.fma(FloatVector.broadcast(S, p[po]), c0);
        i++;
        po += seq;
        b0 = FloatVector.fromArray(S, b, bOff + i * ldb + d);
        c0 = b0.fma(FloatVector.broadcast(S, p[po]), c0);
        c1 = b0.fma(FloatVector.broadcast(S, p[po + 1]), c1);
        i++;
        po += seq;
        b0 = FloatVector.fromArray(S, b, bOff + i * ldb + d);
        c0 = b0.fma(FloatVector.broadcast(S, p[po]), c0);
        c1 = b0.fma(FloatVector.broadcast(S, p[po + 1]), c1);
        c2 = b0.fma(FloatVector.broadcast(S, p[po + 2]), c2);
        for (i++; i < seq; i++) {
            b0 = FloatVector.fromArray(S, b, bOff + i * ldb + d);
            po = i * seq + j0;
            c0 = b0.fma(FloatVector.broadcast(S, p[po]), c0);
            c1 = b0.fma(FloatVector.broadcast(S, p[po + 1]), c1);
            c2 = b0.fma(FloatVector.broadcast(S, p[po + 2]), c2);
            c3 = b0.fma(FloatVector.broadcast(S, p[po + 3]), c3);
        }
        int o = cOff + j0 * ldc + d;
        c0.mul(scale).intoArray(c, o);
        c1.mul(scale).intoArray(c, o + ldc);
        c2.mul(scale).intoArray(c, o + 2 * ldc);
        c3.mul(scale).intoArray(c, o + 3 * ldc);
    }
}
