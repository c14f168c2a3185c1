package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.runtime.transport.JobIdentity;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The job coordinator (a Cluster Singleton on every node with the coordinator role), as explicit
 * phases, each its own behavior class sharing one {@link CoordinatorContext}:
 * <ul>
 *   <li><b>idle</b> ({@link IdlePhase}) — no job; takes a submission, or adopts a running job from its record when a
 *       worker reports one (this incarnation replaced one whose node died);</li>
 *   <li><b>gathering</b> ({@link GatheringPhase}) — waits for the workers of the epoch's layout, assigns ranks, waits
 *       for every Ready, then checks that the ranks read the same data ({@link DataAgreement}) and the snapshot
 *       slots the ranks' reported snapshots take against their nodes' memory;</li>
 *   <li><b>running</b> ({@link RunningPhase}) — the ranks run windows of steps; a step commits when every rank reported
 *       it ({@link CommitLedger}); validation after due steps;</li>
 *   <li><b>committing</b> ({@link CommittingPhase}) — the two-phase checkpoint ({@link ManifestBuilder}); the manifest,
 *       then the job record ({@link JobRecord}), make it durable;</li>
 *   <li><b>recovering</b> ({@link RecoveringPhase}) — after a fault (a member leaving or downed, a worker's failure
 *       report, a deadline): the epoch is raised and aborted everywhere, the workers quiesce, a layout is chosen from
 *       those left ({@link LayoutPlanner}) after a back-off, and gathering restores the last commit on every rank; past
 *       {@code max-restarts} within {@code restart-window} ({@link RestartBudget}) the job fails listing every
 *       fault;</li>
 *   <li><b>finished / failed</b> ({@link CoordinatorContext}) — the submitter is told, the record closed, back to
 *       idle.</li>
 * </ul>
 * Every message carries the {@link JobIdentity}; anything not of the current epoch is ignored.
 * Supervised: an exception in a handler fails the job with its reason (and a crash of the actor
 * restarts it, which re-adopts the job from its record).
 */
public final class CoordinatorActor {
    private CoordinatorActor() {
    }

    public sealed interface Command {
    }

    /**
     * A job to run. Its events go straight to {@code replyTo} (the submitter's own listener, which
     * the job record names, so every coordinator incarnation reaches it whichever node it talks to)
     * and, when not null, to {@code observer} (the job gateway's publisher on the node it came
     * through, which feeds that node's metrics).
     */
    public record SubmitJob(JobRequest job, ActorRef<JobEvent> observer, ActorRef<JobEvent> replyTo)
        implements Command, CrossNodeMessage {
        /** A submission with no observer. */
        public SubmitJob(JobRequest job, ActorRef<JobEvent> replyTo) {
            this(job, null, replyTo);
        }
    }

    /**
     * The submitter stops its job (the one whose events go to {@code submitter}): it ends as
     * {@link JobEvent.Failed} (reason {@code cancelled: } and {@code reason}), the workers abort, and
     * the job record says {@code stopped}: not a fault, no recovery, its last commit resumes it.
     * Ignored when that job is no longer running.
     */
    public record CancelJob(ActorRef<JobEvent> submitter, String reason) implements Command, CrossNodeMessage {
    }

    /**
     * A worker describes itself.
     *
     * @param holds     the job identity it was last assigned ({@link JobIdentity#NONE} if never)
     * @param recordDir that job's record directory ("" if none): a new coordinator incarnation reads it
     */
    public record WorkerInfo(ActorRef<WorkerActor.Command> worker, WorkerDescription description, JobIdentity holds,
                             String recordDir) implements Command, CrossNodeMessage {
    }

