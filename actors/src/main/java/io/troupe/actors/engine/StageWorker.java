package io.troupe.actors.engine;

import io.troupe.actors.schedule.Action;
import io.troupe.actors.schedule.ActionType;
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
import io.troupe.models.parallel.tp.TensorParallelGradients;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.Devices;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One worker: a device, the model chunks (one {@link StageModule} per virtual stage, built by the
 * job's {@link StageModuleFactory}) of pipeline rank
 * {@code ppIndex} in replica {@code dpIndex}, their optimizers, and an inbox. {@link #runStep} runs on
 * the worker's own thread (its device executor) and follows a {@link StagePolicy}: it starts what the
 * policy picks, sends activations forward and gradients back, and waits on the inbox when the policy
 * has nothing ready. Every busy interval and idle gap (with its cause) is recorded.
 */
public final class StageWorker implements AutoCloseable {
    private final PipelineJobSpec spec;
    private final int dpIndex;
    private final int ppIndex;
    private final TensorParallelGroup tensorParallel;
    /** The same group, recording its collectives for the trace; {@code null} when tp = 1. */
    private final TracedTensorParallelGroup tracedTensorParallel;
    private final Device device;
    private final StageModule[] chunks;
    private final AdamW[] optimizers;
    private final LinkedBlockingQueue<StageEvent> inbox = new LinkedBlockingQueue<>();
    private final StageBuffers buffers;
    private final List<ArrayDeque<Integer>> freeSlots = new ArrayList<>();
    private final Map<Long, Integer> slotOf = new HashMap<>();
    private final List<TimelineInterval> intervals = new ArrayList<>();
    private final int[] nextSlot;
    private final double[] losses;
    private final int[] x;
    private final int[] y;
    private final Tensor tokens;
    /** The action a tp group's leader started, broadcast to its followers (orders chosen on arrival). */
    private final Tensor agreed;
    private final float[] agreedHost = new float[3];
    private final Tensor targets;
    private final java.util.function.IntConsumer[] gradientHooks;
    private final int[] weightsDone;
    private final java.util.function.IntConsumer[] everyWeightHooks;
    /** ZeRO 2 in one process: per chunk, the packed gradients of the ranges its optimizer owns. */
    private final Tensor[] ownedGradients;
    private StageLink link;
    private List<StepTail.Part> stepParts;

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
        // Everything from here on is built on the device: a build that fails part-way (bad config, out of
        // memory, a stage module that throws) frees what it opened before it rethrows, as close() would.
        try {
            this.buffers = new StageBuffers(device);
            int v = spec.layout().virtualStages();
            int stages = spec.layout().modelStages();
            this.chunks = new StageModule[v];
            this.optimizers = new AdamW[v];
            this.nextSlot = new int[v];
            List<StepTail.Part> parts = new ArrayList<>();
            StageModuleFactory factory = StageModuleFactories.named(spec.moduleFactory());
            for (int c = 0; c < v; c++) {
                int g = modelStage(c);
                StageModule chunk = factory.create(new StageModuleFactory.Stage(spec.train().model(), device, g,
                    stages, spec.partition().startBlock(g), spec.partition().endBlock(g), spec.microBatchRows(), seed),
                    this.tensorParallel, spec.sequenceParallel());
                chunks[c] = chunk;
                chunk.recompute(spec.memory().recompute());
                long numel = chunk.params().numel();
                if (spec.zeroSharded()) {
                    // ZeRO 1/2: moments of this replica's reduce-scatter segment only.
                    int dp = spec.layout().dp();
                    long start = io.troupe.collectives.Communicator.segmentStart(numel, dp, dpIndex);
                    long end = io.troupe.collectives.Communicator.segmentStart(numel, dp, dpIndex + 1);
                    optimizers[c] = AdamW.ranges(spec.train().adamw(), device, chunk.parameters(), numel,
                        new long[] {start},
                        new long[] {end - start});
                } else {
                    optimizers[c] = new AdamW(spec.train().adamw(), device, chunk.parameters(), numel);
                }
                parts.add(new StepTail.Part(device, chunk.params(), chunk.grads(), optimizers[c]));
                freeSlots.add(new ArrayDeque<>());
            }
            this.stepParts = List.copyOf(parts);
            this.losses = new double[spec.microbatches()];
            int n = spec.microBatchRows() * spec.train().model().seqLen();
            this.x = new int[n];
            this.y = new int[n];
            this.gradientHooks = new java.util.function.IntConsumer[v];
            this.weightsDone = new int[v];
            this.everyWeightHooks = new java.util.function.IntConsumer[v];
            this.ownedGradients = new Tensor[v];
            this.agreed = device.allocate(DType.F32, 3);
            this.tokens = device.allocate(DType.I32, n);
            this.targets = device.allocate(DType.I32, n);
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
        gradientHooks[v] = hook;
    }

    /** Model stage of this worker's virtual stage {@code v}: {@code g = v * pp + ppIndex}. */
    public int modelStage(int v) {
        return v * spec.layout().pp() + ppIndex;
    }

    public StageModule chunk(int v) {
        return chunks[v];
    }

    public AdamW optimizer(int v) {
        return optimizers[v];
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
        return losses[mb];
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
        for (StageModule c : chunks) {
            c.zeroGrads();
        }
        for (Tensor owned : ownedGradients) {
            if (owned != null) {
                device.fill(owned, 0f);
            }
        }
        java.util.Arrays.fill(weightsDone, 0);
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
                follower.follow(agreeOnAction(null));
                continue;
            }
            Action a = stage.next(nowUs(stepStartNs));
            if (a != null && led && follower == null) {
                buffers.sendAll(link);
                agreeOnAction(a);
            }
            if (a == null) {
                if (idleFrom < 0) {
                    idleFrom = nowUs(stepStartNs);
                    idleCause = stage.blockedByMemory() ? "memory_cap" : "input";
                }
                if (buffers.sendOldest(link)) {
                    continue;   // never wait for a neighbour while it may be waiting for our send
                }
                e = awaitEvent();
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
            execute(step, a, train, stepStartNs);
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
     * The leader's ({@code chosen} non-null, tp member 0) action, the same on every member of the
     * tp group: an all-reduce of three small integers that only the leader contributes.
     */
    private Action agreeOnAction(Action chosen) {
        if (chosen != null) {
            agreedHost[0] = chosen.type().ordinal() + 1;
            agreedHost[1] = chosen.microbatch();
            agreedHost[2] = chosen.virtualStage();
        } else {
            java.util.Arrays.fill(agreedHost, 0f);
        }
        device.copyFromHost(agreedHost, agreed);
        tensorParallel.allReduceSum(agreed);
        device.copyToHost(agreed, agreedHost);
        int type = (int) agreedHost[0] - 1;
        if (type < 0 || type >= ActionType.values().length) {
            throw new IllegalStateException("tp member " + tensorParallel.index() + " got no action from its leader: "
                + java.util.Arrays.toString(agreedHost));
        }
        return new Action(ActionType.values()[type], (int) agreedHost[1], (int) agreedHost[2]);
    }

    /**
     * Sums over the tp group the gradients that are partial per member (replicated parameters under
     * sequence parallelism; nothing otherwise). Every member of the group calls it after its step,
     * once its gradients are no longer in flight in a data-parallel collective.
     */
    public void reducePartialGradients() {
        for (StageModule c : chunks) {
            TensorParallelGradients.reducePartialGradients(c, tensorParallel);
        }
    }

    /**
     * What this worker counts in the global gradient norm: every chunk's gradients on tp member 0;
     * on the other members only the views of their split parameters (replicas count once).
     */
    public List<StepTail.Part> normParts() {
        if (tensorParallel.index() == 0) {
            return stepParts();
        }
        List<StepTail.Part> out = new ArrayList<>();
        for (int c = 0; c < chunks.length; c++) {
            StepTail.Part chunk = stepParts().get(c);
            for (Tensor counted : TensorParallelGradients.normViews(chunks[c], tensorParallel.index())) {
                out.add(new StepTail.Part(chunk.device(), chunk.params(), counted, chunk.optimizer()));
            }
        }
        return out;
    }

    /**
     * What this worker counts in the global gradient norm under ZeRO: the ranges its optimizers own
     * ({@link StepTail.Part#ownedGradients}), on tp members other than 0 only where they hold split
     * parameters (replicas count once, on member 0).
     */
    public List<StepTail.Part> ownedNormParts() {
        List<StepTail.Part> out = new ArrayList<>();
        for (int c = 0; c < chunks.length; c++) {
            for (StepTail.Part owned : stepParts().get(c).ownedGradients()) {
                if (tensorParallel.index() == 0) {
                    out.add(owned);
                    continue;
                }
                long base = chunks[c].grads().offsetElements();
                long start = owned.grads().offsetElements() - base;
                long end = start + owned.grads().numel();
                for (Tensor v : TensorParallelGradients.normViews(chunks[c], tensorParallel.index())) {
                    long lo = Math.max(start, v.offsetElements() - base);
                    long hi = Math.min(end, v.offsetElements() - base + v.numel());
                    if (lo < hi) {
                        out.add(new StepTail.Part(owned.device(), owned.params(),
                            chunks[c].grads().view(lo, (int) (hi - lo)), owned.optimizer()));
                    }
                }
            }
        }
        return out;
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
        long live = 0;
        for (StageModule c : chunks) {
            live += c.activationBytesLive();
        }
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

    private void execute(long step, Action a, Batches train, long stepStartNs) {
        int v = a.virtualStage();
        int mb = a.microbatch();
        int g = modelStage(v);
        int stages = spec.layout().modelStages();
        StageModule chunk = chunks[v];
        float lossScale = 1f / ((float) spec.train().batchSize() * spec.train().model().seqLen());
        switch (a.type()) {
            case F -> {
                int slot = takeSlot(v, mb);
                if (g == 0 || g == stages - 1) {
                    int firstRow = (dpIndex * spec.microbatches() + mb) * spec.microBatchRows();
                    train.fill(step, spec.train().batchSize(), firstRow, spec.microBatchRows(), x, y);
                    loadTokens(g == 0, g == stages - 1);
                }
                Tensor out = chunk.forward(slot, g == 0 ? tokens : buffers.acquire(false, mb, v),
                    g == stages - 1 ? targets : null);
                if (g > 0) {
                    buffers.release(false, mb, v);   // the stage copied its input in
                }
                if (g == stages - 1) {
                    losses[mb] = chunk.loss(slot);
                } else {
                    double s0 = nowUs(stepStartNs);
                    buffers.send(link, false, dpIndex, (g + 1) % spec.layout().pp(), step, mb, v,
                        (g + 1) / spec.layout().pp(), out);
                    intervals.add(new TimelineInterval("send act(mb=" + mb + ")", "send", s0, nowUs(stepStartNs), "",
                        Map.of("microbatch", String.valueOf(mb), "bytes", String.valueOf(out.numel() * 4))));
                }
            }
            case B, BW -> {
                int slot = slotOf.get(slotKey(v, mb));
                boolean last = g == stages - 1;
                // Full recomputation fuses B and W block by block (the gradient goes out after both).
                // With tp, the chunk that sends no gradient upstream (g = 0) fuses them too, so its tp
                // reductions overlap W; the others send B's gradient first, which their upstream waits on.
                boolean fused = a.type() == io.troupe.actors.schedule.ActionType.BW
                    && (spec.memory().recompute() == io.troupe.models.memory.Recompute.FULL
                    || (tensorParallel.size() > 1 && g == 0));
                Tensor gradOut = last ? null : buffers.acquire(true, mb, v);
                Tensor grad = fused ? chunk.backward(slot, gradOut, lossScale, weightHook(v))
                    : chunk.backwardInput(slot, gradOut, lossScale);
                if (!last) {
                    buffers.release(true, mb, v);
                }
                if (g > 0) {
                    double s0 = nowUs(stepStartNs);
                    buffers.send(link, true, dpIndex, (g - 1) % spec.layout().pp(), step, mb, v,
                        (g - 1) / spec.layout().pp(), grad);
                    intervals.add(new TimelineInterval("send grad(mb=" + mb + ")", "send", s0, nowUs(stepStartNs), "",
                        Map.of("microbatch", String.valueOf(mb), "bytes", String.valueOf(grad.numel() * 4))));
                }
                if (fused) {
                    releaseSlot(v, mb);
                } else if (a.type() == io.troupe.actors.schedule.ActionType.BW) {
                    weightGradient(v, mb);
                }
            }
            case W -> weightGradient(v, mb);
        }
    }

    /** W of (v, mb); the step's last one for chunk v reports finished parameters to the chunk's hook. */
    private void weightGradient(int v, int mb) {
        int slot = slotOf.get(slotKey(v, mb));
        chunks[v].backwardWeight(slot, weightHook(v));
        releaseSlot(v, mb);
    }

    /** Counts a W of chunk v; the step's last one gets the chunk's hook, the others a no-op. */
    private java.util.function.IntConsumer weightHook(int v) {
        if (everyWeightHooks[v] != null) {
            return everyWeightHooks[v];
        }
        java.util.function.IntConsumer hook = gradientHooks[v];
        return hook != null && ++weightsDone[v] == spec.microbatches() ? hook : NO_HOOK;
    }

    private static final java.util.function.IntConsumer NO_HOOK = i -> { };

    /** Copies the host token ids and/or targets ({@link #x}, {@link #y}) to the device. */
    private void loadTokens(boolean ids, boolean labels) {
        if (ids) {
            device.copyFromHost(x, tokens);
        }
        if (labels) {
            device.copyFromHost(y, targets);
        }
    }

    /** Activation slot reserved for evaluation forwards (never followed by a backward). */
    private static final int EVAL_SLOT = -1;

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
            return evaluateUntraced(step, plan);
        } finally {
            if (tracedTensorParallel != null) {
                tracedTensorParallel.recording(true);
            }
        }
    }

    private double evaluateUntraced(long step, ValidationPlan plan) {
        int rows = spec.microBatchRows();
        if (plan.rows() != rows) {
            throw new IllegalArgumentException("validation plan of " + plan.rows() + " rows for micro-batches of "
                + rows);
        }
        int stages = spec.layout().modelStages();
        int pp = spec.layout().pp();
        boolean hasLast = false;
        double[] passLoss = new double[plan.passes()];
        List<StageEvent> deferred = new ArrayList<>();
        try {
            for (int p = 0; p < passLoss.length; p++) {
                int id = spec.microbatches() + p;
                for (int v = 0; v < chunks.length; v++) {
                    int g = modelStage(v);
                    boolean last = g == stages - 1;
                    if (g == 0 || last) {
                        plan.fill(p, x, y);
                        loadTokens(g == 0, last);
                    }
                    Tensor in = g == 0 ? tokens : awaitInput(step, id, v, deferred);
                    Tensor out = chunks[v].forward(EVAL_SLOT, in, last ? targets : null);
                    if (g > 0) {
                        buffers.release(false, id, v);
                    }
                    if (last) {
                        hasLast = true;
                        passLoss[p] = chunks[v].loss(EVAL_SLOT);
                    } else {
                        buffers.send(link, false, dpIndex, (g + 1) % pp, step, id, v, (g + 1) / pp, out);
                        buffers.sendAll(link);
                    }
                }
            }
        } finally {
            inbox.addAll(deferred);
            releaseEvalBuffers();
        }
        return hasLast ? plan.combine(passLoss) : Double.NaN;
    }

    /**
     * The next inbox event, or null after the step timeout. Over a drivable link the waiting thread
     * runs the link's receive duty cycle itself (spin, then yield, then park up to 50 us): the event
     * it waits for is usually in the data plane already, and a wake-up of another thread can take
     * milliseconds when the cores are busy. Otherwise it sleeps on the inbox.
     */
    private StageEvent awaitEvent() {
        try {
            if (link == null || !link.drivable()) {
                return inbox.poll(spec.stepTimeoutMs(), TimeUnit.MILLISECONDS);
            }
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(spec.stepTimeoutMs());
            waitIdle.reset();
            StageEvent e;
            while ((e = inbox.poll()) == null) {
                if (System.nanoTime() > deadline) {
                    return null;
                }
                waitIdle.idle(link.progress());
            }
            return e;
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("stage worker interrupted", ie);
        }
    }

    private final org.agrona.concurrent.IdleStrategy waitIdle = new org.agrona.concurrent.BackoffIdleStrategy(
        100, 100, TimeUnit.MICROSECONDS.toNanos(1), TimeUnit.MICROSECONDS.toNanos(50));

    private Tensor awaitInput(long step, int id, int v, List<StageEvent> deferred) {
        while (true) {
            StageEvent e = awaitEvent();
            if (e == null) {
                throw new IllegalStateException("validation after step " + step + ": worker dp=" + dpIndex + " pp="
                    + ppIndex
                    + " waited " + spec.stepTimeoutMs() + " ms for the activation of evaluation micro-batch " + id);
            }
            if (e.failure() != null) {
                throw e.failure();
            }
            if (!e.gradient() && e.microbatch() == id && e.virtualStage() == v) {
                buffers.upload(false, id, v);
                return buffers.acquire(false, id, v);
            }
            deferred.add(e);
        }
    }

    private void releaseEvalBuffers() {
        device.synchronize();
        buffers.closeFrom(spec.microbatches());
    }

    /** Activation slots are reused once a micro-batch's weight gradient is done, so memory follows the schedule. */
    private int takeSlot(int v, int mb) {
        ArrayDeque<Integer> free = freeSlots.get(v);
        int slot = free.isEmpty() ? nextSlot[v]++ : free.pop();
        slotOf.put(slotKey(v, mb), slot);
        return slot;
    }

    private void releaseSlot(int v, int mb) {
        Integer slot = slotOf.remove(slotKey(v, mb));
        freeSlots.get(v).push(slot);
    }

    private static long slotKey(int v, int mb) {
        return ((long) v << 32) | mb;
    }

    private static double nowUs(long startNs) {
        return (System.nanoTime() - startNs) / 1e3;
    }

    /**
     * Makes chunk {@code v}'s optimizer a ZeRO shard that owns the element ranges
     * {@code [starts[i], starts[i] + numels[i])} of its flat buffer (e.g. this member's segments of
     * the reduce-scattered gradient buckets); before the first step, on the worker's thread.
     */
    public void shardOptimizer(int v, long[] starts, long[] numels) {
        StageModule chunk = chunks[v];
        AdamW old = optimizers[v];
        optimizers[v] = AdamW.ranges(spec.train().adamw(), device, chunk.parameters(), chunk.params().numel(), starts,
            numels);
        old.close();
        List<StepTail.Part> parts = new ArrayList<>(stepParts);
        parts.set(v, new StepTail.Part(device, chunk.params(), chunk.grads(), optimizers[v]));
        stepParts = List.copyOf(parts);
    }

    /**
     * ZeRO stage 2 in one process: moves each chunk's gradients into its arena
     * ({@link StageModule#shardGradients}) and gives each ZeRO optimizer a packed buffer for the
     * gradients of the ranges it owns, which becomes the chunk's step part. Returns the arenas
     * ({@code null} for a chunk that keeps its whole buffer; it then keeps its part). Before the
     * first step; every weight gradient reports its parameters to {@link #onEveryWeightGradient}.
     */
    public io.troupe.models.memory.GradientArena[] shardGradients(long bucketElements) {
        io.troupe.models.memory.GradientArena[] arenas = new io.troupe.models.memory.GradientArena[chunks.length];
        for (int c = 0; c < chunks.length; c++) {
            arenas[c] = chunks[c].shardGradients(bucketElements);
            keepOwnedGradients(c, arenas[c]);
        }
        return arenas;
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
        io.troupe.models.memory.GradientArena arena = chunks[v].shardGradients(bucketStartElements, bucketNumels);
        keepOwnedGradients(v, arena);
        return arena;
    }

    private void keepOwnedGradients(int c, io.troupe.models.memory.GradientArena arena) {
        if (arena == null) {
            return;
        }
        ownedGradients[c] = device.allocate((int) optimizers[c].stateNumel());
        device.fill(ownedGradients[c], 0f);
        List<StepTail.Part> parts = new ArrayList<>(stepParts);
        parts.set(c, new StepTail.Part(device, chunks[c].params(), ownedGradients[c], optimizers[c]));
        stepParts = List.copyOf(parts);
    }

    /** Chunk {@code v}'s packed owned gradients under {@link #shardGradients} ({@code null} otherwise). */
    public Tensor ownedGradients(int v) {
        return ownedGradients[v];
    }

    /** Has chunk {@code v}'s every weight-gradient pass (not just the step's last) report to {@code hook}. */
    public void onEveryWeightGradient(int v, java.util.function.IntConsumer hook) {
        everyWeightHooks[v] = hook;
    }

    /**
     * The bytes this worker holds now ({@link io.troupe.models.memory.RankMemory}): its chunks'
     * parameter and gradient buffers, its optimizers' moments (owned ranges only under ZeRO), the
     * activation slots its chunks have allocated, and its receive buffers.
     */
    public io.troupe.models.memory.RankMemory memory() {
        long params = 0;
        long grads = 0;
        long optimizer = 0;
        long activations = 0;
        for (int c = 0; c < chunks.length; c++) {
            params += chunks[c].params().numel() * 4;
            grads += chunks[c].grads().numel() * 4 + (ownedGradients[c] == null ? 0 : ownedGradients[c].numel() * 4);
            optimizer += optimizers[c].stateBytes();
            activations += chunks[c].activationBytes();
        }
        return new io.troupe.models.memory.RankMemory(params, grads, optimizer, activations, buffers.receiveBytes());
    }

    /**
     * This worker's memory before its first step, with activations planned as
     * {@code liveSlots} micro-batch slots per chunk (the schedule's peak of live activations).
     */
    public io.troupe.models.memory.RankMemory plannedMemory(int liveSlots) {
        io.troupe.models.memory.RankMemory now = memory();
        long act = 0;
        for (StageModule c : chunks) {
            act += c.activationBytesPerSlot() * liveSlots + c.activationBytesShared();
        }
        return new io.troupe.models.memory.RankMemory(now.paramBytes(), now.gradBytes(), now.optimizerBytes(), act,
            now.commBytes());
    }

    /** Number of model chunks (virtual stages) on this worker. */
    public int chunks() {
        return chunks.length;
    }

    /** Every chunk's parameters, gradients and optimizer, in chunk order: what {@link StepTail} updates. */
    public List<StepTail.Part> stepParts() {
        return stepParts;
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
        for (int c = chunks == null ? -1 : chunks.length - 1; c >= 0; c--) {
            f = Closing.close(f, ownedGradients == null ? null : ownedGradients[c]);
            f = Closing.close(f, optimizers == null ? null : optimizers[c]);
            f = Closing.close(f, chunks[c]);
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
