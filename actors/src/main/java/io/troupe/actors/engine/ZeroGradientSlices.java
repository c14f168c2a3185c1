package io.troupe.actors.engine;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.memory.GradientArena;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.IntConsumer;

/**
 * ZeRO stage 2 for one model stage across the data-parallel replicas of one process: each replica
 * keeps its gradients in a {@link GradientArena} (a resident region for the LayerNorms and one
 * bucket-sized window, whose buckets may end inside a weight: its gradient is then formed in
 * blocks of rows) and the gradients of the segment it owns ({@link
 * io.troupe.collectives.Communicator#segmentStart}) packed in its own buffer.
 *
 * <ul>
 *   <li>Every time a weight-gradient pass completes a bucket's pieces in the window (each micro-batch), the
 *       replicas meet; replica d adds the window of every replica, in replica order, into its owned
 *       slice; they meet again and each zeroes its window, which the next bucket reuses.</li>
 *   <li>After the step's backward the resident gradients (accumulated over the micro-batches) are
 *       added into the owned slices the same way ({@link #reduceResident}).</li>
 * </ul>
 * With one micro-batch per replica every owned gradient is {@code 0 + g0 + g1 + ...}: bitwise the
 * zero-0 sum. With several, each micro-batch's sum over replicas is added in turn, so the
 * non-LayerNorm gradients differ from zero 0 (micro-batches summed first) by float reassociation.
 *
 * <p>Threading: {@link #hook}'s consumer runs on replica d's worker thread, inside its weight
 * gradient; the replicas of a stage run the same schedule, so they complete buckets in the same
 * order. {@link #reduceResident} runs on the engine's thread between steps. CPU devices only.
 */
final class ZeroGradientSlices {
    /** Largest bucket in floats (1 MiB, the data plane's default bucket). */
    static final long BUCKET_ELEMENTS = 256 * 1024;

    /**
     * Buckets of at most 1 MiB and 1/16 of the slice a replica owns ({@code stageNumel / dp}), so
     * the window adds at most a sixteenth to the owned gradients whatever the stage and dp.
     */
    static long bucketElements(long stageNumel, int dp) {
        return Math.min(BUCKET_ELEMENTS, Math.max(1, stageNumel / (16L * dp)));
    }

    private final int dp;
    private final StageModule[] stages;
    private final Tensor[] owned;
    private final long[] segmentStart;
    private final long[] segmentEnd;
    private final GradientArena arena;
    private final List<ParamSpec> specs;
    private final int[] bucketOf;
    private final int[][] done;
    private final CyclicBarrier barrier;
    private final long timeoutMs;

    /**
     * @param stages the stage in each replica, its gradients already in {@code arena}'s layout
     * @param owned  each replica's packed owned gradients (its segment of the whole flat buffer)
     */
    ZeroGradientSlices(StageModule[] stages, Tensor[] owned, GradientArena arena, long timeoutMs) {
        this.dp = stages.length;
        this.stages = stages.clone();
        this.owned = owned.clone();
        this.arena = arena;
        this.specs = stages[0].parameters();
        this.timeoutMs = timeoutMs;
        long numel = stages[0].params().numel();
        this.segmentStart = new long[dp];
        this.segmentEnd = new long[dp];
        for (int d = 0; d < dp; d++) {
            segmentStart[d] = io.troupe.collectives.Communicator.segmentStart(numel, dp, d);
            segmentEnd[d] = io.troupe.collectives.Communicator.segmentStart(numel, dp, d + 1);
        }
        this.bucketOf = new int[arena.pieces().size()];
        java.util.Arrays.fill(bucketOf, -1);
        for (int b = 0; b < arena.buckets().length; b++) {
            for (int i : arena.buckets()[b]) {
                bucketOf[i] = b;
            }
        }
        this.done = new int[dp][arena.buckets().length];
        this.barrier = new CyclicBarrier(dp);
    }

    /** What replica {@code d}'s weight-gradient passes report their finished pieces to. */
    IntConsumer hook(int d) {
        return k -> onPieceDone(d, k);
    }

    private void onPieceDone(int d, int k) {
        int b = bucketOf[k];
        if (b < 0) {
            return;
        }
        int[] pieces = arena.buckets()[b];
        if (++done[d][b] < pieces.length) {
            return;
        }
        done[d][b] = 0;
        stages[d].device().synchronize();
        meet(d, b);             // every replica's window holds this bucket
        reduceInto(d, pieces);
        meet(d, b);             // every replica has read every window
        stages[d].device().fill(stages[d].grads().view(arena.residentElements(), (int) arena.bucketElements()), 0f);
    }

    /** Between steps: adds the resident (LayerNorm) gradients of every replica into the owned slices. */
    void reduceResident() {
        for (int d = 0; d < dp; d++) {
            reduceInto(d, arena.resident());
        }
    }

    /** Zeroes every replica's owned slice (before a step). */
    void zeroOwned() {
        for (int d = 0; d < dp; d++) {
            stages[d].device().fill(owned[d], 0f);
        }
    }

    /** Releases replicas waiting for a peer that failed. */
    void abort() {
        barrier.reset();
    }

    /** owned_d += the sum over replicas, in replica order, of the parts of {@code pieces} in d's segment. */
    private void reduceInto(int d, int[] pieces) {
        for (int j : pieces) {
            GradientArena.Piece piece = arena.pieces().get(j);
            long start = specs.get(piece.parameter()).localOffset() + piece.firstElement();
            long lo = Math.max(start, segmentStart[d]);
            long hi = Math.min(start + piece.elements(), segmentEnd[d]);
            if (lo >= hi) {
                continue;
            }
            int n = (int) (hi - lo);
            long at = piece.arenaOffset() + (lo - start);
            Tensor dst = owned[d].view(lo - segmentStart[d], n);
            for (int k = 0; k < dp; k++) {
                stages[d].device().axpy(1f, stages[k].grads().view(at, n), dst);
            }
        }
    }

    private void meet(int d, int bucket) {
        try {
            barrier.await(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while reducing gradient bucket " + bucket + " (replica " + d
                + ")", e);
        } catch (BrokenBarrierException | TimeoutException e) {
            throw new IllegalStateException("replica " + d + " gave up waiting for its peers at gradient bucket "
                + bucket + " (timeout " + timeoutMs + " ms or a peer failed)", e);
        }
    }
}
