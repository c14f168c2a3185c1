package io.troupe.actors.cluster;

import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import java.nio.file.Path;

/** Rebuilds the engine's job value from a {@link JobRequest}; every node gets the same answer. */
final class JobSpecs {
    private JobSpecs() {
    }

    /** @throws IllegalArgumentException naming the bad value when the job cannot run */
    static PipelineJobSpec toSpec(JobRequest r, int threadsPerWorker) {
        GptConfig model = GptConfig.preset(r.model());
        TrainConfig train = new TrainConfig(model, r.batchSize(), r.microbatches(), r.steps(), r.lr(), r.minLr(),
            r.warmupSteps(), r.gradClip(), r.seed(), 0, 1, r.checkpointInterval(), AdamWConfig.defaults());
        Layout layout = Layout.parse(r.layout(), r.virtualStages());
        StagePartition partition = r.partition().isEmpty()
            ? StagePartition.balanced(model, layout.modelStages())
            : StagePartition.explicit(r.partition(), model, layout.modelStages());
        return new PipelineJobSpec(train, layout, r.schedule(), r.microbatches(), partition, threadsPerWorker,
            r.stepTimeoutMs());
    }

    static Corpora data(JobRequest r) {
        return r.dataPath().isEmpty() ? Corpora.builtIn() : Corpora.fromFile(Path.of(r.dataPath()));
    }
}
