package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Log-probabilities: of each generated token, and of each prompt token when a request echoes its
 * prompt with log-probabilities (scoring, what evaluation harnesses ask a server for). A prompt's
 * scores are those of one plain forward over the whole prompt, bit for bit, however the prompt is
 * computed: alone, in chunks beside 15 other sequences, recomputed after a preemption, or prefilled
 * beside the steps.
 */
@Timeout(120)
class PromptScoringTest {
    private static final GptConfig CFG = new GptConfig("t", 256, 48, 2, 4, 40, 1e-5f);
    private static final float[] PARAMS = InferenceFixtures.randomParams(CFG, 5);
    private static final int V = CFG.vocabSize();

    private static BatchScheduler scheduler(int maxBatch, int tokenBudget, int blocks) {
        return InferenceFixtures.scheduler(CFG, PARAMS, maxBatch, tokenBudget, blocks);
    }

    private static Generation gen(long id, int[] prompt, SamplingParams p) {
        return InferenceFixtures.generation(CFG, id, prompt, p);
    }

    /** The log-probability of prompt[p] for p >= 1 from one plain forward of the whole prompt. */
    private static double[] plainScores(int[] prompt) {
        return LogProbs.plainScores(InferenceWeights.fromFlat(CFG, PARAMS, Quantization.NONE), prompt);
    }

