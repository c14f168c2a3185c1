package io.troupe.models.infer;

/**
 * The channel order in which {@link KvCachedGpt} caches keys (and orders a token's query before
 * scoring): group-major, so group g (channels 4g .. 4g + 3 of a head) of every head lies side by
 * side and one vector load reads the same lanes of several heads. A head's channels past its last
 * whole group (hd % 4 of them) follow after every group, head after head.
 *
 * <pre>
 * NH heads of width hd, G = hd / 4 groups, t = hd % 4, channel ch = h hd + r:
 *   r < 4G:  index = (r / 4) * 4 NH + 4 h + r % 4
 *   else:    index = 4 G NH + h t + (r - 4G)
 * </pre>
 *
 * Only the order of the stored values changes: every score is still summed in
 * {@link RowKernels#sum}'s order over the head's channels.
 */
final class KeyOrder {
    private KeyOrder() {
    }

    /** index[ch] = where channel ch of a key (or query) row goes in key order. */
    static int[] index(int nh, int hd) {
        final int groups = hd / 4;
        final int tail = hd % 4;
        final int a = 4 * nh;
        int[] index = new int[nh * hd];
        for (int h = 0; h < nh; h++) {
            for (int r = 0; r < hd; r++) {
                index[h * hd + r] = r < 4 * groups ? (r / 4) * a + 4 * h + r % 4
                    : groups * a + h * tail + (r - 4 * groups);
            }
        }
        return index;
    }

    /**
     * The score sum of head h over a row of products in key order: lane l adds groups g ascending,
     * then (s0 + s1) + (s2 + s3), then the tail channels in order; equal to {@link RowKernels#sum}
     * over the head's products in channel order.
     */
    static float headSum(float[] prod, int h, int nh, int hd) {
        final int groups = hd / 4;
        final int tail = hd % 4;
        final int a = 4 * nh;
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        for (int g = 0; g < groups; g++) {
            int o = g * a + 4 * h;
            s0 += prod[o];
            s1 += prod[o + 1];
            s2 += prod[o + 2];
            s3 += prod[o + 3];
        }
        float s = (s0 + s1) + (s2 + s3);
        int o = groups * a + h * tail;
        for (int d = 0; d < tail; d++) {
            s += prod[o + d];
        }
        return s;
    }
}
