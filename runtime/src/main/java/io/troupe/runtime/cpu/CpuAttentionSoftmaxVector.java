package io.troupe.runtime.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link CpuAttention#softmaxCausalInPlace} and {@link CpuAttention#softmaxBackwardCausalInPlace} with their
 * per-row loops on the Vector API (the incubator module; load
 * this class only where {@link CpuAttention#VECTOR_API}): each row's max as lane-wise maxima and one reduction,
 * the shift and the scaling as whole vectors (the last one of a row masked), where the scalar form runs short
 * loops per row. The exponentials ({@link CpuMath#expBlock}) and each row's sum ({@link CpuAttention#sum4}: four
 * double partial sums) are the scalar form's, so the result is bitwise {@link CpuAttention#softmaxCausalInPlace}
 * ({@code CpuAttentionSoftmaxTest}); likewise the backward, whose row sums stay {@link CpuAttention#dot4}'s.
 *
 * <p>Whole vectors run past a row's end: into the next row (which is written after it) or into the padding of
 * {@link #PAD} floats every array needs beyond its (seq, seq) or packed length.
 */
final class CpuAttentionSoftmaxVector {
    /** Floats every array passed here must have beyond its (seq, seq) matrix or packed length. */
    static final int PAD = 64;
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final float[] IOTA = new float[L];

    static {
        for (int i = 0; i < L; i++) {
            IOTA[i] = i;
        }
    }

    private CpuAttentionSoftmaxVector() {
    }

    /**
     * Row t of {@code m} (seq, seq) becomes softmax over columns 0..t, zeros after. {@code q} and {@code scratch}
     * hold seq (seq + 1) / 2 + {@link #PAD} floats, {@code m} seq seq + {@link #PAD}.
     */
    static void causal(float[] m, float[] q, float[] scratch, int seq) {
        if (L > PAD) {
            throw new IllegalStateException("vector length " + L + " exceeds the padding " + PAD);
        }
        int packed = seq * (seq + 1) / 2;
        FloatVector iota = FloatVector.fromArray(S, IOTA, 0);
        for (int t = 0, o = 0; t < seq; o += ++t) {
            int row = t * seq;
            int n = t + 1;
            FloatVector mx = FloatVector.broadcast(S, m[row]);
            int j = 0;
            for (; j + L <= n; j += L) {
                mx = mx.max(FloatVector.fromArray(S, m, row + j));
            }
            if (j < n) {
                VectorMask<Float> in = iota.compare(VectorOperators.LT, (float) (n - j));
                mx = mx.lanewise(VectorOperators.MAX, FloatVector.fromArray(S, m, row + j), in);
            }
            FloatVector max = FloatVector.broadcast(S, mx.reduceLanes(VectorOperators.MAX));
            for (j = 0; j < n; j += L) {
                FloatVector.fromArray(S, m, row + j).sub(max).intoArray(q, o + j);
            }
        }
        CpuMath.expBlock(q, scratch, packed);
        FloatVector zero = FloatVector.zero(S);
        for (int t = 0, o = 0; t < seq; o += ++t) {
            int row = t * seq;
            int n = t + 1;
            FloatVector inv = FloatVector.broadcast(S, (float) (1.0 / CpuAttention.sum4(q, o, o + n)));
            int j = 0;
            for (; j + L <= n; j += L) {
                FloatVector.fromArray(S, q, o + j).mul(inv).intoArray(m, row + j);
            }
            if (j < n) {
                VectorMask<Float> in = iota.compare(VectorOperators.LT, (float) (n - j));
                zero.blend(FloatVector.fromArray(S, q, o + j).mul(inv), in).intoArray(m, row + j);
                j += L;
            }
            for (; j < seq; j += L) {
                zero.intoArray(m, row + j);
            }
        }
    }

    /**
     * {@link CpuAttention#softmaxBackwardCausalInPlace}: {@code dm} (seq, seq) becomes dS = P * (dP - rowsum(P * dP))
     * over the causal entries, zeros after. Rows of whole vectors only (seq a multiple of the vector length, so
     * writes stay inside each row: the next row is still to be read); other lengths take the scalar form.
     */
    static void causalBackward(float[] pm, float[] dm, int seq) {
        if (seq % L != 0) {
            // whole vectors would run into the next row, which is still to be read
            CpuAttention.softmaxBackwardCausalInPlace(pm, dm, seq);
            return;
        }
        FloatVector iota = FloatVector.fromArray(S, IOTA, 0);
        FloatVector zero = FloatVector.zero(S);
        for (int t = 0; t < seq; t++) {
            int row = t * seq;
            int n = t + 1;
            FloatVector dot = FloatVector.broadcast(S, CpuAttention.dot4(pm, dm, row, row + n));
            int j = 0;
            for (; j + L <= n; j += L) {
                FloatVector p = FloatVector.fromArray(S, pm, row + j);
                p.mul(FloatVector.fromArray(S, dm, row + j).sub(dot)).intoArray(dm, row + j);
            }
            if (j < n) {
                VectorMask<Float> in = iota.compare(VectorOperators.LT, (float) (n - j));
                FloatVector p = FloatVector.fromArray(S, pm, row + j);
                zero.blend(p.mul(FloatVector.fromArray(S, dm, row + j).sub(dot)), in).intoArray(dm, row + j);
                j += L;
            }
            for (; j < seq; j += L) {
                zero.intoArray(dm, row + j);
            }
        }
    }
}
