package io.troupe.runtime.cpu;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;

/**
 * Shared plumbing of the CPU-device-versus-reference tests: one device per test (opened with the
 * parameterized thread count), tensors tracked and closed before the device, a seeded random source.
 */
@Timeout(30)
abstract class CpuDeviceTestBase {
    protected final Random rnd = new Random(0x7E57_0B5L);
    protected CpuDevice device;
    protected int threads;
    private final List<Tensor> tensors = new ArrayList<>();

    protected void open(int threadCount) {
        this.threads = threadCount;
        this.device = new CpuDevice(threadCount);
        rnd.setSeed(0x7E57_0B5L + threadCount);
    }

    @AfterEach
    void closeDevice() {
        for (Tensor t : tensors) {
            t.close();
        }
        tensors.clear();
        if (device != null) {
            device.close();
        }
    }

    /** An F32 tensor holding {@code data}, closed after the test. */
    protected Tensor tensor(float[] data, int... shape) {
        return track(RandomTensors.tensor(device, data, shape));
    }

    /** An I32 tensor holding {@code data}, closed after the test. */
    protected Tensor intTensor(int[] data, int... shape) {
        return track(RandomTensors.intTensor(device, data, shape));
    }

    /** A zero-filled F32 tensor, closed after the test. */
    protected Tensor zeros(int... shape) {
        return track(device.allocate(DType.F32, shape));
    }

    private Tensor track(Tensor t) {
        tensors.add(t);
        return t;
    }

    /** Asserts the tensor's elements match {@code expected}, printing the max differences. */
    protected void check(String what, double[] expected, Tensor actual, double atol, double rtol) {
        RandomTensors.assertClose(what + " [threads=" + threads + "]",
            expected, RandomTensors.read(actual), atol, rtol);
    }
}
