package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A worker told to abort while it builds an epoch that restores from memory stops waiting for the
 * buddy's copy at once (its answer to the abort would otherwise wait out the copy's 15 s): an abort
 * that ended the epoch being built, or a newer epoch of the same job, ends the wait; one that ended
 * only an older epoch (a stale abort, or the one before this epoch's assignment) or another job's
 * leaves it alone.
 */
@Timeout(60)
class SnapshotExchangeAbortTest {
    private static final long WAIT_NS = TimeUnit.SECONDS.toNanos(30);
    private static final long SHORT_NS = TimeUnit.MILLISECONDS.toNanos(200);
    private static final JobIdentity BUILDING = new JobIdentity(7, 3);

    private TransportNode node;
    private SnapshotExchange ex;

    @BeforeEach
    void open() {
        node = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        ex = new SnapshotExchange(node, "abort-test", s -> { });
    }

    @AfterEach
    void close() {
        if (ex != null) {
            ex.close();
        }
        if (node != null) {
            node.close();
        }
    }

    /** Waits for rank 1's copy of step 10 in {@link #BUILDING} on another thread; answers what ended the wait. */
    private CompletableFuture<SnapshotBuffer> waitForCopy() {
        return CompletableFuture.supplyAsync(() -> ex.awaitCopy(BUILDING, 1, 10, WAIT_NS));
    }

    /** Asserts {@code waiting} ended with the abort's exception well before its wait could time out. */
    private static void assertEndedByTheAbort(CompletableFuture<SnapshotBuffer> waiting, long t0, JobIdentity by) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> waiting.get(20, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof SnapshotException, String.valueOf(e.getCause()));
        assertTrue(e.getCause().getMessage().contains("ended by the abort of " + by), e.getCause().getMessage());
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        assertTrue(ms < TimeUnit.NANOSECONDS.toMillis(WAIT_NS) / 2,
            "ended by the abort, not the timeout: " + ms + " ms");
    }

    /** Asserts a short wait in {@link #BUILDING} runs out its time instead of ending with an abort. */
    private void assertWaitRunsOut() {
        SnapshotException e = assertThrows(SnapshotException.class, () -> ex.awaitCopy(BUILDING, 1, 10, SHORT_NS));
        assertTrue(e.getMessage().contains("arrived within 200 ms"), e.getMessage());
    }

    @Test
    void shouldEndACopyWaitAtOnceWhenTheEpochBeingBuiltIsAborted() {
        long t0 = System.nanoTime();
        CompletableFuture<SnapshotBuffer> waiting = waitForCopy();
        ex.abortWaits(BUILDING);
        assertEndedByTheAbort(waiting, t0, BUILDING);
    }

    @Test
    void shouldEndACopyWaitWhenANewerEpochOfTheJobAborts() {
        JobIdentity newer = BUILDING.nextEpoch();
        long t0 = System.nanoTime();
        CompletableFuture<SnapshotBuffer> waiting = waitForCopy();
        ex.abortWaits(newer);
        assertEndedByTheAbort(waiting, t0, newer);
    }

    @Test
    void shouldLeaveACopyWaitAloneWhenAnotherJobAborts() {
        ex.abortWaits(new JobIdentity(8, 9));
        assertWaitRunsOut();
    }

    @Test
    void shouldLeaveANewerEpochsCopyWaitAloneAfterAStaleAbortOfAnOlderEpoch() throws Exception {
        ex.abortWaits(new JobIdentity(BUILDING.jobId(), BUILDING.epoch() - 1));
        assertWaitRunsOut();

        // the copy is taken when it arrives, the stale abort notwithstanding
        try (CpuDevice device = new CpuDevice(1);
             Tensor p = device.allocate(DType.F32, 64);
             Tensor m = device.allocate(DType.F32, 64);
             Tensor v = device.allocate(DType.F32, 64)) {
            CompletableFuture<SnapshotBuffer> waiting = waitForCopy();
            ShardSnapshots.capture(ex.copiesOf(1), BUILDING.jobId(), 1, BUILDING.epoch(), 10,
                List.of(new ShardSnapshots.ChunkState(p, m, v, 10)), 0);
            SnapshotBuffer got = waiting.get(20, TimeUnit.SECONDS);
            try {
                assertEquals(10, got.step());
                assertEquals(1, got.rank());
            } finally {
                ex.release(got);
            }
        }
    }

    @Test
    void shouldNeverLetAnOlderEpochsAbortUndoTheEndOfANewerOne() {
        ex.abortWaits(BUILDING);
        ex.abortWaits(new JobIdentity(BUILDING.jobId(), BUILDING.epoch() - 1));
        SnapshotException e = assertThrows(SnapshotException.class, () -> ex.awaitCopy(BUILDING, 1, 10, SHORT_NS));
        assertTrue(e.getMessage().contains("ended by the abort of " + BUILDING), e.getMessage());
    }
}