    private static List<Generation> others(Random rnd, int n) {
        List<Generation> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(gen(100 + i, InferenceFixtures.randomTokens(rnd, 1 + rnd.nextInt(20), V),
                new SamplingParams(1 + rnd.nextInt(30), 0.8f, 0.9f, rnd.nextLong(), List.of())));
        }
        return out;
    }

    private static void assertScored(double[] plain, Generation g, String where) {
        assertFalse(g.hasLogprob(0), "the first prompt token has no log-probability: " + where);
        for (int p = 1; p < plain.length; p++) {
            assertTrue(g.hasLogprob(p), "prompt position " + p + " scored: " + where);
            assertEquals(Double.doubleToLongBits(plain[p]), Double.doubleToLongBits(g.logprob(p)),
                "prompt position " + p + ": " + where);
        }
    }

    private static double[] scores(Generation g, int from, int to) {
        return IntStream.range(from, to).mapToDouble(g::logprob).toArray();
    }

    @Test
    void shouldScoreThePromptAsOnePlainForwardDoesAloneInChunksBesideOthersAndAfterPreemption() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(6), 30, V);
        double[] plain = plainScores(prompt);
        SamplingParams p = SamplingParams.greedy(6).withLogprobs(3, true);

        BatchScheduler alone = scheduler(1, 64, 64);
        Generation a = gen(1, prompt, p);
        alone.submit(a);
        alone.runToCompletion();
        assertScored(plain, a, "alone");

        // 15 others first and a budget of 24 tokens: the prompt is computed in chunks beside their decodes
        BatchScheduler busy = scheduler(16, 24, 256);
        others(new Random(7), 15).forEach(busy::submit);
        Generation b = gen(1, prompt, p);
        busy.submit(b);
        busy.runToCompletion();
        assertScored(plain, b, "in chunks beside 15 others");
        assertArrayEquals(a.completion(), b.completion());
        assertArrayEquals(scores(a, 0 + 1, 36), scores(b, 1, 36), "generated tokens' log-probabilities too");
        assertEquals(0, busy.model().cache().usedBlocks());

        // 10 blocks of 4: four long requests cannot all fit, so sequences are preempted and recomputed
        BatchScheduler small = scheduler(4, 64, 10);
        List<Generation> rivals = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            int[] rival = InferenceFixtures.randomTokens(new Random(20 + i), 5, V);
            rivals.add(gen(10 + i, rival, SamplingParams.greedy(30)));
        }
        Generation c = gen(1, prompt, SamplingParams.greedy(9).withLogprobs(3, true));
        rivals.forEach(small::submit);
        small.submit(c);
        small.runToCompletion();
        assertTrue(small.preemptions() > 0, "a full cache preempts");
        assertScored(plain, c, "recomputed after preemptions");
        assertArrayEquals(scores(a, 1, 36), scores(c, 1, 36));
        assertEquals(0, small.model().cache().usedBlocks());
    }

    @Test
    void shouldScoreThePromptPrefilledBesideTheSteps() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(9), 21, V);
        double[] plain = plainScores(prompt);
        BatchScheduler s = scheduler(4, 64, 64);
        s.prefillBeside(true);
        KvCachedGpt lane = new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache());
        s.submit(gen(2, InferenceFixtures.randomTokens(new Random(10), 4, V), SamplingParams.greedy(20)));
        s.complete(s.model().forward(s.plan(System.nanoTime())), System.nanoTime());    // now something decodes
        Generation g = gen(1, prompt, SamplingParams.greedy(4).withLogprobs(0, true));
        s.submit(g);
        BatchScheduler.Prefill pre = s.planPrefill(System.nanoTime());
        assertArrayEquals(new long[] {1L}, pre.ids());
        assertEquals(prompt.length - 1, pre.batch().logitCount(),
            "each row the lane computes scores the token after it");
        s.completePrefill(pre, lane.forward(pre.batch()), System.nanoTime());
        s.runToCompletion();
        assertEquals(1, s.prefilledBeside());
        assertScored(plain, g, "prefilled beside the steps");
        assertEquals(0, g.topCount());
        assertEquals(prompt.length + 4, IntStream.range(0, prompt.length + 4).filter(g::hasLogprob).count() + 1);
    }

    @Test
    void shouldOnlyScoreThePromptWithNoNewTokens() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(11), 17, V);
        double[] plain = plainScores(prompt);
        BatchScheduler s = scheduler(4, 8, 64);        // a budget of 8: the prompt takes three steps
        Generation g = gen(1, prompt, new SamplingParams(0, 0f, 1f, 0L, List.of(), 1, true, 0f, 0f,
            java.util.Map.of()));
        s.submit(g);
        s.runToCompletion();
        assertEquals(FinishReason.LENGTH, g.finishReason());
        assertEquals(0, g.completionTokens());
        assertEquals(0, s.tokensGenerated());
        assertScored(plain, g, "max_tokens 0");
        assertEquals(0, s.model().cache().usedBlocks());
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(0, 0f, 1f, 0L, List.of()),
            "no new tokens only with echo");
        assertThrows(IllegalArgumentException.class, () -> SamplingParams.greedy(1).withLogprobs(6, false));
    }

    @Test
    void shouldGiveEachGeneratedTokenItsLogProbabilityAndTheMostLikelyAlternatives() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(12), 8, V);
        BatchScheduler s = scheduler(2, 64, 64);
        Generation greedy = gen(1, prompt, SamplingParams.greedy(10).withLogprobs(5, false));
        Generation sampled = gen(2, prompt, new SamplingParams(10, 1.3f, 0.9f, 77L, List.of()).withLogprobs(2, false));
        s.submit(greedy);
        s.submit(sampled);
        s.runToCompletion();
        for (int pos = 0; pos < prompt.length; pos++) {
            assertFalse(greedy.hasLogprob(pos), "no echo: the prompt is not scored");
        }
        for (int pos = prompt.length; pos < prompt.length + 10; pos++) {
            assertEquals(greedy.tokenAt(pos), greedy.topId(pos, 0), "greedy takes the most likely token");
            assertEquals(greedy.logprob(pos), greedy.topLogprob(pos, 0));
            for (int i = 1; i < 5; i++) {
                assertTrue(greedy.topLogprob(pos, i) <= greedy.topLogprob(pos, i - 1), "most likely first");
            }
            assertTrue(sampled.logprob(pos) <= sampled.topLogprob(pos, 0), "none above the most likely");
            int t = sampled.tokenAt(pos);
            boolean inTop = t == sampled.topId(pos, 0) || t == sampled.topId(pos, 1);
            assertEquals(inTop, sampled.logprob(pos) >= sampled.topLogprob(pos, 1), "position " + pos);
        }
    }

    /** The fast top-k against sorting the whole row (ties by id), on random rows with many ties. */
    @Test
    void shouldPickTheTopByValueThenIdAsAFullSortDoes() {
        Random rnd = new Random(13);
        for (int trial = 0; trial < 500; trial++) {
            int v = 1 + rnd.nextInt(40);
            int k = Math.min(v, rnd.nextInt(LogProbs.MAX_TOP + 1));
            float[] row = new float[v + 3];
            for (int i = 0; i < row.length; i++) {
                row[i] = rnd.nextInt(6) - 3 + (rnd.nextBoolean() ? 0f : rnd.nextFloat());
            }
            int target = rnd.nextInt(v);
            int[] ids = new int[k];
            double[] out = new double[k + 1];
            LogProbs.topAndTarget(row, 3, v, target, k, ids, out);
            Integer[] order = IntStream.range(0, v).boxed().toArray(Integer[]::new);
            Arrays.sort(order, Comparator.<Integer>comparingDouble(i -> -row[3 + i]).thenComparingInt(i -> i));
            for (int j = 0; j < k; j++) {
                assertEquals(order[j], ids[j], "trial " + trial + " rank " + j + " of " + Arrays.toString(row));
                assertEquals(LogProbs.logProb(row, 3, v, ids[j]), out[1 + j]);
            }
            assertEquals(LogProbs.logProb(row, 3, v, target), out[0]);
            double mass = IntStream.range(0, v).mapToDouble(i -> Math.exp(LogProbs.logProb(row, 3, v, i))).sum();
            assertEquals(1.0, mass, 1e-12, "a distribution");
        }
    }
}
