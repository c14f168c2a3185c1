package io.troupe.models.infer;

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

    static int[] randomTokens(Random rnd, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }
}
