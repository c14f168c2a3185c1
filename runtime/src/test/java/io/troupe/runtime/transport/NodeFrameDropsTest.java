package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A node's frame-drop totals ({@link TransportNode#framesDropped}): the sum of its workers'
 * receivers, kept when a worker closes. A sender of an older epoch makes real STALE_EPOCH drops.
 */
class NodeFrameDropsTest {

    @Test
    @Timeout(60)
    void shouldSumEveryWorkersDropsAndKeepThemAfterTheWorkerCloses() {
        try (LoopbackDriver driver = LoopbackDriver.start()) {
            TransportNode node = driver.node();
            WorkerTransport rx = driver.openWorker("rx", 1, 2, slot -> slot.release());
            WorkerTransport txWorker = driver.openWorker("tx", 0, 1, slot -> slot.release());
            TensorSender tx = txWorker.connect(1, rx.endpoint(), 1); // epoch 1 < the receiver's 2
            awaitConnected(tx, rx.receiver(), 20_000);
            try (NativeMemory src = new NativeMemory(64).fillRandom(1)) {
                tx.begin(FrameKind.ACTIVATION, 0, TensorKey.of(1, 0, 0), DType.F32, new int[] {16}, 1,
                    src.address(), 64);
                pumpSend(tx, rx.receiver(), 20_000);
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (rx.receiver().drops().count(DropReason.STALE_EPOCH) == 0) {
                rx.receiver().doWork();
                Thread.yield();
                assertTrue(System.nanoTime() < deadline, "no stale frame dropped: " + rx.receiver().drops());
            }
            long stale = rx.receiver().drops().count(DropReason.STALE_EPOCH);
            assertEquals(stale, node.framesDropped(DropReason.STALE_EPOCH));
            assertEquals(0, node.framesDropped(DropReason.WRONG_JOB));
            rx.close();
            assertEquals(stale, node.framesDropped(DropReason.STALE_EPOCH), "a closed worker's drops are kept");
            rx.close();
            assertEquals(stale, node.framesDropped(DropReason.STALE_EPOCH), "closing twice counts once");
        }
    }
}
