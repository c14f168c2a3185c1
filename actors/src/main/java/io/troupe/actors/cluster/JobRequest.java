package io.troupe.actors.cluster;

/**
 * A training job as it travels from the submitter to the coordinator and from the coordinator to
 * the workers: plain values only, so every node rebuilds the same job from it.
 *
 * @param model     preset name (tiny, small, big, medium)
 * @param layout    {@code DPxPPxTP}
 * @param partition blocks per model stage ("" = balanced)
 * @param dataPath  training text file ("" = the built-in corpus); must exist on every node
 */
public record JobRequest(String model, String layout, int virtualStages, String schedule, int microbatches,
                         int batchSize, int steps, float lr, float minLr, int warmupSteps, float gradClip, long seed,
                         String partition, String dataPath, int checkpointInterval, String checkpointDir,
                         long stepTimeoutMs) implements CrossNodeMessage {
}
