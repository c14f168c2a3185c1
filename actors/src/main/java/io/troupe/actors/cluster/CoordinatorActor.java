package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.engine.PipelineJobSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * The job coordinator (a Cluster Singleton): gathers workers from the Receptionist, assigns ranks
 * ({@code rank = tp_i + tp(dp_i + dp pp_i)}, workers ordered by node address and local index),
 * and drives the job in windows of steps: RunSteps tells every rank to run steps up to the next
 * boundary (validation, a checkpoint, the end) back to back. Within a window the control plane is off
 * the critical path: each rank agrees the global gradient norm with the others over the data plane,
 * clips, steps its optimizer and reports a StepDone; a step is committed when every rank has
 * reported it (a report of a later step that overtakes waits in {@code early}). At a boundary the
 * coordinator runs validation and the two-phase checkpoint, then starts the next window. Every
 * message carries the epoch; a lost member, a worker error or a step past its deadline ends the job
 * with the reason and the last committed step.
 */
public final class CoordinatorActor extends AbstractBehavior<CoordinatorActor.Command> {

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

    public record WorkerInfo(ActorRef<WorkerActor.Command> worker, WorkerDescription description)
        implements Command, CrossNodeMessage {
    }

    public record Ready(int rank, long epoch, String error) implements Command, CrossNodeMessage {
    }

    /**
     * A rank finished step {@code step}, optimizer included.
     *
     * @param gradNorm the global gradient norm the ranks agreed on (before clipping)
     * @param lr       the learning rate the step used
     * @param trace    the rank's intervals when the step was traced, else {@link WorkerTrace#EMPTY}
     */
    public record StepDone(int rank, long epoch, long step, double lossSum, int lossCount, double gradNorm, float lr,
                           double busyMs, double idleMs, double allReduceMs, WorkerTrace trace, String error)
        implements Command, CrossNodeMessage {
    }

    /** A rank's validation loss after {@code step} (NaN unless it holds the last model stage). */
    public record EvalDone(int rank, long epoch, long step, double loss, String error) implements Command, CrossNodeMessage {
    }

    public record WorkerFailed(int rank, long epoch, String reason) implements Command, CrossNodeMessage {
    }

    /** A rank's shard files of {@code step}, written into the step's temporary directory. */
    public record CheckpointWritten(int rank, long epoch, long step, String[] names, long[] bytes, long[] crcs,
                                    String error) implements Command, CrossNodeMessage {
    }

    private record WorkersChanged(Set<ActorRef<WorkerActor.Command>> workers) implements Command {
    }

    private record MemberGone(String address, String how) implements Command {
    }

    private record StepTimeout(long epoch, long step, String phase) implements Command {
    }

    private record GatherTimeout(JobRequest job) implements Command {
    }

    private final ActorContext<Command> ctx;
    private final TimerScheduler<Command> timers;
    private final Map<ActorRef<WorkerActor.Command>, WorkerDescription> known = new HashMap<>();
    private final Set<ActorRef<WorkerActor.Command>> listed = new HashSet<>();

    // The job in flight.
    private JobRequest job;
    private PipelineJobSpec spec;
    private ActorRef<JobEvent> submitter;
    private List<ActorRef<WorkerActor.Command>> ranks = List.of();
    private long epoch;
    private long committed;
    private final Set<Integer> answered = new HashSet<>();
    private double lossSum;
    private int lossCount;
    private double busyMs;
    private double idleMs;
    private double lastLoss;
    private String resumeFrom = "";
    private final List<io.troupe.models.checkpoint.Manifest.FileEntry> shardFiles = new ArrayList<>();
    private double lastNorm;
    private float lastLr;
    private double allReduceMs;
    private double lastStepMs;
    private double lastBubble;
    private double valLoss;
    private double lastValLoss = Double.NaN;
    private String lastCheckpoint = "";
    private WorkerTrace[] traces = new WorkerTrace[0];
    /** The ranks run steps up to (excluding) this one without being told again. */
    private long windowEnd;
    private long lastCommitNs;
    private final List<StepDone> early = new ArrayList<>();

