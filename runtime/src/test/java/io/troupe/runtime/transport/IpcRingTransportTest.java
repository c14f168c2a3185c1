package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.ExclusivePublication;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Same-host IPC between two nodes that share one media driver (as node processes on one host do)
 * but not an in-process link registry: tensors go through the sender's {@link IpcRing}. One JVM
 * here for speed; {@code TwoProcessIpcRingTest} runs the same path between two processes.
 */
class IpcRingTransportTest {
    private static final long EPOCH = 1;
    private final List<Throwable> errors = new CopyOnWriteArrayList<>();
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void tearDown() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
        assertTrue(errors.isEmpty(), errors.toString());
    }

    private <T extends AutoCloseable> T track(T t) {
        open.add(t);
        return t;
    }

    /** Two nodes on one driver: the first embeds it, the second joins it as an external driver. */
    private TransportNode[] sharedDriverNodes(TransportSettings s) {
        TransportNode a = track(TransportNode.launch(s, errors::add));
        TransportNode b = track(TransportNode.launch(s.withExternalDriver(a.aeronDir()), errors::add));
        return new TransportNode[] {a, b};
    }

    @Test
    @Timeout(60)
    void shouldMoveTensorsThroughTheRingAndOnlyHeadersThroughTheLog() {
        TransportNode[] nodes = sharedDriverNodes(LoopbackDriver.testSettings());
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = track(nodes[1].openWorker("rx", 1, EPOCH, listener, errors::add));
        WorkerTransport txWorker = track(nodes[0].openWorker("tx", 0, EPOCH, slot -> { }, errors::add));
        assertTrue(rx.endpoint().isSameNode(nodes[0].nodeId()), "one driver: IPC");
        TensorSender tx = txWorker.connect(1, rx.endpoint(), EPOCH);
        awaitConnected(tx, rx.receiver(), 20_000);
        int stream = rx.endpoint().streamId();
        int session = tx.publication().sessionId();
        java.util.function.LongPredicate live = IpcRing.livePublications(nodes[0].aeron().countersReader());
        assertTrue(live.test(IpcRing.pair(stream, session)), "the driver's counters know the ring's publication");
        assertFalse(live.test(IpcRing.pair(stream, session + 1)));
        long[] sizes = {4, 4L * 16_383, 65_536, 4L * 262_161 * 3 + 4, 4L * 16 * 1024 * 1024};
        long bulk = 0;
        for (int i = 0; i < sizes.length; i++) {
            try (NativeMemory src = new NativeMemory(sizes[i]).fillRandom(i)) {
                tx.begin(FrameKind.ACTIVATION, i, TensorKey.of(i, 0, 0), DType.F32, new int[] {(int) (sizes[i] / 4)}, 1,
                    src.address(), sizes[i]);
                pumpSend(tx, rx.receiver(), 30_000);
                awaitReady(rx.receiver(), listener, 1, 30_000);
                ReceiveSlot slot = listener.ready.poll();
                assertEquals(TensorKey.of(i, 0, 0), slot.tensorKey());
                assertEquals(sizes[i], slot.lengthBytes());
                assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), sizes[i]),
                    "ring round trip of " + sizes[i] + " bytes");
                slot.release();
            }
            if (sizes[i] >= TransportSettings.DEFAULT_IPC_RING_MIN_BYTES) {
                bulk += sizes[i];
            }
        }
        // a ring left by a killed sender (no publication any more, old) is swept when a ring is made;
        // the live one stays
        java.io.File orphan = new java.io.File(nodes[0].aeronDir(), IpcRing.fileName(999_999_999L, stream, 4242));
        try (IpcRing r = IpcRing.create(nodes[0].aeronDir(), stream, 4242, 4096)) {
            java.nio.file.Files.copy(r.file().toPath(), orphan.toPath());
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
        assertTrue(orphan.setLastModified(System.currentTimeMillis() - 2 * IpcRing.ORPHAN_MIN_AGE_MS));
        WorkerTransport other = track(nodes[0].openWorker("tx3", 3, EPOCH, slot -> { }, errors::add));
        other.connect(1, rx.endpoint(), EPOCH);
        assertFalse(orphan.exists(), "the orphan ring is swept");
        String liveRing = IpcRing.fileName(ProcessHandle.current().pid(), stream, session);
        assertTrue(new java.io.File(nodes[0].aeronDir(), liveRing).exists(), "the live ring stays");
        long logBytes = tx.publication().position();
        System.out.printf("ring: %d tensor bytes, %d bytes through the Aeron log%n", bulk, logBytes);
        assertTrue(logBytes < 4 * 65_536 + 200 * 128, "bulk bytes bypass the log: log position " + logBytes);
        assertEquals(0, rx.receiver().drops().total(), rx.receiver().drops().toString());
    }

    @Test
    @Timeout(60)
    void shouldWrapTheRingManyTimesWithoutLosingOrMixingBytes() {
        // term 1 MiB: a 512 KiB ring, 64 KiB chunks; odd tensor sizes wrap it at odd places
        TransportSettings s = LoopbackDriver.testSettings().withChunkBytes(64 * 1024).withTermLengthBytes(1 << 20);
        TransportNode[] nodes = sharedDriverNodes(s);
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = track(nodes[1].openWorker("rx", 1, EPOCH, listener, errors::add));
        WorkerTransport txWorker = track(nodes[0].openWorker("tx", 0, EPOCH, slot -> { }, errors::add));
        TensorSender tx = txWorker.connect(1, rx.endpoint(), EPOCH);
        awaitConnected(tx, rx.receiver(), 20_000);
        SplittableRandom r = new SplittableRandom(7);
        try (NativeMemory src = new NativeMemory(1_200_000).fillRandom(3)) {
            for (int i = 0; i < 300; i++) {
                int bytes = 65_536 + r.nextInt(1_100_000);
                int from = r.nextInt(1_200_000 - bytes + 1);
                tx.begin(FrameKind.GRADIENT, i, TensorKey.of(i % 7, 0, i), DType.I8, new int[] {bytes}, 1,
                    src.address() + from, bytes);
                pumpSend(tx, rx.receiver(), 30_000);
                awaitReady(rx.receiver(), listener, 1, 30_000);
                ReceiveSlot slot = listener.ready.poll();
                assertEquals(-1, NativeMemory.firstDifference(src.address() + from, slot.address(), bytes),
                    "tensor " + i + " of " + bytes + " bytes");
                slot.release();
            }
        }
        assertEquals(0, rx.receiver().drops().total(), rx.receiver().drops().toString());
    }

    @Test
    @Timeout(60)
    void shouldDropRingFramesWithoutARingOrOutsideItAndKeepDelivering() {
        TransportSettings s = LoopbackDriver.testSettings();
        TransportNode[] nodes = sharedDriverNodes(s);
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = track(nodes[1].openWorker("rx", 1, EPOCH, listener, errors::add));
        TensorReceiverAgent agent = rx.receiver();
        int evilSession = SessionIds.of(5, EPOCH);
        int stream = rx.endpoint().streamId();
        ExclusivePublication evil = track(nodes[0].aeron().addExclusivePublication(
            TransportChannels.ipcPublication(s, evilSession), stream));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!evil.isConnected()) {
            agent.doWork();
            assertTrue(System.nanoTime() < deadline, "evil publication not connected");
        }
        UnsafeBuffer frameBuffer = new UnsafeBuffer(BufferUtil.allocateDirectAligned(
            TensorFrameDescriptor.HEADER_LENGTH, 64));
        TensorFrameFlyweight frame = new TensorFrameFlyweight();
        // 1: a ring frame from a publication that has no ring
        offerRingFrame(evil, frameBuffer, frame, 0, 4096, agent, deadline);
        assertEquals(1, agent.drops().count(DropReason.BAD_REFERENCE));
        // 2: once the ring exists for a new image: offsets and lengths outside it are refused
        evil.close();
        int session2 = SessionIds.of(6, EPOCH);
        try (IpcRing ring = IpcRing.create(nodes[0].aeronDir(), stream, session2, 64 * 1024)) {
            ExclusivePublication evil2 = track(nodes[0].aeron().addExclusivePublication(
                TransportChannels.ipcPublication(s, session2), stream));
            while (!evil2.isConnected()) {
                agent.doWork();
                assertTrue(System.nanoTime() < deadline, "second publication not connected");
            }
            offerRingFrame(evil2, frameBuffer, frame, 64 * 1024 - 100, 4096, agent, deadline);
            offerRingFrame(evil2, frameBuffer, frame, -64, 4096, agent, deadline);
            assertEquals(3, agent.drops().count(DropReason.BAD_REFERENCE), agent.drops().toString());
            // 3: a well-formed ring frame of the same publication is still delivered intact
            long start = ring.claim(4096);
            for (int i = 0; i < 4096; i++) {
                org.agrona.UnsafeApi.putByte(ring.address(start) + i, (byte) (i * 31));
            }
            ring.commit(start, 4096);
            offerRingFrame(evil2, frameBuffer, frame, ring.offsetOf(start), 4096, agent, deadline);
            awaitReady(agent, listener, 1, 20_000);
            ReceiveSlot slot = listener.ready.poll();
            for (int i = 0; i < 4096; i++) {
                assertEquals((byte) (i * 31), org.agrona.UnsafeApi.getByte(slot.address() + i), "byte " + i);
            }
            slot.release();
            assertEquals(4096, ring.claim(64 * 1024) >= 0 ? 4096 : -1, "the receiver released the chunk");
        }
        // 4: a ring frame over UDP is refused whatever it names
        WorkerTransport udpTx = track(nodes[0].openWorker("udp-tx", 0, EPOCH, slot -> { }, errors::add));
        TransportEndpoint remote = new TransportEndpoint("elsewhere", rx.endpoint().host(), rx.endpoint().port(),
            stream);
        TensorSender viaUdp = udpTx.connect(1, remote, EPOCH);
        awaitConnected(viaUdp, agent, 20_000);
        long before = agent.drops().count(DropReason.BAD_REFERENCE);
        frame.wrap(frameBuffer, 0).writeHeader(FrameKind.ACTIVATION, DType.I8, TensorFrameDescriptor.FLAG_BY_RING
                | TensorFrameDescriptor.FLAG_CRC, EPOCH, 0, 0, 1, 0, new int[] {4096}, 1, 4096, 0, 4096);
        frame.referenceSequence(0);
        frame.sealCrc(0);
        while (viaUdp.publication().offer(frameBuffer, 0, TensorFrameDescriptor.HEADER_LENGTH) < 0) {
            agent.doWork();
            assertTrue(System.nanoTime() < deadline, "udp offer stuck");
        }
        while (agent.drops().count(DropReason.BAD_REFERENCE) == before) {
            agent.doWork();
            assertTrue(System.nanoTime() < deadline, "udp ring frame not counted: " + agent.drops());
        }
        assertEquals(0, agent.errors());
    }

    /**
     * After the receiver moved to a newer epoch (a job aborted and restarted), the old epoch's sender may
     * still be sending: its ring frames are dropped as stale, and their bytes are released all the same,
     * so that sender finishes at once instead of waiting out its back-pressure deadline on a full ring.
     */
    @Test
    @Timeout(60)
    void shouldReleaseTheRingBytesOfStaleFramesSoTheOldSenderFinishes() {
        TransportNode[] nodes = sharedDriverNodes(LoopbackDriver.testSettings()
            .withBackPressureTimeoutNs(TimeUnit.SECONDS.toNanos(3)));
        RecordingListener listener = new RecordingListener();
        WorkerTransport rx = track(nodes[1].openWorker("rx", 1, EPOCH, listener, errors::add));
        WorkerTransport txWorker = track(nodes[0].openWorker("tx", 0, EPOCH, slot -> { }, errors::add));
        TensorSender old = txWorker.connect(1, rx.endpoint(), EPOCH);
        awaitConnected(old, rx.receiver(), 20_000);
        rx.assign(1, EPOCH + 1);
        int tensorBytes = 1024 * 1024;
        int count = 3 * (LoopbackDriver.testSettings().termLengthBytes() / 2) / tensorBytes; // three rings' worth
        try (NativeMemory src = new NativeMemory(tensorBytes).fillRandom(7)) {
            for (int i = 0; i < count; i++) {
                old.begin(FrameKind.GRADIENT, 0, TensorKey.of(i, 0, 0), DType.F32, new int[] {tensorBytes / 4}, 1,
                    src.address(), tensorBytes);
                pumpSend(old, rx.receiver(), 20_000);
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (rx.receiver().drops().count(DropReason.STALE_EPOCH) < count) {
                rx.receiver().doWork();
                assertTrue(System.nanoTime() < deadline, "stale frames not all counted: " + rx.receiver().drops());
            }
            assertEquals(count, rx.receiver().drops().count(DropReason.STALE_EPOCH));
            assertTrue(listener.ready.isEmpty(), "a stale tensor was delivered");
            // the new epoch's sender (a new publication and ring) delivers as usual
            TensorSender current = txWorker.connect(1, rx.endpoint(), EPOCH + 1);
            awaitConnected(current, rx.receiver(), 20_000);
            current.begin(FrameKind.GRADIENT, 0, TensorKey.of(0, 0, 0), DType.F32, new int[] {tensorBytes / 4}, 1,
                src.address(), tensorBytes);
            pumpSend(current, rx.receiver(), 20_000);
            awaitReady(rx.receiver(), listener, 1, 20_000);
            ReceiveSlot slot = listener.ready.poll();
            assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), tensorBytes));
            slot.release();
        }
    }

    private static void offerRingFrame(ExclusivePublication pub, UnsafeBuffer buffer, TensorFrameFlyweight frame,
                                       int ringOffset, int bytes, TensorReceiverAgent agent, long deadline) {
        long dropsBefore = agent.drops().total();
        long deliveredBefore = agent.tensorsDelivered();
        int rank = SessionIds.rankOf(pub.sessionId());
        frame.wrap(buffer, 0).writeHeader(FrameKind.ACTIVATION, DType.I8, TensorFrameDescriptor.FLAG_BY_RING, EPOCH, 0,
            rank, 1, 0, new int[] {bytes}, 1, bytes, 0, bytes);
        frame.referenceSequence(ringOffset);
        while (pub.offer(buffer, 0, TensorFrameDescriptor.HEADER_LENGTH) < 0) {
            agent.doWork();
            assertTrue(System.nanoTime() < deadline, "offer stuck");
        }
        while (agent.drops().total() == dropsBefore && agent.tensorsDelivered() == deliveredBefore) {
            agent.doWork();
            assertTrue(System.nanoTime() < deadline, "ring frame neither dropped nor delivered");
        }
    }
}
