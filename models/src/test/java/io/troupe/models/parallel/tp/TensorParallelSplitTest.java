package io.troupe.models.parallel.tp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Slicing a full tensor into tp shards and reassembling it is exact, for every split the model uses. */
class TensorParallelSplitTest {

    private static float[] iota(int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = i;
        }
        return x;
    }

    @Test
    void shouldReassembleExactlyWhatItSliced() {
        int[][] shapes = {{12, 8}, {24, 4}, {6, 12}, {48}, {4, 6, 12}};
        for (int[] shape : shapes) {
            int n = 1;
            for (int d : shape) {
                n *= d;
            }
            float[] full = iota(n);
            for (int dim = 0; dim < shape.length; dim++) {
                for (int parts : new int[] {1, 3}) {
                    for (int tp : new int[] {1, 2, 4}) {
                        TensorParallelSplit s = new TensorParallelSplit(dim, parts);
                        if (shape[dim] % (parts * tp) != 0) {
                            continue;
                        }
                        float[][] shards = new float[tp][];
                        for (int k = 0; k < tp; k++) {
                            shards[k] = s.shard(full, shape, tp, k);
                            assertTrue(shards[k].length == n / tp, "shard size");
                        }
                        assertArrayEquals(full, s.unshard(shards, shape), s + " tp=" + tp);
                    }
                }
            }
        }
    }

    @Test
    void shouldGiveEachMemberTheRowsOfItsHeadsInAFusedQkvWeight() {
        // (3C, C) with C = 4, tp = 2: member 1 holds q rows 2..3, k rows 6..7, v rows 10..11.
        float[] full = iota(12 * 4);
        float[] m1 = new TensorParallelSplit(0, 3).shard(full, new int[] {12, 4}, 2, 1);
        float[] expect = new float[6 * 4];
        int[] rows = {2, 3, 6, 7, 10, 11};
        for (int i = 0; i < rows.length; i++) {
            for (int c = 0; c < 4; c++) {
                expect[i * 4 + c] = rows[i] * 4 + c;
            }
        }
        assertArrayEquals(expect, m1);
    }

    @Test
    void shouldGiveEachMemberAColumnBlockWhenSplitAlongTheInputDimension() {
        float[] full = iota(3 * 8);
        float[] m1 = TensorParallelSplit.along(1).shard(full, new int[] {3, 8}, 2, 1);
        assertArrayEquals(new float[] {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23}, m1);
    }

    @Test
    void shouldRefuseADimensionThatDoesNotDivideNamingTheNumbers() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> new TensorParallelSplit(0, 3).localShape("blocks.0.attn.qkv.weight", new int[] {12, 4}, 8));
        assertTrue(e.getMessage().contains("size=12") && e.getMessage().contains("tp=8"), e.getMessage());
    }
}
