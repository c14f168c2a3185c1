package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cli.TroupeCli;
import io.troupe.actors.metrics.RecoveryCause;
import io.troupe.models.checkpoint.CheckpointDiff;
import io.troupe.runtime.launch.ChildJvm;
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
 * Faults against node processes (every one may host the coordinator), the test JVM a client: a
 * worker SIGKILLed, a worker SIGSTOPped past the failure detector then SIGCONTed, the coordinator's
 * node SIGKILLed. Each job finishes, and its final checkpoint is bitwise that of a fault-free run of
 * the same job on the same cluster (a spare keeps the layout). Detection and recovery times are printed, not
 * asserted: the goal of a killed process noticed within 5 s is measured by {@code scripts/chaos}. What is asserted
 * is how each fault was noticed, which load does not change: never by the step deadline (the job's 30 s step
 * timeout); a killed process downed by the control-port probe ({@link DeadMemberProbe}) as soon as the failure
 * detector holds it unreachable, not by the split-brain resolver after its {@code stable-after}; a stopped one
 * never by that probe. Every recovery restores from the in-memory snapshots
 * (a data-parallel replica's own, or a buddy's copy), also the new coordinator incarnation's after
 * its node was killed: no committed step may be lost. The faulty job's stages are held at the start of step
 * {@code AT + 1} ({@link HeldGptStages}, armed in each node process) until the client learns of the recovery, so
 * every fault lands after exactly {@code AT} committed steps, however fast or slow the steps run.
 */
@Tag("slow")
@Timeout(400)
class ClusterFaultsTest {
    private final List<AutoCloseable> open = new ArrayList<>();
    private final List<ChildJvm> nodes = new ArrayList<>();
    private final List<String> addresses = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (ChildJvm n : nodes) {
            if (n.isAlive()) {
                new ProcessBuilder("kill", "-CONT", Long.toString(n.pid())).start().waitFor();
            }
        }
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    /**
     * Three worker nodes, each with the coordinator role (the singleton starts on the first); the stages they build
     * for {@link HeldGptStages} are held at the start of step {@code AT + 1} until {@code releaseFile} exists.
     */
    private TroupeNode cluster(Path releaseFile) throws Exception {
        List<String> jvm = new ArrayList<>(List.of("-Xmx512m", "-XX:+UseSerialGC"));
        jvm.addAll(HeldGptStages.jvmOptions(AT + 1, releaseFile));
        // the first node is up (the oldest, so the singleton's host) before the other two start, side by side
        String seed = null;
        for (int i = 0; i < 3; i++) {
            List<String> a = new ArrayList<>(List.of("node", "--port", "0", "--workers", "1", "--threads", "1",
                "--role", "worker,coordinator"));
            if (seed != null) {
                a.addAll(List.of("--seed", seed));
            }
            ChildJvm c = ChildJvm.start(TroupeCli.class, jvm, a);
            open.add(c);
            nodes.add(c);
            if (seed == null) {
                seed = upAt(c);
            }
        }
        addresses.add(seed);
        for (ChildJvm c : nodes.subList(1, nodes.size())) {
            addresses.add(upAt(c));
        }
        NodeSettings s = NodeSettings.from(ConfigFactory.load()).withPort(0).withRoles(List.of(), 0)
            .withSeeds(List.of(seed));
        TroupeNode client = TroupeNode.start(s, ConfigFactory.load(), null);
        open.add(client);
        return client;
    }

    /** The host:port {@code node} reports once it is up (within 60 s). */
    private static String upAt(ChildJvm node) throws InterruptedException {
        String line = node.awaitLine("troupe node: up at ", 60_000);
        return line.substring("troupe node: up at ".length(), line.indexOf(','));
    }

    /** The layout the jobs run: two data-parallel replicas unless a test says otherwise. */
    private String layout = "2x1";

    /** The steps committed before each fault. */
    private static final int AT = 12;
    /** The job's length: steps after the recovery too, and a disk checkpoint after it (every 10 steps). */
    private static final int STEPS = 20;

