package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.troupe.models.ParamSpec;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import java.util.Random;

/** Random whole-model parameters large enough that logits are far from uniform (a strong comparison). */
final class InferenceFixtures {
    private InferenceFixtures() {
    }

    static float[] randomParams(GptConfig cfg, long seed) {
        ParameterLayout layout = ParameterLayout.full(cfg);
        float[] flat = new float[(int) layout.numel()];
        Random rnd = new Random(seed);
        for (ParamSpec s : layout.specs()) {
            boolean lnWeight = s.name().endsWith("ln1.weight") || s.name().endsWith("ln2.weight")
                || s.name().equals("ln_f.weight");
            for (long i = 0; i < s.numel(); i++) {
                float u = (float) (2 * rnd.nextDouble() - 1);
                flat[(int) (s.localOffset() + i)] = lnWeight ? 1f + 0.1f * u : 0.25f * u;
            }
        }
        return flat;
    }

    /** A scheduler over {@code params} with a cache of {@code blocks} blocks of 4 tokens and a queue of 1000. */
    static BatchScheduler scheduler(GptConfig cfg, float[] params, int maxBatch, int tokenBudget, int blocks) {
        KvCachedGpt m = new KvCachedGpt(InferenceWeights.fromFlat(cfg, params, Quantization.NONE),
            new PagedKvCache(cfg, 4, blocks));
        return new BatchScheduler(m, new BatchScheduler.Limits(maxBatch, tokenBudget, 1000));
    }

    /** A request with no deadline and no listener. */
    static Generation generation(GptConfig cfg, long id, int[] prompt, SamplingParams p) {
        return new Generation(id, prompt, cfg.seqLen(), p, System.nanoTime(), Long.MAX_VALUE, GenerationListener.NONE);
    }

    /**
     * Asserts that {@code stage} (weights of blocks {@code [first, end)} alone) computes bit for bit what
     * those blocks of {@code whole} compute, on {@code positions} rows of one sequence whose input is
     * what {@code whole}'s blocks before {@code first} give.
     */
    static void assertSameStageOutput(InferenceWeights whole, InferenceWeights stage, int first, int end,
                                      int positions) {
        GptConfig cfg = whole.config();
        StepBatch b = new StepBatch();
        BlockTable t = new BlockTable();
        t.add(0);
        t.add(1);
        for (int p = 0; p < positions; p++) {
            b.add(p + 3, p, t, p == positions - 1);
        }
        float[] h = first == 0 ? null
            : new KvCachedGpt(whole, new PagedKvCache(cfg, 4, 8, first), 0, first).stageForward(b, null);
        assertArrayEquals(new KvCachedGpt(whole, new PagedKvCache(cfg, 4, 8, end - first), first, end)
            .stageForward(b, h), new KvCachedGpt(stage, new PagedKvCache(cfg, 4, 8, end - first), first, end)
            .stageForward(b, h));
    }

    static int[] randomTokens(Random rnd, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }
}
