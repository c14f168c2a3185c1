package io.troupe.actors.cluster;

import io.troupe.models.data.DataFingerprint;

/**
 * A training job as it travels from the submitter to the coordinator and from the coordinator to
 * the workers: plain values only, so every node rebuilds the same job from it. Build one with
 * {@code TrainingJob.builder()}, which fills in the defaults and validates.
 *
 * @param model     preset name (tiny, small, big, medium)
 * @param layout    {@code DPxPPxTP}
 * @param partition blocks per model stage ("" = balanced)
 * @param dataPath  training text file ("" = the built-in corpus); must exist on every node
 * @param evalInterval steps between validation passes (0: only after the last step)
 * @param evalBatches  validation batches per pass
 * @param bucketBytes  data-parallel gradient bucket size in bytes
 * @param device       {@code cpu}, {@code cuda} or {@code auto}, for every worker
 * @param moduleFactory class name of the {@link io.troupe.models.StageModuleFactory} ("" = GPT); on every node's
 *                      class path
 * @param zero            ZeRO stage 0, 1 or 2 over the data-parallel group
 * @param recompute       activation recomputation: none, selective or full
 * @param gradCompression the data-parallel gradient wire format: none, bf16 or int8-ef
 * @param sequenceParallel  under tp > 1, also split the residual stream's tokens over the tp group
 * @param traceFirst      first step (1-based) whose timeline the submitter gets; 0 with traceLast 0: the last step
 * @param traceLast       last traced step (1-based, inclusive)
 * @param dataFingerprint the data as its submitter read it ({@link DataFingerprint#token()}), or "" when the submitter
 *                        did not read it: every rank must read the same bytes at {@code dataPath}, and these when
 *                        given, or the job fails before any step
 */
