package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cluster.snapshot.SnapshotExchange;
import io.troupe.collectives.CollectiveAgent;
import io.troupe.collectives.CollectiveHandle;
import io.troupe.models.data.DataFingerprint;
import io.troupe.models.parallel.tp.CommunicatorTensorParallelGroup;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * What one rank's epoch opens on the data plane it releases, whether the epoch ends or its build fails part way: rank
 * 0 of a {@code 2x1x2} job (a tp communicator, group 2, opened before its stage is built; a dp communicator, group 0,
 * and the norm's communicator on the control plane opened after) on real collective agents over a real transport
 * node, the other ranks' agents there to be its peers. The stages are GPT's, through {@link ProbedGptStages}: a
 * build fails where the test says, and the test looks at the agents as the stage frees its tensors.
 */
@Timeout(120)
class EpochWiringTest {
    private static final String LAYOUT = "2x1x2";
    private static final int RANKS = 4;

    @TempDir
    Path dir;

    private TransportNode transport;
    private final List<CollectiveAgent> agents = new ArrayList<>();
    private final List<CollectiveAgent> controls = new ArrayList<>();
    private AeronStageLink link;
    private SnapshotExchange exchange;
    private JobIdentity job = JobIdentity.newJob(1);

    @BeforeEach
    void start() {
        transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        for (int r = 0; r < RANKS; r++) {
            AeronStageLink l = new AeronStageLink(s -> System.err.println("stage link: " + s));
            CollectiveAgent a = CollectiveAgent.open(transport, "rank-" + r, -1, 0, l, Throwable::printStackTrace);
            agents.add(a);
            l.attach(a.worker());
            l.dutyCycle(a::doWork);
            controls.add(CollectiveAgent.open(transport, "rank-" + r + "-control", -1, 0, ReceiveSlot::release,
                Throwable::printStackTrace));
            if (r == 0) {
                link = l;
            }
        }
        // rank 0's duty cycle runs on a thread of its own, as a worker's does: a release waits for it
        agents.get(0).start(new BackoffIdleStrategy(64, 16, 1_000, 1_000_000));
        exchange = new SnapshotExchange(transport, "rank-0-snapshots", s -> System.err.println("snapshots: " + s));
    }

    @AfterEach
    void stop() {
        ProbedGptStages.reset();
        try {
            for (CollectiveAgent a : agents) {
                a.close();
            }
            for (CollectiveAgent c : controls) {
                c.close();
            }
            if (exchange != null) {
                exchange.close();
            }
        } finally {
            if (transport != null) {
                transport.close();
            }
        }
    }

    /**
     * A closing epoch has released every communicator by the time its stage frees its tensors: on a CPU those are
     * the memory its collectives reduce in place (the chunks' gradients, the tp group's activations), which the
     * agent may write a peer's piece into until the release.
     */
    @Test
    void shouldReleaseEveryCommunicatorBeforeTheStageFreesItsTensors() {
        EpochWiring w = build("");
        assertEquals(2, data().communicatorCount(), "built: the tp and the dp communicator");
        assertEquals(1, control().communicatorCount(), "built: the norm's communicator");
        List<String> atStageClose = new ArrayList<>();
        ProbedGptStages.onClose(() -> atStageClose.add(routed()));

        w.abort("the test ends the epoch");
        w.close();

        assertFalse(atStageClose.isEmpty(), "the stage was closed");
        for (String routedThen : atStageClose) {
            assertEquals("routed nothing", routedThen, "as the stage freed its tensors the agents had " + routedThen);
        }
        assertEquals("routed nothing", routed(), "after the close");
        int closes = atStageClose.size();
        w.close();
        assertEquals(closes, atStageClose.size(), "a second close frees nothing again");
    }

    /**
     * A stage that cannot be built (after the tp communicator it would use was opened) leaves nothing open: the
     * communicator is released, and the next epoch builds on the same agents.
     */
    @Test
    void shouldReleaseTheTensorParallelCommunicatorWhenTheStageCannotBeBuilt() {
        IllegalStateException cause = new IllegalStateException("no stage today");
        ProbedGptStages.failBuilds(cause);
        RuntimeException e = assertThrows(RuntimeException.class, () -> build(""));

        assertSame(cause, e, "the build's failure is the stage's");
        assertEquals("routed nothing", routed(), "after the failed build");
        assertEquals(0, e.getSuppressed().length, "closing what it built failed: " + List.of(e.getSuppressed()));

        ProbedGptStages.reset();
        job = job.nextEpoch();
        EpochWiring next = build("");
        assertEquals(2, data().communicatorCount(), "the next epoch's tp and dp communicators");
        next.abort("done");
        next.close();
        assertEquals("routed nothing", routed(), "after the next epoch");
    }

    /** A build that fails at its last step, the restore, releases all it opened (every communicator, the stage). */
    @Test
    void shouldReleaseEverythingWhenTheRestoreFails() {
        Path missing = dir.resolve("missing");
        List<String> atStageClose = new ArrayList<>();
        ProbedGptStages.onClose(() -> atStageClose.add(routed()));
        RuntimeException e = assertThrows(RuntimeException.class, () -> build(missing.toString()));

        assertTrue(e.getMessage().contains(missing.toString()), "the failure names the checkpoint: " + e.getMessage());
        assertFalse(atStageClose.isEmpty(), "the stage was closed");
        assertEquals("routed nothing", atStageClose.get(0), "as the stage freed its tensors");
        assertEquals("routed nothing", routed(), "after the failed build");
    }

    /**
     * An abort fails a step waiting in a tensor-parallel collective at once: rank 0 steps alone (its tp peer never
     * joins), and the abort ends the step well before the collective's own timeout (30 s).
     */
    @Test
    void shouldFailAStepWaitingOnItsTensorParallelPeerOnceAborted() throws Exception {
        EpochWiring w = build("");
        AtomicReference<Throwable> ended = new AtomicReference<>();
        Thread device = new Thread(() -> {
            try {
                w.step(0, false);
                ended.set(new AssertionError("the step completed without its tp peer"));
            } catch (Throwable t) {
                ended.set(t);
            }
        }, "epoch-wiring-test-device");
        device.start();
        awaitWaitingInTensorParallelCollective(device);
        w.abort("the test ends the epoch");
        device.join(TimeUnit.SECONDS.toMillis(10));
        boolean stillWaiting = device.isAlive();
        device.join(TimeUnit.SECONDS.toMillis(40)); // past the collective's timeout: the step has ended either way
        w.close();
        assertFalse(stillWaiting, "the step still waits 10 s after the abort");
        Throwable t = ended.get();
        assertTrue(String.valueOf(t).contains("the test ends the epoch"), "the step failed with the abort: " + t);
    }

    /** Waits (at most 10 s) until {@code device} waits in a collective of the tp group, its peer absent. */
    private static void awaitWaitingInTensorParallelCollective(Thread device) {
        long deadlineNs = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (true) {
            StackTraceElement[] stack = device.getStackTrace();
            boolean inTensorParallel = false;
            boolean waiting = false;
            for (StackTraceElement f : stack) {
                inTensorParallel |= f.getClassName().equals(CommunicatorTensorParallelGroup.class.getName());
                waiting |= f.getClassName().equals(CollectiveHandle.class.getName());
            }
            if (inTensorParallel && waiting) {
                return;
            }
            assertTrue(device.isAlive() && System.nanoTime() < deadlineNs, "the step never waited on its tp peer: "
                + List.of(stack));
            Thread.onSpinWait();
        }
    }

    private CollectiveAgent data() {
        return agents.get(0);
    }

    private CollectiveAgent control() {
        return controls.get(0);
    }

    /** What rank 0's agents route collective chunks to: "routed nothing", or the count and the groups routed. */
    private String routed() {
        CollectiveAgent a = data();
        CollectiveAgent c = control();
        if (a.communicatorCount() == 0 && c.communicatorCount() == 0) {
            return "routed nothing";
        }
        return a.communicatorCount() + " data-plane communicators (dp group 0 " + a.routes(0) + ", tp group 2 "
            + a.routes(2) + "), " + c.communicatorCount() + " control-plane (norm group 1 " + c.routes(1) + ")";
    }

    /**
     * A recovery's epoch over the same, unchanged data takes the corpus and fingerprint the node read before, neither
     * mapping nor hashing the data again; data written in place since (the same size, a new modification time) is
     * read again and its new fingerprint reported.
     */
    @Test
    void shouldTakeTheDataTheNodeReadBeforeUnlessItChanged() throws Exception {
        Path data = dir.resolve("corpus.txt");
        Files.writeString(data, "abcdefghij".repeat(400));
        EpochWiring first = build("", data.toString());
        first.abort("the test ends the epoch");
        first.close();
        job = job.nextEpoch();
        EpochWiring second = build("", data.toString());
        assertSame(first.data(), second.data(), "the next epoch reads the data again");
        assertEquals(first.dataFingerprint(), second.dataFingerprint());
        second.abort("the test ends the epoch");
        second.close();

        FileTime was = Files.getLastModifiedTime(data);
        Files.writeString(data, "ABCDEFGHIJ".repeat(400));
        Files.setLastModifiedTime(data, FileTime.fromMillis(was.toMillis()
            + 10_000));
        job = job.nextEpoch();
        EpochWiring third = build("", data.toString());
        assertNotSame(first.data(), third.data(), "changed data was taken as it was read before");
        assertEquals(DataFingerprint.of(data).token(), third.dataFingerprint());
        assertNotEquals(first.dataFingerprint(), third.dataFingerprint());
        third.abort("the test ends the epoch");
        third.close();
    }

    private EpochWiring build(String resumeFrom) {
        return build(resumeFrom, "");
    }

    private EpochWiring build(String resumeFrom, String dataPath) {
        List<String> endpoints = new ArrayList<>();
        List<String> controlEndpoints = new ArrayList<>();
        for (int r = 0; r < RANKS; r++) {
            endpoints.add(agents.get(r).worker().endpoint().toString());
            controlEndpoints.add(controls.get(r).worker().endpoint().toString());
        }
        WorkerActor.Assign a = new WorkerActor.Assign(job, 0, request(dataPath), endpoints, controlEndpoints,
            resumeFrom, null);
        return new EpochWiring(a, 1, data(), control(), link, exchange, () -> null);
    }

    private JobRequest request(String dataPath) {
        return new JobRequest("tiny", LAYOUT, 1, "1f1b", 2, 8, 10, 3e-3f, 3e-4f, 2, 1.0f, 9, "", dataPath, 0,
            dir.resolve("checkpoints").toString(), 60_000, 0, 1, 1L << 20, "cpu", ProbedGptStages.class.getName(), 0,
            "none", "none", false);
    }
}
