package io.troupe.actors.engine;

import io.troupe.models.StageModule;
import io.troupe.runtime.device.DeviceKind;
import java.util.List;

/**
 * Gradient reduction over the data-parallel replicas of the in-process engine: the plain sum of
 * each (model stage, tp member)'s gradients in replica order, given back to every replica (through
 * the device on CPU, through host arrays for GPU workers), and under ZeRO 2 the wiring of each
 * stage's {@link ZeroGradientSlices} to its replicas' gradient arenas and weight-gradient passes.
 * Workers are indexed [dp_i][pp_i][tp_i], as {@link LocalPipelineEngine} holds them.
 */
final class ReplicaGradients {
    private ReplicaGradients() {
    }

    /**
     * ZeRO 2: every stage keeps its gradients in an arena and its owned slice packed; each
     * replica's weight-gradient passes feed the stage's {@link ZeroGradientSlices} (added to
     * {@code gradientSlices}, its model stage marked in {@code slicedStages}). A stage whose
     * module keeps its whole gradient buffer is reduce-scattered whole, as under zero 1, whatever
     * the other stages do.
     */
    static void shard(PipelineJobSpec spec, StageWorker[][][] workers, List<ZeroGradientSlices> gradientSlices,
        boolean[] slicedStages) {
        int dp = spec.layout().dp();
        int pp = spec.layout().pp();
        io.troupe.models.memory.GradientArena[][][] arenas = new io.troupe.models.memory.GradientArena[dp][pp][];
        for (int d = 0; d < dp; d++) {
            for (int p = 0; p < pp; p++) {
                arenas[d][p] = workers[d][p][0].shardGradients(
                    ZeroGradientSlices.bucketElements(workers[d][p][0].chunk(0).params().numel(), dp));
            }
        }
        for (int g = 0; g < spec.layout().modelStages(); g++) {
            int p = g % pp;
            int v = g / pp;
            if (arenas[0][p][v] == null) {
                continue;
            }
            StageModule[] stages = new StageModule[dp];
            io.troupe.runtime.tensor.Tensor[] owned = new io.troupe.runtime.tensor.Tensor[dp];
            for (int d = 0; d < dp; d++) {
                stages[d] = workers[d][p][0].chunk(v);
                owned[d] = workers[d][p][0].ownedGradients(v);
            }
            ZeroGradientSlices slices = new ZeroGradientSlices(stages, owned, arenas[0][p][v], spec.stepTimeoutMs());
            for (int d = 0; d < dp; d++) {
                workers[d][p][0].onEveryWeightGradient(v, slices.hook(d));
            }
            gradientSlices.add(slices);
            slicedStages[g] = true;
        }
    }

    /** Sums each model stage's gradients over replicas in replica order and gives every replica the sum. */
    static void sum(PipelineJobSpec spec, StageWorker[][][] workers) {
        int dp = spec.layout().dp();
        if (dp == 1) {
            return;
        }
        for (int g = 0; g < spec.layout().modelStages(); g++) {
            for (int t = 0; t < spec.layout().tp(); t++) {
                StageModule root = stage(spec, workers, 0, g, t);
                if (root.device().kind() != DeviceKind.CPU) {
                    sumThroughHost(spec, workers, g, t);
                    continue;
                }
                for (int d = 1; d < dp; d++) {
                    root.device().axpy(1f, stage(spec, workers, d, g, t).grads(), root.grads());
                }
                for (int d = 1; d < dp; d++) {
                    root.device().copy(root.grads(), stage(spec, workers, d, g, t).grads());
                }
            }
        }
    }

    /**
     * The same sum, in the same order, for workers on GPUs (each its own device, whose ops take only
     * their own tensors): through host arrays.
     */
    private static void sumThroughHost(PipelineJobSpec spec, StageWorker[][][] workers, int g, int t) {
        float[] sum = stage(spec, workers, 0, g, t).grads().toFloatArray();
        for (int d = 1; d < spec.layout().dp(); d++) {
            float[] x = stage(spec, workers, d, g, t).grads().toFloatArray();
            for (int i = 0; i < sum.length; i++) {
                sum[i] += x[i];
            }
        }
        for (int d = 0; d < spec.layout().dp(); d++) {
            stage(spec, workers, d, g, t).device().copyFromHost(sum, stage(spec, workers, d, g, t).grads());
        }
    }

    /** Tensor-parallel member {@code t} of model stage {@code g} in replica {@code d}. */
    private static StageModule stage(PipelineJobSpec spec, StageWorker[][][] workers, int d, int g, int t) {
        int pp = spec.layout().pp();
        return workers[d][g % pp][t].chunk(g / pp);
    }
}
