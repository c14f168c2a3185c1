package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.ParallelParameterLayout;
import io.troupe.models.parallel.StagePartition;
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
 * A restore told to stop (its epoch aborted while it is built) ends between the tensors and byte
 * ranges it reads, naming why, rather than after the whole checkpoint: before the first read when
 * already told, after the first tensor when told then, inside a tensor read in pieces. A read never
 * told to stop restores every parameter and moment bit for bit.
 */
@Timeout(60)
class StoppedCheckpointReadTest {
    private static final GptConfig CFG = new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f);
    private static final long STEP = 5;
    private static final String WHY = "the abort of job 00000007 epoch 3: cancelled";

    @TempDir
    Path root;

    private final ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, 1),
        false);
    private ParallelParameterLayout.Local local;
    private ShardState written;
    private Path ckpt;

    /** A one-stage, tp 1 checkpoint of random parameters and moments. */
    @BeforeEach
    void write() {
        local = layout.local(0, 1, 0);
        Random rnd = new Random(11);
        written = new ShardState(STEP);
        for (ParallelParameterLayout.Local.Entry e : local.entries()) {
            float[][] a = new float[3][(int) e.parameter().localNumel(1)];
            for (float[] x : a) {
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) rnd.nextGaussian();
                }
            }
            written.put(new ShardState.Entry(e.parameter().name(), e.shape(), a[0], a[1], a[2]));
        }
        Path dir = root.resolve("ckpt");
        Manifest.FileEntry f = Checkpoints.writeShard(dir, STEP, ShardedCheckpointReader.shardFileName(0, 1, 0),
            written);
        ckpt = Checkpoints.commit(dir, new Manifest(Manifest.FORMAT, STEP, STEP, 1, 4, "1x1x1", CFG, "markov",
            List.of()), List.of(f));
    }

    private String name(int entry) {
        return local.entries().get(entry).parameter().name();
    }

    /** Payload bytes of the first tensor: its parameters and both moments. */
    private long firstTensorBytes() {
        return 12L * local.entries().get(0).parameter().localNumel(1);
    }

    @Test
    void shouldRestoreEveryTensorBitwiseWhenNeverToldToStop() {
        try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt)) {
            RandomShards.assertSameShard(written, r.read(local, () -> null));
            assertEquals(12L * local.numel(), r.bytesRead(), "every payload byte read once");
        }
    }

    @Test
    void shouldReadNothingWhenAlreadyToldToStop() {
        try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> r.read(local, () -> WHY));
            assertTrue(e.getMessage().endsWith("stopped at parameter '" + name(0) + "' after 0 payload bytes: " + WHY),
                e.getMessage());
            assertEquals(0, r.bytesRead());
        }
    }

    @Test
    void shouldStopAfterTheFirstTensorWhenToldThenAndReadOnAfterwards() {
        try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt)) {
            long first = firstTensorBytes();
            Supplier<String> stop = () -> r.bytesRead() >= first ? WHY : null;
            CheckpointException e = assertThrows(CheckpointException.class, () -> r.read(local, stop));
            assertTrue(e.getMessage().contains("stopped at parameter '" + name(1) + "' after " + first
                + " payload bytes: " + WHY), e.getMessage());
            assertEquals(first, r.bytesRead(), "nothing read past the first tensor");
            // the stop belonged to that read alone: the next one restores everything
            RandomShards.assertSameShard(written, r.read(local));
        }
    }

    @Test
    void shouldStopInsideATensorReadInPieces() {
        try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt, 256)) {
            AtomicInteger asked = new AtomicInteger();
            // asked before the tensor, its first checksum block and each 256-byte piece: the fifth question
            // comes a piece or two into the first tensor
            Supplier<String> stop = () -> asked.incrementAndGet() >= 5 ? WHY : null;
            CheckpointException e = assertThrows(CheckpointException.class, () -> r.read(local, stop));
            assertTrue(e.getMessage().contains("stopped at parameter '" + name(0) + "' after " + r.bytesRead()
                + " payload bytes") && e.getMessage().endsWith(WHY), e.getMessage());
            assertEquals(5, asked.get());
            System.out.printf("stopped after %d of the first tensor's %d bytes%n", r.bytesRead(), firstTensorBytes());
            assertTrue(r.bytesRead() > 0 && r.bytesRead() <= 512, "stopped within the first tensor: " + r.bytesRead());
        }
    }
}
