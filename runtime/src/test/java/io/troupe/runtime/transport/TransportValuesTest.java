package io.troupe.runtime.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

/** Settings validation, endpoint strings, tensor keys, session ids, the CRC and the frame flyweight. */
class TransportValuesTest {
    @Test
    void shouldNameTheBadValueWhenSettingsAreInvalid() {
        TransportSettings d = TransportSettings.defaults();
        assertMessage(() -> d.withTermLengthBytes(3_000_000), "termLengthBytes=3000000");
        assertMessage(() -> d.withMtuBytes(1000), "mtuBytes=1000");
        assertMessage(() -> d.withMtuBytes(8200), "mtuBytes=8200");
        assertMessage(() -> d.withIpcMtuBytes(70_000), "ipcMtuBytes=70000");
        assertMessage(() -> d.withChunkBytes(100), "chunkBytes=100");
        assertMessage(() -> d.withChunkBytes(4 * 1024 * 1024), "chunkBytes=4194304");
        assertMessage(() -> d.withReceiveBudgetBytes(1000), "receiveBudgetBytes=1000");
        assertMessage(() -> d.withConnectTimeoutNs(0), "connectTimeoutNs=0");
        assertMessage(() -> d.withPeerLostTimeoutNs(1000), "peerLostTimeoutNs=1000");
        assertMessage(() -> d.withUdp("127.0.0.1", 70000), "udpPort=70000");
        assertMessage(() -> d.withExternalDriver(null), "aeronDir=null");
        assertMessage(() -> d.withReceiveSlotsMax(0), "receiveSlotsMax=0");
        assertMessage(() -> d.withUdpLossRate(1.0), "udpLossRate=1.0");
        assertMessage(() -> d.withUdpLossRate(-0.1), "udpLossRate=-0.1");
        assertMessage(() -> d.withUdpLossRate(Double.NaN), "udpLossRate=NaN");
        assertEquals(0.25, d.withUdpLossRate(0.25).udpLossRate());
        assertEquals(0.0, d.udpLossRate(), "no loss injected by default");
    }

    /** Each {@code withXxx} changes its own components and keeps every other one. */
    @Test
    void shouldChangeOnlyTheComponentEachWithMethodNames() {
        TransportSettings d = TransportSettings.defaults();
        TransportSettings s = d.withAeronDir("/tmp/a").withThreadingMode(io.aeron.driver.ThreadingMode.DEDICATED)
            .withTermLengthBytes(32 << 20).withMtuBytes(16384).withIpcMtuBytes(32768).withChunkBytes(2 << 20)
            .withSocketBufferBytes(2 << 20).withReceiveBudgetBytes(300L << 20).withReceiveSlotsMax(77)
            .withConnectTimeoutNs(11).withBackPressureTimeoutNs(12).withPeerLostTimeoutNs(1_000_000_013L)
            .withCrcEnabled(false).withLocalCopyMinBytes(14).withUdp("127.0.0.2", 15).withIpcCrcEnabled(true)
            .withLoopbackMtuBytes(8192).withReceiverWindowBytes(1 << 20).withIpcRingMinBytes(16).withUdpLossRate(0.5);
        TransportSettings expected = new TransportSettings("/tmp/a", false, io.aeron.driver.ThreadingMode.DEDICATED,
            32 << 20, 16384, 32768, 2 << 20, 2 << 20, 300L << 20, 77, 11, 12, 1_000_000_013L, false, 14, "127.0.0.2",
                15,
            true, 1 << 20, 8192, 16, 0.5);
        assertEquals(expected, s);
        assertEquals(new TransportSettings("/tmp/b", true, d.threadingMode(), d.termLengthBytes(), d.mtuBytes(),
            d.ipcMtuBytes(), d.chunkBytes(), d.socketBufferBytes(), d.receiveBudgetBytes(), d.receiveSlotsMax(),
            d.connectTimeoutNs(), d.backPressureTimeoutNs(), d.peerLostTimeoutNs(), d.crcEnabled(),
                d.localCopyMinBytes(),
            d.udpBindHost(), d.udpPort(), d.ipcCrcEnabled(), d.receiverWindowBytes(), d.loopbackMtuBytes(),
            d.ipcRingMinBytes(), d.udpLossRate()), d.withExternalDriver("/tmp/b"));
    }

    @Test
    void shouldDefaultToSharedDriverUnfragmentedMtuAndChunksUnderMaxMessage() {
        TransportSettings d = TransportSettings.defaults();
        assertEquals(io.aeron.driver.ThreadingMode.SHARED, d.threadingMode());
        assertEquals(TransportSettings.DEFAULT_MTU_BYTES, d.mtuBytes());
        assertTrue(d.mtuBytes() + 20 + 8 <= 1500, "a datagram with its IP and UDP headers fits an Ethernet frame");
        assertEquals(1024 * 1024, d.chunkBytes());
        assertTrue(d.chunkBytes() + TensorFrameDescriptor.HEADER_LENGTH <= d.maxMessageBytes());
        assertTrue(d.crcEnabled());
    }

