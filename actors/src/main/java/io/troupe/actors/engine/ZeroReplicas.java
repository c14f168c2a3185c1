package io.troupe.actors.engine;

import io.troupe.collectives.Communicator;
import io.troupe.models.StageModule;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.optim.AdamW;
import io.troupe.models.parallel.Layout;
import io.troupe.models.train.StageState;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;
import java.util.function.IntPredicate;

/**
 * ZeRO stage 1/2 across the data-parallel replicas of one process (the in-process engine): replica
 * {@code k} owns segment {@code k} of every model stage's flat buffer (the collectives'
 * reduce-scatter segment, {@link Communicator#segmentStart}). The reduce-scatter adds the replicas'
 * gradients of a segment in replica order, the same arithmetic as the replicas' all-reduce, into
 * the owner's segment; the all-gather copies each owner's updated parameter segment to the others.
 * A checkpoint gathers the moments of every segment, so it holds whole tensors by name.
 *
 * <p>Threading: between steps, on the engine's thread (no worker runs).
 */
final class ZeroReplicas {
    private ZeroReplicas() {
    }

    /** Model stage {@code g} of replica {@code d}. */
    @FunctionalInterface
    interface Stages {
        StageModule stage(int d, int g);
    }

    /** The segment optimizer of model stage {@code g} in replica {@code d}. */
    @FunctionalInterface
    interface Optimizers {
        AdamW optimizer(int d, int g);
    }

    /**
     * Leaves in replica k's segment k of every model stage {@code reduced} accepts the sum over replicas (added in
     * replica order); the other stages are left as they are.
     */
    static void reduceScatter(Stages stages, Layout layout, IntPredicate reduced) {
        int dp = layout.dp();
        for (int g = 0; g < layout.modelStages(); g++) {
            if (!reduced.test(g)) {
                continue;
            }
            StageModule root = stages.stage(0, g);
            long numel = root.grads().numel();
            for (int k = 0; k < dp; k++) {
                long s = Communicator.segmentStart(numel, dp, k);
                int n = (int) (Communicator.segmentStart(numel, dp, k + 1) - s);
                if (root.device().kind() != DeviceKind.CPU) {
                    float[] sum = root.grads().view(s, n).toFloatArray();
                    for (int d = 1; d < dp; d++) {
                        float[] x = stages.stage(d, g).grads().view(s, n).toFloatArray();
                        for (int i = 0; i < n; i++) {
                            sum[i] += x[i];
                        }
                    }
                    StageModule owner = stages.stage(k, g);
                    owner.device().copyFromHost(sum, owner.grads().view(s, n));
                    continue;
                }
                // Replica 0's copy of a segment it does not own is free to hold the running sum.
                Tensor acc = root.grads().view(s, n);
                for (int d = 1; d < dp; d++) {
                    root.device().axpy(1f, stages.stage(d, g).grads().view(s, n), acc);
                }
                if (k != 0) {
                    root.device().copy(acc, stages.stage(k, g).grads().view(s, n));
                }
            }
        }
    }

    /** Copies each owner's parameter segment to every other replica. */
    static void allGatherParameters(Stages stages, Layout layout) {
        int dp = layout.dp();
        for (int g = 0; g < layout.modelStages(); g++) {
            long numel = stages.stage(0, g).params().numel();
            for (int k = 0; k < dp; k++) {
                long s = Communicator.segmentStart(numel, dp, k);
                int n = (int) (Communicator.segmentStart(numel, dp, k + 1) - s);
                StageModule owner = stages.stage(k, g);
                Tensor src = owner.params().view(s, n);
                float[] host = owner.device().kind() == DeviceKind.CPU ? null : src.toFloatArray();
                for (int d = 0; d < dp; d++) {
                    if (d == k) {
                        continue;
                    }
                    StageModule other = stages.stage(d, g);
                    if (host == null) {
                        owner.device().copy(src, other.params().view(s, n));
                    } else {
                        other.device().copyFromHost(host, other.params().view(s, n));
                    }
                }
            }
        }
    }

    /** Model stage {@code g} by name with whole moments, gathered from every replica's segment. */
    static ShardState capture(Stages stages, Optimizers optimizers, Layout layout, int g) {
        StageModule root = stages.stage(0, g);
        int numel = (int) root.params().numel();
        float[] m = new float[numel];
        float[] v = new float[numel];
        for (int k = 0; k < layout.dp(); k++) {
            AdamW opt = optimizers.optimizer(k, g);
            opt.unpack(opt.firstMoment().toFloatArray(), m);
            opt.unpack(opt.secondMoment().toFloatArray(), v);
        }
        return StageState.capture(root, m, v, optimizers.optimizer(0, g).stepCount());
    }
}
