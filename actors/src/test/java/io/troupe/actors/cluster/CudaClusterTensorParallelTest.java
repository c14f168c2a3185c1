package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.Troupe;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;
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
    private static final int STEPS = CudaJobs.STEPS;
    private static final double TOLERANCE = 1e-4;

    private Troupe troupe;

    @BeforeEach
    void requireGpu() {
        CudaJobs.assumeGpu();
    }

    @AfterEach
    void close() {
        if (troupe != null) {
            troupe.close();
        }
    }

    /** Runs {@code layout} on the CPU and on the GPU and asserts the GPU's losses step by step. */
    private void assertGpuGivesCpuLosses(String layout, boolean sequenceParallel) throws Exception {
        String what = layout + (sequenceParallel ? " sequence-parallel" : "");
        double[] cpu = CudaJobs.losses(troupe.submit(CudaJobs.job(layout, "cpu").sequenceParallel(sequenceParallel)
            .build()), what + " cpu");
        double[] gpu = CudaJobs.losses(troupe.submit(CudaJobs.job(layout, "cuda").sequenceParallel(sequenceParallel)
            .build()), what + " cuda");
        assertEquals(STEPS, cpu.length, "cpu steps");
        double worst = CudaJobs.maxRelative(gpu, cpu, 0);
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
     * Data-parallel replicas of tp groups under sequence parallelism: the replicated parameters' partial gradients
     * are summed over the replicas as they become final and over the tp group after the sum is uploaded.
     */
    @Test
    @Timeout(300)
    void shouldGiveTheCpuLossesOnTheGpuWithDataParallelReplicasOfTensorParallelStages() throws Exception {
        troupe = Troupe.local(4, 1);
        assertGpuGivesCpuLosses("2x1x2", true);
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
