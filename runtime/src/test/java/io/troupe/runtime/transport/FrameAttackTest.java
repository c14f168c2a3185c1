package io.troupe.runtime.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.troupe.runtime.tensor.DType;
import java.util.Random;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

/**
 * Forged, replayed, re-addressed, spliced and truncated UDP frames against a receiver's decoder with the
 * cluster's auth key: each is refused for its reason, while the honest frame passes; a receiver without
 * a key refuses a tagged frame ({@link DropReason#UNEXPECTED_MAC}) instead of taking it unchecked.
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
}