    public static Behavior<Command> create() {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> new CoordinatorActor(ctx, timers)));
    }

    private CoordinatorActor(ActorContext<Command> ctx, TimerScheduler<Command> timers) {
        super(ctx);
        this.ctx = ctx;
        this.timers = timers;
        ActorRef<Receptionist.Listing> listing = ctx.messageAdapter(Receptionist.Listing.class,
            l -> new WorkersChanged(l.getServiceInstances(WorkerActor.KEY)));
        ctx.getSystem().receptionist().tell(Receptionist.subscribe(WorkerActor.KEY, listing));
        ActorRef<ClusterEvent.MemberRemoved> removed = ctx.messageAdapter(ClusterEvent.MemberRemoved.class,
            e -> new MemberGone(e.member().address().toString(), "removed"));
        ActorRef<ClusterEvent.UnreachableMember> unreachable = ctx.messageAdapter(ClusterEvent.UnreachableMember.class,
            e -> new MemberGone(e.member().address().toString(), "unreachable"));
        Cluster cluster = Cluster.get(ctx.getSystem());
        cluster.subscriptions().tell(Subscribe.create(removed, ClusterEvent.MemberRemoved.class));
        cluster.subscriptions().tell(Subscribe.create(unreachable, ClusterEvent.UnreachableMember.class));
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
            .onMessage(WorkersChanged.class, this::onWorkersChanged)
            .onMessage(WorkerInfo.class, this::onWorkerInfo)
            .onMessage(SubmitJob.class, this::onSubmit)
            .onMessage(CancelJob.class, this::onCancel)
            .onMessage(Ready.class, this::onReady)
            .onMessage(StepDone.class, this::onStepDone)
            .onMessage(EvalDone.class, this::onEvalDone)
            .onMessage(WorkerFailed.class, this::onWorkerFailed)
            .onMessage(MemberGone.class, this::onMemberGone)
            .onMessage(StepTimeout.class, this::onStepTimeout)
            .onMessage(GatherTimeout.class, this::onGatherTimeout)
            .onMessage(CheckpointWritten.class, this::onCheckpointWritten)
            .build();
    }

    private Behavior<Command> onWorkersChanged(WorkersChanged m) {
        for (ActorRef<WorkerActor.Command> w : m.workers()) {
            if (listed.add(w)) {
                w.tell(new WorkerActor.Describe(ctx.getSelf()));
            }
        }
        for (ActorRef<WorkerActor.Command> w : new ArrayList<>(listed)) {
            if (!m.workers().contains(w)) {
                listed.remove(w);
                WorkerDescription d = known.remove(w);
                int rank = ranks.indexOf(w);
                if (job != null && rank >= 0) {
                    fail("worker rank " + rank + " on " + (d == null ? w.path().address() : d.nodeAddress()) + " left the cluster");
                }
            }
        }
        return this;
    }

    private Behavior<Command> onWorkerInfo(WorkerInfo m) {
        known.put(m.worker(), m.description());
        tryStart();
        return this;
    }

    private Behavior<Command> onCancel(CancelJob m) {
        if (job != null && m.submitter().equals(submitter)) {
            fail("cancelled: " + m.reason());
        }
        return this;
    }

    private Behavior<Command> onSubmit(SubmitJob m) {
        if (job != null) {
            m.replyTo().tell(new JobEvent.Failed("a job is already running (epoch " + epoch + ")", 0, epoch));
            return this;
        }
        try {
            this.spec = JobSpecs.toSpec(m.job(), 1);
        } catch (RuntimeException e) {
            m.replyTo().tell(new JobEvent.Failed("job refused before any work: " + e.getMessage(), 0, epoch));
            return this;
        }
        this.committed = 0;
        this.resumeFrom = "";
        this.lastValLoss = Double.NaN;
        this.lastCheckpoint = "";
        if (!m.job().checkpointDir().isEmpty()) {
            try {
                java.nio.file.Path dir = io.troupe.models.checkpoint.Checkpoints.resolve(java.nio.file.Path.of(m.job().checkpointDir()));
                io.troupe.models.checkpoint.Manifest mf = io.troupe.models.checkpoint.Checkpoints.load(dir).manifest();
                if (!mf.model().equals(spec.train().model()) || mf.batchSize() != m.job().batchSize() || mf.seed() != m.job().seed()) {
                    m.replyTo().tell(new JobEvent.Failed("job refused before any work: checkpoint " + dir + " was written for model "
                        + mf.model().name() + ", batch_size=" + mf.batchSize() + ", seed=" + mf.seed(), 0, epoch));
                    return this;
                }
                this.committed = mf.step();
                this.resumeFrom = dir.toString();
            } catch (io.troupe.models.checkpoint.CheckpointException e) {
                if (!e.getMessage().startsWith("no committed checkpoint")) {
                    m.replyTo().tell(new JobEvent.Failed("job refused before any work: " + e.getMessage(), 0, epoch));
                    return this;
                }
            }
        }
        this.job = m.job();
        this.submitter = m.replyTo();
        ctx.getLog().info("job submitted: layout {} schedule {}, waiting for {} workers ({} known)",
            job.layout(), job.schedule(), spec.layout().worldSize(), known.size());
        tryStart();
        return this;
    }

    private void tryStart() {
        if (job == null || !ranks.isEmpty()) {
            return;
        }
        if (known.size() < spec.layout().worldSize()) {
            if (!timers.isTimerActive("gather")) {
                timers.startSingleTimer("gather", new GatherTimeout(job), Duration.ofMillis(job.stepTimeoutMs()));
            }
            return;
        }
        timers.cancel("gather");
        epoch++;
        List<Map.Entry<ActorRef<WorkerActor.Command>, WorkerDescription>> order = new ArrayList<>(known.entrySet());
        order.sort(Comparator.comparing((Map.Entry<ActorRef<WorkerActor.Command>, WorkerDescription> e) -> e.getValue().nodeAddress())
            .thenComparingInt(e -> e.getValue().localIndex()));
        int world = spec.layout().worldSize();
        List<ActorRef<WorkerActor.Command>> chosen = new ArrayList<>();
        List<String> endpoints = new ArrayList<>();
        List<String> controlEndpoints = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            chosen.add(order.get(r).getKey());
            endpoints.add(order.get(r).getValue().dataEndpoint());
            controlEndpoints.add(order.get(r).getValue().controlEndpoint());
        }
        this.ranks = List.copyOf(chosen);
        answered.clear();
        for (int r = 0; r < world; r++) {
            ranks.get(r).tell(new WorkerActor.Assign(epoch, r, job, endpoints, controlEndpoints, resumeFrom, ctx.getSelf()));
        }
        timers.startSingleTimer("deadline", new StepTimeout(epoch, committed, "assignment"), Duration.ofMillis(job.stepTimeoutMs()));
    }

    private Behavior<Command> onReady(Ready m) {
        if (m.epoch() != epoch || job == null) {
            return this;
        }
        if (m.error() != null) {
            fail("rank " + m.rank() + " cannot take its assignment: " + m.error());
            return this;
        }
        answered.add(m.rank());
        if (answered.size() == ranks.size()) {
            StringBuilder sb = new StringBuilder();
            for (int r = 0; r < ranks.size(); r++) {
                sb.append(r == 0 ? "" : ", ").append("rank ").append(r).append(" -> ").append(known.get(ranks.get(r)).nodeAddress())
                    .append('#').append(known.get(ranks.get(r)).localIndex());
            }
            submitter.tell(new JobEvent.Started(epoch, ranks.size(), sb.toString()));
            nextOrFinish(); // a job resumed at or past its last step finishes at once
        }
        return this;
    }

    /**
     * Starts the ranks on steps {@link #committed} up to the next boundary (validation, checkpoint or
     * the last step): between boundaries they run free, each step's gradient norm agreed over the
     * data plane, and the coordinator only counts StepDones.
     */
    private void runWindow() {
        long until = committed + 1;
        while (until < spec.train().steps() && !spec.train().evalDue(until)
            && !(!job.checkpointDir().isEmpty() && spec.train().checkpointDue(until))) {
            until++;
        }
        windowEnd = until;
        long traceStep = spec.train().steps() - 1;
        for (ActorRef<WorkerActor.Command> w : ranks) {
            w.tell(new WorkerActor.RunSteps(epoch, committed, until, traceStep));
        }
        lastCommitNs = System.nanoTime();
        beginStep();
    }

    /** Resets the accumulators of step {@link #committed}; its time runs from {@link #lastCommitNs}. */
    private void beginStep() {
        answered.clear();
        lossSum = 0;
        lossCount = 0;
        busyMs = 0;
        idleMs = 0;
        allReduceMs = 0;
        traces = new WorkerTrace[committed == spec.train().steps() - 1 ? ranks.size() : 0];
        timers.startSingleTimer("deadline", new StepTimeout(epoch, committed, "compute"), Duration.ofMillis(job.stepTimeoutMs()));
    }

    private Behavior<Command> onStepDone(StepDone m) {
        if (m.epoch() != epoch || job == null || m.step() < committed) {
            return this;
        }
        if (m.error() != null) {
            fail("rank " + m.rank() + " failed in step " + m.step() + ": " + m.error());
            return this;
        }
        if (m.step() > committed) {
            // A rank's report of a later step overtook another rank's report of this one.
            early.add(m);
            return this;
        }
        if (!answered.add(m.rank())) {
            return this;
        }
        lossSum += m.lossSum();
        lossCount += m.lossCount();
        busyMs += m.busyMs();
        idleMs += m.idleMs();
        allReduceMs = Math.max(allReduceMs, m.allReduceMs());
        lastNorm = m.gradNorm();
        lastLr = m.lr();
        if (m.rank() < traces.length) {
            traces[m.rank()] = m.trace();
        }
        if (answered.size() == ranks.size()) {
            committed++;
            long now = System.nanoTime();
            lastStepMs = (now - lastCommitNs) / 1e6; // commit to commit (or window start to commit)
            lastCommitNs = now;
            lastBubble = busyMs + idleMs > 0 ? idleMs / (busyMs + idleMs) : 0;
            lastLoss = lossSum / Math.max(1, lossCount);
            valLoss = Double.NaN;
            if (spec.train().evalDue(committed)) {
                startEvaluation();
            } else {
                reportStep();
            }
        }
        return this;
    }

    /** Validation: replica 0's ranks chain their forwards; the last stage's rank has the loss. */
    private void startEvaluation() {
        answered.clear();
        for (int r = 0; r < ranks.size(); r++) {
            if (spec.layout().dpIndex(r) == 0) {
                ranks.get(r).tell(new WorkerActor.Evaluate(epoch, committed, spec.train().evalBatches()));
            } else {
                answered.add(r);
            }
        }
        timers.startSingleTimer("deadline", new StepTimeout(epoch, committed, "validation"), Duration.ofMillis(job.stepTimeoutMs()));
    }

    private Behavior<Command> onEvalDone(EvalDone m) {
        if (m.epoch() != epoch || job == null || m.step() != committed) {
            return this;
        }
        if (m.error() != null) {
            fail("rank " + m.rank() + " failed in validation after step " + m.step() + ": " + m.error());
            return this;
        }
        if (!answered.add(m.rank())) {
            return this;
        }
        if (!Double.isNaN(m.loss())) {
            valLoss = m.loss();
            lastValLoss = valLoss;
        }
        if (answered.size() == ranks.size()) {
            reportStep();
        }
        return this;
    }

    /** Tells the submitter about the committed step, then checkpoints or goes on. */
    private void reportStep() {
        double tokens = (double) spec.train().batchSize() * spec.train().model().seqLen();
        submitter.tell(new JobEvent.StepCompleted(committed, spec.train().steps(), lastLoss, valLoss, lastNorm, lastLr,
            lastStepMs, tokens / (lastStepMs / 1e3), lastBubble, allReduceMs));
        if (traces.length > 0) {
            String[] names = new String[ranks.size()];
            for (int r = 0; r < names.length; r++) {
                names[r] = "rank " + r + " (dp" + spec.layout().dpIndex(r) + " pp" + spec.layout().ppIndex(r) + ")";
                if (traces[r] == null) {
                    traces[r] = WorkerTrace.EMPTY;
                }
            }
            submitter.tell(new JobEvent.StepTrace(committed, "Troupe " + spec.layout() + " " + spec.schedule() + ", m="
                + spec.microbatches() + ", step " + committed, names, traces));
            traces = new WorkerTrace[0];
        }
        boolean ckptDue = !job.checkpointDir().isEmpty() && spec.train().checkpointDue(committed);
        if (ckptDue) {
            startCheckpoint();
        } else {
            nextOrFinish();
        }
    }

    private void nextOrFinish() {
        if (committed >= spec.train().steps()) {
            timers.cancel("deadline");
            submitter.tell(new JobEvent.Finished(committed, lastLoss, lastValLoss, lastCheckpoint));
            clearJob();
        } else if (committed < windowEnd) {
            // the ranks already run this step: take the reports that overtook the commit
            beginStep();
            List<StepDone> waiting = new ArrayList<>(early);
            early.clear();
            for (StepDone d : waiting) {
                onStepDone(d);
            }
        } else {
            runWindow();
        }
    }

    /** Phase 1 of a checkpoint: every rank writes its shards; replica 0 holds each shard once. */
    private void startCheckpoint() {
        answered.clear();
        shardFiles.clear();
        io.troupe.models.checkpoint.Checkpoints.discardPartial(java.nio.file.Path.of(job.checkpointDir()), committed);
        for (ActorRef<WorkerActor.Command> w : ranks) {
            w.tell(new WorkerActor.WriteCheckpoint(epoch, committed, job.checkpointDir()));
        }
        timers.startSingleTimer("deadline", new StepTimeout(epoch, committed, "checkpoint"), Duration.ofMillis(job.stepTimeoutMs()));
    }

    /** Phase 2: with every rank's shards written, the manifest commits the step. */
    private Behavior<Command> onCheckpointWritten(CheckpointWritten m) {
        if (m.epoch() != epoch || job == null || m.step() != committed) {
            return this;
        }
        if (m.error() != null) {
            fail("rank " + m.rank() + " could not write its checkpoint shards of step " + m.step() + ": " + m.error());
            return this;
        }
        if (!answered.add(m.rank())) {
            return this;
        }
        for (int i = 0; i < m.names().length; i++) {
            shardFiles.add(new io.troupe.models.checkpoint.Manifest.FileEntry(m.names()[i], m.bytes()[i], m.crcs()[i]));
        }
        if (answered.size() == ranks.size()) {
            try {
                io.troupe.models.checkpoint.Manifest mf = new io.troupe.models.checkpoint.Manifest(
                    io.troupe.models.checkpoint.Manifest.FORMAT, committed, committed, job.seed(), job.batchSize(), job.layout(),
                    spec.train().model(), job.dataPath().isEmpty() ? "built-in Markov corpus" : job.dataPath(), List.of());
                lastCheckpoint = io.troupe.models.checkpoint.Checkpoints.commit(java.nio.file.Path.of(job.checkpointDir()), mf,
                    List.copyOf(shardFiles)).toString();
            } catch (io.troupe.models.checkpoint.CheckpointException e) {
                fail("checkpoint of step " + committed + " could not be committed: " + e.getMessage());
                return this;
            }
            nextOrFinish();
        }
        return this;
    }

    private Behavior<Command> onWorkerFailed(WorkerFailed m) {
        if (m.epoch() == epoch && job != null) {
            fail("rank " + m.rank() + " failed: " + m.reason());
        }
        return this;
    }

    private Behavior<Command> onMemberGone(MemberGone m) {
        if (job == null) {
            return this;
        }
        List<Integer> lost = new ArrayList<>();
        for (int r = 0; r < ranks.size(); r++) {
            WorkerDescription d = known.get(ranks.get(r));
            if (d != null && d.nodeAddress().equals(m.address())) {
                lost.add(r);
            }
        }
        if (!lost.isEmpty()) {
            fail("lost member " + m.address() + " (" + m.how() + ") hosting rank(s) " + lost);
        }
        return this;
    }

    private Behavior<Command> onStepTimeout(StepTimeout m) {
        if (m.epoch() == epoch && job != null && m.step() == committed) {
            List<Integer> missing = new ArrayList<>();
            for (int r = 0; r < ranks.size(); r++) {
                if (!answered.contains(r)) {
                    missing.add(r);
                }
            }
            fail("step " + m.step() + " " + m.phase() + " passed its deadline of " + job.stepTimeoutMs()
                + " ms waiting for rank(s) " + missing);
        }
        return this;
    }

    private Behavior<Command> onGatherTimeout(GatherTimeout m) {
        if (job == m.job() && ranks.isEmpty()) {
            fail("layout " + job.layout() + " needs " + spec.layout().worldSize() + " workers, only " + known.size()
                + " registered within " + job.stepTimeoutMs() + " ms");
        }
        return this;
    }

    private void fail(String reason) {
        ctx.getLog().error("job failed: {}; last committed step {}", reason, committed);
        timers.cancel("deadline");
        if (submitter != null) {
            submitter.tell(new JobEvent.Failed(reason, committed, epoch));
        }
        for (ActorRef<WorkerActor.Command> w : ranks) {
            w.tell(new WorkerActor.Abort(epoch, reason));
        }
        clearJob();
        epoch++;
    }

    private void clearJob() {
        job = null;
        spec = null;
        submitter = null;
        ranks = List.of();
        answered.clear();
        windowEnd = 0;
        early.clear();
    }
}
