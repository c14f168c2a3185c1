package io.troupe.actors.engine;

import io.troupe.actors.schedule.AdaptivePolicy;
import io.troupe.actors.schedule.PipelineShape;
import io.troupe.actors.schedule.SchedulePolicy;
import io.troupe.actors.schedule.Schedules;
import io.troupe.actors.trace.Timeline;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.actors.trace.TimelineTrack;
import io.troupe.models.StageModule;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.models.optim.StepTail;
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
 * dp × pp training in one process: one {@link StageWorker} per (replica, pipeline rank), each with
 * its own device and executor thread, running the job's schedule policy. After every worker's
 * backward work, gradients of each model stage are summed over replicas in replica order (so the
 * result is bitwise repeatable), the global norm is reduced over stages in stage order, and every
 * worker clips and steps its optimizer identically.
 *
 * <p>The data each micro-batch sees is the same global batch the single-device trainer draws, so
 * losses and weights match single-device training up to float summation order.
 */
public final class LocalPipelineEngine implements AutoCloseable {
    private final PipelineJobSpec spec;
    private final StageWorker[][] workers;
    private final ExecutorService[] executors;
    private final SchedulePolicy policy;
    private final Batches train;
    private final StepTail stepTail;
    /** Replica 0's chunks in model-stage order: each gradient counted once in the global norm. */
    private final List<StepTail.Part> normParts = new ArrayList<>();
    /** Every chunk of every replica. */
    private final List<StepTail.Part> updateParts = new ArrayList<>();
    private long step;

