package io.troupe.actors.cluster;

import io.troupe.actors.engine.StageWorker;
import io.troupe.collectives.bucket.GradientBucketer;
import io.troupe.collectives.compress.ErrorFeedback;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.optim.AdamW;
import io.troupe.models.train.StageState;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import java.nio.file.Path;

/**
 * What a cluster rank puts into a checkpoint beyond its stage's parameters: under ZeRO, the whole
 * moments gathered from every replica's owned segments (so the checkpoint holds full tensors by
 * name, loadable under any zero stage and dp); under int8 error feedback, this rank's residuals,
 * one file per rank ({@link #residualFileName}), restored on resume.
 *
 * <p>Threading: on the worker's device thread between steps; {@link #capture} under ZeRO runs
 * collectives, so every replica calls it for the same chunks in the same order.
 */
final class RankCheckpointState {
    private RankCheckpointState() {
    }

    /**
     * Chunk {@code c} of {@code w} by name. With {@code zeroBuckets} (the chunk's reduce-scatter
     * bucketer) the moments are all-gathered over the dp group first; every replica must call it.
     */
    static ShardState capture(StageWorker w, int c, GradientBucketer zeroBuckets) {
        AdamW opt = w.optimizer(c);
        if (zeroBuckets == null) {
            return StageState.capture(w.chunk(c), opt);
        }
        int numel = (int) w.chunk(c).params().numel();
        float[] m = gather(opt, opt.firstMoment(), numel, zeroBuckets);
        float[] v = gather(opt, opt.secondMoment(), numel, zeroBuckets);
        return StageState.capture(w.chunk(c), m, v, opt.stepCount());
    }

    private static float[] gather(AdamW opt, Tensor packed, int numel, GradientBucketer buckets) {
        float[] whole = new float[numel];
        opt.unpack(packed.toFloatArray(), whole);
        // The data plane gathers host memory, whatever device the optimizer runs on.
        try (CpuDevice host = new CpuDevice(1); Tensor t = host.allocate(numel)) {
            host.copyFromHost(whole, t);
            buckets.allGather(t.address());
            return t.toFloatArray();
        }
    }

    /** The file of rank {@code rank}'s error-feedback residuals. */
    static String residualFileName(int rank) {
        return String.format("ef-r%03d.bin", rank);
    }

    /** This rank's residuals, one entry {@code ef.<tag>} per collective tag (gradient bucket). */
    static ShardState residuals(ErrorFeedback ef) {
        ShardState s = new ShardState(0);
        for (int tag : ef.tags()) {
            float[] r = ef.residual(tag);
            s.put(new ShardState.Entry("ef." + tag, new int[] {r.length}, r, new float[r.length], new float[r.length]));
        }
        return s;
    }

    /**
     * Puts rank {@code rank}'s residuals from the checkpoint in {@code dir} back into {@code ef}, reading that
     * rank's file alone.
     *
     * @throws CheckpointException when the checkpoint has none for this rank (written without int8
     *                             error feedback, or by another layout)
     */
    static void restoreResiduals(Path dir, int rank, ErrorFeedback ef) {
        ShardState s = Checkpoints.loadShard(dir, residualFileName(rank));
        if (s == null) {
            throw new CheckpointException("checkpoint " + dir + " has no error-feedback residuals for rank " + rank
                + " (" + residualFileName(rank)
                + "): it was written without grad-compression int8-ef or by another layout ("
                + Checkpoints.readManifest(dir).layout() + "); resume it with grad-compression none or bf16");
        }
        for (ShardState.Entry e : s.entries().values()) {
            ef.restore(Integer.parseInt(e.name().substring("ef.".length())), e.param());
        }
    }
}