    /**
     * A rank built its epoch.
     *
     * @param snapshotBytes the bytes of its in-memory snapshot as its build made its chunks (what each commit of
     *                      an epoch with snapshots captures,
     *                      {@link io.troupe.actors.cluster.snapshot.ShardSnapshots#lengthBytes}): the coordinator
     *                      checks its nodes' direct memory against these before the epoch steps
     * @param dataFingerprint the job's data as this rank read it
     *                        ({@link io.troupe.models.data.DataFingerprint#token()}; "" when it does not say): the
     *                        coordinator fails the job before the epoch steps when two ranks' differ, or one differs
     *                        from the fingerprint its submitter computed
     */
    public record Ready(int rank, JobIdentity job, long snapshotBytes, String dataFingerprint)
        implements Command, CrossNodeMessage {

        /** A rank that does not say what data it read. */
        public Ready(int rank, JobIdentity job, long snapshotBytes) {
            this(rank, job, snapshotBytes, "");
        }
    }

    /**
     * A rank finished step {@code step}, optimizer included.
     *
     * @param gradNorm the global gradient norm the ranks agreed on (before clipping)
     * @param lr       the learning rate the step used
     * @param trace    the rank's intervals when the step was traced, else {@link WorkerTrace#EMPTY}
     */
    public record StepDone(int rank, JobIdentity job, long step, double lossSum, int lossCount, double gradNorm,
                           float lr, double busyMs, double idleMs, double allReduceMs, WorkerTrace trace, long memBytes,
                           long gradBytesSent)
        implements Command, CrossNodeMessage {
    }

    /** A rank's validation loss after {@code step} (NaN unless it holds the last model stage). */
    public record EvalDone(int rank, JobIdentity job, long step, double loss) implements Command, CrossNodeMessage {
    }

    /**
     * A rank could not go on: its assignment, a step, validation or a checkpoint failed ({@code step} -1: none).
     *
     * @param incurable no restart can cure it (the job's data is missing, unreadable or too short where the rank
     *                  reads it): the job fails at once with {@code reason} rather than recovering into it again
     */
    public record WorkerFailed(int rank, JobIdentity job, long step, String reason, boolean incurable)
        implements Command, CrossNodeMessage {

        /** A fault the job recovers from. */
        public WorkerFailed(int rank, JobIdentity job, long step, String reason) {
            this(rank, job, step, reason, false);
        }
    }

    /** A rank's shard files of {@code step}, written into the step's temporary directory. */
    public record CheckpointWritten(int rank, JobIdentity job, long step, String[] names, long[] bytes, long[] crcs)
        implements Command, CrossNodeMessage {
    }

    /**
     * A worker answered an Abort: its device thread is idle; {@code holds} is the identity of its last
     * assignment, {@code rank} its rank there (-1: none) and {@code layout} that epoch's layout ("" if
     * none): what a new coordinator incarnation, which never saw that assignment, restores into;
     * {@code snapshots} the in-memory snapshots it keeps of that job, pairs {rank, step}; {@code description}
     * the worker as it describes itself now, its direct memory measured once idle (null: as it last described
     * itself), which the re-plan uses.
     */
    public record Quiesced(ActorRef<WorkerActor.Command> worker, JobIdentity holds, int rank, String layout,
                           long[] snapshots, WorkerDescription description)
        implements Command, CrossNodeMessage {

        /** An answer that leaves the worker's description as it was. */
        public Quiesced(ActorRef<WorkerActor.Command> worker, JobIdentity holds, int rank, String layout,
            long[] snapshots) {
            this(worker, holds, rank, layout, snapshots, null);
        }

        public Quiesced(ActorRef<WorkerActor.Command> worker, JobIdentity holds) {
            this(worker, holds, -1, "", new long[0]);
        }
    }

    record WorkersChanged(Set<ActorRef<WorkerActor.Command>> workers) implements Command {
    }

    record MemberEvent(String address, Kind kind) implements Command {
        enum Kind { UNREACHABLE, REACHABLE, LEAVING, DOWNED, REMOVED }
    }

    record Deadline(JobIdentity job, long step, String phase) implements Command {
    }

    record RecoveryTimer(JobIdentity job, String what) implements Command {
    }

    public static Behavior<Command> create() {
        return Behaviors.supervise(Behaviors.<Command>setup(ctx -> Behaviors.withTimers(timers ->
            new CoordinatorContext(ctx, timers).idle()))).onFailure(SupervisorStrategy.restart());
    }
}
