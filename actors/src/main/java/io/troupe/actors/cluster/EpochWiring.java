package io.troupe.actors.cluster;

import io.troupe.actors.cluster.snapshot.ShardSnapshots;
import io.troupe.actors.cluster.snapshot.SnapshotExchange;
import io.troupe.actors.engine.Closing;
import io.troupe.actors.engine.LocalPipelineEngine;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.StageWorker;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.collectives.CollectiveAgent;
import io.troupe.collectives.CollectiveGroup;
import io.troupe.collectives.CollectiveSettings;
import io.troupe.collectives.Communicator;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.ShardedCheckpointReader;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.models.data.CorpusCache;
import io.troupe.models.data.DataFingerprint;
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
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import java.util.stream.IntStream;

/**
 * Everything a worker builds for one epoch of a job, and tears down when the epoch ends: the job's
 * spec and data, the rank's stage shards (restored from the last commit when there is one), the
 * tensor-parallel and data-parallel communicators, the data-parallel gradient path over the latter
 * ({@link DataParallelGradients}), the job-wide communicator of the gradient norm, the stage link's
 * targets, and the rank's in-memory snapshots ({@link EpochSnapshots}). It opens, aborts and releases
 * every communicator and runs each step; a re-plan closes it and builds a new one; nothing of an
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
    /** The job's data, shared with the node's other epochs over the same, unchanged files ({@link CorpusCache}). */
    private final Corpora data;
    private final Batches train;
    private final io.troupe.models.data.TokenStream val;
    private final StageWorker stage;
    /** The stage's dp communicator ({@code null} when dp = 1) and the gradient path over it. */
    private final Communicator dataParallel;
    private final DataParallelGradients gradients;
    private final Communicator world;
    /** The stage's tp communicator ({@code null} when tp = 1) and the group over it. */
    private final Communicator tensorParallel;
    private final CommunicatorTensorParallelGroup tensorParallelGroup;
    private final HostStagedTensorParallelGroup stagedTensorParallelGroup;
    private final CollectiveAgent agent;
    private final CollectiveAgent control;
    /** The host device of the epoch's host tensors: copies of GPU tensors, the gradient norm's slots. */
    private final CpuDevice scratch;
    private final float[] normSlot = new float[2];
    private final Tensor normIn;
    private final Tensor normAll;
    private final float[] normAllHost;
    private final EpochSnapshots snapshots;
    /** The job's data as this rank read it ({@link DataFingerprint#token()}), reported with its Ready. */
    private final String dataFingerprint;
    private volatile String abortReason;
    /** Whether {@link #close} ran (device thread). */
    private boolean closed;

    /**
     * Builds rank {@code a.rank()}'s epoch: spec, data, shards, communicators, link, restore.
     *
     * @param stop asked (from the device thread) before the build and between the tensors and byte ranges a
     *             restore from a checkpoint reads: null goes on, anything else is why the build ends there
     * @throws RuntimeException naming what could not be built, or {@code stop}'s reason; everything built so
     *                          far is closed
     */
    EpochWiring(WorkerActor.Assign a, int threads, CollectiveAgent agent, CollectiveAgent control, AeronStageLink link,
                SnapshotExchange exchange, Supplier<String> stop) {
        this(a, threads, agent, control, link, exchange, stop, UnaryOperator.identity());
    }

    /**
     * As {@link #EpochWiring(WorkerActor.Assign, int, CollectiveAgent, CollectiveAgent, AeronStageLink,
     * SnapshotExchange, Supplier)}, the job's data read at {@code dataView} applied to its path: a test gives two
     * workers of one JVM different files at the path a job names, as two hosts' copies of it can differ.
     *
     * @throws IncurableJobException when the data is missing, unreadable or too short for the model's windows
     */
    EpochWiring(WorkerActor.Assign a, int threads, CollectiveAgent agent, CollectiveAgent control, AeronStageLink link,
                SnapshotExchange exchange, Supplier<String> stop, UnaryOperator<Path> dataView) {
        String stopped = stop.get();
        if (stopped != null) {
            throw new IllegalStateException(BUILD_STOPPED + a.job() + " before it began: " + stopped);
        }
        this.job = a.job();
        this.rank = a.rank();
        this.agent = agent;
        this.control = control;
        // Each field is set as soon as what it holds is open: a failure anywhere below leaves the ones not reached
        // null, and close() releases exactly those that are set, in its own order.
        try {
            this.spec = JobSpecs.toSpec(a.request(), threads);
            Corpora data;
            try {
                Path path = a.request().dataPath().isEmpty() ? null : dataView.apply(Path.of(a.request().dataPath()));
                // The node's last data and its fingerprint, read again only when its files changed (CorpusCache):
                // a recovery over the same data neither maps nor hashes it again.
                CorpusCache.Loaded loaded = path == null ? null : CorpusCache.shared().load(path, stop);
                data = loaded == null ? Corpora.builtIn() : loaded.corpora();
                data.requireWindows(spec.train().model().seqLen());
                this.dataFingerprint = (loaded == null ? DataFingerprint.builtIn() : loaded.fingerprint()).token();
            } catch (IllegalArgumentException | UncheckedIOException e) {
                throw new IncurableJobException(e.getMessage(), e);
            }
            this.data = data;
            this.train = Batches.shuffled(data.train(), spec.train().model().seqLen(), spec.train().seed());
            this.val = data.val();
            this.policy = LocalPipelineEngine.policyFor(spec);
            this.scratch = new CpuDevice(1);
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
            this.gradients = new DataParallelGradients(spec, w, scratch);
            this.snapshots = new EpochSnapshots(exchange, a.snapshots(), job, rank, w, scratch);
            long epoch = job.epoch();
            if (spec.layout().dp() > 1) {
                int[] members = spec.layout().dataParallelGroup(rank);
                this.dataParallel = agent.communicator(new CollectiveGroup(epoch, 0, members,
                    spec.layout().dpIndex(rank), endpointsOf(members, a.endpoints())),
                    CollectiveSettings.defaults().withCompression(spec.memory().gradCompression().wire()));
                gradients.open(dataParallel, a.request().bucketBytes());
            } else {
                this.dataParallel = null;
            }
            int worldSize = spec.layout().worldSize();
            if (worldSize > 1) {
                int[] all = IntStream.range(0, worldSize).toArray();
                control.worker().assign(rank, job);
                this.world = control.communicator(new CollectiveGroup(epoch, 1, all, rank,
                    endpointsOf(all, a.controlEndpoints())), CollectiveSettings.defaults());
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
            snapshots.bind();
            if (snapshots.restoresFromMemory()) {
                snapshots.restoreFromMemory();
            } else if (!a.resumeFrom().isEmpty()) {
                Path dir = Path.of(a.resumeFrom());
                restore(w, dir, stop);
                if (dataParallel != null && spec.memory().gradCompression() == GradCompression.INT8_EF) {
                    RankCheckpointState.restoreResiduals(dir, rank, dataParallel.errorFeedback());
                }
            }
        } catch (RuntimeException | Error e) {
            abort("assignment failed: " + e.getMessage());
            try {
                close();
            } catch (RuntimeException closing) {
                e.addSuppressed(closing);
            }
            throw e;
        }
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

    /** The start of a worker's failure report when its restore from memory failed. */
    static final String MEMORY_RESTORE_FAILED = "memory restore failed: ";
    /** The start of the failure of a build its worker stopped before it began. */
    static final String BUILD_STOPPED = "build stopped: ";

    /**
     * Step {@code step} is done here: with snapshots, this rank's shard is snapshotted (as the state
     * after {@code step + 1} steps) and sent to its buddy, and {@code report} runs once the copies
     * this rank keeps for others have arrived; without, {@code report} runs now.
     */
    void commit(long step, Runnable report) {
        snapshots.commit(step, report);
    }

    /** The job's data as this rank read it ({@link DataFingerprint#token()}). */
    String dataFingerprint() {
        return dataFingerprint;
    }

    /** The job's data this epoch trains and validates on. */
    Corpora data() {
        return data;
    }

    /**
     * Bytes of this rank's snapshot, whether or not the epoch takes snapshots: per chunk its parameters and the
     * part of both moments its optimizer holds (under ZeRO the segments of its gradient buckets it owns), as
     * {@link ShardSnapshots#capture} writes them after each commit.
     */
    long snapshotBytes() {
        return snapshots.snapshotBytes();
    }

    /**
     * The epoch keeps no in-memory snapshots after all (device thread, before its first step): its commits
     * capture none and the exchange takes no copies for it.
     */
    void dropSnapshots() {
        snapshots.drop();
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

    /**
     * The epoch ended (any thread): the stage's waits and every collective in flight fail at once. Also called by a
     * failed build, on what it had built.
     */
    void abort(String reason) {
        abortReason = reason;
        if (snapshots != null) {
            snapshots.unbind();
        }
        if (stage != null) {
            stage.fail(new IllegalStateException("epoch aborted: " + reason));
        }
        for (Communicator c : new Communicator[] {tensorParallel, dataParallel, world}) {
            if (c != null) {
                c.abort(reason);
            }
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
        gradients.awaitReduced();
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
        gradients.allGatherParams();
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
            if (gradients.reduces()) {
                all.add(new TimelineInterval("allreduce wait", "allreduce", (r0 - t0) / 1e3, (r1 - t0) / 1e3, "",
                    Map.of("cause", "communication")));
            }
            all.add(new TimelineInterval("grad norm", "allreduce", (r1 - t0) / 1e3, (n1 - t0) / 1e3, "",
                Map.of("cause", "communication")));
            all.add(new TimelineInterval("optimizer", "optimizer", (n1 - t0) / 1e3, (o1 - t0) / 1e3, "", Map.of()));
            trace = WorkerTrace.of(all);
        }
        long sent = dataParallel == null ? 0 : dataParallel.sentBytes() - sent0;
        return new CoordinatorActor.StepDone(rank, job, step, lossSum, count, norm, lr, busy / 1e3, idle / 1e3,
            allReduceMs, trace, w.memory().totalBytes(), sent);
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
        // ZeRO shards the optimizer over replicas only: a job asking for it at dp = 1 runs, and checkpoints, unsharded.
        boolean zero = spec.zeroSharded();
        for (int c = 0; c < w.chunks(); c++) {
            if (!zero && c >= n) {
                continue;
            }
            var state = RankCheckpointState.capture(w, c, zero ? gradients.bucketer(c) : null);
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

    /**
     * Releases the epoch's communicators and frees its memory (device thread, after its last step; or a failed build,
     * what it had opened). Idempotent. The order is the one that matters; the rest is free:
     * <ol>
     *   <li>The communicators (tp, dp, then the norm's), before any memory they may write or read: an aborted
     *       collective ends only at the agent's next duty cycle, one whose wait timed out stays in flight, and until
     *       its release (which waits for the duty cycle and stops pieces landing in place) the agent may still write
     *       a peer's piece straight into the collective's memory. That memory is the stage's own on a CPU (the dp
     *       bucketer reduces the chunks' gradients in place and ZeRO all-gathers their parameters there, the tp
     *       group reduces activations), the tp group's copies and gather scratch, the gradient path's host copies,
     *       the norm's slots.</li>
     *   <li>The tp groups' copies and gather scratch, before the stage: the gather scratch of a CPU member is a
     *       tensor of the stage's device, and a device's tensors are closed before it.</li>
     *   <li>The stage (its device last of its own).</li>
     *   <li>The norm's slots and the gradient path's host copies: scratch tensors, closed before
     *       the scratch device. Among themselves, and against the stage, any order: each copy is its own tensor,
     *       no copy is in flight between them and the stage's device (every copy waits for its end), and closing one
     *       frees the copy, never the stage's tensor it mirrors.</li>
     *   <li>The scratch device.</li>
     * </ol>
     * Every step runs even when one before it throws; the first failure is thrown, the others added to it.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        Throwable failure = null;
        for (Communicator c : new Communicator[] {tensorParallel, dataParallel}) {
            if (c != null) {
                failure = Closing.close(failure, () -> agent.release(c));
            }
        }
        if (world != null) {
            failure = Closing.close(failure, () -> control.release(world));
        }
        if (stagedTensorParallelGroup != null) {
            failure = Closing.close(failure, stagedTensorParallelGroup::close);
        }
        if (tensorParallelGroup != null) {
            failure = Closing.close(failure, tensorParallelGroup::close);
        }
        if (stage != null) {
            failure = Closing.close(failure, stage::close);
        }
        if (normIn != null) {
            failure = Closing.close(failure, normIn::close);
        }
        if (normAll != null) {
            failure = Closing.close(failure, normAll::close);
        }
        if (gradients != null) {
            failure = Closing.close(failure, gradients::close);
        }
        if (scratch != null) {
            failure = Closing.close(failure, scratch::close);
        }
        Closing.rethrow(failure, "closing the epoch's wiring failed");
    }
}