    /** The job, its stages built by {@code moduleFactory} ({@code ""}: the built-in GPT). */
    private JobRequest job(Path dir, String moduleFactory) {
        return new JobRequest("tiny", layout, 1, "1f1b", 2, 8, STEPS, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 10,
            dir.toString(), STEP_TIMEOUT_MS, 0, 1, 1L << 20, "cpu", moduleFactory, 0, "none", "none");
    }

    /** The node process hosting rank {@code rank} of a Started assignment. */
    private ChildJvm hostOf(JobEvent.Started started, int rank) {
        String host = started.assignment().split(", ")[rank].split(" -> ")[1];
        host = host.substring(host.indexOf('@') + 1, host.indexOf('#'));
        return nodes.get(addresses.indexOf(host));
    }

    /**
     * The host of rank 0, or of rank 1 when rank 0 sits on the first seed: that node hosts the coordinator, whose
     * loss is the kill-coordinator case, so the worker faults leave it alone.
     */
    private ChildJvm workerAwayFromTheFirstSeed(JobEvent.Started started) {
        ChildJvm rank0 = hostOf(started, 0);
        return rank0 == nodes.get(0) ? hostOf(started, 1) : rank0;
    }

    /** A fault injected into {@code victim}'s process at {@code atNs} (System.nanoTime). */
    private record Injected(ChildJvm victim, long atNs) {
    }

    private interface Fault {
        /** Injects the fault after {@code started}. */
        Injected inject(JobEvent.Started started) throws Exception;
    }

    /** How the victim's process is lost, which decides the path that must notice it. */
    private enum Loss {
        /**
         * Killed: the failure detector marks it unreachable and the port probe downs it at once (its control
         * port refuses connections), not the resolver after {@code sbr-stable-after}.
         */
        KILLED,
        /**
         * Stopped: it still accepts connections, so the resolver downs it after {@code sbr-stable-after}; the port
         * probe never does.
         */
        STOPPED
    }

    /** The job's step timeout: a fault noticed only when a step passes it took the slow path. */
    private static final long STEP_TIMEOUT_MS = 30_000;

    /** The job's end within 200 s, or an AssertionError carrying its events and the nodes' job lines. */
    private JobEvent awaitOrExplain(JobHandle h, String what, List<JobEvent> events) throws InterruptedException {
        try {
            return h.await(Duration.ofSeconds(200));
        } catch (java.util.concurrent.TimeoutException e) {
            throw new AssertionError(what + " did not finish within 200 s; events: " + events + "\nthe nodes said:\n"
                + jobLines(), e);
        }
    }

