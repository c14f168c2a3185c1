package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.snapshot.SnapshotExchange;
import io.troupe.actors.trace.TraceWindow;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.agrona.concurrent.IdleStrategy;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A worker that builds an epoch by restoring its rank from a buddy's in-memory copy, and waits for that copy, stops
 * waiting at once when the epoch it holds ends, and only then: a recovery's abort names the epoch it assigns next,
 * and that epoch's own wait for its copy must survive it. Three real {@link WorkerActor}s, each on a node of its own
 * that joins no cluster, share a real data plane; the test answers for the coordinator and sends what a real one
 * sends: a 1x2 pipeline with snapshots on (the two ranks each other's buddy) runs a step, which commits; rank 1's node
 * is lost; the recovery aborts the next epoch on the survivor and the spare, and the real planner
 * ({@link SnapshotRestorePlanner}) restores from memory: the spare takes rank 1 and waits for the copy that rank 0's
 * worker keeps and sends. Rank 0's build is held at its first question ({@link WorkerActor#create(TransportNode, int,
 * int, java.util.function.UnaryOperator)}), so the copy comes only when the test lets it. No sleeps: the one condition
 * no message reports, the spare's device thread idling inside {@link SnapshotExchange#awaitCopy}, is read from that
 * thread's stack; every wait is bounded by {@link #WAIT_MS}, which is shorter than a copy wait's own 15 s.
 */
@Timeout(120)
class WorkerCopyWaitAbortTest {
    private static final long WAIT_MS = ScriptedCoordinator.WAIT_MS;
    /** The longest a build is held: past every wait of a test, so a held build never goes on by itself. */
    private static final long HOLD_MS = 60_000;
    private static final int THREADS = 1;
    /** A 1x2 pipeline: each rank's shard is its own (no replica), so each sends its snapshots to the other. */
    private static final int[] STATE_CLASSES = {0, 1};
    private static final String LOST = "rank 1's node lost";
    private static final String LATE = "the assignment is past its deadline";
    private static final String DEVICE_THREAD = "troupe-device-";
    /** The snapshot committed in the first epoch: steps done. */
    private static final long COMMITTED = 1;

    @TempDir
    Path dir;

    private CapturedStderr log;
    private TransportNode transport;
    private final List<ActorSystem<Void>> systems = new ArrayList<>();
    private ActorRef<CoordinatorActor.Command> coordinator;
    private final Received received = new Received();
    /** The hold the next build of a worker (by index) takes. */
    private final Map<Integer, Hold> nextHold = new ConcurrentHashMap<>();
    private final List<Hold> holds = new CopyOnWriteArrayList<>();
    /** Worker 0 and 1 run the first epoch; worker 2 is the spare. */
    private final List<Node> nodes = new ArrayList<>();
    /** The epoch the spare's build waits for its copy in, rank 0's build held before it sends that copy. */
    private JobIdentity waiting;
    /** Rank 0's hold in {@link #waiting}. */
    private Hold sending;

    /** One node: its actor system and its worker, as the worker describes itself. */
    private record Node(int index, ActorSystem<Void> system, ActorRef<WorkerActor.Command> worker,
                        WorkerDescription description) {
    }

