package io.troupe.actors.api;

import io.troupe.actors.cluster.CrossNodeMessage;
import io.troupe.actors.cluster.WorkerTrace;
import io.troupe.actors.trace.Timeline;
import io.troupe.actors.trace.TimelineTrack;
import java.util.ArrayList;
import java.util.List;

/** What the coordinator tells a job's submitter. */
public sealed interface JobEvent extends CrossNodeMessage {

    /**
     * The coordinator took the submission: job {@code jobId} (8 hex digits, as {@link Started#jobId()}) at epoch
     * {@code epoch}; {@link Started} follows once its workers are ready. The submitter sends its submission again
     * every second until the job has started (an event other than this one), so a lost message, or a job lost with
     * its coordinator before any worker held it, does not leave it waiting for nothing; each repeat is answered with
     * {@code repeat} true and changes nothing: the job's events go where the first submission's went, and a repeat
     * of a submission already answered with its end (the job finished, failed or was refused) gets that end again
     * instead. A submitter's listener passes on the first {@code Accepted} only.
     */
    record Accepted(String jobId, long epoch, boolean repeat) implements JobEvent {
    }

    /**
     * The layout is assigned and every worker is ready. {@code jobId} is the job's id as 8 hex digits, as its record
     * and the coordinator's log print it ({@code JobIdentity.idHex}), the same in every epoch. {@code snapshots}
     * says whether the epoch keeps in-memory snapshots: {@code "on"}, or {@code "off: "} and why (configured off,
     * or a node whose direct memory cannot hold its snapshot slots: the node, the bytes, its limit and the JVM
     * flag).
     */
    record Started(String jobId, long epoch, int worldSize, String assignment, String snapshots) implements JobEvent {
        /** Whether the epoch keeps in-memory snapshots. */
        public boolean snapshotsOn() {
            return "on".equals(snapshots);
        }
    }

    /**
     * A step is committed (every rank applied its update). {@code valLoss} is NaN unless validation
     * was due; {@code allReduceMs} is the longest any rank waited for its data-parallel all-reduce
     * after its backward (the part compute did not hide); {@code memPeakMib} the most bytes any rank
     * held after the step (its {@code RankMemory} total); {@code gradBytesSent} the most bytes any
     * rank sent for data-parallel gradients (and ZeRO's parameter all-gather) in the step.
     */
    record StepCompleted(long step, long totalSteps, double loss, double valLoss, double gradNorm, float lr,
                         double stepMs, double tokensPerSec, double bubble, double allReduceMs, double memPeakMib,
                         long gradBytesSent) implements JobEvent {
    }

    /**
     * The timeline of one step (the last one): per rank, its intervals (F, B, W, sends, all-reduce
     * wait, idle with cause), in microseconds since the rank began the step.
     */
    record StepTrace(long step, String title, String[] tracks, WorkerTrace[] intervals) implements JobEvent {
        /** One timeline track per rank, and beside it one of its tp collectives (category {@code tp}) if any. */
        public Timeline timeline() {
            List<TimelineTrack> out = new ArrayList<>();
            for (int r = 0; r < tracks.length; r++) {
                List<io.troupe.actors.trace.TimelineInterval> own = new ArrayList<>();
                List<io.troupe.actors.trace.TimelineInterval> tp = new ArrayList<>();
                for (io.troupe.actors.trace.TimelineInterval i : intervals[r].intervals()) {
                    (i.category().equals("tp") ? tp : own).add(i);
                }
                out.add(new TimelineTrack(tracks[r], tracks[r], own));
                if (!tp.isEmpty()) {
                    out.add(new TimelineTrack(tracks[r], tracks[r] + " tp collectives", tp));
                }
            }
            return new Timeline(title, out);
        }
    }

    /**
     * Every step ran. {@code finalValLoss} is NaN when validation never ran; {@code checkpoint} is
     * the last committed checkpoint's directory, "" when the job wrote none.
     */
    record Finished(long steps, double finalLoss, double finalValLoss, String checkpoint) implements JobEvent {
    }

    /**
     * A fault ended epoch {@code epoch}: the job rolls back and re-plans; {@code restarts} counts the restarts so
     * far. {@code diskCheckpointStep} is the step of the last checkpoint on disk when the fault is known (0: none),
     * the furthest back the job can go; the next epoch restores the last committed step from the members' memory
     * where it can, and {@link Recovered#restoredStep} names the step it did restore. A node lost during a recovery
     * after it answered the abort is a fault too, told with the recovery's epoch: that recovery's re-plan leaves it
     * out.
     * {@code planned}: not a fault but a member that left the cluster gracefully (a rolling restart, a scale-down) or
     * a coordinator's hand-over as its node left, which the restart budget counts only when the job trains no step
     * after it.
     */
    record Recovering(long epoch, String reason, long diskCheckpointStep, int restarts, boolean planned)
        implements JobEvent {
        /** A fault's recovery. */
        public Recovering(long epoch, String reason, long diskCheckpointStep, int restarts) {
            this(epoch, reason, diskCheckpointStep, restarts, false);
        }
    }

    /**
     * The first step after a fault committed: {@code detectToCommitMs} after the fault was noticed,
     * on {@code layout}, having re-run the steps after {@code restoredStep}.
     */
    record Recovered(long epoch, String layout, long restoredStep, long step, double detectToCommitMs)
        implements JobEvent {
    }

    /** The job ended early; {@code lastCommittedStep} is the last step every rank applied. */
    record Failed(String reason, long lastCommittedStep, long epoch) implements JobEvent {
    }
}
