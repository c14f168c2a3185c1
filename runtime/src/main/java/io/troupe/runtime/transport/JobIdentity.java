package io.troupe.runtime.transport;

import java.security.SecureRandom;

/**
 * Which job, and which incarnation of its plan, a message or a frame belongs to: the job's id (a
 * random non-zero 32-bit nonce drawn once when the job is submitted, kept across restarts and
 * coordinator incarnations) and the epoch (raised at every re-plan, never lowered). Every control
 * message and every data-plane frame carries both; a receiver accepts only its current identity and
 * counts the rest by {@link Verdict}.
 *
 * <p>Epochs order the plans of one job: a newer epoch replaces an older one (a worker given a new
 * assignment), an older one is stale. Ids are not ordered: a different id is another job.
 *
 * @param jobId the job's nonce; {@link #NO_JOB} (0) only in {@link #NONE}
 * @param epoch the plan's epoch, {@code >= 0} for a job; -1 in {@link #NONE}
 */
public record JobIdentity(int jobId, long epoch) {
    /** The id of no job: a worker with no assignment, a frame written by a tool. */
    public static final int NO_JOB = 0;
    /** No job assigned: refuses every job's messages except an assignment. */
    public static final JobIdentity NONE = new JobIdentity(NO_JOB, -1);

    private static final SecureRandom RANDOM = new SecureRandom();

    public JobIdentity {
        if (jobId == NO_JOB ? epoch != -1 : epoch < 0) {
            throw new IllegalArgumentException("a job's epoch must be >= 0 and no job's -1: jobId=" + hex(jobId)
                + ", epoch=" + epoch);
        }
    }

    /** A new job at {@code epoch}, with a fresh random id. */
    public static JobIdentity newJob(long epoch) {
        int id;
        do {
            id = RANDOM.nextInt();
        } while (id == NO_JOB);
        return new JobIdentity(id, epoch);
    }

    /** The same job at the next epoch. */
    public JobIdentity nextEpoch() {
        return atEpoch(epoch + 1);
    }

    /** The same job at {@code newEpoch}, which must not be older than this one's. */
    public JobIdentity atEpoch(long newEpoch) {
        if (newEpoch < epoch) {
            throw new IllegalArgumentException("epochs never go back: " + this + " -> epoch " + newEpoch);
        }
        return new JobIdentity(jobId, newEpoch);
    }

    /** How a receiver holding this identity judges something stamped {@code (otherJobId, otherEpoch)}. */
    public Verdict judge(int otherJobId, long otherEpoch) {
        if (otherJobId != jobId) {
            return Verdict.OTHER_JOB;
        }
        if (otherEpoch < epoch) {
            return Verdict.STALE_EPOCH;
        }
        return otherEpoch == epoch ? Verdict.CURRENT : Verdict.NEWER_EPOCH;
    }

    /** {@link #judge(int, long)} of another identity. */
    public Verdict judge(JobIdentity other) {
        return judge(other.jobId, other.epoch);
    }

    public boolean isJob() {
        return jobId != NO_JOB;
    }

    /** The id as 8 hex digits, how logs, the job record and errors print it. */
    public String idHex() {
        return hex(jobId);
    }

    /** Parses {@link #idHex()}. */
    public static int parseId(String hex) {
        return Integer.parseUnsignedInt(hex, 16);
    }

    @Override
    public String toString() {
        return isJob() ? "job " + hex(jobId) + " epoch " + epoch : "no job";
    }

    private static String hex(int id) {
        return String.format("%08x", id);
    }

    /** The outcome of {@link #judge}. */
    public enum Verdict {
        /** Same job, same epoch: accept. */
        CURRENT,
        /** Same job, a later epoch: only an assignment may carry one (it re-plans the receiver). */
        NEWER_EPOCH,
        /** Same job, an earlier epoch: refused and counted. */
        STALE_EPOCH,
        /** Another job's id: refused and counted. */
        OTHER_JOB
    }
}
