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
        if (window.isZero()) {
            return faults.size();
        }
        long from = nowMs - window.toMillis();
        int counted = 0;
        boolean stuck = true; // still in the newest faults, between which the job made no progress
        for (int i = faults.size() - 1; i >= 0; i--) {
            JobRecord.Fault f = faults.get(i);
            if (stuck && i < faults.size() - 1) {
                JobRecord.Fault later = faults.get(i + 1);
                stuck = f.step() >= 0 && later.step() >= 0 && later.step() <= f.step();
            }
            if (stuck || f.atMs() > from) {
                counted++;
            }
        }
        return counted;
    }
}
