package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Buddies on nodes with different receive budgets: each sends its snapshot in the pieces the
 * receiver advertises, so the node with the small budget reassembles a snapshot many times its
 * budget, and the one with the large budget takes the other's in a few large pieces. Sized by the
 * sender's own budget instead, the large-budget node's single piece would exceed the small node's
 * budget and never arrive.
 */
@Timeout(90)
class SnapshotExchangeBudgetsTest {
    private static final long SMALL_BUDGET = 128 * 1024;
    private static final long WAIT_NS = TimeUnit.SECONDS.toNanos(30);
    private final ShardFixture fixture = new ShardFixture(11);

    @AfterEach
    void close() {
        fixture.close();
    }

    private Tensor tensor(int n) {
        return fixture.tensor(n);
    }

    /** About 1.2 MB of state: ten times the small node's budget. */
    private List<ShardSnapshots.ChunkState> shard(long optimizerStep) {
        return List.of(new ShardSnapshots.ChunkState(tensor(60_000), tensor(60_000), tensor(60_000), optimizerStep),
            new ShardSnapshots.ChunkState(tensor(40_001), tensor(40_001), tensor(40_001), optimizerStep));
    }

    @Test
    void shouldSendEachSnapshotInThePiecesItsReceiverTakes() throws Exception {
        exchange(SnapshotBuffer.SEGMENT_SHIFT);
    }

    /**
     * Slots made of 8 KiB segments on the large-budget node: its snapshot leaves in pieces of one segment
     * (smaller than the receiver's), and the other's arrives in one piece written across many segments;
     * both restore bitwise, their CRCs computed segment by segment.
     */
    @Test
    void shouldSendAndReassembleSnapshotsAcrossTheSlotsSegments() throws Exception {
        exchange(13);
    }

    private void exchange(int bigSegmentShift) throws Exception {
        TransportSettings small =
            TransportSettings.defaults().withChunkBytes(64 * 1024).withReceiveBudgetBytes(SMALL_BUDGET);
        try (TransportNode bigNode = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
             TransportNode smallNode = TransportNode.launch(small, Throwable::printStackTrace);
             SnapshotExchange big = new SnapshotExchange(bigNode, "big-budget", s -> { }, bigSegmentShift);
             SnapshotExchange tight = new SnapshotExchange(smallNode, "small-budget", s -> { })) {
            assertEquals(26, big.pieceShift(), "a 256 MiB budget takes 64 MiB pieces");
            assertEquals(15, tight.pieceShift(), "a 128 KiB budget takes 32 KiB pieces");

            JobIdentity job = new JobIdentity(0x2b, 4);
            int[] buddyOf = {1, 0};
            List<String> endpoints = List.of(big.endpoint(), tight.endpoint());
            int[] shifts = {big.pieceShift(), tight.pieceShift()};
            big.bind(job, 0, buddyOf, endpoints, shifts);
            tight.bind(job, 1, buddyOf, endpoints, shifts);

            List<ShardSnapshots.ChunkState> bigShard = shard(7);
            List<ShardSnapshots.ChunkState> smallShard = shard(7);
            assertTrue(ShardSnapshots.lengthBytes(bigShard) > 8 * SMALL_BUDGET, "the snapshot must exceed the budget");
            CountDownLatch reported = new CountDownLatch(2);
            big.afterStep(7, bigShard, reported::countDown);
            tight.afterStep(7, smallShard, reported::countDown);
            assertTrue(reported.await(30, TimeUnit.SECONDS), "each step's report waits for its buddy's copy: "
                + big.copiesOf(1).describe() + " / " + tight.copiesOf(0).describe());

            assertRestoresBitwise(tight.awaitCopy(job, 0, 7, WAIT_NS), tight, bigShard);
            assertRestoresBitwise(big.awaitCopy(job, 1, 7, WAIT_NS), big, smallShard);
        }
    }

    private void assertRestoresBitwise(SnapshotBuffer copy, SnapshotExchange holder,
        List<ShardSnapshots.ChunkState> want) {
        try {
            List<ShardSnapshots.ChunkState> back = fixture.zerosLike(want);
            assertArrayEquals(new long[] {7, 7}, ShardSnapshots.restore(copy, back));
            ShardFixture.assertSameState(want, back);
        } finally {
            holder.release(copy);
        }
    }
}
