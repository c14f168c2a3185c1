package io.troupe.actors.cluster;

import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.StageWorker;
import io.troupe.collectives.Communicator;
import io.troupe.collectives.ReduceOp;
import io.troupe.collectives.bucket.GradientBucketer;
import io.troupe.collectives.bucket.ParamRange;
import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.memory.GradientArena;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.DeviceKind;
import java.util.ArrayList;
import java.util.List;

/**
 * The data-parallel gradient path of one rank's epoch: per model chunk the {@link GradientBucketer} that all-reduces
 * its gradients over the epoch's data-parallel communicator (under ZeRO reduce-scatters them, and all-gathers the
 * parameters after the optimizer step), the host memory it reduces ({@link HostMirror}: on a GPU a copy), ZeRO's
 * shard of each chunk's optimizer, and ZeRO 2's gradient windows ({@link ZeroGradientWindow}). It owns the bucketers
 * and the host copies and frees the copies in {@link #close}; the communicator is the {@link EpochWiring}'s, which
 * opens, aborts and releases it. Under dp = 1 it holds no chunk and every call does nothing.
 *
 * <p>Threading: built ({@link #open}), stepped and closed on the worker's device thread; the callbacks it registers
 * on the stage (a parameter's gradient is final, a ZeRO 2 window's pass is done) run where the stage runs its
 * weight-gradient passes, the device thread too. The bucketers' reduces run on the collective agent's thread, on
 * the host memory of launched buckets only.
 */
final class DataParallelGradients implements AutoCloseable {
    /** Collective tags reserved per model chunk (its buckets' ids), so chunks keep their int8 residuals apart. */
    private static final int BUCKET_TAGS_PER_CHUNK = 1 << 16;

    private final PipelineJobSpec spec;
    private final StageWorker stage;
    private final CpuDevice scratch;
    private final GradientBucketer[] buckets;
    /**
     * Per chunk under dp > 1: the host memory its bucketer reduces, its gradients themselves on a CPU device, a copy
     * of them on a GPU (downloaded bucket by bucket as the step's gradients become final, uploaded once summed).
     */
    private final HostMirror[] gradientMirrors;
    /** Per chunk on a GPU: the hook that downloads each bucket once its gradients are final ({@code null} on a CPU). */
    private final FinalGradientDownloads[] downloads;
    /** Per chunk under ZeRO: the host memory its parameters are all-gathered in after the optimizer step. */
    private final HostMirror[] paramMirrors;
    /** Per chunk: ZeRO 2 keeps its gradients as slices ({@link ZeroGradientWindow}) rather than whole. */
    private final boolean[] slicedGradients;

    /** The path of {@code stage}'s chunks, with nothing opened yet; host copies are made on {@code scratch}. */
    DataParallelGradients(PipelineJobSpec spec, StageWorker stage, CpuDevice scratch) {
        this.spec = spec;
        this.stage = stage;
        this.scratch = scratch;
        int chunks = spec.layout().dp() > 1 ? stage.chunks() : 0;
        this.buckets = new GradientBucketer[chunks];
        this.slicedGradients = new boolean[chunks];
        this.gradientMirrors = new HostMirror[chunks];
        this.downloads = new FinalGradientDownloads[chunks];
        this.paramMirrors = new HostMirror[spec.zeroSharded() ? chunks : 0];
    }

    /**
     * Builds each chunk's bucketer over {@code dataParallel} (dp > 1), its host copies and, under ZeRO, its optimizer's
     * shard. Each chunk's gradients are all-reduced in buckets launched from its last weight gradient pass,
     * overlapping the rest of backward (on a GPU each bucket's range is downloaded into the host copy as its last
     * parameter becomes final, then launched: {@link FinalGradientDownloads}); ZeRO 1/2 reduce-scatter instead, and the
     * optimizer owns this rank's segment of each bucket. Under ZeRO 2 a chunk whose module keeps its gradients as
     * slices is reduced by a {@link ZeroGradientWindow} instead ({@link #keepGradientSlices}). What it built before a
     * failure is freed by {@link #close}.
     *
     * <p>The rule: a bucketer fed by the final-gradient hook ({@link StageWorker#onGradientsFinal}, which reports
     * parameter indices) has exactly one range per parameter, so a report marks that parameter's range ready. Only a
     * chunk that keeps gradient slices has its weights cut into blocks of rows; one that declines them gets zero 1's
     * bucketer, whole parameters in buckets of the job's size, and its optimizer is sharded by that one.
     *
     * @param bucketBytes the job's bucket size
     */
    void open(Communicator dataParallel, long bucketBytes) {
        StageWorker w = stage;
        for (int c = 0; c < buckets.length; c++) {
            gradientMirrors[c] = HostMirror.of(w.chunk(c).grads(), scratch);
            if (spec.zeroSharded()) {
                paramMirrors[c] = HostMirror.of(w.chunk(c).params(), scratch);
            }
            if (slicedZeroTwo() && keepGradientSlices(dataParallel, c, bucketBytes)) {
                continue;
            }
            buckets[c] = bucketer(dataParallel, c, bucketBytes, false);
            if (gradientMirrors[c].copies()) {
                downloads[c] = new FinalGradientDownloads(gradientMirrors[c], buckets[c],
                    w.chunk(c).parameters().size());
                w.onGradientsFinal(c, downloads[c]);
            } else {
                w.onGradientsFinal(c, buckets[c]::markReady);
            }
        }
    }

