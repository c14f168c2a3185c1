package io.troupe.runtime.bench;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;

/** The bench's option parsing and its median (the bench itself is run by scripts/bench, not by tests). */
class TransportBenchTest {
    @Test
    void shouldParseSizesAndNameTheBadOne() {
        assertEquals(65504, TransportBench.parseBytes("65504"));
        assertEquals(64 * 1024, TransportBench.parseBytes("64k"));
        assertEquals(4L << 20, TransportBench.parseBytes("4M"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TransportBench.parseBytes("4q"))
            .getMessage().contains("4q"));
    }

    @Test
    void shouldTakeTheMedianOfOddAndEvenCountsWithoutReorderingTheRuns() {
        double[] runs = {3.0, 1.0, 2.0};
        assertEquals(2.0, TransportBench.median(runs));
        assertArrayEquals(new double[] {3.0, 1.0, 2.0}, runs);
        assertEquals(2.5, TransportBench.median(new double[] {4.0, 1.0, 3.0, 2.0}));
    }
}
