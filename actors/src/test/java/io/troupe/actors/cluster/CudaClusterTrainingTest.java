package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.runtime.cuda.CudaAvailability;
import io.troupe.runtime.cuda.CudaSupport;
import io.troupe.runtime.testkit.TestFiles;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The cluster engine (embedded nodes, Aeron data plane) on a GPU: pipeline stages snapshot their
 * device state through host copies at every commit, data-parallel replicas all-reduce a host copy
 * of their gradients and upload the sum, ZeRO 1 all-gathers the parameters through a host copy, and
 * every such job gives the CPU job's losses step by step (to 1e-4 relative: the GPU kernels may sum
 * in another order). A GPU job's disk checkpoint resumes on the GPU on the same trajectory. Skipped,
 * with the reason, where no CUDA device is usable (run by the build on the CUDA emulator).
 */
class CudaClusterTrainingTest {
    private static final int STEPS = 3;
    private static final double TOLERANCE = 1e-4;

    @TempDir
    Path tmp;

    private Troupe troupe;

    @BeforeEach
    void requireGpu() {
        CudaAvailability a = CudaSupport.availability();
        assumeTrue(a.isAvailable(), "no usable GPU, CUDA test skipped: " + a.reason());
    }

    @AfterEach
    void close() {
        if (troupe != null) {
            troupe.close();
        }
    }

    private static TrainingJob.Builder job(String layout, String device) {
        return TrainingJob.builder().model("tiny").layout(layout).schedule("1f1b").microbatches(2).batchSize(8)
            .steps(STEPS).lr(3e-3f, 3e-4f, 1).gradClip(1f).seed(7).bucketBytes(16 * 1024).stepTimeoutMs(120_000)
            .validation(0, 1).device(device);
    }

    private static double[] losses(JobHandle h, String what) throws Exception {
        JobEvent end = h.await(Duration.ofMinutes(3));
        assertInstanceOf(JobEvent.Finished.class, end, what + ": " + end);
        double[] l = new double[h.steps().size()];
        for (int i = 0; i < l.length; i++) {
            l[i] = h.steps().get(i).loss();
        }
        return l;
    }

    /** The largest relative difference of {@code a} from {@code b}'s steps {@code from..}. */
    private static double maxRelative(double[] a, double[] b, int from) {
        assertEquals(b.length - from, a.length, "steps");
        double worst = 0;
        for (int i = from; i < b.length; i++) {
            worst = Math.max(worst, Math.abs(a[i - from] - b[i]) / Math.abs(b[i]));
        }
        return worst;
    }

    @Test
    @Timeout(300)
    void shouldGiveTheCpuLossesOnTheGpuWithPipelineStagesOrDataParallelReplicasAndZeroOne() throws Exception {
        troupe = Troupe.local(2, 1);
        for (String layout : new String[] {"1x2", "2x1"}) {
            double[] cpu = losses(troupe.submit(job(layout, "cpu").build()), layout + " cpu");
            // ZeRO 1 gives zero 0's losses (ClusterZeroTest): the 2x1 cpu job is its reference too.
            for (int zero = 0; zero <= (layout.equals("2x1") ? 1 : 0); zero++) {
                String what = layout + " zero " + zero;
                double[] gpu = losses(troupe.submit(job(layout, "cuda").zero(zero).build()), what + " cuda");
                double rel = maxRelative(gpu, cpu, 0);
                System.out.printf("cluster %s: cpu losses %s, cuda losses %s, max relative difference %.3e%n", what,
                    java.util.Arrays.toString(cpu), java.util.Arrays.toString(gpu), rel);
                assertTrue(rel <= TOLERANCE, what + ": max relative loss difference " + rel);
            }
        }
    }

    @Test
    @Timeout(300)
    void shouldGiveTheCpuLossesOnTheGpuAt2x2AndResumeItsCheckpointOnTheSameTrajectory() throws Exception {
        troupe = Troupe.local(4, 1);
        Path a = tmp.resolve("a");
        double[] cpu = losses(troupe.submit(job("2x2", "cpu").build()), "2x2 cpu");
        double[] gpu = losses(troupe.submit(job("2x2", "cuda").checkpoints(2, a.toString()).build()), "2x2 cuda");
        double rel = maxRelative(gpu, cpu, 0);
        Path b = tmp.resolve("b");
        TestFiles.copyTree(Checkpoints.dirFor(a, 2), Checkpoints.dirFor(b, 2));
        double[] rest = losses(troupe.submit(job("2x2", "cuda").checkpoints(0, b.toString()).build()), "2x2 cuda resumed");
        double resumed = maxRelative(rest, gpu, 2);
        System.out.printf("cluster 2x2: cpu losses %s, cuda losses %s (max relative difference %.3e), cuda resumed "
            + "from its checkpoint of step 2 %s (max relative difference %.3e)%n", java.util.Arrays.toString(cpu),
            java.util.Arrays.toString(gpu), rel, java.util.Arrays.toString(rest), resumed);
        assertTrue(rel <= TOLERANCE, "2x2: max relative loss difference " + rel);
        assertTrue(resumed <= TOLERANCE, "resumed: max relative loss difference " + resumed);
    }
}
