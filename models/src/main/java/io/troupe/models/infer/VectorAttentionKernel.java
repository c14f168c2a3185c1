package io.troupe.models.infer;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The two per-position loops of {@link KvCachedGpt}'s attention on the Vector API (loaded only when
 * {@link Fp32Linear#VECTOR_API} holds): the vectors read the cached keys and values where they lie,
 * with no copy to scratch, and the four partial sums of a head's score live in the four lanes of
 * one 128-bit vector. The arithmetic is exactly the scalar path's: a score is q * k summed in
 * {@link RowKernels#sum}'s order (lane l adds the products of channels 4g + l for g ascending, then
 * (s0 + s1) + (s2 + s3), then the tail channels in order), times the scale; the output adds
 * {@code p * v} (a rounded product, then a rounded sum) position after position. So both paths give
 * the same bits (tested), and a token's result does not depend on the batch.
 */
final class VectorAttentionKernel {
    private static final VectorSpecies<Float> S4 = FloatVector.SPECIES_128;
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private VectorAttentionKernel() {
    }

    /**
     * scores[h][u] = scale * sum_d q[qOff + h hd + d] * k[kOff + h hd + d] for every head h, the sum
     * in {@link RowKernels#sum}'s four-lane order.
     */
    static void scores(float[] q, int qOff, float[] k, int kOff, int nh, int hd, float scale, float[][] scores,
                       int u) {
        final int groups = hd / 4;
        for (int h = 0; h < nh; h++) {
            int base = h * hd;
            FloatVector acc = FloatVector.zero(S4);
            for (int g = 0; g < groups; g++) {
                int c = base + 4 * g;
                acc = acc.add(FloatVector.fromArray(S4, q, qOff + c).mul(FloatVector.fromArray(S4, k, kOff + c)));
            }
            float s = (acc.lane(0) + acc.lane(1)) + (acc.lane(2) + acc.lane(3));
            for (int d = 4 * groups; d < hd; d++) {
                s += q[qOff + base + d] * k[kOff + base + d];
            }
            scores[h][u] = s * scale;
        }
    }

    /** out[h hd + d] += scores[h][u] * v[vOff + h hd + d] for every head h and d in [0, hd). */
    static void addWeightedValues(float[][] scores, int u, float[] v, int vOff, int nh, int hd, float[] out) {
        for (int h = 0; h < nh; h++) {
            float p = scores[h][u];
            FloatVector pv = FloatVector.broadcast(S, p);
            int c = h * hd;
            int end = c + hd;
            for (; c + L <= end; c += L) {
                FloatVector.fromArray(S, out, c).add(FloatVector.fromArray(S, v, vOff + c).mul(pv)).intoArray(out, c);
            }
            for (; c < end; c++) {
                out[c] += p * v[vOff + c];
            }
        }
    }
}
