package io.troupe.actors.engine;

import io.troupe.actors.schedule.Action;
import io.troupe.actors.schedule.FollowedPolicy;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.actors.schedule.StagePolicy;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.data.Batches;
import io.troupe.models.data.ValidationPlan;
import io.troupe.models.optim.AdamW;
import io.troupe.models.optim.StepTail;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.Devices;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One worker: a device, the model chunks (one {@link StageModule} per virtual stage, built by the
 * job's {@link StageModuleFactory}) of pipeline rank
 * {@code ppIndex} in replica {@code dpIndex}, their optimizers, and an inbox. {@link #runStep} runs on
 * the worker's own thread (its device executor) and follows a {@link StagePolicy}: it starts what the
 * policy picks ({@link StageActions} runs it and sends activations forward and gradients back), and waits
 * on the inbox when the policy has nothing ready. Every busy interval and idle gap (with its cause) is recorded.
 */
public final class StageWorker implements AutoCloseable {
    private final PipelineJobSpec spec;
    private final int dpIndex;
    private final int ppIndex;
    private final TensorParallelGroup tensorParallel;
    /** The same group, recording its collectives for the trace; {@code null} when tp = 1. */
    private final TracedTensorParallelGroup tracedTensorParallel;
    private final Device device;
    private final StageChunks chunks;
    private final StageInbox inbox;
    private final StageBuffers buffers;
    private final List<TimelineInterval> intervals = new ArrayList<>();
    private final Tensor tokens;
    /** The action a tp group's leader started, broadcast to its followers (orders chosen on arrival). */
    private final ActionAgreement agreed;
    private final Tensor targets;
    private final StageInputs inputs;
    private final StageEvaluation evaluation;
    private final StageActions actions;
    private StageLink link;

    public StageWorker(PipelineJobSpec spec, int dpIndex, int ppIndex, long seed) {
        this(spec, dpIndex, ppIndex, TensorParallelGroup.single(), seed);
    }

    /**
     * A worker that is member {@code tensorParallel.index()} of its stage's tensor-parallel group:
     * its chunks hold that member's shards and communicate through the group.
     */
    public StageWorker(PipelineJobSpec spec, int dpIndex, int ppIndex, TensorParallelGroup tensorParallel, long seed) {
        this.spec = spec;
        this.dpIndex = dpIndex;
        this.ppIndex = ppIndex;
        this.tracedTensorParallel = tensorParallel.size() > 1 ? new TracedTensorParallelGroup(tensorParallel) : null;
        this.tensorParallel = tracedTensorParallel != null ? tracedTensorParallel : tensorParallel;
        this.device = Devices.open(spec.device(), spec.threadsPerWorker());
        this.inbox = new StageInbox(spec.stepTimeoutMs());
        // Everything from here on is built on the device: a build that fails part-way (bad config, out of
        // memory, a stage module that throws) frees what it opened before it rethrows, as close() would.
        try {
            this.buffers = new StageBuffers(device);
            this.chunks = new StageChunks(spec, device);
            chunks.build(dpIndex, ppIndex, this.tensorParallel, seed);
            int n = spec.microBatchRows() * spec.train().model().seqLen();
            this.agreed = new ActionAgreement(device, this.tensorParallel);
            this.tokens = device.allocate(DType.I32, n);
            this.targets = device.allocate(DType.I32, n);
            this.inputs = new StageInputs(device, tokens, targets);
            this.evaluation = new StageEvaluation(spec, dpIndex, ppIndex, device, chunks, buffers, inbox, inputs);
            this.actions = new StageActions(spec, dpIndex, ppIndex, this.tensorParallel, chunks, buffers, inputs,
                intervals);
        } catch (Throwable failure) {
            closeOwned(failure);
            throw failure;
        }
    }

    /** Sets where activations and gradients go (before the first step). */
    public void connect(StageLink newLink) {
        this.link = newLink;
    }

    /**
     * Asks to be told, during each step's last weight-gradient pass of chunk {@code v}, the index
     * (into the chunk's {@link StageModule#parameters()}) of every parameter whose gradient has
     * just become final for the step: a data-parallel runtime launches bucket all-reduces from it
     * while backward goes on. Called on the worker's compute thread.
     */
    public void onGradientsFinal(int v, java.util.function.IntConsumer hook) {
        chunks.onGradientsFinal(v, hook);
    }

    /** Model stage of this worker's virtual stage {@code v}: {@code g = v * pp + ppIndex}. */
    public int modelStage(int v) {
        return v * spec.layout().pp() + ppIndex;
    }

    public StageModule chunk(int v) {
        return chunks.chunk(v);
    }

    public AdamW optimizer(int v) {
        return chunks.optimizer(v);
    }

    public Device device() {
        return device;
    }

    public int dpIndex() {
        return dpIndex;
    }

    public int ppIndex() {
        return ppIndex;
    }

    /** The tensor-parallel collectives of the last step, on the step's clock (empty when tp = 1). */
    public List<TimelineInterval> tensorParallelIntervals() {
        return tracedTensorParallel == null ? List.of() : tracedTensorParallel.intervals();
    }

    /** This worker's index in its tensor-parallel group (0 when tp = 1). */
    public int tpIndex() {
        return tensorParallel.index();
    }

    public List<TimelineInterval> intervals() {
        return intervals;
    }

    public double loss(int mb) {
        return actions.loss(mb);
    }

    /**
     * Delivers an activation or gradient (a tensor in host memory, as every stage sends): copies it into
     * a buffer this worker owns, then notifies.
     */
    public void deliver(boolean gradient, int mb, int v, Tensor src) {
        Tensor dst = receiveBuffer(gradient, mb, v, src.shape());
        dst.device().copy(src, dst);
        inbox.add(new StageEvent(gradient, mb, v, dst, null));
    }

    /**
     * The host-memory buffer a received activation or gradient of (mb, v) is copied into (a CPU tensor,
     * pinned when this worker's device is a GPU), allocated on first use and reused every step. Any
     * thread may call it; hand the filled buffer over with {@link #notifyReceived}.
     */
    public Tensor receiveBuffer(boolean gradient, int mb, int v, int[] shape) {
        return buffers.receiveBuffer(gradient, mb, v, shape);
    }

    /** Tells the worker's step loop that the buffer of (mb, v) now holds its input. */
    public void notifyReceived(boolean gradient, int mb, int v) {
        inbox.add(new StageEvent(gradient, mb, v, receiveBuffer(gradient, mb, v, new int[] {1}), null));
    }

    public void fail(RuntimeException e) {
        inbox.add(StageEvent.failed(e));
    }

    /**
     * Runs one step's actions for this worker. Parameter gradients are zeroed first; they hold the
     * replica's accumulated gradient afterwards.
     */
    public void runStep(long step, SchedulePolicy policy, Batches train, long stepStartNs) {
        intervals.clear();
        if (tracedTensorParallel != null) {
            tracedTensorParallel.restart(stepStartNs);
        }
        chunks.zeroGradients();
        sampleActivations(Math.max(0, nowUs(stepStartNs)));
        // Orders chosen on arrival (the adaptive policy) differ between a stage's tp members, whose
        // actions issue collectives over their group: member 0 decides and tells the others.
        boolean led = tensorParallel.size() > 1 && !policy.fixedOrder();
        FollowedPolicy follower = led && tensorParallel.index() > 0 ? policy.newFollower(ppIndex) : null;
        StagePolicy stage = follower != null ? follower : policy.newStage(ppIndex);
        double idleFrom = -1;
        String idleCause = "input";
        while (!stage.isDone()) {
            StageEvent e;
            while ((e = inbox.poll()) != null) {
                apply(stage, e, stepStartNs);
            }
            buffers.sendCompleted(link);
            if (follower != null && follower.needsLeader()) {
                buffers.sendAll(link); // a neighbour may wait for our send while we wait for the leader
                follower.follow(agreed.agree(null));
                continue;
            }
            Action a = stage.next(nowUs(stepStartNs));
            if (a != null && led && follower == null) {
                buffers.sendAll(link);
                agreed.agree(a);
            }
            if (a == null) {
                if (idleFrom < 0) {
                    idleFrom = nowUs(stepStartNs);
                    idleCause = stage.blockedByMemory() ? "memory_cap" : "input";
                }
                if (buffers.sendOldest(link)) {
                    continue;   // never wait for a neighbour while it may be waiting for our send
                }
                e = inbox.await(link);
                if (e == null) {
                    throw new IllegalStateException("step " + step + ": worker dp=" + dpIndex + " pp=" + ppIndex
                        + " waited " + spec.stepTimeoutMs() + " ms for the input of " + stage.awaited());
                }
                apply(stage, e, stepStartNs);
                continue;
            }
            double start = nowUs(stepStartNs);
            if (idleFrom >= 0) {
                intervals.add(new TimelineInterval("idle", "idle", idleFrom, start, "", Map.of("cause", idleCause)));
                idleFrom = -1;
            }
            actions.execute(step, a, train, stepStartNs, link);
            stage.onActionFinished(a);
            double end = nowUs(stepStartNs);
            intervals.add(new TimelineInterval(a.label(), a.type().name(), start, end,
                String.valueOf(a.microbatch()), Map.of("microbatch", String.valueOf(a.microbatch()),
                    "virtual_stage", String.valueOf(a.virtualStage()))));
            sampleActivations(end);
        }
        buffers.sendAll(link);
        device.synchronize();
    }

    /**
     * Sums over the tp group the gradients that are partial per member (replicated parameters under
     * sequence parallelism; nothing otherwise). Every member of the group calls it after its step,
     * once its gradients are no longer in flight in a data-parallel collective.
     */
    public void reducePartialGradients() {
        chunks.reducePartialGradients(tensorParallel);
    }

    /**
     * What this worker counts in the global gradient norm: every chunk's gradients on tp member 0;
     * on the other members only the views of their split parameters (replicas count once).
     */
    public List<StepTail.Part> normParts() {
        return chunks.normParts(tensorParallel.index());
    }

    /**
     * What this worker counts in the global gradient norm under ZeRO: the ranges its optimizers own
     * ({@link StepTail.Part#ownedGradients}), on tp members other than 0 only where they hold split
     * parameters (replicas count once, on member 0).
     */
    public List<StepTail.Part> ownedNormParts() {
        return chunks.ownedNormParts(tensorParallel.index());
    }

    private void apply(StagePolicy stage, StageEvent e, long stepStartNs) {
        if (e.failure() != null) {
            throw e.failure();
        }
        double at = Math.max(0, (e.arrivedNs() - stepStartNs) / 1e3);
        intervals.add(new TimelineInterval((e.gradient() ? "recv grad" : "recv act") + "(mb=" + e.microbatch() + ", v="
            + e.virtualStage() + ")", "recv", at, at, "", Map.of("microbatch", String.valueOf(e.microbatch()))));
        buffers.upload(e.gradient(), e.microbatch(), e.virtualStage());
        if (e.gradient()) {
            stage.onGradArrived(e.microbatch(), e.virtualStage());
        } else {
            stage.onInputArrived(e.microbatch(), e.virtualStage());
        }
    }

    /**
     * Category of the zero-length samples of the live activation bytes (after every action); a
     * trace writes them as a counter track beside the worker's schedule.
     */
    public static final String ACTIVATIONS_COUNTER = io.troupe.actors.trace.ChromeTraceWriter.COUNTER_CATEGORY;

    private void sampleActivations(double atUs) {
        long live = chunks.activationBytesLive();
        intervals.add(new TimelineInterval("activations", ACTIVATIONS_COUNTER, atUs, atUs, "",
            Map.of("MiB", String.format(java.util.Locale.ROOT, "%.3f", live / 1048576.0))));
    }

    /** Whether an interval of {@code category} is device work (counts as busy in the bubble). */
    public static boolean isCompute(String category) {
        return switch (category) {
            case "F", "B", "W", "BW", "optimizer" -> true;
            default -> false;
        };
    }

    /**
     * Forward-only validation through this worker's chunks, in step with the other stages of its
     * replica (each runs this at the same time between steps): the passes of {@code plan}, each a
     * micro-batch of {@code plan.rows()} rows; activations travel over the stage link under
     * micro-batch ids past the training ones. Returns the validation loss ({@link ValidationPlan#combine})
     * on the worker holding the last model stage, NaN elsewhere.
     */
    public double evaluate(long step, ValidationPlan plan) {
        if (tracedTensorParallel != null) {
            tracedTensorParallel.recording(false);
        }
        try {
            return evaluation.evaluate(step, plan, link);
        } finally {
            if (tracedTensorParallel != null) {
                tracedTensorParallel.recording(true);
            }
        }
    }

    /** Microseconds since {@code startNs} ({@link System#nanoTime()}): the step timeline's clock. */
    static double nowUs(long startNs) {
        return (System.nanoTime() - startNs) / 1e3;
    }

    /**
     * Makes chunk {@code v}'s optimizer a ZeRO shard that owns the element ranges
     * {@code [starts[i], starts[i] + numels[i])} of its flat buffer (e.g. this member's segments of
     * the reduce-scattered gradient buckets); before the first step, on the worker's thread.
     */
    public void shardOptimizer(int v, long[] starts, long[] numels) {
        chunks.shardOptimizer(v, starts, numels);
    }

    /**
     * ZeRO stage 2 in one process: moves each chunk's gradients into its arena
     * ({@link StageModule#shardGradients}) and gives each ZeRO optimizer a packed buffer for the
     * gradients of the ranges it owns, which becomes the chunk's step part. Returns the arenas
     * ({@code null} for a chunk that keeps its whole buffer; it then keeps its part). Before the
     * first step; every weight gradient reports its parameters to {@link #onEveryWeightGradient}.
     */
    public io.troupe.models.memory.GradientArena[] shardGradients(long bucketElements) {
        return chunks.shardGradients(bucketElements);
    }

    /**
     * ZeRO stage 2 with the runtime's buckets (the flat ranges of a reduce-scattering bucketer,
     * in launch order): chunk {@code v} keeps its gradients in the arena
     * {@link StageModule#shardGradients(long[], long[])} lays out, and its optimizer's owned
     * ranges packed, which becomes the chunk's step part. {@code null}: the chunk keeps its whole
     * buffer. Before the first step.
     */
    public io.troupe.models.memory.GradientArena shardGradients(int v, long[] bucketStartElements,
                                                                long[] bucketNumels) {
        return chunks.shardGradients(v, bucketStartElements, bucketNumels);
    }

    /** Chunk {@code v}'s packed owned gradients under {@link #shardGradients} ({@code null} otherwise). */
    public Tensor ownedGradients(int v) {
        return chunks.ownedGradients(v);
    }

    /** Has chunk {@code v}'s every weight-gradient pass (not just the step's last) report to {@code hook}. */
    public void onEveryWeightGradient(int v, java.util.function.IntConsumer hook) {
        chunks.onEveryWeightGradient(v, hook);
    }

    /**
     * The bytes this worker holds now ({@link io.troupe.models.memory.RankMemory}): its chunks'
     * parameter and gradient buffers, its optimizers' moments (owned ranges only under ZeRO), the
     * activation slots its chunks have allocated, and its receive buffers.
     */
    public io.troupe.models.memory.RankMemory memory() {
        return chunks.memory(buffers.receiveBytes());
    }

    /**
     * This worker's memory before its first step, with activations planned as
     * {@code liveSlots} micro-batch slots per chunk (the schedule's peak of live activations).
     */
    public io.troupe.models.memory.RankMemory plannedMemory(int liveSlots) {
        io.troupe.models.memory.RankMemory now = memory();
        return new io.troupe.models.memory.RankMemory(now.paramBytes(), now.gradBytes(), now.optimizerBytes(),
            chunks.plannedActivationBytes(liveSlots), now.commBytes());
    }

    /** Number of model chunks (virtual stages) on this worker. */
    public int chunks() {
        return chunks.count();
    }

    /** Every chunk's parameters, gradients and optimizer, in chunk order: what {@link StepTail} updates. */
    public List<StepTail.Part> stepParts() {
        return chunks.stepParts();
    }

    /**
     * Frees what this worker holds. A failure of one part does not keep the others open: the first is
     * thrown once all were tried, the later ones suppressed by it.
     */
    @Override
    public void close() {
        Closing.rethrow(closeOwned(null), "closing stage worker dp=" + dpIndex + " pp=" + ppIndex + " failed");
    }

    /**
     * Frees, each once and newest first (the constructor's order reversed), what this worker holds:
     * the step's small tensors, then chunk by chunk from the last its packed owned gradients, its
     * optimizer and its module, then, once the device has finished its work, the staged buffers, and
     * the device last. What was never built (a constructor that failed part-way) is skipped, and
     * every part is tried even after one throws.
     *
     * @param failure what the caller is already throwing (its cleanup failures are added to it as
     *                suppressed), or {@code null}
     * @return {@code failure}, else the first failure of a part (the later ones suppressed), else {@code null}
     */
    private Throwable closeOwned(Throwable failure) {
        Throwable f = Closing.close(failure, targets);
        f = Closing.close(f, tokens);
        f = Closing.close(f, agreed);
        if (chunks != null) {
            f = chunks.closeOwned(f);
        }
        try {
            device.synchronize(); // staged copies may still be reading or writing the buffers
        } catch (Throwable t) {
            f = Closing.add(f, t);
        }
        f = Closing.close(f, buffers);
        return Closing.close(f, device);
    }
}
