package io.troupe.actors.cluster;

import io.troupe.actors.cluster.snapshot.DirectMemory;
import io.troupe.actors.cluster.snapshot.SnapshotExchange;
import io.troupe.collectives.CollectiveAgent;
import io.troupe.models.data.CorpusCache;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.WorkerTransport;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * A worker: owns one device (a CPU thread budget) and, once assigned, the stage shards of its rank.
 * Steering only: each epoch's wiring ({@link EpochWiring}) is built, run and closed on the worker's
 * device thread (one in-order thread); activations and gradients move over the Aeron data plane,
 * never through mailboxes.
 *
 * <p>Protocol: registers under {@link #KEY}; answers {@link Describe} with its endpoints and the job
 * identity it holds; on {@link Assign} builds the epoch and answers Ready with its snapshot's size and the
 * fingerprint of the job's data as it read it ({@link DropSnapshots} may then turn the epoch's snapshots off);
 * {@link RunSteps} runs a window of steps back to back on the device thread, each reported with a StepDone sent
 * straight from the device thread; {@link Committed} tells which snapshots a rank may overwrite; {@link Evaluate} and
 * {@link WriteCheckpoint} come between windows; {@link Abort} ends the epoch at once (stage waits and collectives fail;
 * a build in progress stops waiting for a snapshot copy and stops reading its checkpoint, and is then closed rather
 * than taken) and is answered with Quiesced when the device thread is idle. Every message carries the
 * {@link JobIdentity}; a {@link ControlGate} admits only the current one and counts the rest. Supervision: any failure
 * is reported to the coordinator as a WorkerFailed, which starts its recovery; one no restart can cure (the job's
 * data missing here, unreadable or too short: {@link IncurableJobException}) says so, and fails the job.
 */
public final class WorkerActor extends AbstractBehavior<WorkerActor.Command> {
    /** How long a stopping worker waits for its device thread to end the epoch before freeing the data plane. */
    static final long STOP_WAIT_S = 10;
    public static final ServiceKey<Command> KEY = ServiceKey.create(Command.class, "troupe-worker");

    public sealed interface Command {
    }

    public record Describe(ActorRef<CoordinatorActor.Command> replyTo) implements Command, CrossNodeMessage {
    }

    /**
     * Take rank {@code rank} of {@code job}'s epoch.
     *
     * @param request    the job as it runs this epoch (its layout may differ from the submitted one)
     * @param resumeFrom a committed checkpoint directory to restore from, or "" to start fresh
     * @param snapshots  the epoch's in-memory snapshots: taken or not, the buddies, a restore from memory
     */
    public record Assign(JobIdentity job, int rank, JobRequest request, List<String> endpoints,
                         List<String> controlEndpoints, String resumeFrom, SnapshotPlan snapshots,
                         ActorRef<CoordinatorActor.Command> replyTo)
        implements Command, CrossNodeMessage {

        /** An assignment without snapshots. */
        public Assign(JobIdentity job, int rank, JobRequest request, List<String> endpoints,
                      List<String> controlEndpoints, String resumeFrom, ActorRef<CoordinatorActor.Command> replyTo) {
            this(job, rank, request, endpoints, controlEndpoints, resumeFrom, SnapshotPlan.OFF, replyTo);
        }
    }

    /** Write this rank's shards of {@code step} under {@code root} (replica 0 only; others answer with none). */
    public record WriteCheckpoint(JobIdentity job, long step, String root) implements Command, CrossNodeMessage {
    }

    /**
     * Run steps {@code from} up to {@code until} (exclusive) back to back, each answered with a
     * StepDone; steps {@code traceFirst..traceLast} (0-based, inclusive) also send their intervals.
     */
    public record RunSteps(JobIdentity job, long from, long until, long traceFirst, long traceLast)
        implements Command, CrossNodeMessage {
        boolean traced(long step) {
            return step >= traceFirst && step <= traceLast;
        }
    }

