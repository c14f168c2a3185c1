package io.troupe.actors.cluster;

import io.troupe.actors.cluster.snapshot.ShardSnapshots;
import io.troupe.actors.cluster.snapshot.SnapshotBuffer;
import io.troupe.actors.cluster.snapshot.SnapshotException;
import io.troupe.actors.cluster.snapshot.SnapshotExchange;
import io.troupe.actors.engine.LocalPipelineEngine;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.StageWorker;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.collectives.CollectiveAgent;
import io.troupe.collectives.CollectiveGroup;
import io.troupe.collectives.CollectiveSettings;
import io.troupe.collectives.Communicator;
import io.troupe.collectives.ReduceOp;
import io.troupe.collectives.bucket.GradientBucketer;
import io.troupe.collectives.bucket.ParamRange;
import io.troupe.models.ParamSpec;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.ShardedCheckpointReader;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.models.memory.GradCompression;
import io.troupe.models.optim.StepTail;
import io.troupe.models.parallel.ParallelParameterLayout;
import io.troupe.models.parallel.tp.CommunicatorTensorParallelGroup;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.models.train.StageState;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.TransportEndpoint;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.IntStream;

/**
 * Everything a worker builds for one epoch of a job, and tears down when the epoch ends: the job's
 * spec and data, the rank's stage shards (restored from the last commit when there is one), the
 * data-parallel communicator and its gradient bucketers, the job-wide communicator of the gradient
 * norm, and the stage link's targets. A re-plan closes it and builds a new one; nothing of an
 * epoch outlives it.
 *
 * <p>Threading: built, run and closed on the worker's device thread; {@link #abort} from any thread.
 * A build in progress is stopped through the {@code stop} its constructor polls (the wiring has no
 * {@link #abort} to call yet); a restore from memory through {@link SnapshotExchange#abortWaits}.
 */
final class EpochWiring implements AutoCloseable {
    private final JobIdentity job;
    private final int rank;
    private final PipelineJobSpec spec;
    private final SchedulePolicy policy;
    private final Batches train;
    private final io.troupe.models.data.TokenStream val;
    private final StageWorker stage;
    private final Communicator dataParallel;
    private final GradientBucketer[] buckets;
    /**
     * Per chunk under dp > 1: the host memory its bucketer reduces, its gradients themselves on a CPU device, a copy
     * of them on a GPU (downloaded once the step's gradients are final, uploaded once summed).
     */
    private final HostMirror[] gradientMirrors;
    /** Per chunk under ZeRO: the host memory its parameters are all-gathered in after the optimizer step. */
    private final HostMirror[] paramMirrors;
    /** Per chunk, its parameters and both moments as a snapshot holds them (built at the first capture or restore). */
    private HostMirror[][] snapshotMirrors;
    /** Per chunk: ZeRO 2 keeps its gradients as slices ({@link ZeroGradientWindow}) rather than whole. */
    private final boolean[] slicedGradients;
    private final Communicator world;
    /** The stage's tp communicator ({@code null} when tp = 1) and the group over it. */
    private final Communicator tensorParallel;
    private final CommunicatorTensorParallelGroup tensorParallelGroup;
    private final HostStagedTensorParallelGroup stagedTensorParallelGroup;
    private final CollectiveAgent agent;
    private final CollectiveAgent control;
    private final CpuDevice scratch = new CpuDevice(1);
    private final float[] normSlot = new float[2];
    private final Tensor normIn;
    private final Tensor normAll;
    private final float[] normAllHost;
    private final SnapshotExchange snapshots;
    private final SnapshotPlan snapshotPlan;
    /**
     * Whether each commit snapshots this rank's shard: the plan's, until the coordinator finds after the build that
     * a node cannot hold the snapshots ({@link #dropSnapshots}). Device thread only.
     */
    private boolean snapshotting;
    /** Bytes of this rank's snapshot as its chunks were built ({@link #snapshotBytes()}). */
    private final long snapshotBytes;
    private volatile String abortReason;
    /** How long a rank restoring from memory waits for the copy of its snapshot a buddy sends it. */
    private static final long RESTORE_WAIT_NS = java.util.concurrent.TimeUnit.SECONDS.toNanos(15);
    /** Collective tags reserved per model chunk (its buckets' ids), so chunks keep their int8 residuals apart. */
    private static final int BUCKET_TAGS_PER_CHUNK = 1 << 16;

