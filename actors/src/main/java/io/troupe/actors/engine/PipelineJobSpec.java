package io.troupe.actors.engine;

import io.troupe.models.memory.MemoryOptions;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import io.troupe.runtime.device.DeviceKind;

/**
 * A dp × pp × tp training job: the training recipe (global batch, steps, optimizer, LR schedule), the
 * layout, the schedule ({@code gpipe|1f1b|interleaved|zb-h1|zb-h2|adaptive}), micro-batches per
 * replica, the partition of blocks into model stages, CPU threads per worker, the longest a
 * worker may wait for an input before the step fails, each worker's device, and the class name of
 * the {@link io.troupe.models.StageModuleFactory} that builds the stages ("" = GPT), and whether tp
 * members also split the residual stream by tokens (sequence parallelism; no effect at tp = 1), and
 * how ranks trade memory ({@link MemoryOptions}: ZeRO stage, recomputation, gradient compression).
 */
public record PipelineJobSpec(TrainConfig train, Layout layout, String schedule, int microbatches,
                              StagePartition partition, int threadsPerWorker, long stepTimeoutMs, DeviceKind device,
                              String moduleFactory, boolean sequenceParallel, MemoryOptions memory) {

    /** With every replica holding its whole optimizer state ({@link MemoryOptions#NONE}). */
    public PipelineJobSpec(TrainConfig train, Layout layout, String schedule, int microbatches,
                           StagePartition partition, int threadsPerWorker, long stepTimeoutMs, DeviceKind device,
                           String moduleFactory, boolean sequenceParallel) {
        this(train, layout, schedule, microbatches, partition, threadsPerWorker, stepTimeoutMs, device, moduleFactory,
            sequenceParallel, MemoryOptions.NONE);
    }

    /** Without sequence parallelism. */
    public PipelineJobSpec(TrainConfig train, Layout layout, String schedule, int microbatches,
                           StagePartition partition, int threadsPerWorker, long stepTimeoutMs, DeviceKind device,
                           String moduleFactory) {
        this(train, layout, schedule, microbatches, partition, threadsPerWorker, stepTimeoutMs, device, moduleFactory,
            false);
    }

    /** A GPT job on the CPU backend. */
    public PipelineJobSpec(TrainConfig train, Layout layout, String schedule, int microbatches,
                           StagePartition partition, int threadsPerWorker, long stepTimeoutMs) {
        this(train, layout, schedule, microbatches, partition, threadsPerWorker, stepTimeoutMs, DeviceKind.CPU, "");
    }

    public PipelineJobSpec {
        java.util.Objects.requireNonNull(moduleFactory, "moduleFactory");
        java.util.Objects.requireNonNull(memory, "memory");
        if (memory.recompute() != io.troupe.models.memory.Recompute.NONE && !moduleFactory.isEmpty()) {
            throw new IllegalArgumentException("recompute=" + memory.recompute().optionName()
                + " needs GPT stages; this job's stages come from " + moduleFactory);
        }
        // Refuses, before any work, a factory that cannot split its stages or a model tp does not divide.
        StageModuleFactories.named(moduleFactory).checkTensorParallel(train.model(), layout.tp());
        if (microbatches < 1) {
            throw new IllegalArgumentException("micro-batches must be >= 1: microbatches=" + microbatches);
        }
        int replicasTimesMicro = layout.dp() * microbatches;
        if (train.batchSize() % replicasTimesMicro != 0) {
            throw new IllegalArgumentException("dp x micro-batches must divide the global batch: batch_size="
                + train.batchSize() + ", dp=" + layout.dp() + ", microbatches=" + microbatches);
        }
        if (partition.stages() != layout.modelStages()) {
            throw new IllegalArgumentException("partition has " + partition.stages() + " stages, layout " + layout
                + " needs " + layout.modelStages());
        }
        if (!java.util.Set.of("gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2", "adaptive").contains(schedule)) {
            throw new IllegalArgumentException("unknown schedule '" + schedule
                + "': expected gpipe, 1f1b, interleaved, zb-h1, zb-h2 or adaptive");
        }
        if (schedule.equals("interleaved") == (layout.virtualStages() == 1)) {
            throw new IllegalArgumentException(schedule.equals("interleaved")
                ? "interleaved needs virtual stages v >= 2: v=" + layout.virtualStages()
                : "virtual stages v=" + layout.virtualStages() + " need the interleaved schedule, got " + schedule);
        }
        if (threadsPerWorker < 1) {
            throw new IllegalArgumentException("threads per worker must be >= 1: threads=" + threadsPerWorker);
        }
        if (stepTimeoutMs < 1) {
            throw new IllegalArgumentException("step timeout must be >= 1 ms: stepTimeoutMs=" + stepTimeoutMs);
        }
        java.util.Objects.requireNonNull(device, "device");
        java.util.Objects.requireNonNull(moduleFactory, "moduleFactory");
        if (sequenceParallel && layout.tp() > 1
            && (long) train.batchSize() / (layout.dp() * microbatches) * train.model().seqLen() % layout.tp() != 0) {
            throw new IllegalArgumentException("sequence parallelism splits a micro-batch's tokens by tp: tokens="
                + (long) train.batchSize() / (layout.dp() * microbatches) * train.model().seqLen() + ", tp="
                    + layout.tp());
        }
        if (!schedule.equals("adaptive")) {
            // Building the static schedule checks its own constraints (e.g. interleaved: m a multiple of p).
            io.troupe.actors.schedule.Schedules.byName(schedule, layout.pp(), layout.virtualStages(), microbatches);
        }
    }

    /** Rows of one micro-batch: global batch / (dp × m). */
    /** This job with {@code options} for memory. */
    public PipelineJobSpec withMemory(MemoryOptions options) {
        return new PipelineJobSpec(train, layout, schedule, microbatches, partition, threadsPerWorker, stepTimeoutMs,
            device, moduleFactory, sequenceParallel, options);
    }

    /** Whether the dp replicas split optimizer state (ZeRO stage 1 or 2 with dp > 1). */
    public boolean zeroSharded() {
        return memory.zero() > 0 && layout.dp() > 1;
    }

    public int microBatchRows() {
        return train.batchSize() / (layout.dp() * microbatches);
    }
}