public record JobRequest(String model, String layout, int virtualStages, String schedule, int microbatches,
                         int batchSize, int steps, float lr, float minLr, int warmupSteps, float gradClip, long seed,
                         String partition, String dataPath, int checkpointInterval, String checkpointDir,
                         long stepTimeoutMs, int evalInterval, int evalBatches, long bucketBytes, String device,
                         String moduleFactory, int zero, String recompute, String gradCompression,
                         boolean sequenceParallel, long traceFirst, long traceLast, String dataFingerprint)
    implements CrossNodeMessage {

    public JobRequest {
        if (!dataFingerprint.isEmpty()) {
            DataFingerprint.fromToken(dataPath, dataFingerprint); // refuses a malformed one by its text
        }
        if (traceFirst != 0 || traceLast != 0) {
            new io.troupe.actors.trace.TraceWindow(traceFirst, traceLast); // refuses a bad window by its numbers
            if (traceLast > steps) {
                throw new IllegalArgumentException("trace window past the last step: trace-steps=" + traceFirst + ":"
                    + traceLast + ", steps=" + steps);
            }
        }
    }

    /** A job whose submitter did not read its data. */
    public JobRequest(String model, String layout, int virtualStages, String schedule, int microbatches, int batchSize,
                      int steps, float lr, float minLr, int warmupSteps, float gradClip, long seed, String partition,
                      String dataPath, int checkpointInterval, String checkpointDir, long stepTimeoutMs,
                      int evalInterval, int evalBatches, long bucketBytes, String device, String moduleFactory,
                      int zero, String recompute, String gradCompression, boolean sequenceParallel, long traceFirst,
                      long traceLast) {
        this(model, layout, virtualStages, schedule, microbatches, batchSize, steps, lr, minLr, warmupSteps, gradClip,
            seed, partition, dataPath, checkpointInterval, checkpointDir, stepTimeoutMs, evalInterval, evalBatches,
            bucketBytes, device, moduleFactory, zero, recompute, gradCompression, sequenceParallel, traceFirst,
            traceLast, "");
    }

    /** A job without sequence parallelism tracing its last step. */
    public JobRequest(String model, String layout, int virtualStages, String schedule, int microbatches, int batchSize,
                      int steps, float lr, float minLr, int warmupSteps, float gradClip, long seed, String partition,
                      String dataPath, int checkpointInterval, String checkpointDir, long stepTimeoutMs,
                      int evalInterval, int evalBatches, long bucketBytes, String device, String moduleFactory,
                      int zero, String recompute, String gradCompression, boolean sequenceParallel) {
        this(model, layout, virtualStages, schedule, microbatches, batchSize, steps, lr, minLr, warmupSteps, gradClip,
            seed, partition, dataPath, checkpointInterval, checkpointDir, stepTimeoutMs, evalInterval, evalBatches,
            bucketBytes, device, moduleFactory, zero, recompute, gradCompression, sequenceParallel, 0, 0);
    }

    /** The traced steps as a window over 1-based steps: the one given, or the last step. */
    public io.troupe.actors.trace.TraceWindow traceWindow() {
        return traceFirst == 0 ? io.troupe.actors.trace.TraceWindow.lastOf(steps)
            : new io.troupe.actors.trace.TraceWindow(traceFirst, traceLast);
    }

    /** A job with the memory options' defaults (zero 0, no recomputation, float32 gradients). */
    public JobRequest(String model, String layout, int virtualStages, String schedule, int microbatches, int batchSize,
                      int steps, float lr, float minLr, int warmupSteps, float gradClip, long seed, String partition,
                      String dataPath, int checkpointInterval, String checkpointDir, long stepTimeoutMs,
                      int evalInterval, int evalBatches, long bucketBytes, String device, String moduleFactory) {
        this(model, layout, virtualStages, schedule, microbatches, batchSize, steps, lr, minLr, warmupSteps, gradClip,
            seed, partition, dataPath, checkpointInterval, checkpointDir, stepTimeoutMs, evalInterval, evalBatches,
            bucketBytes, device, moduleFactory, 0, "none", "none", false);
    }

    /** A job without sequence parallelism. */
    public JobRequest(String model, String layout, int virtualStages, String schedule, int microbatches, int batchSize,
                      int steps, float lr, float minLr, int warmupSteps, float gradClip, long seed, String partition,
                      String dataPath, int checkpointInterval, String checkpointDir, long stepTimeoutMs,
                      int evalInterval, int evalBatches, long bucketBytes, String device, String moduleFactory,
                      int zero, String recompute, String gradCompression) {
        this(model, layout, virtualStages, schedule, microbatches, batchSize, steps, lr, minLr, warmupSteps, gradClip,
            seed, partition, dataPath, checkpointInterval, checkpointDir, stepTimeoutMs, evalInterval, evalBatches,
            bucketBytes, device, moduleFactory, zero, recompute, gradCompression, false);
    }

    /** The same job on another layout with {@code newMicrobatches} micro-batches per replica (a re-plan). */
    public JobRequest withLayout(String newLayout, int newMicrobatches) {
        return new JobRequest(model, newLayout, virtualStages, schedule, newMicrobatches, batchSize, steps, lr, minLr,
            warmupSteps, gradClip, seed, partition, dataPath, checkpointInterval, checkpointDir, stepTimeoutMs,
            evalInterval, evalBatches, bucketBytes, device, moduleFactory, zero, recompute, gradCompression,
            sequenceParallel, traceFirst, traceLast, dataFingerprint);
    }

    /** The same job committing a checkpoint every {@code interval} steps under {@code dir}. */
    public JobRequest withCheckpoints(int interval, String dir) {
        return new JobRequest(model, layout, virtualStages, schedule, microbatches, batchSize, steps, lr, minLr,
            warmupSteps, gradClip, seed, partition, dataPath, interval, dir, stepTimeoutMs, evalInterval, evalBatches,
            bucketBytes, device, moduleFactory, zero, recompute, gradCompression, sequenceParallel,
            traceFirst, traceLast, dataFingerprint);
    }

    /** The data's fingerprint as the submitter computed it, or null when it did not. */
    public DataFingerprint submittedData() {
        return dataFingerprint.isEmpty() ? null : DataFingerprint.fromToken(dataPath, dataFingerprint);
    }
}
