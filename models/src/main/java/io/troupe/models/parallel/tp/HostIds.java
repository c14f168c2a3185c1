package io.troupe.models.parallel.tp;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;

/**
 * Reads int32 token ids back to the host on any device: the {@link Device} contract copies only
 * float32 to the host, so the ids are looked up in a {@code (V, 1)} table holding {@code 0..V-1}
 * (exact in float32 up to 2^24) and the floats are copied back. Costs N floats of transfer.
 */
final class HostIds implements AutoCloseable {
    private final Device dev;
    private final Tensor arange;
    private final Tensor scratch;
    private final int maxRows;

    HostIds(Device dev, int vocab, int maxRows) {
        if (vocab > (1 << 24)) {
            throw new IllegalArgumentException("vocabulary too large for exact float ids: vocab=" + vocab);
        }
        this.dev = dev;
        this.maxRows = maxRows;
        float[] a = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            a[i] = i;
        }
        this.arange = dev.allocate(vocab, 1);
        dev.copyFromHost(a, arange);
        this.scratch = dev.allocate(maxRows, 1);
    }

    /** The first {@code n} ids of {@code ids} (I32, values in [0, V)). */
    int[] read(Tensor ids, int n) {
        if (n > maxRows) {
            throw new IllegalArgumentException("more ids than sized for: n=" + n + ", maxRows=" + maxRows);
        }
        Tensor out = scratch.view(0, n, 1);
        dev.embedding(out, ids, arange, n, 1, false);
        float[] f = out.toFloatArray();
        int[] r = new int[n];
        for (int i = 0; i < n; i++) {
            r[i] = (int) f[i];
        }
        return r;
    }

    @Override
    public void close() {
        arange.close();
        scratch.close();
    }
}
