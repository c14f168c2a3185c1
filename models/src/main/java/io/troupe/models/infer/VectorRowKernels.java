package io.troupe.models.infer;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link RowKernels}' row-wise LayerNorm on the Vector API (loaded only where
 * {@link Fp32Linear#VECTOR_API} holds), bit for bit the plain loop: the sums in
 * {@link RowKernels#laneSum}'s order (16 lane sums, one 512-bit vector or two 256-bit ones, folded
 * pairwise), the output element-wise with the same float operations.
 */
final class VectorRowKernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private VectorRowKernels() {
    }

    /** Whether this JVM's vectors hold the 16 lane sums (one vector of 16 lanes or two of 8). */
    static boolean fits() {
        return L == 16 || L == 8;
    }

    /** {@link RowKernels#layerNorm}, the same bits. {@code lanes}: scratch of 16 floats. */
    static void layerNorm(float[] x, float[] w, float[] b, float[] out, int rows, int cols, float eps,
                          float[] lanes) {
        final int body = cols - cols % RowKernels.LANES;
        for (int r = 0; r < rows; r++) {
            final int o = r * cols;
            FloatVector lo = FloatVector.zero(S);
            FloatVector hi = lo;
            for (int i = 0; i < body; i += RowKernels.LANES) {
                lo = lo.add(FloatVector.fromArray(S, x, o + i));
                if (L == 8) {
                    hi = hi.add(FloatVector.fromArray(S, x, o + i + 8));
                }
            }
            float sum = fold(lo, hi, lanes);
            for (int i = body; i < cols; i++) {
                sum += x[o + i];
            }
            final float mean = sum / cols;
            lo = FloatVector.zero(S);
            hi = lo;
            for (int i = 0; i < body; i += RowKernels.LANES) {
                FloatVector d = FloatVector.fromArray(S, x, o + i).sub(mean);
                lo = lo.add(d.mul(d));
                if (L == 8) {
                    FloatVector e = FloatVector.fromArray(S, x, o + i + 8).sub(mean);
                    hi = hi.add(e.mul(e));
                }
            }
            float var = fold(lo, hi, lanes);
            for (int i = body; i < cols; i++) {
                float d = x[o + i] - mean;
                var += d * d;
            }
            final float rstd = (float) (1.0 / Math.sqrt(var / cols + eps));
            int i = 0;
            for (; i + L <= cols; i += L) {
                FloatVector.fromArray(S, x, o + i).sub(mean).mul(rstd).mul(FloatVector.fromArray(S, w, i))
                    .add(FloatVector.fromArray(S, b, i)).intoArray(out, o + i);
            }
            for (; i < cols; i++) {
                out[o + i] = (x[o + i] - mean) * rstd * w[i] + b[i];
            }
        }
    }

    private static float fold(FloatVector lo, FloatVector hi, float[] lanes) {
        lo.intoArray(lanes, 0);
        if (L == 8) {
            hi.intoArray(lanes, 8);
        }
        return RowKernels.foldLanes(lanes);
    }
}
