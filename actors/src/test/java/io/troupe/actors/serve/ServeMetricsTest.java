package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ServeMetricsTest {

    /** The tokens/s gauge is the last window's while steps run, and falls to 0 once they stop. */
    @Test
    void shouldNotReportTheLastRateForEverOnceStepsStop() {
        ServeMetrics m = new ServeMetrics(8);
        long t = System.nanoTime();
        m.onStep(100, t + 1_000_000_000L);              // closes a window of a second (and a little)
        double rate = m.tokensPerSecond(t + 1_500_000_000L);
        assertTrue(rate > 99 && rate <= 100, "the last window's rate: " + rate);
        m.onStep(30, t + 1_900_000_000L);               // a step inside the next window, which stays open
        assertEquals(10.0, m.tokensPerSecond(t + 4_000_000_000L), 1e-9, "30 tokens over the 3 s since it began");
        assertEquals(0.0, m.tokensPerSecond(t + 61_000_000_000L), 0.6, "idle for a minute");
    }
}
