package io.troupe.runtime.transport;

import io.aeron.driver.ext.LossGenerator;
import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.protocol.DataHeaderFlyweight;
import io.aeron.protocol.HeaderFlyweight;
import java.net.InetSocketAddress;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.agrona.BitUtil;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * Chaos testing ({@link TransportSettings#udpCorruptNth}): a receive-side hook of the embedded media
 * driver that flips one byte in the payload of the n-th UDP data frame (or the first one after it
 * that is alone in its datagram) carrying a payload, once, and
 * keeps the frame, so Aeron delivers it as if the wire had damaged it past the UDP checksum. Aeron's
 * own header is left intact (a damaged one is Aeron's to discard, not Troupe's to detect). Other
 * frames go to {@code next}, which may drop them. The corruption is reported as one line (the node's
 * log: {@code troupe: media driver corrupted received UDP data frame N (udp-corrupt-nth K): one payload
 * byte of L flipped, from ADDRESS}), so a chaos run can tell a fault injected from none.
 *
 * <p>Threading: the driver's receiver thread calls it.
 */
final class FrameCorrupter implements LossGenerator {
    private final long nth;
    private final LossGenerator next;
    private final AtomicLong seen = new AtomicLong();
    private final AtomicLong corrupted = new AtomicLong();
    private final Consumer<String> report;

    /** Reports the corrupted frame on standard error (the node's log). */
    FrameCorrupter(long nth, LossGenerator next) {
        this(nth, next, System.err::println);
    }

    /** Reports the corrupted frame's line to {@code report} (the driver's receiver thread calls it, once). */
    FrameCorrupter(long nth, LossGenerator next, Consumer<String> report) {
        if (nth <= 0) {
            throw new IllegalArgumentException("the corrupted frame is counted from 1: nth=" + nth);
        }
        this.nth = nth;
        this.next = next;
        this.report = report;
    }

    @Override
    public boolean shouldDropFrame(InetSocketAddress address, UnsafeBuffer buffer, int length) {
        if (length > DataHeaderFlyweight.HEADER_LENGTH
            && buffer.getShort(HeaderFlyweight.TYPE_FIELD_OFFSET) == HeaderFlyweight.HDR_TYPE_DATA) {
            long number = seen.incrementAndGet();
            if (number >= nth && corrupted.get() == 0
                && BitUtil.align(buffer.getInt(0), FrameDescriptor.FRAME_ALIGNMENT) == length) {
                // one frame in this datagram (a batch's later frames carry Aeron headers of their own)
                // the middle of the payload: inside a Troupe frame's header or its chunk, both checked
                int payload = length - DataHeaderFlyweight.HEADER_LENGTH;
                int at = DataHeaderFlyweight.HEADER_LENGTH + payload / 2;
                buffer.putByte(at, (byte) (buffer.getByte(at) ^ 0x5a));
                corrupted.incrementAndGet();
                report.accept("troupe: media driver corrupted received UDP data frame " + number
                    + " (udp-corrupt-nth " + nth + "): one payload byte of " + payload + " flipped, from " + address);
                return false;
            }
        }
        return next.shouldDropFrame(address, buffer, length);
    }

    /** Frames corrupted so far (0 or 1). */
    long corrupted() {
        return corrupted.get();
    }
}
