package io.troupe.actors.cluster;

import io.troupe.collectives.CollectiveHandle;
import io.troupe.collectives.Communicator;
import io.troupe.collectives.ReduceOp;
import io.troupe.collectives.bucket.GradientBucketer;
import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.memory.GradientArena;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * ZeRO stage 2 for one model chunk of one rank on the cluster: the chunk keeps its gradients in a
 * {@link GradientArena} whose buckets are the flat ranges of the chunk's reduce-scattering
 * {@link GradientBucketer} (so every rank owns the same segments, optimizer moments and all-gather
 * as under zero 1), each imaged in one bucket-sized window, and the reduced segments it owns
 * packed in the worker's owned gradients ({@code StageWorker.ownedGradients}).
 *
 * <ul>
 *   <li>Every weight-gradient pass (each micro-batch) reports the pieces it has written; once a
 *       bucket's are all in the window (buckets complete in launch order), the window is
 *       reduce-scattered over the data-parallel group, this rank adds its segment to its owned
 *       gradients and zeroes the window for the next bucket. The reduce-scatter is waited for
 *       before the pass writes on, so the pass never overwrites a bucket in flight.</li>
 *   <li>The parameters the input-gradient pass writes (a GPT's LayerNorms) stay resident and
 *       accumulate over the step; the step's last pass copies them into their bucket's image
 *       before its reduce-scatter. A bucket of resident parameters only is reduced then too.</li>
 * </ul>
 * With one micro-batch per replica every owned element is zero 1's reduce-scatter of the same
 * bucket, bitwise; with several, each micro-batch's sum over ranks is added in turn (float
 * reassociation against zero 0/1, which sum the micro-batches first).
 *
 * <p>Threading: {@link #accept} runs on the worker's compute thread, inside its weight gradient;
 * the communicator's agent runs on its own thread. Steady state allocates nothing.
 */
final class ZeroGradientWindow implements IntConsumer {
    private final Communicator dataParallel;
    private final Device device;
    private final Tensor grads;
    private final Tensor owned;
    private final GradientArena arena;
    private final int microbatches;
    private final int[] bucketOf;
    private final int[] piecesIn;
    private final int[] readyIn;
    private final long[] bucketNumel;
    private final long[] segmentStart;
    private final long[] segmentNumel;
    private final long[] ownedOffset;
    /** Per bucket, the resident pieces in its range, and where in the window their images start. */
    private final int[][] residentIn;
    private final long[][] residentImageOffset;
    private final CollectiveHandle handle = new CollectiveHandle();
    private int nextBucket;
    private int passesDone;

    /**
     * @param chunk       the chunk, its gradients already in {@code arena} (from
     *                    {@code StageModule.shardGradients(long[], long[])} with {@code buckets}' ranges)
     * @param owned       the packed owned gradients (the optimizer's ranges: {@code buckets}' owned segments)
     * @param microbatches weight-gradient passes per step
     */
    ZeroGradientWindow(Communicator dataParallel, StageModule chunk, Tensor owned, GradientBucketer buckets,
                       GradientArena arena, int microbatches) {
        int nb = buckets.bucketCount();
        if (arena.buckets().length != nb) {
            throw new IllegalArgumentException("the arena must have the bucketer's " + nb + " buckets: "
                + arena.buckets().length);
        }
        this.dataParallel = dataParallel;
        this.device = chunk.device();
        this.grads = chunk.grads();
        this.owned = owned;
        this.arena = arena;
        this.microbatches = microbatches;
        this.bucketOf = new int[arena.pieces().size()];
        java.util.Arrays.fill(bucketOf, -1);
        this.piecesIn = new int[nb];
        this.readyIn = new int[nb];
        for (int b = 0; b < nb; b++) {
            for (int k : arena.buckets()[b]) {
                bucketOf[k] = b;
            }
            piecesIn[b] = arena.buckets()[b].length;
        }
        int n = dataParallel.size();
        int me = dataParallel.myIndex();
        this.bucketNumel = new long[nb];
        this.segmentStart = new long[nb];
        this.segmentNumel = new long[nb];
        this.ownedOffset = new long[nb];
        long at = 0;
        for (int b = nb - 1; b >= 0; b--) {  // owned ranges ascend: the last bucket holds the first parameters
            bucketNumel[b] = buckets.bucketNumel(b);
            segmentStart[b] = Communicator.segmentStart(bucketNumel[b], n, me);
            segmentNumel[b] = Communicator.segmentStart(bucketNumel[b], n, me + 1) - segmentStart[b];
            ownedOffset[b] = at;
            at += segmentNumel[b];
        }
        if (at != owned.numel()) {
            throw new IllegalArgumentException("owned gradients must hold the owned segments: " + at + " != "
                + owned.numel());
        }
        List<ParamSpec> specs = chunk.parameters();
        this.residentIn = new int[nb][];
        this.residentImageOffset = new long[nb][];
        for (int b = 0; b < nb; b++) {
            long start = buckets.bucketStartElements(b);
            List<Integer> in = new java.util.ArrayList<>();
            for (int k : arena.resident()) {
                long off = specs.get(arena.pieces().get(k).parameter()).localOffset();
                if (off >= start && off < start + bucketNumel[b]) {
                    in.add(k);
                }
            }
            residentIn[b] = in.stream().mapToInt(Integer::intValue).toArray();
            residentImageOffset[b] = new long[residentIn[b].length];
            for (int j = 0; j < residentIn[b].length; j++) {
                long off = specs.get(arena.pieces().get(residentIn[b][j]).parameter()).localOffset();
                residentImageOffset[b][j] = arena.residentElements() + off - start;
            }
        }
    }

    /** A piece (index into the arena's pieces) is written: reduces every bucket now complete, in order. */
    @Override
    public void accept(int piece) {
        int b = bucketOf[piece];
        if (b < 0) {
            return;
        }
        readyIn[b]++;
        boolean lastPass = passesDone == microbatches - 1;
        while (nextBucket < piecesIn.length && readyIn[nextBucket] == piecesIn[nextBucket]) {
            if (piecesIn[nextBucket] > 0 || lastPass) {
                reduce(nextBucket, lastPass);
            }
            nextBucket++;
        }
        if (nextBucket == piecesIn.length) {
            java.util.Arrays.fill(readyIn, 0);
            nextBucket = 0;
            passesDone = lastPass ? 0 : passesDone + 1;
        }
    }

    private void reduce(int b, boolean lastPass) {
        long window = arena.residentElements();
        if (lastPass) {
            for (int j = 0; j < residentIn[b].length; j++) {
                GradientArena.Piece p = arena.pieces().get(residentIn[b][j]);
                device.copy(grads.view(p.arenaOffset(), (int) p.elements()),
                    grads.view(residentImageOffset[b][j], (int) p.elements()));
            }
        }
        device.synchronize();
        long base = grads.address() + window * 4;
        dataParallel.reduceScatterAsync(base, bucketNumel[b], base + segmentStart[b] * 4, ReduceOp.SUM, handle)
            .await();
        int n = (int) segmentNumel[b];
        if (n > 0) {
            device.axpy(1f, grads.view(window + segmentStart[b], n), owned.view(ownedOffset[b], n));
        }
        device.fill(grads.view(window, (int) bucketNumel[b]), 0f);
    }
}
