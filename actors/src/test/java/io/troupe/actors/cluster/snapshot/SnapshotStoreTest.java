package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.transport.JobIdentity;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class SnapshotStoreTest {
    private static final int JOB = 0x5eed;
    private final ShardFixture fixture = new ShardFixture(7);

    @AfterEach
    void close() {
        fixture.close();
    }

    private Tensor tensor(int n) {
        return fixture.tensor(n);
    }

    /** Two chunks, the second with a ZeRO-like moment segment smaller than its parameters. */
    private List<ShardSnapshots.ChunkState> shard() {
        return List.of(new ShardSnapshots.ChunkState(tensor(1000), tensor(1000), tensor(1000), 12),
            new ShardSnapshots.ChunkState(tensor(333), tensor(111), tensor(111), 12));
    }

    private List<ShardSnapshots.ChunkState> zerosLike(List<ShardSnapshots.ChunkState> like) {
        return fixture.zerosLike(like);
    }

    private static void assertSameState(List<ShardSnapshots.ChunkState> want, List<ShardSnapshots.ChunkState> got) {
        ShardFixture.assertSameState(want, got);
    }

    @Test
    @Timeout(30)
    void shouldRestoreTheShardBitwiseFromItsSnapshot() {
        SnapshotStore store = new SnapshotStore("test");
        List<ShardSnapshots.ChunkState> shard = shard();
        ShardSnapshots.capture(store, JOB, 3, 2, 40, shard, 0);
        List<ShardSnapshots.ChunkState> back = zerosLike(shard);
        SnapshotBuffer b = store.find(JOB, 3, 40);
        long[] steps = ShardSnapshots.restore(b, back);
        store.unpin(b);
        assertArrayEquals(new long[] {12, 12}, steps);
        assertSameState(shard, back);
        assertEquals(2, b.epoch());
    }

    /**
     * A slot made of 4 KiB segments: tensors that straddle the seams are written and read back bitwise, the
     * CRC covers every segment (a flipped byte in the last one is caught), and a larger snapshot grows the slot.
     */
    @Test
    @Timeout(30)
    void shouldHoldASnapshotAcrossTheSlotsSegments() {
        SnapshotStore store = new SnapshotStore("segmented", 12);
        List<ShardSnapshots.ChunkState> shard = shard();
        SnapshotBuffer b = ShardSnapshots.capture(store, JOB, 2, 1, 5, shard, 0);
        assertTrue(b.capacityBytes() > 3 * 4096, "several segments: " + b.capacityBytes());
        List<ShardSnapshots.ChunkState> back = zerosLike(shard);
        SnapshotBuffer found = store.find(JOB, 2, 5);
        assertArrayEquals(new long[] {12, 12}, ShardSnapshots.restore(found, back));
        store.unpin(found);
        assertSameState(shard, back);

        List<ShardSnapshots.ChunkState> larger = List.of(new ShardSnapshots.ChunkState(tensor(5000), tensor(5000),
            tensor(5000), 3));
        ShardSnapshots.capture(store, JOB, 2, 1, 6, larger, 0);
        SnapshotBuffer grown = ShardSnapshots.capture(store, JOB, 2, 1, 7, larger, 0);
        assertSame(b, grown, "the older slot is reused, grown to the larger snapshot");
        List<ShardSnapshots.ChunkState> backLarger = zerosLike(larger);
        found = store.find(JOB, 2, 7);
        ShardSnapshots.restore(found, backLarger);
        store.unpin(found);
        assertSameState(larger, backLarger);

        long at = grown.lengthBytes() - 3;
        grown.putByte(at, (byte) (grown.getByte(at) ^ 0x01));
        SnapshotException e = assertThrows(SnapshotException.class, () -> store.find(JOB, 2, 7));
        assertTrue(e.getMessage().contains("CRC32C mismatch"), e.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> grown.address(4090, 16),
            "a range across a seam has no one address");
    }

    @Test
    @Timeout(30)
    void shouldKeepTheLastCompleteSnapshotWhileTheNextIsWrittenOrCutShort() {
        SnapshotStore store = new SnapshotStore("test");
        List<ShardSnapshots.ChunkState> shard = shard();
        SnapshotBuffer first = ShardSnapshots.capture(store, JOB, 0, 1, 10, shard, 0);
        SnapshotBuffer next = store.beginWrite(first.lengthBytes(), 0);
        assertNotSame(first, next, "a write must never take the latest complete slot");
        store.abandon(next); // the write was cut short (an abort)
        assertEquals(List.of(10L), store.steps(JOB, 0));
        SnapshotBuffer second = ShardSnapshots.capture(store, JOB, 0, 1, 11, shard, 0);
        assertSame(next, second);
        assertEquals(List.of(11L, 10L), store.steps(JOB, 0), "both complete versions are kept, newest first");
        SnapshotBuffer third = ShardSnapshots.capture(store, JOB, 0, 1, 12, shard, 0);
        assertSame(first, third, "the older slot is reused");
        assertEquals(List.of(12L, 11L), store.steps(JOB, 0));
        SnapshotBuffer b = store.find(JOB, 0, 11);
        assertEquals(11, b.step());
        store.unpin(b);
    }

    /**
     * Finding the newest snapshot (what a restore sends) leaves no other slot pinned: the next capture
     * takes the older slot at once. A leaked pin held the device thread in the capture until its
     * deadline, so a restored epoch never reported its first step.
     */
    @Test
    @Timeout(30)
    void shouldLeaveNoOtherSlotPinnedWhenTheNewestSnapshotIsFound() {
        SnapshotStore store = new SnapshotStore("own snapshots");
        List<ShardSnapshots.ChunkState> shard = shard();
        ShardSnapshots.capture(store, JOB, 0, 1, 11, shard, 0);
        ShardSnapshots.capture(store, JOB, 0, 1, 12, shard, 0);
        SnapshotBuffer newest = store.find(JOB, 0, 12);
        store.unpin(newest);
        assertThrows(SnapshotException.class, () -> store.find(JOB, 0, 99));
        SnapshotBuffer next = ShardSnapshots.capture(store, JOB, 0, 2, 13, shard, 0);
        assertEquals(13, next.step());
        assertEquals(List.of(13L, 12L), store.steps(JOB, 0));
    }

    /** A capture of rank 0 in {@code job} with the exchange's retention rule after commit {@code committed}. */
    private SnapshotBuffer captureRetaining(SnapshotStore store, JobIdentity job, long step,
                                            List<ShardSnapshots.ChunkState> shard, AtomicLong committed, long waitMs,
                                            AtomicBoolean ended) {
        return ShardSnapshots.capture(store, job.jobId(), 0, job.epoch(), step, shard,
            TimeUnit.MILLISECONDS.toNanos(waitMs), held -> SnapshotRetention.live(job, 0, committed.get(), held),
            ended::get);
    }

    /**
     * The committed snapshot survives until the next commit: with step 10 committed and 11 captured,
     * the capture of 12 waits (one step ahead of the commits at most) and overwrites 10 only once 11 is
     * committed. Overwriting the oldest slot without knowing the commits lost the committed snapshot
     * whenever a rank ran two steps ahead of a slow peer's report, and the restore fell back to disk.
     */
    @Test
    @Timeout(30)
    void shouldKeepTheCommittedSnapshotUntilTheNextStepIsCommitted() throws Exception {
        SnapshotStore store = new SnapshotStore("own snapshots");
        List<ShardSnapshots.ChunkState> shard = shard();
        JobIdentity job = new JobIdentity(JOB, 3);
        AtomicLong committed = new AtomicLong(10);
        AtomicBoolean ended = new AtomicBoolean();
        captureRetaining(store, job, 10, shard, committed, 0, ended);
        captureRetaining(store, job, 11, shard, committed, 0, ended);
        SnapshotException e = assertThrows(SnapshotException.class,
            () -> captureRetaining(store, job, 12, shard, committed, 50, ended));
        assertTrue(e.getMessage().contains("still needed") && e.getMessage().contains("step 10")
            && e.getMessage().contains("step 11"), e.getMessage());
        assertEquals(List.of(11L, 10L), store.steps(JOB, 0), "the refused capture destroyed nothing");

        ExecutorService device = Executors.newSingleThreadExecutor();
        try {
            Future<SnapshotBuffer> waiting =
                device.submit(() -> captureRetaining(store, job, 12, shard, committed, 20_000, ended));
            committed.set(11);
            store.wake();
            assertEquals(12, waiting.get(20, TimeUnit.SECONDS).step());
            assertEquals(List.of(12L, 11L), store.steps(JOB, 0), "step 10 gave its slot once 11 was committed");

            // an epoch that ends while its capture waits gives up at once and destroys nothing
            Future<SnapshotBuffer> cut =
                device.submit(() -> captureRetaining(store, job, 13, shard, committed, 20_000, ended));
            ended.set(true);
            store.wake();
            ExecutionException ex = assertThrows(ExecutionException.class, () -> cut.get(20, TimeUnit.SECONDS));
            assertTrue(ex.getCause().getMessage().contains("epoch ended"), ex.getCause().getMessage());
            assertEquals(List.of(12L, 11L), store.steps(JOB, 0));
        } finally {
            device.shutdownNow();
        }
    }

    /**
     * After a restore at the committed step 10, the snapshot of step 11 an earlier epoch ran ahead to
     * is garbage (it is never committed: the new epoch computes step 11 again), so the new epoch's
     * first capture takes its slot at once and keeps 10, which a second fault restores again. A
     * duplicate of the committed step (two epochs that each restored it) is freed the same way.
     */
    @Test
    @Timeout(30)
    void shouldOverwriteWhatAnEarlierEpochRanAheadToAndKeepTheCommittedStep() {
        SnapshotStore store = new SnapshotStore("own snapshots");
        List<ShardSnapshots.ChunkState> shard = shard();
        AtomicLong committed = new AtomicLong(10);
        AtomicBoolean ended = new AtomicBoolean();
        JobIdentity before = new JobIdentity(JOB, 2);
        captureRetaining(store, before, 10, shard, committed, 0, ended);
        captureRetaining(store, before, 11, shard, new AtomicLong(-1), 0, ended);
        JobIdentity after = new JobIdentity(JOB, 3);
        SnapshotBuffer first = captureRetaining(store, after, 11, shard, committed, 0, ended);
        assertEquals(3, first.epoch());
        assertEquals(List.of(11L, 10L), store.steps(JOB, 0));
        SnapshotBuffer committedOne = store.find(JOB, 0, 10);
        assertEquals(2, committedOne.epoch(), "the committed snapshot of the earlier epoch was kept");
        store.unpin(committedOne);

        // epoch 3 fails before committing 11; epoch 4 restores 10 and its rank holds 10 once more
        SnapshotStore twice = new SnapshotStore("own snapshots");
        captureRetaining(twice, before, 10, shard, committed, 0, ended);
        captureRetaining(twice, after, 10, shard, committed, 0, ended);
        SnapshotBuffer next = captureRetaining(twice, new JobIdentity(JOB, 4), 11, shard, committed, 0, ended);
        assertEquals(List.of(11L, 10L), twice.steps(JOB, 0));
        SnapshotBuffer kept = twice.find(JOB, 0, 10);
        assertEquals(3, kept.epoch(), "of two copies of the committed step, the newer is kept");
        twice.unpin(kept);
        assertEquals(4, next.epoch());
    }

    /** The buddy receives {@code sent} (a capture of the sending rank) as the exchange's receiver stores it. */
    private static void receive(SnapshotStore copies, SnapshotBuffer sent, long told) {
        SnapshotBuffer b = SnapshotRetention.beginCopy(copies, sent.lengthBytes(), sent.jobId(), sent.epoch(),
            sent.rank(), sent.step(), told, 0);
        b.write(0, sent.address(0, sent.lengthBytes()), sent.lengthBytes());
        copies.completeAsReceived(b);
    }

    /**
     * A buddy keeps the copy of the committed step after a restore: epoch 2 committed 10 and ran ahead
     * to 11, both copied to the buddy; epoch 3 restores 10 and the rank's new 11 overwrites the buddy's
     * copy of the earlier epoch's 11, not that of 10. Storing copies by recency kept two copies of 11,
     * and 10 was then in the rank's memory only, lost with its node before 11 committed.
     */
    @Test
    @Timeout(30)
    void shouldKeepTheBuddysCopyOfTheCommittedStepAfterARestore() {
        SnapshotStore own = new SnapshotStore("own snapshots");
        SnapshotStore copies = new SnapshotStore("copies of rank 0");
        List<ShardSnapshots.ChunkState> shard = shard();
        AtomicBoolean ended = new AtomicBoolean();
        JobIdentity before = new JobIdentity(JOB, 2);
        receive(copies, captureRetaining(own, before, 10, shard, new AtomicLong(9), 0, ended), 9);
        receive(copies, captureRetaining(own, before, 11, shard, new AtomicLong(10), 0, ended), 10);
        assertEquals(List.of(11L, 10L), copies.steps(JOB, 0));

        // epoch 3 restores 10; the buddy is not yet told of the commit (-1) or is (10): the same slot either way
        JobIdentity after = new JobIdentity(JOB, 3);
        SnapshotBuffer again = captureRetaining(own, after, 11, shard, new AtomicLong(10), 0, ended);
        for (long told : new long[] {-1, 10}) {
            SnapshotStore buddy = new SnapshotStore("copies of rank 0");
            for (long step : new long[] {10, 11}) {
                SnapshotBuffer held = copies.find(JOB, 0, step);
                receive(buddy, held, -1);
                copies.unpin(held);
            }
            receive(buddy, again, told);
            assertEquals(List.of(11L, 10L), buddy.steps(JOB, 0), "told=" + told);
            SnapshotBuffer committed = buddy.find(JOB, 0, 10);
            assertEquals(2, committed.epoch(), "the copy of the committed step was kept");
            buddy.unpin(committed);
            SnapshotBuffer latest = buddy.find(JOB, 0, 11);
            assertEquals(3, latest.epoch());
            buddy.unpin(latest);
        }

        // steady state: the copy of 12 takes the slot of 10, the buddy's commit notice late or not
        SnapshotBuffer next = captureRetaining(own, after, 12, shard, new AtomicLong(11), 0, ended);
        receive(copies, again, 10);
        receive(copies, next, 10);
        assertEquals(List.of(12L, 11L), copies.steps(JOB, 0));
    }

    @Test
    @Timeout(30)
    void shouldWaitForAPinnedSlotAndGiveUpNamingIt() {
        SnapshotStore store = new SnapshotStore("own snapshots");
        List<ShardSnapshots.ChunkState> shard = shard();
        SnapshotBuffer first = ShardSnapshots.capture(store, JOB, 0, 1, 10, shard, 0);
        store.pin(first); // being sent
        ShardSnapshots.capture(store, JOB, 0, 1, 11, shard, 0);
        SnapshotException e = assertThrows(SnapshotException.class,
            () -> ShardSnapshots.capture(store, JOB, 0, 1, 12, shard, TimeUnit.MILLISECONDS.toNanos(50)));
        assertTrue(e.getMessage().contains("still being sent") && e.getMessage().contains("step 10"), e.getMessage());
        assertEquals(List.of(11L, 10L), store.steps(JOB, 0), "the refused write destroyed nothing");
        store.unpin(first);
        ShardSnapshots.capture(store, JOB, 0, 1, 12, shard, 0);
        assertEquals(List.of(12L, 11L), store.steps(JOB, 0));
    }

    @Test
    @Timeout(30)
    void shouldRefuseACorruptSnapshotNamingTheCrc() {
        SnapshotStore store = new SnapshotStore("copies of rank 1");
        SnapshotBuffer b = ShardSnapshots.capture(store, JOB, 1, 1, 10, shard(), 0);
        long at = b.lengthBytes() - 7;
        b.putByte(at, (byte) (b.getByte(at) ^ 0x10));
        SnapshotException e = assertThrows(SnapshotException.class, () -> store.find(JOB, 1, 10));
        assertTrue(e.getMessage().contains("CRC32C mismatch"), e.getMessage());
    }

    @Test
    @Timeout(30)
    void shouldRefuseAnotherVersionNamingWhatIsHeld() {
        SnapshotStore store = new SnapshotStore("own snapshots");
        assertTrue(assertThrows(SnapshotException.class, () -> store.find(JOB, 0, 10)).getMessage().contains("empty"));
        ShardSnapshots.capture(store, JOB, 0, 4, 10, shard(), 0);
        String wrongStep = assertThrows(SnapshotException.class, () -> store.find(JOB, 0, 11)).getMessage();
        assertTrue(wrongStep.contains("epoch 4 step 10 rank 0"), wrongStep);
        assertThrows(SnapshotException.class, () -> store.find(JOB + 1, 0, 10));
        assertThrows(SnapshotException.class, () -> store.find(JOB, 1, 10));
    }

    @Test
    @Timeout(30)
    void shouldRefuseToRestoreIntoAnotherShape() {
        SnapshotStore store = new SnapshotStore("own snapshots");
        List<ShardSnapshots.ChunkState> shard = shard();
        ShardSnapshots.capture(store, JOB, 0, 1, 10, shard, 0);
        SnapshotBuffer b = store.find(JOB, 0, 10);
        List<ShardSnapshots.ChunkState> other = List.of(
            new ShardSnapshots.ChunkState(tensor(1000), tensor(1000), tensor(1000), 0),
            new ShardSnapshots.ChunkState(tensor(333), tensor(333), tensor(333), 0));
        String why = assertThrows(SnapshotException.class, () -> ShardSnapshots.restore(b, other)).getMessage();
        assertTrue(why.contains("chunk 1 holds 333 parameters and 111"), why);
        assertThrows(SnapshotException.class, () -> ShardSnapshots.restore(b, other.subList(0, 1)));
    }
}
