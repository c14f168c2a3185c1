package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.transport.TensorKey;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tensor-key and signature layouts: every field round-trips, at its bounds and at random, and stays in its bits.
 */
@Timeout(10)
class CollectiveKeyTest {
    @Test
    void shouldRoundTripEveryKeyFieldAtItsBounds() {
        long[] seqs = {0, 1, CollectiveKey.SEQ_MASK};
        int[] groups = {0, 1, CollectiveKey.MAX_GROUP_ID};
        int[] steps = {0, 1, CollectiveKey.MAX_STEP};
        int[] pieces = {0, 1, CollectiveKey.MAX_PIECE};
        for (long seq : seqs) {
            for (int g : groups) {
                for (int step : steps) {
                    for (int piece : pieces) {
                        long key = CollectiveKey.key(seq, g, step, piece);
                        assertEquals(seq, CollectiveKey.seq(key));
                        assertEquals(g, CollectiveKey.groupId(key));
                        assertEquals(step, CollectiveKey.step(key));
                        assertEquals(piece, CollectiveKey.piece(key));
                        assertTrue((int) key >= 0, "bit 31 stays 0: TensorKey's bucket field is non-negative");
                        assertEquals(g, TensorKey.virtualStage(key), "the group id is the virtual-stage field");
                        assertEquals(seq, TensorKey.microbatch(key), "the sequence number is the micro-batch field");
                    }
                }
            }
        }
    }

    @Test
    void shouldKeepTheSequenceNumberMod2To23() {
        long seq = (1L << CollectiveKey.SEQ_BITS) + 5;
        assertEquals(5, CollectiveKey.seq(CollectiveKey.key(seq, 0, 0, 0)));
        assertEquals(5, CollectiveKey.seqBits(seq));
        assertEquals(0, CollectiveKey.seqBits(CollectiveKey.SEQ_MASK + 1), "the op after the last wraps to 0");
    }

    @Test
    void shouldRoundTripEverySignatureFieldAtItsBoundsAndAtRandom() {
        int[] tags = {0, 1, CollectiveKey.TAG_MASK};
        int[] ops = {0, CollectiveKey.OP_MASK};
        int[] variants = {0, CollectiveKey.VARIANT_MASK};
        long[] counts = {0, 1, CollectiveKey.COUNT_MASK};
        for (int tag : tags) {
            for (int op : ops) {
                for (int v : variants) {
                    for (long count : counts) {
                        assertSignature(tag, op, v, count);
                    }
                }
            }
        }
        SplittableRandom r = new SplittableRandom(14);
        for (int i = 0; i < 10_000; i++) {
            assertSignature(r.nextInt(CollectiveKey.TAG_MASK + 1), r.nextInt(CollectiveKey.OP_MASK + 1),
                r.nextInt(CollectiveKey.VARIANT_MASK + 1), r.nextLong(CollectiveKey.COUNT_MASK + 1));
        }
    }

    private static void assertSignature(int tag, int op, int variant, long count) {
        long sig = CollectiveKey.signature(tag, op, variant, count);
        assertEquals(tag, CollectiveKey.tag(sig));
        assertEquals(op, CollectiveKey.opCode(sig));
        assertEquals(variant, CollectiveKey.variant(sig));
        assertEquals(count, CollectiveKey.count(sig));
    }

    @Test
    void shouldKeepTagAndCountInTheirBits() {
        long sig = CollectiveKey.signature(CollectiveKey.TAG_MASK + 3, 2, 1, CollectiveKey.COUNT_MASK + 8);
        assertEquals(2, CollectiveKey.tag(sig), "tag mod 2^20");
        assertEquals(7, CollectiveKey.count(sig), "count mod 2^36");
        assertEquals(2, CollectiveKey.opCode(sig), "a wide tag or count does not spill into the op code");
        assertEquals(1, CollectiveKey.variant(sig));
    }

    @Test
    void shouldPackAlgorithmAndCompressionIntoTheVariantAndRefuseCodesThatDoNotFit() {
        for (EngineAlgorithm a : EngineAlgorithm.values()) {
            if (a == EngineAlgorithm.NONE) {
                continue;
            }
            for (Compression c : Compression.values()) {
                int v = CollectiveKey.variant(a.wireCode, c);
                assertEquals(a.wireCode, v >>> CollectiveKey.COMPRESSION_BITS);
                assertEquals(c.ordinal(), v & ((1 << CollectiveKey.COMPRESSION_BITS) - 1));
                assertEquals(v, CollectiveKey.variant(CollectiveKey.signature(1, 1, v, 1)));
            }
        }
        assertTrue(Compression.values().length <= 1 << CollectiveKey.COMPRESSION_BITS);
        assertNotEquals(CollectiveKey.variant(EngineAlgorithm.RING.wireCode, Compression.NONE),
            CollectiveKey.variant(EngineAlgorithm.RECURSIVE_DOUBLING.wireCode, Compression.NONE));
        assertTrue(assertThrows(IllegalArgumentException.class,
            () -> CollectiveKey.variant(EngineAlgorithm.NONE.wireCode, Compression.NONE)).getMessage()
            .contains("algorithmCode=-1"));
        assertTrue(assertThrows(IllegalArgumentException.class,
            () -> CollectiveKey.variant(CollectiveKey.MAX_ALGORITHM_CODE + 1, Compression.NONE)).getMessage()
            .contains("algorithmCode=4"));
    }

    @Test
    void shouldFitTheLargestGroupsRingStepsIntoTheStepField() {
        int n = CollectiveGroup.MAX_SIZE;
        assertTrue(RingPhases.ALL_REDUCE.lastStep(n) <= CollectiveKey.MAX_STEP);
        assertEquals(0, RingPhases.REDUCE_SCATTER.firstStep(n));
        assertEquals(n - 2, RingPhases.REDUCE_SCATTER.lastStep(n));
        assertEquals(n - 1, RingPhases.ALL_GATHER.firstStep(n));
    }

    @Test
    void shouldDescribeASignature() {
        long sig = CollectiveKey.signature(3, OpKind.ALL_REDUCE.ordinal(), 5, 1000);
        assertEquals("{op=ALL_REDUCE, tag=3, variant=5, count=1000}", CollectiveKey.describe(sig));
    }
}
