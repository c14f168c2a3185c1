package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.AdamWStep;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/**
 * The checks a CUDA op makes on its tensor arguments before it launches anything: a tensor on
 * another device, of the wrong type, too small or closed is refused with an
 * {@link IllegalArgumentException} naming the op, the argument, the bad value and what was expected;
 * the op's outputs are left as they were and the device goes on working. Skipped, with the reason,
 * where there is no GPU.
 */
@Timeout(60)
class CudaArgumentCheckTest {
    private static final int N = 10;
    private static final AdamWStep STEP = new AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1);

    private CpuDevice cpu;
    private CudaDevice gpu;

    @BeforeEach
    void open() {
        CudaTesting.assumeGpu();
        cpu = new CpuDevice(2);
        gpu = new CudaDevice(0);
    }

    @AfterEach
    void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    private Tensor gpuOf(float... values) {
        Tensor t = gpu.allocate(values.length);
        gpu.copyFromHost(values, t);
        return t;
    }

    private static float[] ramp(int n, float start) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = start + i;
        }
        return a;
    }

    /** Runs a refused op and returns its message, after checking that {@code out} still holds {@code before}. */
    private String refused(Executable op, Tensor out, float[] before) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, op);
        gpu.synchronize();
        assertArrayEquals(before, out.toFloatArray(), "the refused op changed its output: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void shouldRefuseATensorOfAnotherDeviceNamingBoth() {
        float[] y0 = ramp(N, 1f);
        try (Tensor x = cpu.allocate(N); Tensor y = gpuOf(y0)) {
            cpu.copyFromHost(ramp(N, 100f), x);
            String msg = refused(() -> gpu.axpy(2f, x, y), y, y0);
            assertEquals("axpy: x is on " + cpu.name() + ", not on " + gpu.name(), msg);
            // Still usable: the same op with a tensor of this device.
            try (Tensor gx = gpuOf(ramp(N, 100f))) {
                gpu.axpy(2f, gx, y);
                assertEquals(1f + 2f * 100f, y.toFloatArray()[0]);
            }
        }
    }

    @Test
    void shouldRefuseATensorOfAnotherDeviceObjectOfTheSameName() {
        float[] y0 = ramp(N, 1f);
        try (CudaDevice other = new CudaDevice(0)) {
            try (Tensor x = other.allocate(N); Tensor y = gpuOf(y0)) {
                String msg = refused(() -> gpu.axpy(2f, x, y), y, y0);
                assertEquals("axpy: x is on another device object of the same name, " + gpu.name()
                    + " (each owns its own memory), not on " + gpu.name(), msg);
            }
        }
    }

    @Test
    void shouldRefuseAnInputOfTheWrongTypeNamingTheTypeExpected() {
        float[] out0 = ramp(N, -5f);
        try (Tensor a = gpuOf(ramp(N, 0f)); Tensor b = gpu.allocate(DType.I32, N); Tensor out = gpuOf(out0)) {
            String msg = refused(() -> gpu.add(a, b, out), out, out0);
            assertEquals("add: b must be F32: dtype=I32", msg);
        }
    }

    @Test
    void shouldRefuseIdsThatAreNotIntegers() {
        float[] out0 = ramp(2 * 4, 0f);
        try (Tensor out = gpuOf(out0); Tensor ids = gpuOf(0f, 1f); Tensor table = gpuOf(ramp(3 * 4, 50f))) {
            String msg = refused(() -> gpu.embedding(out, ids, table, 2, 4, false), out, out0);
            assertEquals("embedding: ids must be I32: dtype=F32", msg);
        }
    }

    @Test
    void shouldRefuseATensorTooSmallNamingBothSizes() {
        float[] p0 = ramp(N, 1f);
        try (Tensor p = gpuOf(p0); Tensor g = gpuOf(ramp(N, 2f)); Tensor m = gpuOf(new float[N]);
             Tensor v = gpuOf(new float[N / 2])) {
            String msg = refused(() -> gpu.adamw(p, g, m, v, STEP), p, p0);
            assertEquals("adamw: v too small: needs " + N + " elements, has " + N / 2, msg);
            assertArrayEquals(new float[N], m.toFloatArray(), "the refused adamw changed m");
        }
    }

    @Test
    void shouldRefuseABiasShorterThanARow() {
        float[] out0 = ramp(3 * 4, 0f);
        try (Tensor out = gpuOf(out0); Tensor bias = gpuOf(1f, 2f, 3f)) {
            String msg = refused(() -> gpu.biasAdd(out, bias, 3, 4), out, out0);
            assertEquals("biasAdd: bias too small: needs 4 elements, has 3", msg);
        }
    }

    @Test
    void shouldRefuseAClosedTensor() {
        float[] y0 = ramp(N, 1f);
        try (Tensor y = gpuOf(y0)) {
            Tensor x = gpuOf(ramp(N, 100f));
            x.close();
            String msg = refused(() -> gpu.axpy(2f, x, y), y, y0);
            assertEquals("axpy: x is closed", msg);
        }
    }
}
