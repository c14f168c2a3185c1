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
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A worker measures its JVM's direct memory each time it describes itself (at each submission, and in its
 * Quiesced answer before each re-plan), not once when it registered, and the coordinator's decision on in-memory
 * snapshots follows it: a real coordinator ({@link ScriptedCoordinator}) and a real {@link WorkerActor} (a real
 * data plane, real builds and steps, real snapshot slots) in one system on 127.0.0.1. The JVM's free direct memory
 * is what the test sets between jobs and epochs (as a serving engine or another job would move it); what the
 * worker's slots hold is real. Every wait bounded by {@link ScriptedCoordinator#WAIT_MS}.
 */
class MeasuredSnapshotMemoryTest {
    @TempDir
    Path dir;

    private TransportNode transport;
    private ScriptedCoordinator coordinator;
    /** The direct memory the worker's JVM has free for snapshot slots, as the worker measures it. */
    private final AtomicLong free = new AtomicLong();
    private ActorRef<WorkerActor.Command> worker;

    @BeforeEach
    void start() throws InterruptedException {
        transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        coordinator = ScriptedCoordinator.start("snapshots = auto", "backoff = 0ms");
        worker = coordinator.spawnWorker(WorkerActor.create(transport, 0, 1, UnaryOperator.identity(), free::get));
    }

    @AfterEach
    void close() throws Exception {
        try {
            coordinator.close();
        } finally {
            transport.close();
        }
    }

    /** A 1x1 job of the built-in GPT (its snapshot size predicted) of {@code steps} steps, under {@code name}. */
    private JobRequest job(String name, int steps) {
        return new JobRequest("tiny", "1x1", 1, "1f1b", 2, 8, steps, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 1000,
            dir.resolve(name).toString(), 60_000, 0, 1, 1L << 20, "cpu", "", 0, "none", "none");
    }

    /** Bytes of the slots of the job's one rank: two of its snapshot. */
    private long need() {
        return SnapshotMemory.SLOTS * SnapshotMemory.snapshotBytes(JobSpecs.toSpec(job("any", 1), 1))[0];
    }

    /** What the worker's snapshot slots hold now, as it describes itself. */
    private long held() throws InterruptedException {
        Inbox<CoordinatorActor.Command> described = new Inbox<>();
        worker.tell(new WorkerActor.Describe(coordinator.probe(described)));
        return described.await(CoordinatorActor.WorkerInfo.class, m -> true, "the description").description()
            .snapshotHeldBytes();
    }

    private static JobIdentity identity(JobEvent.Started s) {
        return new JobIdentity(JobIdentity.parseId(s.jobId()), s.epoch());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldDecideEachJobsSnapshotsWithTheMemoryFreeWhenItIsSubmitted() throws Exception {
        long need = need();
        free.set(need - 1 - held());      // with what its slots hold, one byte short
        Submitter first = coordinator.submit(job("first", 2));
        JobEvent.Started started = first.events().await(JobEvent.Started.class, m -> true, "the first job's Started");
        assertFalse(started.snapshotsOn(), started.snapshots());
        assertTrue(started.snapshots().contains(need + " bytes") && started.snapshots().contains((need - 1) + " bytes"),
            started.snapshots());
        first.events().await(JobEvent.Finished.class, m -> true, "the first job's end");

        free.set(need - held());          // memory freed since (another job's slots, a serving engine): it fits
        Submitter second = coordinator.submit(job("second", 2));
        started = second.events().await(JobEvent.Started.class, m -> true, "the second job's Started");
        assertEquals("on", started.snapshots());
        second.events().await(JobEvent.Finished.class, m -> true, "the second job's end");
        assertEquals(need, held(), "the second job's slots hold its two snapshots");

        // the JVM has nothing free beside the slots the worker holds: the next job of that size writes into them
        free.set(0);
        Submitter third = coordinator.submit(job("third", 2));
        started = third.events().await(JobEvent.Started.class, m -> true, "the third job's Started");
        assertEquals("on", started.snapshots());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldDecideEachReplannedEpochsSnapshotsWithTheMemoryFreeOnceTheWorkerIsIdle() throws Exception {
        long need = need();
        free.set(need - 1 - held());
        Submitter submitter = coordinator.submit(job("job", 100_000));
        JobEvent.Started first = submitter.events().await(JobEvent.Started.class, m -> true, "epoch 1 Started");
        assertFalse(first.snapshotsOn(), first.snapshots());

        // memory freed while epoch 1 ran: the re-plan after a fault takes snapshots again
        free.set(need - held());
        coordinator.tell(new CoordinatorActor.WorkerFailed(0, identity(first), -1, "a fault the test makes"));
        JobEvent.Started second = submitter.events().await(JobEvent.Started.class, m -> m.epoch() > first.epoch(),
            "the Started of the epoch after the first fault");
        assertEquals("on", second.snapshots());
        submitter.events().await(JobEvent.StepCompleted.class, m -> m.step() >= 2, "a step snapshotted and committed");
        long held = held();
        assertTrue(held >= need, "the job's own slots hold its snapshots: " + held + " bytes of " + need);

        // the job's slots are now in use in the JVM and nothing else is free: they are the job's own, and its
        // re-plan writes into them again
        free.set(0);
        coordinator.tell(new CoordinatorActor.WorkerFailed(0, identity(second), -1, "another fault the test makes"));
        JobEvent.Started third = submitter.events().await(JobEvent.Started.class, m -> m.epoch() > second.epoch(),
            "the Started of the epoch after the second fault");
        assertEquals("on", third.snapshots());
    }
}