    /**
     * Chunk {@code c}'s bucketer over its gradients' host memory, in buckets of at most {@code bucketBytes}
     * ({@link #bucketRanges}, weights cut into blocks of rows with {@code cut}); under ZeRO the chunk's optimizer is
     * sharded to own this rank's segment of each of its buckets.
     */
    private GradientBucketer bucketer(Communicator dataParallel, int c, long bucketBytes, boolean cut) {
        StageModule chunk = stage.chunk(c);
        GradientBucketer bucketer = new GradientBucketer(dataParallel, gradientMirrors[c].host(),
            bucketRanges(chunk, bucketBytes, cut), bucketBytes, ReduceOp.SUM, spec.zeroSharded(),
            c * BUCKET_TAGS_PER_CHUNK);
        if (spec.zeroSharded()) {
            stage.shardOptimizer(c, bucketer.ownedStarts(), bucketer.ownedNumels());
        }
        return bucketer;
    }

    /**
     * The chunk's parameters as the bucketer's ranges; with {@code cut} (ZeRO 2 gradient slices) a weight larger
     * than a bucket is cut into blocks of whole rows ({@code StageModule.gradientRowElements}),
     * each a range of its own, so the window (the largest bucket) need not hold the largest weight.
     */
    private static List<ParamRange> bucketRanges(StageModule chunk, long bucketBytes, boolean cut) {
        List<ParamRange> ranges = new ArrayList<>();
        for (int i = 0; i < chunk.parameters().size(); i++) {
            ParamSpec p = chunk.parameters().get(i);
            int row = cut ? chunk.gradientRowElements(i) : 0;
            long block = row == 0 ? p.numel() : Math.max(1, bucketBytes / 4 / row) * row;
            for (long at = 0; at < p.numel(); at += block) {
                long n = Math.min(block, p.numel() - at);
                String name = n == p.numel() ? p.name() : p.name() + "[" + at / row + ":" + (at + n) / row + "]";
                ranges.add(new ParamRange(name, p.localOffset() + at, n));
            }
        }
        return ranges;
    }

    private boolean slicedZeroTwo() {
        return spec.memory().zero() == 2 && stage.device().kind() == DeviceKind.CPU && spec.layout().tp() == 1;
    }

    /**
     * ZeRO 2: asks chunk {@code c} to keep its gradients in an arena of a bucketer's ranges (its weights cut into
     * blocks of rows, buckets of at most 1/16 of the slice this rank owns, as in-process, and of
     * {@code bucketBytes}) and its owned segments packed, reduced after every weight-gradient pass by a
     * {@link ZeroGradientWindow}; that bucketer is then the chunk's. False when the module keeps its whole buffer
     * (the chunk then gets zero 1's bucketer, {@link #open}).
     */
    private boolean keepGradientSlices(Communicator dataParallel, int c, long bucketBytes) {
        StageWorker w = stage;
        long windowBytes = Math.min(bucketBytes,
            4 * Math.max(1, w.chunk(c).params().numel() / (16L * spec.layout().dp())));
        GradientBucketer bucketer = bucketer(dataParallel, c, windowBytes, true);
        int nb = bucketer.bucketCount();
        long[] starts = new long[nb];
        long[] numels = new long[nb];
        for (int b = 0; b < nb; b++) {
            starts[b] = bucketer.bucketStartElements(b);
            numels[b] = bucketer.bucketNumel(b);
        }
        GradientArena arena = w.shardGradients(c, starts, numels);
        if (arena == null) {
            return false;
        }
        buckets[c] = bucketer;
        w.onEveryWeightGradient(c, new ZeroGradientWindow(dataParallel, w.chunk(c), w.ownedGradients(c), bucketer,
            arena, spec.microbatches()));
        slicedGradients[c] = true;
        return true;
    }

    /** Whether the epoch reduces gradients over replicas at all (dp > 1). */
    boolean reduces() {
        return buckets.length > 0;
    }

    /**
     * Chunk {@code c}'s bucketer (dp > 1): under ZeRO, which segments of its optimizer state this rank owns.
     *
     * @throws IllegalStateException under dp = 1, which has none: there ZeRO has no replicas to shard over, and a job
     *                               asking for it runs unsharded ({@link PipelineJobSpec#zeroSharded})
     */
    GradientBucketer bucketer(int c) {
        if (buckets.length == 0) {
            throw new IllegalStateException("no gradient bucketer under dp = 1 (zero=" + spec.memory().zero()
                + " runs unsharded without replicas): chunk " + c + " of layout " + spec.layout());
        }
        return buckets[c];
    }

    /**
     * After the step's schedule: the replicas' gradients (each already scaled by 1/global tokens) are being summed
     * bucket by bucket since each chunk's last weight gradient; waits for what is left. On a GPU the buckets reduce a
     * host copy, downloaded bucket by bucket as the gradients became final, and the sums are uploaded here, before the
     * optimizer reads them. ZeRO 2's sliced chunks were reduced pass by pass.
     */
    void awaitReduced() {
        for (int c = 0; c < buckets.length; c++) {
            if (!slicedGradients[c]) {
                if (downloads[c] != null) {
                    downloads[c].rearm();
                }
                buckets[c].finish();
                gradientMirrors[c].upload();
            }
        }
    }

    /** ZeRO, after the optimizer step: every chunk's parameters all-gathered from the segments their owners updated. */
    void allGatherParams() {
        if (!spec.zeroSharded()) {
            return;
        }
        for (int c = 0; c < buckets.length; c++) {
            paramMirrors[c].download();
            buckets[c].allGather(paramMirrors[c].host().address());
            paramMirrors[c].upload();
        }
    }

    /** Frees the host copies, the gradients' and then the parameters' (not the communicator: the wiring's). */
    @Override
    public void close() {
        for (HostMirror[] mirrors : new HostMirror[][] {gradientMirrors, paramMirrors}) {
            for (HostMirror m : mirrors) {
                if (m != null) {
                    m.close();
                }
            }
        }
    }
}
