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
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Two real JVMs on one media driver (this JVM's), as node processes of one host: tensors go both
 * ways over IPC through the senders' {@link IpcRing}s. Tagged slow (child JVM start-up; {@code -Pall}).
 */
@Tag("slow")
class TwoProcessIpcRingTest {
    private LoopbackDriver driver;
    private ChildJvm child;

    @AfterEach
    void tearDown() {
        if (child != null) {
            child.close();
        }
        driver.close();
    }

    @Test
    @Timeout(120)
    void shouldEchoTensorsThroughRingsBetweenTwoProcessesAndSweepTheKilledOnesRing() throws Exception {
        driver = LoopbackDriver.start(LoopbackDriver.testSettings().withPeerLostTimeoutNs(TimeUnit.SECONDS.toNanos(3)));
        RecordingListener listener = new RecordingListener();
        WorkerTransport self = driver.openWorker("parent", 0, 1, listener);
        String dir = driver.node().aeronDir();
        child = ChildJvm.start(EchoPeerMain.class, self.endpoint().toString(), dir);
        TransportEndpoint childEndpoint = TransportEndpoint.parse(
            child.awaitLine("ENDPOINT ", 30_000).substring("ENDPOINT ".length()));
        assertTrue(childEndpoint.isSameNode(driver.node().nodeId()), "one driver: IPC");
        TensorSender tx = self.connect(1, childEndpoint, 1);
        awaitConnected(tx, self.receiver(), 20_000);
        int[] sizes = {4, 65_536, 1_048_577 * 4, 5_000_000 * 4, 16 * 1024 * 1024 * 4};
        long bulk = 0;
        for (int i = 0; i < sizes.length; i++) {
            try (NativeMemory src = new NativeMemory(sizes[i]).fillRandom(i)) {
                tx.begin(FrameKind.ACTIVATION, i, TensorKey.of(i, 0, 0), DType.F32, new int[] {sizes[i] / 4}, 1,
                    src.address(), sizes[i]);
                pumpSend(tx, self.receiver(), 30_000);
                awaitReady(self.receiver(), listener, 1, 30_000);
                ReceiveSlot slot = listener.ready.poll();
                assertEquals(TensorKey.of(i, 0, 0), slot.tensorKey());
                long diff = NativeMemory.firstDifference(src.address(), slot.address(), sizes[i]);
                System.out.printf("two processes, IPC ring: %d bytes echoed, first difference %d%n", sizes[i], diff);
                assertEquals(-1, diff);
                slot.release();
            }
            bulk += sizes[i] >= TransportSettings.DEFAULT_IPC_RING_MIN_BYTES ? sizes[i] : 0;
        }
        assertTrue(tx.publication().position() < bulk / 100, "bulk bytes bypass the log: position "
            + tx.publication().position() + " for " + bulk + " bytes");
        assertEquals(0, self.receiver().drops().total(), self.receiver().drops().toString());
        File[] childRings = new File(dir).listFiles((d, n) -> n.startsWith(IpcRing.PREFIX)
            && n.startsWith(IpcRing.PREFIX + child.pid() + "-"));
        assertEquals(1, childRings.length, "the child's ring to this process");
        long childPair = IpcRing.pair(self.endpoint().streamId(), SessionIds.of(1, 1));
        assertTrue(IpcRing.livePublications(driver.node().aeron().countersReader()).test(childPair));
        child.kill();
        assertTrue(child.waitFor(20_000) != 0);
        // the driver drops the killed client's publication (client liveness, then linger) ...
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (IpcRing.livePublications(driver.node().aeron().countersReader()).test(childPair)) {
            self.receiver().doWork();
            assertTrue(System.nanoTime() < deadline, "the driver still holds the killed child's publication");
            Thread.yield();
        }
        // ... and then its ring is an orphan: swept (the age limit aside, which protects new rings)
        assertEquals(1, IpcRing.sweepOrphans(new File(dir),
            IpcRing.livePublications(driver.node().aeron().countersReader()), System.currentTimeMillis() + 1));
        assertFalse(childRings[0].exists(), "the killed process's ring is swept");
    }
}
