package io.troupe.actors.engine;

import io.troupe.actors.schedule.AdaptivePolicy;
import io.troupe.actors.schedule.PipelineShape;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.actors.schedule.Schedules;
import io.troupe.actors.trace.Timeline;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.actors.trace.TimelineTrack;
import io.troupe.models.StageModule;
import io.troupe.models.checkpoint.ShardedCheckpointReader;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.models.optim.StepTail;
import io.troupe.models.parallel.ParallelParameterLayout;
import io.troupe.models.parallel.tp.LocalTensorParallelGroup;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.models.train.StepMetrics;
import io.troupe.runtime.device.DeviceKind;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * dp × pp × tp training in one process: one {@link StageWorker} per (replica, pipeline rank,
 * tensor-parallel member), each with its own device and executor thread, running the job's schedule
 * policy; the tp members of a stage form an in-process {@link LocalTensorParallelGroup} and each
 * sends its activations to the same member of the next stage. After every worker's backward work,
 * gradients of each (model stage, tp member) are summed over replicas in replica order (so the
 * result is bitwise repeatable), the global norm is reduced over stages and members in that order
 * (replicated parameters counted once), and every worker clips and steps its optimizer identically.
 *
 * <p>The data each micro-batch sees is the same global batch the single-device trainer draws, so
 * losses and weights match single-device training up to float summation order.
 */
public final class LocalPipelineEngine implements AutoCloseable {
    private final PipelineJobSpec spec;
    /** [dp_i][pp_i][tp_i]. */
    private final StageWorker[][][] workers;
    /** One member of each stage's tp group (tp > 1), to abort the group when a worker fails. */
    private final List<LocalTensorParallelGroup> tensorParallelGroups = new ArrayList<>();
    private final ExecutorService[] executors;
    private final SchedulePolicy policy;
    private final Batches train;
    private final StepTail stepTail;
    /**
     * Replica 0's chunks in model-stage order, then tp member order: each gradient counted once in
     * the global norm (tp members other than 0 pass only the views of their split parameters).
     */
    private final List<StepTail.Part> normParts = new ArrayList<>();
    /** Every chunk of every replica. */
    private final List<StepTail.Part> updateParts = new ArrayList<>();
    private long step;
    /** ZeRO 2 with gradients kept as slices: one per model stage that keeps them (empty otherwise). */
    private final List<ZeroGradientSlices> gradientSlices = new ArrayList<>();
    /** Per model stage: its gradients are kept as slices and reduced by one of {@link #gradientSlices}. */
    private final boolean[] slicedStages;

