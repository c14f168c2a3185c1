package io.troupe.models.infer;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The two per-position loops of {@link KvCachedGpt}'s attention on the Vector API (loaded only when
 * {@link Fp32Linear#VECTOR_API} holds). The arithmetic is exactly the plain loops': a score is q * k
 * summed in {@link RowKernels#sum}'s order (lane l adds the products of channels 4g + l for g
 * ascending, then (s0 + s1) + (s2 + s3), then the tail channels in order), times the scale; the
 * output adds {@code p * v} (a rounded product, then a rounded sum) position after position. So
 * both paths give the same bits (tested), and a token's result does not depend on the batch.
 *
 * <p>The keys are cached channel-major within a block ({@link PagedKvCache}), so one vector load
 * holds one channel of L consecutive positions and the scores of L positions are {@code hd} vector
 * multiply-adds per head, in four independent chains, with no sums across lanes. The values stay in
 * channel order: four vectors of output channels keep their accumulators in registers over every
 * position.
 *
 * <pre>
 * L = lanes of the preferred species; scores need blockSize % L == 0, values hd % L == 0 (else the plain loops)
 * </pre>
 */
final class VectorAttentionKernel {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** L bfloat16 lanes, and L int lanes to widen them into. */
    private static final VectorSpecies<Short> H = VectorSpecies.of(short.class, VectorShape.forBitSize(L * 16));
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, S.vectorShape());

    private VectorAttentionKernel() {
    }

    /** Whether {@link #scores} takes a block size of {@code bs}: a block's positions fill whole vectors. */
    static boolean scoresFit(int bs) {
        return bs % L == 0;
    }

    /** Whether {@link #weightedValues} takes a head width of {@code hd}: each vector within one head. */
    static boolean valuesFit(int hd) {
        return hd % L == 0;
    }

    /**
     * scores[h][u] = scale * q_h . k_h(u) for u in [0, positions) and every head h: the query at
     * {@code q[qOff]} in channel order, the keys in {@link PagedKvCache}'s layout (channel-major
     * within a block of {@code bs} positions, block b of the sequence at {@code k[blockBase[b]]}).
     * Each lane is one position: lane l's score adds, as {@link KvCachedGpt#headScore} does, the
     * products of channels 4g + r in four sums r for g ascending, then (s0 + s1) + (s2 + s3), then
     * the tail channels in order, times the scale. Whole vectors: the lanes past {@code positions}
     * in the last block are computed from whatever that block holds there and are not to be read.
     */
    static void scores(float[] q, int qOff, float[] k, int[] blockBase, int positions, int nh, int hd, int bs,
                       float scale, float[][] scores) {
        final int groups = hd / 4;
        for (int b = 0, u = 0; u < positions; b++) {
            for (int slot = 0; slot < bs && u < positions; slot += L, u += L) {
                final int kb = blockBase[b] + slot;
                for (int h = 0; h < nh; h++) {
                    final int c0 = h * hd;
                    FloatVector s0 = FloatVector.zero(S);
                    FloatVector s1 = s0;
                    FloatVector s2 = s0;
                    FloatVector s3 = s0;
                    for (int g = 0; g < groups; g++) {
                        final int ch = c0 + 4 * g;
                        final int o = kb + ch * bs;
                        s0 = s0.add(FloatVector.fromArray(S, k, o).mul(q[qOff + ch]));
                        s1 = s1.add(FloatVector.fromArray(S, k, o + bs).mul(q[qOff + ch + 1]));
                        s2 = s2.add(FloatVector.fromArray(S, k, o + 2 * bs).mul(q[qOff + ch + 2]));
                        s3 = s3.add(FloatVector.fromArray(S, k, o + 3 * bs).mul(q[qOff + ch + 3]));
                    }
                    FloatVector s = s0.add(s1).add(s2.add(s3));
                    for (int d = 4 * groups; d < hd; d++) {
                        s = s.add(FloatVector.fromArray(S, k, kb + (c0 + d) * bs).mul(q[qOff + c0 + d]));
                    }
                    s.mul(scale).intoArray(scores[h], u);
                }
            }
        }
    }

    /**
     * {@link #scores} over a bfloat16 cache ({@link KvPrecision#BF16}): each key widened exactly to
     * its float32 ({@link #bf16}), then the same operations in the same order, so the same bits as
     * the plain loop over the widened keys.
     */
    static void scores16(float[] q, int qOff, short[] k, int[] blockBase, int positions, int nh, int hd, int bs,
                         float scale, float[][] scores) {
        final int groups = hd / 4;
        for (int b = 0, u = 0; u < positions; b++) {
            for (int slot = 0; slot < bs && u < positions; slot += L, u += L) {
                final int kb = blockBase[b] + slot;
                for (int h = 0; h < nh; h++) {
                    final int c0 = h * hd;
                    FloatVector s0 = FloatVector.zero(S);
                    FloatVector s1 = s0;
                    FloatVector s2 = s0;
                    FloatVector s3 = s0;
                    for (int g = 0; g < groups; g++) {
                        final int ch = c0 + 4 * g;
                        final int o = kb + ch * bs;
                        s0 = s0.add(bf16(k, o).mul(q[qOff + ch]));
                        s1 = s1.add(bf16(k, o + bs).mul(q[qOff + ch + 1]));
                        s2 = s2.add(bf16(k, o + 2 * bs).mul(q[qOff + ch + 2]));
                        s3 = s3.add(bf16(k, o + 3 * bs).mul(q[qOff + ch + 3]));
                    }
                    FloatVector s = s0.add(s1).add(s2.add(s3));
                    for (int d = 4 * groups; d < hd; d++) {
                        s = s.add(bf16(k, kb + (c0 + d) * bs).mul(q[qOff + c0 + d]));
                    }
                    s.mul(scale).intoArray(scores[h], u);
                }
            }
        }
    }

    /** {@link #weightedValues} over a bfloat16 cache: each value widened exactly, the same bits as the plain loop. */
    static void weightedValues16(float[][] p, short[] v, int[] posOff, int positions, int c, int hd, float[] out,
                                 int outOff) {
        int j = 0;
        for (; j + 4 * L <= c; j += 4 * L) {
            final float[] p0 = p[j / hd];
            final float[] p1 = p[(j + L) / hd];
            final float[] p2 = p[(j + 2 * L) / hd];
            final float[] p3 = p[(j + 3 * L) / hd];
            FloatVector a0 = FloatVector.zero(S);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            for (int u = 0; u < positions; u++) {
                int o = posOff[u] + j;
                a0 = a0.add(bf16(v, o).mul(p0[u]));
                a1 = a1.add(bf16(v, o + L).mul(p1[u]));
                a2 = a2.add(bf16(v, o + 2 * L).mul(p2[u]));
                a3 = a3.add(bf16(v, o + 3 * L).mul(p3[u]));
            }
            a0.intoArray(out, outOff + j);
            a1.intoArray(out, outOff + j + L);
            a2.intoArray(out, outOff + j + 2 * L);
            a3.intoArray(out, outOff + j + 3 * L);
        }
        for (; j < c; j += L) {
            final float[] p0 = p[j / hd];
            FloatVector a0 = FloatVector.zero(S);
            for (int u = 0; u < positions; u++) {
                a0 = a0.add(bf16(v, posOff[u] + j).mul(p0[u]));
            }
            a0.intoArray(out, outOff + j);
        }
    }

    /** L bfloat16 values from {@code a[off]} as floats, exactly: each widened to an int and shifted 16 bits up. */
    private static FloatVector bf16(short[] a, int off) {
        return ((IntVector) ShortVector.fromArray(H, a, off).convertShape(VectorOperators.S2I, I, 0))
            .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /**
     * out[outOff + h hd + d] = sum over u in [0, positions) of p[h][u] * v[posOff[u] + h hd + d], each
     * term a rounded product added in u order from 0 (values in channel order, hd % L == 0).
     */
    static void weightedValues(float[][] p, float[] v, int[] posOff, int positions, int c, int hd, float[] out,
                               int outOff) {
        int j = 0;
        for (; j + 4 * L <= c; j += 4 * L) {
            final float[] p0 = p[j / hd];
            final float[] p1 = p[(j + L) / hd];
            final float[] p2 = p[(j + 2 * L) / hd];
            final float[] p3 = p[(j + 3 * L) / hd];
            FloatVector a0 = FloatVector.zero(S);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            for (int u = 0; u < positions; u++) {
                int o = posOff[u] + j;
                a0 = a0.add(FloatVector.fromArray(S, v, o).mul(p0[u]));
                a1 = a1.add(FloatVector.fromArray(S, v, o + L).mul(p1[u]));
                a2 = a2.add(FloatVector.fromArray(S, v, o + 2 * L).mul(p2[u]));
                a3 = a3.add(FloatVector.fromArray(S, v, o + 3 * L).mul(p3[u]));
            }
            a0.intoArray(out, outOff + j);
            a1.intoArray(out, outOff + j + L);
            a2.intoArray(out, outOff + j + 2 * L);
            a3.intoArray(out, outOff + j + 3 * L);
        }
        for (; j < c; j += L) {
            final float[] p0 = p[j / hd];
            FloatVector a0 = FloatVector.zero(S);
            for (int u = 0; u < positions; u++) {
                a0 = a0.add(FloatVector.fromArray(S, v, posOff[u] + j).mul(p0[u]));
            }
            a0.intoArray(out, outOff + j);
        }
    }

    /**
     * One head's softmax over {@code s[0, n)} in place, as the plain loop: the max (order-free), then
     * e = {@link RowKernels#exp}(s - max) lane-wise with the same float operations ({@link #exp}), their
     * sum in double in u order, then each times the float reciprocal of the sum.
     */
    static void softmax(float[] s, int n) {
        expShifted(s, n);
        double sum = 0;
        for (int u = 0; u < n; u++) {
            sum += s[u];
        }
        scale(s, n, (float) (1.0 / sum));
    }

    /**
     * {@link #softmax} of {@code heads[h][0, n)} for every head, the same bits: the heads' sums in
     * double run four at a time (four independent chains of additions, each in u order, where one
     * head after another waits on every addition's latency).
     */
    static void softmaxHeads(float[][] heads, int nh, int n) {
        for (int h = 0; h < nh; h++) {
            expShifted(heads[h], n);
        }
        int h = 0;
        for (; h + 4 <= nh; h += 4) {
            final float[] s0 = heads[h];
            final float[] s1 = heads[h + 1];
            final float[] s2 = heads[h + 2];
            final float[] s3 = heads[h + 3];
            double a0 = 0;
            double a1 = 0;
            double a2 = 0;
            double a3 = 0;
            for (int u = 0; u < n; u++) {
                a0 += s0[u];
                a1 += s1[u];
                a2 += s2[u];
                a3 += s3[u];
            }
            scale(s0, n, (float) (1.0 / a0));
            scale(s1, n, (float) (1.0 / a1));
            scale(s2, n, (float) (1.0 / a2));
            scale(s3, n, (float) (1.0 / a3));
        }
        for (; h < nh; h++) {
            double sum = 0;
            for (int u = 0; u < n; u++) {
                sum += heads[h][u];
            }
            scale(heads[h], n, (float) (1.0 / sum));
        }
    }

    /**
     * s[u] = exp(s[u] - max over [0, n)) for u in [0, n). Whole vectors run past n where the array has
     * room (those lanes are scratch, computed and not read): a lane's exponential does not depend on
     * its neighbours, and the scalar {@link RowKernels#exp} it replaces costs as much as a vector.
     */
    private static void expShifted(float[] s, int n) {
        FloatVector m = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        int u = 0;
        for (; u + L <= n; u += L) {
            m = m.max(FloatVector.fromArray(S, s, u));
        }
        float max = m.reduceLanes(VectorOperators.MAX);
        for (; u < n; u++) {
            max = Math.max(max, s[u]);
        }
        u = 0;
        for (; u < n && u + L <= s.length; u += L) {
            exp(FloatVector.fromArray(S, s, u).sub(max)).intoArray(s, u);
        }
        for (; u < n; u++) {
            s[u] = RowKernels.exp(s[u] - max);
        }
    }

    /**
     * out[i] = {@link RowKernels#exp}((l[off + i] - max) / t) for i in [0, n), lane-wise (the same float
     * operations, the same bits).
     */
    static void expScaled(float[] l, int off, int n, float max, float t, float[] out) {
        int i = 0;
        for (; i + L <= n; i += L) {
            exp(FloatVector.fromArray(S, l, off + i).sub(max).div(t)).intoArray(out, i);
        }
        for (; i < n; i++) {
            out[i] = RowKernels.exp((l[off + i] - max) / t);
        }
    }

    /** s[u] *= inv for u in [0, n) (whole vectors past n where the array has room). */
    private static void scale(float[] s, int n, float inv) {
        int u = 0;
        for (; u < n && u + L <= s.length; u += L) {
            FloatVector.fromArray(S, s, u).mul(inv).intoArray(s, u);
        }
        for (; u < n; u++) {
            s[u] *= inv;
        }
    }

    /** 1.5 * 2^23: adding it rounds a float of magnitude below 2^22 to an integer held in the low mantissa bits. */
    private static final float ROUNDER = 12582912f;
    private static final int ROUNDER_BITS = Float.floatToIntBits(ROUNDER);

    /**
     * {@link RowKernels#exp} lane by lane, bit for bit: the same float operations in the same order;
     * floor(t) as t rounded to an integer (by adding and removing {@link #ROUNDER}), less one where that
     * exceeds t, and 2^n from the bits of n + 127 + ROUNDER (exact for the |t| < 2^22 that matter: lanes
     * outside [-87, 88] are replaced by 0 and infinity afterwards, as the scalar form returns).
     */
    static FloatVector exp(FloatVector x) {
        FloatVector t = x.mul(RowKernels.LOG2E).add(0.5f);
        FloatVector rounded = t.add(ROUNDER).sub(ROUNDER);
        FloatVector n = rounded.blend(rounded.sub(1f), rounded.compare(VectorOperators.GT, t));
        FloatVector r = x.sub(n.mul(RowKernels.LN2_HI));
        r = r.sub(n.mul(RowKernels.LN2_LO));
        FloatVector y = FloatVector.broadcast(S, RowKernels.E1);
        y = y.mul(r).add(RowKernels.E2);
        y = y.mul(r).add(RowKernels.E3);
        y = y.mul(r).add(RowKernels.E4);
        y = y.mul(r).add(RowKernels.E5);
        y = y.mul(r).add(RowKernels.E6);
        y = y.mul(r.mul(r)).add(r).add(1f);
        IntVector bits = n.add(127f + ROUNDER).reinterpretAsInts().sub(ROUNDER_BITS).lanewise(VectorOperators.LSHL, 23);
        FloatVector e = y.mul(bits.reinterpretAsFloats());
        return e.blend(0f, x.compare(VectorOperators.LT, -87f)).blend(Float.POSITIVE_INFINITY,
            x.compare(VectorOperators.GT, 88f));
    }
}
