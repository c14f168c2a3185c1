package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The host half of the deterministic embedding backward, checked without a GPU. */
@Timeout(30)
class EmbeddingGroupingTest {

    @Test
    void shouldGroupRowsByIdStablyAndCompletely() {
        EmbeddingGrouping g = new EmbeddingGrouping();
        Random rnd = new Random(42);
        for (int trial = 0; trial < 20; trial++) {
            int rows = 1 + rnd.nextInt(500);
            int tableRows = 1 + rnd.nextInt(80);
            int[] ids = g.idsBuffer(rows);
            for (int r = 0; r < rows; r++) {
                ids[r] = rnd.nextInt(tableRows);
            }
            int unique = g.pack(rows, tableRows);
            int[] p = g.packed();
            boolean[] seen = new boolean[rows];
            int previousId = -1;
            for (int u = 0; u < unique; u++) {
                int id = p[rows + unique + 1 + u];
                assertTrue(id > previousId, "unique ids ascend");
                previousId = id;
                int from = p[rows + u];
                int to = p[rows + u + 1];
                assertTrue(to > from, "every listed id has rows");
                for (int i = from; i < to; i++) {
                    int r = p[i];
                    assertEquals(id, ids[r], "row " + r + " filed under id " + id);
                    assertTrue(i == from || p[i - 1] < r, "rows of one id ascend (stable)");
                    seen[r] = true;
                }
            }
            assertEquals(rows, p[rows + unique]);
            for (int r = 0; r < rows; r++) {
                assertTrue(seen[r], "row " + r + " grouped");
            }
        }
    }

    @Test
    void shouldNameAnOutOfRangeId() {
        EmbeddingGrouping g = new EmbeddingGrouping();
        int[] ids = g.idsBuffer(3);
        ids[0] = 1;
        ids[1] = 12;
        ids[2] = 0;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> g.pack(3, 10));
        assertTrue(e.getMessage().contains("id=12"), e.getMessage());
    }
}