    public LocalPipelineEngine(PipelineJobSpec spec, Corpora data) {
        if (spec.layout().dp() > 1 && spec.memory().gradCompression() != io.troupe.models.memory.GradCompression.NONE) {
            throw new IllegalArgumentException("gradient compression runs on the data plane of the cluster engine; the "
                + "in-process engine sums replicas in memory: grad-compression="
                + spec.memory().gradCompression().optionName());
        }
        this.spec = spec;
        int dp = spec.layout().dp();
        int pp = spec.layout().pp();
        int tp = spec.layout().tp();
        this.workers = new StageWorker[dp][pp][tp];
        this.slicedStages = new boolean[spec.layout().modelStages()];
        this.executors = new ExecutorService[dp * pp * tp];
        for (int d = 0; d < dp; d++) {
            for (int p = 0; p < pp; p++) {
                List<TensorParallelGroup> group = tp == 1 ? List.of(TensorParallelGroup.single())
                    : LocalTensorParallelGroup.create(tp, spec.stepTimeoutMs());
                if (tp > 1) {
                    tensorParallelGroups.add((LocalTensorParallelGroup) group.get(0));
                }
                for (int t = 0; t < tp; t++) {
                    workers[d][p][t] = new StageWorker(spec, d, p, group.get(t), spec.train().seed());
                    String name = "troupe-worker-dp" + d + "-pp" + p + (tp > 1 ? "-tp" + t : "");
                    executors[(d * pp + p) * tp + t] = Executors.newSingleThreadExecutor(r -> {
                        Thread th = new Thread(r, name);
                        th.setDaemon(true);
                        return th;
                    });
                }
            }
        }
        for (int t = 0; t < tp; t++) {
            final int member = t;
            StageLink inMemory = new StageLink() {
                @Override
                public void sendActivation(int dp, int pp, long step, int mb, int v,
                    io.troupe.runtime.tensor.Tensor x) {
                    workers[dp][pp][member].deliver(false, mb, v, x);
                }

                @Override
                public void sendGradient(int dp, int pp, long step, int mb, int v, io.troupe.runtime.tensor.Tensor x) {
                    workers[dp][pp][member].deliver(true, mb, v, x);
                }
            };
            for (StageWorker[][] replica : workers) {
                for (StageWorker[] stage : replica) {
                    stage[member].connect(inMemory);
                }
            }
        }
        if (spec.memory().zero() == 2 && tp == 1 && spec.device() == DeviceKind.CPU) {
            ReplicaGradients.shard(spec, workers, gradientSlices, slicedStages);
        }
        this.policy = policyFor(spec);
        this.train = Batches.shuffled(data.train(), spec.train().model().seqLen(), spec.train().seed());
        this.stepTail = StepTail.local(spec.train().schedule(), spec.train().gradClip());
        for (int g = 0; g < spec.layout().modelStages() && spec.zeroSharded(); g++) {
            // ZeRO: each replica's segment holds its share of the reduced gradients; tp members other
            // than 0 count only the split parameters in it.
            for (int t = 0; t < tp; t++) {
                for (int d = 0; d < dp; d++) {
                    StageWorker w = workers[d][g % pp][t];
                    StageModule chunk = w.chunk(g / pp);
                    for (StepTail.Part owned : w.stepParts().get(g / pp).ownedGradients()) {
                        normParts.addAll(t == 0 ? List.of(owned) : countedByMember(owned, chunk, t));
                    }
                }
            }
        }
        for (int g = 0; g < spec.layout().modelStages() && !spec.zeroSharded(); g++) {
            for (int t = 0; t < tp; t++) {
                // tp members other than 0 count only their split parameters: replicas count on member 0
                StageWorker w = workers[0][g % pp][t];
                List<StepTail.Part> counted = w.normParts();
                if (w.chunks() == 1) {
                    normParts.addAll(counted);
                } else {
                    int chunk = g / pp;
                    for (StepTail.Part part : counted) {
                        if (part.optimizer() == w.optimizer(chunk)) {
                            normParts.add(part);
                        }
                    }
                }
            }
        }
        for (StageWorker w : all()) {
            updateParts.addAll(w.stepParts());
        }
    }

    /** The schedule policy a job runs: a static schedule or the adaptive policy (budget: p micro-batches). */
    public static SchedulePolicy policyFor(PipelineJobSpec spec) {
        int pp = spec.layout().pp();
        int v = spec.layout().virtualStages();
        int m = spec.microbatches();
        if (spec.schedule().equals("adaptive")) {
            long bytes = (long) spec.microBatchRows() * spec.train().model().seqLen() * spec.train().model().dModel()
                * 4;
            return new AdaptivePolicy(new PipelineShape(pp, v, m), i -> bytes, (long) pp * bytes,
                Double.POSITIVE_INFINITY, 0.0);
        }
        return Schedules.byName(spec.schedule(), pp, v, m).asPolicy();
    }

    public long step() {
        return step;
    }

    /** The busiest rank's bytes in each category, measured now (after a step: the step's activation peak). */
    public io.troupe.models.memory.RankMemory memoryPerRank() {
        io.troupe.models.memory.RankMemory most = new io.troupe.models.memory.RankMemory(0, 0, 0, 0, 0);
        for (StageWorker w : all()) {
            most = most.max(w.memory());
        }
        return most;
    }

    /**
     * The memory plan before the first step: model state as allocated, activations as the slots
     * the schedule keeps live at its peak (simulated with unit costs) times one slot's bytes.
     */
    public io.troupe.models.memory.RankMemory plannedMemoryPerRank() {
        int pp = spec.layout().pp();
        io.troupe.actors.schedule.SimulationResult sim = new io.troupe.actors.schedule.PipelineSimulator(
            io.troupe.actors.schedule.CostModel.uniform(pp, 1, 2, 1)).run(policy);
        int live = Math.max(1, sim.maxPeakLiveActivations());
        io.troupe.models.memory.RankMemory most = new io.troupe.models.memory.RankMemory(0, 0, 0, 0, 0);
        for (StageWorker w : all()) {
            most = most.max(w.plannedMemory(live));
        }
        return most;
    }

