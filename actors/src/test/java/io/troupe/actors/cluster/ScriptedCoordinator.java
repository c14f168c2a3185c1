package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.runtime.transport.JobIdentity;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.BehaviorInterceptor;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.TypedActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Test fixture: the coordinator's own phases ({@link CoordinatorContext} with its timers, as
 * {@link CoordinatorActor#create} builds them, less the restart supervision) as the guardian of an actor
 * system with a real node's Pekko settings on 127.0.0.1 that joins no cluster, driven by the test thread.
 * Its workers are scripted: each is an actor that records what the coordinator sends it, and the test
 * answers for it. Cluster events and registry updates are the messages the
 * coordinator's own adapters deliver ({@link CoordinatorActor.MemberEvent}, {@link CoordinatorActor.WorkersChanged}).
 * Every message the coordinator finished handling, its timers' included, is recorded in order ({@link #taken}),
 * so a test waits for "the coordinator took X" rather than for time. Whatever the test thread sends reaches the
 * coordinator's mailbox in the order sent. {@link #close()} terminates the system.
 */
final class ScriptedCoordinator implements AutoCloseable {
    /** The longest wait for one expected message. */
    static final long WAIT_MS = 10_000;

    private final ActorSystem<Command> system;
    private final Inbox<Command> taken = new Inbox<>();
    private int spawned;
    private boolean registryHeard;
    /** Scripted workers the coordinator knows (registered, still listed), and the nodes it holds unreachable. */
    private final List<ScriptedWorker> registered = new ArrayList<>();
    private final Set<String> unreachable = new HashSet<>();

    private ScriptedCoordinator(Config config) {
        Behavior<Command> coordinator = Behaviors.setup(ctx -> Behaviors.withTimers(timers ->
            Behaviors.intercept(() -> new Recorder(taken), new CoordinatorContext(ctx, timers).idle())));
        NodeSettings node = NodeSettings.from(config).withPort(0);
        this.system = ActorSystem.create(coordinator, node.systemName(), node.pekkoConfig(config));
    }

    /**
     * A coordinator whose {@code troupe.recovery} settings are {@code recovery} (HOCON keys, e.g.
     * {@code "backoff = 0ms"}) over reference.conf.
     */
    static ScriptedCoordinator start(String... recovery) {
        Config overrides = ConfigFactory.parseString("troupe.recovery {\n" + String.join("\n", recovery) + "\n}");
        return new ScriptedCoordinator(overrides.withFallback(ConfigFactory.load()));
    }

    /** Sends {@code m} to the coordinator. */
    void tell(Command m) {
        system.tell(m);
    }

    /** Every message the coordinator finished handling, in order. */
    Inbox<Command> taken() {
        return taken;
    }

    /** A scripted worker of node {@code node} (as workers describe it: address#uid) taking no snapshot copies. */
    ScriptedWorker worker(String node) {
        return worker(new WorkerDescription(node, "data-" + spawned, "control-" + spawned, "cpu", 0));
    }

    /** A scripted worker of node {@code node} that takes snapshot copies, its node's direct memory not measured. */
    ScriptedWorker snapshotWorker(String node) {
        return worker(new WorkerDescription(node, "data-" + spawned, "control-" + spawned, "cpu", 0,
            "snapshots-" + spawned, 20));
    }

    /**
     * A scripted worker of node {@code node} that takes snapshot copies and advertises {@code snapshotMemoryBytes}
     * of direct memory for their slots.
     */
    ScriptedWorker snapshotWorker(String node, long snapshotMemoryBytes) {
        return snapshotWorker(node, snapshotMemoryBytes, "");
    }

    /** As {@link #snapshotWorker(String, long)}, its node in the JVM named {@code memoryDomain} ("": alone). */
    ScriptedWorker snapshotWorker(String node, long snapshotMemoryBytes, String memoryDomain) {
        return worker(new WorkerDescription(node, "data-" + spawned, "control-" + spawned, "cpu", 0,
            "snapshots-" + spawned, 20, snapshotMemoryBytes, memoryDomain));
    }

    /**
     * Spawns a real worker of {@code behavior} ({@link WorkerActor#create}) in this system: it registers with the
     * receptionist as on a node, the registry lists it, and the coordinator describes it. Returns it once the
     * coordinator took its description (what it advertised, {@link #describedAs} may override it). Not with
     * {@link #list}, which assumes no worker registers in this system.
     */
    ActorRef<WorkerActor.Command> spawnWorker(Behavior<WorkerActor.Command> behavior) throws InterruptedException {
        ActorRef<WorkerActor.Command> ref = system.systemActorOf(behavior, "worker-" + spawned++, Props.empty());
        taken.await(CoordinatorActor.WorkerInfo.class, m -> m.worker().equals(ref), "the description of " + ref);
        return ref;
    }

    /**
     * The coordinator takes {@code description} as {@code worker}'s, in place of the one it advertised (a node whose
     * JVM measured other memory, say); returns once taken.
     */
    void describedAs(ActorRef<WorkerActor.Command> worker, WorkerDescription description) throws InterruptedException {
        tell(new CoordinatorActor.WorkerInfo(worker, description, JobIdentity.NONE, ""));
        taken.await(CoordinatorActor.WorkerInfo.class, m -> m.worker().equals(worker)
            && m.description().equals(description), "the new description of " + worker);
    }

    /** {@code ref} as a job record names a submitter: its serialized form in this system. */
    String serialized(ActorRef<?> ref) {
        return org.apache.pekko.actor.typed.ActorRefResolver.get(system).toSerializationFormat(ref);
    }

    /** An actor of this system that records what it receives into {@code inbox}. */
    <T> ActorRef<T> probe(Inbox<T> inbox) {
        return system.systemActorOf(Behaviors.<T>receiveMessage(m -> {
            inbox.add(m);
            return Behaviors.same();
        }), "probe-" + spawned++, Props.empty());
    }

    private ScriptedWorker worker(WorkerDescription d) {
        Inbox<WorkerActor.Command> inbox = new Inbox<>();
        ActorRef<WorkerActor.Command> ref = system.systemActorOf(Behaviors.<WorkerActor.Command>receiveMessage(m -> {
            inbox.add(m);
            return Behaviors.same();
        }), "scripted-worker-" + spawned++, Props.empty());
        return new ScriptedWorker(ref, d, inbox);
    }

    /**
     * The registry lists {@code workers} and no others (a worker it no longer lists left). The first
     * call waits until the coordinator took the registry's own first listing (empty: no worker registers
     * in this system), so that listing cannot overtake these.
     */
    void list(ScriptedWorker... workers) throws InterruptedException {
        if (!registryHeard) {
            taken.await(CoordinatorActor.WorkersChanged.class, m -> m.workers().isEmpty(),
                "the registry's first listing");
            registryHeard = true;
        }
        Set<ActorRef<WorkerActor.Command>> refs = new HashSet<>();
        for (ScriptedWorker w : workers) {
            refs.add(w.ref());
        }
        registered.removeIf(w -> !refs.contains(w.ref()));
        tell(new CoordinatorActor.WorkersChanged(refs));
    }

    /** {@link #list}s workers the coordinator has not seen yet; each answers its Describe with no job held. */
    void register(ScriptedWorker... workers) throws InterruptedException {
        list(workers);
        for (ScriptedWorker w : workers) {
            w.await(WorkerActor.Describe.class, m -> true, "Describe");
            tell(new CoordinatorActor.WorkerInfo(w.ref(), w.description(), JobIdentity.NONE, ""));
            registered.add(w);
        }
    }

    /** The coordinator's own node, as its member events name it (address#uid). */
    String selfNode() {
        return CoordinatorContext.incarnation(org.apache.pekko.cluster.typed.Cluster.get(system).selfMember());
    }

    /** A cluster event about node {@code node}, as the coordinator's cluster subscription delivers it. */
    void member(String node, CoordinatorActor.MemberEvent.Kind kind) {
        switch (kind) {
            case UNREACHABLE -> unreachable.add(node);
            case REACHABLE -> unreachable.remove(node);
            default -> registered.removeIf(w -> w.description().nodeAddress().equals(node));
        }
        tell(new CoordinatorActor.MemberEvent(node, kind));
    }

    /**
     * Submits {@code job} from a new submitter, whose events are recorded; each registered scripted worker on a
     * reachable node answers the Describe the submission sends it as it described itself.
     */
    Submitter submit(JobRequest job) throws InterruptedException {
        Inbox<JobEvent> events = new Inbox<>();
        ActorRef<JobEvent> ref = system.systemActorOf(Behaviors.<JobEvent>receiveMessage(e -> {
            events.add(e);
            return Behaviors.same();
        }), "scripted-submitter-" + spawned++, Props.empty());
        tell(new CoordinatorActor.SubmitJob(job, ref));
        for (ScriptedWorker w : registered) {
            if (!unreachable.contains(w.description().nodeAddress())) {
                w.await(WorkerActor.Describe.class, m -> true, "the Describe of the submission");
                tell(new CoordinatorActor.WorkerInfo(w.ref(), w.description(), JobIdentity.NONE, ""));
            }
        }
        return new Submitter(ref, events);
    }

    /**
     * Waits for the Assign of every worker of {@code workers} for an epoch newer than {@code after}
     * and answers each with Ready, reporting the snapshot size predicted for its rank (the built-in GPT's);
     * returns them (all of one epoch), in the order given.
     */
    List<WorkerActor.Assign> assignAndReady(JobIdentity after, ScriptedWorker... workers) throws InterruptedException {
        return assignAndReady(after, null, workers);
    }

    /**
     * As {@link #assignAndReady(JobIdentity, ScriptedWorker...)}, each rank reporting its snapshot as
     * {@code snapshotBytes} by rank (null: as predicted for the built-in GPT).
     */
    List<WorkerActor.Assign> assignAndReady(JobIdentity after, long[] snapshotBytes, ScriptedWorker... workers)
        throws InterruptedException {
        List<WorkerActor.Assign> out = new ArrayList<>();
        for (ScriptedWorker w : workers) {
            out.add(w.await(WorkerActor.Assign.class, a -> a.job().epoch() > after.epoch(),
                "an Assign after " + after));
        }
        for (WorkerActor.Assign a : out) {
            if (!a.job().equals(out.get(0).job())) {
                throw new AssertionError("assignments of two epochs: " + out.get(0).job() + " and " + a.job());
            }
            long[] bytes = snapshotBytes != null ? snapshotBytes
                : SnapshotMemory.snapshotBytes(JobSpecs.toSpec(a.request(), 1));
            tell(new CoordinatorActor.Ready(a.rank(), a.job(), bytes[a.rank()]));
        }
        return out;
    }

    /** Every rank of {@code epoch} reports step {@code step} done: the coordinator commits it. */
    void stepDone(List<WorkerActor.Assign> epoch, long step) {
        for (WorkerActor.Assign a : epoch) {
            tell(new CoordinatorActor.StepDone(a.rank(), a.job(), step, 1.0, 1, 0.5, 1e-3f, 1, 0, 0, WorkerTrace.EMPTY,
                0, 0));
        }
    }

    /** Waits for each worker's Abort of an epoch newer than {@code after}; returns that epoch's identity. */
    JobIdentity awaitAbort(JobIdentity after, ScriptedWorker... workers) throws InterruptedException {
        JobIdentity job = null;
        for (ScriptedWorker w : workers) {
            job = w.await(WorkerActor.Abort.class, a -> a.job().epoch() > after.epoch(), "an Abort after " + after)
                .job();
        }
        return job;
    }

    /** Waits until the coordinator took the {@code what} timer ("backoff", "quiesce", ...) of {@code job}. */
    CoordinatorActor.RecoveryTimer awaitTimer(JobIdentity job, String what) throws InterruptedException {
        return taken.await(CoordinatorActor.RecoveryTimer.class, t -> t.job().equals(job) && t.what().equals(what),
            "the " + what + " timer of " + job);
    }

    @Override
    public void close() throws Exception {
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }

    /** A scripted worker: its actor, how it describes itself, and what the coordinator sent it. */
    record ScriptedWorker(ActorRef<WorkerActor.Command> ref, WorkerDescription description,
                          Inbox<WorkerActor.Command> inbox) {
        <M extends WorkerActor.Command> M await(Class<M> type, Predicate<? super M> p, String what)
            throws InterruptedException {
            return inbox.await(type, p, what + " at the worker of " + description.nodeAddress());
        }

        /** This worker's answer to an Abort: idle, last assigned {@code last}, holding {@code snapshots}. */
        CoordinatorActor.Quiesced quiesced(WorkerActor.Assign last, long... snapshots) {
            return new CoordinatorActor.Quiesced(ref, last.job(), last.rank(), last.request().layout(), snapshots);
        }
    }

    /** A submitter: where its job's events go, and those it got. */
    record Submitter(ActorRef<JobEvent> ref, Inbox<JobEvent> events) {
    }

    /**
     * Messages in arrival order with a read cursor: {@link #await} returns the next one after the
     * cursor that matches, passing over the others (they stay in {@link #all()}).
     */
    static final class Inbox<T> {
        private final List<T> messages = new ArrayList<>();
        private int cursor;

        synchronized void add(T m) {
            messages.add(m);
            notifyAll();
        }

        synchronized List<T> all() {
            return List.copyOf(messages);
        }

        synchronized <M extends T> M await(Class<M> type, Predicate<? super M> p, String what)
            throws InterruptedException {
            long deadlineNs = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MS);
            while (true) {
                while (cursor < messages.size()) {
                    T m = messages.get(cursor++);
                    if (type.isInstance(m) && p.test(type.cast(m))) {
                        return type.cast(m);
                    }
                }
                long leftNs = deadlineNs - System.nanoTime();
                if (leftNs <= 0) {
                    throw new AssertionError("waited " + WAIT_MS + " ms for " + what + "; received " + messages);
                }
                TimeUnit.NANOSECONDS.timedWait(this, leftNs);
            }
        }
    }

    /** Records each message once the coordinator's behavior has handled it. */
    private static final class Recorder extends BehaviorInterceptor<Command, Command> {
        private final Inbox<Command> taken;

        Recorder(Inbox<Command> taken) {
            super(Command.class);
            this.taken = taken;
        }

        @Override
        public Behavior<Command> aroundReceive(TypedActorContext<Command> ctx, Command msg,
                                               ReceiveTarget<Command> target) {
            Behavior<Command> next = target.apply(ctx, msg);
            taken.add(msg);
            return next;
        }
    }
}