    /**
     * Starts three nodes; runs the first epoch's step 0 on workers 0 and 1 and commits it; loses worker 1's node;
     * then assigns the recovery's epoch restoring from memory and returns once the spare waits for its copy.
     */
    @BeforeEach
    void start() throws Exception {
        log = CapturedStderr.open();
        transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        Config config = ConfigFactory.load();
        NodeSettings settings = NodeSettings.from(config).withPort(0);
        for (int i = 0; i < 3; i++) {
            systems.add(ActorSystem.create(Behaviors.empty(), settings.systemName(), settings.pekkoConfig(config)));
        }
        coordinator = systems.get(0).systemActorOf(Behaviors.<CoordinatorActor.Command>receiveMessage(m -> {
            received.add(m);
            return Behaviors.same();
        }), "coordinator", Props.empty());
        for (int i = 0; i < 3; i++) {
            nodes.add(startWorker(i));
        }
        Node rank0 = nodes.get(0);
        Node lost = nodes.get(1);
        Node spare = nodes.get(2);

        JobIdentity first = JobIdentity.newJob(1);
        SnapshotPlan plan = assign(first, List.of(rank0, lost), null);
        assertArrayEquals(new int[] {1, 0}, plan.buddyOf(), "each rank sends its snapshots to the other");
        awaitReady(first);
        runStep(first, List.of(rank0, lost), 0);

        lost.system().terminate();
        lost.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
        waiting = first.nextEpoch();
        Map<ActorRef<WorkerActor.Command>, long[]> held = quiesce(waiting, LOST, rank0, spare);
        SnapshotRestorePlanner.Decision<ActorRef<WorkerActor.Command>> restore =
            SnapshotRestorePlanner.plan(COMMITTED, 0, List.of(rank0.worker(), lost.worker()), true,
                List.of(rank0.worker(), spare.worker()), 2, STATE_CLASSES, held);
        assertTrue(restore.fromMemory(), "restored from memory: " + restore.reason());
        assertEquals(List.of(rank0.worker(), spare.worker()), restore.ranks(), "the spare takes rank 1");
        assertArrayEquals(new int[] {0, 0}, restore.holderOf(), "rank 0's worker holds both snapshots");

        sending = holdNextBuild(rank0);
        assign(waiting, List.of(rank0, spare), restore);
        assertTrue(sending.reached.await(WAIT_MS, TimeUnit.MILLISECONDS), "rank 0's build began");
        awaitWaitingForCopy(spare, waiting);
    }

    @AfterEach
    void stop() throws Exception {
        try {
            for (Hold h : holds) {
                h.released.countDown();
            }
            for (ActorSystem<Void> s : systems) {
                s.terminate();
            }
            for (ActorSystem<Void> s : systems) {
                s.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
            }
        } finally {
            if (transport != null) {
                transport.close();
            }
            if (log != null) {
                log.close();
            }
        }
    }

