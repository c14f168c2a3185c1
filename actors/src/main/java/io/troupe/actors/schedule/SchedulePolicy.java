package io.troupe.actors.schedule;

/**
 * A way to run a pipeline step: a static {@link Schedule} or the {@link AdaptivePolicy}. It hands out
 * a fresh {@link StagePolicy} per rank per step; the executor and the simulator run both kinds alike.
 */
public interface SchedulePolicy {

    /** Short name, e.g. {@code 1f1b} or {@code adaptive}. */
    String name();

    PipelineShape shape();

    /** Fresh per-step decision state for {@code rank}. */
    StagePolicy newStage(int rank);
}
