package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.Troupe;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.runtime.testkit.TestFiles;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The cluster engine (embedded nodes, Aeron data plane) on a GPU: pipeline stages snapshot their
 * device state at every commit, straight from the device into the snapshot slots (and a stage lost with
 * its node is restored from them, straight back), data-parallel replicas all-reduce a host copy
 * of their gradients and upload the sum, ZeRO 1 all-gathers the parameters through a host copy, and
 * every such job gives the CPU job's losses step by step (to 1e-4 relative: the GPU kernels may sum
 * in another order). A GPU job's disk checkpoint resumes on the GPU on the same trajectory. Skipped,
 * with the reason, where no CUDA device is usable (run by the build on the CUDA emulator).
 */
@Tag("slow")   // about a minute on the CUDA emulator: runs in mvn verify -Pall (CI)
class CudaClusterTrainingTest {
    private static final int STEPS = CudaJobs.STEPS;
    private static final double TOLERANCE = 1e-4;

    @TempDir
    Path tmp;

    private Troupe troupe;
    private EmbeddedCluster cluster;

    @BeforeEach
    void requireGpu() {
        CudaJobs.assumeGpu();
    }

    @AfterEach
    void close() {
        HeldGptStages.releaseAll();
        if (troupe != null) {
            troupe.close();
        }
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    @Timeout(300)
    void shouldGiveTheCpuLossesOnTheGpuWithDataParallelReplicasUnderZeroZeroAndOne() throws Exception {
        troupe = Troupe.local(2, 1);
        double[] cpu = CudaJobs.losses(troupe.submit(CudaJobs.job("2x1", "cpu").build()), "2x1 cpu");
        // ZeRO 1 gives zero 0's losses (ClusterZeroTest): the cpu job is its reference too.
        for (int zero = 0; zero <= 1; zero++) {
            String what = "2x1 zero " + zero;
            double[] gpu = CudaJobs.losses(troupe.submit(CudaJobs.job("2x1", "cuda").zero(zero).build()),
                what + " cuda");
            double rel = CudaJobs.maxRelative(gpu, cpu, 0);
            System.out.printf("cluster %s: cpu losses %s, cuda losses %s, max relative difference %.3e%n", what,
                java.util.Arrays.toString(cpu), java.util.Arrays.toString(gpu), rel);
            assertTrue(rel <= TOLERANCE, what + ": max relative loss difference " + rel);
        }
    }

    /**
     * Two replicas of two model chunks each (the interleaved schedule over one pipeline rank): each chunk's buckets
     * are downloaded and launched from its own last weight-gradient pass, and the losses are the CPU job's.
     */
    @Test
    @Timeout(300)
    void shouldGiveTheCpuLossesOnTheGpuWithDataParallelReplicasOfTwoChunksEach() throws Exception {
        troupe = Troupe.local(2, 1);
        double[] cpu = CudaJobs.losses(troupe.submit(CudaJobs.job("2x1", "cpu").virtualStages(2).schedule("interleaved")
            .build()), "2x1 interleaved cpu");
        double[] gpu = CudaJobs.losses(troupe.submit(CudaJobs.job("2x1", "cuda").virtualStages(2)
            .schedule("interleaved").build()), "2x1 interleaved cuda");
        double rel = CudaJobs.maxRelative(gpu, cpu, 0);
        System.out.printf("cluster 2x1 interleaved (2 chunks per rank): cpu losses %s, cuda losses %s, max relative "
            + "difference %.3e%n", java.util.Arrays.toString(cpu), java.util.Arrays.toString(gpu), rel);
        assertTrue(rel <= TOLERANCE, "2x1 interleaved: max relative loss difference " + rel);
    }

    /**
     * A 1x2 job on the GPU loses the node of a stage (not the coordinator's) after step 2: the spare restores that
     * stage from its buddy's copy of the snapshot of step 2, the survivor from its own (both uploaded to the device),
     * and every step's loss is the CPU job's.
     */
    @Test
    @Timeout(300)
    void shouldRestoreALostStageOnTheGpuFromItsBuddysSnapshotOnTheCpuTrajectory() throws Exception {
        cluster = EmbeddedCluster.start(3);
        List<TroupeNode> nodes = cluster.nodes();
        int steps = 4;
        int at = 2;
        double[] cpu = CudaJobs.losses(Troupe.using(nodes.get(0)).submit(request("cpu", "", steps, tmp.resolve("cpu"))),
            "1x2 cpu");
        List<JobEvent> events = new CopyOnWriteArrayList<>();
        CountDownLatch reached = new CountDownLatch(at);
        CountDownLatch recovering = new CountDownLatch(1);
        HeldGptStages.Hold hold = HeldGptStages.holdAtStep(at + 1);
        JobHandle h = Troupe.using(nodes.get(0)).submit(request("cuda", HeldGptStages.class.getName(), steps,
            tmp.resolve("cuda"))).onEvent(e -> {
                events.add(e);
                if (e instanceof JobEvent.StepCompleted) {
                    reached.countDown();
                } else if (e instanceof JobEvent.Recovering) {
                    recovering.countDown();
                }
            });
        CompletableFuture<Void> closed;
        try {
            assertTrue(reached.await(120, TimeUnit.SECONDS), "steps before the fault: " + events);
            assertTrue(hold.awaitReached(60), "a rank held at the start of step " + (at + 1));
            TroupeNode victim = rankNodeOtherThanTheFirst(nodes, events);
            closed = CompletableFuture.runAsync(victim::close); // its worker waits for its held device thread
            assertTrue(recovering.await(60, TimeUnit.SECONDS), "the coordinator noticed the loss: " + events);
        } finally {
            hold.release();
        }
        closed.get(60, TimeUnit.SECONDS);
        double[] gpu = CudaJobs.losses(h, "1x2 cuda with a lost node");
        JobEvent.Recovered rd = (JobEvent.Recovered) events.stream().filter(e -> e instanceof JobEvent.Recovered)
            .findFirst().orElseThrow(() -> new AssertionError("no recovery: " + events));
        double rel = CudaJobs.maxRelative(gpu, cpu, 0);
        System.out.printf("cluster 1x2: cpu losses %s, cuda losses %s with a node lost after step %d and step %d "
            + "restored from memory, max relative difference %.3e%n", java.util.Arrays.toString(cpu),
            java.util.Arrays.toString(gpu), at, rd.restoredStep(), rel);
        assertEquals(at, HeldGptStages.stepsBeforeTheFault(events), "the loss landed after step " + at);
        assertEquals(at, rd.restoredStep(), () -> "restored from the snapshots of step " + at + ", not from disk: "
            + rd);
        assertTrue(rel <= TOLERANCE, "1x2 with a lost node: max relative loss difference " + rel);
    }

    /** 1x2 as {@link #job}; no disk checkpoint before the last step, so a restore past step 0 is from memory. */
    private static JobRequest request(String device, String moduleFactory, int steps, Path dir) {
        return new JobRequest("tiny", "1x2", 1, "1f1b", 2, 8, steps, 3e-3f, 3e-4f, 1, 1f, 7, "", "", 1000,
            dir.toString(), 120_000, 0, 1, 16 * 1024, device, moduleFactory, 0, "none", "none");
    }

    /** The node, other than {@code nodes}' first (the coordinator's), that hosts a rank of the job's first epoch. */
    private static TroupeNode rankNodeOtherThanTheFirst(List<TroupeNode> nodes, List<JobEvent> events) {
        JobEvent.Started started = (JobEvent.Started) events.stream().filter(e -> e instanceof JobEvent.Started)
            .findFirst().orElseThrow(() -> new AssertionError("not started: " + events));
        for (String rank : started.assignment().split(", ")) {
            String host = rank.split(" -> ")[1];
            host = host.substring(host.indexOf('@') + 1, host.indexOf('#'));
            for (TroupeNode n : nodes.subList(1, nodes.size())) {
                if (n.hostPort().equals(host)) {
                    return n;
                }
            }
        }
        throw new AssertionError("no rank off the coordinator's node: " + started.assignment());
    }

    @Test
    @Timeout(300)
    void shouldGiveTheCpuLossesOnTheGpuAt2x2AndResumeItsCheckpointOnTheSameTrajectory() throws Exception {
        troupe = Troupe.local(4, 1);
        Path a = tmp.resolve("a");
        double[] cpu = CudaJobs.losses(troupe.submit(CudaJobs.job("2x2", "cpu").build()), "2x2 cpu");
        double[] gpu = CudaJobs.losses(troupe.submit(CudaJobs.job("2x2", "cuda").checkpoints(2, a.toString()).build()),
            "2x2 cuda");
        double rel = CudaJobs.maxRelative(gpu, cpu, 0);
        Path b = tmp.resolve("b");
        TestFiles.copyTree(Checkpoints.dirFor(a, 2), Checkpoints.dirFor(b, 2));
        double[] rest = CudaJobs.losses(troupe.submit(CudaJobs.job("2x2", "cuda").checkpoints(0, b.toString()).build()),
            "2x2 cuda resumed");
        double resumed = CudaJobs.maxRelative(rest, gpu, 2);
        System.out.printf("cluster 2x2: cpu losses %s, cuda losses %s (max relative difference %.3e), cuda resumed "
            + "from its checkpoint of step 2 %s (max relative difference %.3e)%n", java.util.Arrays.toString(cpu),
            java.util.Arrays.toString(gpu), rel, java.util.Arrays.toString(rest), resumed);
        assertTrue(rel <= TOLERANCE, "2x2: max relative loss difference " + rel);
        assertTrue(resumed <= TOLERANCE, "resumed: max relative loss difference " + resumed);
    }
}
