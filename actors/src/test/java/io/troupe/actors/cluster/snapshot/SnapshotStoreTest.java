package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class SnapshotStoreTest {
    private static final int JOB = 0x5eed;
    private final CpuDevice device = new CpuDevice(1);
    private final List<Tensor> tensors = new ArrayList<>();
    private final Random random = new Random(7);

    @AfterEach
    void close() {
        tensors.forEach(Tensor::close);
        device.close();
    }

    private Tensor tensor(int n) {
        Tensor t = device.allocate(io.troupe.runtime.tensor.DType.F32, n);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = random.nextFloat() - 0.5f;
        }
        device.copyFromHost(v, t);
        tensors.add(t);
        return t;
    }

    /** Two chunks, the second with a ZeRO-like moment segment smaller than its parameters. */
    private List<ShardSnapshots.ChunkState> shard() {
        return List.of(new ShardSnapshots.ChunkState(tensor(1000), tensor(1000), tensor(1000), 12),
            new ShardSnapshots.ChunkState(tensor(333), tensor(111), tensor(111), 12));
    }

    private List<ShardSnapshots.ChunkState> zerosLike(List<ShardSnapshots.ChunkState> like) {
        List<ShardSnapshots.ChunkState> out = new ArrayList<>();
        for (ShardSnapshots.ChunkState c : like) {
            out.add(new ShardSnapshots.ChunkState(tensor((int) c.params().numel()), tensor((int) c.firstMoment().numel()),
                tensor((int) c.secondMoment().numel()), 0));
        }
        return out;
    }

    private static void assertSameState(List<ShardSnapshots.ChunkState> want, List<ShardSnapshots.ChunkState> got) {
        for (int c = 0; c < want.size(); c++) {
            assertArrayEquals(want.get(c).params().toFloatArray(), got.get(c).params().toFloatArray());
            assertArrayEquals(want.get(c).firstMoment().toFloatArray(), got.get(c).firstMoment().toFloatArray());
            assertArrayEquals(want.get(c).secondMoment().toFloatArray(), got.get(c).secondMoment().toFloatArray());
        }
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
        b.view().putByte((int) at, (byte) (b.view().getByte((int) at) ^ 0x10));
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
        List<ShardSnapshots.ChunkState> other = List.of(new ShardSnapshots.ChunkState(tensor(1000), tensor(1000), tensor(1000), 0),
            new ShardSnapshots.ChunkState(tensor(333), tensor(333), tensor(333), 0));
        String why = assertThrows(SnapshotException.class, () -> ShardSnapshots.restore(b, other)).getMessage();
        assertTrue(why.contains("chunk 1 holds 333 parameters and 111"), why);
        assertThrows(SnapshotException.class, () -> ShardSnapshots.restore(b, other.subList(0, 1)));
    }
}