    /** The step parts of replica {@code d}'s first worker (pipeline rank 0, tp member 0): segments under ZeRO. */
    public List<StepTail.Part> stepParts(int d) {
        return workers[d][0][0].stepParts();
    }

    /** The stage holding model stage {@code g} in replica {@code d} (tp member 0). */
    public StageModule stage(int d, int g) {
        return stage(d, g, 0);
    }

    /** Tensor-parallel member {@code t} of model stage {@code g} in replica {@code d}. */
    public StageModule stage(int d, int g, int t) {
        int pp = spec.layout().pp();
        return workers[d][g % pp][t].chunk(g / pp);
    }

    /** The parts of {@code owned} (a view of {@code chunk}'s gradients) that tp member {@code t} counts in the norm. */
    private static List<StepTail.Part> countedByMember(StepTail.Part owned, StageModule chunk, int t) {
        long base = chunk.grads().offsetElements();
        long start = owned.grads().offsetElements() - base;
        long end = start + owned.grads().numel();
        List<StepTail.Part> out = new ArrayList<>();
        for (io.troupe.runtime.tensor.Tensor v : io.troupe.models.parallel.tp.TensorParallelGradients.normViews(chunk,
            t)) {
            long lo = Math.max(start, v.offsetElements() - base);
            long hi = Math.min(end, v.offsetElements() - base + v.numel());
            if (lo < hi) {
                out.add(new StepTail.Part(owned.device(), owned.params(), chunk.grads().view(lo, (int) (hi - lo)),
                    owned.optimizer()));
            }
        }
        return out;
    }

    /** Every worker, replica by replica, stage by stage, member by member. */
    private List<StageWorker> all() {
        List<StageWorker> out = new ArrayList<>();
        for (StageWorker[][] replica : workers) {
            for (StageWorker[] stage : replica) {
                out.addAll(List.of(stage));
            }
        }
        return out;
    }

    /** Runs one step and returns its metrics. */
    public PipelineStepMetrics trainStep() {
        long t0 = System.nanoTime();
        int dp = spec.layout().dp();
        int pp = spec.layout().pp();
        List<Future<?>> running = new ArrayList<>();
        long stepNo = step;
        List<StageWorker> everyone = all();
        for (ZeroGradientSlices z : gradientSlices) {
            z.zeroOwned();
        }
        for (int i = 0; i < everyone.size(); i++) {
            StageWorker w = everyone.get(i);
            running.add(executors[i].submit(() -> {
                try {
                    w.runStep(stepNo, policy, train, t0);
                } catch (RuntimeException e) {
                    // Peers blocked in a tp collective or a bucket reduction with the failed worker are
                    // released at once.
                    for (ZeroGradientSlices z : gradientSlices) {
                        z.abort();
                    }
                    for (LocalTensorParallelGroup g : tensorParallelGroups) {
                        g.abort("worker dp=" + w.dpIndex() + " pp=" + w.ppIndex() + " tp=" + w.tpIndex() + " failed: "
                            + e.getMessage());
                    }
                    for (StageWorker other : everyone) {
                        if (other != w) {
                            other.fail(new IllegalStateException("step aborted: worker dp=" + w.dpIndex()
                                + " pp=" + w.ppIndex() + " tp=" + w.tpIndex() + " failed: " + e.getMessage(), e));
                        }
                    }
                    throw e;
                }
            }));
        }
        for (Future<?> f : running) {
            await(f);
        }
        if (spec.sequenceParallel() && spec.layout().tp() > 1) {
            List<Future<?>> reducing = new ArrayList<>();
            for (int i = 0; i < everyone.size(); i++) {
                reducing.add(executors[i].submit(everyone.get(i)::reducePartialGradients));
            }
            for (Future<?> f : reducing) {
                await(f);
            }
        }
        double computeEndUs = (System.nanoTime() - t0) / 1e3;

        long r0 = System.nanoTime();
        if (spec.zeroSharded()) {
            for (ZeroGradientSlices z : gradientSlices) {
                z.reduceResident();
            }
            // Stages without slices (zero 1, tp > 1, or a module keeping its whole buffer) reduce-scatter it whole.
            for (int t = 0; t < spec.layout().tp(); t++) {
                final int member = t;
                ZeroReplicas.reduceScatter((d, g) -> stage(d, g, member), spec.layout(), g -> !slicedStages[g]);
            }
        } else {
            ReplicaGradients.sum(spec, workers);
        }
        double allReduceMs = (System.nanoTime() - r0) / 1e6;
        StepTail.Result tail = stepTail.apply(step, normParts, updateParts);
        if (spec.zeroSharded()) {
            for (int t = 0; t < spec.layout().tp(); t++) {
                final int member = t;
                ZeroReplicas.allGatherParameters((d, g) -> stage(d, g, member), spec.layout());
            }
        }
        double norm = tail.gradNorm();
        float lr = tail.lr();
        step++;
        double lossSum = 0;
        for (int d = 0; d < dp; d++) {
            for (int mb = 0; mb < spec.microbatches(); mb++) {
                lossSum += workers[d][pp - 1][0].loss(mb);
            }
        }
        double ms = (System.nanoTime() - t0) / 1e6;
        double tokens = (double) spec.train().batchSize() * spec.train().model().seqLen();
        StepMetrics m = new StepMetrics(step, spec.train().steps(), lossSum / (dp * spec.microbatches()), Double.NaN,
            lr,
            norm, tokens / (ms / 1e3), ms);
        return new PipelineStepMetrics(m, bubble(computeEndUs), allReduceMs, timeline());
    }

