package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.CancelJob;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.actors.cluster.CoordinatorActor.Deadline;
import io.troupe.actors.cluster.CoordinatorActor.MemberEvent;
import io.troupe.actors.cluster.CoordinatorActor.SubmitJob;
import io.troupe.actors.cluster.CoordinatorActor.WorkerFailed;
import io.troupe.actors.cluster.CoordinatorActor.WorkerInfo;
import io.troupe.actors.cluster.CoordinatorActor.WorkersChanged;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.BehaviorBuilder;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * What the coordinator's phases share: its actor context and timers, the recovery settings, the
 * workers it knows ({@link Membership}), the job in flight ({@link JobRun}), the handlers every phase
 * takes (cancellation, workers coming and going, member events, failure reports, deadlines),
 * supervision of every handler, and the job's end (finished or failed). The phases themselves are
 * {@link IdlePhase}, {@link GatheringPhase}, {@link RunningPhase}, {@link CommittingPhase} and
 * {@link RecoveringPhase}; each builds its behavior from its own handlers plus {@link #common}.
 * One thread (the coordinator's).
 */
final class CoordinatorContext {
    static final String DEADLINE = "deadline";

    final ActorContext<Command> ctx;
    final TimerScheduler<Command> timers;
    final RecoverySettings settings;
    final Membership<ActorRef<WorkerActor.Command>> members = new Membership<>();
    /** Where recoveries restore from (memory or disk) and each epoch's snapshots. */
    final SnapshotRestores snapshots = new SnapshotRestores(this);
    final Set<ActorRef<WorkerActor.Command>> listed = new HashSet<>();
    /** The newest epoch any worker reported: a new job starts above it, so no group id is reused. */
    long highestEpoch;
    /** This node as its member events name it (address#uid). */
    private final String self;
    /** This node left, is leaving or was downed (its own member event said so): no new epoch is planned here. */
    private boolean ownNodeLeaving;
    JobRun run;
    /** Repeated submissions and those held until a new incarnation knows every worker. */
    final Submissions submissions = new Submissions(this);

    private final IdlePhase idlePhase = new IdlePhase(this);
    private final GatheringPhase gatheringPhase = new GatheringPhase(this);
    private final RunningPhase runningPhase = new RunningPhase(this);
    private final CommittingPhase committingPhase = new CommittingPhase(this);
    private final RecoveringPhase recoveringPhase = new RecoveringPhase(this);

    CoordinatorContext(ActorContext<Command> ctx, TimerScheduler<Command> timers) {
        this.ctx = ctx;
        ctx.setLoggerName(CoordinatorActor.class); // one logger for every phase
        this.timers = timers;
        this.settings = RecoverySettings.from(ctx.getSystem().settings().config());
        ActorRef<Receptionist.Listing> listing = ctx.messageAdapter(Receptionist.Listing.class,
            // every registered worker, reachable or not: a worker leaves when its node is removed, and
            // unreachability alone only keeps it out of the next plan
            l -> new WorkersChanged(l.getAllServiceInstances(WorkerActor.KEY)));
        ctx.getSystem().receptionist().tell(Receptionist.subscribe(WorkerActor.KEY, listing));
        Cluster cluster = Cluster.get(ctx.getSystem());
        self = incarnation(cluster.selfMember());
        subscribe(cluster, ClusterEvent.UnreachableMember.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.UNREACHABLE));
        subscribe(cluster, ClusterEvent.ReachableMember.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.REACHABLE));
        // a member that leaves (its node closes) keeps serving until its actor system stops, which a
        // graceful leave delays by seconds: its ranks are lost to the job from the first sign
        subscribe(cluster, ClusterEvent.MemberLeft.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.LEAVING));
        subscribe(cluster, ClusterEvent.MemberExited.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.LEAVING));
        subscribe(cluster, ClusterEvent.MemberDowned.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.DOWNED));
        subscribe(cluster, ClusterEvent.MemberRemoved.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.REMOVED));
    }

    /** A member's incarnation, as workers describe their node: address#uid. */
    static String incarnation(org.apache.pekko.cluster.Member m) {
        return m.address() + "#" + m.uniqueAddress().longUid();
    }

    private <E extends ClusterEvent.ClusterDomainEvent> void subscribe(Cluster cluster, Class<E> type,
                                                                      java.util.function.Function<E, Command> f) {
        ActorRef<E> adapter = ctx.messageAdapter(type, f::apply);
        cluster.subscriptions().tell(Subscribe.create(adapter, type));
    }

    // ------------------------------------------------------------------ transitions between phases

    Behavior<Command> idle() {
        return idlePhase.idle();
    }

    Behavior<Command> gathering() {
        return gatheringPhase.gathering();
    }

    /** @return null while the job goes on, else the behavior after it was refused */
    Behavior<Command> tryAssign() {
        return gatheringPhase.tryAssign();
    }

    Behavior<Command> running() {
        return runningPhase.running();
    }

    Behavior<Command> runWindow() {
        return runningPhase.runWindow();
    }

    Behavior<Command> nextOrFinish() {
        return runningPhase.nextOrFinish();
    }

    Behavior<Command> resume() {
        return runningPhase.resume();
    }

    Behavior<Command> committing() {
        return committingPhase.committing();
    }

    Behavior<Command> recovering(String reason) {
        return recoveringPhase.recovering(reason);
    }

    Behavior<Command> replanning(String reason, RecoveringPhase.Cause cause) {
        return recoveringPhase.replanning(reason, cause);
    }

    Behavior<Command> adopt(WorkerInfo m) {
        return idlePhase.adopt(m);
    }

    // ------------------------------------------------------------------ shared by every phase

    void phase(JobRun.Phase p) {
        if (run != null) {
            run.phase = p;
        }
    }

    BehaviorBuilder<Command> common(BehaviorBuilder<Command> b) {
        return b.onMessage(CancelJob.class, guard(this::onCancel))
            .onMessage(WorkersChanged.class, guard(this::onWorkersChanged))
            .onMessage(WorkerInfo.class, guard(this::onWorkerInfo))
            .onMessage(MemberEvent.class, guard(this::onMemberEvent));
    }

    /** The phase's behavior: its handlers, then everything else ignored (another phase's or epoch's message). */
    Behavior<Command> build(BehaviorBuilder<Command> b) {
        return b.onMessage(Command.class, m -> Behaviors.same()).build();
    }

    /** Supervision of every handler: an exception fails the job in flight with its reason. */
    <M extends Command> org.apache.pekko.japi.function.Function<M, Behavior<Command>> guard(
        java.util.function.Function<M, Behavior<Command>> handler) {
        return m -> {
            try {
                return handler.apply(m);
            } catch (RuntimeException e) {
                ctx.getLog().error("coordinator handler for " + m.getClass().getSimpleName() + " failed", e);
                if (run != null) {
                    return failJob("coordinator error in " + m.getClass().getSimpleName() + ": " + e);
                }
                return Behaviors.same();
            }
        };
    }

    /**
     * Whether this coordinator's own node is leaving the cluster (or has left it, or was downed), as its member
     * events said: the singleton is then handed over to the next oldest node, whose coordinator carries the job on.
     */
    boolean ownNodeLeaving() {
        return ownNodeLeaving;
    }

    Behavior<Command> onCancel(CancelJob m) {
        if (run != null && m.submitter().equals(run.submitter)) {
            return stopJob("cancelled: " + m.reason());
        }
        return Behaviors.same();
    }

    /**
     * A submission while a job runs: a repeat ({@link Submissions#answeredRepeat}) is answered as such; a
     * submission of another submitter is refused, a job already running.
     */
    Behavior<Command> refuseBusy(SubmitJob m) {
        if (submissions.answeredRepeat(m)) {
            return Behaviors.same();
        }
        JobEvent.Failed busy = new JobEvent.Failed("a job is already running (" + run.identity + ")", 0,
            run.identity.epoch());
        m.replyTo().tell(busy);
        if (m.observer() != null) {
            m.observer().tell(busy);
        }
        submissions.answered(submissions.serialized(m.replyTo()), "", 0, busy);
        return Behaviors.same();
    }

    Behavior<Command> onWorkersChanged(WorkersChanged m) {
        submissions.registryHeard();
        for (ActorRef<WorkerActor.Command> w : m.workers()) {
            if (listed.add(w)) {
                w.tell(new WorkerActor.Describe(ctx.getSelf()));
            }
        }
        String lostRank = null;                  // every worker that left is forgotten before one recovery starts
        for (ActorRef<WorkerActor.Command> w : List.copyOf(listed)) {
            if (!m.workers().contains(w)) {
                listed.remove(w);
                int rank = run == null ? -1 : run.ranks.indexOf(w);
                WorkerDescription d = members.remove(w);
                if (rank >= 0 && lostRank == null) {
                    lostRank = "worker rank " + rank + " on " + (d == null ? w.path().address() : d.nodeAddress())
                        + " left the cluster";
                }
            }
        }
        Behavior<Command> next = lostRank != null ? recovering(lostRank) : Behaviors.same();
        submissions.releaseHeld();               // a worker not yet described may have left
        return next;
    }

    /** Whether every worker the registry lists has described itself (a new incarnation knows them all). */
    boolean everyListedWorkerDescribed() {
        for (ActorRef<WorkerActor.Command> w : listed) {
            if (!members.contains(w)) {
                return false;
            }
        }
        return true;
    }

    Behavior<Command> onWorkerInfo(WorkerInfo m) {
        highestEpoch = Math.max(highestEpoch, m.holds().epoch());
        if (!listed.contains(m.worker())) {
            return Behaviors.same(); // left again before it answered
        }
        members.add(m.worker(), m.description());
        if (run != null) {
            run.describing.remove(m.worker());
        }
        if (run == null) {
            Behavior<Command> next = m.holds().isJob() && !m.recordDir().isEmpty() ? adopt(m) : Behaviors.same();
            submissions.releaseHeld();
            return next;
        }
        if (run.phase == JobRun.Phase.GATHERING && run.ranks.isEmpty()) {
            Behavior<Command> refused = tryAssign(); // one more worker
            if (refused != null) {
                return refused;
            }
        } else if (run.phase == JobRun.Phase.RECOVERING) {
            m.worker().tell(new WorkerActor.Abort(run.identity, "recovery of " + run.identity, ctx.getSelf()));
        }
        return Behaviors.same();
    }

    Behavior<Command> onMemberEvent(MemberEvent m) {
        switch (m.kind()) {
            case UNREACHABLE -> {
                members.unreachable(m.address());
                if (run != null && run.phase == JobRun.Phase.GATHERING && run.ranks.isEmpty()
                    && !run.describing.isEmpty()) {
                    Behavior<Command> refused = tryAssign(); // its workers' descriptions are no longer waited for
                    if (refused != null) {
                        return refused;
                    }
                }
            }
            case REACHABLE -> {
                members.reachable(m.address());
                for (ActorRef<WorkerActor.Command> w : members.onNode(m.address())) {
                    if (run != null && run.describing.contains(w)) {
                        w.tell(new WorkerActor.Describe(ctx.getSelf())); // the first may have been lost meanwhile
                    }
                }
                if (run != null && run.phase == JobRun.Phase.RECOVERING) {
                    // its workers missed this recovery's abort while unreachable: the re-plan waits for their answer
                    for (ActorRef<WorkerActor.Command> w : members.onNode(m.address())) {
                        w.tell(new WorkerActor.Abort(run.identity, "recovery of " + run.identity, ctx.getSelf()));
                    }
                }
            }
            case LEAVING, DOWNED, REMOVED -> {
                boolean planned = m.kind() == MemberEvent.Kind.LEAVING; // left gracefully: an operator's act
                if (m.address().equals(self)) {
                    ownNodeLeaving = true;
                    if (planned && run != null && run.record.handover().isEmpty()) {
                        // the next incarnation takes the job over as the continuation of this departure, not a fault
                        run.record = run.record.withHandover(ctx.getSystem().address().toString());
                        writeRecord(run);
                    }
                }
                List<Integer> lost = run == null ? List.of() : members.ranksOn(run.ranks, m.address());
                // lost while recovering from another fault: the ranks it hosted in the epoch that fault ended
                List<Integer> lostBefore = run == null || !lost.isEmpty() ? List.of()
                    : members.ranksOn(run.lastRanks, m.address());
                List<ActorRef<WorkerActor.Command>> gone = members.removeNode(m.address());
                String how = m.kind() == MemberEvent.Kind.LEAVING ? "leaving the cluster"
                    : m.kind().name().toLowerCase(java.util.Locale.ROOT) + " by the downing decision";
                if (!lostBefore.isEmpty()) {
                    String reason = "member " + m.address() + " " + how + ", hosting rank(s) " + lostBefore
                        + " before the fault";
                    run.lostMembers.add(reason);
                    // a node that answered this recovery's abort was alive after the fault being recovered: its
                    // loss is a fault of its own (one that never answered may be that fault, a peer's report of it
                    // having come before its downing)
                    if (run.phase == JobRun.Phase.RECOVERING && gone.stream().anyMatch(run.quiesced::contains)) {
                        Behavior<Command> failed = recoveringPhase.faultDuringRecovery(reason, planned);
                        if (failed != null) {
                            return failed;
                        }
                    }
                }
                if (!lost.isEmpty()) {
                    String reason = "member " + m.address() + " " + how + ", hosting rank(s) " + lost;
                    run.lostMembers.add(reason);
                    Behavior<Command> next = replanning(reason, planned ? RecoveringPhase.Cause.DEPARTURE
                        : RecoveringPhase.Cause.FAULT);
                    if (run != null && planned) {
                        for (ActorRef<WorkerActor.Command> w : gone) {
                            w.tell(new WorkerActor.Abort(run.identity, reason, ctx.getSelf())); // stop it serving
                        }
                    }
                    return next;
                }
            }
            default -> throw new IllegalStateException("unknown member event " + m.kind());
        }
        return Behaviors.same();
    }

    Behavior<Command> onWorkerFailed(WorkerFailed m) {
        if (!run.identity.equals(m.job())) {
            return Behaviors.same();
        }
        if (m.incurable()) {
            return failIncurable("rank " + m.rank() + " " + m.reason());
        }
        snapshots.failed(run, m);
        return recovering("rank " + m.rank() + " " + m.reason());
    }

    Behavior<Command> onDeadline(Deadline m) {
        JobRun r = run;
        if (!r.identity.equals(m.job()) || m.step() != r.committed()) {
            return Behaviors.same();
        }
        List<Integer> missing = switch (m.phase()) {
            case "compute" -> r.ledger.missing();
            case "checkpoint" -> r.checkpoint == null ? List.of() : r.checkpoint.missing();
            default -> List.of();
        };
        return recovering("step " + m.step() + " " + m.phase() + " passed its deadline of " + r.request.stepTimeoutMs()
            + " ms" + (missing.isEmpty() ? "" : " waiting for rank(s) " + missing));
    }

    void writeRecord(JobRun r) {
        String error = r.writeRecord();
        if (error != null) {
            ctx.getLog().warn("{}: job record not written, carrying on from memory: {}", r.identity, error);
        }
    }

    void startDeadline(String phase) {
        JobRun r = run;
        timers.startSingleTimer(DEADLINE, new Deadline(r.identity, r.committed(), phase),
            Duration.ofMillis(r.request.stepTimeoutMs()));
    }

    /** The job's timers: none of them may outlive it (a later job would take one for its own). */
    private void cancelJobTimers() {
        for (String key : List.of(DEADLINE, "gather", "backoff", "quiesce", "regather", RecoveringPhase.FULL_LAYOUT)) {
            timers.cancel(key);
        }
    }

    Behavior<Command> finishJob() {
        JobRun r = run;
        cancelJobTimers();
        r.record = r.record.withState(JobRecord.State.FINISHED);
        writeRecord(r);
        releaseWorkers(r);
        JobEvent.Finished finished = new JobEvent.Finished(r.committed(), r.lastLoss, r.lastValLoss,
            r.record.lastCheckpoint());
        r.tell(finished);
        submissions.answered(r.record.submitter(), r.identity.idHex(), r.identity.epoch(), finished);
        ctx.getLog().info("{} finished after {} steps ({} restarts)", r.identity, r.committed(), r.record.restarts());
        run = null;
        return idle();
    }

    /**
     * Ends the job its submitter stopped: no fault and no recovery. The workers abort, the record
     * says {@code stopped} (its last commit resumes the job), the submitter gets {@link JobEvent.Failed}
     * with {@code reason}.
     */
    Behavior<Command> stopJob(String reason) {
        ctx.getLog().info("{} stopped: {}; last committed step {}", run.identity, reason,
            run.record.lastCommittedStep());
        return endEarly(reason, JobRecord.State.STOPPED);
    }

    Behavior<Command> failJob(String reason) {
        ctx.getLog().error("{} failed: {}; last committed step {}", run.identity, reason,
            run.record.lastCommittedStep());
        return endEarly(reason, JobRecord.State.FAILED);
    }

    /**
     * Fails the job at once for {@code reason}, a refusal no restart can cure (its data missing, unreadable or too
     * short on a worker, or differing between ranks): no recovery is tried. The record lists it as the fault that
     * ended the job, with its time, and says {@code failed}.
     */
    Behavior<Command> failIncurable(String reason) {
        JobRun r = run;
        r.record = r.record.withFault(new JobRecord.Fault(r.identity.epoch(), System.currentTimeMillis(), r.committed(),
            reason));
        return failJob(reason);
    }

    /** Tells every worker the job ended: each frees what the job's epoch holds on it now. */
    private void releaseWorkers(JobRun r) {
        for (ActorRef<WorkerActor.Command> w : members.usable()) {
            w.tell(new WorkerActor.Release(r.identity));
        }
    }

    /** Aborts the workers, closes the record in {@code state} and tells the submitter {@link JobEvent.Failed}. */
    private Behavior<Command> endEarly(String reason, JobRecord.State state) {
        JobRun r = run;
        cancelJobTimers();
        boolean stop = state == JobRecord.State.STOPPED;
        for (ActorRef<WorkerActor.Command> w : members.usable()) {
            w.tell(new WorkerActor.Abort(r.identity, reason, stop, ctx.getSelf()));
        }
        releaseWorkers(r);
        try {
            r.record = r.record.withState(state);
            writeRecord(r);
        } finally {
            JobEvent.Failed failed = new JobEvent.Failed(reason, r.record.lastCommittedStep(), r.identity.epoch());
            r.tell(failed);
            submissions.answered(r.record.submitter(), r.identity.idHex(), r.identity.epoch(), failed);
            run = null;
        }
        return idle();
    }
}
