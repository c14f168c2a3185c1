package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.ExclusivePublication;
import io.aeron.Image;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.agrona.CloseHelper;
import org.agrona.concurrent.YieldingIdleStrategy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A receiver with an auth key over real UDP (loopback, one media driver): tensors from a sender with the
 * same key arrive intact, in one fragment (4 KiB) and in many chunks of many fragments (3 MiB); the same
 * tensors from a sender with another key are refused as {@link DropReason#BAD_MAC} and from a sender
 * with no key as {@link DropReason#MISSING_MAC}, none delivered and nobody told of a corrupt tensor,
 * while the right sender's tensors, interleaved with them, keep arriving.
 */
class AuthenticatedFramesTest {
    private static final long EPOCH = 1;
    private static final long[] SIZES = {4096, 3L * 1024 * 1024 + 8};

    @Test
    @Timeout(120)
    void shouldRefuseFramesWithoutTheKeyAndDeliverTheRestIntact() {
        TransportSettings keyed = LoopbackDriver.testSettings().withAuthKey(FrameAuthKey.ofValue("the cluster's key!"));
        try (LoopbackDriver driver = LoopbackDriver.start(keyed)) {
            RecordingListener listener = new RecordingListener();
            WorkerTransport rx = driver.openWorker("rx", 1, EPOCH, listener);
            TensorSender right = udpSender(driver, rx, 0, keyed);
            TensorSender wrongKey = udpSender(driver, rx, 2,
                keyed.withAuthKey(FrameAuthKey.ofValue("a stranger's key!!")));
            TensorSender noKey = udpSender(driver, rx, 3, keyed.withAuthKey(null));
            TensorReceiverAgent receiver = rx.receiver();
            for (TensorSender tx : new TensorSender[] {right, wrongKey, noKey}) {
                assertTrue(tx.publication().channel().startsWith("aeron:udp"), tx.publication().channel());
                awaitConnected(tx, receiver, 20_000);
            }
            for (int round = 0; round < 2; round++) {
                for (int i = 0; i < SIZES.length; i++) {
                    try (NativeMemory src = new NativeMemory(SIZES[i]).fillRandom(17L * round + i)) {
                        long key = TensorKey.of(i, 0, round);
                        send(wrongKey, receiver, key, src);
                        send(noKey, receiver, key, src);
                        send(right, receiver, key, src);
                        awaitReady(receiver, listener, 1, 60_000);
                        ReceiveSlot slot = listener.ready.poll();
                        assertEquals(0, slot.sourceRank(), "only the keyed sender's tensor is delivered");
                        assertEquals(key, slot.tensorKey());
                        assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), SIZES[i]),
                            "tensor of " + SIZES[i] + " bytes, round " + round);
                        slot.release();
                    }
                }
            }
            // every refused tensor is counted under its own reason (a tensor of many chunks: its first chunk)
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            FrameDropCounters drops = receiver.drops();
            while (drops.count(DropReason.BAD_MAC) < 4 || drops.count(DropReason.MISSING_MAC) < 4) {
                receiver.doWork();
                Thread.yield();
                assertTrue(System.nanoTime() < deadline, "refusals not counted: " + receiver.drops());
            }
            receiver.doWork();
            System.out.println("authenticated UDP: " + receiver.drops());
            assertTrue(listener.ready.isEmpty(), "a stranger's tensor was delivered");
            assertTrue(listener.corrupted.isEmpty(), "a stranger's frames reported a tensor corrupt: "
                + listener.corrupted);
            assertEquals(0, receiver.drops().count(DropReason.BAD_CHUNK_CRC) + receiver.drops().count(
                DropReason.MISSING_CRC), receiver.drops().toString());
            assertEquals(receiver.drops().count(DropReason.BAD_MAC), driver.node().framesDropped(DropReason.BAD_MAC));
            assertTrue(driver.errors().isEmpty(), driver.errors().toString());
            CloseHelper.closeAll(right, wrongKey, noKey);
        }
    }

    /** A UDP sender of {@code rank} to {@code rx}, with its own settings (its key), on the driver's client. */
    private static TensorSender udpSender(LoopbackDriver driver, WorkerTransport rx, int rank, TransportSettings s) {
        return udpSender(driver, rx, rank, s, SessionIds.of(rank, EPOCH));
    }

    /** As {@link #udpSender(LoopbackDriver, WorkerTransport, int, TransportSettings)} on a session of its own. */
    private static TensorSender udpSender(LoopbackDriver driver, WorkerTransport rx, int rank, TransportSettings s,
                                          int sessionId) {
        TransportEndpoint ep = rx.endpoint();
        String channel = TransportChannels.udpPublication(s, ep.host(), ep.port(), sessionId);
        ExclusivePublication pub = driver.node().aeron().addExclusivePublication(channel, ep.streamId());
        return new TensorSender(pub, rank, rx.rank(), JobIdentity.NO_JOB, EPOCH, s, new YieldingIdleStrategy(), null,
            null);
    }

    /** A sender (rank 0) connected to a receiver (rank 1) over UDP. */
    private record Pair(TensorSender tx, TensorReceiverAgent receiver) {
    }

    /** Rank 1's worker on {@code driver} (its tensors to {@code listener}) and rank 0's sender to it over UDP. */
    private static Pair udpPair(LoopbackDriver driver, RecordingListener listener) {
        WorkerTransport rx = driver.openWorker("rx", 1, EPOCH, listener);
        WorkerTransport txWorker = driver.openWorker("tx", 0, EPOCH, slot -> { });
        TransportEndpoint ep = rx.endpoint();
        TensorSender tx = txWorker.connect(1, new TransportEndpoint("elsewhere", ep.host(), ep.port(),
            ep.streamId()), EPOCH);
        awaitConnected(tx, rx.receiver(), 20_000);
        return new Pair(tx, rx.receiver());
    }

    private static void send(TensorSender tx, TensorReceiverAgent rx, long key, NativeMemory src) {
        tx.begin(FrameKind.GRADIENT, 0, key, DType.I8, new int[] {(int) src.lengthBytes()}, 1, src.address(),
            src.lengthBytes());
        pumpSend(tx, rx, 60_000);
    }

    /**
     * With the key on, a key holder's frame damaged on the wire past the UDP checksum (the driver flips a byte of
     * the third data frame) fails its tag: the chunk is refused as {@code BAD_MAC} and, since this publication's
     * first tensor passed, its tensor is reported corrupt at once; the next one arrives intact.
     */
    @Test
    @Timeout(120)
    void shouldReportATensorDamagedInTransitFromAProvenSender() {
        RecordingListener listener = new RecordingListener();
        try (LoopbackDriver driver = LoopbackDriver.start(LoopbackDriver.testSettings()
            .withAuthKey(FrameAuthKey.ofValue("the cluster's key!")).withUdpCorruptNth(3))) {
            Pair pair = udpPair(driver, listener);
            TensorSender tx = pair.tx();
            TensorReceiverAgent receiver = pair.receiver();
            long[] sizes = {4096, 4L * 1024 * 1024, 4L * 1024 * 1024};
            for (int i = 0; i < sizes.length; i++) {
                try (NativeMemory src = new NativeMemory(sizes[i]).fillRandom(i)) {
                    send(tx, receiver, TensorKey.of(i, 0, 0), src);
                    if (i == 1) { // the damaged one: reported, never delivered
                        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                        while (listener.corrupted.isEmpty()) {
                            receiver.doWork();
                            Thread.yield();
                            assertTrue(System.nanoTime() < deadline, "not reported: " + receiver.drops());
                        }
                        assertEquals(List.of(DropReason.BAD_MAC), List.copyOf(listener.corrupted));
                        assertTrue(listener.ready.isEmpty(), "a damaged tensor was delivered");
                        continue;
                    }
                    awaitReady(receiver, listener, 1, 60_000);
                    ReceiveSlot slot = listener.ready.poll();
                    assertEquals(TensorKey.of(i, 0, 0), slot.tensorKey());
                    assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), sizes[i]));
                    slot.release();
                }
            }
            System.out.println("damaged in transit: " + receiver.drops());
            assertEquals(1, receiver.drops().count(DropReason.BAD_MAC), receiver.drops().toString());
            assertTrue(driver.errors().isEmpty(), driver.errors().toString());
        }
    }

    /**
     * The same for small tensors, each one frame of one datagram, damaged in the middle (the driver's flip): at
     * 256 bytes in the payload, so the frame fails its tag whole on arrival; at 32 bytes in its header's total
     * length, a field read before the tag, so it is refused as {@code BAD_LENGTH}. Either way, since a frame of
     * this publication passed before, it is reported at once (whoever waits fails now, not at its step timeout);
     * every other tensor arrives intact. The publication's first frame is its hello, so even its first tensor,
     * the second frame, is reported when damaged.
     */
    @ParameterizedTest(name = "{0}-byte tensors: {1}, frame {2} damaged")
    @CsvSource({"256, BAD_MAC, 5", "32, BAD_LENGTH, 5", "256, BAD_MAC, 2", "32, BAD_LENGTH, 2"})
    @Timeout(120)
    void shouldReportADamagedFrameOfOneDatagramFromAProvenSender(int bytes, DropReason reason, int nth) {
        RecordingListener listener = new RecordingListener();
        try (LoopbackDriver driver = LoopbackDriver.start(LoopbackDriver.testSettings()
            .withAuthKey(FrameAuthKey.ofValue("the cluster's key!")).withUdpCorruptNth(nth))) {
            Pair pair = udpPair(driver, listener);
            TensorSender tx = pair.tx();
            TensorReceiverAgent receiver = pair.receiver();
            // the hello alone in the first datagram, taken before tensor 0 goes: the driver damages only a frame
            // alone in its datagram, so frame nth is tensor nth - 2
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!tx.offerHello()) {
                assertTrue(System.nanoTime() < deadline, "the hello was not taken by the publication");
                Thread.yield();
            }
            Image image = receiver.subscription(1).imageBySessionId(tx.publication().sessionId()); // 0: IPC, 1: UDP
            while (image == null || image.position() < tx.publication().position()) {
                receiver.doWork();
                Thread.yield();
                assertTrue(System.nanoTime() < deadline, "the hello did not arrive");
                image = image != null ? image : receiver.subscription(1).imageBySessionId(tx.publication().sessionId());
            }
            assertTrue(listener.ready.isEmpty() && listener.corrupted.isEmpty(), "the hello is never delivered");
            int delivered = 0;
            int damaged = -1;
            for (int i = 0; i < 8; i++) {
                try (NativeMemory src = new NativeMemory(bytes).fillRandom(i)) {
                    send(tx, receiver, TensorKey.of(i, 0, 0), src);
                    deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                    while (listener.ready.isEmpty() && listener.corrupted.isEmpty()) {
                        receiver.doWork();
                        Thread.yield();
                        assertTrue(System.nanoTime() < deadline, "tensor " + i + " neither delivered nor reported: "
                            + receiver.drops());
                    }
                    if (!listener.corrupted.isEmpty()) {
                        assertEquals(-1, damaged, "a second tensor reported corrupt");
                        assertEquals(List.of(reason), List.copyOf(listener.corrupted));
                        listener.corrupted.clear();
                        damaged = i;
                        continue;
                    }
                    ReceiveSlot slot = listener.ready.poll();
                    assertEquals(TensorKey.of(i, 0, 0), slot.tensorKey());
                    assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), bytes));
                    slot.release();
                    delivered++;
                }
            }
            System.out.println("damaged frame of one datagram: tensor " + damaged + ", " + receiver.drops());
            assertEquals(nth - 2, damaged, "frame " + nth + " is tensor " + (nth - 2) + ", after the hello");
            assertEquals(7, delivered);
            assertEquals(1, receiver.drops().count(reason), receiver.drops().toString());
            assertTrue(driver.errors().isEmpty(), driver.errors().toString());
        }
    }

    /**
     * A tagged frame the receiver holds back for want of room ({@code ABORT}: Aeron offers it again on a later poll)
     * is not taken for a replay when it comes again: it is delivered intact once the room is there.
     */
    @Test
    @Timeout(120)
    void shouldTakeATaggedFrameHeldBackForRoomOnceThereIsRoom() {
        int bytes = 40 * 1024; // one datagram; two do not fit the budget
        TransportSettings keyed = LoopbackDriver.testSettings().withAuthKey(FrameAuthKey.ofValue("the cluster's key!"))
            .withChunkBytes(64 * 1024).withReceiveBudgetBytes(64 * 1024);
        try (LoopbackDriver driver = LoopbackDriver.start(keyed)) {
            RecordingListener listener = new RecordingListener();
            WorkerTransport rx = driver.openWorker("rx", 1, EPOCH, listener);
            TensorSender tx = udpSender(driver, rx, 0, keyed);
            TensorReceiverAgent receiver = rx.receiver();
            awaitConnected(tx, receiver, 20_000);
            try (NativeMemory first = new NativeMemory(bytes).fillRandom(1);
                 NativeMemory second = new NativeMemory(bytes).fillRandom(2)) {
                send(tx, receiver, TensorKey.of(0, 0, 0), first);
                awaitReady(receiver, listener, 1, 30_000);
                ReceiveSlot held = listener.ready.poll(); // kept: the next tensor has no room
                send(tx, receiver, TensorKey.of(1, 0, 0), second);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (receiver.backPressureAborts() < 2) { // held back, and offered again, at least once
                    receiver.doWork();
                    Thread.yield();
                    assertTrue(System.nanoTime() < deadline, "never held back: " + receiver.drops());
                }
                assertTrue(listener.ready.isEmpty(), "delivered without room");
                held.release();
                awaitReady(receiver, listener, 1, 20_000);
                ReceiveSlot slot = listener.ready.poll();
                assertEquals(TensorKey.of(1, 0, 0), slot.tensorKey());
                assertEquals(-1, NativeMemory.firstDifference(second.address(), slot.address(), bytes));
                slot.release();
            }
            assertEquals(0, receiver.drops().count(DropReason.REPLAYED), receiver.drops().toString());
            assertTrue(driver.errors().isEmpty(), driver.errors().toString());
            tx.close();
        }
    }

    /**
     * A sender that replaces a closed one of the same rank in the same epoch, on a publication of its own, carries
     * counters above every one the closed sender used: its tensors, of one datagram and of many chunks, arrive.
     */
    @Test
    @Timeout(120)
    void shouldTakeTheFramesOfASenderReplacingAClosedOneInTheSameEpoch() {
        TransportSettings keyed = LoopbackDriver.testSettings().withAuthKey(FrameAuthKey.ofValue("the cluster's key!"));
        try (LoopbackDriver driver = LoopbackDriver.start(keyed)) {
            RecordingListener listener = new RecordingListener();
            WorkerTransport rx = driver.openWorker("rx", 1, EPOCH, listener);
            TensorReceiverAgent receiver = rx.receiver();
            int[] sessions = {SessionIds.of(0, EPOCH), SessionIds.of(0, EPOCH + 2)};
            for (int s = 0; s < sessions.length; s++) {
                TensorSender tx = udpSender(driver, rx, 0, keyed, sessions[s]);
                awaitConnected(tx, receiver, 20_000);
                for (int i = 0; i < SIZES.length; i++) {
                    try (NativeMemory src = new NativeMemory(SIZES[i]).fillRandom(10L * s + i)) {
                        long key = TensorKey.of(i, 0, s);
                        send(tx, receiver, key, src);
                        awaitReady(receiver, listener, 1, 30_000);
                        ReceiveSlot slot = listener.ready.poll();
                        assertEquals(key, slot.tensorKey());
                        assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), SIZES[i]),
                            "sender " + s + ", tensor of " + SIZES[i] + " bytes");
                        slot.release();
                    }
                }
                tx.close();
            }
            assertEquals(0, receiver.drops().count(DropReason.REPLAYED), receiver.drops().toString());
            assertTrue(driver.errors().isEmpty(), driver.errors().toString());
        }
    }
}
