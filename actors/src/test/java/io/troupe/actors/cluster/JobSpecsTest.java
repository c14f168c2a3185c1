package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.troupe.runtime.device.DeviceKind;
import org.junit.jupiter.api.Test;

/**
 * The cluster engine's device for tensor parallelism: the data plane's tp group reduces CPU memory, so tp > 1 is
 * refused up front on {@code cuda} (one line naming the device and tp) and {@code auto} means the CPU on every
 * node; without tp, {@code auto} stays auto (a node's GPU where it has one).
 */
class JobSpecsTest {
    private static JobRequest request(String layout, String device) {
        return new JobRequest("tiny", layout, 1, "1f1b", 1, 8, 2, 3e-3f, 3e-4f, 1, 1f, 7, "", "", 0, "", 30_000, 0, 1,
            1L << 20, device, "", 0, "none", "none");
    }

    @Test
    void shouldRefuseTensorParallelismOnCudaAndRunItOnTheCpuUnderAuto() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> JobSpecs.toSpec(request("1x1x2", "cuda"), 1));
        assertEquals("tensor parallelism on the cluster engine runs on the CPU device: device=cuda, tp=2", e.getMessage());
        assertEquals(DeviceKind.CPU, JobSpecs.toSpec(request("1x1x2", "auto"), 1).device());
        assertEquals(DeviceKind.AUTO, JobSpecs.toSpec(request("2x2", "auto"), 1).device());
        assertEquals(DeviceKind.CUDA, JobSpecs.toSpec(request("2x2", "cuda"), 1).device());
    }
}