    @Test
    void shouldCheckCrcPerChannelAndPickTheMtuAndWindowPerPeer() {
        TransportSettings d = TransportSettings.defaults();
        assertTrue(d.crcEnabledFor(false), "CRC on the wire (UDP) by default");
        assertFalse(d.crcEnabledFor(true), "no CRC on IPC by default");
        assertTrue(d.withIpcCrcEnabled(true).crcEnabledFor(true));
        assertEquals(d.loopbackMtuBytes(), d.udpMtuBytesFor("127.0.0.1"));
        assertEquals(d.loopbackMtuBytes(), d.udpMtuBytesFor("localhost"));
        assertEquals(d.loopbackMtuBytes(), d.udpMtuBytesFor("[::1]"));
        assertEquals(d.mtuBytes(), d.udpMtuBytesFor("10.0.0.7"));
        assertEquals(65472, d.loopbackMtuBytes());
        assertEquals(Math.min(d.socketBufferBytes(), d.termLengthBytes() / 2), d.effectiveReceiverWindowBytes());
        assertEquals(1 << 20, d.withReceiverWindowBytes(1 << 20).effectiveReceiverWindowBytes());
        assertMessage(() -> d.withReceiverWindowBytes(d.socketBufferBytes() * 2), "receiverWindowBytes="
            + d.socketBufferBytes() * 2);
        assertMessage(() -> d.withLoopbackMtuBytes(65536), "loopbackMtuBytes=65536");
        // the 17-component constructor (readers of the earlier record) gives the same defaults
        TransportSettings old = new TransportSettings(d.aeronDir(), d.externalDriver(), d.threadingMode(),
            d.termLengthBytes(), d.mtuBytes(), d.ipcMtuBytes(), d.chunkBytes(), d.socketBufferBytes(),
            d.receiveBudgetBytes(), d.receiveSlotsMax(), d.connectTimeoutNs(), d.backPressureTimeoutNs(),
            d.peerLostTimeoutNs(), d.crcEnabled(), d.localCopyMinBytes(), d.udpBindHost(), d.udpPort());
        assertEquals(d, old);
    }

    private static void assertMessage(Runnable r, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    @Test
    void shouldRoundTripEndpointThroughItsString() {
        TransportEndpoint e = new TransportEndpoint("n1a2b", "127.0.0.1", 40123, 1001);
        assertEquals("n1a2b@127.0.0.1:40123/1001", e.toString());
        assertEquals(e, TransportEndpoint.parse(e.toString()));
        assertTrue(e.isSameNode("n1a2b"));
        assertFalse(e.isSameNode("other"));
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
            () -> TransportEndpoint.parse("n1@host/12"));
        assertTrue(bad.getMessage().contains("n1@host/12"), bad.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TransportEndpoint.parse("n1@host:99999/1"));
    }

