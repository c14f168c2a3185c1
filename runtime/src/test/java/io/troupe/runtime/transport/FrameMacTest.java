package io.troupe.runtime.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link FrameMac} is SipHash-2-4 (checked against the published vectors), the two-step tag of a chunk
 * equals the one-shot tag of the same frame, every header and payload byte but the tag's own changes
 * the tag, and a {@link FrameAuthKey} never shows its bits.
 */
class FrameMacTest {
    /** The key of the SipHash paper's vectors: bytes 00 .. 0f. */
    private static final FrameAuthKey VECTOR_KEY = FrameAuthKey.ofRawKey(0x0706050403020100L, 0x0f0e0d0c0b0a0908L);

    @Test
    void shouldMatchThePublishedSipHashVectors() {
        FrameMac mac = new FrameMac(VECTOR_KEY);
        byte[] message = new byte[64];
        for (int i = 0; i < message.length; i++) {
            message[i] = (byte) i;
        }
        long base = BufferUtil.ARRAY_BASE_OFFSET;
        // vectors_sip64 of the reference implementation: messages 00, 00 01, ..., of length 0, 7, 8, 15, 63
        assertEquals(0x726fdb47dd0e0e31L, mac.hash(message, base, 0));
        assertEquals(0xab0200f58b01d137L, mac.hash(message, base, 7));
        assertEquals(0x93f5f5799a932462L, mac.hash(message, base, 8));
        assertEquals(0xa129ca6149be45e5L, mac.hash(message, base, 15));
        assertEquals(0x958a324ceb064572L, mac.hash(message, base, 63));
    }

    @Test
    void shouldTagAChunkInTwoStepsAsInOne() {
        FrameMac mac = new FrameMac(FrameAuthKey.ofValue("a key of at least sixteen bytes"));
        Random random = new Random(3);
        for (int payload : new int[] {0, 1, 7, 8, 9, 4096, 65_533}) {
            UnsafeBuffer frame = frame(payload, random);
            long oneShot = mac.tagOf(frame, 0, payload);
            mac.absorbHeader(frame, 0);
            long[] state = new long[4];
            mac.saveState(state);
            mac.absorbHeader(frame(16, random), 0); // another frame in between, as on a busy receiver
            mac.restoreState(state);
            UnsafeBuffer slot = new UnsafeBuffer(BufferUtil.allocateDirectAligned(Math.max(payload, 8), 64));
            slot.putBytes(0, frame, TensorFrameDescriptor.HEADER_LENGTH, payload);
            assertEquals(oneShot, mac.finish(null, slot.addressOffset(), payload), "payload " + payload);
        }
    }

    @Test
    void shouldChangeTheTagWithEveryByteButTheTagsOwn() {
        FrameMac mac = new FrameMac(FrameAuthKey.ofValue("a key of at least sixteen bytes"));
        FrameMac other = new FrameMac(FrameAuthKey.ofValue("another key, also long enough"));
        int payload = 100;
        UnsafeBuffer frame = frame(payload, new Random(5));
        long tag = mac.tagOf(frame, 0, payload);
        assertNotEquals(tag, other.tagOf(frame, 0, payload), "another key, another tag");
        mac.seal(frame, 0, payload);
        assertEquals(tag, FrameMac.tagIn(new TensorFrameFlyweight().wrap(frame, 0)), "sealed where it is read");
        assertEquals(tag, mac.tagOf(frame, 0, payload), "the tag's own bytes are not covered");
        for (int i = 0; i < TensorFrameDescriptor.HEADER_LENGTH + payload; i++) {
            boolean tagByte = i >= TensorFrameDescriptor.MAC_LOW_OFFSET && i < TensorFrameDescriptor.MAC_LOW_OFFSET + 4
                || i >= TensorFrameDescriptor.MAC_HIGH_OFFSET && i < TensorFrameDescriptor.MAC_HIGH_OFFSET + 4;
            byte was = frame.getByte(i);
            frame.putByte(i, (byte) (was ^ 0x10));
            assertEquals(tagByte, tag == mac.tagOf(frame, 0, payload), "byte " + i);
            frame.putByte(i, was);
        }
    }

    @Test
    void shouldNeverShowTheKey(@TempDir Path dir) throws Exception {
        String secret = "s3cret-s3cret-s3cret";
        FrameAuthKey byValue = FrameAuthKey.ofValue(secret);
        Path file = dir.resolve("key");
        Files.writeString(file, secret + "\n");
        assertEquals(byValue, FrameAuthKey.ofFile(file), "a trailing line break is not part of the key");
        assertEquals(byValue, FrameAuthKey.ofValue(secret + "\r\n"),
            "nor of a value (an environment variable a key file filled)");
        assertTrue(!byValue.equals(FrameAuthKey.ofValue(" " + secret)), "leading blanks are the key's own");
        assertFalse(byValue.toString().contains(secret), byValue.toString());
        TransportSettings s = TransportSettings.defaults().withAuthKey(byValue);
        assertFalse(s.toString().contains(secret), s.toString());
        assertEquals(byValue, s.authKeyFor(false));
        assertEquals(null, s.authKeyFor(true), "IPC frames are not tagged");
        IllegalArgumentException shortKey = assertThrows(IllegalArgumentException.class,
            () -> FrameAuthKey.ofValue("short-key"));
        assertTrue(shortKey.getMessage().contains("length=9"), shortKey.getMessage());
        assertFalse(shortKey.getMessage().contains("short-key"), shortKey.getMessage());
        Files.write(file, "tiny".getBytes(StandardCharsets.UTF_8));
        IllegalArgumentException shortFile = assertThrows(IllegalArgumentException.class,
            () -> FrameAuthKey.ofFile(file));
        assertTrue(shortFile.getMessage().contains(file.toString()) && !shortFile.getMessage().contains("tiny"),
            shortFile.getMessage());
    }

    /** A frame with a valid header and a random payload, in native memory. */
    private static UnsafeBuffer frame(int payload, Random random) {
        UnsafeBuffer b = new UnsafeBuffer(BufferUtil.allocateDirectAligned(TensorFrameDescriptor.HEADER_LENGTH
            + Math.max(payload, 8), 64));
        int elements = Math.max(payload, 1);
        new TensorFrameFlyweight().wrap(b, 0).writeHeader(FrameKind.GRADIENT, DType.I8, TensorFrameDescriptor.FLAG_MAC,
            7, 3, 11, 0, 1, 42, new int[] {elements}, 1, elements, 0, payload);
        for (int i = 0; i < payload; i++) {
            b.putByte(TensorFrameDescriptor.HEADER_LENGTH + i, (byte) random.nextInt());
        }
        return b;
    }
}
