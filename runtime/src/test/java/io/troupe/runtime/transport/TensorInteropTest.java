package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.LoopbackDriver;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.YieldingIdleStrategy;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** CPU tensors go out by address (no copy) and come back as a tensor view or a copy into a tensor. */
class TensorInteropTest {
    private LoopbackDriver driver;
    private CpuDevice cpu;

    @BeforeEach
    void setUp() {
        driver = LoopbackDriver.start();
        cpu = new CpuDevice(1);
    }

    @AfterEach
    void tearDown() {
        cpu.close();
        driver.close();
    }

    @Test
    @Timeout(30)
    void shouldSendCpuTensorAndReadItBackAsViewAndCopy() {
        WorkerTransport a = driver.openWorker("a", 0, 2, slot -> { });
        WorkerTransport b = driver.openWorker("b", 1, 2, slot -> { });
        TensorSender tx = a.connect(1, b.endpoint(), 2);
        awaitConnected(tx, b.receiver(), 10_000);
        try (Tensor src = cpu.allocate(37, 3, 1029); Tensor dst = cpu.allocate(37, 3, 1029)) {
            float[] values = new float[(int) src.numel()];
            SplittableRandom r = new SplittableRandom(11);
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) r.nextGaussian();
            }
            cpu.copyFromHost(values, src);
            long key = TensorKey.of(0, 0, 17);
            tx.send(FrameKind.COLLECTIVE_CHUNK, 3, key, src);
            ReceiveSlot slot = b.receiver().awaitReady(0, FrameKind.COLLECTIVE_CHUNK, key, TimeUnit.SECONDS.toNanos(10),
                new YieldingIdleStrategy());
            Tensor view = slot.asTensor(cpu);
            assertArrayEquals(new int[] {37, 3, 1029}, view.shape());
            assertArrayEquals(values, view.toFloatArray(), "view over the slot");
            assertEquals(values[5], slot.buffer().getFloat(5 * 4, java.nio.ByteOrder.LITTLE_ENDIAN));
            slot.copyTo(dst);
            assertArrayEquals(values, dst.toFloatArray(), "copy into a tensor");
            slot.release();
            assertThrows(IllegalStateException.class, slot::release, "second release");
        }
        TransportTimeoutException e = assertThrows(TransportTimeoutException.class, () -> b.receiver().awaitReady(0,
            FrameKind.GRADIENT, 1, TimeUnit.MILLISECONDS.toNanos(50), new YieldingIdleStrategy()));
        assertTrue(e.getMessage().contains("source=0"), e.getMessage());
    }
}
