package io.troupe.actors.cluster;

import java.time.Duration;
import java.util.List;

/**
 * Which of a job's faults count against {@code troupe.recovery.max-restarts}: a supervisor's restart intensity, at
 * most that many restarts within {@code restart-window}, so a long job survives faults spread over its life while a
 * job that keeps failing still ends.
 *
 * <p>A fault counts when it came within the window before now, or when the job has not trained past where it found
 * the job since: the newest fault and every fault before it, back to the first one after which the next fault found
 * the job further on (a higher committed step). That keeps a fault that comes back at the same step after every
 * restore (a bad batch, a step that runs out of memory) from restarting the job for ever when each restore takes
 * longer than the window. A fault of a record that does not carry its step counts by its time alone.
 *
 * <p>A planned departure (a member that left the cluster gracefully: a rolling restart, a scale-down) is an
 * operator's act, not a fault: it never counts by its time, so a rolling restart of any number of nodes fits the
 * default budget. It counts only when a later restart found the job where the departure had (no step trained after
 * it), so nodes stopped again and again before the job can train still end it.
 */
final class RestartBudget {
    private RestartBudget() {
    }

    /**
     * The faults of {@code faults} (oldest first) that count at {@code nowMs}.
     *
     * @param window {@link Duration#ZERO} for the whole job: every fault counts
     */
    static int counted(List<JobRecord.Fault> faults, Duration window, long nowMs) {
        long from = window.isZero() ? Long.MIN_VALUE : nowMs - window.toMillis();
        int counted = 0;
        boolean stuck = true; // still in the newest entries, between which the job made no progress
        for (int i = faults.size() - 1; i >= 0; i--) {
            JobRecord.Fault f = faults.get(i);
            boolean newest = i == faults.size() - 1;
            if (stuck && !newest) {
                JobRecord.Fault later = faults.get(i + 1);
                stuck = f.step() >= 0 && later.step() >= 0 && later.step() <= f.step();
            }
            if (f.planned() ? stuck && !newest : stuck || f.atMs() > from) {
                counted++;
            }
        }
        return counted;
    }
}
