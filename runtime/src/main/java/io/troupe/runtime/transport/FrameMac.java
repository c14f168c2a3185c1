package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TensorFrameDescriptor.HEADER_LENGTH;
import static io.troupe.runtime.transport.TensorFrameDescriptor.MAC_HIGH_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.MAC_LOW_OFFSET;

import java.nio.ByteOrder;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.UnsafeApi;

/**
 * SipHash-2-4 (Aumasson and Bernstein, 2012) of tensor frames under a {@link FrameAuthKey}: the 64-bit
 * tag that {@link TensorFrameDescriptor#FLAG_MAC} frames carry in their two CRC fields. The tag covers
 * the 96-byte header, with the tag's own 8 bytes read as zero, followed by the chunk's payload; a
 * header-only frame's tag covers its header. Why SipHash: it is a keyed PRF built for short inputs,
 * needs nothing but 64-bit adds, rotates and xors (so it runs in plain Java at the speed of a JIT loop,
 * allocating nothing), and a 64-bit tag means an online forger needs about 2^63 tries, each a counted
 * drop. HMAC-SHA-256 through the JDK would allocate on every {@code doFinal} and copy direct memory into
 * a heap array first, and measured no faster ({@code FrameMacBench} measures both).
 *
 * <p>Long chunks arrive in many fragments into a slot, so the tag is computed in two steps:
 * {@link #absorbHeader} on the first fragment (its state kept with {@link #saveState}), then
 * {@link #restoreState} and {@link #finish} over the chunk once it is whole in the slot.
 *
 * <p>Threading: one thread per instance (a sender's, or a receiver agent's decoder). Never allocates.
 */
public final class FrameMac {
    private static final boolean LITTLE_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN;
    /** The header's 8-byte words that hold the tag in their upper halves ({@code MAC_LOW_OFFSET - 4}, ...). */
    private static final int MASKED_WORD_A = MAC_LOW_OFFSET - 4;
    private static final int MASKED_WORD_B = MAC_HIGH_OFFSET - 4;
    private static final long LOW_HALF = 0xFFFF_FFFFL;

    private final long k0;
    private final long k1;
    private long v0;
    private long v1;
    private long v2;
    private long v3;

    public FrameMac(FrameAuthKey key) {
        this.k0 = key.k0();
        this.k1 = key.k1();
    }

    /** The tag of the frame at {@code buffer[offset, offset + HEADER_LENGTH + payloadBytes)}. */
    public long tagOf(DirectBuffer buffer, int offset, int payloadBytes) {
        absorbHeader(buffer, offset);
        return finish(buffer.byteArray(), buffer.addressOffset() + offset + HEADER_LENGTH, payloadBytes);
    }

    /** Computes the tag of the frame at {@code offset} and writes it into its tag fields. */
    public void seal(MutableDirectBuffer buffer, int offset, int payloadBytes) {
        long tag = tagOf(buffer, offset, payloadBytes);
        buffer.putInt(offset + MAC_LOW_OFFSET, (int) tag, java.nio.ByteOrder.LITTLE_ENDIAN);
        buffer.putInt(offset + MAC_HIGH_OFFSET, (int) (tag >>> 32), java.nio.ByteOrder.LITTLE_ENDIAN);
    }

    /** The tag a frame carries (as {@link #seal} wrote it). */
    public static long tagIn(TensorFrameFlyweight frame) {
        return (frame.chunkCrc() & LOW_HALF) | ((long) frame.headerCrc() << 32);
    }

    /** Starts a tag: resets the state and absorbs the 96 header bytes at {@code offset}, tag fields as zero. */
    public void absorbHeader(DirectBuffer buffer, int offset) {
        v0 = k0 ^ 0x736f6d6570736575L;
        v1 = k1 ^ 0x646f72616e646f6dL;
        v2 = k0 ^ 0x6c7967656e657261L;
        v3 = k1 ^ 0x7465646279746573L;
        Object base = buffer.byteArray();
        long address = buffer.addressOffset() + offset;
        for (int i = 0; i < HEADER_LENGTH; i += 8) {
            long m = word(base, address + i);
            if (i == MASKED_WORD_A || i == MASKED_WORD_B) {
                m &= LOW_HALF;
            }
            compress(m);
        }
    }

    /**
     * Absorbs {@code length} payload bytes at {@code base + address} (base {@code null}: native memory)
     * after {@link #absorbHeader} and returns the tag of header and payload.
     */
    public long finish(Object base, long address, int length) {
        int whole = length & ~7;
        for (int i = 0; i < whole; i += 8) {
            compress(word(base, address + i));
        }
        long last = (long) (HEADER_LENGTH + length) << 56;
        for (int i = length - 1; i >= whole; i--) {
            last |= (UnsafeApi.getByte(base, address + i) & 0xFFL) << (8 * (i - whole));
        }
        compress(last);
        v2 ^= 0xff;
        for (int r = 0; r < 4; r++) {
            round();
        }
        return v0 ^ v1 ^ v2 ^ v3;
    }

    /** Keeps the state after {@link #absorbHeader} in {@code state[0..4)} (for a chunk that is not whole yet). */
    public void saveState(long[] state) {
        state[0] = v0;
        state[1] = v1;
        state[2] = v2;
        state[3] = v3;
    }

    /** Takes back a state kept by {@link #saveState}, to {@link #finish} the chunk. */
    public void restoreState(long[] state) {
        v0 = state[0];
        v1 = state[1];
        v2 = state[2];
        v3 = state[3];
    }

    /**
     * Plain SipHash-2-4 of {@code length} bytes at {@code base + address}: the reference the tests check
     * against the published vectors (a header-less message).
     */
    long hash(Object base, long address, int length) {
        v0 = k0 ^ 0x736f6d6570736575L;
        v1 = k1 ^ 0x646f72616e646f6dL;
        v2 = k0 ^ 0x6c7967656e657261L;
        v3 = k1 ^ 0x7465646279746573L;
        int whole = length & ~7;
        for (int i = 0; i < whole; i += 8) {
            compress(word(base, address + i));
        }
        long last = (long) length << 56;
        for (int i = length - 1; i >= whole; i--) {
            last |= (UnsafeApi.getByte(base, address + i) & 0xFFL) << (8 * (i - whole));
        }
        compress(last);
        v2 ^= 0xff;
        for (int r = 0; r < 4; r++) {
            round();
        }
        return v0 ^ v1 ^ v2 ^ v3;
    }

    private static long word(Object base, long address) {
        long w = UnsafeApi.getLong(base, address);
        return LITTLE_ENDIAN ? w : Long.reverseBytes(w);
    }

    private void compress(long m) {
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }

    private void round() {
        v0 += v1;
        v1 = Long.rotateLeft(v1, 13);
        v1 ^= v0;
        v0 = Long.rotateLeft(v0, 32);
        v2 += v3;
        v3 = Long.rotateLeft(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = Long.rotateLeft(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = Long.rotateLeft(v1, 17);
        v1 ^= v2;
        v2 = Long.rotateLeft(v2, 32);
    }
}
