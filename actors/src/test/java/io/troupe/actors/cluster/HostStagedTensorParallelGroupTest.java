package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** A CPU member's tp collectives reach the data plane's group as the layers' own tensors: no host copy. */
class HostStagedTensorParallelGroupTest {

    @Test
    void shouldPassCpuTensorsThroughWithoutCopies() {
        try (CpuDevice cpu = new CpuDevice(1); CpuDevice host = new CpuDevice(1)) {
            RecordingTensorParallelGroup inner = new RecordingTensorParallelGroup();
            try (HostStagedTensorParallelGroup g = new HostStagedTensorParallelGroup(inner, host);
                 Tensor t = cpu.allocate(3)) {
                cpu.copyFromHost(new float[] {1, 2, 3}, t);
                g.allReduceSum(t);
                g.allReduceSumAsync(t).await();
                assertEquals(2, inner.received.size());
                assertSame(t, inner.received.get(0));
                assertSame(t, inner.received.get(1));
                assertArrayEquals(new float[] {3, 4, 5}, t.toFloatArray());
            }
        }
    }
}
