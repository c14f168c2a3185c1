package io.troupe.collectives.bucket;

import io.troupe.collectives.CollectiveHandle;
import io.troupe.collectives.Communicator;
import io.troupe.collectives.ReduceOp;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Groups parameter gradients into buckets and all-reduces each bucket as soon as its last gradient
 * is marked ready, so communication overlaps the rest of the backward pass (DDP style).
 *
 * <p>Buckets are formed once, in reverse parameter order (the order backward produces gradients):
 * consecutive parameters join a bucket while it stays under {@code bucketBytes} (a larger parameter
 * gets a bucket of its own) and while their ranges are adjacent in the buffer, so every bucket is
 * one flat range. Bucket 0 holds the last parameters.
 *
 * <p>Order: buckets are launched strictly in bucket order (a bucket that becomes ready early waits
 * for the ones before it), so every rank issues the same sequence. Each all-reduce carries its
 * bucket id and size; a rank whose buckets differ (another layout or bucket size) gets a
 * {@link io.troupe.collectives.CollectiveMismatchException} instead of a hang.
 *
 * <p>Use per step: {@link #markReady} for every parameter (any order), then {@link #finish()},
 * which waits for every bucket and re-arms the bucketer. For real overlap the communicator's agent
 * must run on its own thread ({@code CollectiveAgent.start}).
 *
 * <p>Threading: {@code markReady} and {@code finish} from one thread (the worker's compute thread).
 * The gradient buffer must not be written between a bucket's launch and {@code finish}.
 * Steady state allocates nothing.
 */
public final class GradientBucketer {
    /** DDP's default bucket size. */
    public static final long DEFAULT_BUCKET_BYTES = 25L * 1024 * 1024;

    private final Communicator communicator;
    private final long baseAddress;
    private final ReduceOp op;
    private final ParamRange[] params;
    private final int[] bucketOfParam;
    private final long[] bucketStart;
    private final long[] bucketNumel;
    private final int[] bucketParams;
    private final int[] readyInBucket;
    private final boolean[] paramReady;
    private final CollectiveHandle[] handles;
    private int nextLaunch;

    /**
     * @param gradients   the flat float32 CPU gradient buffer
     * @param params      parameters in forward (layer) order
     * @param bucketBytes bucket size limit, e.g. {@link #DEFAULT_BUCKET_BYTES}
     * @param op          {@link ReduceOp#AVERAGE} for data-parallel gradients
     */
    public GradientBucketer(Communicator communicator, Tensor gradients, List<ParamRange> params, long bucketBytes,
                            ReduceOp op) {
        this(communicator, checked(gradients).address(), gradients.numel(), params, bucketBytes, op);
    }

    /** As above over {@code numel} floats of native memory at {@code baseAddress}. */
    public GradientBucketer(Communicator communicator, long baseAddress, long numel, List<ParamRange> params,
                            long bucketBytes, ReduceOp op) {
        if (bucketBytes < 4) {
            throw new IllegalArgumentException("bucketBytes must hold a float: bucketBytes=" + bucketBytes);
        }
        if (params.isEmpty()) {
            throw new IllegalArgumentException("no parameters: params=" + params);
        }
        this.communicator = communicator;
        this.baseAddress = baseAddress;
        this.op = op;
        this.params = params.toArray(new ParamRange[0]);
        for (ParamRange p : this.params) {
            if (p.endElements() > numel) {
                throw new IllegalArgumentException("parameter outside the gradient buffer: " + p + ", buffer numel="
                    + numel);
            }
        }
        this.bucketOfParam = new int[this.params.length];
        List<long[]> buckets = new ArrayList<>(); // {start, numel, params}
        long[] cur = null;
        for (int i = this.params.length - 1; i >= 0; i--) {
            ParamRange p = this.params[i];
            boolean fits = cur != null && (cur[1] + p.numel()) * 4 <= bucketBytes && p.endElements() == cur[0];
            if (!fits) {
                cur = new long[] {p.offsetElements(), 0, 0};
                buckets.add(cur);
            }
            cur[0] = p.offsetElements();
            cur[1] += p.numel();
            cur[2]++;
            bucketOfParam[i] = buckets.size() - 1;
        }
        int nb = buckets.size();
        bucketStart = new long[nb];
        bucketNumel = new long[nb];
        bucketParams = new int[nb];
        for (int b = 0; b < nb; b++) {
            bucketStart[b] = buckets.get(b)[0];
            bucketNumel[b] = buckets.get(b)[1];
            bucketParams[b] = (int) buckets.get(b)[2];
        }
        readyInBucket = new int[nb];
        paramReady = new boolean[this.params.length];
        handles = new CollectiveHandle[nb];
        for (int b = 0; b < nb; b++) {
            handles[b] = new CollectiveHandle();
        }
    }

    private static Tensor checked(Tensor t) {
        if (t.device().kind() != DeviceKind.CPU || t.dtype() != DType.F32) {
            throw new IllegalArgumentException("gradients must be a float32 CPU tensor: gradients=" + t);
        }
        return t;
    }

    public int bucketCount() {
        return bucketStart.length;
    }

    /** First gradient element of bucket {@code b}. */
    public long bucketStartElements(int b) {
        return bucketStart[b];
    }

    public long bucketNumel(int b) {
        return bucketNumel[b];
    }

    /** The bucket holding parameter {@code paramIndex}. */
    public int bucketOf(int paramIndex) {
        return bucketOfParam[paramIndex];
    }

    /** Buckets launched so far this step. */
    public int launched() {
        return nextLaunch;
    }

    /** The handle of bucket {@code b}'s all-reduce (done once it has finished this step). */
    public CollectiveHandle handle(int b) {
        return handles[b];
    }

    /**
     * Marks parameter {@code paramIndex}'s gradient final for this step; launches every bucket that
     * is now complete and has all earlier buckets launched.
     */
    public void markReady(int paramIndex) {
        if (paramIndex < 0 || paramIndex >= params.length) {
            throw new IllegalArgumentException("paramIndex must be in [0, " + params.length + "): paramIndex="
                + paramIndex);
        }
        if (paramReady[paramIndex]) {
            throw new IllegalStateException("parameter marked ready twice in one step: " + params[paramIndex]);
        }
        paramReady[paramIndex] = true;
        readyInBucket[bucketOfParam[paramIndex]]++;
        while (nextLaunch < bucketStart.length && readyInBucket[nextLaunch] == bucketParams[nextLaunch]) {
            int b = nextLaunch++;
            communicator.allReduceAsync(baseAddress + bucketStart[b] * 4, bucketNumel[b], op, b, handles[b]);
        }
    }

    /**
     * Waits for every bucket's all-reduce and re-arms for the next step.
     *
     * @throws IllegalStateException when some parameter was never marked ready
     * @throws io.troupe.collectives.CollectiveException when an all-reduce failed (timeout, lost peer, mismatch)
     */
    public void finish() {
        if (nextLaunch < bucketStart.length) {
            int b = nextLaunch;
            List<String> missing = new ArrayList<>();
            for (int i = 0; i < params.length; i++) {
                if (!paramReady[i] && bucketOfParam[i] >= b) {
                    missing.add(params[i].name());
                }
            }
            for (int k = 0; k < nextLaunch; k++) {
                handles[k].await(); // let launched buckets finish before reporting
            }
            reset();
            throw new IllegalStateException("buckets " + b + ".." + (bucketStart.length - 1)
                + " never launched: parameters not marked ready: " + missing);
        }
        try {
            for (CollectiveHandle h : handles) {
                h.await();
            }
        } finally {
            reset();
        }
    }

    private void reset() {
        Arrays.fill(paramReady, false);
        Arrays.fill(readyInBucket, 0);
        nextLaunch = 0;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("GradientBucketer{");
        for (int b = 0; b < bucketStart.length; b++) {
            sb.append(b == 0 ? "" : ", ").append(b).append(":[").append(bucketStart[b]).append("+")
                .append(bucketNumel[b]).append(")");
        }
        return sb.append("}").toString();
    }
}
