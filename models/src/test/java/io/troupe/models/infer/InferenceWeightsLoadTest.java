package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.ParamSpec;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.checkpoint.ShardedCheckpointReader;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import io.troupe.models.parallel.ParallelParameterLayout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.parallel.TensorParallelPlacement;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Serving loads a checkpoint written under any training layout: the shards of pp 2 x tp 2 (tensor-parallel
 * shards joined), a single device's file, or only one pipeline stage's share of either, give exactly the
 * weights the whole model's parameters give, read without the AdamW moments; a damaged file is refused.
 */
@Timeout(60)
class InferenceWeightsLoadTest {
    private static final GptConfig CFG = new GptConfig("t", 256, 48, 3, 4, 40, 1e-5f);
    private static final long STEP = 9;

    @TempDir
    Path root;

    /** The whole model's parameters by name, random. */
    private static Map<String, float[]> full() {
        float[] flat = InferenceFixtures.randomParams(CFG, 5);
        Map<String, float[]> out = new HashMap<>();
        for (ParamSpec s : ParameterLayout.full(CFG).specs()) {
            out.put(s.name(), Arrays.copyOfRange(flat, (int) s.localOffset(), (int) (s.localOffset() + s.numel())));
        }
        return out;
    }

    /** Writes {@code full} as the shards of {@code stages x tp}, moments set apart from the parameters. */
    private Path write(Map<String, float[]> full, int stages, int tp, String name) {
        ParallelParameterLayout layout = ParallelParameterLayout.gpt(CFG, StagePartition.balanced(CFG, stages), false);
        Path dir = root.resolve(name);
        List<Manifest.FileEntry> files = new ArrayList<>();
        for (int g = 0; g < stages; g++) {
            for (int i = 0; i < tp; i++) {
                ShardState s = new ShardState(STEP);
                for (ParallelParameterLayout.Local.Entry e : layout.local(g, tp, i).entries()) {
                    float[] x = full.get(e.parameter().name());
                    if (e.parameter().tp() instanceof TensorParallelPlacement.Split) {
                        x = e.parameter().split().shard(x, e.parameter().globalShape(), tp, i);
                    }
                    float[] m = new float[x.length];
                    Arrays.fill(m, 7f);
                    s.put(new ShardState.Entry(e.parameter().name(), e.shape(), x, m, m.clone()));
                }
                String file = stages == 1 && tp == 1 ? "shard-00.bin" : ShardedCheckpointReader.shardFileName(g, tp, i);
                files.add(Checkpoints.writeShard(dir, STEP, file, s));
            }
        }
        Manifest m = new Manifest(Manifest.FORMAT, STEP, STEP, 1, 4, "1x" + stages + "x" + tp, CFG, "markov",
            List.of());
        return Checkpoints.commit(dir, m, files);
    }

    /** Logits of a prompt decoded through {@code w}'s blocks {@code [first, end)} from {@code input}. */
    private static float[] logits(InferenceWeights w) {
        StepBatch b = new StepBatch();
        BlockTable t = new BlockTable();
        t.add(0);
        t.add(1);
        for (int p = 0; p < 7; p++) {
            b.add((p * 37) % 256, p, t, p == 6);
        }
        return new KvCachedGpt(w, new PagedKvCache(CFG, 4, 8, CFG.nLayer())).forward(b);
    }

    @Test
    void shouldLoadTensorParallelAndSingleDeviceCheckpointsAsTheWholeModel() {
        Map<String, float[]> full = full();
        float[] expected = logits(InferenceWeights.fromParameters(CFG, full, Quantization.NONE));
        Path tp = write(full, 2, 2, "pp2tp2");
        Path one = write(full, 1, 1, "single");
        for (Path ckpt : List.of(tp, one)) {
            InferenceWeights w = InferenceWeights.load(ckpt, Quantization.NONE);
            assertArrayEquals(expected, logits(w), ckpt.toString());
            assertTrue(w.fingerprint().startsWith("t step 9 files "), w.fingerprint());
        }
        // int8 from tp shards: the same as int8 from the whole parameters
        assertArrayEquals(logits(InferenceWeights.fromParameters(CFG, full, Quantization.INT8)),
            logits(InferenceWeights.load(tp, Quantization.INT8)));

        // a later stage's share, from the tp shards, computes what that stage of the whole model computes
        InferenceWeights whole = InferenceWeights.load(one, Quantization.NONE);
        InferenceWeights last = InferenceWeights.load(tp, Quantization.NONE, 1, -1);
        assertEquals(null, last.tokEmb());
        assertTrue(last.weightBytes() < whole.weightBytes(), last.weightBytes() + " of " + whole.weightBytes());
        InferenceFixtures.assertSameStageOutput(whole, last, 1, 3, 5);
    }

    @Test
    void shouldRefuseADamagedOrTruncatedShardNamingTheFile() throws Exception {
        Path ckpt = write(full(), 1, 2, "tp2");
        Path shard = ckpt.resolve(ShardedCheckpointReader.shardFileName(0, 2, 1));
        byte[] bytes = Files.readAllBytes(shard);
        for (int i = 4096; i < bytes.length; i += 1024) {    // every 64 KiB block of the body, parameters included
            bytes[i] ^= 0x40;
        }
        Files.write(shard, bytes);
        CheckpointException e = assertThrows(CheckpointException.class,
            () -> InferenceWeights.load(ckpt, Quantization.NONE));
        assertTrue(e.getMessage().contains("shard-g00-t01.bin"), e.getMessage());
        Files.write(shard, Arrays.copyOf(bytes, bytes.length - 100));
        e = assertThrows(CheckpointException.class, () -> InferenceWeights.load(ckpt, Quantization.NONE));
        assertTrue(e.getMessage().contains("shard-g00-t01.bin"), e.getMessage());
    }
}
