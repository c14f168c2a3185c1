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
 * <p>Reduce-scatter mode (ZeRO stage 1/2): each bucket is reduce-scattered instead, in place:
 * member {@code k} of the group ends with the reduced segment {@code k} of every bucket
 * ({@code Communicator.segmentStart} of the bucket's count) and the rest of its buffer is stale.
 * Those segments are what the member owns ({@link #ownedStarts}, {@link #ownedNumels}): its
 * optimizer shard steps them, and {@link #allGather} then brings every member's updated segments
 * of a parameter buffer with the same layout to all.
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
    private final CollectiveHandle[] gatherHandles;
    private final boolean reduceScatter;
    private final int tagBase;
    private int nextLaunch;

    /**
     * @param gradients   the flat float32 CPU gradient buffer
     * @param params      parameters in forward (layer) order
     * @param bucketBytes bucket size limit, e.g. {@link #DEFAULT_BUCKET_BYTES}
     * @param op          {@link ReduceOp#AVERAGE} for data-parallel gradients
     */
    public GradientBucketer(Communicator communicator, Tensor gradients, List<ParamRange> params, long bucketBytes,
                            ReduceOp op) {
        this(communicator, checked(gradients).address(), gradients.numel(), params, bucketBytes, op, false, 0);
    }

    /**
     * As above; with {@code reduceScatter} the buckets are reduce-scattered (ZeRO), and every
     * collective of this bucketer is tagged {@code tagBase + bucket} (several bucketers on one
     * communicator, e.g. one per model chunk, keep their int8 error-feedback residuals apart).
     */
    public GradientBucketer(Communicator communicator, Tensor gradients, List<ParamRange> params, long bucketBytes,
                            ReduceOp op, boolean reduceScatter, int tagBase) {
        this(communicator, checked(gradients).address(), gradients.numel(), params, bucketBytes, op, reduceScatter,
            tagBase);
    }

    /** As above over {@code numel} floats of native memory at {@code baseAddress}. */
    public GradientBucketer(Communicator communicator, long baseAddress, long numel, List<ParamRange> params,
                            long bucketBytes, ReduceOp op) {
        this(communicator, baseAddress, numel, params, bucketBytes, op, false, 0);
    }

    /** As above over {@code numel} floats of native memory at {@code baseAddress}. */
    public GradientBucketer(Communicator communicator, long baseAddress, long numel, List<ParamRange> params,
                            long bucketBytes, ReduceOp op, boolean reduceScatter, int tagBase) {
        if (bucketBytes < 4) {
            throw new IllegalArgumentException("bucketBytes must hold a float: bucketBytes=" + bucketBytes);
        }
        if (params.isEmpty()) {
            throw new IllegalArgumentException("no parameters: params=" + params);
        }
        if (tagBase < 0) {
            throw new IllegalArgumentException("tagBase must be >= 0: tagBase=" + tagBase);
        }
        this.communicator = communicator;
        this.baseAddress = baseAddress;
        this.op = op;
        this.reduceScatter = reduceScatter;
        this.tagBase = tagBase;
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
        gatherHandles = new CollectiveHandle[nb];
        for (int b = 0; b < nb; b++) {
            handles[b] = new CollectiveHandle();
            gatherHandles[b] = new CollectiveHandle();
            if (reduceScatter && bucketNumel[b] < communicator.size()) {
                throw new IllegalArgumentException("a reduce-scattered bucket needs an element per member: bucket " + b
                    + " numel=" + bucketNumel[b] + ", members=" + communicator.size());
            }
        }
    }

    /** Whether buckets are reduce-scattered (ZeRO) rather than all-reduced. */
    public boolean reduceScatters() {
        return reduceScatter;
    }

    /**
     * First elements of the ranges this member owns in reduce-scatter mode (its segment of every
     * bucket), ascending; the whole buffer's buckets otherwise.
     */
    public long[] ownedStarts() {
        return owned(true);
    }

    /** Lengths of the ranges of {@link #ownedStarts}, in the same order. */
    public long[] ownedNumels() {
        return owned(false);
    }

    private long[] owned(boolean starts) {
        int nb = bucketStart.length;
        long[] out = new long[nb];
        int n = communicator.size();
        int me = communicator.myIndex();
        for (int i = 0; i < nb; i++) {
            int b = nb - 1 - i; // bucket 0 holds the last parameters: ascending offsets run backwards
            long s0 = reduceScatter ? Communicator.segmentStart(bucketNumel[b], n, me) : 0;
            long s1 = reduceScatter ? Communicator.segmentStart(bucketNumel[b], n, me + 1) : bucketNumel[b];
            out[i] = starts ? bucketStart[b] + s0 : s1 - s0;
        }
        return out;
    }

    /**
     * Reduce-scatter mode: all-gathers, bucket by bucket, every member's owned segments of the
     * float32 native buffer at {@code address} (the same layout as the gradients, e.g. the
     * parameters after the optimizer stepped the owned ranges) and waits. Every member calls it
     * with a buffer of the same layout.
     *
     * @throws io.troupe.collectives.CollectiveException when a gather failed
     */
    public void allGather(long address) {
        startAllGather(address);
        finishAllGather();
    }

    /** Launches the all-gathers of {@link #allGather} without waiting. */
    public void startAllGather(long address) {
        if (!reduceScatter) {
            throw new IllegalStateException("allGather needs the reduce-scatter mode");
        }
        int n = communicator.size();
        int me = communicator.myIndex();
        for (int b = 0; b < bucketStart.length; b++) {
            long s0 = Communicator.segmentStart(bucketNumel[b], n, me);
            long bucket = address + bucketStart[b] * 4;
            communicator.allGatherAsync(bucket + s0 * 4, bucket, bucketNumel[b], gatherHandles[b]);
        }
    }

    /** Waits for the all-gathers {@link #startAllGather} launched. */
    public void finishAllGather() {
        for (CollectiveHandle h : gatherHandles) {
            h.await();
        }
    }

    /** The handle of bucket {@code b}'s parameter all-gather. */
    public CollectiveHandle gatherHandle(int b) {
        return gatherHandles[b];
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
            long bucket = baseAddress + bucketStart[b] * 4;
            if (reduceScatter) {
                long s0 = Communicator.segmentStart(bucketNumel[b], communicator.size(), communicator.myIndex());
                communicator.reduceScatterAsync(bucket, bucketNumel[b], bucket + s0 * 4, op, handles[b]);
            } else {
                communicator.allReduceAsync(bucket, bucketNumel[b], op, tagBase + b, handles[b]);
            }
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
