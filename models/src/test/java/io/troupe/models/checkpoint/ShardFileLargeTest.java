package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A shard file past 2 GiB (about 2.4 GB: 200 M parameters with their moments) is written, committed,
 * found by offsets past 2^31 and loaded whole. Needs 6 GiB of free disk and a 3 GiB heap; skipped,
 * saying why, without them.
 */
@Tag("slow")
@Timeout(900)
class ShardFileLargeTest {
    private static final int ENTRIES = 8;
    private static final int NUMEL = 25_000_000;
    private static final String SHARD = "shard-g00.bin";

    @TempDir
    Path tmp;

    /** Element {@code i} of pattern {@code k} (0 to 2): exact in float32, and different in every array next to it. */
    private static float value(int k, int i) {
        return (float) ((k << 22) + (i & ((1 << 22) - 1)));
    }

    /** Pattern of entry {@code e}'s array {@code which} (0 param, 1 m, 2 v): each array differs from its neighbours. */
    private static int pattern(int e, int which) {
        return (e + which) % 3;
    }

    private Path writeCheckpoint() {
        float[][] patterns = new float[3][NUMEL];
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < NUMEL; i++) {
                patterns[k][i] = value(k, i);
            }
        }
        ShardState s = new ShardState(9);
        for (int e = 0; e < ENTRIES; e++) {
            s.put(new ShardState.Entry("blocks." + e + ".mlp.c_fc.weight", new int[] {5000, 5000},
                patterns[pattern(e, 0)], patterns[pattern(e, 1)], patterns[pattern(e, 2)]));
        }
        Manifest m = new Manifest(Manifest.FORMAT, 9, 9, 1, 1, "1x1x1", new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f),
            "test", List.of());
        return Checkpoints.write(tmp, m, Map.of(SHARD, s));
    }

    @Test
    void shouldWriteAndLoadAShardFileLargerThan2GiB() throws IOException {
        long free = Files.getFileStore(tmp).getUsableSpace();
        long heap = Runtime.getRuntime().maxMemory();
        String skip = free < 6L << 30 ? "needs 6 GiB free under " + tmp + ", has " + free + " bytes"
            : heap < 2900L << 20 ? "needs a heap of 3 GiB to load the shard, has " + heap + " bytes" : null;
        if (skip != null) {
            System.out.println("ShardFileLargeTest skipped: " + skip);
        }
        Assumptions.assumeTrue(skip == null, skip);

        long t0 = System.nanoTime();
        Path dir = writeCheckpoint();
        long t1 = System.nanoTime();
        Path shard = dir.resolve(SHARD);
        long bytes = Files.size(shard);
        assertTrue(bytes > Integer.MAX_VALUE, "a file past 2 GiB: " + bytes);

        try (FileChannel ch = FileChannel.open(shard, StandardOpenOption.READ)) {
            ShardFileIndex idx = ShardFileIndex.scan(ch, shard);
            ShardFileIndex.Location last = idx.entries.get("blocks." + (ENTRIES - 1) + ".mlp.c_fc.weight");
            long at = last.arrayOffsetBytes(2) + 4L * (NUMEL - 2);
            assertTrue(at > Integer.MAX_VALUE, "an offset past 2^31: " + at);
            ByteBuffer tail = ShardFileIndex.read(ch, at, 8, bytes, shard, "payload");
            int k = pattern(ENTRIES - 1, 2);
            assertEquals(value(k, NUMEL - 2), tail.getFloat());
            assertEquals(value(k, NUMEL - 1), tail.getFloat());
        }

        Checkpoints.Loaded loaded = Checkpoints.load(dir);
        long t2 = System.nanoTime();
        ShardState back = loaded.shards().get(SHARD);
        assertEquals(ENTRIES, back.entries().size());
        int e = 0;
        for (ShardState.Entry entry : back.entries().values()) {
            float[][] arrays = {entry.param(), entry.m(), entry.v()};
            for (int which = 0; which < 3; which++) {
                int k = pattern(e, which);
                for (int i = 0; i < NUMEL; i++) {
                    if (arrays[which][i] != value(k, i)) {
                        throw new AssertionError(entry.name() + " array " + which + " element " + i + ": "
                            + arrays[which][i] + ", expected " + value(k, i));
                    }
                }
            }
            e++;
        }
        System.out.printf("shard file of %d bytes: written and committed in %.1f s, loaded and checked in %.1f s%n",
            bytes, (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }
}
