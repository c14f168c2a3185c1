package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.MemberEvent.Kind;
import io.troupe.actors.cluster.ScriptedCoordinator.ScriptedWorker;
import io.troupe.actors.cluster.ScriptedCoordinator.Submitter;
import io.troupe.runtime.transport.JobIdentity;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The coordinator's check of every epoch's in-memory snapshot slots against the direct memory each node advertised
 * ({@link WorkerDescription#snapshotMemoryBytes()}), under {@code troupe.recovery.snapshots = auto} and {@code on},
 * against scripted workers ({@link ScriptedCoordinator}); every wait bounded by {@link ScriptedCoordinator#WAIT_MS}.
 * The coordinator's log goes to stderr (slf4j-simple), which each test also keeps.
 */
class CoordinatorSnapshotMemoryTest {
    private static final String NODE_A = "pekko://troupe@127.0.0.1:25521#1";
    private static final String NODE_B = "pekko://troupe@127.0.0.1:25522#2";
    private static final String NODE_C = "pekko://troupe@127.0.0.1:25523#3";
    private static final String FLAG = "-XX:MaxDirectMemorySize";

    @TempDir
    Path dir;

    private ScriptedCoordinator coordinator;
    private final PrintStream stderr = System.err;
    private final ByteArrayOutputStream log = new ByteArrayOutputStream();

    @BeforeEach
    void keepTheLog() {
        System.setErr(new PrintStream(new TeeStream(stderr, log), true, StandardCharsets.UTF_8));
    }

    @AfterEach
    void close() throws Exception {
        try {
            if (coordinator != null) {
                coordinator.close();
            }
        } finally {
            System.setErr(stderr);
        }
    }

    /** A 1x2 job of 100 steps: two pipeline stages, each the other's buddy. */
    private JobRequest job() {
        return new JobRequest("tiny", "1x2", 1, "1f1b", 2, 8, 100, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 1000,
            dir.resolve("job-" + System.nanoTime()).toString(), 60_000, 0, 1, 1L << 20, "cpu", "", 0, "none", "none");
    }

    /** What each node of {@link #job()} on two nodes holds: two slots of its rank's snapshot, two of its buddy's. */
    private static long slotBytesPerNode(JobRequest job) {
        long[] bytes = SnapshotMemory.snapshotBytes(JobSpecs.toSpec(job, 1));
        return 2 * bytes[0] + 2 * bytes[1];
    }

    private synchronized String logged() {
        return log.toString(StandardCharsets.UTF_8);
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldRunWithoutSnapshotsAndSayWhyWhenANodeCannotHoldItsSlotsUnderAuto() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        coordinator = ScriptedCoordinator.start("snapshots = auto");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, need);
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, need - 1);
        coordinator.register(a, b);

        Submitter submitter = coordinator.submit(job);
        List<WorkerActor.Assign> epoch = coordinator.assignAndReady(JobIdentity.NONE, a, b);
        assertFalse(epoch.get(0).snapshots().enabled(), "the epoch runs without snapshots");
        assertFalse(epoch.get(1).snapshots().enabled());
        a.await(WorkerActor.RunSteps.class, m -> true, "the first window: the job runs");

        JobEvent.Started started = submitter.events().await(JobEvent.Started.class, m -> true, "Started");
        assertFalse(started.snapshotsOn(), started.snapshots());
        String why = started.snapshots();
        assertTrue(why.startsWith("off: ") && why.contains("node " + NODE_B) && !why.contains(NODE_A)
            && why.contains(need + " bytes") && why.contains((need - 1) + " bytes") && why.contains(FLAG), why);
        String warning = logged().lines().filter(l -> l.contains("runs without in-memory snapshots")).findFirst()
            .orElse("");
        assertTrue(warning.contains("WARN") && warning.contains(NODE_B) && warning.contains(need + " bytes")
            && warning.contains((need - 1) + " bytes") && warning.contains(FLAG), logged());
    }

    /**
     * Two nodes in one JVM (an embedded cluster): each could hold its own slots in the JVM's limit, but not both
     * together; counted per node, the epoch would keep snapshots and fail its first snapshot.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldCountTheSlotsOfEveryNodeOfOneJvmAgainstItsOneLimit() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        coordinator = ScriptedCoordinator.start("snapshots = auto");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, 2 * need - 1, "jvm-1");
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, 2 * need - 1, "jvm-1");
        coordinator.register(a, b);

        Submitter submitter = coordinator.submit(job);
        List<WorkerActor.Assign> epoch = coordinator.assignAndReady(JobIdentity.NONE, a, b);
        assertFalse(epoch.get(0).snapshots().enabled(), "the JVM cannot hold both nodes' slots");
        JobEvent.Started started = submitter.events().await(JobEvent.Started.class, m -> true, "Started");
        String why = started.snapshots();
        assertTrue(why.startsWith("off: ") && why.contains("nodes " + NODE_A + ", " + NODE_B + " (one JVM")
            && why.contains(2 * need + " bytes") && why.contains((2 * need - 1) + " bytes") && why.contains(FLAG), why);
    }

    /** The same two nodes in a JVM each: each holds its own slots, and the epoch keeps snapshots. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldCountTheSlotsOfNodesInJvmsOfTheirOwnApart() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        coordinator = ScriptedCoordinator.start("snapshots = auto");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, 2 * need - 1, "jvm-1");
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, 2 * need - 1, "jvm-2");
        coordinator.register(a, b);

        Submitter submitter = coordinator.submit(job);
        List<WorkerActor.Assign> epoch = coordinator.assignAndReady(JobIdentity.NONE, a, b);
        assertTrue(epoch.get(0).snapshots().enabled(), "each JVM holds its node's slots");
        assertEquals("on", submitter.events().await(JobEvent.Started.class, m -> true, "Started").snapshots());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldRefuseTheJobNamingTheNodeTheBytesAndItsLimitUnderOn() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        coordinator = ScriptedCoordinator.start("snapshots = on");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, need);
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, need - 1);
        coordinator.register(a, b);

        Submitter submitter = coordinator.submit(job);
        JobEvent.Failed f = submitter.events().await(JobEvent.Failed.class, m -> true, "the refusal");
        assertTrue(f.reason().contains("node " + NODE_B) && f.reason().contains(need + " bytes")
            && f.reason().contains((need - 1) + " bytes") && f.reason().contains(FLAG)
            && f.reason().contains("troupe.recovery.snapshots = on"), f.reason());
        assertEquals(0, f.lastCommittedStep());
        for (ScriptedWorker w : List.of(a, b)) {
            assertTrue(w.inbox().all().stream().noneMatch(m -> m instanceof WorkerActor.Assign),
                "nothing was assigned: " + w.inbox().all());
        }
        assertTrue(submitter.events().all().stream().noneMatch(e -> e instanceof JobEvent.Started),
            submitter.events().all().toString());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldKeepSnapshotsWhenEveryNodeHoldsItsSlotsExactly() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        coordinator = ScriptedCoordinator.start("snapshots = on");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, need);
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, need);
        coordinator.register(a, b);

        Submitter submitter = coordinator.submit(job);
        List<WorkerActor.Assign> epoch = coordinator.assignAndReady(JobIdentity.NONE, a, b);
        assertTrue(epoch.get(0).snapshots().enabled(), "the epoch keeps snapshots");
        JobEvent.Started started = submitter.events().await(JobEvent.Started.class, m -> true, "Started");
        assertTrue(started.snapshotsOn(), started.snapshots());
        assertEquals("on", started.snapshots());
    }

    /**
     * The built-in GPT's predicted sizes fit exactly, but the ranks report, once built, snapshots 8 bytes larger:
     * the check of the built sizes turns the epoch's snapshots off (the reason naming the built bytes) and tells each
     * rank so before its first steps. A difference this small (ZeRO's rounding per bucket is of this order) is no
     * WARNING (it is logged at INFO).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldCheckTheBuiltSnapshotSizesWhenTheyPassThePredictedOnes() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        long[] predicted = SnapshotMemory.snapshotBytes(JobSpecs.toSpec(job, 1));
        long[] built = {predicted[0] + 8, predicted[1]};
        coordinator = ScriptedCoordinator.start("snapshots = auto");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, need);
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, need);
        coordinator.register(a, b);

        Submitter submitter = coordinator.submit(job);
        List<WorkerActor.Assign> epoch = coordinator.assignAndReady(JobIdentity.NONE, built, a, b);
        assertTrue(epoch.get(0).snapshots().enabled(), "the predicted sizes fit: assigned with snapshots");
        for (ScriptedWorker w : List.of(a, b)) {
            WorkerActor.DropSnapshots drop = w.await(WorkerActor.DropSnapshots.class, m -> true, "DropSnapshots");
            assertEquals(epoch.get(0).job(), drop.job());
            assertTrue(drop.reason().contains((need + 16) + " bytes"), drop.reason());
            w.await(WorkerActor.RunSteps.class, m -> true, "the first window, after DropSnapshots");
        }
        JobEvent.Started started = submitter.events().await(JobEvent.Started.class, m -> true, "Started");
        String why = started.snapshots();
        assertTrue(why.startsWith("off: ") && why.contains("node " + NODE_A) && why.contains("node " + NODE_B)
            && why.contains((need + 16) + " bytes") && why.contains(need + " bytes") && why.contains(FLAG), why);
        String differs = java.util.Arrays.toString(built) + " bytes by rank as their workers built them, not the "
            + java.util.Arrays.toString(predicted);
        assertTrue(logged().lines().noneMatch(l -> l.contains("WARN") && l.contains(differs)), logged());
        assertTrue(logged().lines().anyMatch(l -> l.contains("WARN") && l.contains("runs without in-memory snapshots")
            && l.contains((need + 16) + " bytes")), logged());
    }

    /**
     * Built sizes a tenth over the predicted ones, with memory for them: the prediction is wrong, not rounded (a
     * WARNING naming both sizes), and the epoch keeps its snapshots.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldWarnOfBuiltSizesFarFromThePredictedOnes() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        long[] predicted = SnapshotMemory.snapshotBytes(JobSpecs.toSpec(job, 1));
        long[] built = {predicted[0] + predicted[0] / 10, predicted[1]};
        coordinator = ScriptedCoordinator.start("snapshots = auto");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, 2 * need);
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, 2 * need);
        coordinator.register(a, b);

        Submitter submitter = coordinator.submit(job);
        coordinator.assignAndReady(JobIdentity.NONE, built, a, b);
        assertEquals("on", submitter.events().await(JobEvent.Started.class, m -> true, "Started").snapshots());
        String differs = java.util.Arrays.toString(built) + " bytes by rank as their workers built them, not the "
            + java.util.Arrays.toString(predicted);
        assertTrue(logged().lines().anyMatch(l -> l.contains("WARN") && l.contains(differs)), logged());
    }

    /** Built sizes as predicted: no word about them, and nothing to drop. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldSayNothingOfBuiltSizesThatAreThePredictedOnes() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        coordinator = ScriptedCoordinator.start("snapshots = auto");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, need);
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, need);
        coordinator.register(a, b);

        Submitter submitter = coordinator.submit(job);
        coordinator.assignAndReady(JobIdentity.NONE, a, b);
        a.await(WorkerActor.RunSteps.class, m -> true, "the first window");
        assertEquals("on", submitter.events().await(JobEvent.Started.class, m -> true, "Started").snapshots());
        assertTrue(a.inbox().all().stream().noneMatch(m -> m instanceof WorkerActor.DropSnapshots), a.inbox().all()
            .toString());
        assertFalse(logged().contains("as their workers built them"), logged());
    }

    /**
     * A node lost, its rank goes to a node that cannot hold the slots: that epoch runs without snapshots (its
     * restore from memory becomes one from disk), saying why, while the first epoch kept them.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldDropSnapshotsForALaterEpochWhoseNewNodeCannotHoldThemUnderAuto() throws Exception {
        JobRequest job = job();
        long need = slotBytesPerNode(job);
        coordinator = ScriptedCoordinator.start("snapshots = auto", "backoff = 0ms", "quiesce-timeout = 60s");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A, need);
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B, need);
        ScriptedWorker c = coordinator.snapshotWorker(NODE_C, need - 1);
        coordinator.register(a, b, c);
        Submitter submitter = coordinator.submit(job);
        List<WorkerActor.Assign> first = coordinator.assignAndReady(JobIdentity.NONE, a, b);
        assertTrue(first.get(0).snapshots().enabled(), "nodes A and B hold their slots");
        a.await(WorkerActor.RunSteps.class, m -> true, "the first window");
        coordinator.stepDone(first, 0);

        coordinator.member(NODE_B, Kind.DOWNED);
        JobIdentity recovery = coordinator.awaitAbort(first.get(0).job(), a, c);
        coordinator.tell(a.quiesced(first.get(0), 0, 1, 1, 1));   // its own snapshot of step 1 and rank 1's copy
        coordinator.tell(new CoordinatorActor.Quiesced(c.ref(), JobIdentity.NONE));
        List<WorkerActor.Assign> next = coordinator.assignAndReady(first.get(0).job(), a, c);

        assertEquals(recovery, next.get(0).job());
        assertFalse(next.get(0).snapshots().enabled(), "node C cannot hold its slots");
        assertEquals(-1, next.get(0).snapshots().restoreStep(), "an epoch without snapshots restores from disk");
        WorkerActor.RunSteps window = a.await(WorkerActor.RunSteps.class, m -> m.job().equals(recovery),
            "the second epoch's first window");
        assertEquals(0, window.from(), "from the last disk commit (none: step 0), not from step 1 in memory");
        JobEvent.Started second = submitter.events().await(JobEvent.Started.class,
            m -> m.epoch() == recovery.epoch(), "the second epoch's Started");
        assertTrue(second.snapshots().contains("node " + NODE_C) && second.snapshots().contains(FLAG),
            second.snapshots());
        assertTrue(logged().lines().anyMatch(l -> l.contains("WARN") && l.contains("runs without in-memory snapshots")
            && l.contains(NODE_C)), logged());
    }

    /** Writes to both streams; the second one is read under the test's lock. */
    private final class TeeStream extends java.io.OutputStream {
        private final java.io.OutputStream first;
        private final ByteArrayOutputStream second;

        TeeStream(java.io.OutputStream first, ByteArrayOutputStream second) {
            this.first = first;
            this.second = second;
        }

        @Override
        public void write(int b) throws java.io.IOException {
            first.write(b);
            synchronized (CoordinatorSnapshotMemoryTest.this) {
                second.write(b);
            }
        }

        @Override
        public void write(byte[] b, int off, int len) throws java.io.IOException {
            first.write(b, off, len);
            synchronized (CoordinatorSnapshotMemoryTest.this) {
                second.write(b, off, len);
            }
        }
    }
}
