package io.troupe.models.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(60)
class ValidationPlanTest {
    private static final int T = 8;

    private static TokenStream stream(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) ((i * 37) ^ (i >> 3));
        }
        return new TokenStream(b, "val of " + n);
    }

    /** A stand-in model whose per-row "loss" is a fixed function of the row's tokens; returns the row mean. */
    private static double rowLoss(int[] x, int[] y, int r) {
        double s = 0;
        for (int t = 0; t < T; t++) {
            s += Math.sin(x[r * T + t] * 0.1 + y[r * T + t] * 0.01);
        }
        return s / T;
    }

    @Test
    void shouldAverageExactlyOverEveryNonOverlappingWindow() {
        for (int n : new int[] {8 * 40 + 1, 8 * 41 + 5, 1000}) {
            TokenStream s = stream(n);
            long windows = (n - 1) / T;
            double expected = 0;
            int[] x = new int[T];
            int[] y = new int[T];
            for (long k = 0; k < windows; k++) {
                for (int t = 0; t < T; t++) {
                    x[t] = s.token(k * T + t);
                    y[t] = s.token(k * T + t + 1);
                }
                expected += rowLoss(x, y, 0);
            }
            expected /= windows;
            for (int rows : new int[] {1, 3, 4, 7}) {
                List<Integer> seenPasses = new ArrayList<>();
                double got = new ValidationPlan(s, T, rows * 2, rows, ValidationPlan.ALL).meanLoss((px, py) -> {
                    seenPasses.add(1);
                    double m = 0;
                    for (int r = 0; r < rows; r++) {
                        m += rowLoss(px, py, r);
                    }
                    return m / rows;
                });
                assertEquals(expected, got, 1e-12, "n=" + n + ", rows=" + rows);
                long expectPasses = windows / rows + (windows % rows == 0 ? 0 : 2);
                assertEquals(expectPasses, seenPasses.size());
            }
        }
    }

    @Test
    void shouldReadTheFirstBatchesWhenCounted() {
        TokenStream s = stream(1000);
        ValidationPlan p = new ValidationPlan(s, T, 8, 4, 3);
        assertEquals(6, p.passes());
        int[] x = new int[4 * T];
        int[] y = new int[4 * T];
        p.fill(1, x, y);
        assertEquals(s.token(4L * T), x[0], "pass 1 starts at window 4");
        double loss = p.meanLoss((px, py) -> px[0]);
        assertTrue(loss > 0);
    }

    /**
     * A count of batches that covers more than the split's windows reads every window once, as {@code all} does,
     * instead of reading windows from the start again and counting them twice.
     */
    @Test
    void shouldCountEveryWindowOnceWhenTheBatchesCoverMoreThanTheSplit() {
        TokenStream s = stream(8 * 13 + 1);                 // 13 windows
        int rows = 2;
        ValidationPlan.PassLoss model = (px, py) -> (rowLoss(px, py, 0) + rowLoss(px, py, 1)) / rows;
        double exact = new ValidationPlan(s, T, 4, rows, ValidationPlan.ALL).meanLoss(model);
        for (int batches : new int[] {4, 5, 100}) {          // 16, 20 and 400 rows of 13 windows
            ValidationPlan counted = new ValidationPlan(s, T, 4, rows, batches);
            assertEquals(exact, counted.meanLoss(model), 1e-12, "batches=" + batches);
            assertEquals(13 / rows + 2, counted.passes(), "batches=" + batches + ": the passes of all");
        }
        ValidationPlan fewer = new ValidationPlan(s, T, 4, rows, 3);   // 12 of the 13 windows: as counted
        assertEquals(6, fewer.passes());
    }

    @Test
    void shouldSayWhatAShortSplitNeeds() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> new ValidationPlan(stream(T), T, 4, 2, 1));
        assertTrue(e.getMessage().contains("8 tokens in val of 8 (need >= 9"), e.getMessage());
    }

    @Test
    void shouldRefuseRowsThatDoNotDivideTheBatch() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> new ValidationPlan(stream(1000), T, 6, 4, 1));
        assertTrue(e.getMessage().contains("rows=4"), e.getMessage());
    }
}
