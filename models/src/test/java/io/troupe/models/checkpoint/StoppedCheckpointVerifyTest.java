package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A checkpoint in the older shard format (no block checksums) is verified whole before a restore reads from it; a
 * verification told to stop (its epoch aborted while it is built) ends before its next read of at most 4 MiB,
 * naming the file and the bytes of it read by then, as a stopped read names its parameter. Real files: a first
 * shard of three such reads and a little more, a second one of a few KiB.
 */
@Timeout(60)
class StoppedCheckpointVerifyTest {
    private static final GptConfig CFG = new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f);
    private static final long STEP = 5;
    private static final String WHY = "the abort of job 00000007 epoch 3: cancelled";
    private static final int READ_BYTES = ShardFileReader.DEFAULT_BUFFER_BYTES;
    private static final String FIRST = "shard-g00.bin";
    private static final String SECOND = "shard-g01.bin";

    @TempDir
    Path root;

    private Path ckpt;
    private long firstBytes;
    private long secondBytes;

    /** A two-stage checkpoint of random parameters and moments, rewritten in the older format. */
    @BeforeEach
    void write() throws IOException {
        Random rnd = new Random(13);
        Path dir = root.resolve("ckpt");
        // 12 bytes an element (the parameter and both moments): three full reads and a few bytes more
        List<Manifest.FileEntry> files = List.of(
            Checkpoints.writeShard(dir, STEP, FIRST, shard(rnd, "blocks.0.mlp.c_fc.weight", READ_BYTES / 4 + 16)),
            Checkpoints.writeShard(dir, STEP, SECOND, shard(rnd, "blocks.1.mlp.c_fc.weight", 1000)));
        ckpt = Checkpoints.commit(dir, new Manifest(Manifest.FORMAT, STEP, STEP, 1, 4, "1x2x1", CFG, "markov",
            List.of()), files);
        OldFormatCheckpoints.rewriteAsVersionOne(ckpt);
        firstBytes = Files.size(ckpt.resolve(FIRST));
        secondBytes = Files.size(ckpt.resolve(SECOND));
        try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt)) {
            assertFalse(r.verifiesPartialReads(), "the older format: verified whole before a restore");
        }
        assertTrue(firstBytes > 3L * READ_BYTES && firstBytes < 4L * READ_BYTES, "first shard: " + firstBytes);
    }

    private static ShardState shard(Random rnd, String name, int numel) {
        float[][] a = new float[3][numel];
        for (float[] x : a) {
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
        }
        ShardState s = new ShardState(STEP);
        s.put(new ShardState.Entry(name, new int[] {numel}, a[0], a[1], a[2]));
        return s;
    }

    /** A stop that answers {@code why} from its {@code at}-th question on (1-based), counting them. */
    private static Supplier<String> stopAt(int at, AtomicInteger asked) {
        return () -> asked.incrementAndGet() >= at ? WHY : null;
    }

    @Test
    void shouldVerifyEveryFileWholeWhenNeverToldToStop() {
        AtomicInteger asked = new AtomicInteger();
        Manifest m = Checkpoints.verify(ckpt, stopAt(Integer.MAX_VALUE, asked));
        assertEquals(List.of(FIRST, SECOND), m.files().stream().map(Manifest.FileEntry::name).toList());
        // asked before each read: four of the first file, one of the second, and one per file finding its end
        assertEquals(4 + 1 + 2, asked.get());
    }

    @Test
    void shouldVerifyNothingWhenAlreadyToldToStop() {
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.verify(ckpt, () -> WHY));
        assertEquals("verification of checkpoint " + ckpt + " stopped at file '" + FIRST + "' after 0 of its "
            + firstBytes + " bytes: " + WHY, e.getMessage());
    }

    @Test
    void shouldStopInsideAFileBeforeItsNextRead() {
        AtomicInteger asked = new AtomicInteger();
        CheckpointException e = assertThrows(CheckpointException.class,
            () -> Checkpoints.verify(ckpt, stopAt(3, asked)));
        assertEquals("verification of checkpoint " + ckpt + " stopped at file '" + FIRST + "' after " + 2L * READ_BYTES
            + " of its " + firstBytes + " bytes: " + WHY, e.getMessage());
        assertEquals(3, asked.get(), "nothing read after the question that stopped it");
        // the stop belonged to that verification alone: the checkpoint is intact and verifies whole
        assertEquals(STEP, Checkpoints.verify(ckpt).step());
    }

    @Test
    void shouldStopBetweenFilesNamingTheNextOne() {
        AtomicInteger asked = new AtomicInteger();
        // the first file's five questions (four reads and its end) go on; the second file's first one stops
        CheckpointException e = assertThrows(CheckpointException.class,
            () -> Checkpoints.verify(ckpt, stopAt(6, asked)));
        assertEquals("verification of checkpoint " + ckpt + " stopped at file '" + SECOND + "' after 0 of its "
            + secondBytes + " bytes: " + WHY, e.getMessage());
    }

    @Test
    void shouldStopWithinOneReadOfASmallBuffer() {
        AtomicInteger asked = new AtomicInteger();
        CheckpointException e = assertThrows(CheckpointException.class,
            () -> Checkpoints.verify(ckpt, stopAt(101, asked), 4096));
        assertTrue(e.getMessage().contains("stopped at file '" + FIRST + "' after " + 100L * 4096 + " of its "),
            e.getMessage());
    }
}
