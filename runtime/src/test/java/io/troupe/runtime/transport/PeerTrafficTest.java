package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A node's bytes per peer ({@link TransportNode#traffic()}): exactly the tensor bytes each worker sent to and
 * accepted from each peer rank, over UDP (many chunks) and over IPC (through the same-host ring).
 */
class PeerTrafficTest {
    @Test
    @Timeout(60)
    void shouldCountEveryTensorByteByWorkerAndPeer() {
        try (LoopbackDriver driver = LoopbackDriver.start(LoopbackDriver.testSettings().withChunkBytes(256 * 1024))) {
            RecordingListener listener = new RecordingListener();
            WorkerTransport rx = driver.openWorker("rx", 1, 0, listener);
            WorkerTransport txWorker = driver.openWorker("tx", 0, 0, slot -> { });
            TransportEndpoint ep = rx.endpoint();
            TensorSender udp = txWorker.connect(1, new TransportEndpoint("elsewhere", ep.host(), ep.port(),
                ep.streamId()), 0);
            long total = 0;
            long[] sizes = {4, 4096, 1_000_004};
            awaitConnected(udp, rx.receiver(), 20_000);
            for (long size : sizes) {
                send(udp, rx, listener, size);
                total += size;
            }
            PeerTraffic traffic = driver.node().traffic();
            assertEquals(total, traffic.sentTo(0, 1).bytes(), "sent over UDP");
            assertEquals(total, traffic.receivedFrom(1, 0).bytes(), "received over UDP");
            assertEquals(0, traffic.sentTo(1, 0).bytes(), "nothing the other way");
            TensorSender ipc = txWorker.connect(1, ep, 1); // a new epoch: a same-node sender over IPC
            rx.assign(1, 1);
            awaitConnected(ipc, rx.receiver(), 20_000);
            for (long size : sizes) {
                send(ipc, rx, listener, size);
                total += size;
            }
            assertEquals(total, traffic.sentTo(0, 1).bytes(), "sent over UDP and IPC");
            assertEquals(total, traffic.receivedFrom(1, 0).bytes(), "received over UDP and IPC");
        }
    }

    private static void send(TensorSender tx, WorkerTransport rx, RecordingListener listener, long size) {
        try (NativeMemory src = new NativeMemory(size).fillRandom(size)) {
            tx.begin(FrameKind.ACTIVATION, 0, TensorKey.of(1, 0, 0), DType.I8, new int[] {(int) size}, 1,
                src.address(), size);
            pumpSend(tx, rx.receiver(), 20_000);
            awaitReady(rx.receiver(), listener, 1, 20_000);
            listener.ready.poll().release();
        }
    }
}
