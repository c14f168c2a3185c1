package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The shard file's size: known before encoding, and a shard too large for one file refused by its size. */
class ShardCodecTest {
    private static ShardState random(Random rnd, int entries) {
        ShardState s = new ShardState(rnd.nextInt(1000));
        for (int i = 0; i < entries; i++) {
            int rows = 1 + rnd.nextInt(40);
            int cols = 1 + rnd.nextInt(3000);
            int n = rows * cols;
            float[][] arrays = new float[3][n];
            for (float[] a : arrays) {
                for (int k = 0; k < n; k++) {
                    a[k] = (float) rnd.nextGaussian();
                }
            }
            s.put(new ShardState.Entry("blocks." + i + ".wé", new int[] {rows, cols}, arrays[0], arrays[1], arrays[2]));
        }
        return s;
    }

    @Test
    void shouldKnowTheEncodedSizeBeforeEncodingAndDecodeWhatItEncoded() {
        Random rnd = new Random(11);
        for (int trial = 0; trial < 20; trial++) {
            ShardState s = random(rnd, 1 + rnd.nextInt(6));
            byte[] data = ShardCodec.encode(s);
            assertEquals(data.length, ShardCodec.encodedBytes(s));
            ShardState back = ShardCodec.decode(data, "shard.bin");
            assertEquals(s.optimizerStep(), back.optimizerStep());
            for (ShardState.Entry e : s.entries().values()) {
                ShardState.Entry b = back.entries().get(e.name());
                assertArrayEquals(e.shape(), b.shape());
                assertArrayEquals(e.param(), b.param());
                assertArrayEquals(e.v(), b.v());
            }
        }
    }

    @Test
    void shouldRefuseAShardLargerThanAFileHoldsNamingItsSize() {
        ShardState s = random(new Random(5), 3);
        long bytes = ShardCodec.encodedBytes(s);
        assertEquals(bytes, ShardCodec.encode(s, bytes).length, "exactly at the limit is written");
        CheckpointException e = assertThrows(CheckpointException.class, () -> ShardCodec.encode(s, bytes - 1));
        assertTrue(e.getMessage().contains(bytes + " bytes, more than the " + (bytes - 1)), e.getMessage());
        assertTrue(ShardCodec.MAX_FILE_BYTES < Integer.MAX_VALUE, "one array holds the whole file");
    }
}
