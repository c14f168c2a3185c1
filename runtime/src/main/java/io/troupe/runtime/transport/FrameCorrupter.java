package io.troupe.runtime.transport;

import io.aeron.driver.ext.LossGenerator;
import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.protocol.DataHeaderFlyweight;
import io.aeron.protocol.HeaderFlyweight;
import java.net.InetSocketAddress;
import java.util.concurrent.atomic.AtomicLong;
import org.agrona.BitUtil;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * Chaos testing ({@link TransportSettings#udpCorruptNth}): a receive-side hook of the embedded media
 * driver that flips one byte in the payload of the n-th UDP data frame (or the first one after it
 * that is alone in its datagram) carrying a payload, once, and
 * keeps the frame, so Aeron delivers it as if the wire had damaged it past the UDP checksum. Aeron's
 * own header is left intact (a damaged one is Aeron's to discard, not Troupe's to detect). Other
 * frames go to {@code next}, which may drop them.
 *
 * <p>Threading: the driver's receiver thread calls it.
 */
final class FrameCorrupter implements LossGenerator {
    private final long nth;
    private final LossGenerator next;
    private final AtomicLong seen = new AtomicLong();
    private final AtomicLong corrupted = new AtomicLong();

    FrameCorrupter(long nth, LossGenerator next) {
        if (nth <= 0) {
            throw new IllegalArgumentException("the corrupted frame is counted from 1: nth=" + nth);
        }
        this.nth = nth;
        this.next = next;
    }

    @Override
    public boolean shouldDropFrame(InetSocketAddress address, UnsafeBuffer buffer, int length) {
        if (length > DataHeaderFlyweight.HEADER_LENGTH
            && buffer.getShort(HeaderFlyweight.TYPE_FIELD_OFFSET) == HeaderFlyweight.HDR_TYPE_DATA
            && seen.incrementAndGet() >= nth && corrupted.get() == 0
            && BitUtil.align(buffer.getInt(0), FrameDescriptor.FRAME_ALIGNMENT) == length) {
            // one frame in this datagram (a batch's later frames carry Aeron headers of their own)
            // the middle of the payload: inside a Troupe frame's header or its chunk, both checked
            int at = DataHeaderFlyweight.HEADER_LENGTH + (length - DataHeaderFlyweight.HEADER_LENGTH) / 2;
            buffer.putByte(at, (byte) (buffer.getByte(at) ^ 0x5a));
            corrupted.incrementAndGet();
            return false;
        }
        return next.shouldDropFrame(address, buffer, length);
    }

    /** Frames corrupted so far (0 or 1). */
    long corrupted() {
        return corrupted.get();
    }
}
