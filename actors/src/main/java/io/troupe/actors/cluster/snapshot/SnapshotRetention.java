package io.troupe.actors.cluster.snapshot;

import io.troupe.runtime.transport.JobIdentity;

/**
 * Which snapshots a worker's slots must keep ({@link SnapshotExchange}), in its own store and in the copies it
 * keeps of other ranks.
 *
 * <p>A rank's own store keeps the snapshot of the last committed step (the one a restore takes) and every later
 * one of its epoch (each may still be committed); a capture waits for a commit
 * ({@link SnapshotExchange#committed}) rather than overwrite one of them. With two slots, the capture after step
 * {@code s + 1} waits until step {@code s} is committed: one step of compute hides the commit's round trip, and a
 * rank never runs more than that ahead of the commits. Its buddy keeps the copies by the same rule (a copy of step
 * {@code s} tells it that {@code s - 1} is committed), so a copy never overwrites the copy of the committed step,
 * also when an earlier epoch ran ahead.
 */
final class SnapshotRetention {
    private SnapshotRetention() {
    }

    /**
     * Whether {@code held} must be kept by rank {@code rank} in epoch {@code job} after commit {@code committed}
     * (-1: unknown, then every snapshot of the rank's job is kept): it is the rank's snapshot of the last committed
     * step (of any epoch), or a later one of this epoch.
     */
    static boolean live(JobIdentity job, int rank, long committed, SnapshotBuffer held) {
        return live(job.jobId(), job.epoch(), rank, committed, held);
    }

    private static boolean live(int jobId, long epoch, int rank, long committed, SnapshotBuffer held) {
        if (held.jobId() != jobId || held.rank() != rank) {
            return false;
        }
        return committed < 0 || held.step() == committed || (held.step() > committed && held.epoch() == epoch);
    }

    /**
     * The slot of {@code store} (the copies of rank {@code rank}) that the copy of its snapshot of
     * {@code step}, taken in epoch {@code epoch} of job {@code jobId}, is written into: by the own
     * store's retention rule, so the copy of the committed step is kept. The committed step is at
     * least {@code step - 1} (a rank captures step {@code s} only once {@code s - 1} is committed) and
     * at least {@code told} (the last commit this worker was told of in that job, -1: none).
     *
     * @throws SnapshotException when the slot stays pinned by a send past {@code timeoutNs}
     */
    static SnapshotBuffer beginCopy(SnapshotStore store, long lengthBytes, int jobId, long epoch, int rank, long step,
                                    long told, long timeoutNs) {
        long committed = Math.max(step - 1, told);
        return store.beginWriteCopy(lengthBytes, timeoutNs, held -> live(jobId, epoch, rank, committed, held));
    }
}