    /**
     * The next recovery aborts the epoch after the one the spare builds: the spare's wait ends at once, ended by the
     * abort of the epoch it holds, and it quiesces without Ready or a failure. The epoch the abort named then restores
     * from memory the same way, and its wait outlives both that earlier abort and a stale one that comes while it
     * waits: the copy arrives, both ranks are Ready and run a step.
     */
    @Test
    void shouldEndTheHeldEpochsCopyWaitButNotTheNextEpochsThatTheAbortNamed() throws Exception {
        Node rank0 = nodes.get(0);
        Node spare = nodes.get(2);
        JobIdentity next = waiting.nextEpoch();
        int mark = log.mark();
        int from = received.size();
        long t0 = System.nanoTime();
        tellAbort(next, LATE, rank0, spare);
        awaitHolds(rank0, waiting); // each took the abort
        awaitHolds(spare, waiting);
        sending.released.countDown();
        Map<ActorRef<WorkerActor.Command>, long[]> held = new HashMap<>();
        for (Node n : List.of(spare, rank0)) {
            CoordinatorActor.Quiesced q = received.await(from, CoordinatorActor.Quiesced.class,
                m -> m.worker().equals(n.worker()), "the Quiesced of worker " + n.index());
            assertEquals(waiting, q.holds());
            held.put(q.worker(), q.snapshots());
            if (n == spare) {
                System.out.printf("the spare quiesced %d ms after the abort%n",
                    TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
            }
        }
        String text = log.since(mark);
        assertTrue(text.contains(waiting + " not taken, its build was stopped: the wait for rank 1's snapshot of step "
            + COMMITTED + " in " + waiting + " ended by the abort of " + waiting),
            "the spare's wait was ended by the abort "
            + "of the epoch it held: " + text);
        assertTrue(text.contains(waiting + " not taken, its build was stopped: " + EpochWiring.BUILD_STOPPED + waiting
            + " before it began: the abort of " + next + ": " + LATE), "rank 0's build stopped before it sent: "
            + text);
        assertNotReady(waiting);
        assertNoFailure();

        SnapshotRestorePlanner.Decision<ActorRef<WorkerActor.Command>> restore =
            SnapshotRestorePlanner.plan(COMMITTED, 0, List.of(rank0.worker(), spare.worker()), true,
                List.of(rank0.worker(), spare.worker()), 2, STATE_CLASSES, held);
        assertArrayEquals(new int[] {0, 0}, restore.holderOf(), "rank 0's worker still holds both snapshots");
        Hold sendingNext = holdNextBuild(rank0);
        assign(next, List.of(rank0, spare), restore);
        assertTrue(sendingNext.reached.await(WAIT_MS, TimeUnit.MILLISECONDS), "rank 0's build began");
        awaitWaitingForCopy(spare, next);

        // a late abort of the epoch before (the previous recovery's): refused, it ends nothing
        spare.worker().tell(new WorkerActor.Abort(waiting, LOST, coordinator));
        awaitHolds(spare, next);
        assertNoFailure();

        sendingNext.released.countDown();
        awaitReady(next);
        runStep(next, List.of(rank0, spare), COMMITTED);
        assertNoFailure();
    }

    /** The spare's node closes while it waits: the wait ends, so the worker frees its data plane at once. */
    @Test
    void shouldEndTheCopyWaitWhenTheWaitingWorkerStops() throws Exception {
        Node spare = nodes.get(2);
        Thread device = deviceThread(spare);
        int mark = log.mark();
        spare.system().terminate();
        spare.system().getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
        // the stop waits up to WorkerActor.STOP_WAIT_S for the device thread, and says so when it is still busy
        String text = log.since(mark);
        assertFalse(text.contains("device thread still busy"), "the stop ended the wait for the copy: " + text);
        device.join(WAIT_MS);
        assertFalse(device.isAlive(), "the spare's device thread ended");

        Node rank0 = nodes.get(0);
        int from = received.size();
        tellAbort(waiting.nextEpoch(), LOST, rank0);
        awaitHolds(rank0, waiting);
        sending.released.countDown();
        received.await(from, CoordinatorActor.Quiesced.class, m -> m.worker().equals(rank0.worker()),
            "the Quiesced of rank 0's worker");
        assertNotReady(waiting);
        assertNoFailure();
    }

    private Node startWorker(int index) throws InterruptedException {
        ActorRef<WorkerActor.Command> w = systems.get(index).systemActorOf(WorkerActor.create(transport, index, THREADS,
            stop -> view(index, stop)), "worker-" + index, Props.empty());
        w.tell(new WorkerActor.Describe(coordinator));
        WorkerDescription d = received.await(0, CoordinatorActor.WorkerInfo.class, i -> i.worker().equals(w),
            "worker " + index + "'s description").description();
        return new Node(index, systems.get(index), w, d);
    }

    /**
     * Assigns {@code job} to {@code ranks} in rank order as the coordinator does: snapshots on, buddies by node, and
     * the restore {@code restore} chose (null: a fresh start). Returns the snapshot plan.
     */
    private SnapshotPlan assign(JobIdentity job, List<Node> ranks,
                                SnapshotRestorePlanner.Decision<ActorRef<WorkerActor.Command>> restore) {
        List<String> data = new ArrayList<>();
        List<String> control = new ArrayList<>();
        List<String> snapshots = new ArrayList<>();
        List<String> nodeOfRank = new ArrayList<>();
        int[] pieceShifts = new int[ranks.size()];
        for (Node n : ranks) {
            pieceShifts[data.size()] = n.description().snapshotPieceShift();
            data.add(n.description().dataEndpoint());
            control.add(n.description().controlEndpoint());
            snapshots.add(n.description().snapshotEndpoint());
            nodeOfRank.add(n.description().nodeAddress());
        }
        SnapshotPlan plan = new SnapshotPlan(true, SnapshotRestorePlanner.buddies(nodeOfRank, STATE_CLASSES), snapshots,
            pieceShifts, restore == null ? -1 : restore.step(), restore == null ? new int[0] : restore.holderOf(),
            restore == null ? new int[0] : restore.sourceOf());
        for (int k = 0; k < ranks.size(); k++) {
            ranks.get(k).worker().tell(new WorkerActor.Assign(job, k, request(), data, control, "", plan, coordinator));
        }
        return plan;
    }

    /** Waits for both ranks' Ready of {@code job}; a failure reported in {@code job} fails the test with its reason. */
    private void awaitReady(JobIdentity job) throws InterruptedException {
        for (int k = 0; k < 2; k++) {
            int rank = k;
            CoordinatorActor.Command c = received.await(0, CoordinatorActor.Command.class,
                m -> m instanceof CoordinatorActor.Ready r && r.rank() == rank && r.job().equals(job)
                    || m instanceof CoordinatorActor.WorkerFailed f && f.job().equals(job), "Ready of rank " + rank
                    + " in " + job);
            if (c instanceof CoordinatorActor.WorkerFailed f) {
                fail("rank " + f.rank() + " of " + job + " failed instead of Ready: " + f.reason());
            }
        }
    }

    /**
     * Runs step {@code step} as a window of its own (the job checkpoints every step) and commits it: each rank
     * reports it once it holds the other's copy of its snapshot.
     */
    private void runStep(JobIdentity job, List<Node> ranks, long step) throws InterruptedException {
        TraceWindow trace = request().traceWindow();
        for (Node n : ranks) {
            n.worker().tell(new WorkerActor.RunSteps(job, step, step + 1, trace.first() - 1, trace.last() - 1));
        }
        for (int k = 0; k < ranks.size(); k++) {
            int rank = k;
            received.await(0, CoordinatorActor.StepDone.class, d -> d.rank() == rank && d.job().equals(job)
                && d.step() == step, "step " + step + " of rank " + rank + " in " + job);
        }
        for (Node n : ranks) {
            n.worker().tell(new WorkerActor.Committed(job, step + 1));
        }
    }

    /** A recovery's abort of {@code job} to {@code workers}; returns what each holds once it quiesced. */
    private Map<ActorRef<WorkerActor.Command>, long[]> quiesce(JobIdentity job, String reason, Node... workers)
        throws InterruptedException {
        int from = received.size();
        tellAbort(job, reason, workers);
        Map<ActorRef<WorkerActor.Command>, long[]> held = new HashMap<>();
        for (Node n : workers) {
            CoordinatorActor.Quiesced q = received.await(from, CoordinatorActor.Quiesced.class,
                m -> m.worker().equals(n.worker()), "the Quiesced of worker " + n.index());
            held.put(q.worker(), q.snapshots());
        }
        return held;
    }

    private void tellAbort(JobIdentity job, String reason, Node... workers) {
        for (Node n : workers) {
            n.worker().tell(new WorkerActor.Abort(job, reason, coordinator));
        }
    }

    /** Waits for {@code n}'s answer to a Describe sent now: it took everything sent to it before. */
    private void awaitHolds(Node n, JobIdentity holds) throws InterruptedException {
        int from = received.size();
        n.worker().tell(new WorkerActor.Describe(coordinator));
        received.await(from, CoordinatorActor.WorkerInfo.class,
            i -> i.worker().equals(n.worker()) && i.holds().equals(holds),
            "worker " + n.index() + "'s answer holding " + holds);
    }

    /** No rank reported {@code job} Ready. */
    private void assertNotReady(JobIdentity job) {
        for (CoordinatorActor.Command c : received.all()) {
            assertFalse(c instanceof CoordinatorActor.Ready r && r.job().equals(job), "reported Ready: " + c);
        }
    }

    /** No worker reported a failure. */
    private void assertNoFailure() {
        for (CoordinatorActor.Command c : received.all()) {
            assertFalse(c instanceof CoordinatorActor.WorkerFailed, "reported a failure: " + c);
        }
    }

    /**
     * Waits until {@code n}'s device thread waits for a copy in {@code job}'s build; a failure of that build (its wait
     * ended) or its Ready (it never waited) fails the test, naming why.
     */
    private void awaitWaitingForCopy(Node n, JobIdentity job) {
        long deadlineNs = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MS);
        while (!waitsForCopy(n)) {
            for (CoordinatorActor.Command c : received.all()) {
                if (c instanceof CoordinatorActor.WorkerFailed f && f.job().equals(job)) {
                    fail("rank " + f.rank() + " of " + job + " stopped waiting for its copy: " + f.reason());
                }
                if (c instanceof CoordinatorActor.Ready r && r.job().equals(job) && r.rank() == 1) {
                    fail("rank 1 of " + job + " was Ready before its copy was sent");
                }
            }
            if (System.nanoTime() > deadlineNs) {
                fail("worker " + n.index() + " did not wait for its copy in " + job + " within " + WAIT_MS + " ms");
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
        }
    }

    /**
     * Whether {@code n}'s device thread idles inside {@link SnapshotExchange#awaitCopy}: it looked for the copy, found
     * none, and the aborts it had been told of did not end the wait (it idles only after that check).
     */
    private static boolean waitsForCopy(Node n) {
        Thread t = deviceThread(n);
        if (t == null) {
            return false;
        }
        StackTraceElement[] frames = t.getStackTrace();
        for (int i = 0; i + 1 < frames.length; i++) {
            if (frames[i].getClassName().startsWith(IdleStrategy.class.getPackageName())
                && frames[i].getMethodName().equals("idle")
                && frames[i + 1].getClassName().equals(SnapshotExchange.class.getName())
                && frames[i + 1].getMethodName().equals("awaitCopy")) {
                return true;
            }
        }
        return false;
    }

    private static Thread deviceThread(Node n) {
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().equals(DEVICE_THREAD + n.index())) {
                return t;
            }
        }
        return null;
    }

    private JobRequest request() {
        return new JobRequest("tiny", "1x2", 1, "1f1b", 2, 8, 100, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 1,
            dir.resolve("checkpoints").toString(), 60_000, 0, 1, 1L << 20, "cpu", "", 0, "none", "none");
    }

    private Hold holdNextBuild(Node n) {
        Hold h = new Hold();
        holds.add(h);
        nextHold.put(n.index(), h);
        return h;
    }

    /** Worker {@code index}'s stop for its next build: held at its first question when the test asked for a hold. */
    private Supplier<String> view(int index, Supplier<String> stop) {
        Hold hold = nextHold.remove(index);
        if (hold == null) {
            return stop;
        }
        AtomicBoolean asked = new AtomicBoolean();
        return () -> {
            if (!asked.getAndSet(true)) {
                hold.reached.countDown();
                try {
                    // a test that failed lets it go in its teardown
                    hold.released.await(HOLD_MS, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return stop.get();
        };
    }

    /** A build held at its first question (before anything is built or sent) until released. */
    private static final class Hold {
        final CountDownLatch reached = new CountDownLatch(1);
        final CountDownLatch released = new CountDownLatch(1);
    }

    /** What the workers sent the coordinator, in arrival order; a wait looks at the messages from an index on. */
    private static final class Received {
        private final List<CoordinatorActor.Command> messages = new ArrayList<>();

        synchronized void add(CoordinatorActor.Command m) {
            messages.add(m);
            notifyAll();
        }

        synchronized int size() {
            return messages.size();
        }

        synchronized List<CoordinatorActor.Command> all() {
            return List.copyOf(messages);
        }

        /** The first message at index {@code from} or later that is a {@code type} matching {@code p}. */
        synchronized <M extends CoordinatorActor.Command> M await(int from, Class<M> type, Predicate<? super M> p,
                                                                  String what) throws InterruptedException {
            long deadlineNs = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MS);
            while (true) {
                for (int i = from; i < messages.size(); i++) {
                    CoordinatorActor.Command m = messages.get(i);
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
}
