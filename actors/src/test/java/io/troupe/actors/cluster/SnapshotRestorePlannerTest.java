package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
    void shouldRestoreALostRankFromItsBuddysCopyOnTheSpare() {
        // ranks 0, 1, 2 on workers A, B, C; B's node is lost; the spare D takes rank 1; C keeps B's copy
        Map<String, long[]> inv = new HashMap<>();
        inv.put("A", new long[] {0, 7, 0, 6, 2, 7});
        inv.put("C", new long[] {2, 7, 1, 7, 1, 6});
        inv.put("D", new long[0]);
        var d = SnapshotRestorePlanner.plan(7, 5, List.of("A", "B", "C"), true, List.of("A", "C", "D"), 3, inv);
        assertTrue(d.fromMemory(), d.reason());
        assertEquals(List.of("A", "D", "C"), d.ranks());
        assertArrayEquals(new int[] {0, 2, 2}, d.holderOf());
        assertEquals(7, d.step());
    }

    @Test
    void shouldFallBackToDiskNamingWhy() {
        Map<String, long[]> inv = new HashMap<>();
        inv.put("A", new long[] {0, 7});
        inv.put("C", new long[] {2, 7, 1, 6}); // the copy of rank 1 is a step behind
        var d = SnapshotRestorePlanner.plan(7, 5, List.of("A", "B", "C"), true, List.of("A", "C", "D"), 3, inv);
        assertFalse(d.fromMemory());
        assertTrue(d.reason().contains("rank 1's snapshot of step 7"), d.reason());
        assertTrue(SnapshotRestorePlanner.plan(5, 5, List.of("A"), true, List.of("A"), 1, inv).reason()
            .contains("nothing committed since the disk checkpoint"));
        assertTrue(SnapshotRestorePlanner.plan(7, 5, List.of("A", "B", "C"), false, List.of("A", "C"), 2, inv).reason()
            .contains("layout changes"));
    }
}
