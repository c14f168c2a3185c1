package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Row ranges claimed by the caller and helpers: every row exactly once, failures rethrown. */
@Timeout(60)
class RowSplitterTest {
    @Test
    void shouldRunEveryRowExactlyOnceOnRandomBatchSizes() {
        Random r = new Random(31);
        for (int parts = 1; parts <= 4; parts++) {
            try (RowSplitter s = new RowSplitter(parts, 2)) {
                for (int trial = 0; trial < 300; trial++) {
                    int n = r.nextInt(40);
                    AtomicIntegerArray seen = new AtomicIntegerArray(Math.max(1, n));
                    s.run(n, (from, to) -> {
                        assertTrue(0 <= from && from <= to && to <= n, "range [" + from + ", " + to + ") of " + n);
                        for (int i = from; i < to; i++) {
                            seen.incrementAndGet(i);
                        }
                    });
                    for (int i = 0; i < n; i++) {
                        assertEquals(1, seen.get(i), "parts " + parts + ", n " + n + ", row " + i);
                    }
                }
            }
        }
    }

    @Test
    void shouldRethrowAFailedRangeAndStayUsable() {
        try (RowSplitter s = new RowSplitter(2, 2)) {
            for (int trial = 0; trial < 50; trial++) {
                assertThrows(RuntimeException.class, () -> s.run(8, (from, to) -> {
                    if (from == 0) {
                        throw new IllegalArgumentException("range at 0 fails");
                    }
                }));
                int[] sum = new int[1];
                s.run(3, (from, to) -> {
                    synchronized (sum) {
                        sum[0] += to - from;
                    }
                });
                assertEquals(3, sum[0]);
            }
        }
    }
}
