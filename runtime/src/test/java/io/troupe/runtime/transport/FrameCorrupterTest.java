package io.troupe.runtime.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.aeron.protocol.DataHeaderFlyweight;
import io.aeron.protocol.HeaderFlyweight;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The chaos hook that damages one received UDP data frame: it counts data frames only, flips one byte in
 * the middle of the n-th one's payload, once, and reports that in one line (what a chaos run reads as the
 * fault's injection); every other frame passes untouched to the next generator.
 */
@Timeout(30)
class FrameCorrupterTest {
    private static final int LENGTH = 128;
    private static final InetSocketAddress FROM = new InetSocketAddress("127.0.0.1", 40123);

    private static UnsafeBuffer frame(short type) {
        UnsafeBuffer b = new UnsafeBuffer(new byte[LENGTH]);
        b.putInt(0, LENGTH);
        b.putShort(HeaderFlyweight.TYPE_FIELD_OFFSET, type);
        return b;
    }

    @Test
    void shouldCorruptTheNthDataFrameOnceAndReportIt() {
        List<String> lines = new ArrayList<>();
        int[] passedOn = {0};
        FrameCorrupter c = new FrameCorrupter(3, (a, b, l) -> {
            passedOn[0]++;
            return false;
        }, lines::add);
        int middle = DataHeaderFlyweight.HEADER_LENGTH + (LENGTH - DataHeaderFlyweight.HEADER_LENGTH) / 2;
        for (int i = 1; i <= 5; i++) {
            UnsafeBuffer pad = frame((short) HeaderFlyweight.HDR_TYPE_PAD);
            assertFalse(c.shouldDropFrame(FROM, pad, LENGTH));
            assertEquals(0, pad.getByte(middle), "a frame that is not data is never counted nor touched");
            UnsafeBuffer data = frame((short) HeaderFlyweight.HDR_TYPE_DATA);
            assertFalse(c.shouldDropFrame(FROM, data, LENGTH), "the damaged frame is kept, the others passed on");
            assertEquals(i == 3 ? 0x5a : 0, data.getByte(middle), "data frame " + i);
        }
        assertEquals(1, c.corrupted());
        assertEquals(9, passedOn[0], "every frame but the corrupted one goes to the next generator");
        assertEquals(List.of("troupe: media driver corrupted received UDP data frame 3 (udp-corrupt-nth 3): one payload"
            + " byte of " + (LENGTH - DataHeaderFlyweight.HEADER_LENGTH) + " flipped, from " + FROM), lines);
    }
}