    /**
     * Runs the job clean (the built-in GPT), then with {@code fault} injected once step {@link #AT} committed and
     * every rank is held at the start of the next (the held job trains bitwise as the built-in GPT); the holds are
     * released when the client learns of the recovery. With {@code fromMemory} the recovery must restore the last
     * step committed before the fault from the in-memory snapshots: no committed step lost. The fault must be noticed
     * by the path {@code loss} names, never by the step deadline; the time it took is printed.
     */
    private void survive(String name, Path tmp, boolean fromMemory, Loss loss, Fault fault) throws Exception {
        Path releaseFile = tmp.resolve("release-held-stages");
        TroupeNode client = cluster(releaseFile);
        open.add(() -> HeldGptStages.release(releaseFile)); // closed before the nodes: no stage left held
        Troupe troupe = Troupe.using(client);
        List<JobEvent> cleanEvents = new CopyOnWriteArrayList<>();
        JobHandle ch = troupe.submit(job(tmp.resolve("clean"), "")).onEvent(cleanEvents::add);
        JobEvent cleanEnd = awaitOrExplain(ch, name + ": the fault-free job", cleanEvents);
        JobEvent.Finished clean = assertInstanceOf(JobEvent.Finished.class, cleanEnd);
        CountDownLatch reached = new CountDownLatch(AT);
        List<JobEvent> events = new CopyOnWriteArrayList<>();
        List<Long> at = new CopyOnWriteArrayList<>();
        JobHandle h = troupe.submit(job(tmp.resolve("faulty"), HeldGptStages.class.getName())).onEvent(e -> {
            events.add(e);
            at.add(System.nanoTime());
            if (e instanceof JobEvent.StepCompleted) {
                reached.countDown();
            } else if (e instanceof JobEvent.Recovering) {
                HeldGptStages.release(releaseFile);
            }
        });
        assertTrue(reached.await(120, TimeUnit.SECONDS), AT + " steps before the fault: " + events);
        JobEvent.Started first = (JobEvent.Started) events.stream().filter(e -> e instanceof JobEvent.Started)
            .findFirst().orElseThrow();
        for (int rank = 0; rank < first.worldSize(); rank++) {
            hostOf(first, rank).awaitLine(HeldGptStages.HELD_LINE + (AT + 1), 60_000);
        }
        Injected injected = fault.inject(first);
        long t0 = injected.atNs();
        JobEvent end = awaitOrExplain(h, name + ": the job, after the fault,", events);
        assertInstanceOf(JobEvent.Finished.class, end, () -> name + ": " + end + "\n" + nodes.get(0).output()
            + nodes.get(1).output());
        JobEvent.Recovering rc = null;
        JobEvent.Recovered rd = null;
        long detectedNs = 0;
        long committedBeforeFault = 0;
        for (int i = 0; i < events.size(); i++) {
            if (events.get(i) instanceof JobEvent.StepCompleted sc && rc == null) {
                committedBeforeFault = Math.max(committedBeforeFault, sc.step());
            }
            if (events.get(i) instanceof JobEvent.Recovering r && rc == null) {
                rc = r;
                detectedNs = at.get(i);
            } else if (events.get(i) instanceof JobEvent.Recovered r && rd == null) {
                rd = r;
            }
        }
        if (rc == null || rd == null) {
            int seenBefore = 0;
            for (int i = 0; i < events.size(); i++) {
                seenBefore += at.get(i) < t0 && events.get(i) instanceof JobEvent.StepCompleted ? 1 : 0;
            }
            double endAfter = (at.get(at.size() - 1) - t0) / 1e9;
            throw new AssertionError(name + ": no recovery was reported; the client had seen " + seenBefore
                + " steps when the fault began and the job's end reached it " + String.format("%.2f", endAfter)
                + " s after (a negative figure or a short one: the job had ended or nearly so); events: " + events
                + "\nthe nodes said:\n" + jobLines());
        }
        double detectS = (detectedNs - t0) / 1e9;
        CheckpointDiff.Result d = CheckpointDiff.of(Path.of(clean.checkpoint()),
            Path.of(((JobEvent.Finished) end).checkpoint()));
        long lost = Math.max(0, committedBeforeFault - rd.restoredStep());
        System.out.printf("%s: detected in %.1f s (%s); recovered in %.1f s (step %d committed on %s after "
            + "restoring %d, "
            + "%d committed before the fault); lost_committed_steps=%d; %s%n", name, detectS, rc.reason(),
            rd.detectToCommitMs() / 1e3, rd.step(), rd.layout(), rd.restoredStep(), committedBeforeFault, lost,
            d.summary());
        if (fromMemory) {
            assertEquals(0, lost, lost == 0 ? "" : name + ": step " + committedBeforeFault
                + " was committed before the fault, the recovery "
                + "restored step " + rd.restoredStep()
                + " (the in-memory snapshots should hold every committed step); the "
                + "nodes said:\n" + jobLines());
        }
        assertEquals(AT, HeldGptStages.stepsBeforeTheFault(events), name + ": the fault landed after step " + AT
            + "; the nodes said:\n" + jobLines());
        assertEquals(STEPS, ((JobEvent.Finished) end).steps());
        assertTrue(d.bitwise(), name + ": the layout was restored, so the weights are bitwise: " + d.summary());
        assertNotEquals(RecoveryCause.DEADLINE, RecoveryCause.of(rc.reason()), name + ": the fault was noticed only by "
            + "the " + STEP_TIMEOUT_MS + " ms step deadline, not by the failure detector or a lost member: "
            + rc.reason() + "\nthe nodes said:\n" + jobLines());
        String probed = probeDowned(injected.victim());
        if (loss == Loss.KILLED) {
            assertTrue(probed != null, name + ": the killed process was not downed by the control-port probe (the "
                + "resolver's sbr-stable-after or a deadline noticed it instead, seconds later); detection took "
                + String.format("%.1f", detectS) + " s; reason: " + rc.reason() + "\nthe nodes said:\n" + jobLines());
        } else {
            assertTrue(probed == null, name + ": a stopped process still accepts connections, yet the port probe "
                + "downed it: " + probed);
        }
    }

