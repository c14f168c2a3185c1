package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Subscription;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.agrona.BufferUtil;
import org.agrona.CloseHelper;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Forged, replayed, re-addressed, spliced and truncated UDP frames against a receiver's decoder with the
 * cluster's auth key: each is refused for its reason, while the honest frame passes; a receiver without
 * a key refuses a tagged frame ({@link DropReason#UNEXPECTED_MAC}) instead of taking it unchecked. Over real
 * UDP, frames captured on the wire and sent again within their own job and epoch are refused as
 * {@link DropReason#REPLAYED}.
 */
class FrameAttackTest {
    private static final FrameAuthKey KEY = FrameAuthKey.ofValue("the cluster's key, sixteen+ bytes");
    private static final int JOB = 7;
    private static final long EPOCH = 3;
    private static final int SOURCE = 0;
    private static final int DEST = 1;
    private static final int PAYLOAD = 100;

    /** A frame of job 7, epoch 3, from rank 0 to rank 1, sealed under {@code key} (or CRC32C when null). */
    private static UnsafeBuffer frame(FrameAuthKey key, long step, int seed) {
        UnsafeBuffer b = new UnsafeBuffer(BufferUtil.allocateDirectAligned(TensorFrameDescriptor.HEADER_LENGTH
            + PAYLOAD, 64));
        TensorFrameFlyweight f = new TensorFrameFlyweight().wrap(b, 0).writeHeader(FrameKind.ACTIVATION, DType.I8,
            key == null ? TensorFrameDescriptor.FLAG_CRC : TensorFrameDescriptor.FLAG_MAC, JOB, EPOCH, step, SOURCE,
            DEST, TensorKey.of(2, 0, 0), new int[] {PAYLOAD}, 1, PAYLOAD, 0, PAYLOAD);
        Random random = new Random(seed);
        for (int i = 0; i < PAYLOAD; i++) {
            b.putByte(TensorFrameDescriptor.HEADER_LENGTH + i, (byte) random.nextInt());
        }
        if (key == null) {
            f.sealCrc(f.crc32c(b.addressOffset() + TensorFrameDescriptor.HEADER_LENGTH, PAYLOAD));
        } else {
            new FrameMac(key).seal(b, 0, PAYLOAD);
        }
        return b;
    }

    private static DropReason decode(TensorFrameDecoder d, UnsafeBuffer b, int length, long minEpoch) {
        return d.decode(b, 0, length, true, JOB, minEpoch, DEST, SOURCE, 1 << 20);
    }

    private static DropReason decode(TensorFrameDecoder d, UnsafeBuffer b) {
        return decode(d, b, TensorFrameDescriptor.HEADER_LENGTH + PAYLOAD, EPOCH);
    }

    @Test
    void shouldRefuseForgedReplayedAndAlteredFrames() {
        TensorFrameDecoder d = new TensorFrameDecoder(true, KEY);
        int full = TensorFrameDescriptor.HEADER_LENGTH + PAYLOAD;
        assertNull(decode(d, frame(KEY, 11, 1)), "the honest frame");

        assertEquals(DropReason.BAD_MAC, decode(d, frame(FrameAuthKey.ofValue("a stranger's key, long enough"), 11,
            1)), "forged under another key");
        assertEquals(DropReason.MISSING_MAC, decode(d, frame(null, 11, 1)), "no tag, a good CRC");
        assertEquals(DropReason.STALE_EPOCH, decode(d, frame(KEY, 11, 1), full, EPOCH + 1),
            "replayed into a later epoch");
        assertEquals(DropReason.WRONG_JOB, d.decode(frame(KEY, 11, 1), 0, full, true, JOB + 1, EPOCH, DEST, SOURCE,
            1 << 20), "replayed into another job");

        int[][] edits = {{TensorFrameDescriptor.EPOCH_OFFSET, 4}, {TensorFrameDescriptor.JOB_ID_OFFSET, JOB + 1},
            {TensorFrameDescriptor.STEP_OFFSET, 12}, {TensorFrameDescriptor.SOURCE_RANK_OFFSET, 2},
            {TensorFrameDescriptor.DEST_RANK_OFFSET, 2}, {TensorFrameDescriptor.TENSOR_KEY_OFFSET, 5},
            {TensorFrameDescriptor.MAC_LOW_OFFSET, 1}, {TensorFrameDescriptor.MAC_HIGH_OFFSET, 1}};
        for (int[] edit : edits) { // every field re-stamped (to a value the receiver would take) breaks the tag
            UnsafeBuffer b = frame(KEY, 11, 1);
            b.putInt(edit[0], b.getInt(edit[0]) ^ edit[1]);
            assertEquals(DropReason.BAD_MAC, decode(d, b), "field at " + edit[0] + " re-stamped");
        }

        UnsafeBuffer spliced = frame(KEY, 11, 1); // this frame's header, another step's payload
        spliced.putBytes(TensorFrameDescriptor.HEADER_LENGTH, frame(KEY, 12, 2), TensorFrameDescriptor.HEADER_LENGTH,
            PAYLOAD);
        assertEquals(DropReason.BAD_MAC, decode(d, spliced), "spliced payload");

        UnsafeBuffer truncated = frame(KEY, 11, 1); // cut short, its lengths rewritten to match
        new TensorFrameFlyweight().wrap(truncated, 0).writeHeader(FrameKind.ACTIVATION, DType.I8,
            TensorFrameDescriptor.FLAG_MAC, JOB, EPOCH, 11, SOURCE, DEST, TensorKey.of(2, 0, 0),
            new int[] {PAYLOAD - 8}, 1, PAYLOAD - 8, 0, PAYLOAD - 8);
        UnsafeBuffer sealed = frame(KEY, 11, 1);
        truncated.putInt(TensorFrameDescriptor.MAC_LOW_OFFSET, sealed.getInt(TensorFrameDescriptor.MAC_LOW_OFFSET));
        truncated.putInt(TensorFrameDescriptor.MAC_HIGH_OFFSET, sealed.getInt(TensorFrameDescriptor.MAC_HIGH_OFFSET));
        assertEquals(DropReason.BAD_MAC, decode(d, truncated, full - 8, EPOCH), "truncated, lengths rewritten");
        assertEquals(DropReason.CHUNK_LENGTH_MISMATCH, decode(d, frame(KEY, 11, 1), full - 8, EPOCH),
            "truncated datagram");
    }

    @Test
    void shouldRefuseATaggedFrameAtAReceiverWithoutAKey() {
        for (boolean crc : new boolean[] {true, false}) {
            TensorFrameDecoder keyless = new TensorFrameDecoder(crc, null);
            assertEquals(DropReason.UNEXPECTED_MAC, decode(keyless, frame(KEY, 11, 1)), "crc " + crc);
            assertNull(decode(keyless, frame(null, 11, 1)), "an untagged frame, crc " + crc);
        }
    }

    /**
     * The attack the counter stops: frames of a key holder captured on the wire (a spy on the sender's
     * publication sees exactly what goes out) and sent again later in the same job and epoch, for a later step,
     * from the attacker's own Aeron session claiming the sender's rank: the publication's hello, a tensor in one
     * datagram and a chunk of many fragments. All are refused as {@code REPLAYED} (the hello proves nothing of the
     * attacker's session), none is delivered nor reported corrupt, and the sender's next tensor arrives intact.
     */
    @Test
    @Timeout(120)
    void shouldRefuseCapturedFramesSentAgainInTheSameJobAndEpoch() {
        TransportSettings keyed = LoopbackDriver.testSettings().withAuthKey(KEY);
        JobIdentity job = new JobIdentity(JOB, EPOCH);
        try (LoopbackDriver driver = LoopbackDriver.start(keyed)) {
            RecordingListener listener = new RecordingListener();
            WorkerTransport rx = driver.openWorker("rx", DEST, EPOCH, listener);
            rx.assign(DEST, job);
            WorkerTransport txWorker = driver.openWorker("tx", SOURCE, EPOCH, slot -> { });
            txWorker.assign(SOURCE, job);
            TransportEndpoint ep = rx.endpoint();
            TensorSender tx = txWorker.connect(DEST, new TransportEndpoint("elsewhere", ep.host(), ep.port(),
                ep.streamId()), EPOCH);
            assertTrue(tx.publication().channel().startsWith("aeron:udp"), tx.publication().channel());
            TensorReceiverAgent receiver = rx.receiver();
            Subscription tap = driver.node().aeron().addSubscription("aeron-spy:" + tx.publication().channel(),
                ep.streamId());
            List<UnsafeBuffer> captured = new ArrayList<>();
            FragmentAssembler capture = new FragmentAssembler((buffer, offset, length, header) -> {
                UnsafeBuffer copy = new UnsafeBuffer(BufferUtil.allocateDirectAligned(length, 64));
                copy.putBytes(0, buffer, offset, length);
                captured.add(copy);
            });
            ExclusivePublication attacker = null;
            try {
                awaitConnected(tx, receiver, 20_000);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (!tap.isConnected()) {
                    receiver.doWork();
                    Thread.yield();
                    assertTrue(System.nanoTime() < deadline, "the tap did not connect");
                }
                long[] sizes = {4096, 256 * 1024}; // one datagram; one chunk of many fragments
                for (int i = 0; i < sizes.length; i++) {
                    sendAndCheck(tx, receiver, listener, i + 1, TensorKey.of(i, 0, 0), sizes[i], i);
                }
                while (captured.size() < sizes.length + 1) {
                    tap.poll(capture, 16);
                    assertTrue(System.nanoTime() < deadline, "captured " + captured.size() + " frames");
                }
                assertEquals(FrameKind.HELLO.code(), new TensorFrameFlyweight().wrap(captured.get(0), 0).kindCode(),
                    "the publication's first frame is its hello, replayed too");
                assertTrue(captured.get(2).capacity() > keyed.udpMtuBytesFor(ep.host()), "many fragments");

                // the attacker's own session, claiming rank 0 (its epoch bits differ: a session id of its own)
                attacker = driver.node().aeron().addExclusivePublication(TransportChannels.udpPublication(keyed,
                    ep.host(), ep.port(), SessionIds.of(SOURCE, EPOCH + 1)), ep.streamId());
                while (!attacker.isConnected()) {
                    receiver.doWork();
                    Thread.yield();
                    assertTrue(System.nanoTime() < deadline, "the attacker did not connect");
                }
                for (UnsafeBuffer frame : captured) {
                    long result;
                    while ((result = attacker.offer(frame, 0, frame.capacity())) < 0) {
                        receiver.doWork();
                        assertTrue(System.nanoTime() < deadline, "replay not sent: " + result);
                    }
                }
                while (receiver.drops().count(DropReason.REPLAYED) < captured.size()) {
                    receiver.doWork();
                    Thread.yield();
                    assertTrue(System.nanoTime() < deadline, "replays not refused: " + receiver.drops()
                        + ", delivered " + listener.ready.size());
                }
                assertTrue(listener.ready.isEmpty(), "a replayed tensor was delivered: " + listener.ready);
                assertTrue(listener.corrupted.isEmpty(), "replays reported a tensor corrupt: " + listener.corrupted);

                sendAndCheck(tx, receiver, listener, 3, TensorKey.of(2, 0, 0), 256 * 1024, 2); // the sender goes on
                receiver.doWork();
                assertEquals(captured.size(), receiver.drops().count(DropReason.REPLAYED), receiver.drops().toString());
                assertEquals(receiver.drops().count(DropReason.REPLAYED),
                    driver.node().framesDropped(DropReason.REPLAYED));
                assertEquals(0, receiver.drops().count(DropReason.BAD_MAC), receiver.drops().toString());
                assertTrue(listener.ready.isEmpty(), "a replayed tensor was delivered: " + listener.ready);
                assertTrue(driver.errors().isEmpty(), driver.errors().toString());
            } finally {
                CloseHelper.closeAll(attacker, tap);
            }
        }
    }

    /** Sends a tensor of {@code bytes} and checks that it, and only it, arrives intact. */
    private static void sendAndCheck(TensorSender tx, TensorReceiverAgent rx, RecordingListener listener, long step,
                                     long key, long bytes, long seed) {
        try (NativeMemory src = new NativeMemory(bytes).fillRandom(seed)) {
            tx.begin(FrameKind.ACTIVATION, step, key, DType.I8, new int[] {(int) bytes}, 1, src.address(), bytes);
            pumpSend(tx, rx, 60_000);
            awaitReady(rx, listener, 1, 60_000);
            ReceiveSlot slot = listener.ready.poll();
            assertEquals(key, slot.tensorKey());
            assertEquals(step, slot.step());
            assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), bytes), "tensor " + key);
            slot.release();
        }
    }
}