    @Test
    void shouldPackAndUnpackTensorKeys() {
        long k = TensorKey.of(1234, 7, 99);
        assertEquals(1234, TensorKey.microbatch(k));
        assertEquals(7, TensorKey.virtualStage(k));
        assertEquals(99, TensorKey.bucketId(k));
        long max = TensorKey.of(TensorKey.MAX_MICROBATCH, 255, Integer.MAX_VALUE);
        assertEquals(TensorKey.MAX_MICROBATCH, TensorKey.microbatch(max));
        assertEquals(255, TensorKey.virtualStage(max));
        assertEquals(Integer.MAX_VALUE, TensorKey.bucketId(max));
        assertThrows(IllegalArgumentException.class, () -> TensorKey.of(-1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> TensorKey.of(0, 256, 0));
    }

    @Test
    void shouldCarryRankInSessionId() {
        for (int rank : new int[] {0, 1, 4095, SessionIds.MAX_RANK}) {
            for (long epoch : new long[] {0, 1, 1023, 1024, 99_999}) {
                int id = SessionIds.of(rank, epoch);
                assertEquals(rank, SessionIds.rankOf(id));
                assertTrue(id >= 0);
            }
        }
        assertNotEquals(SessionIds.of(3, 1), SessionIds.of(3, 2));
    }

    @Test
    void shouldRoundTripEverySessionIdFieldAndRefuseWhatDoesNotFit() {
        for (int rank : new int[] {0, 1, SessionIds.MAX_RANK}) {
            for (long epoch : new long[] {0, 1, SessionIds.EPOCH_MASK, SessionIds.EPOCH_MASK + 1L, Long.MAX_VALUE}) {
                int id = SessionIds.of(rank, epoch);
                assertEquals(rank, SessionIds.rankOf(id));
                assertEquals(SessionIds.epochBits(epoch), SessionIds.epochBitsOf(id));
                assertEquals(epoch % (SessionIds.EPOCH_MASK + 1), SessionIds.epochBitsOf(id), "epochs travel mod 2^10");
                assertTrue(id >= 0, "session id " + id);
            }
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> SessionIds.of(SessionIds.MAX_RANK + 1, 0))
            .getMessage().contains("rank=" + (SessionIds.MAX_RANK + 1)));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> SessionIds.of(-1, 0)).getMessage()
            .contains("rank=-1"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> SessionIds.of(0, -1)).getMessage()
            .contains("epoch=-1"));
    }

    @Test
    void shouldTellOlderEpochsFromCurrentAndLaterOnesAcrossTheWrap() {
        long epoch = 1030; // bits 6
        assertTrue(SessionIds.isCurrentOrLater(SessionIds.of(2, epoch), epoch));
        assertTrue(SessionIds.isCurrentOrLater(SessionIds.of(2, epoch + 1), epoch), "one later");
        assertTrue(SessionIds.isCurrentOrLater(SessionIds.of(2, epoch + 511), epoch), "511 later");
        assertFalse(SessionIds.isCurrentOrLater(SessionIds.of(2, epoch - 1), epoch), "one back, across the wrap");
        assertFalse(SessionIds.isCurrentOrLater(SessionIds.of(2, epoch - 7), epoch), "7 back: bits 1023");
        assertFalse(SessionIds.isCurrentOrLater(SessionIds.of(2, epoch - 511), epoch), "511 back");
        assertTrue(SessionIds.isCurrentOrLater(SessionIds.of(2, epoch - 512), epoch), "512 back reads as later");
    }

    @Test
    void shouldComputeSameCrcAsJdkReference() {
        SplittableRandom r = new SplittableRandom(42);
        Crc32cCalculator fast = new Crc32cCalculator();
        UnsafeBuffer buf = new UnsafeBuffer(BufferUtil.allocateDirectAligned(1 << 20, 64));
        int mismatches = 0;
        for (int i = 0; i < 200; i++) {
            int len = r.nextInt(1 << 20);
            int off = r.nextInt((1 << 20) - len + 1);
            byte[] bytes = new byte[len];
            r.nextBytes(bytes);
            buf.putBytes(off, bytes);
            CRC32C ref = new CRC32C();
            ref.update(bytes);
            if ((int) ref.getValue() != fast.compute(buf.addressOffset() + off, len)) {
                mismatches++;
            }
        }
        System.out.println("crc32c: 200 random buffers, mismatches vs java.util.zip.CRC32C: " + mismatches);
        assertEquals(0, mismatches);
    }

    @Test
    void shouldWriteAndReadEveryHeaderFieldLittleEndian() {
        UnsafeBuffer buf = new UnsafeBuffer(BufferUtil.allocateDirectAligned(256, 64));
        TensorFrameFlyweight f = new TensorFrameFlyweight().wrap(buf, 32);
        f.writeHeader(FrameKind.GRADIENT, DType.BF16, TensorFrameDescriptor.FLAG_CRC, 77, 123_456_789_012L, 5, 6,
            TensorKey.of(3, 2, 1), new int[] {2, 3, 4}, 3, 48, 16, 32);
        f.sealCrc(0xCAFEBABE);
        assertEquals(TensorFrameDescriptor.MAGIC, f.magic());
        assertEquals(0x54, buf.getByte(32), "magic starts with 'T' (little-endian)");
        assertEquals(TensorFrameDescriptor.VERSION, f.version());
        assertEquals(FrameKind.GRADIENT.code(), f.kindCode());
        assertEquals(DType.BF16, TensorFrameFlyweight.dtypeOf(f.dtypeCode()));
        assertEquals(3, f.ndims());
        assertEquals(4, f.dim(2));
        assertEquals(0, f.dim(3));
        assertEquals(77, f.epoch());
        assertEquals(123_456_789_012L, f.step());
        assertEquals(5, f.sourceRank());
        assertEquals(6, f.destRank());
        assertEquals(TensorKey.of(3, 2, 1), f.tensorKey());
        assertEquals(48, f.totalBytes());
        assertEquals(16, f.chunkOffset());
        assertEquals(32, f.chunkBytes());
        assertEquals(0xCAFEBABE, f.chunkCrc());
        assertEquals(f.computeHeaderCrc(), f.headerCrc());
        assertNull(TensorFrameFlyweight.dtypeOf(99));
        assertNull(FrameKind.fromCode(0));
    }
}
