package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.LocalGroup.Buffers;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The ring's in-place receive (reduce straight from the Aeron log) against its reference, the
 * receive-slot path, on the same seeded random inputs: bitwise the same result on every rank, and
 * the in-place path really taken (counted), the slot path really not.
 */
class InPlaceReceiveTest {

    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {2, 3, 4})
    @Timeout(60)
    void shouldGiveTheSlotPathsBitsWhenReducingInPlace(int n) {
        int len = (1 << 20) + 3;
        try (LocalGroup g = new LocalGroup(n); Buffers b = new Buffers(n, len)) {
            CollectiveSettings s = LocalGroup.collectiveSettings().withAlgorithm(CollectiveAlgorithm.RING);
            Communicator[] c = g.communicators(0, s);
            RandomAndDeterminismTest.fillRandom(b, n, 5);
            long before = inPlacePieces(g);
            float[][] inPlace = RandomAndDeterminismTest.run(g, c, b, ReduceOp.AVERAGE);
            long taken = inPlacePieces(g) - before;

            for (CollectiveAgent a : g.agents) {
                a.worker().receiver().inPlaceConsumer(null); // the reference: every piece through a slot
            }
            RandomAndDeterminismTest.fillRandom(b, n, 5);
            float[][] slots = RandomAndDeterminismTest.run(g, c, b, ReduceOp.AVERAGE);
            assertEquals(before + taken, inPlacePieces(g), "no piece may go in place with the consumer removed");

            double maxDiff = 0;
            for (int r = 0; r < n; r++) {
                for (int i = 0; i < len; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(inPlace[r][i] - slots[r][i]));
                }
                assertArrayEquals(slots[r], inPlace[r], "rank " + r + ": in-place differs from the slot path");
                assertArrayEquals(inPlace[0], inPlace[r], "rank " + r + " differs from rank 0");
            }
            // 2(n-1) steps of n segments' pieces per rank: most of them must have gone in place
            long pieces = 2L * (n - 1) * n * ((len * 4L / n + s.pipelineBytes() - 1) / s.pipelineBytes());
            System.out.printf("n=%d: %d of ~%d pieces reduced in place; max |in-place - slot path| = %.3g%n", n, taken,
                pieces, maxDiff);
            assertTrue(taken > pieces / 4, "too few pieces in place: " + taken + " of ~" + pieces);
        }
    }

    /**
     * Rank 0 starts an all-reduce before the others: its pieces wait in the others' logs
     * ({@code InPlaceConsumer.LATER}) until their all-reduce starts, and the result is bitwise the
     * slot path's.
     */
    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {2, 3})
    @Timeout(60)
    void shouldLeaveTheNextCollectivesPiecesInTheLogUntilItStarts(int n) {
        int len = (1 << 18) + 5;
        try (LocalGroup g = new LocalGroup(n); Buffers b = new Buffers(n, len)) {
            CollectiveSettings s = LocalGroup.collectiveSettings().withAlgorithm(CollectiveAlgorithm.RING);
            Communicator[] c = g.communicators(0, s);
            RandomAndDeterminismTest.fillRandom(b, n, 9);
            CollectiveHandle[] h = new CollectiveHandle[n];
            h[0] = c[0].allReduceAsync(b.address[0], b.count, ReduceOp.AVERAGE, 0, new CollectiveHandle());
            long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(20);
            while (g.agents[1].deferredOffers() == 0) { // rank 1 sees rank 0's first piece before its own all-reduce
                for (CollectiveAgent a : g.agents) {
                    a.doWork();
                }
                assertTrue(System.nanoTime() < deadline, "rank 1 never deferred a piece of rank 0's all-reduce");
            }
            for (int r = 1; r < n; r++) {
                h[r] = c[r].allReduceAsync(b.address[r], b.count, ReduceOp.AVERAGE, 0, new CollectiveHandle());
            }
            g.awaitAll(h);
            float[][] early = new float[n][];
            for (int r = 0; r < n; r++) {
                early[r] = b.toArray(r);
            }
            long deferred = g.agents[1].deferredOffers();

            for (CollectiveAgent a : g.agents) {
                a.worker().receiver().inPlaceConsumer(null); // the reference: every piece through a slot
            }
            RandomAndDeterminismTest.fillRandom(b, n, 9);
            float[][] slots = RandomAndDeterminismTest.run(g, c, b, ReduceOp.AVERAGE);
            for (int r = 0; r < n; r++) {
                assertArrayEquals(slots[r], early[r], "rank " + r + ": deferred in-place differs from the slot path");
            }
            System.out.printf(
                "n=%d: rank 1 left rank 0's pieces in the log %d times; results bitwise the slot path's%n",
                n, deferred);
        }
    }

    private static long inPlacePieces(LocalGroup g) {
        long sum = 0;
        for (CollectiveAgent a : g.agents) {
            sum += a.inPlacePieces();
        }
        return sum;
    }
}
