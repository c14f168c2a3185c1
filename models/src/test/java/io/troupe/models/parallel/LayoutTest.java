package io.troupe.models.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class LayoutTest {

    @Test
    void shouldMatchTheWorkedRankTableOfTheJavadoc() {
        Layout l = new Layout(2, 2, 2, 1);
        int[][] table = {{0, 0, 0}, {0, 0, 1}, {0, 1, 0}, {0, 1, 1}, {1, 0, 0}, {1, 0, 1}, {1, 1, 0}, {1, 1, 1}};
        for (int rank = 0; rank < 8; rank++) {
            assertEquals(table[rank][0], l.ppIndex(rank), "pp_i of rank " + rank);
            assertEquals(table[rank][1], l.dpIndex(rank), "dp_i of rank " + rank);
            assertEquals(table[rank][2], l.tpIndex(rank), "tp_i of rank " + rank);
            assertEquals(rank, l.rank(table[rank][1], table[rank][0], table[rank][2]));
        }
        assertArrayEquals(new int[] {5, 7}, l.dataParallelGroup(5));
        assertArrayEquals(new int[] {1, 5}, l.pipelineGroup(5));
        assertArrayEquals(new int[] {4, 5}, l.tensorParallelGroup(5));
    }

    @Test
    void shouldParseAndRefuseLayouts() {
        assertEquals(new Layout(2, 2, 1, 1), Layout.parse("2x2", 1));
        assertEquals(new Layout(1, 4, 2, 2), Layout.parse("1x4x2", 2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Layout.parse("2by2", 1));
        assertTrue(e.getMessage().contains("2by2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Layout.parse("0x2", 1));
        assertTrue(e.getMessage().contains("dp=0"), e.getMessage());
    }

    /** What toString writes, a checkpoint manifest's layout, reads back as the same layout, virtual stages too. */
    @Test
    void shouldReadBackTheLayoutItWrites() {
        for (Layout l : new Layout[] {new Layout(1, 1, 1, 1), new Layout(2, 2, 1, 1), new Layout(1, 2, 1, 2),
            new Layout(2, 1, 2, 3)}) {
            assertEquals(l, Layout.parseWritten(l.toString()), l.toString());
        }
        assertEquals(new Layout(1, 2, 1, 1), Layout.parseWritten("1x2"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> Layout.parseWritten("1x2x1 (v=x)"));
        assertTrue(e.getMessage().contains("1x2x1 (v=x)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Layout.parseWritten("1x2x1 (v=0)"));
        assertTrue(e.getMessage().contains("v=0"), e.getMessage());
    }

    @Test
    void shouldBalancePartitionsAndCoverEveryBlock() {
        GptConfig cfg = new GptConfig("t", 256, 64, 8, 4, 32, 1e-5f);
        for (int stages = 1; stages <= 8; stages++) {
            StagePartition p = StagePartition.balanced(cfg, stages);
            assertEquals(stages, p.stages());
            assertEquals(8, Arrays.stream(p.blocksPerStage()).sum(), "stages=" + stages + ": " + p);
            for (int s = 0; s < stages; s++) {
                assertTrue(p.blocksPerStage()[s] >= 1, "every stage holds a block: " + p);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> StagePartition.balanced(cfg, 9));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> StagePartition.explicit("3,3",
            cfg, 2));
        assertTrue(e.getMessage().contains("covers 6 blocks") && e.getMessage().contains("n_layer=8"), e.getMessage());
        assertEquals(3, StagePartition.explicit("3,5", cfg, 2).endBlock(0));
    }
}
