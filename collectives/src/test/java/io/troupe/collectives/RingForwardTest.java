package io.troupe.collectives;

import static io.troupe.collectives.RandomAndDeterminismTest.fillRandom;
import static io.troupe.collectives.RandomAndDeterminismTest.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.LocalGroup.Buffers;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Ranks that reach each other through shared-memory rings (a node per rank on one driver, as
 * processes of one host) write forwarded ring pieces straight into the next rank's ring. The
 * result must be bitwise the one of the plain path (in-process links and the Aeron log), which
 * reduces into its own buffer and copies out afterwards.
 */
class RingForwardTest {

    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {2, 3, 4})
    @Timeout(120)
    void shouldForwardThroughRingsAndGiveTheSameBitsAsThePlainPath(int n) {
        int len = 1_000_003; // several 256 KiB pieces per segment, segments of unequal length
        CollectiveSettings s = LocalGroup.collectiveSettings().withAlgorithm(CollectiveAlgorithm.RING);
        for (ReduceOp op : new ReduceOp[] {ReduceOp.SUM, ReduceOp.AVERAGE}) {
            float[][] plain;
            try (LocalGroup g = new LocalGroup(n); Buffers b = new Buffers(n, len)) {
                Communicator[] c = g.communicators(0, s);
                fillRandom(b, n, 5);
                plain = run(g, c, b, op);
                for (Communicator x : c) {
                    assertEquals(0, x.engine().forwardedPieces(), "no rings between ranks of one node");
                }
            }
            try (LocalGroup g = new LocalGroup(n, LocalGroup.settings(), true); Buffers b = new Buffers(n, len)) {
                Communicator[] c = g.communicators(0, s);
                long forwarded = 0;
                for (int rep = 0; rep < 2; rep++) {
                    fillRandom(b, n, 5);
                    float[][] viaRings = run(g, c, b, op);
                    for (int r = 0; r < n; r++) {
                        assertArrayEquals(plain[r], viaRings[r], op + " n=" + n + " rank " + r + " repeat " + rep);
                    }
                }
                for (Communicator x : c) {
                    forwarded += x.engine().forwardedPieces();
                }
                System.out.printf("n=%d %s: %d ring pieces forwarded in place, results bitwise equal%n", n, op,
                    forwarded);
                if (n > 2) {
                    assertTrue(forwarded > 0, "ranks on separate nodes forward through rings");
                }
            }
        }
    }
}
