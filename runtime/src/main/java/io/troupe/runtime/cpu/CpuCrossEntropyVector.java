package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link CpuTokenRows#crossEntropy} with its row max, shift and scaling on the Vector API (the incubator module; load
 * this class only where {@link CpuAttention#VECTOR_API}): the max as lane-wise maxima and one reduction, the
 * shift and the scaling as whole vectors and a scalar tail. The exponentials ({@link CpuMath#expBlock}) and the
 * row sum ({@link CpuAttention#sum4}) are the scalar form's, so probabilities and losses are bitwise
 * {@link CpuTokenRows#crossEntropy}'s ({@code CpuCrossEntropyVectorTest}).
 */
final class CpuCrossEntropyVector {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final long FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    private static final float[] IOTA = new float[L];
    private static final ThreadLocal<float[][]> ROWS = ThreadLocal.withInitial(() -> new float[2][]);

    static {
        for (int i = 0; i < L; i++) {
            IOTA[i] = i;
        }
    }

    private CpuCrossEntropyVector() {
    }

    /** Rows [r0, r1) of (rows, vocab) logits: as {@link CpuTokenRows#crossEntropy}. */
    static void rows(long logits, long targets, long probs, long losses, int r0, int r1, int vocab) {
        float[][] b = ROWS.get();
        if (b[0] == null || b[0].length < vocab + L) {
            b[0] = new float[vocab + L];
            b[1] = new float[vocab + L];
        }
        float[] x = b[0];
        float[] scratch = b[1];
        FloatVector iota = FloatVector.fromArray(S, IOTA, 0);
        for (int r = r0; r < r1; r++) {
            long row = (long) r * vocab;
            UNSAFE.copyMemory(null, logits + 4 * row, x, FLOAT_BASE, 4L * vocab);
            FloatVector mx = FloatVector.broadcast(S, x[0]);
            int c = 0;
            for (; c + L <= vocab; c += L) {
                mx = mx.max(FloatVector.fromArray(S, x, c));
            }
            if (c < vocab) {
                VectorMask<Float> in = iota.compare(VectorOperators.LT, (float) (vocab - c));
                mx = mx.lanewise(VectorOperators.MAX, FloatVector.fromArray(S, x, c), in);
            }
            float max = mx.reduceLanes(VectorOperators.MAX);
            FloatVector vmax = FloatVector.broadcast(S, max);
            for (c = 0; c + L <= vocab; c += L) {
                FloatVector.fromArray(S, x, c).sub(vmax).intoArray(x, c);
            }
            for (; c < vocab; c++) {
                x[c] -= max;
            }
            float shiftedTarget = x[UNSAFE.getInt(targets + 4L * r)];
            CpuMath.expBlock(x, scratch, vocab);
            double sum = CpuAttention.sum4(x, vocab);
            float inv = (float) (1.0 / sum);
            FloatVector vinv = FloatVector.broadcast(S, inv);
            for (c = 0; c + L <= vocab; c += L) {
                FloatVector.fromArray(S, x, c).mul(vinv).intoArray(x, c);
            }
            for (; c < vocab; c++) {
                x[c] *= inv;
            }
            UNSAFE.copyMemory(x, FLOAT_BASE, null, probs + 4 * row, 4L * vocab);
            UNSAFE.putFloat(losses + 4L * r, (float) (Math.log(sum) - shiftedTarget));
        }
    }
}