    /**
     * Builds rank {@code a.rank()}'s epoch: spec, data, shards, communicators, link, restore.
     *
     * @param stop asked (from the device thread) before the build and between the tensors and byte ranges a
     *             restore from a checkpoint reads: null goes on, anything else is why the build ends there
     * @throws RuntimeException naming what could not be built, or {@code stop}'s reason; everything built so
     *                          far is closed
     */
    EpochWiring(WorkerActor.Assign a, int threads, CollectiveAgent agent, CollectiveAgent control, AeronStageLink link,
                SnapshotExchange snapshots, Supplier<String> stop) {
        String stopped = stop.get();
        if (stopped != null) {
            throw new IllegalStateException(BUILD_STOPPED + a.job() + " before it began: " + stopped);
        }
        this.job = a.job();
        this.rank = a.rank();
        this.snapshots = snapshots;
        this.snapshotPlan = a.snapshots();
        this.snapshotting = snapshotPlan.enabled();
        this.spec = JobSpecs.toSpec(a.request(), threads);
        Corpora data = JobSpecs.data(a.request());
        this.train = Batches.shuffled(data.train(), spec.train().model().seqLen(), spec.train().seed());
        this.val = data.val();
        this.policy = LocalPipelineEngine.policyFor(spec);
        this.agent = agent;
        this.control = control;
        agent.worker().assign(rank, job);
        TensorParallelGroup tp = TensorParallelGroup.single();
        if (spec.layout().tp() > 1) {
            // The stage's tp members: a communicator of their own on the data plane (group id 2).
            int[] members = spec.layout().tensorParallelGroup(rank);
            this.tensorParallel = agent.communicator(new CollectiveGroup(job.epoch(), 2, members,
                spec.layout().tpIndex(rank), endpointsOf(members, a.endpoints())), CollectiveSettings.defaults());
            this.tensorParallelGroup = new CommunicatorTensorParallelGroup(tensorParallel);
            // It reduces CPU memory: a GPU member's tensors go through host copies, a CPU member's as they are.
            this.stagedTensorParallelGroup = new HostStagedTensorParallelGroup(tensorParallelGroup, scratch);
            tp = stagedTensorParallelGroup;
        } else {
            this.tensorParallel = null;
            this.tensorParallelGroup = null;
            this.stagedTensorParallelGroup = null;
        }
        StageWorker w = new StageWorker(spec, spec.layout().dpIndex(rank), spec.layout().ppIndex(rank), tp,
            spec.train().seed());
        this.stage = w;
        try {
            long epoch = job.epoch();
            if (spec.layout().dp() > 1) {
                int[] members = spec.layout().dataParallelGroup(rank);
                this.dataParallel = agent.communicator(new CollectiveGroup(epoch, 0, members, spec.layout().dpIndex(rank),
                    endpointsOf(members, a.endpoints())),
                    CollectiveSettings.defaults().withCompression(spec.memory().gradCompression().wire()));
                // Each chunk's gradients are all-reduced in buckets launched from its last weight
                // gradient pass, overlapping the rest of backward.
                this.buckets = new GradientBucketer[w.chunks()];
                this.slicedGradients = new boolean[w.chunks()];
                this.gradientMirrors = new HostMirror[w.chunks()];
                this.paramMirrors = new HostMirror[spec.zeroSharded() ? w.chunks() : 0];
                for (int c = 0; c < w.chunks(); c++) {
                    long bucketBytes = a.request().bucketBytes();
                    if (slicedZeroTwo(w)) {
                        // ZeRO 2's window is one bucket: at most 1/16 of the slice this rank owns, as in-process.
                        bucketBytes = Math.min(bucketBytes,
                            4 * Math.max(1, w.chunk(c).params().numel() / (16L * spec.layout().dp())));
                    }
                    List<ParamRange> ranges = bucketRanges(w.chunk(c), bucketBytes, slicedZeroTwo(w));
                    // ZeRO 1/2: reduce-scattered instead; the optimizer owns this rank's segment of each bucket.
                    gradientMirrors[c] = HostMirror.of(w.chunk(c).grads(), scratch);
                    buckets[c] = new GradientBucketer(dataParallel, gradientMirrors[c].host(), ranges, bucketBytes,
                        ReduceOp.SUM, spec.zeroSharded(), c * BUCKET_TAGS_PER_CHUNK);
                    if (spec.zeroSharded()) {
                        w.shardOptimizer(c, buckets[c].ownedStarts(), buckets[c].ownedNumels());
                        paramMirrors[c] = HostMirror.of(w.chunk(c).params(), scratch);
                    }
                    if (slicedZeroTwo(w) && keepGradientSlices(w, c, buckets[c])) {
                        continue;
                    }
                    if (!gradientMirrors[c].copies()) {
                        w.onGradientsFinal(c, buckets[c]::markReady);
                    }
                }
            } else {
                this.dataParallel = null;
                this.buckets = new GradientBucketer[0];
                this.slicedGradients = new boolean[0];
                this.gradientMirrors = new HostMirror[0];
                this.paramMirrors = new HostMirror[0];
            }
            int worldSize = spec.layout().worldSize();
            if (worldSize > 1) {
                int[] all = IntStream.range(0, worldSize).toArray();
                control.worker().assign(rank, job);
                this.world = control.communicator(new CollectiveGroup(epoch, 1, all, rank, endpointsOf(all, a.controlEndpoints())),
                    CollectiveSettings.defaults());
            } else {
                this.world = null;
            }
            this.normIn = scratch.allocate(2);
            this.normAll = scratch.allocate(2 * worldSize);
            this.normAllHost = new float[2 * worldSize];
            link.assign(new AeronStageLink.Target() {
                @Override
                public Tensor receiveBuffer(boolean gradient, int mb, int v, int[] shape) {
                    return w.receiveBuffer(gradient, mb, v, shape);
                }

                @Override
                public void notifyReceived(boolean gradient, int mb, int v) {
                    w.notifyReceived(gradient, mb, v);
                }

                @Override
                public void peerLost(int peerRank) {
                    w.fail(new IllegalStateException("data-plane peer rank " + peerRank + " lost"));
                }

                @Override
                public void corrupted(String why) {
                    w.fail(new IllegalStateException(why));
                }
            }, spec.layout(), a.endpoints(), epoch);
            w.connect(link);
            this.snapshotBytes = snapshotBytes(w);
            if (snapshotPlan.enabled()) {
                snapshots.bind(job, rank, snapshotPlan.buddyOf(), snapshotPlan.endpoints(), snapshotPlan.pieceShiftOf());
            }
            if (snapshotPlan.restoresFromMemory()) {
                restoreFromMemory();
            } else if (!a.resumeFrom().isEmpty()) {
                Path dir = Path.of(a.resumeFrom());
                restore(w, dir, stop);
                if (dataParallel != null && spec.memory().gradCompression() == GradCompression.INT8_EF) {
                    RankCheckpointState.restoreResiduals(dir, rank, dataParallel.errorFeedback());
                }
            }
        } catch (RuntimeException e) {
            abort("assignment failed: " + e.getMessage());
            closeQuietly();
            throw e;
        }
    }

