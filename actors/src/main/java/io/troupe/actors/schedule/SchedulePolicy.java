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

    /**
     * Whether every rank's order of actions follows from the schedule alone (true for static
     * schedules), so that the tensor-parallel members of a stage, each with its own
     * {@link StagePolicy}, run the same actions in the same order. When false (orders chosen on
     * arrival), one member decides and the others follow ({@link FollowedPolicy}).
     */
    default boolean fixedOrder() {
        return true;
    }

    /**
     * Per-step state for a tensor-parallel member of {@code rank} that runs the actions its group's
     * leader chose (policies without a fixed order only).
     */
    default FollowedPolicy newFollower(int rank) {
        throw new UnsupportedOperationException(name() + " has a fixed order: every member follows the schedule");
    }
}
