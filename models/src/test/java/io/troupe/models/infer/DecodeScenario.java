package io.troupe.models.infer;

import io.troupe.models.gpt.GptConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Function;

/**
 * Sequences fed to a decoding forward as a server would: prompts in prefill chunks (every row asking
 * for its logits), then one decode row per sequence and step with fixed (not sampled) tokens, so two
 * forwards see the same inputs whatever their logits. Blocks are taken step by step from one
 * {@link PagedKvCache}, so the sequences' tables interleave and cross block boundaries.
 */
final class DecodeScenario {
    final int[][] prompts;
    final int[][] continuations;
    final int chunk;

    DecodeScenario(GptConfig cfg, long seed, int sequences, int maxPrompt, int decodeSteps, int chunk) {
        Random rnd = new Random(seed);
        this.prompts = new int[sequences][];
        this.continuations = new int[sequences][];
        for (int s = 0; s < sequences; s++) {
            prompts[s] = InferenceFixtures.randomTokens(rnd, 1 + rnd.nextInt(maxPrompt), cfg.vocabSize());
            continuations[s] = InferenceFixtures.randomTokens(rnd, decodeSteps, cfg.vocabSize());
        }
        this.chunk = chunk;
    }

    /**
     * Runs sequences {@code which} through {@code forward}, blocks from {@code cache}; per sequence (in
     * {@code which}'s order) the logits of each of its positions, in position order.
     */
    List<List<float[]>> run(Function<StepBatch, float[]> forward, PagedKvCache cache, int[] which, int vocab) {
        int n = which.length;
        BlockTable[] tables = new BlockTable[n];
        int[] next = new int[n];
        List<List<float[]>> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            tables[i] = new BlockTable();
            out.add(new ArrayList<>());
        }
        StepBatch b = new StepBatch();
        while (true) {
            b.clear();
            List<Integer> rowSeq = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int s = which[i];
                int total = prompts[s].length + continuations[s].length;
                int take = next[i] < prompts[s].length ? Math.min(chunk, prompts[s].length - next[i])
                    : next[i] < total ? 1 : 0;
                if (take == 0) {
                    continue;
                }
                if (!cache.ensureCapacity(tables[i], next[i] + take)) {
                    throw new IllegalStateException("cache too small for the scenario");
                }
                for (int j = 0; j < take; j++, next[i]++) {
                    int p = next[i];
                    int token = p < prompts[s].length ? prompts[s][p] : continuations[s][p - prompts[s].length];
                    b.add(token, p, tables[i], true);
                    rowSeq.add(i);
                }
            }
            if (b.size() == 0) {
                break;
            }
            float[] logits = forward.apply(b);
            for (int r = 0; r < rowSeq.size(); r++) {
                out.get(rowSeq.get(r)).add(java.util.Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab));
            }
        }
        for (BlockTable t : tables) {
            cache.free(t);
        }
        return out;
    }

    static int[] all(int sequences) {
        int[] w = new int[sequences];
        for (int i = 0; i < sequences; i++) {
            w[i] = i;
        }
        return w;
    }

    /** The largest |a - b| over every sequence and position. */
    static double maxDiff(List<List<float[]>> a, List<List<float[]>> b) {
        double worst = 0;
        for (int s = 0; s < a.size(); s++) {
            if (a.get(s).size() != b.get(s).size()) {
                return Double.POSITIVE_INFINITY;
            }
            for (int p = 0; p < a.get(s).size(); p++) {
                float[] x = a.get(s).get(p);
                float[] y = b.get(s).get(p);
                for (int i = 0; i < x.length; i++) {
                    double d = Math.abs(x[i] - y[i]);
                    worst = Double.isNaN(d) ? Double.POSITIVE_INFINITY : Math.max(worst, d);
                }
            }
        }
        return worst;
    }
}
