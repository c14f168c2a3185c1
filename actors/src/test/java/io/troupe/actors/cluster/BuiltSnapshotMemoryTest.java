package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.ScriptedCoordinator.Inbox;
import io.troupe.actors.cluster.ScriptedCoordinator.Submitter;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The coordinator's check of the snapshot sizes the workers report once they built the epoch, for stage modules
 * whose sizes it cannot predict (a factory other than the built-in GPT's, {@link GptDelegatingStages}): a real
 * coordinator ({@link ScriptedCoordinator}) and a real {@link WorkerActor} (a real data plane, a real build) in one
 * system on 127.0.0.1, the worker's node advertising less direct memory than its slots take. Every wait bounded
 * by {@link ScriptedCoordinator#WAIT_MS}; the log (slf4j-simple, stderr) is kept ({@link CapturedStderr}).
 */
class BuiltSnapshotMemoryTest {
    private static final String FLAG = "-XX:MaxDirectMemorySize";

    @TempDir
    Path dir;

    private CapturedStderr log;
    private TransportNode transport;
    private ScriptedCoordinator coordinator;

    @BeforeEach
    void keepTheLog() {
        log = CapturedStderr.open();
        transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
    }

    @AfterEach
    void close() throws Exception {
        try {
            if (coordinator != null) {
                coordinator.close();
            }
        } finally {
            transport.close();
            log.close();
        }
    }

    /** A 1x1 job of the delegating factory's stages, 20 steps (it keeps stepping while the test looks). */
    private JobRequest job(String moduleFactory) {
        return new JobRequest("tiny", "1x1", 1, "1f1b", 2, 8, 20, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 1000,
            dir.resolve("job").toString(), 60_000, 0, 1, 1L << 20, "cpu", moduleFactory, 0, "none", "none");
    }

    /** Bytes of the slots of {@link #job}'s one rank: two of its snapshot, as the built-in GPT's stages take it. */
    private long slotBytes() {
        return SnapshotMemory.SLOTS * SnapshotMemory.snapshotBytes(JobSpecs.toSpec(job(""), 1))[0];
    }

    /**
     * Starts the coordinator under {@code troupe.recovery.snapshots = mode} and one real worker, whose JVM gives its
     * snapshot slots {@code memoryBytes} when the job is submitted; returns the worker's description.
     */
    private WorkerDescription start(String mode, long memoryBytes, ActorRef<WorkerActor.Command>[] worker)
        throws InterruptedException {
        coordinator = ScriptedCoordinator.start("snapshots = " + mode);
        java.util.concurrent.atomic.AtomicLong free = new java.util.concurrent.atomic.AtomicLong();
        worker[0] = coordinator.spawnWorker(WorkerActor.create(transport, 0, 1,
            java.util.function.UnaryOperator.identity(), free::get));
        Inbox<CoordinatorActor.Command> described = new Inbox<>();
        worker[0].tell(new WorkerActor.Describe(coordinator.probe(described)));
        WorkerDescription real = described.await(CoordinatorActor.WorkerInfo.class, m -> true, "the description")
            .description();
        assertFalse(real.snapshotEndpoint().isEmpty(), "the worker takes snapshots");
        // the slots it holds count for it: the JVM leaves them memoryBytes in all
        free.set(memoryBytes - real.snapshotHeldBytes());
        return real;
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldRunWithoutSnapshotsWhenTheBuiltSnapshotsDoNotFitUnderAuto() throws Exception {
        long need = slotBytes();
        @SuppressWarnings("unchecked")
        ActorRef<WorkerActor.Command>[] worker = new ActorRef[1];
        WorkerDescription node = start("auto", need - 1, worker);

        Submitter submitter = coordinator.submit(job(GptDelegatingStages.class.getName()));
        JobEvent.Started started = submitter.events().await(JobEvent.Started.class, m -> true, "Started");
        String why = started.snapshots();
        assertFalse(started.snapshotsOn(), why);
        assertTrue(why.startsWith("off: ") && why.contains("node " + node.nodeAddress())
            && why.contains(need + " bytes") && why.contains((need - 1) + " bytes") && why.contains(FLAG), why);
        JobEvent.StepCompleted step = submitter.events().await(JobEvent.StepCompleted.class, m -> m.step() >= 1,
            "step 1 committed: the epoch runs");

        // every commit so far would have snapshotted the rank, had the worker kept its snapshots on
        Inbox<CoordinatorActor.Command> answers = new Inbox<>();
        worker[0].tell(new WorkerActor.Abort(JobIdentity.NONE, "the test asks what it holds",
            coordinator.probe(answers)));
        CoordinatorActor.Quiesced held = answers.await(CoordinatorActor.Quiesced.class, m -> true, "the inventory");
        assertTrue(held.holds().isJob(), held.holds().toString());
        assertEquals(0, held.snapshots().length, "after step " + step.step() + " the worker holds no snapshot: "
            + java.util.Arrays.toString(held.snapshots()));
        String logged = log.since(0);
        assertTrue(logged.lines().anyMatch(l -> l.contains("WARN") && l.contains("runs without in-memory snapshots")
            && l.contains(node.nodeAddress()) && l.contains(need + " bytes") && l.contains(FLAG)), logged);
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldRefuseTheJobNamingTheNodeAndTheBuiltBytesUnderOn() throws Exception {
        long need = slotBytes();
        @SuppressWarnings("unchecked")
        ActorRef<WorkerActor.Command>[] worker = new ActorRef[1];
        WorkerDescription node = start("on", need - 1, worker);

        Submitter submitter = coordinator.submit(job(GptDelegatingStages.class.getName()));
        JobEvent.Failed f = submitter.events().await(JobEvent.Failed.class, m -> true, "the refusal");
        assertTrue(f.reason().contains("node " + node.nodeAddress()) && f.reason().contains(need + " bytes")
            && f.reason().contains((need - 1) + " bytes") && f.reason().contains(FLAG)
            && f.reason().contains("troupe.recovery.snapshots = on"), f.reason());
        assertEquals(0, f.lastCommittedStep());
        assertTrue(submitter.events().all().stream().noneMatch(e -> e instanceof JobEvent.Started
            || e instanceof JobEvent.StepCompleted), submitter.events().all().toString());
    }

    /** Slots that fit: the epoch keeps its snapshots, and the worker holds them. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldKeepSnapshotsWhenTheBuiltSnapshotsFitExactly() throws Exception {
        long need = slotBytes();
        @SuppressWarnings("unchecked")
        ActorRef<WorkerActor.Command>[] worker = new ActorRef[1];
        start("on", need, worker);

        Submitter submitter = coordinator.submit(job(GptDelegatingStages.class.getName()));
        JobEvent.Started started = submitter.events().await(JobEvent.Started.class, m -> true, "Started");
        assertEquals("on", started.snapshots());
        submitter.events().await(JobEvent.StepCompleted.class, m -> m.step() >= 1, "step 1 committed");
        Inbox<CoordinatorActor.Command> answers = new Inbox<>();
        worker[0].tell(new WorkerActor.Abort(JobIdentity.NONE, "the test asks what it holds",
            coordinator.probe(answers)));
        CoordinatorActor.Quiesced held = answers.await(CoordinatorActor.Quiesced.class, m -> true, "the inventory");
        assertTrue(held.snapshots().length > 0, "the worker holds its snapshots");
    }
}
