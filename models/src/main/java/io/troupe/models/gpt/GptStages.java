package io.troupe.models.gpt;

import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;

/** Builds GPT stages: blocks {@code [firstLayer, endLayer)}, embeddings on the first, head and loss on the last. */
public final class GptStages implements StageModuleFactory {

    @Override
    public StageModule create(Stage s) {
        if (!(s.model() instanceof GptConfig config)) {
            throw new IllegalArgumentException("GPT stages need a GptConfig model shape: model=" + s.model());
        }
        Gpt g = new Gpt(config, s.device(), s.rows(), s.firstLayer(), s.endLayer(), s.first(), s.last());
        try {
            g.initialize(s.seed());
            return g;
        } catch (RuntimeException e) {
            g.close();
            throw e;
        }
    }
}