    /**
     * ZeRO 2: chunk {@code c} keeps its gradients in an arena of {@code bucketer}'s ranges and its
     * owned segments packed, reduced after every weight-gradient pass by a
     * {@link ZeroGradientWindow}. False when the chunk keeps its whole buffer (its module cannot,
     * tp > 1, or the device is not a CPU): it then runs as zero 1.
     */
    /**
     * The chunk's parameters as the bucketer's ranges; with {@code cut} (ZeRO 2) a weight larger
     * than a bucket is cut into blocks of whole rows ({@code StageModule.gradientRowElements}),
     * each a range of its own, so the window (the largest bucket) need not hold the largest weight.
     */
    private static List<ParamRange> bucketRanges(io.troupe.models.StageModule chunk, long bucketBytes, boolean cut) {
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

    private boolean slicedZeroTwo(StageWorker w) {
        return spec.memory().zero() == 2 && w.device().kind() == io.troupe.runtime.device.DeviceKind.CPU
            && spec.layout().tp() == 1;
    }

    private boolean keepGradientSlices(StageWorker w, int c, GradientBucketer bucketer) {
        int nb = bucketer.bucketCount();
        long[] starts = new long[nb];
        long[] numels = new long[nb];
        for (int b = 0; b < nb; b++) {
            starts[b] = bucketer.bucketStartElements(b);
            numels[b] = bucketer.bucketNumel(b);
        }
        io.troupe.models.memory.GradientArena arena = w.shardGradients(c, starts, numels);
        if (arena == null) {
            return false;
        }
        w.onEveryWeightGradient(c, new ZeroGradientWindow(dataParallel, w.chunk(c), w.ownedGradients(c), bucketer,
            arena, spec.microbatches()));
        slicedGradients[c] = true;
        return true;
    }

    /**
     * Restores every chunk from the checkpoint in {@code dir}, written under any layout: this rank reads only
     * the byte ranges its shards cover (by name across the stages' files, sliced where either layout splits by
     * tp: GPT's parameter placement), each 64 KiB block CRC32C-checked before use; a checkpoint whose shards
     * have no block checksums is verified whole first. Never the whole checkpoint in memory. {@code stop} is asked
     * between the tensors and byte ranges it reads ({@link ShardedCheckpointReader#read(
     * ParallelParameterLayout.Local, Supplier)}) and between the runs of bytes a whole verification reads
     * ({@link Checkpoints#verify(Path, Supplier)}); its reason ends the restore there.
     *
     * @throws io.troupe.models.checkpoint.CheckpointException naming what is missing or damaged, or {@code stop}'s
     *                                                         reason
     */
    private void restore(StageWorker w, Path dir, Supplier<String> stop) {
        ParallelParameterLayout placement = ParallelParameterLayout.gpt(spec.train().model(), spec.partition(),
            spec.sequenceParallel());
        try (ShardedCheckpointReader reader = ShardedCheckpointReader.open(dir)) {
            if (!reader.verifiesPartialReads()) {
                Checkpoints.verify(dir, stop);
            }
            for (int c = 0; c < w.chunks(); c++) {
                StageState.restore(w.chunk(c), w.optimizer(c), List.of(reader.read(
                    placement.local(w.modelStage(c), spec.layout().tp(), spec.layout().tpIndex(rank)), stop)));
            }
        }
    }

    /**
     * Restores this rank from the in-memory snapshots of the plan's step: its own, or the one the
     * rank that holds it (a buddy's copy, or a data-parallel replica's own) sends over the data
     * plane; first sends the snapshots this worker holds for other ranks.
     *
     * @throws IllegalStateException "memory restore failed: ..." naming what is missing or damaged
     */
    private void restoreFromMemory() {
        long step = snapshotPlan.restoreStep();
        int[] holder = snapshotPlan.holderOf();
        int[] source = snapshotPlan.sourceOf();
        try {
            for (int k = 0; k < holder.length; k++) {
                if (holder[k] == rank && k != rank) {
                    snapshots.sendCopy(step, source[k], k);
                }
            }
            SnapshotBuffer b = holder[rank] == rank ? snapshots.find(job.jobId(), source[rank], step)
                : snapshots.awaitCopy(job, source[rank], step, RESTORE_WAIT_NS);
            try {
                long[] optimizerSteps = ShardSnapshots.restore(b, chunkStates(false));
                for (int c = 0; c < stage.chunks(); c++) {
                    for (HostMirror m : snapshotMirrors[c]) {
                        m.upload();
                    }
                    stage.optimizer(c).setStepCount(optimizerSteps[c]);
                }
            } finally {
                snapshots.release(b);
            }
        } catch (SnapshotException e) {
            throw new IllegalStateException(MEMORY_RESTORE_FAILED + e.getMessage(), e);
        }
    }

    /** The start of a worker's failure report when its restore from memory failed. */
    static final String MEMORY_RESTORE_FAILED = "memory restore failed: ";
    /** The start of the failure of a build its worker stopped before it began. */
    static final String BUILD_STOPPED = "build stopped: ";

    /**
     * This rank's shard as the snapshots hold it: per chunk its parameters, moments and optimizer step, in host
     * memory (on a GPU, copies: {@code download} fills them from the device first, for a capture; a restore fills
     * them and uploads each of {@link #snapshotMirrors}).
     */
    private List<ShardSnapshots.ChunkState> chunkStates(boolean download) {
        if (snapshotMirrors == null) {
            HostMirror[][] mirrors = new HostMirror[stage.chunks()][];
            for (int c = 0; c < stage.chunks(); c++) {
                var opt = stage.optimizer(c);
                mirrors[c] = new HostMirror[] {HostMirror.of(stage.chunk(c).params(), scratch),
                    HostMirror.of(opt.firstMoment(), scratch), HostMirror.of(opt.secondMoment(), scratch)};
            }
            snapshotMirrors = mirrors;
        }
        List<ShardSnapshots.ChunkState> out = new ArrayList<>(stage.chunks());
        for (int c = 0; c < stage.chunks(); c++) {
            HostMirror[] m = snapshotMirrors[c];
            if (download) {
                for (HostMirror t : m) {
                    t.download();
                }
            }
            out.add(new ShardSnapshots.ChunkState(m[0].host(), m[1].host(), m[2].host(), stage.optimizer(c).stepCount()));
        }
        return out;
    }

    /**
     * Step {@code step} is done here: with snapshots, this rank's shard is snapshotted (as the state
     * after {@code step + 1} steps) and sent to its buddy, and {@code report} runs once the copies
     * this rank keeps for others have arrived; without, {@code report} runs now.
     */
    void commit(long step, Runnable report) {
        if (!snapshotting) {
            report.run();
            return;
        }
        snapshots.afterStep(step + 1, chunkStates(true), report);
    }

    /**
     * Bytes of this rank's snapshot, whether or not the epoch takes snapshots: per chunk its parameters and the
     * part of both moments its optimizer holds (under ZeRO the segments of its gradient buckets it owns), as
     * {@link ShardSnapshots#capture} writes them after each commit.
     */
    long snapshotBytes() {
        return snapshotBytes;
    }

    /** {@link #snapshotBytes()} of {@code w}'s chunks and optimizers as built (no host tensors needed, unlike a capture). */
    private static long snapshotBytes(StageWorker w) {
        long params = 0;
        long stateElements = 0;
        for (int c = 0; c < w.chunks(); c++) {
            params += w.chunk(c).params().numel();
            stateElements += w.optimizer(c).firstMoment().numel();
        }
        return ShardSnapshots.lengthBytes(w.chunks(), params, stateElements);
    }

    /**
     * The epoch keeps no in-memory snapshots after all (device thread, before its first step): its commits
     * capture none and the exchange takes no copies for it.
     */
    void dropSnapshots() {
        snapshotting = false;
        snapshots.unbind(job);
    }

    JobIdentity job() {
        return job;
    }

    int rank() {
        return rank;
    }

    PipelineJobSpec spec() {
        return spec;
    }

    StageWorker stage() {
        return stage;
    }

    /** The epoch ended (any thread): the stage's waits and every collective in flight fail at once. */
    void abort(String reason) {
        abortReason = reason;
        snapshots.unbind(job);
        stage.fail(new IllegalStateException("epoch aborted: " + reason));
        if (dataParallel != null) {
            dataParallel.abort(reason);
        }
        if (world != null) {
            world.abort(reason);
        }
    }

    boolean aborted() {
        return abortReason != null;
    }

    /**
     * One whole step, with no control-plane round trip: the schedule's F/B/W, the wait for the
     * data-parallel buckets, the global gradient norm (each rank's sum of squares, all-gathered over
     * the data plane and added in rank order, so every rank computes the same clip factor),
     * clipping, the learning rate of the step, and the optimizer.
     */
    CoordinatorActor.StepDone step(long step, boolean traced) {
        StageWorker w = stage;
        long sent0 = dataParallel == null ? 0 : dataParallel.sentBytes();
        long t0 = System.nanoTime();
        w.runStep(step, policy, train, t0);
        // The replicas' gradients (each already scaled by 1/global tokens) are being summed bucket
        // by bucket since each chunk's last weight gradient; wait for what is left.
        long r0 = System.nanoTime();
        for (int c = 0; c < buckets.length; c++) {
            if (gradientMirrors[c].copies()) {
                // On a GPU the buckets reduce a host copy of the final gradients, launched all at once.
                gradientMirrors[c].download();
                for (int i = w.chunk(c).parameters().size() - 1; i >= 0; i--) {
                    buckets[c].markReady(i);
                }
            }
        }
        for (int c = 0; c < buckets.length; c++) {
            if (!slicedGradients[c]) {
                buckets[c].finish();
                gradientMirrors[c].upload();
            }
        }
        w.reducePartialGradients();
        long r1 = System.nanoTime();
        // Replicas hold identical gradients now: only replica 0 contributes to the global norm, and
        // within it each tp member its split parameters (replicated ones on member 0). Under ZeRO
        // each replica holds the reduced gradients of its own segments and counts those (by the
        // same tp rule).
        List<StepTail.Part> normParts = w.dpIndex() == 0 ? w.normParts() : List.of();
        if (spec.zeroSharded()) {
            normParts = w.ownedNormParts();
        }
        StepTail.Result tail = new StepTail(spec.train().schedule(), spec.train().gradClip(), this::globalSum)
            .apply(step, normParts, w.stepParts());
        if (spec.zeroSharded()) {
            for (int c = 0; c < buckets.length; c++) {
                paramMirrors[c].download();
                buckets[c].allGather(paramMirrors[c].host().address());
                paramMirrors[c].upload();
            }
        }
        double norm = tail.gradNorm();
        float lr = tail.lr();
        long n1 = tail.reducedAtNs();
        long o1 = System.nanoTime();
        double allReduceMs = (r1 - r0) / 1e6;
        double lossSum = 0;
        int count = 0;
        if (w.modelStage(w.chunks() - 1) == spec.layout().modelStages() - 1) {
            for (int mb = 0; mb < spec.microbatches(); mb++) {
                lossSum += w.loss(mb);
                count++;
            }
        }
        double busy = (o1 - n1) / 1e3;
        double idle = (n1 - r0) / 1e3; // waits for the all-reduce and the norm: communication
        for (var i : w.intervals()) {
            if (i.category().equals("idle")) {
                idle += i.durationUs();
            } else if (StageWorker.isCompute(i.category())) {
                busy += i.durationUs();
            }
        }
        WorkerTrace trace = WorkerTrace.EMPTY;
        if (traced) {
            List<TimelineInterval> all = new ArrayList<>(w.intervals());
            all.addAll(w.tensorParallelIntervals());   // category tp: a track of their own in the timeline
            if (buckets.length > 0) {
                all.add(new TimelineInterval("allreduce wait", "allreduce", (r0 - t0) / 1e3, (r1 - t0) / 1e3, "",
                    Map.of("cause", "communication")));
            }
            all.add(new TimelineInterval("grad norm", "allreduce", (r1 - t0) / 1e3, (n1 - t0) / 1e3, "",
                Map.of("cause", "communication")));
            all.add(new TimelineInterval("optimizer", "optimizer", (n1 - t0) / 1e3, (o1 - t0) / 1e3, "", Map.of()));
            trace = WorkerTrace.of(all);
        }
        long sent = dataParallel == null ? 0 : dataParallel.sentBytes() - sent0;
        return new CoordinatorActor.StepDone(rank, job, step, lossSum, count, norm, lr, busy / 1e3, idle / 1e3, allReduceMs,
            trace, w.memory().totalBytes(), sent);
    }

    /** Validation after {@code step} (replica 0's ranks only); NaN unless this rank holds the last stage. */
    double evaluate(long step, int batches) {
        return stage.evaluate(step, new io.troupe.models.data.ValidationPlan(val, spec.train().model().seqLen(),
            spec.train().batchSize(), spec.microBatchRows(), batches));
    }

    /**
     * Writes this rank's shards of {@code step} under {@code root} (replica 0 only; under ZeRO every
     * replica first helps gather the moments), and under int8 error feedback its residuals.
     */
    CoordinatorActor.CheckpointWritten writeCheckpoint(long step, String root) {
        StageWorker w = stage;
        int n = w.dpIndex() == 0 ? w.chunks() : 0;
        boolean residuals = dataParallel != null && spec.memory().gradCompression() == GradCompression.INT8_EF;
        int files = n + (residuals ? 1 : 0);
        String[] names = new String[files];
        long[] bytes = new long[files];
        long[] crcs = new long[files];
        for (int c = 0; c < w.chunks(); c++) {
            boolean zero = spec.zeroSharded();
            if (!zero && c >= n) {
                continue;
            }
            var state = RankCheckpointState.capture(w, c, zero ? buckets[c] : null);
            if (c >= n) {
                continue;
            }
            String name = ShardedCheckpointReader.shardFileName(w.modelStage(c), spec.layout().tp(), w.tpIndex());
            var entry = Checkpoints.writeShard(Path.of(root), step, name, state);
            names[c] = entry.name();
            bytes[c] = entry.bytes();
            crcs[c] = entry.crc32c();
        }
        if (residuals) {
            var entry = Checkpoints.writeShard(Path.of(root), step, RankCheckpointState.residualFileName(rank),
                RankCheckpointState.residuals(dataParallel.errorFeedback()));
            names[n] = entry.name();
            bytes[n] = entry.bytes();
            crcs[n] = entry.crc32c();
        }
        return new CoordinatorActor.CheckpointWritten(rank, job, step, names, bytes, crcs);
    }

    /**
     * The sum over all ranks of {@code local}, the same on every rank: each rank's double goes as
     * two floats (high part and the remainder) into its slot of an all-gather, and every rank adds
     * the slots in rank order in double precision.
     */
    private double globalSum(double local) {
        if (world == null) {
            return local;
        }
        float hi = (float) local;
        normSlot[0] = hi;
        normSlot[1] = (float) (local - hi);
        scratch.copyFromHost(normSlot, normIn);
        world.allGather(normIn, normAll);
        scratch.copyToHost(normAll, normAllHost);
        double sum = 0;
        for (int i = 0; i < normAllHost.length; i += 2) {
            sum += (double) normAllHost[i] + normAllHost[i + 1];
        }
        return sum;
    }

    private static TransportEndpoint[] endpointsOf(int[] members, List<String> byRank) {
        TransportEndpoint[] eps = new TransportEndpoint[members.length];
        for (int i = 0; i < members.length; i++) {
            eps[i] = TransportEndpoint.parse(byRank.get(members[i]));
        }
        return eps;
    }

    private static void closeMirrors(HostMirror[] mirrors) {
        if (mirrors != null) {
            for (HostMirror m : mirrors) {
                if (m != null) {
                    m.close();
                }
            }
        }
    }

    private void closeQuietly() {
        try {
            close();
        } catch (RuntimeException ignored) {
            // the build already failed with its own reason
        }
    }

    /** Frees the epoch's memory and releases its communicators (device thread, after its last step). */
    @Override
    public void close() {
        stage.close();
        if (tensorParallelGroup != null) {
            stagedTensorParallelGroup.close();
            tensorParallelGroup.close();
        }
        for (Communicator c : new Communicator[] {tensorParallel, dataParallel}) {
            if (c != null) {
                agent.release(c);
            }
        }
        if (world != null) {
            control.release(world);
        }
        for (Tensor t : new Tensor[] {normIn, normAll}) {
            if (t != null) {
                t.close();
            }
        }
        closeMirrors(gradientMirrors);
        closeMirrors(paramMirrors);
        if (snapshotMirrors != null) {
            for (HostMirror[] m : snapshotMirrors) {
                closeMirrors(m);
            }
        }
        scratch.close();
    }
}