    public LocalPipelineEngine(PipelineJobSpec spec, Corpora data) {
        this.spec = spec;
        int dp = spec.layout().dp();
        int pp = spec.layout().pp();
        this.workers = new StageWorker[dp][pp];
        this.executors = new ExecutorService[dp * pp];
        for (int d = 0; d < dp; d++) {
            for (int p = 0; p < pp; p++) {
                workers[d][p] = new StageWorker(spec, d, p, spec.train().seed());
                int id = d * pp + p;
                executors[id] = Executors.newSingleThreadExecutor(r -> {
                    Thread t = new Thread(r, "troupe-worker-dp" + (id / pp) + "-pp" + (id % pp));
                    t.setDaemon(true);
                    return t;
                });
            }
        }
        StageLink inMemory = new StageLink() {
            @Override
            public void sendActivation(int dp, int pp, long step, int mb, int v, io.troupe.runtime.tensor.Tensor t) {
                workers[dp][pp].deliver(false, mb, v, t);
            }

            @Override
            public void sendGradient(int dp, int pp, long step, int mb, int v, io.troupe.runtime.tensor.Tensor t) {
                workers[dp][pp].deliver(true, mb, v, t);
            }
        };
        for (StageWorker[] replica : workers) {
            for (StageWorker w : replica) {
                w.connect(inMemory);
            }
        }
        this.policy = policyFor(spec);
        this.train = Batches.shuffled(data.train(), spec.train().model().seqLen(), spec.train().seed());
        this.stepTail = StepTail.local(spec.train().schedule(), spec.train().gradClip());
        for (int g = 0; g < spec.layout().modelStages(); g++) {
            normParts.add(workers[0][g % pp].stepParts().get(g / pp));
        }
        for (StageWorker[] replica : workers) {
            for (StageWorker w : replica) {
                updateParts.addAll(w.stepParts());
            }
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

    /** The stage holding model stage {@code g} in replica {@code d}. */
    public StageModule stage(int d, int g) {
        int pp = spec.layout().pp();
        return workers[d][g % pp].chunk(g / pp);
    }

    /** Runs one step and returns its metrics. */
    public PipelineStepMetrics trainStep() {
        long t0 = System.nanoTime();
        int dp = spec.layout().dp();
        int pp = spec.layout().pp();
        List<Future<?>> running = new ArrayList<>();
        long stepNo = step;
        for (int d = 0; d < dp; d++) {
            for (int p = 0; p < pp; p++) {
                StageWorker w = workers[d][p];
                running.add(executors[d * pp + p].submit(() -> {
                    try {
                        w.runStep(stepNo, policy, train, t0);
                    } catch (RuntimeException e) {
                        for (StageWorker[] replica : workers) {
                            for (StageWorker other : replica) {
                                if (other != w) {
                                    other.fail(new IllegalStateException("step aborted: worker dp=" + w.dpIndex()
                                        + " pp=" + w.ppIndex() + " failed: " + e.getMessage(), e));
                                }
                            }
                        }
                        throw e;
                    }
                }));
            }
        }
        for (Future<?> f : running) {
            await(f);
        }
        double computeEndUs = (System.nanoTime() - t0) / 1e3;

        long r0 = System.nanoTime();
        reduceGradients();
        double allReduceMs = (System.nanoTime() - r0) / 1e6;
        StepTail.Result tail = stepTail.apply(step, normParts, updateParts);
        double norm = tail.gradNorm();
        float lr = tail.lr();
        step++;
        double lossSum = 0;
        for (int d = 0; d < dp; d++) {
            for (int mb = 0; mb < spec.microbatches(); mb++) {
                lossSum += workers[d][pp - 1].loss(mb);
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
        List<Future<Double>> running = new ArrayList<>();
        for (int p = 0; p < pp; p++) {
            StageWorker w = workers[0][p];
            running.add(executors[p].submit(() -> w.evaluate(step, plan)));
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

    /** Writes a committed checkpoint: one shard per model stage (from replica 0), named by parameter. */
    public java.nio.file.Path checkpoint(java.nio.file.Path root, String dataSource) {
        java.util.Map<String, io.troupe.models.checkpoint.ShardState> shards = new java.util.LinkedHashMap<>();
        int pp = spec.layout().pp();
        for (int g = 0; g < spec.layout().modelStages(); g++) {
            StageWorker w = workers[0][g % pp];
            shards.put(String.format("shard-g%02d.bin", g), io.troupe.models.train.StageState.capture(w.chunk(g / pp),
                w.optimizer(g / pp)));
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
        for (StageWorker[] replica : workers) {
            for (int g = 0; g < spec.layout().modelStages(); g++) {
                StageWorker w = replica[g % pp];
                io.troupe.models.train.StageState.restore(w.chunk(g / pp), w.optimizer(g / pp), ckpt.shards().values());
            }
        }
        this.step = m.dataCursor();
    }

    /** Sums each model stage's gradients over replicas in replica order and gives every replica the sum. */
    private void reduceGradients() {
        int dp = spec.layout().dp();
        if (dp == 1) {
            return;
        }
        for (int g = 0; g < spec.layout().modelStages(); g++) {
            StageModule root = stage(0, g);
            if (root.device().kind() != DeviceKind.CPU) {
                reduceThroughHost(g);
                continue;
            }
            for (int d = 1; d < dp; d++) {
                root.device().axpy(1f, stage(d, g).grads(), root.grads());
            }
            for (int d = 1; d < dp; d++) {
                root.device().copy(root.grads(), stage(d, g).grads());
            }
        }
    }

    /**
     * The same sum, in the same order, for workers on GPUs (each its own device, whose ops take only
     * their own tensors): through host arrays.
     */
    private void reduceThroughHost(int g) {
        float[] sum = stage(0, g).grads().toFloatArray();
        for (int d = 1; d < spec.layout().dp(); d++) {
            float[] x = stage(d, g).grads().toFloatArray();
            for (int i = 0; i < sum.length; i++) {
                sum[i] += x[i];
            }
        }
        for (int d = 0; d < spec.layout().dp(); d++) {
            stage(d, g).device().copyFromHost(sum, stage(d, g).grads());
        }
    }

    private double bubble(double stepEndUs) {
        double busy = 0;
        double end = 0;
        int n = 0;
        for (StageWorker[] replica : workers) {
            for (StageWorker w : replica) {
                n++;
                for (TimelineInterval i : w.intervals()) {
                    end = Math.max(end, i.endUs());
                    if (StageWorker.isCompute(i.category())) {
                        busy += i.durationUs();
                    }
                }
            }
        }
        double span = end > 0 ? end : stepEndUs;
        return span <= 0 ? 0 : Math.max(0, 1 - busy / (n * span));
    }

    /** The last step's timeline: one track per worker. */
    public Timeline timeline() {
        List<TimelineTrack> tracks = new ArrayList<>();
        for (StageWorker[] replica : workers) {
            for (StageWorker w : replica) {
                tracks.add(new TimelineTrack("replica " + w.dpIndex(), "dp" + w.dpIndex() + " pp" + w.ppIndex(),
                    List.copyOf(w.intervals())));
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
        for (StageWorker[] replica : workers) {
            for (StageWorker w : replica) {
                w.close();
            }
        }
    }
}
