package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.cuda.CudaAvailability;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.CudaSupport;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Tensor parallelism on the cluster engine on a GPU: the tp group's collectives (the row-parallel
 * all-reduces, the column-parallel input-gradient all-reduces, the vocabulary-parallel loss's max and
 * sum, and under sequence parallelism the gathers, reduce-scatters and partial-gradient sums) move the
 * members' device tensors through host copies over the data plane, and every step's loss is the CPU
 * job's (to 1e-4 relative: the GPU kernels may sum in another order). Skipped, with the reason, where no
 * CUDA device is usable (run by the build on the CUDA emulator).
 */
@Tag("slow")   // about a minute on the CUDA emulator: runs in mvn verify -Pall (CI)
class CudaClusterTensorParallelTest {
    private static final int STEPS = 3;
    private static final double TOLERANCE = 1e-4;

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

    private static TrainingJob.Builder job(String layout, String device, boolean sequenceParallel) {
        return TrainingJob.builder().model("tiny").layout(layout).schedule("1f1b").microbatches(2).batchSize(8)
            .steps(STEPS).lr(3e-3f, 3e-4f, 1).gradClip(1f).seed(7).bucketBytes(16 * 1024).stepTimeoutMs(120_000)
            .validation(0, 1).sequenceParallel(sequenceParallel).device(device);
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

    /** Runs {@code layout} on the CPU and on the GPU and asserts the GPU's losses step by step. */
    private void assertGpuGivesCpuLosses(String layout, boolean sequenceParallel) throws Exception {
        String what = layout + (sequenceParallel ? " sequence-parallel" : "");
        double[] cpu = losses(troupe.submit(job(layout, "cpu", sequenceParallel).build()), what + " cpu");
        double[] gpu = losses(troupe.submit(job(layout, "cuda", sequenceParallel).build()), what + " cuda");
        assertEquals(STEPS, cpu.length, "cpu steps");
        assertEquals(STEPS, gpu.length, "cuda steps");
        double worst = 0;
        for (int i = 0; i < STEPS; i++) {
            worst = Math.max(worst, Math.abs(gpu[i] - cpu[i]) / Math.abs(cpu[i]));
        }
        System.out.printf("cluster %s: cpu losses %s, cuda losses %s, max relative difference %.3e%n", what,
            Arrays.toString(cpu), Arrays.toString(gpu), worst);
        assertTrue(worst <= TOLERANCE, what + ": max relative loss difference " + worst);
    }

    @Test
    @Timeout(300)
    void shouldGiveTheCpuLossesOnTheGpuWithTwoTensorParallelMembers() throws Exception {
        troupe = Troupe.local(2, 1);
        assertGpuGivesCpuLosses("1x1x2", false);
    }

    @Test
    @Timeout(300)
    void shouldGiveTheCpuLossesOnTheGpuWithTensorParallelPipelineStagesUnderSequenceParallelism() throws Exception {
        troupe = Troupe.local(4, 1);
        assertGpuGivesCpuLosses("1x2x2", true);
    }

    /**
     * GPU tensors reach the data plane's group as a host copy, one per size, reused by every collective
     * of that size (blocking or async), and the result is uploaded.
     */
    @Test
    @Timeout(60)
    void shouldReduceGpuTensorsThroughOneReusedHostCopyPerSize() {
        try (CudaDevice gpu = new CudaDevice(0); CpuDevice host = new CpuDevice(1)) {
            RecordingTensorParallelGroup inner = new RecordingTensorParallelGroup();
            try (HostStagedTensorParallelGroup g = new HostStagedTensorParallelGroup(inner, host);
                 Tensor a = gpu.allocate(3); Tensor b = gpu.allocate(3); Tensor c = gpu.allocate(5)) {
                gpu.copyFromHost(new float[] {1, 2, 3}, a);
                gpu.copyFromHost(new float[] {-1, 0, 1}, b);
                g.allReduceSum(a);
                g.allReduceSumAsync(b).await();
                g.allReduceSum(c);
                g.allReduceSum(a);
                assertEquals(4, inner.received.size());
                for (Tensor t : inner.received) {
                    assertEquals(DeviceKind.CPU, t.device().kind(), "the data plane's group gets host memory");
                }
                assertSame(inner.received.get(0), inner.received.get(1), "one host copy for size 3");
                assertSame(inner.received.get(0), inner.received.get(3), "one host copy for size 3");
                assertEquals(5, inner.received.get(2).numel());
                assertArrayEquals(new float[] {3, 4, 5}, a.toFloatArray());
                assertArrayEquals(new float[] {0, 1, 2}, b.toFloatArray());
                assertArrayEquals(new float[] {1, 1, 1, 1, 1}, c.toFloatArray());
            }
        }
    }
}
