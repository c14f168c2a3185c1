package io.troupe.models.train;

import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.optim.LrSchedule;

/**
 * What a training run does. Validated on construction; every message names the bad value.
 *
 * @param batchSize          global batch rows per step
 * @param microBatches       the batch is processed in this many micro-batches (gradient accumulation)
 * @param gradClip           max global gradient norm; 0 disables clipping
 * @param evalInterval       steps between validation passes (0: only at the end)
 * @param evalBatches        validation batches per pass; 0 ({@code ValidationPlan.ALL}): every window of the split
 * @param checkpointInterval steps between checkpoints (0: only at the end)
 */
public record TrainConfig(GptConfig model, int batchSize, int microBatches, int steps, float lr, float minLr,
                          int warmupSteps, float gradClip, long seed, int evalInterval, int evalBatches,
                          int checkpointInterval, AdamWConfig adamw) {

    public TrainConfig {
        check(batchSize >= 1, "batch_size must be >= 1: batch_size=" + batchSize);
        check(microBatches >= 1 && batchSize % microBatches == 0,
            "micro-batches must divide batch_size: batch_size=" + batchSize + ", microbatches=" + microBatches);
        check(steps >= 1, "steps must be >= 1: steps=" + steps);
        check(gradClip >= 0 && gradClip < Float.POSITIVE_INFINITY,
            "grad_clip must be a finite number >= 0 (0 turns clipping off): grad_clip=" + gradClip);
        check(evalInterval >= 0, "eval_interval must be >= 0: eval_interval=" + evalInterval);
        check(evalBatches >= 0, "eval_batches must be >= 1, or 0 for all: eval_batches=" + evalBatches);
        check(checkpointInterval >= 0, "checkpoint_interval must be >= 0: checkpoint_interval=" + checkpointInterval);
        new LrSchedule(lr, minLr, warmupSteps, steps);
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    /** Whether validation runs after {@code step} (1-based count of completed updates). */
    public boolean evalDue(long step) {
        return step == steps || (evalInterval > 0 && step % evalInterval == 0);
    }

    /** Whether a checkpoint is written after {@code step} (1-based count of completed updates). */
    public boolean checkpointDue(long step) {
        return step == steps || (checkpointInterval > 0 && step % checkpointInterval == 0);
    }

    public int microBatchRows() {
        return batchSize / microBatches;
    }

    public LrSchedule schedule() {
        return new LrSchedule(lr, minLr, warmupSteps, steps);
    }

    public TrainConfig withSteps(int newSteps) {
        return new TrainConfig(model, batchSize, microBatches, newSteps, lr, minLr, warmupSteps, gradClip, seed,
            evalInterval, evalBatches, checkpointInterval, adamw);
    }
}
