package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TensorFrameDescriptor.CHUNK_BYTES_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.CHUNK_OFFSET_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.DEST_RANK_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.DIMS_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.DTYPE_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.EPOCH_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAGS_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_BY_REFERENCE;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_CRC;
import static io.troupe.runtime.transport.TensorFrameDescriptor.HEADER_CRC_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.HEADER_LENGTH;
import static io.troupe.runtime.transport.TensorFrameDescriptor.JOB_ID_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.KIND_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.NDIMS_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.REFERENCE_SEQUENCE_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.SOURCE_RANK_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.TOTAL_BYTES_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.VERSION;
import static io.troupe.runtime.transport.TensorFrameDescriptor.VERSION_OFFSET;
import static io.troupe.runtime.transport.TransportTestSupport.RecordingListener;
import static io.troupe.runtime.transport.TransportTestSupport.awaitConnected;
import static io.troupe.runtime.transport.TransportTestSupport.awaitReady;
import static io.troupe.runtime.transport.TransportTestSupport.pumpSend;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.ExclusivePublication;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.NativeMemory;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.nio.ByteOrder;
import java.util.EnumSet;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Thousands of random, truncated, bit-flipped and structurally wrong frames (seeded) into a live
 * receiver, interleaved with good tensors: every bad frame is counted exactly once, no error
 * escapes, and every good tensor arrives intact.
 */
class FrameFuzzTest {
    private static final int RX_RANK = 1;
    private static final int EVIL_RANK = 7;
    private static final long EPOCH = 1;
    private static final JobIdentity JOB = new JobIdentity(0x600dcafe, EPOCH);

    private LoopbackDriver driver;
    private RecordingListener listener;
    private WorkerTransport rx;
    private final UnsafeBuffer frameBuffer = new UnsafeBuffer(BufferUtil.allocateDirectAligned(256 * 1024, 64));
    private final TensorFrameFlyweight frame = new TensorFrameFlyweight();

    @BeforeEach
    void setUp() {
        // the fuzzer writes its frames into an IPC log, where CRC is off by default (no wire to
        // corrupt them); switched on here so that bit flips in payloads are caught and counted too
        driver = LoopbackDriver.start(LoopbackDriver.testSettings().withChunkBytes(128 * 1024).withIpcCrcEnabled(true));
        listener = new RecordingListener();
        rx = driver.openWorker("rx", RX_RANK, EPOCH, listener);
        rx.assign(RX_RANK, JOB);
    }

    @AfterEach
    void tearDown() {
        driver.close();
    }

    /** Writes a valid single-chunk frame with a random payload; returns its length. */
    private int validFrame(SplittableRandom r, long key, int payloadBytes) {
        for (int i = 0; i < payloadBytes; i++) {
            frameBuffer.putByte(HEADER_LENGTH + i, (byte) r.nextInt());
        }
        frame.wrap(frameBuffer, 0).writeHeader(FrameKind.CONTROL, DType.I8, FLAG_CRC, JOB.jobId(), EPOCH, 0, EVIL_RANK,
            RX_RANK, key,
            new int[] {payloadBytes}, 1, payloadBytes, 0, payloadBytes);
        frame.sealCrc(frame.crc32c(frameBuffer.addressOffset() + HEADER_LENGTH, payloadBytes));
        return HEADER_LENGTH + payloadBytes;
    }

    private void resealHeader() {
        frameBuffer.putInt(HEADER_CRC_OFFSET, frame.computeHeaderCrc(), ByteOrder.LITTLE_ENDIAN);
    }

    /** Builds bad frame number {@code n}; returns its length. Every branch is invalid by construction. */
    private int badFrame(SplittableRandom r, long n) {
        long key = TensorKey.of(1000 + (int) (n % 1000), 0, 0);
        int payload = 1 + r.nextInt(r.nextBoolean() ? 300 : 150_000);
        switch (r.nextInt(5)) {
            case 0: { // random bytes, random length
                int len = r.nextInt(400);
                for (int i = 0; i < len; i++) {
                    frameBuffer.putByte(i, (byte) r.nextInt());
                }
                return len;
            }
            case 1: // truncated good frame
                return r.nextInt(validFrame(r, key, payload));
            case 2: { // bit flip in the header, CRC not fixed
                int len = validFrame(r, key, payload);
                int bit = r.nextInt(HEADER_LENGTH * 8);
                frameBuffer.putByte(bit / 8, (byte) (frameBuffer.getByte(bit / 8) ^ (1 << (bit % 8))));
                return len;
            }
            case 3: { // bit flip in the payload
                int len = validFrame(r, key, payload);
                int bit = r.nextInt(payload * 8);
                int at = HEADER_LENGTH + bit / 8;
                frameBuffer.putByte(at, (byte) (frameBuffer.getByte(at) ^ (1 << (bit % 8))));
                return len;
            }
            default:
                return structurallyBad(r, key, payload);
        }
    }

