package io.troupe.models.train;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.optim.AdamW;
import io.troupe.runtime.tensor.Tensor;

/** Moves a stage's parameters and optimizer moments to and from the checkpoint's by-name form. */
public final class StageState {
    private StageState() {
    }

    /**
     * @throws IllegalArgumentException when {@code opt} holds a segment only
     * (gather the moments, then use the other form)
     */
    public static ShardState capture(StageModule stage, AdamW opt) {
        if (opt.stateNumel() != stage.params().numel()) {
            throw new IllegalArgumentException("optimizer holds moments of " + opt.stateNumel() + " of the stage's "
                + stage.params().numel() + " elements: gather the moments first");
        }
        return capture(stage, opt.firstMoment().toFloatArray(), opt.secondMoment().toFloatArray(), opt.stepCount());
    }

    /**
     * The stage's parameters with whole moments {@code m} and {@code v} (the stage's flat layout,
     * e.g. gathered from ZeRO segments) and the optimizer's step count.
     */
    public static ShardState capture(StageModule stage, float[] m, float[] v, long optimizerStep) {
        float[] p = stage.params().toFloatArray();
        ShardState s = new ShardState(optimizerStep);
        for (ParamSpec spec : stage.parameters()) {
            int from = (int) spec.localOffset();
            int to = (int) (spec.localOffset() + spec.numel());
            s.put(new ShardState.Entry(spec.name(), spec.shape(), java.util.Arrays.copyOfRange(p, from, to),
                java.util.Arrays.copyOfRange(m, from, to), java.util.Arrays.copyOfRange(v, from, to)));
        }
        return s;
    }

    /**
     * Restores every parameter of {@code stage} found in any of {@code shards} (by name, shapes
     * checked); a sharded optimizer ({@link AdamW#ranges}) takes its ranges of the moments.
     */
    public static void restore(StageModule stage, AdamW opt, Iterable<ShardState> shards) {
        int n = (int) stage.params().numel();
        float[] p = new float[n];
        float[] m = new float[n];
        float[] v = new float[n];
        long optStep = -1;
        for (ParamSpec spec : stage.parameters()) {
            ShardState.Entry found = null;
            for (ShardState s : shards) {
                ShardState.Entry e = s.entries().get(spec.name());
                if (e != null) {
                    found = e;
                    optStep = s.optimizerStep();
                    break;
                }
            }
            if (found == null) {
                throw new CheckpointException("checkpoint has no parameter '" + spec.name() + "'");
            }
            if (!java.util.Arrays.equals(found.shape(), spec.shape())) {
                throw new CheckpointException("parameter '" + spec.name() + "' has shape "
                    + java.util.Arrays.toString(found.shape())
                    + " in the checkpoint, model expects " + java.util.Arrays.toString(spec.shape()));
            }
            int off = (int) spec.localOffset();
            System.arraycopy(found.param(), 0, p, off, found.param().length);
            System.arraycopy(found.m(), 0, m, off, found.m().length);
            System.arraycopy(found.v(), 0, v, off, found.v().length);
        }
        copy(stage, p, stage.params());
        if (opt.stateNumel() != n) {
            // A ZeRO shard's optimizer takes its ranges of the whole moments.
            m = opt.pack(m);
            v = opt.pack(v);
        }
        copy(stage, m, opt.firstMoment());
        copy(stage, v, opt.secondMoment());
        opt.setStepCount(optStep);
    }

    private static void copy(StageModule stage, float[] src, Tensor dst) {
        stage.device().copyFromHost(src, dst);
    }
}
