package io.troupe.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(10)
class MedianTest {
    @Test
    void shouldTakeTheMedianOfOddAndEvenCountsWithoutReorderingTheRuns() {
        double[] runs = {3.0, 1.0, 2.0};
        assertEquals(2.0, Median.of(runs));
        assertArrayEquals(new double[] {3.0, 1.0, 2.0}, runs);
        assertEquals(2.5, Median.of(4.0, 1.0, 3.0, 2.0));
        assertEquals(2.5, Median.of(List.of(4.0, 1.0, 3.0, 2.0)));
        assertEquals(7.0, Median.of(7.0));
    }

    @Test
    void shouldRefuseNoValues() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Median.of()).getMessage().contains("length=0"));
    }
}