    /** A frame with a consistent header CRC but one impossible or unwelcome field. */
    private int structurallyBad(SplittableRandom r, long key, int payload) {
        int len = validFrame(r, key, payload);
        ByteOrder le = ByteOrder.LITTLE_ENDIAN;
        switch (r.nextInt(15)) {
            case 0 -> frameBuffer.putByte(KIND_OFFSET, (byte) 99);
            case 1 -> frameBuffer.putByte(DTYPE_OFFSET, (byte) 99);
            case 2 -> frameBuffer.putByte(NDIMS_OFFSET, (byte) (r.nextBoolean() ? 0 : 5));
            case 3 -> frameBuffer.putInt(DIMS_OFFSET, -3, le);
            case 4 -> frameBuffer.putLong(TOTAL_BYTES_OFFSET, payload + 1L, le);
            case 5 -> frameBuffer.putLong(CHUNK_OFFSET_OFFSET, 1L + r.nextInt(1 << 20), le);
            case 6 -> frameBuffer.putLong(EPOCH_OFFSET, EPOCH - 1, le);
            case 7 -> frameBuffer.putInt(DEST_RANK_OFFSET, RX_RANK + 1, le);
            case 8 -> frameBuffer.putInt(SOURCE_RANK_OFFSET, EVIL_RANK + 1, le);
            case 9 -> frameBuffer.putShort(VERSION_OFFSET, (short) (VERSION + 1), le);
            case 10 -> frameBuffer.putByte(FLAGS_OFFSET, (byte) 0);
            case 11 -> frameBuffer.putInt(CHUNK_BYTES_OFFSET, payload + 1, le);
            case 13 -> frameBuffer.putInt(JOB_ID_OFFSET,
                r.nextBoolean() ? JobIdentity.NO_JOB : JOB.jobId() + 1, le);
            case 12 -> { // "copy it from my memory": no in-process link exists for this session
                frameBuffer.putByte(FLAGS_OFFSET, (byte) (FLAG_CRC | FLAG_BY_REFERENCE));
                frameBuffer.putInt(REFERENCE_SEQUENCE_OFFSET, 1, le);
                len = HEADER_LENGTH;
            }
            default -> { // second chunk of a tensor whose first chunk never came
                frameBuffer.putInt(DIMS_OFFSET, 2 * payload, le);
                frameBuffer.putLong(TOTAL_BYTES_OFFSET, 2L * payload, le);
                frameBuffer.putLong(CHUNK_OFFSET_OFFSET, payload, le);
            }
        }
        resealHeader();
        return len;
    }

    private void offer(ExclusivePublication pub, int length, long deadlineNs) {
        while (pub.offer(frameBuffer, 0, length) < 0) {
            rx.receiver().doWork();
            assertTrue(System.nanoTime() < deadlineNs, "raw offer stuck");
        }
    }

    @Test
    @Timeout(120)
    void shouldCountEveryBadFrameAndStillDeliverGoodTensorsIntact() {
        TensorReceiverAgent agent = rx.receiver();
        TransportSettings s = driver.node().settings();
        ExclusivePublication evil = driver.node().aeron().addExclusivePublication(
            TransportChannels.ipcPublication(s, SessionIds.of(EVIL_RANK, EPOCH)), rx.endpoint().streamId());
        WorkerTransport good = driver.openWorker("good", 0, EPOCH, new RecordingListener());
        good.assign(0, JOB);
        TensorSender tx = good.connect(RX_RANK, rx.endpoint(), EPOCH);
        awaitConnected(tx, agent, 10_000);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(100);
        while (!evil.isConnected()) {
            agent.doWork();
            assertTrue(System.nanoTime() < deadline);
        }
        SplittableRandom r = new SplittableRandom(20241128);
        int badFrames = 4000;
        int goodTensors = 0;
        try (NativeMemory src = new NativeMemory(600_000).fillRandom(99)) {
            for (int n = 0; n < badFrames; n++) {
                offer(evil, badFrame(r, n), deadline);
                if (n % 40 == 0) {
                    int bytes = 4 * (1 + r.nextInt(150_000));
                    tx.begin(FrameKind.ACTIVATION, n, TensorKey.of(goodTensors, 0, 0), DType.F32, new int[] {bytes / 4},
                        1, src.address(), bytes);
                    pumpSend(tx, agent, 10_000);
                    goodTensors++;
                }
                if (listener.ready.size() > 8) {
                    checkAndRelease(src);
                }
                agent.doWork();
            }
            while (agent.drops().total() < badFrames || agent.tensorsDelivered() < goodTensors) {
                agent.doWork();
                checkAndRelease(src);
                assertTrue(System.nanoTime() < deadline, agent.drops() + ", delivered " + agent.tensorsDelivered());
            }
            checkAndRelease(src);
        }
        System.out.println("fuzz: " + badFrames + " bad frames, " + goodTensors + " good tensors, " + agent.drops());
        assertEquals(badFrames, agent.drops().total(), "every bad frame counted once: " + agent.drops());
        assertEquals(goodTensors, agent.tensorsDelivered());
        assertEquals(agent.drops().count(DropReason.BAD_CHUNK_CRC), listener.corrupted.size(),
            "every corrupt chunk of a live tensor is reported at once, so its waiter fails now");
        assertEquals(0, agent.errors());
        EnumSet<DropReason> seen = EnumSet.noneOf(DropReason.class);
        for (DropReason reason : DropReason.values()) {
            if (agent.drops().count(reason) > 0) {
                seen.add(reason);
            }
        }
        assertTrue(seen.containsAll(EnumSet.of(DropReason.SHORT_FRAME, DropReason.BAD_MAGIC, DropReason.BAD_VERSION,
            DropReason.BAD_HEADER_CRC, DropReason.MISSING_CRC, DropReason.UNKNOWN_KIND, DropReason.BAD_DTYPE,
            DropReason.BAD_SHAPE, DropReason.BAD_LENGTH, DropReason.OFFSET_PAST_END,
            DropReason.CHUNK_LENGTH_MISMATCH, DropReason.BAD_CHUNK_CRC, DropReason.STALE_EPOCH, DropReason.WRONG_JOB,
            DropReason.WRONG_DESTINATION, DropReason.SOURCE_MISMATCH, DropReason.OUT_OF_ORDER,
            DropReason.BAD_REFERENCE)), "seen " + seen);
        assertTrue(agent.pool().committedBytes() <= s.receiveBudgetBytes());
        assertTrue(driver.errors().isEmpty(), driver.errors().toString());
        evil.close();
    }

