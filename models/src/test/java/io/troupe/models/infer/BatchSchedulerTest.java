package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Continuous batching: batch invariance, admission by free blocks, preemption, queue limit, cancel, deadline. */
@Timeout(120)
class BatchSchedulerTest {
    private static final GptConfig CFG = new GptConfig("t", 256, 48, 2, 4, 40, 1e-5f);
    private static final float[] PARAMS = InferenceFixtures.randomParams(CFG, 5);

    private static BatchScheduler scheduler(int maxBatch, int tokenBudget, int blocks) {
        return InferenceFixtures.scheduler(CFG, PARAMS, maxBatch, tokenBudget, blocks);
    }

    private static Generation gen(long id, int[] prompt, SamplingParams p) {
        return InferenceFixtures.generation(CFG, id, prompt, p);
    }

    private static int[] run(BatchScheduler s, Generation needle, List<Generation> others) {
        for (Generation o : others) {
            s.submit(o);
        }
        s.submit(needle);
        s.runToCompletion();
        assertEquals(0, s.model().cache().usedBlocks(), "every block returned");
        return needle.completion();
    }

    private static List<Generation> others(Random rnd, int n, SamplingParams p) {
        List<Generation> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(gen(100 + i, InferenceFixtures.randomTokens(rnd, 1 + rnd.nextInt(20), CFG.vocabSize()),
                new SamplingParams(1 + rnd.nextInt(30), 0.8f, 0.9f, rnd.nextLong(), List.of())));
        }
        return out;
    }

    @Test
    void shouldGiveTheSameTokensAloneAndInABatchOf16() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(6), 9, CFG.vocabSize());
        for (SamplingParams p : List.of(SamplingParams.greedy(25), new SamplingParams(25, 0.9f, 0.95f, 1234L,
            List.of()))) {
            int[] alone = run(scheduler(1, 64, 64), gen(1, prompt, p), List.of());
            // 15 others arrive first, so the needle is prefilled in chunks beside decodes of different lengths
            int[] batched = run(scheduler(16, 24, 256), gen(1, prompt, p), others(new Random(7), 15, p));
            System.out.println("alone  : " + java.util.Arrays.toString(alone));
            System.out.println("batched: " + java.util.Arrays.toString(batched));
            assertEquals(25, alone.length);
            assertArrayEquals(alone, batched, "temperature " + p.temperature());
        }
    }

    /** Penalties and biases change the tokens, and a request still gets the same ones alone and in a batch. */
    @Test
    void shouldApplyPenaltiesAndBiasesTheSameAloneAndInABatchOf16() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(6), 9, CFG.vocabSize());
        int[] plain = run(scheduler(1, 64, 64), gen(1, prompt, SamplingParams.greedy(25)), List.of());
        for (SamplingParams p : List.of(SamplingParams.greedy(25).withPenalties(1.5f, 0.5f, Map.of()),
            SamplingParams.greedy(25).withPenalties(0f, 0f, Map.of(plain[0], -100f)),
            new SamplingParams(25, 0.9f, 0.95f, 1234L, List.of()).withPenalties(-0.5f, 2f,
                Map.of(3, 5f, 200, -7.5f)))) {
            int[] alone = run(scheduler(1, 64, 64), gen(1, prompt, p), List.of());
            int[] batched = run(scheduler(16, 24, 256), gen(1, prompt, p), others(new Random(7), 15, p));
            assertArrayEquals(alone, batched, p.toString());
            assertEquals(25, alone.length);
            if (p.temperature() == 0f) {
                assertFalse(java.util.Arrays.equals(plain, alone), "the tokens change: " + p);
            }
        }
        // a banned token never comes; a forced one always does
        int[] banned = run(scheduler(1, 64, 64), gen(1, prompt, SamplingParams.greedy(25).withPenalties(0f, 0f,
            Map.of(plain[0], -100f))), List.of());
        for (int t : banned) {
            assertTrue(t != plain[0], java.util.Arrays.toString(banned));
        }
        int[] forced = run(scheduler(1, 64, 64), gen(1, prompt, new SamplingParams(25, 1f, 1f, 99L, List.of())
            .withPenalties(0f, 0f, Map.of(65, 100f))), List.of());
        for (int t : forced) {
            assertEquals(65, t, java.util.Arrays.toString(forced));
        }
    }

    /**
     * Prompts prefilled beside the steps, on a thread of their own with a second model over the same
     * weights and cache, while the steps decode (each prefill's forward runs beside a step's and is
     * applied at the next step boundary): requests that arrive while others decode go to the prefill
     * lane (several at once when they queue up) and get the tokens they get alone; every block comes
     * back.
     */
    @Test
    void shouldGiveTheSameTokensWithPromptsPrefilledBesideTheSteps() throws Exception {
        int[] prompt = InferenceFixtures.randomTokens(new Random(6), 9, CFG.vocabSize());
        SamplingParams p = new SamplingParams(25, 0.9f, 0.95f, 1234L, List.of());
        int[] alone = run(scheduler(1, 64, 64), gen(1, prompt, p), List.of());
        BatchScheduler s = scheduler(16, 24, 256);
        s.prefillBeside(true);
        KvCachedGpt lane = new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache());
        java.util.concurrent.ExecutorService prefills = java.util.concurrent.Executors.newSingleThreadExecutor();
        try {
            java.util.ArrayDeque<Generation> arrivals = new java.util.ArrayDeque<>(others(new Random(7), 12, p));
            Generation needle = gen(1, prompt, p);
            List<Long> laneIds = new ArrayList<>();
            BatchScheduler.Prefill inFlight = null;
            java.util.concurrent.Future<float[]> logits = null;
            s.submit(arrivals.poll());
            int steps = 0;
            while (s.hasWork() || !arrivals.isEmpty()) {
                if (steps == 3) {
                    s.submit(needle);                    // arrives while others decode
                } else if (steps % 2 == 0 && !arrivals.isEmpty()) {
                    s.submit(arrivals.poll());
                    if (steps % 6 == 0 && !arrivals.isEmpty()) {
                        s.submit(arrivals.poll());           // two at once: they may share a prefill
                    }
                }
                if (inFlight != null) {                      // its forward ran beside the last step's
                    float[] l = logits.get(30, java.util.concurrent.TimeUnit.SECONDS);
                    s.completePrefill(inFlight, l, System.nanoTime());
                    inFlight = null;
                }
                if (inFlight == null) {
                    BatchScheduler.Prefill next = s.planPrefill(System.nanoTime());
                    if (next != null) {
                        for (long id : next.ids()) {
                            laneIds.add(id);
                        }
                        inFlight = next;
                        logits = prefills.submit(() -> lane.forward(next.batch()));
                    }
                }
                StepBatch b = s.plan(System.nanoTime());
                if (b != null) {
                    s.complete(s.model().forward(b), System.nanoTime());
                }
                steps++;
                assertTrue(steps < 10_000, "the requests finish");
            }
            assertNull(inFlight);
            assertTrue(laneIds.contains(1L), "the needle arrived while others decoded: prefilled beside, " + laneIds);
            assertTrue(laneIds.size() >= 4 && s.prefilledBeside() == laneIds.size(), "lane prefills: " + laneIds);
            assertArrayEquals(alone, needle.completion());
            assertEquals(0, s.model().cache().usedBlocks(), "every block returned");
        } finally {
            prefills.shutdownNow();
        }
    }

    /**
     * Beside a prefill lane, a one-token prompt at the head of the queue gives the lane nothing to
     * compute: the steps take it at once (before, it held the queue until every running sequence had
     * finished), the prompt behind it then goes to the lane, and both get the tokens they get alone.
     */
    @Test
    void shouldTakeAOneTokenPromptIntoTheStepsBesideThePrefillLane() {
        SamplingParams p = new SamplingParams(6, 0.9f, 0.95f, 5L, List.of());
        int[] one = {42};
        int[] nine = InferenceFixtures.randomTokens(new Random(41), 9, CFG.vocabSize());
        int[] oneAlone = run(scheduler(1, 64, 64), gen(2, one, p), List.of());
        int[] nineAlone = run(scheduler(1, 64, 64), gen(3, nine, p), List.of());
        BatchScheduler s = scheduler(4, 64, 64);
        s.prefillBeside(true);
        KvCachedGpt lane = new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache());
        long now = System.nanoTime();
        Generation decoding = gen(1, InferenceFixtures.randomTokens(new Random(42), 8, CFG.vocabSize()),
            SamplingParams.greedy(40));
        s.submit(decoding);
        s.complete(s.model().forward(s.plan(now)), now);
        Generation w = gen(2, one, p);
        Generation x = gen(3, nine, p);
        s.submit(w);
        s.submit(x);
        assertNull(s.planPrefill(now), "nothing for the lane to compute of a one-token prompt");
        s.complete(s.model().forward(s.plan(now)), now);
        assertEquals(2, s.runningSize(), "the step took the one-token prompt beside the decoding sequence");
        assertEquals(1, s.queueDepth());
        BatchScheduler.Prefill behind = s.planPrefill(now);
        assertNotNull(behind, "the prompt behind it goes to the lane");
        assertArrayEquals(new long[] {3}, behind.ids());
        s.completePrefill(behind, lane.forward(behind.batch()), now);
        for (int steps = 0; s.hasWork(); steps++) {
            assertTrue(steps < 100, "the requests finish");
            StepBatch b = s.plan(System.nanoTime());
            if (b != null) {
                s.complete(s.model().forward(b), System.nanoTime());
            }
        }
        assertArrayEquals(oneAlone, w.completion());
        assertArrayEquals(nineAlone, x.completion());
        assertEquals(0, s.model().cache().usedBlocks(), "every block returned");
    }

    /**
     * Prefilling ahead of a full batch (max-batch 1, one request primed ahead): while request 1
     * decodes alone, the lane computes request 2's prompt but its last token (no logits asked), on a
     * thread of its own; request 2 waits, primed, until 1 finishes, then joins a step with one row
     * and gets the tokens it gets alone; request 3 is primed only once 2 left the queue (one ahead).
     * A primed request that is cancelled gives its blocks back at once, and when the cache runs
     * short a primed request's blocks are taken back (and its prompt recomputed later) before any
     * decoding sequence is preempted.
     */
    @Test
    void shouldPrefillAheadOfAFullBatchAndJoinWithOneRow() throws Exception {
        SamplingParams p = new SamplingParams(12, 0.9f, 0.95f, 77L, List.of());
        int[] prompt = InferenceFixtures.randomTokens(new Random(31), 9, CFG.vocabSize());
        int[] alone = run(scheduler(1, 64, 64), gen(2, prompt, p), List.of());
        BatchScheduler s = scheduler(1, 64, 64);
        s.prefillBeside(true);
        s.primeAhead(1);
        KvCachedGpt lane = new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache());
        java.util.concurrent.ExecutorService prefills = java.util.concurrent.Executors.newSingleThreadExecutor();
        try {
            long now = System.nanoTime();
            Generation first = gen(1, InferenceFixtures.randomTokens(new Random(32), 5, CFG.vocabSize()),
                SamplingParams.greedy(6));
            Generation second = gen(2, prompt, p);
            Generation third = gen(3, prompt, p);
            s.submit(first);
            assertNull(s.planPrefill(now), "nothing decodes: the step takes request 1");
            s.complete(s.model().forward(s.plan(now)), now);
            s.submit(second);
            s.submit(third);
            BatchScheduler.Prefill ahead = s.planPrefill(now);
            assertNotNull(ahead, "the batch is full: request 2 is prefilled ahead of it");
            assertArrayEquals(new long[] {2}, ahead.ids(), "one ahead: request 3 waits");
            assertEquals(prompt.length - 1, ahead.batch().size(), "every prompt token but the last");
            assertEquals(0, ahead.batch().logitCount(), "no logits: the last token joins a step");
            java.util.concurrent.Future<float[]> f = prefills.submit(() -> lane.forward(ahead.batch()));
            int steps = 0;
            while (first.finishReason() == null) {
                StepBatch b = s.plan(System.nanoTime());
                assertEquals(1, b.size(), "request 1 decodes alone while 2 is primed");
                s.complete(s.model().forward(b), System.nanoTime());
                if (steps++ == 0) {
                    s.completePrefill(ahead, f.get(30, java.util.concurrent.TimeUnit.SECONDS), System.nanoTime());
                    assertNull(s.planPrefill(System.nanoTime()), "request 2 is primed: none more ahead");
                }
            }
            assertEquals(2, s.queueDepth(), "primed requests count as waiting");
            StepBatch join = s.plan(System.nanoTime());
            assertEquals(1, join.size(), "request 2 joins with its last prompt token only");
            assertEquals(1, join.logitCount());
            s.complete(s.model().forward(join), System.nanoTime());
            assertEquals(1, second.completion().length, "its first token");
            BatchScheduler.Prefill next = s.planPrefill(System.nanoTime());
            assertArrayEquals(new long[] {3}, next.ids(), "request 3 is prefilled ahead now");
            s.completePrefill(next, lane.forward(next.batch()), System.nanoTime());
            int used = s.model().cache().usedBlocks();
            assertTrue(s.cancel(3));
            assertEquals(used - s.model().cache().blocksFor(prompt.length), s.model().cache().usedBlocks(),
                "a cancelled primed request gives its blocks back at once");
            while (s.hasWork()) {
                s.complete(s.model().forward(s.plan(System.nanoTime())), System.nanoTime());
            }
            assertArrayEquals(alone, second.completion());
            assertEquals(FinishReason.CANCELLED, third.finishReason());
            assertEquals(0, s.model().cache().usedBlocks(), "every block returned");
        } finally {
            prefills.shutdownNow();
        }

        // 10 blocks of 4: request 1 (all 10 blocks at full length) decodes while request 2 (9 tokens, 3 blocks) is
        // primed; when request 1 needs its 7th block, request 2's blocks are taken back, not request 1 preempted
        BatchScheduler tight = scheduler(1, 64, 10);
        tight.prefillBeside(true);
        tight.primeAhead(1);
        Generation longOne = gen(1, InferenceFixtures.randomTokens(new Random(33), 4, CFG.vocabSize()),
            SamplingParams.greedy(CFG.seqLen() - 4));
        Generation primedOne = gen(2, prompt, p);
        tight.submit(longOne);
        tight.complete(tight.model().forward(tight.plan(System.nanoTime())), System.nanoTime());
        tight.submit(primedOne);
        BatchScheduler.Prefill pf = tight.planPrefill(System.nanoTime());
        assertArrayEquals(new long[] {2}, pf.ids());
        tight.completePrefill(pf, new KvCachedGpt(((KvCachedGpt) tight.model()).weights(), tight.model().cache())
            .forward(pf.batch()),
            System.nanoTime());
        while (tight.hasWork()) {
            tight.complete(tight.model().forward(tight.plan(System.nanoTime())), System.nanoTime());
        }
        assertEquals(0, tight.preemptions(), "the primed request gave its blocks back; none was preempted");
        assertEquals(CFG.seqLen() - 4, longOne.completion().length);
        assertArrayEquals(alone, primedOne.completion(), "recomputed after giving its blocks back: the same tokens");
        assertEquals(0, tight.model().cache().usedBlocks());
    }

    /**
     * Beside a busy prefill lane the steps admit waiting requests themselves (a burst is not held up):
     * with a budget of 8 tokens the lane takes request 2's 8 rows and no more, and the very next step
     * decodes request 1 and takes 7 of request 3's prompt tokens, while request 2 stays primed.
     */
    @Test
    void shouldAdmitAWaitingRequestIntoTheStepsWhileThePrefillLaneIsBusy() {
        SamplingParams p = new SamplingParams(6, 0.9f, 0.95f, 13L, List.of());
        int[] prompt2 = InferenceFixtures.randomTokens(new Random(71), 9, CFG.vocabSize());
        int[] prompt3 = InferenceFixtures.randomTokens(new Random(72), 9, CFG.vocabSize());
        int[] alone2 = run(scheduler(1, 64, 64), gen(2, prompt2, p), List.of());
        int[] alone3 = run(scheduler(1, 64, 64), gen(3, prompt3, p), List.of());
        BatchScheduler s = scheduler(4, 8, 64);
        s.prefillBeside(true);
        KvCachedGpt lane = new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache());
        long now = System.nanoTime();
        s.submit(gen(1, InferenceFixtures.randomTokens(new Random(73), 5, CFG.vocabSize()),
            SamplingParams.greedy(20)));
        s.complete(s.model().forward(s.plan(now)), now);
        Generation second = gen(2, prompt2, p);
        Generation third = gen(3, prompt3, p);
        s.submit(second);
        s.submit(third);
        BatchScheduler.Prefill busy = s.planPrefill(now);
        assertArrayEquals(new long[] {2}, busy.ids(), "8 rows fill the budget: request 3 waits");
        StepBatch step = s.plan(now);
        assertEquals(1 + 7, step.size(), "request 1's decode token and 7 of request 3's prompt tokens");
        assertEquals(2, s.runningSize(), "the step admitted request 3 while the lane was busy");
        assertEquals(1, s.queueDepth(), "request 2, in the lane");
        s.complete(s.model().forward(step), now);
        s.completePrefill(busy, lane.forward(busy.batch()), now);
        for (int steps = 0; s.hasWork(); steps++) {
            assertTrue(steps < 100, "the requests finish");
            s.complete(s.model().forward(s.plan(System.nanoTime())), System.nanoTime());
        }
        assertArrayEquals(alone2, second.completion());
        assertArrayEquals(alone3, third.completion());
        assertEquals(0, s.model().cache().usedBlocks(), "every block returned");
    }

    /**
     * A primed request that gives its blocks back when the cache runs short goes to the front of the
     * queue: it arrived before every waiting request, so it is admitted (and finishes, at max-batch 1)
     * before the request that arrived after it.
     */
    @Test
    void shouldGiveAPrimedRequestBackToTheFrontOfTheQueue() {
        List<String> log = new ArrayList<>();
        GenerationListener l = recording(log);
        long now = System.nanoTime();
        // 10 blocks of 4: request 1 reaches all 10 at full length; request 2 (9 tokens, 3 blocks) is primed
        BatchScheduler s = scheduler(1, 64, 10);
        s.prefillBeside(true);
        s.primeAhead(1);
        Generation longOne = new Generation(1, InferenceFixtures.randomTokens(new Random(74), 4, CFG.vocabSize()),
            CFG.seqLen(), SamplingParams.greedy(CFG.seqLen() - 4), now, Long.MAX_VALUE, l);
        Generation primed = new Generation(2, InferenceFixtures.randomTokens(new Random(75), 9, CFG.vocabSize()),
            CFG.seqLen(), SamplingParams.greedy(3), now, Long.MAX_VALUE, l);
        Generation later = new Generation(3, InferenceFixtures.randomTokens(new Random(76), 5, CFG.vocabSize()),
            CFG.seqLen(), SamplingParams.greedy(3), now, Long.MAX_VALUE, l);
        s.submit(longOne);
        s.complete(s.model().forward(s.plan(now)), now);
        s.submit(primed);
        BatchScheduler.Prefill pf = s.planPrefill(now);
        assertArrayEquals(new long[] {2}, pf.ids());
        s.completePrefill(pf, new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache())
            .forward(pf.batch()), now);
        s.submit(later);
        assertEquals(2, s.queueDepth());
        s.runToCompletion();
        assertEquals(0, s.preemptions(), "the primed request gave its blocks back; none was preempted");
        List<String> finished = log.stream().filter(e -> e.startsWith("finish")).map(e -> e.split(" ")[1]).toList();
        assertEquals(List.of("1", "2", "3"), finished, "request 2 arrived before request 3");
        assertEquals(0, s.model().cache().usedBlocks(), "every block returned");
    }

    /**
     * A stage that loses its cache (preemptAll) loses what primed requests were prefilled with too:
     * they go back to the queue with the running sequence, every block is freed, and all are recomputed
     * to the tokens they get alone. Not while a prefill is still in the lane.
     */
    @Test
    void shouldRequeuePrimedRequestsWhenEveryKeyAndValueIsLost() throws Exception {
        SamplingParams p = new SamplingParams(8, 0.9f, 0.95f, 91L, List.of());
        int[] prompt = InferenceFixtures.randomTokens(new Random(51), 9, CFG.vocabSize());
        int[] first = InferenceFixtures.randomTokens(new Random(52), 5, CFG.vocabSize());
        int[] primedAlone = run(scheduler(1, 64, 64), gen(2, prompt, p), List.of());
        int[] firstAlone = run(scheduler(1, 64, 64), gen(1, first, p), List.of());
        BatchScheduler s = scheduler(1, 64, 64);
        s.prefillBeside(true);
        s.primeAhead(1);
        KvCachedGpt lane = new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache());
        Generation decoding = gen(1, first, p);
        Generation primed = gen(2, prompt, p);
        s.submit(decoding);
        s.complete(s.model().forward(s.plan(System.nanoTime())), System.nanoTime());
        s.submit(primed);
        BatchScheduler.Prefill ahead = s.planPrefill(System.nanoTime());
        assertArrayEquals(new long[] {2}, ahead.ids());
        assertThrows(IllegalStateException.class, s::preemptAll, "not while the lane writes its blocks");
        s.completePrefill(ahead, lane.forward(ahead.batch()), System.nanoTime());
        s.preemptAll();
        assertEquals(0, s.runningSize());
        assertEquals(2, s.queueDepth());
        assertEquals(0, s.model().cache().usedBlocks(), "the primed request's blocks freed with the running one's");
        s.runToCompletion();
        assertArrayEquals(firstAlone, decoding.completion());
        assertArrayEquals(primedAlone, primed.completion(), "recomputed: the tokens it gets alone");
        assertEquals(0, s.model().cache().usedBlocks());
    }

    /**
     * A request in a prefill beside the steps keeps its blocks through a cancel-all (its prefill is
     * still writing them) and is retired, cancelled, when the prefill completes; a failed prefill
     * (null logits) ends its requests and frees their blocks.
     */
    @Test
    void shouldKeepTheBlocksOfAPrefillInFlightUntilItCompletes() {
        BatchScheduler s = scheduler(4, 64, 40);
        s.prefillBeside(true);
        List<FinishReason> ends = new ArrayList<>();
        GenerationListener l = endings(ends);
        long now = System.nanoTime();
        int[] prompt = {1, 2, 3, 4, 5};
        s.submit(new Generation(1, prompt, CFG.seqLen(), SamplingParams.greedy(30), now, Long.MAX_VALUE, l));
        assertNull(s.planPrefill(now), "nothing decodes: the step admits it");
        s.complete(s.model().forward(s.plan(now)), now);
        s.submit(new Generation(2, prompt, CFG.seqLen(), SamplingParams.greedy(30), now, Long.MAX_VALUE, l));
        s.submit(new Generation(3, prompt, CFG.seqLen(), SamplingParams.greedy(30), now, Long.MAX_VALUE, l));
        BatchScheduler.Prefill p = s.planPrefill(now);
        assertNotNull(p);
        assertArrayEquals(new long[] {2, 3}, p.ids());
        StepBatch step = s.plan(now);
        assertEquals(1, step.size(), "the step decodes request 1 alone");
        s.complete(s.model().forward(step), now);
        int held = s.model().cache().usedBlocks();
        s.cancelAll(FinishReason.CANCELLED);
        assertEquals(List.of(FinishReason.CANCELLED), ends, "request 1 ends; 2 and 3 wait for their prefill");
        assertEquals(held - 2, s.model().cache().usedBlocks(), "the prefilling requests keep their blocks");
        s.completePrefill(p, new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache())
            .forward(p.batch()), now);
        assertEquals(3, ends.size());
        assertEquals(0, s.model().cache().usedBlocks());
        assertFalse(s.hasWork());

        s.submit(new Generation(4, prompt, CFG.seqLen(), SamplingParams.greedy(30), now, Long.MAX_VALUE, l));
        s.complete(s.model().forward(s.plan(now)), now);
        s.submit(new Generation(5, prompt, CFG.seqLen(), SamplingParams.greedy(30), now, Long.MAX_VALUE, l));
        BatchScheduler.Prefill failed = s.planPrefill(now);
        assertArrayEquals(new long[] {5}, failed.ids());
        s.completePrefill(failed, null, now);
        assertEquals(FinishReason.CANCELLED, ends.get(ends.size() - 1));
        assertEquals(1, s.runningSize(), "request 4 decodes on");
        s.runToCompletion();
        assertEquals(0, s.model().cache().usedBlocks());
    }

    /**
     * Two pipeline stages (block 0 and block 1, each with its own cache of its layer) and two
     * micro-batches in flight: every request gets the same tokens as on the whole model, with
     * preemption under a small cache too, and each step holds no sequence of the other pending one.
     */
    @Test
    void shouldGiveTheSameTokensOnTwoStagesWithTwoMicroBatchesInFlight() {
        InferenceWeights w = InferenceWeights.fromFlat(CFG, PARAMS, Quantization.NONE);
        for (int blocks : new int[] {256, 12}) {
            SamplingParams p = new SamplingParams(25, 0.9f, 0.95f, 99L, List.of());
            List<Generation> whole = others(new Random(11), 12, p);
            BatchScheduler reference = scheduler(8, 24, blocks);
            for (Generation g : whole) {
                reference.submit(g);
            }
            reference.runToCompletion();
            KvCachedGpt s0 = new KvCachedGpt(w, new PagedKvCache(CFG, 4, blocks, 1), 0, 1);
            KvCachedGpt s1 = new KvCachedGpt(w, new PagedKvCache(CFG, 4, blocks, 1), 1, 2);
            assertThrows(IllegalStateException.class, () -> s0.forward(new StepBatch()));
            BatchScheduler piped = new BatchScheduler(s0, new BatchScheduler.Limits(8, 24, 1000));
            List<Generation> staged = others(new Random(11), 12, p);
            for (Generation g : staged) {
                piped.submit(g);
            }
            java.util.ArrayDeque<float[]> inFlight = new java.util.ArrayDeque<>();
            int maxPending = 0;
            while (piped.hasWork() || !inFlight.isEmpty()) {
                StepBatch b;
                while (piped.pendingSteps() < 2 && (b = piped.plan(System.nanoTime(), 4)) != null) {
                    inFlight.addLast(s1.stageForward(b, s0.stageForward(b, null)));
                }
                maxPending = Math.max(maxPending, piped.pendingSteps());
                assertFalse(inFlight.isEmpty(), "requests wait but nothing could be planned");
                piped.complete(inFlight.pollFirst(), System.nanoTime());
            }
            assertEquals(2, maxPending, "two micro-batches in flight");
            assertEquals(0, s0.cache().usedBlocks(), "every block returned");
            for (int i = 0; i < whole.size(); i++) {
                assertArrayEquals(whole.get(i).completion(), staged.get(i).completion(), "request " + i + ", "
                    + blocks + " blocks");
            }
            if (blocks == 12) {
                assertTrue(piped.preemptions() > 0, "a full cache preempts");
            }
        }
    }

    /** With a bfloat16 KV cache too, a request gets the same tokens alone and in a batch of 16. */
    @Test
    void shouldGiveTheSameTokensAloneAndInABatchWithABfloat16Cache() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(6), 9, CFG.vocabSize());
        InferenceWeights w = InferenceWeights.fromFlat(CFG, PARAMS, Quantization.NONE);
        for (SamplingParams p : List.of(SamplingParams.greedy(25), new SamplingParams(25, 0.9f, 0.95f, 1234L,
            List.of()))) {
            BatchScheduler alone = new BatchScheduler(new KvCachedGpt(w, new PagedKvCache(CFG, 4, 64, CFG.nLayer(),
                KvPrecision.BF16)), new BatchScheduler.Limits(1, 64, 1000));
            BatchScheduler batch = new BatchScheduler(new KvCachedGpt(w, new PagedKvCache(CFG, 4, 256, CFG.nLayer(),
                KvPrecision.BF16)), new BatchScheduler.Limits(16, 24, 1000));
            int[] want = run(alone, gen(1, prompt, p), List.of());
            assertArrayEquals(want, run(batch, gen(1, prompt, p), others(new Random(7), 15, p)));

            // two pipeline stages, each with a bfloat16 cache of its own layer
            KvCachedGpt s0 = new KvCachedGpt(w, new PagedKvCache(CFG, 4, 256, 1, KvPrecision.BF16), 0, 1);
            KvCachedGpt s1 = new KvCachedGpt(w, new PagedKvCache(CFG, 4, 256, 1, KvPrecision.BF16), 1, 2);
            BatchScheduler piped = new BatchScheduler(s0, new BatchScheduler.Limits(16, 24, 1000));
            Generation needle = gen(1, prompt, p);
            for (Generation g : others(new Random(7), 15, p)) {
                piped.submit(g);
            }
            piped.submit(needle);
            StepBatch b;
            while ((b = piped.plan(System.nanoTime())) != null) {
                piped.complete(s1.stageForward(b, s0.stageForward(b, null)), System.nanoTime());
            }
            assertArrayEquals(want, needle.completion(), "two stages");
        }
    }

    /** Rows of the linears split over 3 threads: the same tokens as alone on one thread, int8 too. */
    @Test
    void shouldGiveTheSameTokensWithTheBatchRowsSplitOverThreads() {
        int[] prompt = InferenceFixtures.randomTokens(new Random(6), 9, CFG.vocabSize());
        SamplingParams p = new SamplingParams(25, 0.9f, 0.95f, 1234L, List.of());
        for (Quantization q : Quantization.values()) {
            InferenceWeights w = InferenceWeights.fromFlat(CFG, PARAMS, q);
            BatchScheduler alone = new BatchScheduler(new KvCachedGpt(w, new PagedKvCache(CFG, 4, 64)),
                new BatchScheduler.Limits(1, 64, 1000));
            KvCachedGpt split = new KvCachedGpt(w, new PagedKvCache(CFG, 4, 256));
            try (RowSplitter rows = new RowSplitter(3, 2)) {
                split.splitRows(rows);
                int[] batched = run(new BatchScheduler(split, new BatchScheduler.Limits(16, 24, 1000)), gen(1,
                    prompt, p),
                    others(new Random(7), 15, p));
                assertArrayEquals(run(alone, gen(1, prompt, p), List.of()), batched, q.name());
            }
        }
    }

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
    void shouldStopAtAStopStringCutItFromTheTextAndNeverReleaseHalfOfIt() {
        Generation g = gen(1, new int[] {1}, new SamplingParams(20, 0f, 1f, 0L, List.of("ab")));
        long now = System.nanoTime();
        assertEquals("x", g.append('x', now));
        assertEquals("", g.append('a', now), "'a' may start the stop string: held back");
        assertEquals("", g.append('b', now));
        assertEquals(FinishReason.STOP, g.finishReason());
        assertEquals("x", g.text());
        assertEquals(3, g.completionTokens());
        Generation u = gen(2, new int[] {1}, SamplingParams.greedy(5));
        assertEquals("", u.append(0xC3, now), "half of a UTF-8 sequence is held");
        assertEquals("\u00e9", u.append(0xA9, now));
        assertEquals("z", u.append('z', now));
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
     * Deferred listener calls: nothing reaches a listener until deliverEvents, then every token and
     * finish arrives in the order an immediate scheduler makes them, with the same texts.
     */
    @Test
    void shouldHoldListenerCallsUntilDeliveredAndKeepTheirOrder() {
        List<String> immediate = new ArrayList<>();
        List<String> deferred = new ArrayList<>();
        for (boolean defer : new boolean[] {false, true}) {
            List<String> log = defer ? deferred : immediate;
            BatchScheduler s = scheduler(4, 16, 64);
            s.deferEvents(defer);
            Random rnd = new Random(21);
            for (int i = 0; i < 6; i++) {
                s.submit(new Generation(i, InferenceFixtures.randomTokens(rnd, 3 + i, CFG.vocabSize()), CFG.seqLen(),
                    new SamplingParams(4 + i, 0.8f, 0.9f, 40L + i, List.of()), System.nanoTime(), Long.MAX_VALUE,
                    recording(log)));
            }
            while (s.hasWork()) {
                int before = log.size();
                StepBatch b = s.plan(System.nanoTime());
                s.complete(s.model().forward(b), System.nanoTime());
                if (defer) {
                    assertEquals(before, log.size(), "no listener call before deliverEvents");
                    assertTrue(s.heldEvents() > 0, "the step's tokens are held");
                    s.deliverEvents();
                    assertEquals(0, s.heldEvents());
                }
            }
        }
        System.out.println("events: " + immediate.size());
        assertEquals(6, immediate.stream().filter(e -> e.startsWith("finish")).count());
        assertEquals(immediate, deferred);
    }

    /**
     * Taken events: the held calls leave the scheduler as one task per step, made only when the task
     * runs (after the next step was planned, as a decode loop does), in the immediate scheduler's order.
     */
    @Test
    void shouldHandTakenEventsToATaskThatMakesThemInOrder() {
        List<String> immediate = new ArrayList<>();
        List<String> taken = new ArrayList<>();
        for (boolean defer : new boolean[] {false, true}) {
            List<String> log = defer ? taken : immediate;
            BatchScheduler s = scheduler(4, 16, 64);
            s.deferEvents(defer);
            Random rnd = new Random(22);
            for (int i = 0; i < 6; i++) {
                s.submit(new Generation(i, InferenceFixtures.randomTokens(rnd, 3 + i, CFG.vocabSize()), CFG.seqLen(),
                    new SamplingParams(4 + i, 0.8f, 0.9f, 50L + i, List.of()), System.nanoTime(), Long.MAX_VALUE,
                    recording(log)));
            }
            assertNull(s.takeEvents(), "nothing held before a step");
            Runnable previous = null;
            while (s.hasWork()) {
                StepBatch b = s.plan(System.nanoTime());
                if (previous != null) {
                    previous.run();              // the last step's tokens go out after this step is planned
                }
                s.complete(s.model().forward(b), System.nanoTime());
                if (defer) {
                    int before = log.size();
                    previous = s.takeEvents();
                    assertNotNull(previous, "every step makes a token");
                    assertEquals(0, s.heldEvents(), "taken out of the scheduler");
                    assertEquals(before, log.size(), "no listener call before the task runs");
                }
            }
            if (previous != null) {
                previous.run();
            }
        }
        assertEquals(6, immediate.stream().filter(e -> e.startsWith("finish")).count());
        assertEquals(immediate, taken);
    }

    /** Each generated token keeps the time it was sampled: first, last and every one in between, in order. */
    @Test
    void shouldKeepTheTimeOfEveryGeneratedToken() {
        Random rnd = new Random(23);
        Generation g = gen(1, InferenceFixtures.randomTokens(rnd, 5, CFG.vocabSize()),
            new SamplingParams(9, 0.8f, 0.9f, 7L, List.of()));
        run(scheduler(4, 16, 64), g, others(rnd, 3, new SamplingParams(6, 0f, 1f, 0L, List.of())));
        assertEquals(9, g.completionTokens());
        assertEquals(g.firstTokenNs(), g.tokenNs(0));
        assertEquals(g.lastTokenNs(), g.tokenNs(8));
        for (int k = 1; k < 9; k++) {
            assertTrue(g.tokenNs(k) > g.tokenNs(k - 1), "token " + k + " sampled after token " + (k - 1));
        }
    }

    /** A listener that adds each finished request's reason to {@code ends}. */
    private static GenerationListener endings(List<FinishReason> ends) {
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

    private static GenerationListener recording(List<String> log) {
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
