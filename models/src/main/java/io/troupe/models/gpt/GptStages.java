package io.troupe.models.gpt;

import io.troupe.models.ModelShape;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.parallel.tp.TensorParallelGroup;

/**
 * Builds GPT stages: blocks {@code [firstLayer, endLayer)}, embeddings on the first, head and loss on
 * the last; split by tensor parallelism when built as a member of a tp group ({@link GptPlacements}).
 */
public final class GptStages implements StageModuleFactory {

    @Override
    public StageModule create(Stage s) {
        return create(s, TensorParallelGroup.single(), false);
    }

    @Override
    public boolean supportsTensorParallel() {
        return true;
    }

    @Override
    public void checkTensorParallel(ModelShape model, int tp) {
        GptPlacements.check(config(model), tp);
    }

    @Override
    public StageModule create(Stage s, TensorParallelGroup group, boolean sequenceParallel) {
        Gpt g = new Gpt(config(s.model()), s.device(), group, sequenceParallel, s.rows(), s.firstLayer(), s.endLayer(),
            s.first(), s.last());
        try {
            g.initialize(s.seed());
            return g;
        } catch (RuntimeException e) {
            g.close();
            throw e;
        }
    }

    private static GptConfig config(ModelShape model) {
        if (!(model instanceof GptConfig config)) {
            throw new IllegalArgumentException("GPT stages need a GptConfig model shape: model=" + model);
        }
        return config;
    }
}