    private void checkAndRelease(NativeMemory src) {
        ReceiveSlot slot;
        while ((slot = listener.ready.poll()) != null) {
            assertEquals(0, slot.sourceRank(), "only good tensors are delivered: " + slot);
            assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), slot.lengthBytes()),
                "good tensor corrupted: " + slot);
            slot.release();
        }
    }

    @Test
    @Timeout(60)
    void shouldSurviveGarbageDatagramsOnTheUdpPort() throws Exception {
        TensorReceiverAgent agent = rx.receiver();
        SplittableRandom r = new SplittableRandom(5);
        int datagrams = 3000;
        try (DatagramSocket socket = new DatagramSocket()) {
            InetAddress lo = InetAddress.getByName("127.0.0.1");
            byte[] data = new byte[1400];
            UnsafeBuffer view = new UnsafeBuffer(data);
            for (int i = 0; i < datagrams; i++) {
                int len = 1 + r.nextInt(data.length);
                r.nextBytes(data);
                if (i % 3 == 0 && len >= 32) {
                    // shaped like an Aeron DATA frame header, so it gets past the first length/type checks
                    view.putInt(0, len, ByteOrder.LITTLE_ENDIAN);
                    view.putByte(4, (byte) 0);
                    view.putByte(5, (byte) 0xC0);
                    view.putShort(6, (short) 1, ByteOrder.LITTLE_ENDIAN);
                    view.putInt(16, SessionIds.of(r.nextInt(4), EPOCH), ByteOrder.LITTLE_ENDIAN);
                    view.putInt(20, rx.endpoint().streamId(), ByteOrder.LITTLE_ENDIAN);
                }
                socket.send(new DatagramPacket(data, len, lo, rx.endpoint().port()));
                if (i % 100 == 0) {
                    agent.doWork();
                }
            }
        }
        // the port still works: a UDP tensor arrives intact
        WorkerTransport good = driver.openWorker("good", 0, EPOCH, new RecordingListener());
        good.assign(0, JOB);
        TransportEndpoint ep = rx.endpoint();
        TensorSender tx = good.connect(RX_RANK, new TransportEndpoint("remote", ep.host(), ep.port(), ep.streamId()),
            EPOCH);
        awaitConnected(tx, agent, 10_000);
        try (NativeMemory src = new NativeMemory(3_000_000).fillRandom(8)) {
            tx.begin(FrameKind.GRADIENT, 0, 0, DType.I8, new int[] {3_000_000}, 1, src.address(), 3_000_000);
            pumpSend(tx, agent, 20_000);
            awaitReady(agent, listener, 1, 20_000);
            ReceiveSlot slot = listener.ready.poll();
            assertEquals(-1, NativeMemory.firstDifference(src.address(), slot.address(), 3_000_000));
            slot.release();
        }
        assertEquals(0, agent.errors());
        System.out.println("garbage datagrams: " + datagrams + " sent; receiver " + agent.drops() + "; driver errors "
            + driver.errors().size());
    }
}
