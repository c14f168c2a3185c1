package io.troupe.actors.cluster;

/** What the coordinator tells a job's submitter. */
public sealed interface JobEvent extends CrossNodeMessage {

    /** The layout is assigned and every worker is ready. */
    record Started(long epoch, int worldSize, String assignment) implements JobEvent {
    }

    /** A step is committed (every rank applied its update). */
    record StepCompleted(long step, long totalSteps, double loss, double gradNorm, float lr, double stepMs,
                         double tokensPerSec, double bubble) implements JobEvent {
    }

    /** Every step ran. */
    record Finished(long steps, double finalLoss) implements JobEvent {
    }

    /** The job ended early; {@code lastCommittedStep} is the last step every rank applied. */
    record Failed(String reason, long lastCommittedStep, long epoch) implements JobEvent {
    }
}
