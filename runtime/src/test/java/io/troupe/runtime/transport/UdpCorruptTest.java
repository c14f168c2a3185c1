package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A frame damaged on the wire past the UDP checksum ({@code udpCorruptNth}: the driver flips a byte of
 * the third data frame it receives) is caught by the frame's own CRC: the receiver drops the chunk,
 * counts it, and tells its listener at once that the tensor can never complete (its later chunks are
 * dropped as out of order); the next tensor on the same stream arrives intact.
 */
class UdpCorruptTest {
    @Test
    @Timeout(120)
    void shouldRefuseTheCorruptedChunkReportTheTensorAtOnceAndDeliverTheNextIntact() {
        List<Throwable> errors = new CopyOnWriteArrayList<>();
        try (TransportNode node = TransportNode.launch(LoopbackDriver.testSettings().withUdpCorruptNth(3),
            errors::add)) {
            RecordingListener listener = new RecordingListener();
            WorkerTransport rx = node.openWorker("rx", 1, 1, listener, errors::add);
            WorkerTransport txWorker = node.openWorker("tx", 0, 1, slot -> { }, errors::add);
            TransportEndpoint ep = rx.endpoint();
            TensorSender tx = txWorker.connect(1, new TransportEndpoint("elsewhere", ep.host(), ep.port(),
                ep.streamId()), 1);
            assertTrue(tx.publication().channel().startsWith("aeron:udp"), tx.publication().channel());
            awaitConnected(tx, rx.receiver(), 20_000);
            long bytes = 4L * 1024 * 1024;
            try (NativeMemory first = new NativeMemory(bytes).fillRandom(7);
                 NativeMemory second = new NativeMemory(bytes).fillRandom(8)) {
                tx.begin(FrameKind.GRADIENT, 1, TensorKey.of(0, 0, 1), DType.I8, new int[] {(int) bytes}, 1,
                    first.address(), bytes);
                pumpSend(tx, rx.receiver(), 60_000);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (listener.corrupted.isEmpty() && System.nanoTime() < deadline) {
                    if (rx.receiver().doWork() == 0) {
                        Thread.yield();
                    }
                }
                assertEquals(List.of(DropReason.BAD_CHUNK_CRC), List.copyOf(listener.corrupted),
                    "the damaged tensor reported once, by its chunk CRC; drops " + rx.receiver().drops());
                assertEquals(1, rx.receiver().drops().count(DropReason.BAD_CHUNK_CRC),
                    rx.receiver().drops().toString());
                assertTrue(listener.ready.isEmpty(), "a tensor with a damaged chunk must never be delivered");

                tx.begin(FrameKind.GRADIENT, 1, TensorKey.of(1, 0, 1), DType.I8, new int[] {(int) bytes}, 1,
                    second.address(), bytes);
                pumpSend(tx, rx.receiver(), 60_000);
                awaitReady(rx.receiver(), listener, 1, 60_000);
                ReceiveSlot slot = listener.ready.poll();
                assertEquals(TensorKey.of(1, 0, 1), slot.tensorKey());
                assertEquals(-1, NativeMemory.firstDifference(second.address(), slot.address(), bytes));
                slot.release();
            }
            // The damaged tensor's later chunks find no slot and are dropped as out of order; nothing else.
            FrameDropCounters drops = rx.receiver().drops();
            assertEquals(drops.total(), drops.count(DropReason.BAD_CHUNK_CRC) + drops.count(DropReason.OUT_OF_ORDER),
                drops.toString());
            assertTrue(errors.isEmpty(), errors.toString());
        }
    }
}
