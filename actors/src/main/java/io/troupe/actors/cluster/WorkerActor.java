package io.troupe.actors.cluster;

import io.troupe.actors.engine.LocalPipelineEngine;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.StageWorker;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.WorkerTransport;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import io.troupe.collectives.CollectiveAgent;
import io.troupe.collectives.CollectiveGroup;
import io.troupe.collectives.CollectiveSettings;
import io.troupe.collectives.Communicator;
import io.troupe.collectives.ReduceOp;
import io.troupe.collectives.bucket.GradientBucketer;
import io.troupe.collectives.bucket.ParamRange;
import io.troupe.models.memory.GradCompression;
import io.troupe.models.ParamSpec;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.models.optim.StepTail;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * A worker: owns one device (a CPU thread budget) and, once assigned, the stage shards of its rank.
 * Steering only: compute runs on the worker's device executor (one in-order thread) and comes back
 * as a message; activations and gradients move over the Aeron data plane, never through mailboxes.
 *
 * <p>Protocol: registers under {@link #KEY}; answers {@link Describe} with its data-plane endpoint;
 * on {@link Assign} builds its shards and answers Ready; {@link RunSteps} runs a window of steps
 * back to back on the device thread, each one whole (schedule, bucketed all-reduce, the global
 * gradient norm over the data plane, clipping, optimizer) and reported with a StepDone sent straight
 * from the device thread; {@link Evaluate} and {@link WriteCheckpoint} come between windows. Every
 * message carries the job epoch; stale ones are ignored.
 * Supervision: a failure in compute is reported to the coordinator, which ends the job.
 */
public final class WorkerActor extends AbstractBehavior<WorkerActor.Command> {
    public static final ServiceKey<Command> KEY = ServiceKey.create(Command.class, "troupe-worker");

    public sealed interface Command {
    }

    public record Describe(ActorRef<CoordinatorActor.Command> replyTo) implements Command, CrossNodeMessage {
    }

    /** @param resumeFrom a committed checkpoint directory to restore from, or "" to start fresh */
    public record Assign(long epoch, int rank, JobRequest job, List<String> endpoints, List<String> controlEndpoints,
                         String resumeFrom, ActorRef<CoordinatorActor.Command> replyTo) implements Command, CrossNodeMessage {
    }

    /** Write this rank's shards of {@code step} under {@code root} (replica 0 only; others answer with none). */
    public record WriteCheckpoint(long epoch, long step, String root) implements Command, CrossNodeMessage {
    }

    /**
     * Run steps {@code from} up to {@code until} (exclusive) back to back, each answered with a
     * StepDone; step {@code traceStep} also sends its intervals. The coordinator ends a window where
     * validation, a checkpoint or the end of the job comes.
     */
    public record RunSteps(long epoch, long from, long until, long traceStep) implements Command, CrossNodeMessage {
    }

    /** Validation after {@code step}: replica 0's ranks run {@code batches} forward-only batches together. */
    public record Evaluate(long epoch, long step, int batches) implements Command, CrossNodeMessage {
    }

    public record Abort(long epoch, String reason) implements Command, CrossNodeMessage {
    }

    private record Evaluated(long epoch, long step, double loss, String error) implements Command {
    }

    private record ShardsWritten(long epoch, long step, String[] names, long[] bytes, long[] crcs, String error)
        implements Command {
    }

    private final ActorContext<Command> ctx;
    private final WorkerDescription description;
    private final WorkerTransport transport;
    private final CollectiveAgent agent;
    private final CollectiveAgent control;
    private Communicator dataParallel;
    private GradientBucketer[] buckets = new GradientBucketer[0];
    /** Collective tags reserved per model chunk (its buckets' ids), so chunks keep their int8 residuals apart. */
    private static final int BUCKET_TAGS_PER_CHUNK = 1 << 16;
    /** Every rank of the job, for the global gradient norm (null when the job has one rank). */
    private Communicator worldGroup;
    private final io.troupe.runtime.cpu.CpuDevice scratch = new io.troupe.runtime.cpu.CpuDevice(1);
    private final float[] normSlot = new float[2];
    private Tensor normIn;
    private Tensor normAll;
    private float[] normAllHost;
    /** The newest aborted epoch: the device thread's step loop stops before its next step. */
    private volatile long abortedEpoch = -1;
    private final AeronStageLink link;
    private final int threads;
    private final ExecutorService deviceExecutor;
    private ActorRef<CoordinatorActor.Command> coordinator;
    private StageWorker stage;
    private PipelineJobSpec spec;
    private SchedulePolicy policy;
    private Batches train;
    private io.troupe.models.data.TokenStream val;
    private int rank = -1;
    private long epoch = -1;

    public static Behavior<Command> create(TransportNode node, int localIndex, int threads) {
        return Behaviors.setup(ctx -> new WorkerActor(ctx, node, localIndex, threads));
    }

    private WorkerActor(ActorContext<Command> ctx, TransportNode node, int localIndex, int threads) {
        super(ctx);
        this.ctx = ctx;
        this.threads = threads;
        // The logger, not the context, may be used from the agent's thread.
        org.slf4j.Logger log = ctx.getLog();
        this.link = new AeronStageLink(log::warn);
        // One duty cycle per worker: the collectives agent drives the receiver, routes collective
        // chunks to their communicator and hands activations and gradients to the stage link.
        this.agent = CollectiveAgent.open(node, "worker-" + localIndex, -1, 0, link,
            t -> log.error("data plane error on worker " + localIndex, t));
        this.transport = agent.worker();
        link.attach(transport);
        link.dutyCycle(agent::doWork);
        // The agent's thread delivers while the device thread computes; a waiting device thread drives
        // the duty cycle itself, so the agent may back off to 1 ms parks when idle and leave the cores
        // to compute (measured: 200 us parks cost a 2-core machine ~15% of a core per worker).
        agent.start(new BackoffIdleStrategy(64, 16, 1_000, 1_000_000));
        // The job-wide gradient norm travels on a stream of its own, driven by the waiting device
        // thread only (no thread of its own): its few bytes per step never contend with the stage
        // link for a sender.
        this.control = CollectiveAgent.open(node, "worker-" + localIndex + "-control", -1, 0, ReceiveSlot::release,
            t -> log.error("control collectives error on worker " + localIndex, t));
        String address = ctx.getSystem().address().toString();
        this.description = new WorkerDescription(address, transport.endpoint().toString(),
            control.worker().endpoint().toString(), "cpu(" + threads + " threads)", localIndex);
        this.deviceExecutor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "troupe-device-" + localIndex);
            t.setDaemon(true);
            return t;
        });
        ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
            .onMessage(Describe.class, this::onDescribe)
            .onMessage(Assign.class, this::onAssign)
            .onMessage(RunSteps.class, this::onRunSteps)
            .onMessage(Evaluate.class, this::onEvaluate)
            .onMessage(Evaluated.class, this::onEvaluated)
            .onMessage(Abort.class, this::onAbort)
            .onMessage(WriteCheckpoint.class, this::onWriteCheckpoint)
            .onMessage(ShardsWritten.class, this::onShardsWritten)
            .onSignal(PostStop.class, s -> onStop())
            .build();
    }

    private Behavior<Command> onDescribe(Describe m) {
        m.replyTo().tell(new CoordinatorActor.WorkerInfo(ctx.getSelf(), description));
        return this;
    }

    private Behavior<Command> onAssign(Assign m) {
        releaseStage();
        this.coordinator = m.replyTo();
        this.epoch = m.epoch();
        this.rank = m.rank();
        try {
            this.spec = JobSpecs.toSpec(m.job(), threads);
            Corpora data = JobSpecs.data(m.job());
            this.train = Batches.shuffled(data.train(), spec.train().model().seqLen(), spec.train().seed());
            this.val = data.val();
            this.policy = LocalPipelineEngine.policyFor(spec);
            int dp = spec.layout().dpIndex(rank);
            int pp = spec.layout().ppIndex(rank);
            StageWorker w = new StageWorker(spec, dp, pp, spec.train().seed());
            transport.assign(rank, epoch);
            this.dataParallel = null;
            if (spec.layout().dp() > 1) {
                int[] members = spec.layout().dataParallelGroup(rank);
                this.dataParallel = agent.communicator(new CollectiveGroup(epoch, 0, members, dp, endpointsOf(members, m.endpoints())),
                    CollectiveSettings.defaults().withCompression(spec.memory().gradCompression().wire()));
                // Each chunk's gradients are all-reduced in buckets launched from its last weight
                // gradient pass, overlapping the rest of backward.
                this.buckets = new GradientBucketer[w.chunks()];
                for (int c = 0; c < w.chunks(); c++) {
                    List<ParamRange> ranges = new java.util.ArrayList<>();
                    for (ParamSpec p : w.chunk(c).parameters()) {
                        ranges.add(new ParamRange(p.name(), p.localOffset(), p.numel()));
                    }
                    // ZeRO 1/2: reduce-scattered instead; the optimizer owns this rank's segment of each bucket.
                    buckets[c] = new GradientBucketer(dataParallel, w.chunk(c).grads(), ranges, m.job().bucketBytes(),
                        ReduceOp.SUM, spec.zeroSharded(), c * BUCKET_TAGS_PER_CHUNK);
                    if (spec.zeroSharded()) {
                        w.shardOptimizer(c, buckets[c].ownedStarts(), buckets[c].ownedNumels());
                    }
                    w.onGradientsFinal(c, buckets[c]::markReady);
                }
            } else {
                this.buckets = new GradientBucketer[0];
            }
            this.worldGroup = null;
            int world = spec.layout().worldSize();
            if (world > 1) {
                int[] all = java.util.stream.IntStream.range(0, world).toArray();
                control.worker().assign(rank, epoch);
                this.worldGroup = control.communicator(new CollectiveGroup(epoch, 1, all, rank,
                    endpointsOf(all, m.controlEndpoints())), CollectiveSettings.defaults());
                if (normAll == null || normAll.numel() != 2L * world) {
                    if (normAll != null) {
                        normAll.close();
                    }
                    normAll = scratch.allocate(2 * world);
                    normAllHost = new float[2 * world];
                }
                if (normIn == null) {
                    normIn = scratch.allocate(2);
                }
            }
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
            }, spec.layout(), m.endpoints(), epoch);
            w.connect(link);
            if (!m.resumeFrom().isEmpty()) {
                var ckpt = io.troupe.models.checkpoint.Checkpoints.load(java.nio.file.Path.of(m.resumeFrom()));
                for (int c = 0; c < w.chunks(); c++) {
                    io.troupe.models.train.StageState.restore(w.chunk(c), w.optimizer(c), ckpt.shards().values());
                }
                if (dataParallel != null && spec.memory().gradCompression() == GradCompression.INT8_EF) {
                    RankCheckpointState.restoreResiduals(ckpt, rank, dataParallel.errorFeedback());
                }
            }
            this.stage = w;
            m.replyTo().tell(new CoordinatorActor.Ready(rank, epoch, null));
        } catch (RuntimeException e) {
            m.replyTo().tell(new CoordinatorActor.Ready(rank, epoch, e.getMessage()));
        }
        return this;
    }

    private Behavior<Command> onRunSteps(RunSteps m) {
        if (m.epoch() != epoch || stage == null) {
            return this;
        }
        StageWorker w = stage;
        GradientBucketer[] dpBuckets = buckets;
        Communicator world = worldGroup;
        ActorRef<CoordinatorActor.Command> coord = coordinator;
        int r = rank;
        deviceExecutor.execute(() -> {
            for (long s = m.from(); s < m.until(); s++) {
                if (abortedEpoch >= m.epoch()) {
                    return;
                }
                CoordinatorActor.StepDone done;
                try {
                    done = oneStep(m.epoch(), r, s, s == m.traceStep(), w, dpBuckets, world);
                } catch (RuntimeException ex) {
                    coord.tell(new CoordinatorActor.StepDone(r, m.epoch(), s, 0, 0, 0, 0, 0, 0, 0, WorkerTrace.EMPTY,
                        String.valueOf(rootMessage(ex))));
                    return;
                }
                coord.tell(done); // tell is thread-safe: no hop through the actor
            }
        });
        return this;
    }

    /**
     * One whole step on the device thread, with no control-plane round trip: the schedule's F/B/W,
     * the wait for the data-parallel buckets, the global gradient norm (each rank's sum of squares,
     * all-gathered over the data plane and added in rank order, so every rank computes the same
     * clip factor), clipping, the learning rate of the step, and the optimizer.
     */
    private CoordinatorActor.StepDone oneStep(long e, int r, long step, boolean traced, StageWorker w,
                                              GradientBucketer[] dpBuckets, Communicator world) {
        long t0 = System.nanoTime();
        w.runStep(step, policy, train, t0);
        // The replicas' gradients (each already scaled by 1/global tokens) are being summed bucket
        // by bucket since each chunk's last weight gradient; wait for what is left.
        long r0 = System.nanoTime();
        for (GradientBucketer b : dpBuckets) {
            b.finish();
        }
        long r1 = System.nanoTime();
        // Replicas hold identical gradients now: only replica 0 contributes to the global norm. Under
        // ZeRO each replica holds the reduced gradients of its own segments and counts those.
        List<StepTail.Part> normParts = w.dpIndex() == 0 ? w.stepParts() : List.of();
        if (spec.zeroSharded()) {
            normParts = new java.util.ArrayList<>();
            for (StepTail.Part p : w.stepParts()) {
                normParts.addAll(p.ownedGradients());
            }
        }
        StepTail.Result tail = new StepTail(spec.train().schedule(), spec.train().gradClip(), s -> globalSum(s, world))
            .apply(step, normParts, w.stepParts());
        if (spec.zeroSharded()) {
            for (int c = 0; c < dpBuckets.length; c++) {
                dpBuckets[c].allGather(w.chunk(c).params().address());
            }
        }
        double norm = tail.gradNorm();
        float lr = tail.lr();
        long n1 = tail.reducedAtNs();
        long o1 = System.nanoTime();
        double allReduceMs = (r1 - r0) / 1e6;
        double lossSum = 0;
        int count = 0;
        boolean last = w.modelStage(w.chunks() - 1) == spec.layout().modelStages() - 1;
        if (last) {
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
            List<TimelineInterval> all = new java.util.ArrayList<>(w.intervals());
            if (dpBuckets.length > 0) {
                all.add(new TimelineInterval("allreduce wait", "allreduce", (r0 - t0) / 1e3, (r1 - t0) / 1e3, "",
                    java.util.Map.of("cause", "communication")));
            }
            all.add(new TimelineInterval("grad norm", "allreduce", (r1 - t0) / 1e3, (n1 - t0) / 1e3, "",
                java.util.Map.of("cause", "communication")));
            all.add(new TimelineInterval("optimizer", "optimizer", (n1 - t0) / 1e3, (o1 - t0) / 1e3, "", java.util.Map.of()));
            trace = WorkerTrace.of(all);
        }
        return new CoordinatorActor.StepDone(r, e, step, lossSum, count, norm, lr, busy / 1e3, idle / 1e3, allReduceMs,
            trace, null);
    }

    /**
     * The sum over all ranks of {@code local}, the same on every rank: each rank's double goes as
     * two floats (high part and the remainder) into its slot of an all-gather, and every rank adds
     * the slots in rank order in double precision.
     */
    private double globalSum(double local, Communicator world) {
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

    private Behavior<Command> onEvaluate(Evaluate m) {
        if (m.epoch() != epoch || stage == null) {
            return this;
        }
        StageWorker w = stage;
        io.troupe.models.data.ValidationPlan v = new io.troupe.models.data.ValidationPlan(val,
            spec.train().model().seqLen(), spec.train().batchSize(), spec.microBatchRows(), m.batches());
        long e = epoch;
        ctx.pipeToSelf(java.util.concurrent.CompletableFuture.supplyAsync(
            () -> new Evaluated(e, m.step(), w.evaluate(m.step(), v), null), deviceExecutor),
            (ok, err) -> ok != null ? ok : new Evaluated(e, m.step(), Double.NaN, String.valueOf(rootMessage(err))));
        return this;
    }

    private Behavior<Command> onEvaluated(Evaluated r) {
        if (r.epoch() == epoch && coordinator != null) {
            coordinator.tell(new CoordinatorActor.EvalDone(rank, r.epoch(), r.step(), r.loss(), r.error()));
        }
        return this;
    }

    private Behavior<Command> onWriteCheckpoint(WriteCheckpoint m) {
        if (m.epoch() != epoch || stage == null) {
            return this;
        }
        StageWorker w = stage;
        long e = epoch;
        GradientBucketer[] zeroBuckets = spec.zeroSharded() ? buckets : null;
        Communicator residuals = spec.memory().gradCompression() == GradCompression.INT8_EF ? dataParallel : null;
        int r = rank;
        ctx.pipeToSelf(java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            int n = w.dpIndex() == 0 ? w.chunks() : 0;
            int files = n + (residuals != null ? 1 : 0);
            String[] names = new String[files];
            long[] bytes = new long[files];
            long[] crcs = new long[files];
            for (int c = 0; c < w.chunks(); c++) {
                // Under ZeRO every replica takes part in gathering the moments; replica 0 writes.
                var state = zeroBuckets != null || c < n ? RankCheckpointState.capture(w, c, zeroBuckets == null ? null
                    : zeroBuckets[c]) : null;
                if (c >= n) {
                    continue;
                }
                String name = String.format("shard-g%02d.bin", w.modelStage(c));
                var entry = io.troupe.models.checkpoint.Checkpoints.writeShard(java.nio.file.Path.of(m.root()), m.step(), name,
                    state);
                names[c] = entry.name();
                bytes[c] = entry.bytes();
                crcs[c] = entry.crc32c();
            }
            if (residuals != null) {
                var entry = io.troupe.models.checkpoint.Checkpoints.writeShard(java.nio.file.Path.of(m.root()), m.step(),
                    RankCheckpointState.residualFileName(r), RankCheckpointState.residuals(residuals.errorFeedback()));
                names[n] = entry.name();
                bytes[n] = entry.bytes();
                crcs[n] = entry.crc32c();
            }
            return new ShardsWritten(e, m.step(), names, bytes, crcs, null);
        }, deviceExecutor), (ok, err) -> ok != null ? ok
            : new ShardsWritten(e, m.step(), new String[0], new long[0], new long[0], String.valueOf(rootMessage(err))));
        return this;
    }

    private Behavior<Command> onShardsWritten(ShardsWritten s) {
        if (s.epoch() == epoch && coordinator != null) {
            coordinator.tell(new CoordinatorActor.CheckpointWritten(rank, s.epoch(), s.step(), s.names(), s.bytes(), s.crcs(),
                s.error()));
        }
        return this;
    }

    private Behavior<Command> onAbort(Abort m) {
        abortedEpoch = Math.max(abortedEpoch, m.epoch());
        if (m.epoch() >= epoch) {
            ctx.getLog().warn("job epoch {} aborted: {}", m.epoch(), m.reason());
            if (stage != null) {
                stage.fail(new IllegalStateException("aborted: " + m.reason()));
            }
        }
        return this;
    }

    /** The endpoints of ranks {@code members}, parsed from the job's endpoint list (indexed by rank). */
    private static TransportEndpoint[] endpointsOf(int[] members, List<String> byRank) {
        TransportEndpoint[] eps = new TransportEndpoint[members.length];
        for (int i = 0; i < members.length; i++) {
            eps[i] = TransportEndpoint.parse(byRank.get(members[i]));
        }
        return eps;
    }

    private static String rootMessage(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && c.getCause() != c) {
            c = c.getCause();
        }
        return c.getMessage() == null ? c.toString() : c.getMessage();
    }

    private void releaseStage() {
        if (stage != null) {
            StageWorker old = stage;
            stage = null;
            deviceExecutor.execute(old::close);
        }
    }

    private Behavior<Command> onStop() {
        abortedEpoch = Long.MAX_VALUE;
        if (stage != null) {
            stage.fail(new IllegalStateException("worker stopped"));
        }
        releaseStage();
        deviceExecutor.execute(() -> {
            for (Tensor t : new Tensor[] {normIn, normAll}) {
                if (t != null) {
                    t.close();
                }
            }
            scratch.close();
        });
        deviceExecutor.shutdown();
        agent.close();
        control.close();
        return this;
    }
}
