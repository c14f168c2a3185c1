package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.runtime.transport.JobIdentity;
import java.nio.file.Path;
import java.time.Duration;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.BehaviorBuilder;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * The job coordinator (a Cluster Singleton on every node with the coordinator role), as explicit
 * phases, each its own behavior:
 * <ul>
 *   <li><b>idle</b> — no job; takes a submission, or adopts a running job from its record when a
 *       worker reports one (this incarnation replaced one whose node died);</li>
 *   <li><b>gathering</b> — waits for the workers of the epoch's layout, assigns ranks, waits for
 *       every Ready;</li>
 *   <li><b>running</b> — the ranks run windows of steps; a step commits when every rank reported
 *       it ({@link CommitLedger}); validation after due steps;</li>
 *   <li><b>committing</b> — the two-phase checkpoint ({@link ManifestBuilder}); the manifest, then
 *       the job record ({@link JobRecord}), make it durable;</li>
 *   <li><b>recovering</b> — after a fault (a member downed, a worker's failure report, a deadline):
 *       the epoch is raised and aborted everywhere, the workers quiesce, a layout is chosen from
 *       those left ({@link LayoutPlanner}) after a back-off, and gathering restores the last commit
 *       on every rank; past {@code max-restarts} the job fails listing every fault;</li>
 *   <li><b>finished / failed</b> — the submitter is told, the record closed, back to idle.</li>
 * </ul>
 * Every message carries the {@link JobIdentity}; anything not of the current epoch is ignored.
 * Supervised: an exception in a handler fails the job with its reason (and a crash of the actor
 * restarts it, which re-adopts the job from its record).
 */
public final class CoordinatorActor {

    public sealed interface Command {
    }

    public record SubmitJob(JobRequest job, ActorRef<JobEvent> replyTo) implements Command, CrossNodeMessage {
    }

    /**
     * The submitter gives up its job (the one whose events go to {@code submitter}): it ends as
     * {@link JobEvent.Failed} and the workers abort. Ignored when that job is no longer running.
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

    public record Ready(int rank, JobIdentity job) implements Command, CrossNodeMessage {
    }

    /**
     * A rank finished step {@code step}, optimizer included.
     *
     * @param gradNorm the global gradient norm the ranks agreed on (before clipping)
     * @param lr       the learning rate the step used
     * @param trace    the rank's intervals when the step was traced, else {@link WorkerTrace#EMPTY}
     */
    public record StepDone(int rank, JobIdentity job, long step, double lossSum, int lossCount, double gradNorm, float lr,
                           double busyMs, double idleMs, double allReduceMs, WorkerTrace trace, long memBytes,
                           long gradBytesSent)
        implements Command, CrossNodeMessage {
    }

    /** A rank's validation loss after {@code step} (NaN unless it holds the last model stage). */
    public record EvalDone(int rank, JobIdentity job, long step, double loss) implements Command, CrossNodeMessage {
    }

    /** A rank could not go on: its assignment, a step, validation or a checkpoint failed ({@code step} -1: none). */
    public record WorkerFailed(int rank, JobIdentity job, long step, String reason) implements Command, CrossNodeMessage {
    }

    /** A rank's shard files of {@code step}, written into the step's temporary directory. */
    public record CheckpointWritten(int rank, JobIdentity job, long step, String[] names, long[] bytes, long[] crcs)
        implements Command, CrossNodeMessage {
    }

    /**
     * A worker answered an Abort: its device thread is idle; {@code holds} is the identity it holds;
     * {@code snapshots} the in-memory snapshots it keeps of that job, pairs {rank, step}.
     */
    public record Quiesced(ActorRef<WorkerActor.Command> worker, JobIdentity holds, long[] snapshots)
        implements Command, CrossNodeMessage {

        public Quiesced(ActorRef<WorkerActor.Command> worker, JobIdentity holds) {
            this(worker, holds, new long[0]);
        }
    }

    private record WorkersChanged(Set<ActorRef<WorkerActor.Command>> workers) implements Command {
    }

    private record MemberEvent(String address, Kind kind) implements Command {
        enum Kind { UNREACHABLE, REACHABLE, DOWNED, REMOVED }
    }

    private record Deadline(JobIdentity job, long step, String phase) implements Command {
    }

    private record RecoveryTimer(JobIdentity job, String what) implements Command {
    }

    private static final String DEADLINE = "deadline";

    private final ActorContext<Command> ctx;
    private final TimerScheduler<Command> timers;
    private final RecoverySettings settings;
    private final Membership<ActorRef<WorkerActor.Command>> members = new Membership<>();
    private final Set<ActorRef<WorkerActor.Command>> listed = new HashSet<>();
    /** The newest epoch any worker reported: a new job starts above it, so no group id is reused. */
    private long highestEpoch;
    private JobRun run;

    public static Behavior<Command> create() {
        return Behaviors.supervise(Behaviors.<Command>setup(ctx -> Behaviors.withTimers(timers ->
            new CoordinatorActor(ctx, timers).idle()))).onFailure(SupervisorStrategy.restart());
    }

    private CoordinatorActor(ActorContext<Command> ctx, TimerScheduler<Command> timers) {
        this.ctx = ctx;
        this.timers = timers;
        this.settings = RecoverySettings.from(ctx.getSystem().settings().config());
        ActorRef<Receptionist.Listing> listing = ctx.messageAdapter(Receptionist.Listing.class,
            // every registered worker, reachable or not: a worker leaves when its node is removed, and
            // unreachability alone only keeps it out of the next plan
            l -> new WorkersChanged(l.getAllServiceInstances(WorkerActor.KEY)));
        ctx.getSystem().receptionist().tell(Receptionist.subscribe(WorkerActor.KEY, listing));
        Cluster cluster = Cluster.get(ctx.getSystem());
        subscribe(cluster, ClusterEvent.UnreachableMember.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.UNREACHABLE));
        subscribe(cluster, ClusterEvent.ReachableMember.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.REACHABLE));
        subscribe(cluster, ClusterEvent.MemberDowned.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.DOWNED));
        subscribe(cluster, ClusterEvent.MemberRemoved.class, e -> new MemberEvent(incarnation(e.member()),
            MemberEvent.Kind.REMOVED));
    }

    /** A member's incarnation, as workers describe their node: address#uid. */
    private static String incarnation(org.apache.pekko.cluster.Member m) {
        return m.address() + "#" + m.uniqueAddress().longUid();
    }

    private <E extends ClusterEvent.ClusterDomainEvent> void subscribe(Cluster cluster, Class<E> type,
                                                                      java.util.function.Function<E, Command> f) {
        ActorRef<E> adapter = ctx.messageAdapter(type, f::apply);
        cluster.subscriptions().tell(Subscribe.create(adapter, type));
    }

    // ------------------------------------------------------------------ phases

    /** No job: takes a submission or adopts the job a worker still holds. */
    private Behavior<Command> idle() {
        phase(JobRun.Phase.IDLE);
        return build(common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, guard(this::onSubmit)));
    }

    /** Waits for the epoch's workers, assigns ranks, waits for every Ready. */
    private Behavior<Command> gathering() {
        phase(JobRun.Phase.GATHERING);
        tryAssign();
        return build(common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, this::refuseBusy)
            .onMessage(Ready.class, guard(this::onReady))
            .onMessage(WorkerFailed.class, guard(this::onWorkerFailed))
            .onMessage(Deadline.class, guard(this::onDeadline))
            .onMessage(RecoveryTimer.class, guard(this::onGatherTimeout)));
    }

    /** The ranks run windows of steps; commits by {@link CommitLedger}. */
    private Behavior<Command> running() {
        phase(JobRun.Phase.RUNNING);
        return build(common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, this::refuseBusy)
            .onMessage(StepDone.class, guard(this::onStepDone))
            .onMessage(EvalDone.class, guard(this::onEvalDone))
            .onMessage(WorkerFailed.class, guard(this::onWorkerFailed))
            .onMessage(Deadline.class, guard(this::onDeadline)));
    }

    /** The two-phase checkpoint of the last committed step. */
    private Behavior<Command> committing() {
        JobRun r = run;
        phase(JobRun.Phase.COMMITTING);
        r.checkpoint = new ManifestBuilder(r.ranks.size(), r.committed());
        io.troupe.models.checkpoint.Checkpoints.discardPartial(Path.of(r.request.checkpointDir()), r.committed());
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            w.tell(new WorkerActor.WriteCheckpoint(r.identity, r.committed(), r.request.checkpointDir()));
        }
        startDeadline("checkpoint");
        return build(common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, this::refuseBusy)
            .onMessage(CheckpointWritten.class, guard(this::onCheckpointWritten))
            .onMessage(WorkerFailed.class, guard(this::onWorkerFailed))
            .onMessage(Deadline.class, guard(this::onDeadline)));
    }

    /**
     * A fault ended the epoch: record it, raise the epoch, abort everywhere, and re-plan once the
     * workers quiesced and the back-off passed (or fail past the retry budget).
     */
    private Behavior<Command> recovering(String reason) {
        return replanning(reason, true);
    }

    /**
     * Ends the epoch to re-plan: after a fault ({@code fault}: recorded, counted against the budget,
     * the submitter told) or to grow back to the requested layout at a commit (nothing lost).
     */
    private Behavior<Command> replanning(String reason, boolean fault) {
        JobRun r = run;
        phase(JobRun.Phase.RECOVERING);
        timers.cancel(DEADLINE);
        if (fault) {
            ctx.getLog().warn("{}: fault in step {}: {}", r.identity, r.committed(), reason);
            r.faultNs = System.nanoTime();
            r.record = r.record.withFault(new JobRecord.Fault(r.identity.epoch(), System.currentTimeMillis(), reason));
            if (r.record.restarts() > settings.maxRestarts()) {
                return failJob("gave up after " + (r.record.restarts() - 1) + " restarts (troupe.recovery.max-restarts="
                    + settings.maxRestarts() + "); faults: " + r.record.faults());
            }
            r.submitter.tell(new JobEvent.Recovering(r.identity.epoch(), reason, r.record.lastCommittedStep(),
                r.record.restarts()));
        } else {
            ctx.getLog().warn("{}: re-planning at step {}: {}", r.identity, r.committed(), reason);
        }
        r.restoredStep = r.record.lastCommittedStep();
        if (!r.ranks.isEmpty() && r.ledger != null) {
            r.previousRanks = r.ranks;
            r.previousLayout = r.current.layout();
            r.memoryStep = r.committed();
        }
        r.inventories.clear();
        r.memoryRestore = null;
        r.identity = r.identity.atEpoch(Math.max(r.identity.epoch(), highestEpoch) + 1);
        highestEpoch = r.identity.epoch();
        r.record = r.record.withEpoch(r.identity);
        writeRecord(r);
        r.quiesced.clear();
        r.ranks = List.of();
        for (ActorRef<WorkerActor.Command> w : members.usable()) {
            w.tell(new WorkerActor.Abort(r.identity, reason, ctx.getSelf()));
        }
        r.backoffDone = false;
        timers.startSingleTimer("backoff", new RecoveryTimer(r.identity, "backoff"),
            fault ? settings.backoffBefore(r.record.restarts()) : Duration.ZERO);
        r.quiesceExpired = false;
        timers.startSingleTimer("quiesce", new RecoveryTimer(r.identity, "quiesce"), settings.quiesceTimeout());
        return build(common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, this::refuseBusy)
            .onMessage(Quiesced.class, guard(this::onQuiesced))
            .onMessage(RecoveryTimer.class, guard(this::onRecoveryTimer)));
    }

    private void phase(JobRun.Phase p) {
        if (run != null) {
            run.phase = p;
        }
    }

    // ------------------------------------------------------------------ messages every phase takes

    private BehaviorBuilder<Command> common(BehaviorBuilder<Command> b) {
        return b.onMessage(CancelJob.class, guard(this::onCancel))
            .onMessage(WorkersChanged.class, guard(this::onWorkersChanged))
            .onMessage(WorkerInfo.class, guard(this::onWorkerInfo))
            .onMessage(MemberEvent.class, guard(this::onMemberEvent));
    }

    /** The phase's behavior: its handlers, then everything else ignored (another phase's or epoch's message). */
    private static Behavior<Command> build(BehaviorBuilder<Command> b) {
        return b.onMessage(Command.class, m -> Behaviors.same()).build();
    }

    /** Supervision of every handler: an exception fails the job in flight with its reason. */
    private <M extends Command> org.apache.pekko.japi.function.Function<M, Behavior<Command>> guard(
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

    private Behavior<Command> onCancel(CancelJob m) {
        if (run != null && m.submitter().equals(run.submitter)) {
            return failJob("cancelled: " + m.reason());
        }
        return Behaviors.same();
    }

    private Behavior<Command> refuseBusy(SubmitJob m) {
        m.replyTo().tell(new JobEvent.Failed("a job is already running (" + run.identity + ")", 0, run.identity.epoch()));
        return Behaviors.same();
    }

    private Behavior<Command> onWorkersChanged(WorkersChanged m) {
        for (ActorRef<WorkerActor.Command> w : m.workers()) {
            if (listed.add(w)) {
                w.tell(new WorkerActor.Describe(ctx.getSelf()));
            }
        }
        for (ActorRef<WorkerActor.Command> w : List.copyOf(listed)) {
            if (!m.workers().contains(w)) {
                listed.remove(w);
                int rank = run == null ? -1 : run.ranks.indexOf(w);
                WorkerDescription d = members.remove(w);
                if (rank >= 0) {
                    return recovering("worker rank " + rank + " on " + (d == null ? w.path().address() : d.nodeAddress())
                        + " left the cluster");
                }
            }
        }
        return Behaviors.same();
    }

    private Behavior<Command> onWorkerInfo(WorkerInfo m) {
        highestEpoch = Math.max(highestEpoch, m.holds().epoch());
        if (!listed.contains(m.worker())) {
            return Behaviors.same(); // left again before it answered
        }
        members.add(m.worker(), m.description());
        if (run == null) {
            return m.holds().isJob() && !m.recordDir().isEmpty() ? adopt(m) : Behaviors.same();
        }
        if (run.phase == JobRun.Phase.GATHERING && run.ranks.isEmpty()) {
            tryAssign(); // one more worker
        } else if (run.phase == JobRun.Phase.RECOVERING) {
            m.worker().tell(new WorkerActor.Abort(run.identity, "recovery of " + run.identity, ctx.getSelf()));
        }
        return Behaviors.same();
    }

    private Behavior<Command> onMemberEvent(MemberEvent m) {
        switch (m.kind()) {
            case UNREACHABLE -> members.unreachable(m.address());
            case REACHABLE -> members.reachable(m.address());
            case DOWNED, REMOVED -> {
                List<Integer> lost = run == null ? List.of() : members.ranksOn(run.ranks, m.address());
                members.removeNode(m.address());
                if (!lost.isEmpty()) {
                    return recovering("member " + m.address() + " " + m.kind().name().toLowerCase(java.util.Locale.ROOT)
                        + " by the downing decision, hosting rank(s) " + lost);
                }
            }
            default -> throw new IllegalStateException("unknown member event " + m.kind());
        }
        return Behaviors.same();
    }

    // ------------------------------------------------------------------ idle: submit and adopt

    private Behavior<Command> onSubmit(SubmitJob m) {
        JobRun r;
        try {
            r = JobRun.submitted(m.job(), m.replyTo(), settings, highestEpoch + 1, ActorRefResolver.get(ctx.getSystem()));
        } catch (RuntimeException e) {
            m.replyTo().tell(new JobEvent.Failed("job refused before any work: " + e.getMessage(), 0, 0));
            return Behaviors.same();
        }
        highestEpoch = r.identity.epoch();
        run = r;
        writeRecord(r);
        ctx.getLog().info("{} submitted: layout {} schedule {}, waiting for {} workers ({} known), record {}", r.identity,
            r.request.layout(), r.request.schedule(), r.plan.worldSize(), members.size(), r.recordDir);
        timers.startSingleTimer("gather", new RecoveryTimer(r.identity, "gather"), Duration.ofMillis(r.request.stepTimeoutMs()));
        return gathering();
    }

    /** A worker holds a job this incarnation does not know: read its record and carry it on. */
    private Behavior<Command> adopt(WorkerInfo m) {
        JobRecord rec;
        try {
            rec = JobRecord.read(Path.of(m.recordDir()));
        } catch (RuntimeException e) {
            ctx.getLog().error("cannot adopt {}: {}", m.holds(), e.getMessage());
            return Behaviors.same();
        }
        if (rec == null || rec.state() != JobRecord.State.RUNNING || rec.identity().jobId() != m.holds().jobId()) {
            return Behaviors.same();
        }
        run = JobRun.adopted(rec, Path.of(m.recordDir()), settings, ActorRefResolver.get(ctx.getSystem()));
        ctx.getLog().warn("adopting {} from {} (new coordinator incarnation)", rec.identity(), m.recordDir());
        run.adopted = true; // workers are still being described: re-plan only when the quiesce wait ends
        return recovering("coordinator incarnation lost; " + ctx.getSystem().address() + " carries the job on from its record");
    }

    // ------------------------------------------------------------------ gathering

    private void tryAssign() {
        JobRun r = run;
        if (!r.ranks.isEmpty()) {
            return;
        }
        List<ActorRef<WorkerActor.Command>> usable = r.candidates(members.usable());
        if (usable.size() < r.plan.worldSize()) {
            return;
        }
        timers.cancel("gather");
        if (r.memoryRestore != null && !usable.containsAll(r.memoryRestore.ranks())) {
            ctx.getLog().warn("{}: a worker holding snapshots left before the assignment; restoring from the disk checkpoint",
                r.identity);
            r.memoryRestore = null;
            r.restoredStep = r.record.lastCommittedStep();
        }
        if (r.memoryRestore != null && !snapshotsPossible(r, r.memoryRestore.ranks())) {
            r.memoryRestore = null;
            r.restoredStep = r.record.lastCommittedStep();
        }
        r.ranks = r.memoryRestore != null ? r.memoryRestore.ranks() : List.copyOf(usable.subList(0, r.plan.worldSize()));
        r.startEpoch();
        SnapshotPlan snapshots = snapshotPlan(r);
        List<String> endpoints = new java.util.ArrayList<>();
        List<String> control = new java.util.ArrayList<>();
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            endpoints.add(members.describe(w).dataEndpoint());
            control.add(members.describe(w).controlEndpoint());
        }
        for (int rank = 0; rank < r.ranks.size(); rank++) {
            r.ranks.get(rank).tell(new WorkerActor.Assign(r.identity, rank, r.current, endpoints, control,
                r.memoryRestore != null ? "" : r.record.lastCheckpoint(), snapshots, ctx.getSelf()));
        }
        startDeadline("assignment");
    }

    /**
     * The epoch's snapshots: on when {@code troupe.recovery.snapshots} is and the job can take them
     * (not under int8 error feedback, whose residuals they do not hold) and every rank's worker has
     * a snapshot endpoint; each rank's buddy the next rank on another node; the restore from memory
     * if the recovery chose one.
     */
    private SnapshotPlan snapshotPlan(JobRun r) {
        if (!snapshotsPossible(r, r.ranks)) {
            return SnapshotPlan.OFF;
        }
        List<String> nodes = new java.util.ArrayList<>();
        List<String> endpoints = new java.util.ArrayList<>();
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            WorkerDescription d = members.describe(w);
            nodes.add(d.nodeAddress());
            endpoints.add(d.snapshotEndpoint());
        }
        SnapshotRestorePlanner.Decision<ActorRef<WorkerActor.Command>> d = r.memoryRestore;
        return new SnapshotPlan(true, SnapshotRestorePlanner.buddies(nodes, stateClasses(r.spec())), endpoints,
            d == null ? -1 : d.step(), d == null ? new int[0] : d.holderOf(), d == null ? new int[0] : d.sourceOf());
    }

    /**
     * Per rank, its state class: the data-parallel replicas of one stage hold bitwise the same
     * parameters and moments (the same reduced gradients, the same optimizer), unless ZeRO splits
     * the moments among them.
     */
    private static int[] stateClasses(io.troupe.actors.engine.PipelineJobSpec spec) {
        var l = spec.layout();
        int[] c = new int[l.worldSize()];
        for (int r = 0; r < c.length; r++) {
            c[r] = spec.zeroSharded() ? r : l.ppIndex(r) * l.tp() + l.tpIndex(r) + l.worldSize();
        }
        return c;
    }

    private Behavior<Command> onReady(Ready m) {
        JobRun r = run;
        if (!r.identity.equals(m.job())) {
            return Behaviors.same();
        }
        r.ready.set(m.rank());
        if (r.ready.cardinality() < r.ranks.size()) {
            return Behaviors.same();
        }
        StringBuilder sb = new StringBuilder();
        for (int rank = 0; rank < r.ranks.size(); rank++) {
            WorkerDescription d = members.describe(r.ranks.get(rank));
            sb.append(rank == 0 ? "" : ", ").append("rank ").append(rank).append(" -> ")
                .append(d == null ? "?" : d.nodeAddress() + "#" + d.localIndex());
        }
        r.submitter.tell(new JobEvent.Started(r.identity.epoch(), r.ranks.size(), sb.toString()));
        if (r.memoryRestore != null) {
            r.memoryRefused = null; // restored from memory: the next fault may use memory again
        }
        if (r.faultNs != 0) {
            ctx.getLog().warn("{} resumed from step {} on layout {} ({} ms after the fault)", r.identity, r.committed(),
                r.current.layout(), (System.nanoTime() - r.faultNs) / 1_000_000);
        }
        return nextOrFinish();
    }

    private Behavior<Command> onGatherTimeout(RecoveryTimer m) {
        JobRun r = run;
        if (!m.job().equals(r.identity) || !r.ranks.isEmpty()) {
            return Behaviors.same();
        }
        return failJob("layout " + r.current.layout() + " needs " + r.plan.worldSize() + " workers, only "
            + members.usable().size() + " usable within the gather timeout");
    }

    // ------------------------------------------------------------------ running

    /** Starts the ranks on the steps up to the next boundary (validation, checkpoint or the end). */
    private Behavior<Command> runWindow() {
        JobRun r = run;
        long from = r.committed();
        long until = from + 1;
        while (until < r.spec().train().steps() && !r.spec().train().evalDue(until) && !r.spec().train().checkpointDue(until)) {
            until++;
        }
        r.windowEnd = until;
        io.troupe.actors.trace.TraceWindow trace = r.request.traceWindow();
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            w.tell(new WorkerActor.RunSteps(r.identity, from, until, trace.first() - 1, trace.last() - 1));
        }
        r.lastCommitNs = System.nanoTime();
        beginStep();
        return running();
    }

    private void beginStep() {
        JobRun r = run;
        if (r.request.traceWindow().contains(r.committed() + 1)) {
            r.ledger.traceCurrent();
        }
        startDeadline("compute");
    }

    private Behavior<Command> onStepDone(StepDone m) {
        JobRun r = run;
        if (!r.identity.equals(m.job())) {
            return Behaviors.same();
        }
        return onCommitted(r.ledger.offer(m));
    }

    private Behavior<Command> onCommitted(CommitLedger.Committed c) {
        if (c == null) {
            return Behaviors.same();
        }
        JobRun r = run;
        long now = System.nanoTime();
        r.lastStepMs = (now - r.lastCommitNs) / 1e6;
        r.lastCommitNs = now;
        r.lastCommitted = c;
        if (r.faultNs != 0) {
            double ms = (now - r.faultNs) / 1e6;
            ctx.getLog().warn("{} committed step {} {} ms after the fault", r.identity, r.committed(), (long) ms);
            r.submitter.tell(new JobEvent.Recovered(r.identity.epoch(), r.current.layout(), r.restoredStep, r.committed(), ms));
            r.faultNs = 0;
        }
        if (r.spec().train().evalDue(r.committed())) {
            r.evaluating = new BitSet();
            for (int rank = 0; rank < r.ranks.size(); rank++) {
                if (r.spec().layout().dpIndex(rank) == 0) {
                    r.ranks.get(rank).tell(new WorkerActor.Evaluate(r.identity, r.committed(), r.spec().train().evalBatches()));
                } else {
                    r.evaluating.set(rank);
                }
            }
            r.valLoss = Double.NaN;
            startDeadline("validation");
            return Behaviors.same();
        }
        r.valLoss = Double.NaN;
        return reportStep();
    }

    private Behavior<Command> onEvalDone(EvalDone m) {
        JobRun r = run;
        if (!r.identity.equals(m.job()) || r.evaluating == null || m.step() != r.committed()) {
            return Behaviors.same();
        }
        r.evaluating.set(m.rank());
        if (!Double.isNaN(m.loss())) {
            r.valLoss = m.loss();
            r.lastValLoss = m.loss();
        }
        if (r.evaluating.cardinality() < r.ranks.size()) {
            return Behaviors.same();
        }
        r.evaluating = null;
        return reportStep();
    }

    /** Tells the submitter about the committed step (once per step, replays included), then checkpoints or goes on. */
    private Behavior<Command> reportStep() {
        JobRun r = run;
        CommitLedger.Committed c = r.lastCommitted;
        if (c.step() + 1 > r.reportedUpTo) {
            double tokens = (double) r.spec().train().batchSize() * r.spec().train().model().seqLen();
            r.submitter.tell(new JobEvent.StepCompleted(r.committed(), r.spec().train().steps(), c.loss(), r.valLoss,
                c.gradNorm(), c.lr(), r.lastStepMs, tokens / (r.lastStepMs / 1e3), c.bubble(), c.allReduceMs(),
                c.memBytes() / (1024.0 * 1024.0), c.gradBytesSent()));
            r.reportedUpTo = c.step() + 1;
        }
        r.lastLoss = c.loss();
        if (c.traces().length > 0) {
            String[] names = new String[r.ranks.size()];
            for (int rank = 0; rank < names.length; rank++) {
                names[rank] = "rank " + rank + " (dp" + r.spec().layout().dpIndex(rank) + " pp" + r.spec().layout().ppIndex(rank) + ")";
            }
            r.submitter.tell(new JobEvent.StepTrace(r.committed(), "Troupe " + r.spec().layout() + " " + r.spec().schedule()
                + ", m=" + r.spec().microbatches() + ", step " + r.committed(), names, c.traces()));
        }
        if (r.spec().train().checkpointDue(r.committed())) {
            return committing();
        }
        return nextOrFinish();
    }

    private Behavior<Command> nextOrFinish() {
        JobRun r = run;
        if (r.committed() >= r.spec().train().steps()) {
            return finishJob();
        }
        if (r.committed() < r.windowEnd) {
            // the ranks already run this step: count the reports that overtook the commit
            beginStep();
            CommitLedger.Committed c = r.ledger.drainEarly();
            return c != null ? onCommitted(c) : running();
        }
        return runWindow();
    }

    // ------------------------------------------------------------------ committing

    private Behavior<Command> onCheckpointWritten(CheckpointWritten m) {
        JobRun r = run;
        if (!r.identity.equals(m.job()) || r.checkpoint == null || m.step() != r.checkpoint.step()) {
            return Behaviors.same();
        }
        if (!r.checkpoint.add(m.rank(), m.names(), m.bytes(), m.crcs())) {
            return Behaviors.same();
        }
        var mf = r.checkpoint.manifest(r.request.seed(), r.request.batchSize(), r.current.layout(), r.spec().train().model(),
            r.request.dataPath().isEmpty() ? "built-in Markov corpus" : r.request.dataPath());
        String dir;
        try {
            dir = io.troupe.models.checkpoint.Checkpoints.commit(Path.of(r.request.checkpointDir()), mf, mf.files()).toString();
        } catch (io.troupe.models.checkpoint.CheckpointException e) {
            r.checkpoint = null;
            return recovering("checkpoint of step " + r.committed() + " could not be committed: " + e.getMessage());
        }
        r.checkpoint = null;
        r.record = r.record.withCommit(r.committed(), dir);
        writeRecord(r);
        timers.cancel(DEADLINE);
        if (r.committed() < r.spec().train().steps()) {
            LayoutPlanner.Plan full = LayoutPlanner.plan(r.request.layout(), r.request.virtualStages(), r.request.microbatches(),
                members.usable().size());
            if (full.dp() > r.plan.dp()) {
                return replanning("grow back to dp " + full.dp() + " (" + members.usable().size()
                    + " workers) from the commit of step " + r.committed(), false);
            }
        }
        return nextOrFinish();
    }

    // ------------------------------------------------------------------ faults and recovery

    private Behavior<Command> onWorkerFailed(WorkerFailed m) {
        if (!run.identity.equals(m.job())) {
            return Behaviors.same();
        }
        if (run.memoryRestore != null && m.reason().contains(EpochWiring.MEMORY_RESTORE_FAILED)) {
            run.memoryRefused = "rank " + m.rank() + " " + m.reason();
        }
        return recovering("rank " + m.rank() + " " + m.reason());
    }

    private Behavior<Command> onDeadline(Deadline m) {
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

    private Behavior<Command> onQuiesced(Quiesced m) {
        JobRun r = run;
        if (members.contains(m.worker())) {
            r.quiesced.add(m.worker());
            if (m.holds().jobId() == r.identity.jobId()) {
                r.inventories.put(m.worker(), m.snapshots());
            }
        }
        return replanIfSettled(false);
    }

    private Behavior<Command> onRecoveryTimer(RecoveryTimer m) {
        JobRun r = run;
        if (!m.job().equals(r.identity)) {
            return Behaviors.same();
        }
        if (m.what().equals("backoff")) {
            r.backoffDone = true;
            return replanIfSettled(false);
        }
        if (m.what().equals("quiesce")) {
            return replanIfSettled(true);
        }
        if (m.what().equals("regather")) {
            return failJob("recovery found too few workers within " + settings.regatherTimeout().toSeconds() + " s: "
                + r.planError + "; faults: " + r.record.faults());
        }
        return Behaviors.same();
    }

    /**
     * Re-plans once the back-off passed and every usable worker quiesced (or the quiesce wait ran
     * out: a silent worker is left out): the layout from the quiesced workers, then gathering.
     */
    private Behavior<Command> replanIfSettled(boolean quiesceTimedOut) {
        JobRun r = run;
        List<ActorRef<WorkerActor.Command>> usable = members.usable();
        boolean allQuiet = r.quiesced.containsAll(usable) && !r.adopted;
        if (!r.backoffDone || !(allQuiet || quiesceTimedOut || r.quiesceExpired)) {
            return Behaviors.same();
        }
        r.quiesceExpired |= quiesceTimedOut;
        int available = 0;
        for (ActorRef<WorkerActor.Command> w : usable) {
            if (r.quiesced.contains(w)) {
                available++;
            }
        }
        try {
            r.replan(available);
        } catch (IllegalStateException e) {
            r.planError = e.getMessage();
            if (!timers.isTimerActive("regather")) {
                timers.startSingleTimer("regather", new RecoveryTimer(r.identity, "regather"), settings.regatherTimeout());
            }
            return Behaviors.same();
        }
        timers.cancel("regather");
        timers.cancel("quiesce");
        r.adopted = false;
        chooseRestore(r);
        ctx.getLog().warn("{}: re-planned on {} worker(s): layout {}, {} micro-batches per replica, from step {}", r.identity,
            available, r.current.layout(), r.current.microbatches(), r.record.lastCommittedStep());
        return gathering();
    }

    /**
     * Restore from memory when the snapshots cover the last committed step on the same layout, else
     * from the disk checkpoint, saying why.
     */
    private void chooseRestore(JobRun r) {
        r.memoryRestore = null;
        if (!settings.snapshots() || r.memoryStep < 0) {
            return;
        }
        SnapshotRestorePlanner.Decision<ActorRef<WorkerActor.Command>> d = r.memoryRefused != null
            ? SnapshotRestorePlanner.Decision.disk(r.memoryRefused)
            : SnapshotRestorePlanner.plan(r.memoryStep, r.record.lastCommittedStep(), r.previousRanks,
                sameLayout(r.current.layout(), r.previousLayout, r.request.virtualStages()), r.candidates(members.usable()),
                r.plan.worldSize(), stateClasses(JobSpecs.toSpec(r.current, 1)), r.inventories);
        if (d.fromMemory()) {
            r.memoryRestore = d;
            r.restoredStep = d.step();
            ctx.getLog().warn("{}: restoring step {} from in-memory snapshots (by rank: holder {}, snapshot of rank {})",
                r.identity, d.step(), java.util.Arrays.toString(d.holderOf()), java.util.Arrays.toString(d.sourceOf()));
        } else {
            ctx.getLog().warn("{}: restoring from the disk checkpoint of step {}, not from memory: {}", r.identity,
                r.record.lastCommittedStep(), d.reason());
        }
    }

    /** Whether {@code ranks} can take snapshots of {@code r}'s job: on, not under int8-ef, every worker with an endpoint. */
    private boolean snapshotsPossible(JobRun r, List<ActorRef<WorkerActor.Command>> ranks) {
        if (!settings.snapshots() || "int8-ef".equals(r.current.gradCompression())) {
            return false;
        }
        for (ActorRef<WorkerActor.Command> w : ranks) {
            WorkerDescription d = members.describe(w);
            if (d == null || d.snapshotEndpoint().isEmpty()) {
                return false;
            }
        }
        return true;
    }

    /** Whether two layout strings ("2x1" and "2x1x1" alike) name the same dp, pp and tp. */
    private static boolean sameLayout(String a, String b, int virtualStages) {
        if (a.isEmpty() || b.isEmpty()) {
            return false;
        }
        return io.troupe.models.parallel.Layout.parse(a, virtualStages).equals(io.troupe.models.parallel.Layout.parse(b,
            virtualStages));
    }

    private void writeRecord(JobRun r) {
        String error = r.writeRecord();
        if (error != null) {
            ctx.getLog().warn("{}: job record not written, carrying on from memory: {}", r.identity, error);
        }
    }

    private void startDeadline(String phase) {
        JobRun r = run;
        timers.startSingleTimer(DEADLINE, new Deadline(r.identity, r.committed(), phase), Duration.ofMillis(r.request.stepTimeoutMs()));
    }

    // ------------------------------------------------------------------ finished / failed

    private Behavior<Command> finishJob() {
        JobRun r = run;
        timers.cancel(DEADLINE);
        r.record = r.record.withState(JobRecord.State.FINISHED);
        writeRecord(r);
        r.submitter.tell(new JobEvent.Finished(r.committed(), r.lastLoss, r.lastValLoss, r.record.lastCheckpoint()));
        ctx.getLog().info("{} finished after {} steps ({} restarts)", r.identity, r.committed(), r.record.restarts());
        run = null;
        return idle();
    }

    private Behavior<Command> failJob(String reason) {
        JobRun r = run;
        timers.cancel(DEADLINE);
        ctx.getLog().error("{} failed: {}; last committed step {}", r.identity, reason, r.record.lastCommittedStep());
        for (ActorRef<WorkerActor.Command> w : members.usable()) {
            w.tell(new WorkerActor.Abort(r.identity, reason, ctx.getSelf()));
        }
        try {
            r.record = r.record.withState(JobRecord.State.FAILED);
            writeRecord(r);
        } finally {
            r.submitter.tell(new JobEvent.Failed(reason, r.record.lastCommittedStep(), r.identity.epoch()));
            run = null;
        }
        return idle();
    }
}
