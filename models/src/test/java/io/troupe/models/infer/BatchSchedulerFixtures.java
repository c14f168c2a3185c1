package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.models.gpt.GptConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The model, schedulers, requests and listeners the {@link BatchScheduler} tests share: one small
 * configuration with random weights, schedulers over caches of blocks of 4 tokens, and runs that
 * check every block comes back.
 */
final class BatchSchedulerFixtures {
    static final GptConfig CFG = new GptConfig("t", 256, 48, 2, 4, 40, 1e-5f);
    static final float[] PARAMS = InferenceFixtures.randomParams(CFG, 5);

    private BatchSchedulerFixtures() {
    }

    static BatchScheduler scheduler(int maxBatch, int tokenBudget, int blocks) {
        return InferenceFixtures.scheduler(CFG, PARAMS, maxBatch, tokenBudget, blocks);
    }

    static Generation gen(long id, int[] prompt, SamplingParams p) {
        return InferenceFixtures.generation(CFG, id, prompt, p);
    }

    static int[] run(BatchScheduler s, Generation needle, List<Generation> others) {
        for (Generation o : others) {
            s.submit(o);
        }
        s.submit(needle);
        s.runToCompletion();
        assertEquals(0, s.model().cache().usedBlocks(), "every block returned");
        return needle.completion();
    }

    static List<Generation> others(Random rnd, int n, SamplingParams p) {
        List<Generation> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(gen(100 + i, InferenceFixtures.randomTokens(rnd, 1 + rnd.nextInt(20), CFG.vocabSize()),
                new SamplingParams(1 + rnd.nextInt(30), 0.8f, 0.9f, rnd.nextLong(), List.of())));
        }
        return out;
    }

    /** A listener that adds each finished request's reason to {@code ends}. */
    static GenerationListener endings(List<FinishReason> ends) {
        return new GenerationListener() {
            @Override
            public void onToken(Generation g, int token, String textDelta) {
            }

            @Override
            public void onFinish(Generation g) {
                ends.add(g.finishReason());
            }
        };
    }

    /** A listener that adds each token and finish, as a line of text, to {@code log} in the order they come. */
    static GenerationListener recording(List<String> log) {
        return new GenerationListener() {
            @Override
            public void onToken(Generation g, int token, String textDelta) {
                log.add("token " + g.id() + " " + token + " " + textDelta);
            }

            @Override
            public void onFinish(Generation g) {
                log.add("finish " + g.id() + " " + g.finishReason() + " " + g.text());
            }
        };
    }
}