    /**
     * {@code job}'s steps before {@code step} are committed (every rank reported them): with
     * snapshots, this rank's snapshots of older steps may be overwritten; see {@link SnapshotExchange}.
     */
    public record Committed(JobIdentity job, long step) implements Command, CrossNodeMessage {
    }

    /**
     * {@code job}'s epoch keeps no in-memory snapshots after all, for {@code reason} (a node cannot hold the slots
     * the ranks' snapshots take, as their builds reported them): sent after every Ready, before the first steps,
     * its commits capture none.
     */
    public record DropSnapshots(JobIdentity job, String reason) implements Command, CrossNodeMessage {
    }

    /** Validation after {@code step}: replica 0's ranks run {@code batches} forward-only batches together. */
    public record Evaluate(JobIdentity job, long step, int batches) implements Command, CrossNodeMessage {
    }

    /**
     * End {@code job}'s epoch (this one or an older one) now; answered with Quiesced once the device is idle.
     * {@code stop}: the job's submitter stopped it, an expected end (not a fault), logged at info.
     */
    public record Abort(JobIdentity job, String reason, boolean stop, ActorRef<CoordinatorActor.Command> replyTo)
        implements Command, CrossNodeMessage {
        /** An abort for a fault, a recovery or a failure. */
        public Abort(JobIdentity job, String reason, ActorRef<CoordinatorActor.Command> replyTo) {
            this(job, reason, false, replyTo);
        }
    }

    /**
     * {@code job} ended (finished, failed or stopped): what its epoch holds here (parameters, optimizer state,
     * buffers, links, its data) is freed now, behind whatever the device thread still runs for it, rather than kept
     * until the next job's assignment. Ignored when this worker holds another job's epoch or none.
     */
    public record Release(JobIdentity job) implements Command, CrossNodeMessage {
    }

    /** A build ended: its wiring or its error (incurable: no restart cures it), and the stop set meanwhile. */
    private record Built(EpochWiring wiring, Assign assign, String error, boolean incurable,
                         AtomicReference<String> stop)
        implements Command {
    }

    private record Idle(ActorRef<CoordinatorActor.Command> replyTo) implements Command {
    }

    private final ActorContext<Command> ctx;
    /** How it describes itself, less its direct memory, which {@link #describe()} measures each time. */
    private final WorkerDescription description;
    /** The direct memory its JVM can give snapshot slots now ({@link DirectMemory#availableForSnapshotsBytes()}). */
    private final LongSupplier freeDirectMemory;
    private final WorkerTransport transport;
    private final CollectiveAgent agent;
    private final CollectiveAgent control;
    private final AeronStageLink link;
    /** This worker's in-memory snapshots and the copies it keeps for its buddies; outlives epochs. */
    private final SnapshotExchange snapshots;
    private final int threads;
    private final ExecutorService deviceExecutor;
    private final ControlGate gate = new ControlGate();
    /** Owned by the device thread once built; the actor only reads it to abort. */
    private volatile EpochWiring wiring;
    /**
     * Why the last assignment's build must stop (null: it goes on): set by the actor when the epoch is aborted
     * or superseded, read by the build on the device thread. A new one for every assignment.
     */
    private AtomicReference<String> buildStop = new AtomicReference<>();
    /** What each build asks for its stop, given the stop itself: the stop, except in a test that holds a build. */
    private final UnaryOperator<Supplier<String>> buildStopView;
    /** Where each build reads the job's data, given the job's data path: that path, except in a test. */
    private final UnaryOperator<Path> dataView;
    private String recordDir = "";
    /** The rank and layout of the last assignment (-1 and "" before the first). */
    private int heldRank = -1;
    private String heldLayout = "";
    /** The coordinator of the current epoch: the sender of its assignment. */
    private ActorRef<CoordinatorActor.Command> coordinator;

    public static Behavior<Command> create(TransportNode node, int localIndex, int threads) {
        return create(node, localIndex, threads, UnaryOperator.identity());
    }

