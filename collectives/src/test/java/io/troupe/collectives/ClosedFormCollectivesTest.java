package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.troupe.collectives.LocalGroup.Buffers;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Closed-form per-rank values for group sizes 1, 2, 3, 4, 5, 8 and lengths 1, 7, 1000, 2^20+3:
 * rank r contributes {@code (r+1) * (1 + i % 3)} at element i, so the sum is
 * {@code n(n+1)/2 * (1 + i % 3)}, exact in float32.
 */
class ClosedFormCollectivesTest {
    private static final long[] LENGTHS = {1, 7, 1000, (1 << 20) + 3};

    private static float contribution(int r, long i) {
        return (r + 1) * (1 + i % 3);
    }

    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {1, 2, 3, 4, 5, 8})
    @Timeout(120)
    void shouldAllReduceToClosedFormSumWithEveryAlgorithm(int n) {
        try (LocalGroup g = new LocalGroup(n)) {
            CollectiveAlgorithm[] algorithms = {CollectiveAlgorithm.RING, CollectiveAlgorithm.RECURSIVE_DOUBLING,
                CollectiveAlgorithm.REFERENCE, CollectiveAlgorithm.AUTO};
            Communicator[][] comms = new Communicator[algorithms.length][];
            for (int a = 0; a < algorithms.length; a++) {
                comms[a] = g.communicators(a, LocalGroup.collectiveSettings().withAlgorithm(algorithms[a]));
            }
            for (long len : LENGTHS) {
                try (Buffers b = new Buffers(n, len)) {
                    for (int a = 0; a < algorithms.length; a++) {
                        for (ReduceOp op : ReduceOp.values()) {
                            fill(b, n);
                            CollectiveHandle[] h = new CollectiveHandle[n];
                            for (int r = 0; r < n; r++) {
                                h[r] = comms[a][r].allReduceAsync(b.address[r], len, op, 0, new CollectiveHandle());
                            }
                            g.awaitAll(h);
                            float tri = n * (n + 1) / 2f;
                            for (int r = 0; r < n; r++) {
                                for (long i = 0; i < len; i++) {
                                    float sum = tri * (1 + i % 3);
                                    float want = op == ReduceOp.SUM ? sum : sum / n;
                                    if (b.get(r, i) != want) {
                                        fail(algorithms[a] + " " + op + " n=" + n + " len=" + len + ": rank " + r
                                            + " element " + i + " = " + b.get(r, i) + ", want " + want);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            assertEquals(0, g.driver.errors().size(), g.driver.errors().toString());
        }
    }

    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {1, 2, 3, 4, 5, 8})
    @Timeout(120)
    void shouldReduceScatterAllGatherBroadcastAndBarrierToClosedForm(int n) {
        try (LocalGroup g = new LocalGroup(n)) {
            Communicator[] c = g.communicators(0, LocalGroup.collectiveSettings());
            for (long len : LENGTHS) {
                try (Buffers in = new Buffers(n, len); Buffers out = new Buffers(n, len)) {
                    // reduce-scatter: member r gets segment r of the sum
                    fill(in, n);
                    CollectiveHandle[] h = new CollectiveHandle[n];
                    for (int r = 0; r < n; r++) {
                        h[r] = c[r].reduceScatterAsync(in.address[r], len, out.address[r], ReduceOp.SUM,
                            new CollectiveHandle());
                    }
                    g.awaitAll(h);
                    float tri = n * (n + 1) / 2f;
                    for (int r = 0; r < n; r++) {
                        long s0 = Communicator.segmentStart(len, n, r);
                        long s1 = Communicator.segmentStart(len, n, r + 1);
                        for (long i = s0; i < s1; i++) {
                            assertEquals(tri * (1 + i % 3), out.get(r, i - s0), "reduceScatter n=" + n + " len=" + len
                                + " rank " + r + " element " + i);
                        }
                        for (long i = 0; i < len; i++) {
                            assertEquals(contribution(r, i), in.get(r, i), "reduceScatter input must be unchanged");
                        }
                    }
                    // all-gather: member r contributes its segment of the pattern (r+1) * (1 + i%3)... use -(i+1)
                    for (int r = 0; r < n; r++) {
                        long s0 = Communicator.segmentStart(len, n, r);
                        long s1 = Communicator.segmentStart(len, n, r + 1);
                        for (long i = s0; i < s1; i++) {
                            in.set(r, i - s0, -(i + 1));
                        }
                        h[r] = c[r].allGatherAsync(in.address[r], out.address[r], len, new CollectiveHandle());
                    }
                    g.awaitAll(h);
                    for (int r = 0; r < n; r++) {
                        for (long i = 0; i < len; i++) {
                            if (out.get(r, i) != -(i + 1)) {
                                fail("allGather n=" + n + " len=" + len + " rank " + r + " element " + i + " = "
                                    + out.get(r, i));
                            }
                        }
                    }
                    // broadcast from the last member
                    int root = n - 1;
                    for (int r = 0; r < n; r++) {
                        for (long i = 0; i < len; i++) {
                            out.set(r, i, r == root ? i * 0.5f : -1);
                        }
                        h[r] = c[r].broadcastAsync(out.address[r], len, root, new CollectiveHandle());
                    }
                    g.awaitAll(h);
                    for (int r = 0; r < n; r++) {
                        for (long i = 0; i < len; i++) {
                            if (out.get(r, i) != i * 0.5f) {
                                fail("broadcast n=" + n + " len=" + len + " rank " + r + " element " + i);
                            }
                        }
                    }
                    for (int r = 0; r < n; r++) {
                        h[r] = c[r].barrierAsync(new CollectiveHandle());
                    }
                    g.awaitAll(h);
                }
            }
            assertEquals(0, g.driver.errors().size(), g.driver.errors().toString());
        }
    }

    static void fill(Buffers b, int n) {
        for (int r = 0; r < n; r++) {
            for (long i = 0; i < b.count; i++) {
                b.set(r, i, contribution(r, i));
            }
        }
    }
}
