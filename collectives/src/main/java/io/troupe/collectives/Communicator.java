package io.troupe.collectives;

import io.troupe.collectives.compress.ErrorFeedback;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;

/**
 * Collectives of one {@link CollectiveGroup} over the data plane: {@link #allReduce},
 * {@link #reduceScatter}, {@link #allGather}, {@link #broadcast}, {@link #barrier}, on float32
 * CPU tensors or raw native memory. Made by {@link CollectiveAgent#communicator}.
 *
 * <p>Every member must issue the same collectives in the same order. Each collective carries a
 * signature (op, element count, tag, algorithm) checked on every message; members that disagree
 * fail with a {@link CollectiveMismatchException} instead of hanging. Each collective must finish
 * within {@link CollectiveSettings#timeoutNs} of starting, else it fails with a
 * {@link CollectiveTimeoutException} naming the epoch and the rank it waited for; a lost peer fails
 * it at once. After a failure the communicator is broken: later collectives fail at once (the
 * control plane raises the epoch and builds new groups).
 *
 * <p>Layout of reduce-scatter and all-gather: a buffer of {@code count} elements is split into
 * {@code n} segments, segment {@code k} = {@code [segmentStart(count, n, k), segmentStart(count, n, k+1))};
 * member {@code k} owns segment {@code k} (any count, not only multiples of n).
 *
 * <p>Threading: collectives may be submitted from any thread; they run one after another, in
 * submission order, on the agent's thread. The memory of a collective must not be touched until
 * its handle is done. The {@code xxxAsync} forms return at once; the plain forms wait.
 */
public final class Communicator {
    private final CollectiveAgent agent;
    private final CollectiveGroup group;
    private final CollectiveSettings settings;
    private final int n;
    private final int me;
    private final CollectiveEngine engine;

    Communicator(CollectiveAgent agent, CollectiveGroup group, CollectiveSettings settings) {
        this.agent = agent;
        this.group = group;
        this.settings = settings;
        this.n = group.size();
        this.me = group.myIndex();
        this.engine = new CollectiveEngine(agent, group, settings);
    }

    public CollectiveGroup group() {
        return group;
    }

    public CollectiveSettings settings() {
        return settings;
    }

    /** Members in the group. */
    public int size() {
        return n;
    }

    /** This member's index in the group. */
    public int myIndex() {
        return me;
    }

    /**
     * Ring pieces this member wrote straight into its right neighbour's shared-memory ring instead
     * of into its own buffer and then the ring (diagnostics; see {@code RingAlgorithm}). Any thread;
     * a racy read.
     */
    public long forwardedPieces() {
        return engine.forwardedPieces();
    }

    CollectiveEngine engine() {
        return engine;
    }

    CollectiveAgent agent() {
        return agent;
    }

    /** This rank's error-feedback residuals (int8 compression), for checkpoints. */
    public ErrorFeedback errorFeedback() {
        return engine.errorFeedback;
    }

    /**
     * Payload bytes this member has sent to the others over the data plane, all collectives so
     * far (what the wire format put there: float32, bf16 or int8 with scales). Any thread; read it
     * after a collective's handle is done to include that collective.
     */
    public long sentBytes() {
        return engine.sentBytes;
    }

    /**
     * Native bytes this member's engine holds (staging, workspace, int8 residuals); 0 once
     * {@link CollectiveAgent#release released} and freed. Read it while no collective runs.
     */
    public long nativeBytes() {
        return engine.nativeBytes();
    }

    /** Collectives completed successfully. */
    public long completed() {
        return engine.completed;
    }

    /** The failure that broke this communicator, or {@code null}. */
    /**
     * Breaks this communicator from any thread (the control plane ended its epoch): the collective in
     * flight fails with {@code reason} at the agent's next duty cycle, and every later one at once, so
     * no member waits out its timeout for a peer that will never come.
     */
    public void abort(String reason) {
        engine.abort(reason);
    }

    public CollectiveException failure() {
        return engine.broken;
    }

    /** First element of segment {@code k} of a {@code count}-element buffer split over {@code n} members. */
    public static long segmentStart(long count, int n, int k) {
        return count * k / n;
    }

    // ------------------------------------------------------------------ public API

    /** Sums (or averages) {@code t} in place over the group; blocks. */
    public void allReduce(Tensor t, ReduceOp op) {
        allReduceAsync(t, op).await();
    }

    public CollectiveHandle allReduceAsync(Tensor t, ReduceOp op) {
        checkTensor("tensor", t);
        return allReduceAsync(t.address(), t.numel(), op, 0, new CollectiveHandle());
    }

