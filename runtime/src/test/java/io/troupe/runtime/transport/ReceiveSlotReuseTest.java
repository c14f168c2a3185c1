package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A slot released during a duty cycle is reused by the next tensor of the same poll: back-to-back
 * tensors, each released as it is delivered, need one slot's memory, never fresh memory (whose first
 * touch page-faults: the cause of the bimodal same-JVM IPC runs).
 */
class ReceiveSlotReuseTest {
    private LoopbackDriver driver;

    @AfterEach
    void tearDown() {
        if (driver != null) {
            driver.close();
        }
    }

    @Test
    @Timeout(30)
    void shouldReuseSlotReleasedEarlierInTheSamePoll() {
        driver = LoopbackDriver.start(LoopbackDriver.testSettings().withLocalCopyMinBytes(Long.MAX_VALUE));
        int[] delivered = new int[1];
        WorkerTransport rx = driver.openWorker("rx", 1, 0, new TensorReceiverAgent.Listener() {
            @Override
            public void onTensorReady(ReceiveSlot slot) {
                delivered[0]++;
                slot.release(); // released on delivery, in the middle of the receiver's poll
            }
        });
        WorkerTransport w = driver.openWorker("tx", 0, 0, slot -> slot.release());
        TensorSender tx = w.connect(1, rx.endpoint(), 0);
        awaitConnected(tx, rx.receiver(), 10_000);
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (rx.receiver().subscription(0).imageCount() == 0) { // the IPC image is mapped on the client's own thread
            assertTrue(System.nanoTime() < deadline, "IPC image not available within 10 s");
            Thread.yield();
        }
        int tensors = 6;
        int bytes = 64 * 1024;
        try (NativeMemory src = new NativeMemory(bytes).fillRandom(3)) {
            for (int i = 0; i < tensors; i++) { // all in the log before the receiver polls once
                tx.send(FrameKind.ACTIVATION, 0, i, DType.F32, new int[] {bytes / 4}, 1, src.address(), bytes);
            }
            long before = rx.receiver().pool().allocations();
            int work = rx.receiver().doWork();
            long allocations = rx.receiver().pool().allocations() - before;
            System.out.printf("%d tensors in one poll (work %d): %d slot allocation(s)%n", delivered[0], work,
                allocations);
            assertEquals(tensors, delivered[0], "every tensor delivered in the one poll");
            assertEquals(1, allocations, "back-to-back tensors must reuse the released slot");
        }
    }
}
