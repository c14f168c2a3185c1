package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.launch.ChildJvm;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.io.File;
import java.util.concurrent.TimeUnit;
import org.agrona.IoUtil;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Two real JVMs, each with its own media driver, exchanging tensors over UDP on 127.0.0.1 (tagged
 * slow: child JVM start-up; run with {@code -Pall}).
 */
@Tag("slow")
class TwoProcessTransportTest {
    private LoopbackDriver driver;
    private RecordingListener listener;
    private WorkerTransport self;
    private ChildJvm child;
    private String childAeronDir;

    @BeforeEach
    void setUp() throws Exception {
        driver = LoopbackDriver.start(LoopbackDriver.testSettings().withPeerLostTimeoutNs(TimeUnit.SECONDS.toNanos(3)));
        listener = new RecordingListener();
        self = driver.openWorker("parent", 0, 1, listener);
        child = ChildJvm.start(EchoPeerMain.class, self.endpoint().toString());
        childAeronDir = child.awaitLine("AERONDIR ", 30_000).substring("AERONDIR ".length());
    }

    @AfterEach
    void tearDown() {
        child.close();
        driver.close();
        if (childAeronDir != null) {
            IoUtil.delete(new File(childAeronDir), true); // a killed child cannot clean up its driver dir
        }
    }

    private TensorSender connectToChild() throws Exception {
        TransportEndpoint childEndpoint = TransportEndpoint.parse(
            child.awaitLine("ENDPOINT ", 30_000).substring("ENDPOINT ".length()));
        assertFalse(childEndpoint.isSameNode(driver.node().nodeId()), "separate drivers talk UDP");
        TensorSender tx = self.connect(1, childEndpoint, 1);
        awaitConnected(tx, self.receiver(), 20_000);
        return tx;
    }

    @Test
    @Timeout(90)
    void shouldEchoTensorsBetweenTwoProcessesOverUdp() throws Exception {
        TensorSender tx = connectToChild();
        int[] sizes = {4, 1000, 65_536, 1_048_577 * 4, 5_000_000 * 4};
        for (int i = 0; i < sizes.length; i++) {
            try (NativeMemory src = new NativeMemory(sizes[i]).fillRandom(i)) {
                int[] shape = {sizes[i] / 4};
                tx.begin(FrameKind.ACTIVATION, i, TensorKey.of(i, 0, 0), DType.F32, shape, 1, src.address(), sizes[i]);
                pumpSend(tx, self.receiver(), 30_000);
                awaitReady(self.receiver(), listener, 1, 30_000);
                ReceiveSlot slot = listener.ready.poll();
                assertEquals(1, slot.sourceRank());
                assertEquals(TensorKey.of(i, 0, 0), slot.tensorKey());
                long diff = NativeMemory.firstDifference(src.address(), slot.address(), sizes[i]);
                System.out.printf("two processes: %d bytes echoed, first difference %d%n", sizes[i], diff);
                assertEquals(-1, diff);
                slot.release();
            }
        }
        try (NativeMemory stop = new NativeMemory(4)) {
            tx.send(FrameKind.CONTROL, 0, 0, DType.I8, new int[] {4}, 1, stop.address(), 4);
        }
        child.awaitLine("STOP", 20_000);
        assertEquals(0, child.waitFor(20_000), child.output());
        assertEquals(0, self.receiver().drops().total(), self.receiver().drops().toString());
    }

    @Test
    @Timeout(60)
    void shouldReportPeerLostWithinTimeoutWhenSenderProcessIsKilled() throws Exception {
        TensorSender tx = connectToChild();
        try (NativeMemory src = new NativeMemory(4096).fillRandom(1)) {
            tx.send(FrameKind.GRADIENT, 0, 0, DType.I8, new int[] {4096}, 1, src.address(), 4096);
            awaitReady(self.receiver(), listener, 1, 20_000);
            listener.ready.poll().release();
        }
        assertTrue(listener.lost.isEmpty());
        long timeoutNs = driver.node().settings().peerLostTimeoutNs();
        // what makes the report come within the timeout: the driver drops a silent peer's image before it (and
        // not after Aeron's own 10 s default); how much later than that the report comes is a matter of load
        long livenessNs = driver.node().imageLivenessTimeoutNs();
        assertTrue(livenessNs > 0 && livenessNs < timeoutNs, "image liveness " + livenessNs + " ns, peer lost "
            + timeoutNs + " ns");
        child.kill();
        long killedNs = System.nanoTime();
        while (listener.lost.isEmpty()) {
            self.receiver().doWork();
            Thread.yield();
            // several timeouts: only a peer never reported lost runs past it
            assertTrue(System.nanoTime() - killedNs < 5 * timeoutNs, "no peer lost notice");
        }
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedNs);
        System.out.printf("peer lost reported %d ms after SIGKILL (peerLostTimeoutNs=%d ms)%n", elapsedMs,
            TimeUnit.NANOSECONDS.toMillis(timeoutNs));
        assertEquals(1, listener.lost.poll());
    }
}
