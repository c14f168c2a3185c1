package io.troupe.models.parallel.tp;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * What a tensor-parallel member contributes to the step's gradient bookkeeping. The global
 * gradient norm counts every split parameter's shard on its own member and every replicated
 * parameter once, on member 0 ({@link #normViews}); replicated parameters whose gradients are
 * partial (sequence parallelism) are summed over the group before the norm ({@link #reducePartialGradients}).
 */
public final class TensorParallelGradients {
    private TensorParallelGradients() {
    }

    /**
     * Views of {@code stage}'s gradient buffer that member {@code tpIndex} counts in the global norm,
     * consecutive counted parameters merged into one view: the whole buffer on member 0, only the
     * split parameters on the others.
     */
    public static List<Tensor> normViews(StageModule stage, int tpIndex) {
        List<Tensor> views = new ArrayList<>();
        Tensor grads = stage.grads();
        if (tpIndex == 0) {
            views.add(grads);
            return views;
        }
        List<ParamSpec> specs = stage.parameters();
        long runStart = -1;
        long runEnd = -1;
        for (int i = 0; i < specs.size(); i++) {
            ParamSpec s = specs.get(i);
            boolean counted = stage.tensorParallelPlacement(i) instanceof TensorParallelPlacement.Split;
            if (counted && runStart >= 0 && s.localOffset() == runEnd) {
                runEnd += s.numel();
            } else if (counted) {
                flush(views, grads, runStart, runEnd);
                runStart = s.localOffset();
                runEnd = runStart + s.numel();
            }
        }
        flush(views, grads, runStart, runEnd);
        return views;
    }

    private static void flush(List<Tensor> views, Tensor grads, long start, long end) {
        if (start >= 0 && end > start) {
            views.add(grads.view(start, (int) (end - start)));
        }
    }

    /** Sums over the group the gradients of replicated parameters that are partial per member. */
    public static void reducePartialGradients(StageModule stage, TensorParallelGroup group) {
        if (group.size() == 1) {
            return;
        }
        List<ParamSpec> specs = stage.parameters();
        for (int i = 0; i < specs.size(); i++) {
            TensorParallelPlacement placement = stage.tensorParallelPlacement(i);
            if (placement instanceof TensorParallelPlacement.Replicated r && r.gradientPartial()) {
                ParamSpec s = specs.get(i);
                group.allReduceSum(stage.grads().view(s.localOffset(), (int) s.numel()));
            }
        }
    }
}
