package io.troupe.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class ByteSizeTest {
    @Test
    void shouldParseEveryUnitInAnyCase() {
        assertEquals(0, ByteSize.parse("0"));
        assertEquals(65504, ByteSize.parse("65504"));
        assertEquals(64 * 1024, ByteSize.parse("64k"));
        assertEquals(4L << 20, ByteSize.parse("4M"));
        assertEquals(2L << 30, ByteSize.parse(" 2g "));
    }

    @Test
    void shouldNameTheBadSize() {
        for (String bad : new String[] {"4q", "x1", "", "k", "-1", "9999999999999g"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ByteSize.parse(bad));
            assertTrue(e.getMessage().contains("size=" + bad), e.getMessage());
        }
    }
}
