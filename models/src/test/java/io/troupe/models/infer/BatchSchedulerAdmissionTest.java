package io.troupe.models.infer;

import static io.troupe.models.infer.BatchSchedulerFixtures.CFG;
import static io.troupe.models.infer.BatchSchedulerFixtures.PARAMS;
import static io.troupe.models.infer.BatchSchedulerFixtures.endings;
import static io.troupe.models.infer.BatchSchedulerFixtures.gen;
import static io.troupe.models.infer.BatchSchedulerFixtures.run;
import static io.troupe.models.infer.BatchSchedulerFixtures.scheduler;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Continuous batching under a cache and a token budget: admission by free blocks, the queue limit,
 * prompts chunked under the budget, preemption, and the retiring of cancelled, expired and finished requests.
 */
@Timeout(120)
class BatchSchedulerAdmissionTest {
    @Test
    void shouldPreemptAndRecomputeWhenTheCacheIsFullAndStillGiveTheSameTokens() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(8), 5, CFG.vocabSize());
        SamplingParams p = SamplingParams.greedy(30);
        int[] alone = run(scheduler(1, 64, 64), gen(1, prompt, p), List.of());
        // 10 blocks of 4 = one full-context sequence: 4 long requests cannot all fit, so decodes preempt
        BatchScheduler small = scheduler(4, 64, 10);
        List<Generation> others = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            others.add(gen(10 + i, InferenceFixtures.randomTokens(new Random(20 + i), 5, CFG.vocabSize()),
                SamplingParams.greedy(30)));
        }
        int[] squeezed = run(small, gen(1, prompt, p), others);
        assertTrue(small.preemptions() > 0, "a full cache preempts");
        assertArrayEquals(alone, squeezed);
    }

    @Test
    void shouldAdmitOnlyWhatFreeBlocksHoldAndRefusePastTheQueueLimit() {
        KvCachedGpt m = new KvCachedGpt(InferenceWeights.fromFlat(CFG, PARAMS, Quantization.NONE),
            new PagedKvCache(CFG, 4, 10));
        BatchScheduler s = new BatchScheduler(m, new BatchScheduler.Limits(8, 64, 2));
        int[] prompt = InferenceFixtures.randomTokens(new Random(9), 15,
            CFG.vocabSize());   // 4 blocks with its first token
        assertTrue(s.submit(gen(1, prompt, SamplingParams.greedy(2))));
        assertTrue(s.submit(gen(2, prompt, SamplingParams.greedy(2))));
        assertFalse(s.submit(gen(3, prompt, SamplingParams.greedy(2))), "queue limit 2");
        StepBatch b = s.plan(System.nanoTime());
        assertNotNull(b);
        assertEquals(2, s.runningSize(), "8 free blocks: both prompts (4 blocks each) admitted");
        s.complete(m.forward(b), System.nanoTime());
        assertTrue(s.submit(gen(5, prompt, SamplingParams.greedy(2))));
        b = s.plan(System.nanoTime());
        assertEquals(2, s.runningSize(), "no free blocks for a third");
        assertEquals(1, s.queueDepth());
        s.complete(m.forward(b), System.nanoTime());  // both reach max_tokens 2 and retire
        assertEquals(0, s.runningSize());
        s.runToCompletion();
        assertEquals(0, m.cache().usedBlocks());
    }

    @Test
    void shouldFreeBlocksOfCancelledAndExpiredRequests() {
        BatchScheduler s = scheduler(4, 64, 40);
        List<FinishReason> ends = new ArrayList<>();
        GenerationListener l = endings(ends);
        int[] prompt = {1, 2, 3};
        long now = System.nanoTime();
        Generation a = new Generation(1, prompt, CFG.seqLen(), SamplingParams.greedy(30), now, Long.MAX_VALUE, l);
        Generation b = new Generation(2, prompt, CFG.seqLen(), SamplingParams.greedy(30), now, now + 1_000_000_000L, l);
        s.submit(a);
        s.submit(b);
        StepBatch batch = s.plan(now);
        s.complete(s.model().forward(batch), now);
        assertTrue(s.model().cache().usedBlocks() > 0);
        assertTrue(s.cancel(1));
        assertNull(s.plan(now + 2_000_000_000L), "both retired: nothing to run");
        assertEquals(java.util.Set.of(FinishReason.DEADLINE, FinishReason.CANCELLED), java.util.Set.copyOf(ends));
        assertEquals(2, ends.size());
        assertEquals(0, s.model().cache().usedBlocks());
    }

    @Test
    void shouldAdmitAtTheNextStepChunkLongPromptsUnderTheBudgetAndRetireAtOnce() {
        BatchScheduler s = scheduler(4, 8, 64);
        Generation a = gen(1, new int[] {1, 2, 3}, SamplingParams.greedy(12));
        s.submit(a);
        long now = System.nanoTime();
        s.complete(s.model().forward(s.plan(now)), now);            // a prefilled, first token
        s.complete(s.model().forward(s.plan(now)), now);            // a decodes
        assertEquals(2, a.completionTokens());
        Generation b = gen(2, InferenceFixtures.randomTokens(new Random(3), 20, CFG.vocabSize()),
            SamplingParams.greedy(2));
        s.submit(b);
        StepBatch step = s.plan(now);
        assertEquals(2, s.runningSize(), "b joins at the very next step");
        assertEquals(8, step.size(), "budget 8: a's decode token and 7 of b's 20 prompt tokens");
        s.complete(s.model().forward(step), now);
        assertEquals(3, a.completionTokens(), "a's next token did not wait for b's prompt");
        assertEquals(0, b.completionTokens());
        s.complete(s.model().forward(s.plan(now)), now);            // 7 more of b's prompt
        StepBatch last = s.plan(now);                               // the remaining 6 and b's first token
        assertEquals(1 + 6, last.size());
        s.complete(s.model().forward(last), now);
        assertEquals(1, b.completionTokens());
        s.complete(s.model().forward(s.plan(now)), now);
        assertTrue(b.isFinished(), "b reached max_tokens 2");
        assertEquals(1, s.runningSize(), "b retired at once, a still running");
        assertEquals(s.model().cache().blocksFor(a.completionTokens() + 3 - 1), s.model().cache().usedBlocks(),
            "only a's blocks remain");
        s.runToCompletion();
        assertEquals(12, a.completionTokens());
    }

    /**
     * A request preempted back to the queue and ended there (cancelled, past its deadline, or every request ended)
     * still gets the text it held back for a possible stop string: the deltas its listener saw add up to its text.
     */
    @Test
    void shouldReleaseHeldBackTextOfAPreemptedRequestEndedWhileWaiting() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(8), 5, CFG.vocabSize());
        Generation probe = gen(1, prompt, SamplingParams.greedy(30));
        run(scheduler(1, 64, 64), probe, List.of());
        int[] out = probe.completion();
        // a stop string whose first two bytes are two generated ASCII bytes and whose third never comes: once those two
        // are generated they are held back, since the stop could still follow
        int k = -1;
        for (int i = 0; i + 1 < out.length && k < 0; i++) {
            if (out[i] >= 0x20 && out[i] < 0x7f && out[i + 1] >= 0x20 && out[i + 1] < 0x7f) {
                k = i;
            }
        }
        assertTrue(k >= 0, "two printable bytes in a row among " + java.util.Arrays.toString(out));
        String stop = "" + (char) out[k] + (char) out[k + 1] + "\u0001";
        for (String end : List.of("cancel", "deadline", "all")) {
            BatchScheduler s = scheduler(1, 64, 64);
            StringBuilder seen = new StringBuilder();
            List<FinishReason> ends = new ArrayList<>();
            GenerationListener l = new GenerationListener() {
                @Override
                public void onToken(Generation g, int token, String textDelta) {
                    seen.append(textDelta);
                }

                @Override
                public void onFinish(Generation g) {
                    ends.add(g.finishReason());
                }
            };
            long now = System.nanoTime();
            long deadline = end.equals("deadline") ? now + 1_000_000_000_000L : Long.MAX_VALUE;
            Generation g = new Generation(7, prompt, CFG.seqLen(), new SamplingParams(30, 0f, 1f, 0L,
                List.of(stop)), now, deadline, l);
            s.submit(g);
            while (g.completionTokens() < k + 2) {
                s.complete(s.model().forward(s.plan(now)), now);
            }
            assertTrue(g.text().length() > seen.length(), end + ": text held back before the preemption: "
                + seen + " of " + g.text());
            s.preemptAll();
            assertEquals(1, s.queueDepth(), end + ": preempted back to the queue");
            switch (end) {
                case "cancel" -> assertTrue(s.cancel(7));
                case "deadline" -> s.expireWaiting(deadline + 1);
                default -> s.cancelAll(FinishReason.CANCELLED);
            }
            assertEquals(1, ends.size(), end + ": finished once");
            assertEquals(g.text(), seen.toString(), end + ": every byte of the text reached the listener");
            assertEquals(0, s.model().cache().usedBlocks(), end);
        }
    }
}