    /**
     * As {@link #create(TransportNode, int, int)}, each build asking {@code buildStopView} applied to its stop
     * whether to go on: a test holds a build at a question it picks (inside a checkpoint read, say), aborts the
     * epoch there and lets the build ask the stop itself, without timing a race.
     */
    static Behavior<Command> create(TransportNode node, int localIndex, int threads,
                                    UnaryOperator<Supplier<String>> buildStopView) {
        return create(node, localIndex, threads, buildStopView, DirectMemory::availableForSnapshotsBytes);
    }

    /**
     * As {@link #create(TransportNode, int, int, UnaryOperator)}, the JVM's direct memory free for snapshot slots
     * read from {@code freeDirectMemory} rather than measured: a test moves it between jobs and epochs, as other
     * users of the JVM's direct memory would.
     */
    static Behavior<Command> create(TransportNode node, int localIndex, int threads,
                                    UnaryOperator<Supplier<String>> buildStopView, LongSupplier freeDirectMemory) {
        return create(node, localIndex, threads, buildStopView, freeDirectMemory, UnaryOperator.identity());
    }

    /**
     * As {@link #create(TransportNode, int, int, UnaryOperator, LongSupplier)}, each build reading the job's data at
     * {@code dataView} applied to the job's data path: a test gives workers of one JVM different files at the path a
     * job names, as the copies on two hosts can differ.
     */
    static Behavior<Command> create(TransportNode node, int localIndex, int threads,
                                    UnaryOperator<Supplier<String>> buildStopView, LongSupplier freeDirectMemory,
                                    UnaryOperator<Path> dataView) {
        return Behaviors.setup(ctx -> new WorkerActor(ctx, node, localIndex, threads, buildStopView, freeDirectMemory,
            dataView));
    }

