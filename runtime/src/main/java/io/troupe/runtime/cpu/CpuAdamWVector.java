package io.troupe.runtime.cpu;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link CpuRows#adamw} on the Vector API over the tensors in place ({@link CpuDirectViews}): no staging of the
 * four tensors through heap blocks and back. The same float operations in the same order per element
 * ({@code m = b1 m + (1 - b1) g}, {@code v = b2 v + ((1 - b2) g) g},
 * {@code p = p decay - (stepSize m) / (sqrt(v) / bc2Sqrt + eps)}; the lane-wise square root is correctly
 * rounded, as {@code (float) Math.sqrt} of a float is), so the bits are the staged form's
 * ({@code CpuAdamWVectorTest}). Load only where {@link CpuAttention#VECTOR_API}.
 */
final class CpuAdamWVector {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Elements per view (the views' int capacity). */
    private static final long CHUNK = CpuDirectViews.MAX_BYTES / 4;

    private CpuAdamWVector() {
    }

    /** Elements [s, e): as {@link CpuRows#adamw}. */
    static void adamw(long p, long g, long m, long v, long s, long e, float beta1, float beta2, float eps,
                      float decay, float stepSize, float bc2Sqrt) {
        for (long c = s; c < e; c += CHUNK) {
            int n = (int) Math.min(CHUNK, e - c);
            chunk(p + 4 * c, g + 4 * c, m + 4 * c, v + 4 * c, n, beta1, beta2, eps, decay, stepSize, bc2Sqrt);
        }
    }

    private static void chunk(long p, long g, long m, long v, int n, float beta1, float beta2, float eps,
                              float decay, float stepSize, float bc2Sqrt) {
        ByteBuffer pb = CpuDirectViews.view(p, 4L * n);
        ByteBuffer gb = CpuDirectViews.view(g, 4L * n);
        ByteBuffer mb = CpuDirectViews.view(m, 4L * n);
        ByteBuffer vb = CpuDirectViews.view(v, 4L * n);
        final float oneMinusB1 = 1f - beta1;
        final float oneMinusB2 = 1f - beta2;
        int i = 0;
        for (; i + L <= n; i += L) {
            int o = 4 * i;
            FloatVector gi = FloatVector.fromByteBuffer(S, gb, o, ORDER);
            FloatVector mi = FloatVector.fromByteBuffer(S, mb, o, ORDER).mul(beta1).add(gi.mul(oneMinusB1));
            FloatVector vi = FloatVector.fromByteBuffer(S, vb, o, ORDER).mul(beta2).add(gi.mul(oneMinusB2).mul(gi));
            mi.intoByteBuffer(mb, o, ORDER);
            vi.intoByteBuffer(vb, o, ORDER);
            FloatVector pi = FloatVector.fromByteBuffer(S, pb, o, ORDER);
            pi.mul(decay).sub(mi.mul(stepSize).div(vi.lanewise(VectorOperators.SQRT).div(bc2Sqrt).add(eps)))
                .intoByteBuffer(pb, o, ORDER);
        }
        if (i < n) {
            CpuRows.adamw(p, g, m, v, i, n, beta1, beta2, eps, decay, stepSize, bc2Sqrt);   // the last partial vector
        }
    }
}
