package io.troupe.models.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.BitSet;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(60)
class BatchesTest {
    private static final int T = 16;

    private static TokenStream stream(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 31 + (i >> 8));
        }
        return new TokenStream(b, "test stream of " + n);
    }

    @Test
    void shouldVisitEveryWindowOfAnEpochExactlyOnce() {
        int batch = 7;                                    // does not divide the windows: epochs end mid-step
        Batches b = Batches.shuffled(stream(10_000), T, 42);
        long w = b.windowsPerEpoch();
        assertEquals((10_000 - T) / T, w);
        for (int epoch = 0; epoch < 3; epoch++) {
            BitSet seen = new BitSet();
            long offset = -1;
            for (long g = epoch * w; g < (epoch + 1) * w; g++) {
                long start = b.start(g / batch, batch, (int) (g % batch));
                long o = start % T;
                if (offset < 0) {
                    offset = o;
                }
                assertEquals(offset, o, "one window offset per epoch");
                int k = (int) (start / T);
                assertTrue(start + T + 1 <= 10_000, "window inside the stream: start=" + start);
                assertTrue(!seen.get(k), "window " + k + " read twice in epoch " + epoch);
                seen.set(k);
            }
            assertEquals(w, seen.cardinality(), "every window of epoch " + epoch);
        }
    }

    @Test
    void shouldBeABijectionForEverySmallDomain() {
        for (long n = 1; n < 300; n++) {
            Set<Long> out = new HashSet<>();
            for (long i = 0; i < n; i++) {
                long p = Batches.permute(i, n, n * 7919);
                assertTrue(p >= 0 && p < n);
                out.add(p);
            }
            assertEquals(n, out.size(), "permutation of [0, " + n + ")");
        }
    }

    @Test
    void shouldShuffleAndDependOnSeedAndEpochOnly() {
        Batches a = Batches.shuffled(stream(100_000), T, 1);
        Batches again = Batches.shuffled(stream(100_000), T, 1);
        Batches other = Batches.shuffled(stream(100_000), T, 2);
        long sequentialRuns = 0;
        for (int row = 0; row < 64; row++) {
            assertEquals(a.start(3, 64, row), again.start(3, 64, row));
            if (row > 0 && a.start(3, 64, row) == a.start(3, 64, row - 1) + T) {
                sequentialRuns++;
            }
        }
        assertTrue(sequentialRuns < 8, "rows are not walked in order: " + sequentialRuns);
        int same = 0;
        for (int row = 0; row < 64; row++) {
            same += a.start(0, 64, row) == other.start(0, 64, row) ? 1 : 0;
        }
        assertTrue(same < 4, "another seed, another order: " + same + " equal rows");
        long w = a.windowsPerEpoch();
        assertNotEquals(a.start(0, 1, 0), a.start(w, 1, 0), "epoch 1 is another permutation");
    }

    @Test
    void shouldGiveTheSameGlobalBatchForAnySplitIntoMicroBatchesAndReplicas() {
        Batches b = Batches.shuffled(stream(50_000), T, 9);
        int batch = 16;
        int[] wholeX = new int[batch * T];
        int[] wholeY = new int[batch * T];
        b.fill(11, batch, 0, batch, wholeX, wholeY);
        for (int rows : new int[] {1, 2, 4, 8}) {
            int[] x = new int[batch * T];
            int[] y = new int[batch * T];
            int[] px = new int[rows * T];
            int[] py = new int[rows * T];
            for (int first = 0; first < batch; first += rows) {
                b.fill(11, batch, first, rows, px, py);
                System.arraycopy(px, 0, x, first * T, rows * T);
                System.arraycopy(py, 0, y, first * T, rows * T);
            }
            assertArrayEquals(wholeX, x, "rows of " + rows);
            assertArrayEquals(wholeY, y, "rows of " + rows);
        }
        for (int t = 0; t < T - 1; t++) {
            assertEquals(wholeX[t + 1], wholeY[t], "targets are inputs shifted by one");
        }
    }

    @Test
    void shouldKeepTheInOrderRecipeForTheReference() {
        Batches b = new Batches(stream(10_000), T);
        assertEquals(0, b.start(0, 4, 0));
        assertEquals(3 * T, b.start(0, 4, 3));
        assertEquals((2 * 4 + 1) * T, b.start(2, 4, 1));
    }

    @Test
    void shouldCountEpochs() {
        Batches b = Batches.shuffled(stream(16 * 101), T, 0);
        assertEquals(100, b.windowsPerEpoch());
        assertEquals(1.5, b.epochs(15, 10), 1e-12);
    }
}