    /**
     * The line a surviving node logged when its port probe ({@link DeadMemberProbe}) downed {@code victim}, or null.
     */
    private String probeDowned(ChildJvm victim) {
        String member = "@" + addresses.get(nodes.indexOf(victim)) + " " + DeadMemberProbe.DOWNING;
        for (ChildJvm n : nodes) {
            if (n != victim) {
                for (String line : n.output().split("\n")) {
                    if (line.contains(member)) {
                        return line;
                    }
                }
            }
        }
        return null;
    }

    /** Each node's log lines about the job's epochs, faults, recoveries and snapshots. */
    private String jobLines() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < nodes.size(); i++) {
            for (String line : nodes.get(i).output().split("\n")) {
                if (line.contains("epoch") || line.contains("restor") || line.contains("snapshot")
                    || line.contains("WARN") || line.contains("ERROR")) {
                    sb.append("node ").append(i).append(": ").append(line).append('\n');
                }
            }
        }
        return sb.toString();
    }

    @Test
    void shouldFinishBitwiseWhenAWorkerProcessIsKilled(@TempDir Path tmp) throws Exception {
        survive("kill-worker", tmp, true, Loss.KILLED, started -> {
            ChildJvm victim = workerAwayFromTheFirstSeed(started);
            long t = System.nanoTime();
            victim.kill();
            return new Injected(victim, t);
        });
    }

    /**
     * Two pipeline stages hold different shards, so each sends its snapshots to the other: the
     * killed stage is restored on the spare from the copy its buddy kept, sent over the data plane.
     */
    @Test
    void shouldRestoreAKilledPipelineStageFromItsBuddysCopy(@TempDir Path tmp) throws Exception {
        layout = "1x2";
        survive("kill-stage", tmp, true, Loss.KILLED, started -> {
            ChildJvm victim = workerAwayFromTheFirstSeed(started);
            long t = System.nanoTime();
            victim.kill();
            return new Injected(victim, t);
        });
    }

    @Test
    void shouldFinishBitwiseWhenAWorkerIsStoppedPastTheFailureDetectorAndContinued(@TempDir Path tmp) throws Exception {
        survive("stop-worker", tmp, true, Loss.STOPPED, started -> {
            ChildJvm victim = workerAwayFromTheFirstSeed(started);
            long t = System.nanoTime();
            new ProcessBuilder("kill", "-STOP", Long.toString(victim.pid())).start().waitFor();
            Thread.sleep(8_000);
            new ProcessBuilder("kill", "-CONT", Long.toString(victim.pid())).start().waitFor();
            return new Injected(victim, t);
        });
    }

    @Test
    void shouldFinishBitwiseWhenTheCoordinatorsNodeIsKilled(@TempDir Path tmp) throws Exception {
        survive("kill-coordinator", tmp, true, Loss.KILLED, started -> {
            System.out.println("kill-coordinator: its node hosts " + (hostOf(started, 0) == nodes.get(0) ? "rank 0"
                : hostOf(started, 1) == nodes.get(0) ? "rank 1" : "the spare"));
            long t = System.nanoTime();
            nodes.get(0).kill(); // the oldest node with the coordinator role hosts the singleton
            return new Injected(nodes.get(0), t);
        });
    }

    /**
     * The coordinator's node killed under a 1x2 pipeline: the new incarnation learns the stages'
     * snapshots from the workers; a stage lost with the node is restored on the spare from its
     * buddy's copy (when the node hosted one).
     */
    @Test
    void shouldRestoreAPipelineFromMemoryWhenTheCoordinatorsNodeIsKilled(@TempDir Path tmp) throws Exception {
        layout = "1x2";
        survive("kill-coordinator-1x2", tmp, true, Loss.KILLED, started -> {
            System.out.println("kill-coordinator-1x2: its node hosts " + (hostOf(started, 0) == nodes.get(0) ? "stage 0"
                : hostOf(started, 1) == nodes.get(0) ? "stage 1" : "the spare"));
            long t = System.nanoTime();
            nodes.get(0).kill();
            return new Injected(nodes.get(0), t);
        });
    }
}
