package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.metrics.PrometheusText;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The latency histogram's text: valid, and whole (one moment's buckets, count and sum) however it is written. */
@Timeout(60)
class LatencyHistogramTest {
    private static final String NAME = "h_seconds";

    @Test
    void shouldWriteCumulativeBucketsEndingInInfEqualToTheCount() {
        LatencyHistogram h = new LatencyHistogram(NAME, "a test histogram.");
        for (long ns : new long[] {500_000, 1_000_000, 1_500_000, 700_000_000, 31_000_000_000L}) {
            h.observeNs(ns);
        }
        StringBuilder sb = new StringBuilder();
        h.render(sb);
        PrometheusText p = PrometheusText.check(sb.toString());
        assertEquals(2, p.value(NAME + "_bucket{le=\"0.001\"}"), "0.5 ms and 1 ms: le is inclusive");
        assertEquals(3, p.value(NAME + "_bucket{le=\"0.002\"}"));
        assertEquals(4, p.value(NAME + "_bucket{le=\"30.0\"}"));
        assertEquals(5, p.value(NAME + "_bucket{le=\"+Inf\"}"));
        assertEquals(5, p.value(NAME + "_count"));
        assertEquals(31.703, p.value(NAME + "_sum"), 1e-9);
    }

    /**
     * Four writers observe 0.25 s each while a scraper writes the text: every text's sum is exactly 0.25 times its
     * count, and its buckets hold that count (none from a moment other than the count's).
     */
    @Test
    void shouldNeverWriteATornHistogramWhileObservationsArrive() throws Exception {
        LatencyHistogram h = new LatencyHistogram(NAME, "a test histogram.");
        AtomicBoolean stop = new AtomicBoolean();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        CountDownLatch started = new CountDownLatch(4);
        List<Future<?>> writers = new ArrayList<>();
        try {
            for (int w = 0; w < 4; w++) {
                writers.add(pool.submit(() -> {
                    started.countDown();
                    while (!stop.get()) {
                        h.observeNs(250_000_000L);
                    }
                }));
            }
            assertTrue(started.await(10, TimeUnit.SECONDS));
            double lastCount = 0;
            for (int i = 0; i < 5_000; i++) {
                StringBuilder sb = new StringBuilder();
                h.render(sb);
                PrometheusText p = PrometheusText.check(sb.toString());
                double count = p.value(NAME + "_count");
                assertEquals(0.25 * count, p.value(NAME + "_sum"), 0.0, "scrape " + i + ":\n" + sb);
                assertEquals(count, p.value(NAME + "_bucket{le=\"0.5\"}"), "scrape " + i + ":\n" + sb);
                assertEquals(0, p.value(NAME + "_bucket{le=\"0.2\"}"));
                assertTrue(count >= lastCount, "the count went down");
                lastCount = count;
            }
            assertTrue(lastCount > 0, "the writers observed nothing");
        } finally {
            stop.set(true);
            pool.shutdown();
            assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS));
        }
        for (Future<?> f : writers) {
            f.get();
        }
    }
}