    private WorkerActor(ActorContext<Command> ctx, TransportNode node, int localIndex, int threads,
                        UnaryOperator<Supplier<String>> buildStopView, LongSupplier freeDirectMemory,
                        UnaryOperator<Path> dataView) {
        super(ctx);
        this.ctx = ctx;
        this.threads = threads;
        this.buildStopView = buildStopView;
        this.dataView = dataView;
        this.freeDirectMemory = freeDirectMemory;
        // The logger, not the context, may be used from the agent's thread.
        org.slf4j.Logger log = ctx.getLog();
        this.link = new AeronStageLink(log::warn);
        // One duty cycle per worker: the collectives agent drives the receiver, routes collective
        // chunks to their communicator and hands activations and gradients to the stage link.
        this.agent = CollectiveAgent.open(node, "worker-" + localIndex, -1, 0, link,
            t -> log.error("data plane error on worker " + localIndex, t));
        this.transport = agent.worker();
        link.attach(transport);
        link.dutyCycle(agent::doWork);
        // The agent's thread delivers while the device thread computes; a waiting device thread drives
        // the duty cycle itself, so the agent may back off to 1 ms parks when idle and leave the cores
        // to compute (measured: 200 us parks cost a 2-core machine ~15% of a core per worker).
        agent.start(new BackoffIdleStrategy(64, 16, 1_000, 1_000_000));
        // The job-wide gradient norm travels on a stream of its own, driven by the waiting device
        // thread only (no thread of its own): its few bytes per step never contend with the stage
        // link for a sender.
        this.control = CollectiveAgent.open(node, "worker-" + localIndex + "-control", -1, 0, ReceiveSlot::release,
            t -> log.error("control collectives error on worker " + localIndex, t));
        // The node's incarnation: a node restarted on the same host and port is another member.
        String address = ctx.getSystem().address() + "#"
            + org.apache.pekko.cluster.typed.Cluster.get(ctx.getSystem()).selfMember().uniqueAddress().longUid();
        this.snapshots = new SnapshotExchange(node, "worker-" + localIndex + "-snapshots", log::warn);
        this.description = new WorkerDescription(address, transport.endpoint().toString(),
            control.worker().endpoint().toString(), "cpu(" + threads + " threads)", localIndex, snapshots.endpoint(),
            snapshots.pieceShift(), DirectMemory.UNKNOWN, DirectMemory.JVM);
        this.deviceExecutor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "troupe-device-" + localIndex);
            t.setDaemon(true);
            return t;
        });
        ctx.getSystem().receptionist().tell(Receptionist.register(KEY, ctx.getSelf()));
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
            .onMessage(Describe.class, this::onDescribe)
            .onMessage(Assign.class, this::onAssign)
            .onMessage(Built.class, this::onBuilt)
            .onMessage(RunSteps.class, this::onRunSteps)
            .onMessage(Committed.class, this::onCommitted)
            .onMessage(DropSnapshots.class, this::onDropSnapshots)
            .onMessage(Evaluate.class, this::onEvaluate)
            .onMessage(WriteCheckpoint.class, this::onWriteCheckpoint)
            .onMessage(Abort.class, this::onAbort)
            .onMessage(Release.class, this::onRelease)
            .onMessage(Idle.class, this::onIdle)
            .onSignal(PostStop.class, s -> onStop())
            .build();
    }

    private Behavior<Command> onDescribe(Describe m) {
        m.replyTo().tell(new CoordinatorActor.WorkerInfo(ctx.getSelf(), describe(), gate.current(), recordDir));
        return this;
    }

    /**
     * This worker as it describes itself now: its JVM's direct memory measured afresh (other jobs' slots, a serving
     * engine in the same JVM and the data plane's buffers come and go), and what its own snapshot slots hold. Those
     * slots count as in use in the measurement, yet whatever this worker snapshots next (a re-plan of the job that
     * filled them, or the next job) is written into them, never into new ones beside them: reported apart, the
     * coordinator gives them back to the epoch's workers ({@link SnapshotMemory#limitByDomain}), so a re-plan after
     * a fault does not find the job's own slots in the way and turn snapshots off for want of memory.
     */
    private WorkerDescription describe() {
        return description.measured(freeDirectMemory.getAsLong(), snapshots.heldBytes());
    }

    private Behavior<Command> onAssign(Assign m) {
        JobIdentity previous = gate.current();
        if (!gate.admitAssignment(m.job())) {
            ctx.getLog().warn("assignment of {} refused: this worker holds {} ({} control messages refused)", m.job(),
                gate.current(), gate.refusedTotal());
            return this;
        }
        // a build of the epoch this one supersedes, still in progress, stops: this one is queued behind it
        buildStop.compareAndSet(null, "superseded by " + m.job());
        if (previous.isJob()) {
            snapshots.abortWaits(previous);
        }
        AtomicReference<String> stop = new AtomicReference<>();
        buildStop = stop;
        Supplier<String> asked = buildStopView.apply(stop::get);
        recordDir = m.request().checkpointDir();
        heldRank = m.rank();
        heldLayout = m.request().layout();
        coordinator = m.replyTo();
        if (m.snapshots().restoresFromMemory()) {
            snapshots.prepare(m.job(), m.rank()); // a holder may send this rank's snapshot before the epoch is built
        }
        EpochWiring old = wiring;
        if (old != null) {
            old.abort("re-assigned to " + m.job());
        }
        wiring = null;
        // Built on the device thread, behind whatever the old epoch still runs there.
        ctx.pipeToSelf(CompletableFuture.supplyAsync(() -> {
            if (old != null) {
                old.close();
            }
            return new EpochWiring(m, threads, agent, control, link, snapshots, asked, dataView);
        }, deviceExecutor), (w, err) -> new Built(w, m, err == null ? null : rootMessage(err), incurable(err), stop));
        return this;
    }

    private Behavior<Command> onBuilt(Built b) {
        Assign m = b.assign();
        if (!gate.current().equals(m.job())) {
            if (b.wiring() != null) {
                b.wiring().abort("superseded by " + gate.current());
                deviceExecutor.execute(b.wiring()::close);
            }
            return this;
        }
        String stopped = b.stop().get();
        if (stopped != null) {
            // aborted while it was built: the coordinator has moved on and waits for nothing from it
            if (b.wiring() != null) {
                b.wiring().abort(stopped);
                deviceExecutor.execute(b.wiring()::close);
            }
            ctx.getLog().warn("{} not taken, its build was stopped: {}", m.job(),
                b.error() != null ? b.error() : stopped);
            return this;
        }
        if (b.error() != null) {
            m.replyTo().tell(new CoordinatorActor.WorkerFailed(m.rank(), m.job(), -1, "cannot take its assignment: "
                + b.error(), b.incurable()));
            return this;
        }
        wiring = b.wiring();
        m.replyTo().tell(new CoordinatorActor.Ready(m.rank(), m.job(), wiring.snapshotBytes(),
            wiring.dataFingerprint()));
        return this;
    }

    private Behavior<Command> onRunSteps(RunSteps m) {
        EpochWiring w = wiring;
        if (!gate.admit(m.job()) || w == null) {
            return this;
        }
        // a window starts once every earlier step committed
        snapshots.committed(m.job(), m.from());
        ActorRef<CoordinatorActor.Command> coord = coordinator;
        deviceExecutor.execute(() -> {
            for (long s = m.from(); s < m.until(); s++) {
                if (w.aborted()) {
                    return;
                }
                CoordinatorActor.StepDone done;
                try {
                    done = w.step(s, m.traced(s));
                } catch (RuntimeException | Error ex) {
                    if (!w.aborted()) {
                        coord.tell(new CoordinatorActor.WorkerFailed(w.rank(), m.job(), s, "failed in step " + s + ": "
                            + rootMessage(ex)));
                    }
                    return;
                }
                CoordinatorActor.StepDone report = done;
                try {
                    // tell is thread-safe: no hop through the actor; with snapshots, sent once the
                    // buddies' copies of this step are here (maybe from the snapshot receiver's thread)
                    w.commit(s, () -> coord.tell(report));
                } catch (RuntimeException | Error ex) {
                    if (!w.aborted()) {
                        coord.tell(new CoordinatorActor.WorkerFailed(w.rank(), m.job(), s, "could not snapshot step "
                            + s + ": " + rootMessage(ex)));
                    }
                    return;
                }
            }
        });
        return this;
    }

    private Behavior<Command> onCommitted(Committed m) {
        if (gate.admit(m.job())) {
            snapshots.committed(m.job(), m.step());
        }
        return this;
    }

    private Behavior<Command> onDropSnapshots(DropSnapshots m) {
        EpochWiring w = wiring;
        if (!gate.admit(m.job()) || w == null) {
            return this;
        }
        ctx.getLog().info("{} keeps no in-memory snapshots: {}", m.job(), m.reason());
        // on the device thread, ahead of the steps the coordinator sends after it
        deviceExecutor.execute(w::dropSnapshots);
        return this;
    }

    private Behavior<Command> onEvaluate(Evaluate m) {
        EpochWiring w = wiring;
        if (!gate.admit(m.job()) || w == null) {
            return this;
        }
        ActorRef<CoordinatorActor.Command> coord = coordinator;
        deviceExecutor.execute(() -> {
            try {
                coord.tell(new CoordinatorActor.EvalDone(w.rank(), m.job(), m.step(),
                    w.evaluate(m.step(), m.batches())));
            } catch (RuntimeException | Error ex) {
                if (!w.aborted()) {
                    coord.tell(new CoordinatorActor.WorkerFailed(w.rank(), m.job(), m.step(),
                        "failed in validation after step " + m.step() + ": " + rootMessage(ex)));
                }
            }
        });
        return this;
    }

    private Behavior<Command> onWriteCheckpoint(WriteCheckpoint m) {
        EpochWiring w = wiring;
        if (!gate.admit(m.job()) || w == null) {
            return this;
        }
        ActorRef<CoordinatorActor.Command> coord = coordinator;
        deviceExecutor.execute(() -> {
            try {
                coord.tell(w.writeCheckpoint(m.step(), m.root()));
            } catch (RuntimeException | Error ex) {
                coord.tell(new CoordinatorActor.WorkerFailed(w.rank(), m.job(), m.step(),
                    "could not write its checkpoint shards of step " + m.step() + ": " + rootMessage(ex)));
            }
        });
        return this;
    }

    private Behavior<Command> onAbort(Abort m) {
        EpochWiring w = wiring;
        boolean admitted = gate.admitAbort(m.job());
        if (admitted) {
            // An epoch being built (no wiring yet) stops: the abort names it or a newer epoch, and ends the
            // one held, never a newer one assigned after it (a recovery's abort names the epoch it assigns next).
            JobIdentity held = gate.current();
            buildStop.compareAndSet(null, "the abort of " + m.job() + ": " + m.reason());
            snapshots.abortWaits(held);
        }
        if (admitted && w != null) {
            if (m.stop()) {
                ctx.getLog().info("{} stopped: {}", w.job(), m.reason());
            } else {
                ctx.getLog().warn("{} aborted: {}", w.job(), m.reason());
            }
            w.abort(m.reason());
        }
        // Quiesced once everything queued on the device thread has run (an aborted epoch's steps end at once).
        ctx.pipeToSelf(CompletableFuture.runAsync(() -> {
        }, deviceExecutor), (ok, err) -> new Idle(m.replyTo()));
        return this;
    }

    private Behavior<Command> onRelease(Release m) {
        EpochWiring w = wiring;
        if (w == null || w.job().jobId() != m.job().jobId()) {
            return this;
        }
        wiring = null;
        w.abort("the job ended");
        deviceExecutor.execute(() -> {
            w.close();
            CorpusCache.shared().clear(); // no epoch of this node reads the ended job's data any more
        });
        return this;
    }

    private Behavior<Command> onIdle(Idle m) {
        List<long[]> held = snapshots.inventory(gate.current().jobId());
        long[] flat = new long[2 * held.size()];
        for (int i = 0; i < held.size(); i++) {
            flat[2 * i] = held.get(i)[0];
            flat[2 * i + 1] = held.get(i)[1];
        }
        // measured once idle: the re-plan that follows decides with it
        m.replyTo().tell(new CoordinatorActor.Quiesced(ctx.getSelf(), gate.current(), heldRank, heldLayout, flat,
            describe()));
        return this;
    }

    /** Whether {@code t} (null: none) is, or was caused by, a refusal no restart can cure. */
    private static boolean incurable(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof IncurableJobException) {
                return true;
            }
        }
        return false;
    }

    private static String rootMessage(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && c.getCause() != c) {
            c = c.getCause();
        }
        return c.getMessage() == null ? c.toString() : c.getMessage();
    }

    /**
     * Aborts the epoch, lets the device thread end it and close its wiring, and only then frees the
     * data plane the device thread used (its engines' native memory and receive slots); a device
     * thread still busy after {@link #STOP_WAIT_S} s leaves them open rather than freed under it.
     */
    private Behavior<Command> onStop() {
        buildStop.compareAndSet(null, "worker stopped");
        if (gate.current().isJob()) {
            snapshots.abortWaits(gate.current());
        }
        EpochWiring w = wiring;
        if (w != null) {
            w.abort("worker stopped");
            deviceExecutor.execute(w::close);
        }
        deviceExecutor.shutdown();
        try {
            if (!deviceExecutor.awaitTermination(STOP_WAIT_S, TimeUnit.SECONDS)) {
                ctx.getLog().warn("worker's device thread still busy {} s after the stop: its data plane is left open",
                    STOP_WAIT_S);
                return this;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return this;
        }
        snapshots.close();
        agent.close();
        control.close();
        return this;
    }
}
