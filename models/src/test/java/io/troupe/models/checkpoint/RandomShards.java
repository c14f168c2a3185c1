package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;

/** Random shards for the codec's tests, and the check that two shards hold the same bits. */
final class RandomShards {
    private RandomShards() {
    }

    /**
     * A shard of {@code entries} tensors of rank 1 to 3 with up to {@code maxNumel} elements each, random
     * names (some with multi-byte UTF-8) and Gaussian values.
     */
    static ShardState random(Random rnd, int entries, int maxNumel) {
        ShardState s = new ShardState(rnd.nextInt(1000));
        for (int i = 0; i < entries; i++) {
            int rank = 1 + rnd.nextInt(3);
            int[] shape = new int[rank];
            int n = 1;
            for (int d = 0; d < rank; d++) {
                shape[d] = 1 + rnd.nextInt(Math.max(1, (int) Math.pow(maxNumel, 1.0 / rank)));
                n *= shape[d];
            }
            float[][] arrays = new float[3][n];
            for (float[] a : arrays) {
                for (int k = 0; k < n; k++) {
                    a[k] = (float) rnd.nextGaussian();
                }
            }
            String suffix = rnd.nextBoolean() ? ".wé" : ".attn.c_proj.weight";
            String name = "blocks." + i + suffix + "x".repeat(rnd.nextInt(9));
            s.put(new ShardState.Entry(name, shape, arrays[0], arrays[1], arrays[2]));
        }
        return s;
    }

    /** Asserts that {@code actual} holds the step, names, shapes and every float's bits of {@code expected}. */
    static void assertSameShard(ShardState expected, ShardState actual) {
        assertEquals(expected.optimizerStep(), actual.optimizerStep());
        assertEquals(expected.entries().keySet().stream().toList(), actual.entries().keySet().stream().toList());
        for (ShardState.Entry e : expected.entries().values()) {
            ShardState.Entry a = actual.entries().get(e.name());
            assertArrayEquals(e.shape(), a.shape(), e.name());
            assertArrayEquals(e.param(), a.param(), e.name());
            assertArrayEquals(e.m(), a.m(), e.name());
            assertArrayEquals(e.v(), a.v(), e.name());
        }
    }
}