    /**
     * The validation loss of {@code plan} (rows: the micro-batch rows): replica 0's workers run
     * {@link StageWorker#evaluate} together (between steps), passing activations on.
     */
    public double validationLoss(io.troupe.models.data.ValidationPlan plan) {
        int pp = spec.layout().pp();
        int tp = spec.layout().tp();
        List<Future<Double>> running = new ArrayList<>();
        for (int p = 0; p < pp; p++) {
            for (int t = 0; t < tp; t++) {
                StageWorker w = workers[0][p][t];
                running.add(executors[p * tp + t].submit(() -> w.evaluate(step, plan)));
            }
        }
        double loss = Double.NaN;
        for (Future<Double> f : running) {
            double l = await(f);
            if (!Double.isNaN(l)) {
                loss = l;
            }
        }
        return loss;
    }

    /**
     * Writes a committed checkpoint: one shard per (model stage, tp member) from replica 0, named by
     * parameter ({@link ShardedCheckpointReader#shardFileName}).
     */
    public java.nio.file.Path checkpoint(java.nio.file.Path root, String dataSource) {
        java.util.Map<String, io.troupe.models.checkpoint.ShardState> shards = new java.util.LinkedHashMap<>();
        int pp = spec.layout().pp();
        int tp = spec.layout().tp();
        for (int g = 0; g < spec.layout().modelStages(); g++) {
            for (int t = 0; t < tp; t++) {
                StageWorker w = workers[0][g % pp][t];
                final int member = t;
                shards.put(ShardedCheckpointReader.shardFileName(g, tp, t), spec.zeroSharded()
                    ? ZeroReplicas.capture((d, s) -> stage(d, s, member),
                        (d, s) -> workers[d][s % pp][member].optimizer(s / pp), spec.layout(), g)
                    : io.troupe.models.train.StageState.capture(w.chunk(g / pp), w.optimizer(g / pp)));
            }
        }
        io.troupe.models.checkpoint.Manifest m = new io.troupe.models.checkpoint.Manifest(
            io.troupe.models.checkpoint.Manifest.FORMAT, step, step, spec.train().seed(), spec.train().batchSize(),
            spec.layout().toString(), spec.train().model(), dataSource, List.of());
        return io.troupe.models.checkpoint.Checkpoints.write(root, m, shards);
    }

