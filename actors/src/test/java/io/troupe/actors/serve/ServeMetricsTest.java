package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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

    /**
     * The HTTP layer's refusals, by status: 400, 414, 431, 501 and 505 are listed even at 0, another status once
     * it was counted, in ascending order; a status that is no refusal is not counted.
     */
    @Test
    void shouldCountTheHttpLayersRefusalsByStatus() {
        ServeMetrics m = new ServeMetrics(8);
        m.onRefusedByHttp(414);
        m.onRefusedByHttp(414);
        m.onRefusedByHttp(413);
        m.onRefusedByHttp(200);
        String text = m.render();
        String name = "troupe_serve_http_refused_total";
        assertTrue(text.contains("# TYPE " + name + " counter\n" + name + "{status=\"400\"} 0\n" + name
            + "{status=\"413\"} 1\n" + name + "{status=\"414\"} 2\n" + name + "{status=\"431\"} 0\n" + name
            + "{status=\"501\"} 0\n" + name + "{status=\"505\"} 0\n"), text);
        assertFalse(text.contains("{status=\"200\"}"), text);
    }
}
