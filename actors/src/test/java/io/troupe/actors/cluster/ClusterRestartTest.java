package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cli.TroupeCli;
import io.troupe.models.checkpoint.CheckpointDiff;
import io.troupe.runtime.launch.ChildJvm;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every node of a running job lost at once (both node processes SIGKILLed, a power loss; or both stopped cleanly, a
 * cluster scaled to zero for a new build) while a client follows the job. A cluster started again at the client's
 * seed address carries the job on from its record at the client's next repeat of the submission
 * ({@link TroupeNode#SUBMIT_WATCH}): restored from the last disk checkpoint (no node kept a snapshot), the same job
 * id, and a final checkpoint bitwise that of a fault-free run of the same job; killed, one fault; stopped cleanly,
 * none counted. The new cluster's nodes start one after the other, and the carried-on job waits for both, its
 * requested layout, rather than shrink onto the first (a 2x1 job on one node would train on, but not bitwise). Its
 * stages are held at the start of step {@code AT + 1} ({@link HeldGptStages}) when the nodes are lost, so the loss
 * lands after exactly {@code AT} committed steps.
 */
@Tag("slow")
@Timeout(400)
class ClusterRestartTest {
    /** The steps committed before the loss. */
    private static final int AT = 12;
    /** The job's length: steps after the restart, and a disk checkpoint after it. */
    private static final int STEPS = 20;
    /** Disk checkpoints every 10 steps: the restart restores step 10. */
    private static final int INTERVAL = 10;

    private final List<AutoCloseable> open = new ArrayList<>();
    private final List<ChildJvm> nodes = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    /** A free port of 127.0.0.1 now (the first node of both clusters binds it: the client's one seed). */
    private static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /**
     * Two worker nodes with the coordinator role, the first on {@code port}; the second starts once the first is up
     * and, with {@code carryOnFirst}, has carried the job on (so its re-plan finds one worker of the two the job asks
     * for, and must wait for the second).
     */
    private void cluster(int port, Path releaseFile, boolean carryOnFirst) throws Exception {
        List<String> jvm = new ArrayList<>(List.of("-Xmx512m", "-XX:+UseSerialGC"));
        jvm.addAll(HeldGptStages.jvmOptions(AT + 1, releaseFile));
        List<String> args = List.of("node", "--workers", "1", "--threads", "1", "--role", "worker,coordinator");
        List<String> first = new ArrayList<>(args);
        first.addAll(List.of("--port", Integer.toString(port)));
        ChildJvm a = ChildJvm.start(TroupeCli.class, jvm, first);
        open.add(a);
        nodes.add(a);
        String seed = upAt(a);
        if (carryOnFirst) {
            a.awaitMatch(java.util.regex.Pattern.compile("carrying on .* from its record"), 60_000);
        }
        List<String> second = new ArrayList<>(args);
        second.addAll(List.of("--port", "0", "--seed", seed));
        ChildJvm b = ChildJvm.start(TroupeCli.class, jvm, second);
        open.add(b);
        nodes.add(b);
        upAt(b);
    }

    /** The host:port {@code node} reports once it is up (within 60 s). */
    private static String upAt(ChildJvm node) throws InterruptedException {
        String line = node.awaitLine("troupe node: up at ", 60_000);
        return line.substring("troupe node: up at ".length(), line.indexOf(','));
    }

    /** The job on {@code layout} (two workers), the tiny GPT's stages built by {@code moduleFactory} ("": built-in). */
    private static JobRequest job(String layout, Path dir, String moduleFactory) {
        return new JobRequest("tiny", layout, 1, "1f1b", 2, 8, STEPS, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", INTERVAL,
            dir.toString(), 30_000, 0, 1, 1L << 20, "cpu", moduleFactory, 0, "none", "none");
    }

    /** The job's end within 200 s, or an AssertionError carrying its events and every node's log. */
    private JobEvent awaitOrExplain(JobHandle h, String what, List<JobEvent> events) throws InterruptedException {
        try {
            return h.await(Duration.ofSeconds(200));
        } catch (java.util.concurrent.TimeoutException e) {
            StringBuilder logs = new StringBuilder();
            for (int i = 0; i < nodes.size(); i++) {
                logs.append("node ").append(i).append(":\n").append(nodes.get(i).output()).append('\n');
            }
            throw new AssertionError(what + " did not end within 200 s; events: " + events + "\n" + logs, e);
        }
    }

    /** How every node of the first cluster is lost. */
    private enum Loss {
        /** SIGKILL: a power loss, a cluster killed. */
        KILLED,
        /** SIGTERM to every node at once: the cluster stopped cleanly (scaled to zero for a new build). */
        STOPPED
    }

    @Test
    void shouldCarryTheJobOnWhenEveryNodeIsKilledAndTheClusterStartsAgain(@TempDir Path tmp) throws Exception {
        List<JobEvent> events = restart(tmp, Loss.KILLED, "2x1");
        JobEvent.Recovering rc = events.stream().filter(e -> e instanceof JobEvent.Recovering)
            .map(e -> (JobEvent.Recovering) e).findFirst().orElseThrow(() -> new AssertionError("no recovery: "
                + events));
        assertTrue(rc.reason().startsWith("no node holds the job"), rc.reason());
        assertFalse(rc.planned(), "a loss, not a planned departure: " + rc);
        assertEquals(1, events.stream().filter(e -> e instanceof JobEvent.Recovering).count(), events.toString());
        JobRecord record = JobRecord.read(tmp.resolve("restarted"));
        assertEquals(1, record.faults().size(), record.faults().toString());
        assertFalse(record.faults().get(0).planned(), record.faults().toString());
    }

    /**
     * Every node stopped cleanly at once (a cluster scaled to zero for a new build): the nodes' departures are planned,
     * the coordinator's node hands the job over in its record, and the new cluster takes it over from there, counting
     * nothing against the restart budget.
     */
    @Test
    void shouldCarryTheJobOnWhenEveryNodeIsStoppedAndTheClusterStartsAgain(@TempDir Path tmp) throws Exception {
        List<JobEvent> events = restart(tmp, Loss.STOPPED, "1x2");
        List<JobEvent.Recovering> rcs = events.stream().filter(e -> e instanceof JobEvent.Recovering)
            .map(e -> (JobEvent.Recovering) e).toList();
        assertTrue(rcs.stream().allMatch(JobEvent.Recovering::planned), "every restart planned: " + rcs);
        assertTrue(rcs.stream().anyMatch(r -> r.reason().contains("handed the job over")
            && r.reason().contains("no node has held the job since")), "taken over from the hand-over: " + rcs);
        JobRecord record = JobRecord.read(tmp.resolve("restarted"));
        assertTrue(record.faults().stream().allMatch(JobRecord.Fault::planned), "no fault counted: "
            + record.faults());
    }

    /**
     * Runs the job clean on a cluster of two nodes, then again, losing every node as {@code loss} says after step
     * {@link #AT}, and starting a new cluster of two at the same seed address; asserts what every way of losing the
     * nodes shares (the job finishes under its id, restored from its last disk checkpoint, bitwise as the clean run)
     * and returns the events of the job that lost its cluster.
     */
    private List<JobEvent> restart(Path tmp, Loss loss, String layout) throws Exception {
        int port = freePort();
        Path releaseFile = tmp.resolve("release-held-stages");
        open.add(() -> HeldGptStages.release(releaseFile)); // closed before the nodes: no stage left held
        cluster(port, releaseFile, false);
        NodeSettings s = NodeSettings.from(ConfigFactory.load()).withPort(0).withRoles(List.of(), 0)
            .withSeeds(List.of("127.0.0.1:" + port));
        TroupeNode client = TroupeNode.start(s, ConfigFactory.load(), null);
        open.add(client);
        Troupe troupe = Troupe.using(client);

        List<JobEvent> cleanEvents = new CopyOnWriteArrayList<>();
        JobHandle ch = troupe.submit(job(layout, tmp.resolve("clean"), "")).onEvent(cleanEvents::add);
        JobEvent.Finished clean = assertInstanceOf(JobEvent.Finished.class,
            awaitOrExplain(ch, "the fault-free job", cleanEvents));

        CountDownLatch reached = new CountDownLatch(AT);
        List<JobEvent> events = new CopyOnWriteArrayList<>();
        JobHandle h = troupe.submit(job(layout, tmp.resolve("restarted"), HeldGptStages.class.getName())).onEvent(e -> {
            events.add(e);
            if (e instanceof JobEvent.StepCompleted) {
                reached.countDown();
            }
        });
        assertTrue(reached.await(120, TimeUnit.SECONDS), AT + " steps before the loss: " + events);
        for (ChildJvm n : nodes) {
            n.awaitLine(HeldGptStages.HELD_LINE + (AT + 1), 60_000);
        }
        if (loss == Loss.KILLED) {
            for (ChildJvm n : List.copyOf(nodes)) {
                n.kill();                                       // every node of the cluster, the coordinator's too
            }
        } else {
            for (ChildJvm n : nodes) {
                n.process().destroy();                          // SIGTERM to every node at once
            }
            for (ChildJvm n : List.copyOf(nodes)) {
                n.stop(60_000);                                 // gone, or SIGKILLed after 60 s
            }
        }
        long lostAt = System.nanoTime();
        HeldGptStages.release(releaseFile);                     // the new cluster's stages run through
        int before = nodes.size();
        cluster(port, releaseFile, true);
        assertTrue(nodes.get(before).output().contains("waiting up to"), "the carried-on job waited for its layout's"
            + " workers: " + nodes.get(before).output());

        JobEvent end = awaitOrExplain(h, "the job, after its cluster was started again,", events);
        double s2 = (System.nanoTime() - lostAt) / 1e9;
        assertInstanceOf(JobEvent.Finished.class, end, () -> end + "; events: " + events);
        JobEvent.Recovered rd = events.stream().filter(e -> e instanceof JobEvent.Recovered)
            .map(e -> (JobEvent.Recovered) e).reduce((a, b) -> b).orElseThrow(() -> new AssertionError(
                "no recovery: " + events));
        assertEquals(INTERVAL, rd.restoredStep(), "restored from the last disk checkpoint: " + rd);
        assertEquals(layout + "x1", rd.layout(), "the requested layout, not one shrunk onto the first node back");
        List<String> ids = events.stream().filter(e -> e instanceof JobEvent.Started)
            .map(e -> ((JobEvent.Started) e).jobId()).distinct().toList();
        assertEquals(1, ids.size(), "one job, carried on under its id: " + events);
        assertEquals(AT, HeldGptStages.stepsBeforeTheFault(events));
        JobEvent.Finished done = (JobEvent.Finished) end;
        assertEquals(STEPS, done.steps());
        CheckpointDiff.Result d = CheckpointDiff.of(Path.of(clean.checkpoint()), Path.of(done.checkpoint()));
        assertTrue(d.bitwise(), "restored from step " + INTERVAL + " and trained on: " + d.summary());
        assertEquals(JobRecord.State.FINISHED, JobRecord.read(tmp.resolve("restarted")).state());
        System.out.printf("cluster-restart (%s): the job finished %.1f s after its nodes were lost (the new cluster's"
            + " start, the carry-on and %d steps); restored step %d; %s%n", loss, s2, STEPS - INTERVAL,
            rd.restoredStep(), d.summary());
        return events;
    }
}
