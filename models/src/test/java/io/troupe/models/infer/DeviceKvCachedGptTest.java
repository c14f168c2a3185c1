package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.cpu.CpuDevice;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The decoding forward over a {@link io.troupe.runtime.device.Device}, on the CPU device: its logits
 * against {@link KvCachedGpt}'s over prefill chunks and decode steps of several sequences, and a
 * sequence's logits alone against the same sequence among 15 others, bit for bit.
 */
@Timeout(120)
class DeviceKvCachedGptTest {
    static final GptConfig CFG = new GptConfig("t", 256, 48, 3, 4, 24, 1e-5f);
    private CpuDevice dev;

    @BeforeEach
    void open() {
        dev = new CpuDevice(1);
    }

    @AfterEach
    void close() {
        dev.close();
    }

    @Test
    void shouldMatchKvCachedGptOverPrefillChunksAndDecodeSteps() {
        float[] params = InferenceFixtures.randomParams(CFG, 21);
        DecodeScenario sc = new DecodeScenario(CFG, 22, 4, 13, 8, 5);
        PagedKvCache cache = new PagedKvCache(CFG, 4, 40);
        BlockTable spare = new BlockTable();
        cache.ensureCapacity(spare, 6);                   // blocks 0, 1 taken first: tables start elsewhere
        KvCachedGpt host = new KvCachedGpt(InferenceWeights.fromFlat(CFG, params, Quantization.NONE), cache);
        List<List<float[]>> expected = sc.run(host::forward, cache, DecodeScenario.all(4), CFG.vocabSize());
        try (DeviceKvCachedGpt m = DeviceKvCachedGpt.fromFlat(CFG, params, cache, dev)) {
            List<List<float[]>> got = sc.run(m::forward, cache, DecodeScenario.all(4), CFG.vocabSize());
            double diff = DecodeScenario.maxDiff(got, expected);
            System.out.printf("DeviceKvCachedGpt (cpu) vs KvCachedGpt: max |diff| of logits %.3g%n", diff);
            assertTrue(diff < 2e-5, "max |diff| " + diff);
        }
    }

    @Test
    void shouldGiveASequenceTheSameLogitsAloneOrAmongFifteenOthers() {
        float[] params = InferenceFixtures.randomParams(CFG, 23);
        DecodeScenario sc = new DecodeScenario(CFG, 24, 16, 12, 8, 5);
        PagedKvCache cache = new PagedKvCache(CFG, 4, 16 * 6, 0);
        try (DeviceKvCachedGpt m = DeviceKvCachedGpt.fromFlat(CFG, params, cache, dev)) {
            List<List<float[]>> together = sc.run(m::forward, cache, DecodeScenario.all(16), CFG.vocabSize());
            for (int s : new int[] {0, 7, 15}) {
                List<float[]> alone = sc.run(m::forward, cache, new int[] {s}, CFG.vocabSize()).get(0);
                assertEquals(together.get(s).size(), alone.size());
                for (int p = 0; p < alone.size(); p++) {
                    assertArrayEquals(alone.get(p), together.get(s).get(p), 0f, "sequence " + s + " position " + p);
                }
            }
        }
    }

    @Test
    void shouldReturnOnlyTheRowsThatAskAndRefuseBadInput() {
        float[] params = InferenceFixtures.randomParams(CFG, 25);
        PagedKvCache cache = new PagedKvCache(CFG, 4, 8, 0);
        try (DeviceKvCachedGpt m = DeviceKvCachedGpt.fromFlat(CFG, params, cache, dev)) {
            BlockTable t = new BlockTable();
            cache.ensureCapacity(t, 6);
            StepBatch b = new StepBatch();
            for (int p = 0; p < 6; p++) {
                b.add(p + 1, p, t, p == 5 || p == 2);
            }
            float[] two = m.forward(b);
            assertEquals(2 * CFG.vocabSize(), two.length);
            b.clear();
            for (int p = 0; p < 6; p++) {
                b.add(p + 1, p, t, true);
            }
            float[] every = m.forward(b);
            int v = CFG.vocabSize();
            assertArrayEquals(Arrays.copyOfRange(every, 2 * v, 3 * v), Arrays.copyOfRange(two, 0, v), 0f, "row 2");
            assertArrayEquals(Arrays.copyOfRange(every, 5 * v, 6 * v), Arrays.copyOfRange(two, v, 2 * v), 0f, "row 5");
            b.clear();
            b.add(3, 8, t, true);
            assertThrows(IllegalArgumentException.class, () -> m.forward(b), "position past the table's blocks");
            b.clear();
            b.add(CFG.vocabSize(), 1, t, true);
            assertThrows(IllegalArgumentException.class, () -> m.forward(b), "token outside the vocabulary");
        }
    }
}
