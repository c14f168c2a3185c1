package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.runtime.device.DeviceKind;
import org.junit.jupiter.api.Test;

/**
 * The cluster engine's device is the one asked for, with or without tensor parallelism: the tp group moves GPU
 * tensors through host copies, so {@code cuda} runs tp > 1 and {@code auto} stays auto (a node's GPU where it has
 * one).
 */
class JobSpecsTest {
    private static JobRequest request(String layout, String device) {
        return new JobRequest("tiny", layout, 1, "1f1b", 1, 8, 2, 3e-3f, 3e-4f, 1, 1f, 7, "", "", 0, "", 30_000, 0, 1,
            1L << 20, device, "", 0, "none", "none");
    }

    @Test
    void shouldKeepTheAskedDeviceWithAndWithoutTensorParallelism() {
        assertEquals(DeviceKind.CUDA, JobSpecs.toSpec(request("1x1x2", "cuda"), 1).device());
        assertEquals(DeviceKind.AUTO, JobSpecs.toSpec(request("1x1x2", "auto"), 1).device());
        assertEquals(DeviceKind.CPU, JobSpecs.toSpec(request("1x1x2", "cpu"), 1).device());
        assertEquals(DeviceKind.AUTO, JobSpecs.toSpec(request("2x2", "auto"), 1).device());
        assertEquals(DeviceKind.CUDA, JobSpecs.toSpec(request("2x2", "cuda"), 1).device());
    }
}
