package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
 * Copies kept under an older plan: two buddies hold each other's copies; the next epoch's plan keeps
 * the worker's copies of one rank or of none. The copies it no longer keeps stay while the new epoch
 * has committed only the step it started from (a fault then restores that step again, perhaps from
 * them) and are dropped once a step of the epoch commits, a copy still pinned by a send included; the
 * copies of a rank it still keeps stay.
 */
@Timeout(90)
class SnapshotExchangeReplanTest {
    private static final long WAIT_NS = TimeUnit.SECONDS.toNanos(30);
    private final ShardFixture fixture = new ShardFixture(23);

    @AfterEach
    void close() {
        fixture.close();
    }

    private List<ShardSnapshots.ChunkState> shard() {
        return List.of(new ShardSnapshots.ChunkState(fixture.tensor(5_000), fixture.tensor(5_000),
            fixture.tensor(5_000), 3));
    }

    @Test
    void shouldDropTheCopiesANewPlanNoLongerKeepsOnceAStepOfItCommits() throws Exception {
        try (TransportNode nodeA = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
             TransportNode nodeB = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
             SnapshotExchange a = new SnapshotExchange(nodeA, "replan-a", s -> { });
             SnapshotExchange b = new SnapshotExchange(nodeB, "replan-b", s -> { })) {
            JobIdentity first = new JobIdentity(0x3c, 2);
            List<String> endpoints = List.of(a.endpoint(), b.endpoint());
            int[] shifts = {a.pieceShift(), b.pieceShift()};
            a.bind(first, 0, new int[] {1, 0}, endpoints, shifts);
            b.bind(first, 1, new int[] {1, 0}, endpoints, shifts);
            CountDownLatch reported = new CountDownLatch(2);
            a.afterStep(3, shard(), reported::countDown);
            b.afterStep(3, shard(), reported::countDown);
            assertTrue(reported.await(30, TimeUnit.SECONDS), "each report waits for its buddy's copy");
            assertEquals(List.of(1), a.copyRanks());
            assertEquals(List.of(0), b.copyRanks());

            // a send of the copy still in flight when it is dropped
            SnapshotBuffer inFlight = a.awaitCopy(first, 1, 3, WAIT_NS);

            // the next epoch: a alone (no buddy, its copies of rank 1 kept by no plan); b still keeps rank 0's
            JobIdentity next = new JobIdentity(0x3c, 3);
            a.bind(next, 0, new int[] {-1}, List.of(a.endpoint()), new int[] {a.pieceShift()});
            b.bind(next, 1, new int[] {1, 0}, endpoints, shifts);
            assertEquals(List.of(1), a.copyRanks(), "the copies stay until the epoch's first commit");
            assertTrue(a.inventory(0x3c).stream().anyMatch(e -> e[0] == 1 && e[1] == 3), "still offered for a restore");
            a.committed(first, 4);
            assertEquals(List.of(1), a.copyRanks(), "a commit of the old epoch drops nothing");

            a.committed(next, 3);
            b.committed(next, 3);
            assertEquals(List.of(1), a.copyRanks(), "the step the epoch started from: a fault now restores it again");
            a.committed(next, 4);
            b.committed(next, 4);
            assertEquals(List.of(), a.copyRanks(), "dropped once a step of the new epoch commits");
            assertTrue(a.inventory(0x3c).stream().noneMatch(e -> e[0] == 1), "no longer offered");
            assertEquals(List.of(0), b.copyRanks(), "the copies of a rank the plan still keeps stay");
            assertDoesNotThrow(() -> a.release(inFlight), "the send's release after the drop");
            assertEquals(List.of(), a.copyRanks(), "and the release makes no new store for it");
            SnapshotBuffer kept = b.find(0x3c, 0, 3);
            try {
                assertEquals(3, kept.step(), "and still restore");
            } finally {
                b.release(kept);
            }
        }
    }
}
