package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.Gpt;
import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.cpu.CpuDevice;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The KV-cached forward against the training model's full forward, and batch invariance of its kernels. */
@Timeout(60)
class KvCachedGptTest {
    private static final GptConfig CFG = new GptConfig("t", 256, 48, 3, 4, 24, 1e-5f);

    /** Full-forward logits (T, V) of the training Gpt on {@code x}. */
    private static float[] fullForward(float[] params, int[] x) {
        try (CpuDevice dev = new CpuDevice(1); Gpt gpt = Gpt.whole(CFG, dev, 1)) {
            dev.copyFromHost(params, gpt.params());
            gpt.forwardTokens(0, x, new int[x.length]);
            return gpt.logits(0).toFloatArray();
        }
    }

    private static KvCachedGpt model(float[] params, Quantization q, int blocks) {
        return new KvCachedGpt(InferenceWeights.fromFlat(CFG, params, q), new PagedKvCache(CFG, 4, blocks));
    }

    @Test
    void shouldMatchFullForwardLogitsWhenDecodingOneTokenAtATime() {
        float[] params = InferenceFixtures.randomParams(CFG, 1);
        int[] x = InferenceFixtures.randomTokens(new Random(2), CFG.seqLen(), CFG.vocabSize());
        float[] full = fullForward(params, x);
        KvCachedGpt m = model(params, Quantization.NONE, 16);
        BlockTable table = new BlockTable();
        // take the blocks out of order, so the table is not contiguous
        BlockTable spare = new BlockTable();
        m.cache().ensureCapacity(spare, 8);
        m.cache().ensureCapacity(table, CFG.seqLen());
        m.cache().free(spare);
        StepBatch b = new StepBatch();
        int v = CFG.vocabSize();
        double maxDiff = 0;
        for (int p = 0; p < CFG.seqLen(); p++) {
            b.clear();
            b.add(x[p], p, table, true);
            float[] logits = m.forward(b);
            for (int i = 0; i < v; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(logits[i] - full[p * v + i]));
            }
        }
        System.out.printf("incremental decode vs full forward: max |diff| = %.3g%n", maxDiff);
        assertTrue(maxDiff < 2e-5, "max |diff| " + maxDiff);
    }

    @Test
    void shouldGiveBitIdenticalLogitsWhetherPrefilledInOneStepInChunksOrAlongsideOthers() {
        float[] params = InferenceFixtures.randomParams(CFG, 3);
        Random rnd = new Random(4);
        int[] x = InferenceFixtures.randomTokens(rnd, CFG.seqLen(), CFG.vocabSize());
        int v = CFG.vocabSize();
        // (1) whole sequence in one step, logits for every row
        KvCachedGpt m1 = model(params, Quantization.NONE, 16);
        BlockTable t1 = new BlockTable();
        m1.cache().ensureCapacity(t1, CFG.seqLen());
        StepBatch b = new StepBatch();
        for (int p = 0; p < x.length; p++) {
            b.add(x[p], p, t1, true);
        }
        float[] oneStep = m1.forward(b);
        // (2) chunks of 5, each step shared with 7 other random sequences
        KvCachedGpt m2 = model(params, Quantization.NONE, 64);
        BlockTable t2 = new BlockTable();
        m2.cache().ensureCapacity(t2, CFG.seqLen());
        BlockTable[] others = new BlockTable[7];
        int[][] otherTokens = new int[7][];
        for (int o = 0; o < 7; o++) {
            others[o] = new BlockTable();
            m2.cache().ensureCapacity(others[o], CFG.seqLen());
            otherTokens[o] = InferenceFixtures.randomTokens(rnd, CFG.seqLen(), v);
        }
        float[] chunked = new float[x.length * v];
        for (int p0 = 0; p0 < x.length; p0 += 5) {
            b.clear();
            for (int o = 0; o < 3; o++) {
                b.add(otherTokens[o][p0], p0, others[o], true);
            }
            int firstRow = -1;
            for (int p = p0; p < Math.min(p0 + 5, x.length); p++) {
                int r = b.add(x[p], p, t2, true);
                firstRow = firstRow < 0 ? r : firstRow;
            }
            for (int o = 3; o < 7; o++) {
                b.add(otherTokens[o][p0], p0, others[o], true);
            }
            float[] logits = m2.forward(b);
            int n = Math.min(p0 + 5, x.length) - p0;
            System.arraycopy(logits, firstRow * v, chunked, p0 * v, n * v);
        }
        assertArrayEquals(oneStep, chunked, 0f);
    }
}
