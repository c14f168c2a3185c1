package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class SnapshotRestorePlannerTest {

    @Test
    void shouldPickTheNextRankOnAnotherNodeAsBuddy() {
        assertArrayEquals(new int[] {1, 2, 3, 0}, SnapshotRestorePlanner.buddies(List.of("a", "b", "c", "d")));
        assertArrayEquals(new int[] {2, 2, 0}, SnapshotRestorePlanner.buddies(List.of("a", "a", "b")));
        assertArrayEquals(new int[] {-1, -1}, SnapshotRestorePlanner.buddies(List.of("a", "a")));
    }

    @Test
    void shouldSendNothingForARankWhoseReplicaIsOnAnotherNode() {
        // 2x2: ranks 0, 1 are stage 0 and 1 of replica 0, ranks 2, 3 of replica 1 (classes by stage)
        int[] classes = {0, 1, 0, 1};
        assertArrayEquals(new int[] {-1, -1, -1, -1},
            SnapshotRestorePlanner.buddies(List.of("a", "b", "c", "d"), classes));
        // both replicas of stage 1 on node b: they send to the next rank elsewhere
        assertArrayEquals(new int[] {-1, 2, -1, 0},
            SnapshotRestorePlanner.buddies(List.of("a", "b", "c", "b"), classes));
        // ZeRO: every rank its own class
        assertArrayEquals(new int[] {1, 2, 3, 0}, SnapshotRestorePlanner.buddies(List.of("a", "b", "c", "d"),
            new int[] {0, 1, 2, 3}));
    }

    @Test
    void shouldRestoreALostReplicaFromTheOtherReplicasSnapshot() {
        // 2x1: ranks 0 and 1 are replicas; B (rank 1) lost, the spare D takes rank 1 from A's own snapshot of rank 0
        Map<String, long[]> inv = new HashMap<>();
        inv.put("A", new long[] {0, 9, 0, 8});
        var d = SnapshotRestorePlanner.plan(9, 0, List.of("A", "B"), true, List.of("A", "D"), 2, new int[] {0, 0}, inv);
        assertTrue(d.fromMemory(), d.reason());
        assertEquals(List.of("A", "D"), d.ranks());
        assertArrayEquals(new int[] {0, 0}, d.holderOf());
        assertArrayEquals(new int[] {0, 0}, d.sourceOf());
    }

    @Test
    void shouldRestoreALostRankFromItsBuddysCopyOnTheSpare() {
        // ranks 0, 1, 2 on workers A, B, C; B's node is lost; the spare D takes rank 1; C keeps B's copy
        Map<String, long[]> inv = new HashMap<>();
        inv.put("A", new long[] {0, 7, 0, 6, 2, 7});
        inv.put("C", new long[] {2, 7, 1, 7, 1, 6});
        inv.put("D", new long[0]);
        var d = SnapshotRestorePlanner.plan(7, 5, List.of("A", "B", "C"), true, List.of("A", "C", "D"), 3,
            new int[] {0, 1, 2}, inv);
        if (!SnapshotRestorePlanner.RESTORE_FROM_BUDDY_COPIES) {
            assertFalse(d.fromMemory(), "buddy copies are not restored from in this build");
            assertTrue(d.reason().contains("rank 1") && d.reason().contains("buddy's copy"), d.reason());
            return;
        }
        assertTrue(d.fromMemory(), d.reason());
        assertEquals(List.of("A", "D", "C"), d.ranks());
        assertArrayEquals(new int[] {0, 2, 2}, d.holderOf());
        assertArrayEquals(new int[] {0, 1, 2}, d.sourceOf());
        assertEquals(7, d.step());
    }

    @Test
    void shouldFallBackToDiskNamingWhy() {
        Map<String, long[]> inv = new HashMap<>();
        inv.put("A", new long[] {0, 7});
        inv.put("C", new long[] {2, 7, 1, 6}); // the copy of rank 1 is a step behind
        var d = SnapshotRestorePlanner.plan(7, 5, List.of("A", "B", "C"), true, List.of("A", "C", "D"), 3,
            new int[] {0, 1, 2}, inv);
        assertFalse(d.fromMemory());
        assertTrue(d.reason().contains("rank 1's snapshot of step 7"), d.reason());
        assertTrue(SnapshotRestorePlanner.plan(5, 5, List.of("A"), true, List.of("A"), 1, new int[] {0}, inv).reason()
            .contains("nothing committed since the disk checkpoint"));
        assertTrue(SnapshotRestorePlanner.plan(7, 5, List.of("A", "B", "C"), false, List.of("A", "C"), 2,
            new int[] {0, 1, 2}, inv).reason()
            .contains("layout changes"));
    }

    @Test
    void shouldFindTheNewestStepEveryRankIsHeldForWhenANewCoordinatorLearnsItFromTheWorkers() {
        // 1x3 pipeline (every rank its own class); the node of B (rank 1) and of the old coordinator is gone.
        // A ran on to step 9 (slots 8, 9), C kept B's copies of 7 and 8 and its own 8, 9: step 8 is
        // the newest step all three ranks are held for, though no coordinator saw it commit
        Map<String, long[]> inv = new HashMap<>();
        inv.put("A", new long[] {0, 9, 0, 8, 2, 9});
        inv.put("C", new long[] {2, 9, 2, 8, 1, 8, 1, 7, 0, 8});
        inv.put("D", new long[0]);
        int[] pipeline = {0, 1, 2};
        assertEquals(8, SnapshotRestorePlanner.newestCovered(3, pipeline, inv));
        // the plan then restores step 8 with the spare D in rank 1, from C's copy, with A's rank kept
        List<String> byRank = new java.util.ArrayList<>(java.util.Arrays.asList("A", null, "C"));
        var d = SnapshotRestorePlanner.plan(8, 0, byRank, true, List.of("A", "C", "D"), 3, pipeline, inv);
        assertTrue(d.fromMemory(), d.reason());
        assertEquals(List.of("A", "D", "C"), d.ranks());
        assertArrayEquals(new int[] {0, 2, 2}, d.holderOf());
    }

    @Test
    void shouldCoverALostReplicaByItsStateClassAndFindNothingWhenARankIsHeldNowhere() {
        // 2x1 replicas (one class): the survivor's own snapshots cover both ranks
        Map<String, long[]> inv = new HashMap<>();
        inv.put("B", new long[] {1, 13, 1, 12});
        assertEquals(13, SnapshotRestorePlanner.newestCovered(2, new int[] {0, 0}, inv));
        // 1x2 stages: rank 0's shard is held nowhere
        assertEquals(-1, SnapshotRestorePlanner.newestCovered(2, new int[] {0, 1}, inv));
        assertEquals(-1, SnapshotRestorePlanner.newestCovered(2, new int[] {0, 1}, new HashMap<String, long[]>()));
        assertThrows(IllegalArgumentException.class,
            () -> SnapshotRestorePlanner.newestCovered(3, new int[] {0, 1}, inv));
    }
}
