package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.StagedInput;
import io.troupe.runtime.device.StagedOutput;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** The staging contract on the CPU backend (the trivial implementation: one tensor, nothing moves). */
class CpuStagingContractTest extends StagingContractTest {
    @Override
    Device openDevice() {
        return new CpuDevice(1);
    }

    @Override
    int orderingSize() {
        return 64;
    }

    @Test
    void shouldStageWithoutCopiesOnTheCpu() {
        Device dev = device();
        Tensor t = track(dev.allocate(4, 4));
        StagedOutput out = track(dev.openStagedOutput(DType.F32, 4, 4));
        out.download(t);
        assertTrue(out.isDone());
        assertSame(t, out.host(), "host() is the source itself");
        StagedInput in = track(dev.openStagedInput(DType.F32, 4, 4));
        in.upload();
        assertSame(in.host(), in.acquire(), "one tensor is both halves");
        in.release();
    }
}
