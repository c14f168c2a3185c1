package io.troupe.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import org.junit.jupiter.api.Test;

class CpuDeviceSmokeTest {

    @Test
    void shouldMultiplySmallMatricesThroughOpenBlas() {
        try (CpuDevice dev = new CpuDevice(2);
             Tensor a = dev.allocate(2, 3);
             Tensor b = dev.allocate(3, 2);
             Tensor c = dev.allocate(2, 2)) {
            dev.copyFromHost(new float[] {1, 2, 3, 4, 5, 6}, a);
            dev.copyFromHost(new float[] {7, 8, 9, 10, 11, 12}, b);
            dev.matmul(false, false, 2, 2, 3, 1f, a, b, 0f, c);
            assertArrayEquals(new float[] {58, 64, 139, 154}, c.toFloatArray(), 0f);
            assertTrue(dev.name().startsWith("cpu(2 threads"), dev.name());
        }
    }

    @Test
    void shouldAlignStorageTo64Bytes() {
        try (CpuDevice dev = new CpuDevice(1); Tensor t = dev.allocate(DType.F32, 3)) {
            assertEquals(0, t.address() % 64);
        }
    }

    @Test
    void shouldRejectOutOfRangeEmbeddingIdNamingIt() {
        try (CpuDevice dev = new CpuDevice(1);
             Tensor out = dev.allocate(2, 4);
             Tensor ids = dev.allocate(DType.I32, 2);
             Tensor table = dev.allocate(5, 4)) {
            dev.copyFromHost(new int[] {1, 9}, ids);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> dev.embedding(out, ids, table, 2, 4, false));
            assertTrue(e.getMessage().contains("9"), e.getMessage());
        }
    }
}
