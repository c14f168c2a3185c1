package io.troupe.models.train;

import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.data.Batches;
import io.troupe.models.data.Corpora;
import io.troupe.models.data.ValidationPlan;
import io.troupe.models.gpt.Gpt;
import io.troupe.models.optim.AdamW;
import io.troupe.models.optim.StepTail;
import io.troupe.runtime.device.Device;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Single-device training: each step draws the global batch for its step number, runs it in
 * micro-batches (gradients accumulate), clips by global norm, and applies AdamW at the scheduled
 * rate. Everything depends only on (config, data, step), so a run resumed from a checkpoint follows
 * the uninterrupted trajectory bit for bit.
 */
public final class Trainer implements AutoCloseable {
    private final TrainConfig cfg;
    private final Device dev;
    private final Corpora data;
    private final Batches train;
    private final ValidationPlan val;
    private final Gpt gpt;
    private final AdamW opt;
    private final StepTail stepTail;
    private final List<StepTail.Part> parts;
    private final int rows;
    private final int[] x;
    private final int[] y;
    private long step;

    public Trainer(TrainConfig cfg, Device dev, Corpora data) {
        this.cfg = cfg;
        this.dev = dev;
        this.data = data;
        this.train = Batches.shuffled(data.train(), cfg.model().seqLen(), cfg.seed());
        this.rows = cfg.microBatchRows();
        this.val = new ValidationPlan(data.val(), cfg.model().seqLen(), cfg.batchSize(), rows, cfg.evalBatches());
        this.gpt = Gpt.whole(cfg.model(), dev, rows);
        this.gpt.initialize(cfg.seed());
        this.opt = new AdamW(cfg.adamw(), dev, gpt.layout().specs(), gpt.layout().numel());
        this.stepTail = StepTail.local(cfg.schedule(), cfg.gradClip());
        this.parts = List.of(new StepTail.Part(dev, gpt.params(), gpt.grads(), opt));
        this.x = new int[rows * cfg.model().seqLen()];
        this.y = new int[rows * cfg.model().seqLen()];
    }

    public Gpt model() {
        return gpt;
    }

    /** Completed updates so far. */
    public long step() {
        return step;
    }

    /** Runs one update and returns its metrics (validation included when due). */
    public StepMetrics trainStep() {
        long t0 = System.nanoTime();
        int seq = cfg.model().seqLen();
        float lossScale = 1f / ((float) cfg.batchSize() * seq);
        gpt.zeroGrads();
        double lossSum = 0;
        for (int mb = 0; mb < cfg.microBatches(); mb++) {
            train.fill(step, cfg.batchSize(), mb * rows, rows, x, y);
            gpt.forwardTokens(0, x, y);
            lossSum += gpt.loss(0);
            gpt.backward(0, null, lossScale);
        }
        StepTail.Result tail = stepTail.apply(step, parts, parts);
        double norm = tail.gradNorm();
        float lr = tail.lr();
        dev.synchronize();
        step++;
        double ms = (System.nanoTime() - t0) / 1e6;
        double valLoss = cfg.evalDue(step) ? validationLoss() : Double.NaN;
        double tokens = (double) cfg.batchSize() * seq;
        return new StepMetrics(step, cfg.steps(), lossSum / cfg.microBatches(), valLoss, lr, norm,
            tokens / (ms / 1e3), ms);
    }

    /** Runs until {@code cfg.steps()}, checkpointing into {@code checkpointRoot} when due (null: never). */
    public void run(Path checkpointRoot, Consumer<StepMetrics> listener) {
        while (step < cfg.steps()) {
            StepMetrics m = trainStep();
            listener.accept(m);
            if (checkpointRoot != null && cfg.checkpointDue(step)) {
                checkpoint(checkpointRoot);
            }
        }
    }

    /**
     * The validation loss: {@code evalBatches} batches of the validation split, or every
     * non-overlapping window of it when {@code evalBatches} is {@link ValidationPlan#ALL}
     * (see {@link ValidationPlan}).
     */
    public double validationLoss() {
        return val.meanLoss((vx, vy) -> {
            gpt.forwardTokens(0, vx, vy);
            return gpt.loss(0);
        });
    }

    /** The shuffled training batches this trainer draws from. */
    public Batches trainBatches() {
        return train;
    }

    /** Writes a committed checkpoint of the current step; returns its directory. */
    public Path checkpoint(Path root) {
        Manifest m = new Manifest(Manifest.FORMAT, step, step, cfg.seed(), cfg.batchSize(), "1x1x1", cfg.model(),
            data.train().description(), java.util.List.of());
        return Checkpoints.write(root, m, Map.of("shard-00.bin", StageState.capture(gpt, opt)));
    }

    /** Restores parameters, moments and the step from a committed checkpoint made with the same model. */
    public void restore(Checkpoints.Loaded ckpt) {
        Manifest m = ckpt.manifest();
        if (!m.model().equals(cfg.model())) {
            throw new CheckpointException("checkpoint " + ckpt.dir() + " was written for model " + m.model()
                + ", this run trains " + cfg.model());
        }
        if (m.batchSize() != cfg.batchSize() || m.seed() != cfg.seed()) {
            throw new CheckpointException("checkpoint " + ckpt.dir() + " was written with batch_size=" + m.batchSize()
                + ", seed=" + m.seed() + "; this run has batch_size=" + cfg.batchSize() + ", seed=" + cfg.seed());
        }
        if (m.step() > cfg.steps()) {
            throw new CheckpointException("checkpoint " + ckpt.dir() + " is at step " + m.step()
                + ", past steps=" + cfg.steps());
        }
        StageState.restore(gpt, opt, ckpt.shards().values());
        this.step = m.dataCursor();
    }

    @Override
    public void close() {
        opt.close();
        gpt.close();
    }

    /** Exposed for checkpoint tests. */
    public ShardState captureState() {
        return StageState.capture(gpt, opt);
    }
}
