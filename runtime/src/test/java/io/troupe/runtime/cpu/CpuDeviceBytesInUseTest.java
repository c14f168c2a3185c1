package io.troupe.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link CpuDevice#bytesInUse()} counts each allocated tensor's bytes from its allocation until it is closed, once
 * (a second close and a view's close change nothing), per device, and still reads after the device is closed.
 */
@Timeout(30)
class CpuDeviceBytesInUseTest {
    @Test
    void shouldCountEachLiveTensorUntilItIsClosed() {
        CpuDevice device = new CpuDevice(2);
        CpuDevice other = new CpuDevice(1);
        try {
            assertEquals(0, device.bytesInUse(), "a new device");
            Tensor floats = device.allocate(DType.F32, 3, 5);
            Tensor ints = device.allocate(DType.I32, 7);
            Tensor elsewhere = other.allocate(DType.F32, 11);
            assertEquals(4 * 15 + 4 * 7, device.bytesInUse(), "two live tensors");
            assertEquals(4 * 11, other.bytesInUse(), "the other device's own tensor");

            floats.view(5, 5).close();
            assertEquals(4 * 15 + 4 * 7, device.bytesInUse(), "a view's close frees nothing");
            floats.close();
            floats.close();
            assertEquals(4 * 7, device.bytesInUse(), "one tensor closed (twice)");
            ints.close();
            elsewhere.close();
            Tensor leaked = device.allocate(DType.F32, 13);
            device.close();
            assertEquals(4 * 13, device.bytesInUse(), "after close: the tensor never freed");
            leaked.close();
            assertEquals(0, device.bytesInUse(), "everything freed");
            assertEquals(0, other.bytesInUse(), "everything freed on the other device");
        } finally {
            device.close();
            other.close();
        }
    }
}
