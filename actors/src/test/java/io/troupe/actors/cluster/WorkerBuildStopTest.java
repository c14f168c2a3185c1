package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.ScriptedCoordinator.Inbox;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.checkpoint.OldFormatCheckpoints;
import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.testkit.LiveThreads;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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
 * A worker told to abort while it builds an epoch from a disk checkpoint stops the build at once, closes it and
 * never reports it Ready; the next epoch builds from the same checkpoint and is Ready. One real {@link WorkerActor}
 * (on a node that joins no cluster, with a real data plane) restores a real checkpoint that its first epoch wrote;
 * the test answers for the coordinator. Each build asks its stop through the worker's stop view
 * ({@link WorkerActor#create(TransportNode, int, int, java.util.function.UnaryOperator)}), which here forwards every
 * question and holds the build at one the test picks: inside the read of the shards, inside the whole verification
 * of an older-format checkpoint, or after the build's last question. The test aborts the epoch there (as a recovery
 * does, naming the epoch it assigns next, or naming the held one), waits until the worker has taken the abort (its
 * answer to a Describe sent after it) and lets the build ask. No sleeps; every wait is bounded by {@link #WAIT_MS}.
 */
@Timeout(120)
class WorkerBuildStopTest {
    private static final long WAIT_MS = ScriptedCoordinator.WAIT_MS;
    /** Device threads of the worker: each build's stage keeps {@code THREADS - 1} named compute threads. */
    private static final int THREADS = 2;
    private static final String COMPUTE_THREAD = "troupe-cpu-worker-";
    private static final String FAULT = "fault in step 7: rank 1 lost";
    private static final String SHARD = "shard-g00.bin";

    @TempDir
    Path dir;

    private TransportNode transport;
    private ActorSystem<Void> system;
    private ActorRef<WorkerActor.Command> worker;
    private ActorRef<CoordinatorActor.Command> coordinator;
    private WorkerDescription description;
    private final Inbox<CoordinatorActor.Command> received = new Inbox<>();
    /** The hold the next build takes (null: none). */
    private final AtomicReference<Hold> nextHold = new AtomicReference<>();
    /** The questions of the build assigned last. */
    private final AtomicReference<Questions> lastBuild = new AtomicReference<>();
    private CapturedStderr log;
    /** The job at the epoch assigned last. */
    private JobIdentity job;
    private Path checkpoint;
    /** The questions a build restoring {@link #checkpoint} asks when nothing stops it. */
    private int restoreQuestions;

    /**
     * Starts the worker, builds a fresh first epoch, writes and commits its checkpoint, then builds a second epoch
     * from it, counting the questions a whole restore asks.
     */
    @BeforeEach
    void start() throws Exception {
        log = CapturedStderr.open();
        transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        Config config = ConfigFactory.load();
        NodeSettings node = NodeSettings.from(config).withPort(0);
        system = ActorSystem.create(Behaviors.empty(), node.systemName(), node.pekkoConfig(config));
        coordinator = system.systemActorOf(Behaviors.<CoordinatorActor.Command>receiveMessage(m -> {
            received.add(m);
            return Behaviors.same();
        }), "coordinator", Props.empty());
        worker = system.systemActorOf(WorkerActor.create(transport, 0, THREADS, this::view), "worker", Props.empty());
        worker.tell(new WorkerActor.Describe(coordinator));
        description = received.await(CoordinatorActor.WorkerInfo.class, i -> true, "the worker's description")
            .description();

        job = JobIdentity.newJob(1);
        assign("");
        awaitReady();
        worker.tell(new WorkerActor.WriteCheckpoint(job, 0, dir.resolve("checkpoints").toString()));
        CoordinatorActor.CheckpointWritten w = received.await(CoordinatorActor.CheckpointWritten.class,
            m -> m.job().equals(job), "the first epoch's checkpoint shards");
        ManifestBuilder b = new ManifestBuilder(1, 0);
        b.add(w.rank(), w.names(), w.bytes(), w.crcs());
        Manifest mf = b.manifest(request().seed(), request().batchSize(), request().layout(), GptConfig.preset("tiny"),
            "built-in Markov corpus");
        checkpoint = Checkpoints.commit(dir.resolve("checkpoints"), mf, mf.files());

        job = job.nextEpoch();
        assign(checkpoint.toString());
        awaitReady();
        restoreQuestions = lastBuild.get().asked.get();
        assertTrue(restoreQuestions > 4, "a restore asks before each tensor and run it reads: " + restoreQuestions);
    }

    @AfterEach
    void stop() throws Exception {
        try {
            if (system != null) {
                system.terminate();
                system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
            }
        } finally {
            if (transport != null) {
                transport.close();
            }
            log.close();
        }
    }

    /** A recovery's abort (naming the epoch it assigns next) stops a build halfway through reading its shards. */
    @Test
    void shouldStopARestoreInsideItsShardReadAndNeverReportItReady() throws Exception {
        Hold hold = new Hold(restoreQuestions / 2 + 1, false);
        Stopped s = abortHeldBuild(hold, checkpoint.toString(), true);

        assertTrue(hold.frames.contains("io.troupe.models.checkpoint.ShardedCheckpointReader.read"),
            "held inside the read of the shards: " + hold.frames);
        Matcher m = Pattern.compile(Pattern.quote(s.held() + " not taken, its build was stopped: read of checkpoint "
            + checkpoint + " stopped at parameter '") + "[^']+' after (\\d+) payload bytes: "
            + Pattern.quote("the abort of " + s.abortOf() + ": " + FAULT)).matcher(s.log());
        assertTrue(m.find(), "the read ended with the stop, naming where: " + s.log());
        long bytes = Long.parseLong(m.group(1));
        long shardBytes = Files.size(checkpoint.resolve(SHARD));
        System.out.printf("stopped after %d of the shard's %d bytes, at question %d of %d%n", bytes, shardBytes,
            hold.at, restoreQuestions);
        assertTrue(bytes > 0 && bytes < shardBytes, "stopped halfway: " + bytes + " of " + shardBytes);

        assertNextEpochReady(checkpoint);
    }

    /**
     * A checkpoint in the older shard format is verified whole before its shards are read; the abort stops that
     * verification.
     */
    @Test
    void shouldStopTheWholeVerificationOfAnOldFormatCheckpoint() throws Exception {
        Path old = dir.resolve("old");
        copy(checkpoint, old);
        OldFormatCheckpoints.rewriteAsVersionOne(old);
        long shardBytes = Files.size(old.resolve(SHARD));
        // question 1 comes before the build, 2 before the verification's first read, 3 once that read is done
        Hold hold = new Hold(3, false);
        Stopped s = abortHeldBuild(hold, old.toString(), true);

        assertTrue(hold.frames.contains("io.troupe.models.checkpoint.Checkpoints.verify"),
            "held inside the verification: " + hold.frames);
        Matcher m = Pattern.compile(Pattern.quote(s.held() + " not taken, its build was stopped: verification of "
            + "checkpoint " + old + " stopped at file '" + SHARD + "' after ") + "(\\d+)" + Pattern.quote(" of its "
            + shardBytes + " bytes: the abort of " + s.abortOf() + ": " + FAULT)).matcher(s.log());
        assertTrue(m.find(), "the verification ended with the stop, naming where: " + s.log());
        assertTrue(Long.parseLong(m.group(1)) > 0, "stopped after its first read: " + m.group(1));

        assertNextEpochReady(old);
    }

    /**
     * An abort naming the epoch being built that comes after the build's last question (the build succeeds) still
     * keeps the build from being taken: it is closed, never reported Ready.
     */
    @Test
    void shouldCloseABuildAbortedAfterItsLastQuestionAndNeverReportItReady() throws Exception {
        Hold hold = new Hold(restoreQuestions, true);
        Stopped s = abortHeldBuild(hold, checkpoint.toString(), false);

        assertTrue(s.log().contains(s.held() + " not taken, its build was stopped: the abort of " + s.held() + ": "
            + FAULT), "the build went on to the end and was then not taken: " + s.log());

        assertNextEpochReady(checkpoint);
    }

    /**
     * A recovery assigns the epoch its abort named while the stopped build still reads: the new assignment neither
     * lets the old build read on nor is stopped by the old abort (each build has a stop of its own).
     */
    @Test
    void shouldKeepAStoppedBuildStoppedWhenTheNextEpochIsAssignedBeforeItEnds() throws Exception {
        JobIdentity held = job.nextEpoch();
        JobIdentity next = held.nextEpoch();
        job = held;
        Set<Thread> before = computeThreads();
        Hold hold = new Hold(restoreQuestions / 2 + 1, false);
        nextHold.set(hold);
        assign(checkpoint.toString());
        assertTrue(hold.reached.await(WAIT_MS, TimeUnit.MILLISECONDS), "the build reached question " + hold.at);
        Questions stopped = lastBuild.get();
        Set<Thread> building = computeThreads();
        building.removeAll(before);

        worker.tell(new WorkerActor.Abort(next, FAULT, coordinator));
        job = next;
        assign(checkpoint.toString());
        worker.tell(new WorkerActor.Describe(coordinator)); // answered once the abort and the assignment were taken
        received.await(CoordinatorActor.WorkerInfo.class, i -> i.holds().equals(next),
            "the worker's answer after the assignment");
        hold.released.countDown();
        awaitReady();

        assertEquals(hold.at, stopped.asked.get(), "the stopped build asked nothing after the held question");
        assertEquals(restoreQuestions, lastBuild.get().asked.get(), "the next build restored everything");
        for (CoordinatorActor.Command c : received.all()) {
            assertFalse(c instanceof CoordinatorActor.Ready r && r.job().equals(held), "reported Ready: " + c);
            assertFalse(c instanceof CoordinatorActor.WorkerFailed, "reported a failure: " + c);
        }
        assertClosed(building);
    }

    /**
     * What the test saw of a stopped build: the epoch it built, the one the abort named and the log lines written
     * from the hold until the worker quiesced.
     */
    private record Stopped(JobIdentity held, JobIdentity abortOf, String log) {
    }

    /**
     * Assigns the next epoch restoring from {@code resumeFrom}, its build held at {@code hold}; once the build is
     * held, aborts that epoch, or the one after it ({@code namingTheNextEpoch}, as a recovery's abort does), lets the
     * build go on once the worker took the abort, and waits for its Quiesced. Asserts that the build asked nothing
     * after the held question, that the worker reported neither Ready nor a failure, and that the compute threads
     * the build started have ended (it was closed).
     */
    private Stopped abortHeldBuild(Hold hold, String resumeFrom, boolean namingTheNextEpoch) throws Exception {
        JobIdentity held = job.nextEpoch();
        JobIdentity abortOf = namingTheNextEpoch ? held.nextEpoch() : held;
        job = held;
        Set<Thread> before = computeThreads();
        nextHold.set(hold);
        assign(resumeFrom);
        assertTrue(hold.reached.await(WAIT_MS, TimeUnit.MILLISECONDS), "the build reached question " + hold.at);
        Set<Thread> building = computeThreads();
        building.removeAll(before);
        int logged = log.mark();

        worker.tell(new WorkerActor.Abort(abortOf, FAULT, coordinator));
        worker.tell(new WorkerActor.Describe(coordinator)); // answered once the abort was taken
        received.await(CoordinatorActor.WorkerInfo.class, i -> i.holds().equals(held),
            "the worker's answer after the abort");
        hold.released.countDown();
        CoordinatorActor.Quiesced q = received.await(CoordinatorActor.Quiesced.class, x -> x.holds().equals(held),
            "the worker's Quiesced");
        assertEquals(0, q.rank());

        assertEquals(hold.at, lastBuild.get().asked.get(), "the build asked nothing after the held question");
        // Ready or a failure of the build would have come before the Quiesced (one sender, one receiver, in order)
        for (CoordinatorActor.Command c : received.all()) {
            assertFalse(c instanceof CoordinatorActor.Ready r && r.job().equals(held), "reported Ready: " + c);
            assertFalse(c instanceof CoordinatorActor.WorkerFailed, "reported a failure: " + c);
        }
        assertClosed(building);
        return new Stopped(held, abortOf, log.since(logged));
    }

    /** The compute threads of a stopped build end: the build was closed. */
    private static void assertClosed(Set<Thread> building) throws InterruptedException {
        assertEquals(THREADS - 1, building.size(), "the held build's stage started its compute threads: " + building);
        for (Thread t : building) {
            t.join(WAIT_MS);
            assertFalse(t.isAlive(), "the stopped build was closed: " + t.getName() + " still runs");
        }
    }

    /** The epoch after the stopped one (the one a recovery's abort named) builds from {@code resumeFrom}: Ready. */
    private void assertNextEpochReady(Path resumeFrom) throws InterruptedException {
        job = job.nextEpoch();
        assign(resumeFrom.toString());
        awaitReady();
    }

    private void assign(String resumeFrom) {
        worker.tell(new WorkerActor.Assign(job, 0, request(), List.of(description.dataEndpoint()),
            List.of(description.controlEndpoint()), resumeFrom, coordinator));
    }

    private void awaitReady() throws InterruptedException {
        JobIdentity expected = job;
        received.await(CoordinatorActor.Ready.class, r -> r.job().equals(expected), "Ready of " + expected);
    }

    private JobRequest request() {
        return new JobRequest("tiny", "1x1", 1, "1f1b", 2, 8, 100, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 10,
            dir.resolve("checkpoints").toString(), 60_000, 0, 1, 1L << 20, "cpu", "", 0, "none", "none");
    }

    /** Each build's stop, as the worker hands it over, asked through a {@link Questions} that may hold it. */
    private Supplier<String> view(Supplier<String> stop) {
        Questions q = new Questions(stop, nextHold.getAndSet(null));
        lastBuild.set(q);
        return q;
    }

    /** Where a build is held: at its {@code at}-th question, answered as the stop was before the hold or after it. */
    private static final class Hold {
        final int at;
        final boolean answerBeforeHolding;
        final CountDownLatch reached = new CountDownLatch(1);
        final CountDownLatch released = new CountDownLatch(1);
        /** The methods on the device thread's stack at the held question, innermost first. */
        volatile List<String> frames = List.of();

        Hold(int at, boolean answerBeforeHolding) {
            this.at = at;
            this.answerBeforeHolding = answerBeforeHolding;
        }
    }

    /** One build's questions to its stop (on the device thread), counted; held once if the build has a hold. */
    private static final class Questions implements Supplier<String> {
        private final Supplier<String> stop;
        private final Hold hold;
        final AtomicInteger asked = new AtomicInteger();

        Questions(Supplier<String> stop, Hold hold) {
            this.stop = stop;
            this.hold = hold;
        }

        @Override
        public String get() {
            if (asked.incrementAndGet() != (hold == null ? 0 : hold.at)) {
                return stop.get();
            }
            String before = stop.get();
            hold.frames = StackWalker.getInstance().walk(s -> s.map(f -> f.getClassName() + "." + f.getMethodName())
                .toList());
            hold.reached.countDown();
            try {
                hold.released.await(WAIT_MS, TimeUnit.MILLISECONDS); // a test that failed first lets it go on later
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return hold.answerBeforeHolding ? before : stop.get();
        }
    }


    private static void copy(Path from, Path to) throws java.io.IOException {
        Files.createDirectories(to);
        try (var files = Files.list(from)) {
            for (Path f : files.toList()) {
                Files.copy(f, to.resolve(f.getFileName()));
            }
        }
    }

    private static Set<Thread> computeThreads() {
        return LiveThreads.named(COMPUTE_THREAD);
    }
}