    /**
     * Starts an in-place all-reduce of {@code count} floats at {@code address}.
     *
     * @param tag    carried in every message and checked (the bucket id); also keys the int8 residual
     * @param handle a done (or new) handle to reuse
     */
    public CollectiveHandle allReduceAsync(long address, long count, ReduceOp op, int tag, CollectiveHandle handle) {
        checkRegion("address", address, count);
        if (op == null) {
            throw new IllegalArgumentException("op must be set: op=null");
        }
        return submit(handle, OpKind.ALL_REDUCE, address, count, 0, op, 0, tag);
    }

    /**
     * Reduces {@code input} (all {@code count} elements) over the group and writes this member's
     * segment into {@code output}, which holds exactly that segment; {@code input} is unchanged. Blocks.
     */
    public void reduceScatter(Tensor input, Tensor output, ReduceOp op) {
        checkTensor("input", input);
        checkTensor("output", output);
        long seg = segmentStart(input.numel(), n, me + 1) - segmentStart(input.numel(), n, me);
        if (output.numel() != seg) {
            throw new IllegalArgumentException("output must hold this member's segment: output numel=" + output.numel()
                + ", segment=" + seg + " (input numel=" + input.numel() + ", n=" + n + ", index=" + me + ")");
        }
        reduceScatterAsync(input.address(), input.numel(), output.address(), op, new CollectiveHandle()).await();
    }

    /**
     * Starts a reduce-scatter of {@code count} floats at {@code input} into this member's segment at {@code output}.
     */
    public CollectiveHandle reduceScatterAsync(long input, long count, long output, ReduceOp op,
        CollectiveHandle handle) {
        checkRegion("input", input, count);
        checkRegion("output", output, 1);
        return submit(handle, OpKind.REDUCE_SCATTER, input, count, output, op, 0, 0);
    }

    /**
     * Gathers every member's {@code input} (its segment) into {@code output} (all segments, in member order). Blocks.
     */
    public void allGather(Tensor input, Tensor output) {
        checkTensor("input", input);
        checkTensor("output", output);
        long seg = segmentStart(output.numel(), n, me + 1) - segmentStart(output.numel(), n, me);
        if (input.numel() != seg) {
            throw new IllegalArgumentException("input must be this member's segment of output: input numel="
                + input.numel() + ", segment=" + seg + " (output numel=" + output.numel() + ", n=" + n + ", index="
                + me + ")");
        }
        allGatherAsync(input.address(), output.address(), output.numel(), new CollectiveHandle()).await();
    }

    /**
     * Starts an all-gather: this member's segment at {@code input}, the {@code count}-element result at {@code output}.
     */
    public CollectiveHandle allGatherAsync(long input, long output, long count, CollectiveHandle handle) {
        checkRegion("output", output, count);
        checkRegion("input", input, 1);
        return submit(handle, OpKind.ALL_GATHER, output, count, input, ReduceOp.SUM, 0, 0);
    }

    /** Copies member {@code rootIndex}'s {@code t} into every member's {@code t}; blocks. */
    public void broadcast(Tensor t, int rootIndex) {
        checkTensor("tensor", t);
        broadcastAsync(t.address(), t.numel(), rootIndex, new CollectiveHandle()).await();
    }

    public CollectiveHandle broadcastAsync(long address, long count, int rootIndex, CollectiveHandle handle) {
        checkRegion("address", address, count);
        if (rootIndex < 0 || rootIndex >= n) {
            throw new IllegalArgumentException("rootIndex must be in [0, " + n + "): rootIndex=" + rootIndex);
        }
        return submit(handle, OpKind.BROADCAST, address, count, 0, ReduceOp.SUM, rootIndex, 0);
    }

    /** Returns when every member has entered the barrier; blocks. */
    public void barrier() {
        barrierAsync(new CollectiveHandle()).await();
    }

    public CollectiveHandle barrierAsync(CollectiveHandle handle) {
        return submit(handle, OpKind.BARRIER, 0, 1, 0, ReduceOp.SUM, 0, 0);
    }

    private static void checkTensor(String name, Tensor t) {
        if (t.device().kind() != DeviceKind.CPU || t.dtype() != DType.F32) {
            throw new IllegalArgumentException(name + " must be a float32 CPU tensor: " + name + "=" + t);
        }
    }

    private static void checkRegion(String name, long address, long count) {
        if (address == 0 || count < 1 || count > (1L << 36) - 1) {
            throw new IllegalArgumentException(name + " must be native memory of 1..2^36-1 elements: " + name + "="
                + address + ", count=" + count);
        }
    }

    private CollectiveHandle submit(CollectiveHandle h, OpKind op, long address, long count, long other, ReduceOp rop,
                                    int root, int tag) {
        h.prepare(this, op, address, count, other, rop, root, tag);
        if (!engine.queue.offer(h)) {
            h.fail(new CollectiveException("too many collectives queued (1024) on " + group, group.epoch(), -1, null),
                System.nanoTime());
        }
        return h;
    }

    @Override
    public String toString() {
        return "Communicator{" + group + ", " + settings + "}";
    }
}
