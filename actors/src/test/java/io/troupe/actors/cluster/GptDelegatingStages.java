package io.troupe.actors.cluster;

import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptStages;

/**
 * Test fixture: a stage-module factory that is not the built-in one, so the coordinator cannot predict its
 * snapshots, whose stages are the built-in GPT's, so a test knows what they take
 * ({@link SnapshotMemory#snapshotBytes} of the same job on the built-in factory). Tensor parallelism is not offered.
 */
public final class GptDelegatingStages implements StageModuleFactory {
    private final GptStages gpt = new GptStages();

    @Override
    public StageModule create(Stage stage) {
        return gpt.create(stage);
    }
}