    /** Restores every replica's stages from a checkpoint written by any layout of the same model. */
    public void restore(io.troupe.models.checkpoint.Checkpoints.Loaded ckpt) {
        io.troupe.models.checkpoint.Manifest m = ckpt.manifest();
        if (!m.model().equals(spec.train().model()) || m.batchSize() != spec.train().batchSize()
            || m.seed() != spec.train().seed()) {
            throw new io.troupe.models.checkpoint.CheckpointException("checkpoint " + ckpt.dir() + " (model "
                + m.model().name()
                + ", batch_size=" + m.batchSize() + ", seed=" + m.seed() + ") does not match this job (model "
                + spec.train().model().name() + ", batch_size=" + spec.train().batchSize() + ", seed="
                    + spec.train().seed() + ")");
        }
        int pp = spec.layout().pp();
        int tp = spec.layout().tp();
        boolean reshard = tp > 1 || m.parsedLayout().tp() > 1;
        if (reshard && !spec.moduleFactory().isEmpty()) {
            throw new io.troupe.models.checkpoint.CheckpointException("checkpoint " + ckpt.dir() + " (layout "
                + m.layout()
                + ") needs resharding, which knows GPT's parameter placement only; this job's stages come from "
                + spec.moduleFactory());
        }
        ParallelParameterLayout placement = reshard
            ? ParallelParameterLayout.gpt(spec.train().model(), spec.partition(), false)
            : null;
        try (ShardedCheckpointReader reader = reshard ? ShardedCheckpointReader.open(ckpt.dir()) : null) {
            for (StageWorker[][] replica : workers) {
                for (int g = 0; g < spec.layout().modelStages(); g++) {
                    for (int t = 0; t < tp; t++) {
                        StageWorker w = replica[g % pp][t];
                        Iterable<io.troupe.models.checkpoint.ShardState> shards = reshard
                            ? List.of(reader.read(placement.local(g, tp, t))) : ckpt.shards().values();
                        io.troupe.models.train.StageState.restore(w.chunk(g / pp), w.optimizer(g / pp), shards);
                    }
                }
            }
        }
        this.step = m.dataCursor();
    }

    private double bubble(double stepEndUs) {
        double busy = 0;
        double end = 0;
        int n = 0;
        for (StageWorker w : all()) {
            n++;
            for (TimelineInterval i : w.intervals()) {
                end = Math.max(end, i.endUs());
                if (StageWorker.isCompute(i.category())) {
                    busy += i.durationUs();
                }
            }
        }
        double span = end > 0 ? end : stepEndUs;
        return span <= 0 ? 0 : Math.max(0, 1 - busy / (n * span));
    }

    /** The last step's timeline: one track per worker. */
    public Timeline timeline() {
        List<TimelineTrack> tracks = new ArrayList<>();
        for (StageWorker w : all()) {
            String name = "dp" + w.dpIndex() + " pp" + w.ppIndex() + (spec.layout().tp() > 1 ? " tp" + w.tpIndex()
                : "");
            tracks.add(new TimelineTrack("replica " + w.dpIndex(), name, List.copyOf(w.intervals())));
            if (!w.tensorParallelIntervals().isEmpty()) {
                tracks.add(new TimelineTrack("replica " + w.dpIndex(), name + " tp collectives",
                    List.copyOf(w.tensorParallelIntervals())));
            }
        }
        return new Timeline("Troupe " + spec.layout() + " " + spec.schedule() + ", m=" + spec.microbatches()
            + ", step " + step, tracks);
    }

    private <T> T await(Future<T> f) {
        try {
            return f.get(spec.stepTimeoutMs() * 2, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            throw c instanceof RuntimeException re ? re : new IllegalStateException(c);
        } catch (TimeoutException e) {
            throw new IllegalStateException("step " + step + " did not finish within " + spec.stepTimeoutMs() * 2
                + " ms", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for step " + step, e);
        }
    }

    @Override
    public void close() {
        for (ExecutorService e : executors) {
            e.shutdownNow();
        }
        for (ExecutorService e : executors) {
            try {
                e.awaitTermination(10, TimeUnit.SECONDS);
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
            }
        }
        for (StageWorker w : all()) {
            w.close();
        }
    }
}
