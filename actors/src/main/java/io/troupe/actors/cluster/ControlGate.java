package io.troupe.actors.cluster;

import io.troupe.runtime.transport.JobIdentity;
import java.util.EnumMap;
import java.util.Map;

/**
 * A worker's door for control messages: it holds the worker's current {@link JobIdentity} and
 * admits only messages stamped with it; everything else is refused and counted by verdict. An
 * assignment may move the worker to a newer epoch of its job or to another job, never back to an
 * older epoch. Plain class, one thread (the worker actor's).
 */
public final class ControlGate {
    private JobIdentity current = JobIdentity.NONE;
    private final Map<JobIdentity.Verdict, Long> refused = new EnumMap<>(JobIdentity.Verdict.class);

    public JobIdentity current() {
        return current;
    }

    /** A message of the current epoch: true; anything else is counted and refused. */
    public boolean admit(JobIdentity stamp) {
        JobIdentity.Verdict v = current.judge(stamp);
        if (v == JobIdentity.Verdict.CURRENT) {
            return true;
        }
        refused.merge(v, 1L, Long::sum);
        return false;
    }

    /**
     * An assignment: to a newer epoch of this job or to another job (the worker moves to it); a stale one is refused.
     */
    public boolean admitAssignment(JobIdentity stamp) {
        JobIdentity.Verdict v = current.judge(stamp);
        if (v == JobIdentity.Verdict.STALE_EPOCH || (v == JobIdentity.Verdict.CURRENT && current.isJob())) {
            refused.merge(v, 1L, Long::sum);
            return false;
        }
        current = stamp;
        return true;
    }

    /** An abort of this job at the current or a newer epoch ends the current epoch; others are refused. */
    public boolean admitAbort(JobIdentity stamp) {
        JobIdentity.Verdict v = current.judge(stamp);
        if (v == JobIdentity.Verdict.CURRENT || v == JobIdentity.Verdict.NEWER_EPOCH) {
            return true;
        }
        refused.merge(v, 1L, Long::sum);
        return false;
    }

    /** Messages refused for {@code verdict} so far. */
    public long refused(JobIdentity.Verdict verdict) {
        return refused.getOrDefault(verdict, 0L);
    }

    public long refusedTotal() {
        long sum = 0;
        for (long c : refused.values()) {
            sum += c;
        }
        return sum;
    }
}
