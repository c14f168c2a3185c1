package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.LocalGroup.Buffers;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Fast algorithms against the gather-to-one reference on seeded random tensors (max difference
 * printed), and bitwise determinism: repeated runs give the same bits, and every rank ends with the
 * same bits, for every algorithm and compression.
 */
class RandomAndDeterminismTest {

    static void fillRandom(Buffers b, int n, long seed) {
        for (int r = 0; r < n; r++) {
            SplittableRandom rnd = new SplittableRandom(seed * 1000 + r);
            for (long i = 0; i < b.count; i++) {
                b.set(r, i, (float) rnd.nextGaussian() * (1 + (i % 17)));
            }
        }
    }

    static float[][] run(LocalGroup g, Communicator[] c, Buffers b, ReduceOp op) {
        CollectiveHandle[] h = new CollectiveHandle[g.n];
        for (int r = 0; r < g.n; r++) {
            h[r] = c[r].allReduceAsync(b.address[r], b.count, op, 0, new CollectiveHandle());
        }
        g.awaitAll(h);
        float[][] out = new float[g.n][];
        for (int r = 0; r < g.n; r++) {
            out[r] = b.toArray(r);
        }
        return out;
    }

    /** The exact sum of the inputs in double, rank order (the same math as the reference algorithm). */
    static double[] exact(Buffers b, int n) {
        double[] s = new double[(int) b.count];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < s.length; i++) {
                s[i] += b.get(r, i);
            }
        }
        return s;
    }

    /** Sum of |x| over ranks: the scale rounding errors of a float sum are relative to. */
    static double[] absSum(Buffers b, int n) {
        double[] s = new double[(int) b.count];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < s.length; i++) {
                s[i] += Math.abs(b.get(r, i));
            }
        }
        return s;
    }

    /** Sum over ranks of half an int8 step of each element's block: the int8 error bound. */
    static double[] int8Bound(Buffers b, int n) {
        int block = io.troupe.collectives.compress.Int8Codec.BLOCK;
        double[] s = new double[(int) b.count];
        for (int r = 0; r < n; r++) {
            for (int lo = 0; lo < s.length; lo += block) {
                double max = 0;
                for (int i = lo; i < Math.min(s.length, lo + block); i++) {
                    max = Math.max(max, Math.abs(b.get(r, i)));
                }
                for (int i = lo; i < Math.min(s.length, lo + block); i++) {
                    s[i] += max / 127 * 0.5001 + 1e-6;
                }
            }
        }
        return s;
    }

    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {2, 3, 5, 6})
    @Timeout(60)
    void shouldMatchReferenceOnRandomTensors(int n) {
        int len = 300_001;
        try (LocalGroup g = new LocalGroup(n); Buffers b = new Buffers(n, len)) {
            CollectiveAlgorithm[] algorithms = {CollectiveAlgorithm.REFERENCE, CollectiveAlgorithm.RING,
                CollectiveAlgorithm.RECURSIVE_DOUBLING};
            float[][] reference = null;
            for (int a = 0; a < algorithms.length; a++) {
                Communicator[] c = g.communicators(a, LocalGroup.collectiveSettings().withAlgorithm(algorithms[a]));
                fillRandom(b, n, 7);
                double[] abs = absSum(b, n);
                float[][] out = run(g, c, b, ReduceOp.SUM);
                if (reference == null) {
                    reference = out;
                }
                double maxDiff = 0;
                double maxRel = 0;
                for (int i = 0; i < len; i++) {
                    double d = Math.abs(out[0][i] - reference[0][i]);
                    maxDiff = Math.max(maxDiff, d);
                    maxRel = Math.max(maxRel, d / abs[i]);
                }
                System.out.printf("n=%d %-18s vs reference: max |diff| = %.3g, max rel = %.3g%n", n, algorithms[a],
                    maxDiff, maxRel);
                assertTrue(maxRel < 1e-5 * n, algorithms[a] + " n=" + n + ": max rel diff " + maxRel);
            }
        }
    }

    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {3, 4, 5})
    @Timeout(60)
    void shouldGiveBitwiseIdenticalResultsAcrossRepeatsAndRanks(int n) {
        int len = 100_003;
        try (LocalGroup g = new LocalGroup(n); Buffers b = new Buffers(n, len)) {
            int id = 0;
            for (CollectiveAlgorithm alg : new CollectiveAlgorithm[] {CollectiveAlgorithm.RING,
                CollectiveAlgorithm.RECURSIVE_DOUBLING}) {
                for (Compression comp : Compression.values()) {
                    Communicator[] c = g.communicators(id++, LocalGroup.collectiveSettings().withAlgorithm(alg)
                        .withCompression(comp));
                    float[] first = null;
                    for (int rep = 0; rep < 3; rep++) {
                        for (Communicator x : c) {
                            x.errorFeedback().close(); // same residual state (zero) for every repeat
                        }
                        fillRandom(b, n, 11);
                        float[][] out = run(g, c, b, ReduceOp.AVERAGE);
                        for (int r = 1; r < n; r++) {
                            assertArrayEquals(out[0], out[r], alg + "/" + comp + ": rank " + r
                                + " differs from rank 0");
                        }
                        if (first == null) {
                            first = out[0];
                        } else {
                            assertTrue(Arrays.equals(first, out[0]), alg + "/" + comp + ": repeat " + rep
                                + " differs from the first run");
                        }
                    }
                }
            }
        }
    }

    @Test
    @Timeout(60)
    void shouldStayCloseToExactSumWithBf16AndInt8() {
        int n = 4;
        int len = 50_000;
        try (LocalGroup g = new LocalGroup(n); Buffers b = new Buffers(n, len)) {
            int id = 0;
            for (Compression comp : new Compression[] {Compression.BF16, Compression.INT8}) {
                for (CollectiveAlgorithm alg : new CollectiveAlgorithm[] {CollectiveAlgorithm.RING,
                    CollectiveAlgorithm.RECURSIVE_DOUBLING}) {
                    Communicator[] c = g.communicators(id++, LocalGroup.collectiveSettings().withAlgorithm(alg)
                        .withCompression(comp));
                    fillRandom(b, n, 3);
                    double[] exact = exact(b, n);
                    // bf16: each of at most n roundings errs by 2^-9 of a partial sum bounded by sum |x|
                    double[] bound = comp == Compression.BF16 ? absSum(b, n) : int8Bound(b, n);
                    float[][] out = run(g, c, b, ReduceOp.SUM);
                    double worst = 0;
                    for (int i = 0; i < len; i++) {
                        double allowed = comp == Compression.BF16 ? bound[i] * n * Math.scalb(1.0, -8) : bound[i];
                        worst = Math.max(worst, Math.abs(out[0][i] - exact[i]) / allowed);
                    }
                    System.out.printf("%s/%s vs exact: max |diff| / error bound = %.3g%n", comp, alg, worst);
                    assertTrue(worst <= 1, comp + "/" + alg + ": error " + worst + " of the bound");
                }
            }
        }
    }
}
