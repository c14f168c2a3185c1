package io.troupe.actors.cluster;

import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.actors.engine.StageModuleFactories;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import io.troupe.runtime.device.DeviceKind;
import java.nio.file.Path;

/** Rebuilds the engine's job value from a {@link JobRequest}; every node gets the same answer. */
public final class JobSpecs {
    private JobSpecs() {
    }

    /** @throws IllegalArgumentException naming the bad value when the job cannot run */
    public static PipelineJobSpec toSpec(JobRequest r, int threadsPerWorker) {
        GptConfig model = GptConfig.preset(r.model());
        TrainConfig train = new TrainConfig(model, r.batchSize(), r.microbatches(), r.steps(), r.lr(), r.minLr(),
            r.warmupSteps(), r.gradClip(), r.seed(), r.evalInterval(), r.evalBatches(), r.checkpointInterval(),
            AdamWConfig.defaults());
        if (r.bucketBytes() < 4) {
            throw new IllegalArgumentException("bucket size must hold a float: bucket_bytes=" + r.bucketBytes());
        }
        Layout layout = Layout.parse(r.layout(), r.virtualStages());
        StagePartition partition = r.partition().isEmpty()
            ? StagePartition.balanced(model, layout.modelStages())
            : StagePartition.explicit(r.partition(), model, layout.modelStages());
        StageModuleFactories.named(r.moduleFactory()); // refuses a missing or unusable class by name
        DeviceKind device = DeviceKind.parse(r.device());
        return new PipelineJobSpec(train, layout, r.schedule(), r.microbatches(), partition, threadsPerWorker,
            r.stepTimeoutMs(), device, r.moduleFactory(), r.sequenceParallel())
            .withMemory(io.troupe.models.memory.MemoryOptions.parse(r.zero(), r.recompute(), r.gradCompression()));
    }

    public static Corpora data(JobRequest r) {
        return r.dataPath().isEmpty() ? Corpora.builtIn() : Corpora.fromFile(Path.of(r.dataPath()));
    }
}
