package io.troupe.actors.metrics;

/**
 * Why a job recovered, in a few fixed kinds (the {@code reason} tag of {@code troupe_recoveries_total}),
 * read from the coordinator's reason in {@link io.troupe.actors.api.JobEvent.Recovering}; a reason
 * worded otherwise counts as {@link #OTHER}.
 */
public enum RecoveryCause {
    /** A member hosting ranks was downed (or removed) by the split-brain resolver's decision. */
    MEMBER_DOWNED,
    /** A worker's actor left the cluster's view. */
    WORKER_LEFT,
    /** A member hosting ranks left the cluster gracefully (a rolling restart, a scale-down): a planned departure. */
    MEMBER_LEFT,
    /** A worker reported a failure (a step, validation, or its assignment). */
    WORKER_FAILED,
    /** A step phase passed its deadline. */
    DEADLINE,
    /** A checkpoint could not be committed. */
    CHECKPOINT_COMMIT,
    /** The coordinator's incarnation was lost and a new one carries the job on from its record. */
    COORDINATOR_LOST,
    /** The coordinator's node left the cluster gracefully and handed the job over to a new incarnation. */
    COORDINATOR_HANDED_OVER,
    /** Any other reason. */
    OTHER;

    /** The kind of a coordinator's recovery reason. */
    public static RecoveryCause of(String reason) {
        if (reason == null) {
            return OTHER;
        }
        if (reason.startsWith("member ") && reason.contains("downing decision")) {
            return MEMBER_DOWNED;
        }
        if (reason.startsWith("member ") && reason.contains("leaving the cluster")) {
            return MEMBER_LEFT;
        }
        if (reason.startsWith("the coordinator on ") && reason.contains("handed the job over")) {
            return COORDINATOR_HANDED_OVER;
        }
        if (reason.startsWith("worker rank ") && reason.endsWith("left the cluster")) {
            return WORKER_LEFT;
        }
        if (reason.startsWith("step ") && reason.contains("passed its deadline")) {
            return DEADLINE;
        }
        if (reason.startsWith("checkpoint of step ")) {
            return CHECKPOINT_COMMIT;
        }
        if (reason.startsWith("coordinator incarnation lost")) {
            return COORDINATOR_LOST;
        }
        if (reason.startsWith("rank ")) {
            return WORKER_FAILED;
        }
        return OTHER;
    }
}
