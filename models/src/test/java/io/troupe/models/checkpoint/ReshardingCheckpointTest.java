package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.ParallelParameter;
import io.troupe.models.parallel.ParallelParameterLayout;
import io.troupe.models.parallel.StagePartition;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A checkpoint written as the shards of one layout reads back as the shards of another, exactly:
 * tp 2 into tp 1 and back, tp 2 × pp 2 into tp 4 × pp 1, with every parameter and both AdamW
 * moments compared bit for bit against the slice of the full tensor it stands for.
 */
@Timeout(60)
class ReshardingCheckpointTest {
    private static final GptConfig CFG = new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f);
    private static final long STEP = 7;

    @TempDir
    Path root;

    /** Full tensors {param, m, v} of every parameter, by name. */
    private static Map<String, float[][]> fullModel(ParallelParameterLayout layout) {
        Random rnd = new Random(42);
        Map<String, float[][]> out = new HashMap<>();
        for (ParallelParameter p : layout.parameters()) {
            float[][] a = new float[3][(int) p.globalNumel()];
            for (float[] x : a) {
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) rnd.nextGaussian();
                }
            }
            out.put(p.name(), a);
        }
        return out;
    }

    private static float[][] expected(ParallelParameter p, float[][] full, int tp, int tpIndex) {
        if (!(p.tp() instanceof io.troupe.models.parallel.TensorParallelPlacement.Split)) {
            return full;
        }
        float[][] out = new float[3][];
        for (int w = 0; w < 3; w++) {
            out[w] = p.split().shard(full[w], p.globalShape(), tp, tpIndex);
        }
        return out;
    }

    /** Writes the model as the shards of {@code stages × tp} and commits it with that layout. */
    private Path write(Map<String, float[][]> full, int stages, int tp) {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, stages), false);
        Path dir = root.resolve("pp" + stages + "tp" + tp);
        List<Manifest.FileEntry> files = new ArrayList<>();
        for (int g = 0; g < stages; g++) {
            for (int i = 0; i < tp; i++) {
                ShardState s = new ShardState(STEP);
                for (ParallelParameterLayout.Local.Entry e : layout.local(g, tp, i).entries()) {
                    float[][] x = expected(e.parameter(), full.get(e.parameter().name()), tp, i);
                    s.put(new ShardState.Entry(e.parameter().name(), e.shape(), x[0], x[1], x[2]));
                }
                files.add(Checkpoints.writeShard(dir, STEP, ShardedCheckpointReader.shardFileName(g, tp, i), s));
            }
        }
        Manifest m = new Manifest(Manifest.FORMAT, STEP, STEP, 1, 4, "1x" + stages + "x" + tp, CFG, "markov",
            List.of());
        return Checkpoints.commit(dir, m, files);
    }

    /** Reads every (stage, member) of {@code stages × tp} and checks it against the full model. */
    private long readAndCheck(Path ckpt, Map<String, float[][]> full, int stages, int tp) {
        return readAndCheck(ckpt, full, stages, tp, ShardedCheckpointReader.SCRATCH_BYTES);
    }

    /** As {@link #readAndCheck(Path, Map, int, int)}, the payloads read through a buffer of {@code scratchBytes}. */
    private long readAndCheck(Path ckpt, Map<String, float[][]> full, int stages, int tp, int scratchBytes) {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, stages), false);
        long bytes = 0;
        int checked = 0;
        for (int g = 0; g < stages; g++) {
            for (int i = 0; i < tp; i++) {
                try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt, scratchBytes)) {
                    ParallelParameterLayout.Local local = layout.local(g, tp, i);
                    ShardState s = r.read(local);
                    assertEquals(STEP, s.optimizerStep());
                    for (ParallelParameterLayout.Local.Entry e : local.entries()) {
                        ShardState.Entry got = s.entries().get(e.parameter().name());
                        float[][] want = expected(e.parameter(), full.get(e.parameter().name()), tp, i);
                        assertArrayEquals(e.shape(), got.shape(), e.parameter().name());
                        assertArrayEquals(want[0], got.param(), e.parameter().name() + " param, stage " + g
                            + " tp_i " + i);
                        assertArrayEquals(want[1], got.m(), e.parameter().name() + " m");
                        assertArrayEquals(want[2], got.v(), e.parameter().name() + " v");
                        checked++;
                    }
                    bytes += r.bytesRead();
                }
            }
        }
        assertEquals(layout.parameters().size(), checked / tp, "every parameter checked on every member");
        return bytes;
    }

    @Test
    void shouldLoadATensorParallelTwoCheckpointIntoOneDeviceAndBack() {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, 1), false);
        Map<String, float[][]> full = fullModel(layout);
        readAndCheck(write(full, 1, 2), full, 1, 1);
        readAndCheck(write(full, 1, 1), full, 1, 2);
    }

    @Test
    void shouldLoadAcrossPipelineAndTensorParallelChangesAtOnce() {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, 1), false);
        Map<String, float[][]> full = fullModel(layout);
        readAndCheck(write(full, 2, 2), full, 1, 4);
        readAndCheck(write(full, 1, 4), full, 2, 2);
    }

    /**
     * A run longer than the reader's buffer is read in pieces, and a block larger than it is checked
     * on its own: any buffer gives the same shards.
     */
    @Test
    void shouldReadTheSameShardsThroughABufferOfAnySize() {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, 1), false);
        Map<String, float[][]> full = fullModel(layout);
        Path tp2 = write(full, 1, 2);
        Path tp1 = write(full, 1, 1);
        for (int scratchBytes : new int[] {4, 36, 1000, 64 * 1024 + 4}) {
            long a = readAndCheck(tp2, full, 1, 1, scratchBytes);
            long b = readAndCheck(tp1, full, 1, 2, scratchBytes);
            assertEquals(readAndCheck(tp2, full, 1, 1) + readAndCheck(tp1, full, 1, 2), a + b, "bytes read");
        }
    }

    @Test
    void shouldReadOnlyTheSliceEachMemberNeeds() {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, 1), false);
        Map<String, float[][]> full = fullModel(layout);
        Path ckpt = write(full, 1, 1);
        long wholeBytes = 12L * layout.local(0, 1, 0).numel();
        try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt)) {
            r.read(layout.local(0, 2, 1));
            long replicated = 0;
            for (ParallelParameter p : layout.parameters()) {
                if (!(p.tp() instanceof io.troupe.models.parallel.TensorParallelPlacement.Split)) {
                    replicated += 12 * p.globalNumel();
                }
            }
            long expect = (wholeBytes - replicated) / 2 + replicated;
            System.out.printf("tp 1 checkpoint of %d payload bytes: tp member 1 of 2 read %d bytes%n", wholeBytes,
                r.bytesRead());
            assertEquals(expect, r.bytesRead(), "half of every split tensor, all of every replicated one");
            assertTrue(r.bytesRead() < wholeBytes * 0.6);
        }
    }

    /**
     * A partial read checks what it reads: one byte flipped on disk inside a split tensor (the manifest
     * untouched) is refused by the block checksum of the member that reads it, naming file and block.
     */
    @Test
    void shouldRefuseACorruptByteInTheSliceItReadsNamingTheBlock() throws java.io.IOException {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, 1), false);
        Map<String, float[][]> full = fullModel(layout);
        Path ckpt = write(full, 1, 1);
        Path shard = ckpt.resolve(ShardedCheckpointReader.shardFileName(0, 1, 0));
        byte[] bytes = java.nio.file.Files.readAllBytes(shard);
        int at = bytes.length / 2;
        bytes[at] ^= 0x10;
        java.nio.file.Files.write(shard, bytes);
        CheckpointException e = assertThrows(CheckpointException.class, () -> {
            for (int i = 0; i < 2; i++) {
                try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt)) {
                    r.read(layout.local(0, 2, i));
                }
            }
        });
        assertTrue(e.getMessage().contains("corrupt bytes in block " + at / (64 * 1024))
            && e.getMessage().contains(shard.getFileName().toString()), e.getMessage());
        // the whole-file reader refuses it too
        assertThrows(CheckpointException.class, () -> Checkpoints.load(ckpt));
    }

    @Test
    void shouldRefuseACheckpointWithoutTheParameterNamingIt() {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, 1), false);
        Map<String, float[][]> full = fullModel(layout);
        Path ckpt = write(full, 1, 2);
        GptConfig bigger = new GptConfig("t", 64, 32, 3, 4, 8, 1e-5f);
        ParallelParameterLayout other = ParallelParameterLayout.gpt(bigger, StagePartition.balanced(bigger, 1), false);
        try (ShardedCheckpointReader r = ShardedCheckpointReader.open(ckpt)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> r.read(other.local(0, 2, 0)));
            assertTrue(e.getMessage().contains("blocks.2."), e.getMessage());
        }
    }
}
