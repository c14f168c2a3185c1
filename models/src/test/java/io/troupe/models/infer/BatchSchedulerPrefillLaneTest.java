package io.troupe.models.infer;

import static io.troupe.models.infer.BatchSchedulerFixtures.CFG;
import static io.troupe.models.infer.BatchSchedulerFixtures.endings;
import static io.troupe.models.infer.BatchSchedulerFixtures.gen;
import static io.troupe.models.infer.BatchSchedulerFixtures.others;
import static io.troupe.models.infer.BatchSchedulerFixtures.recording;
import static io.troupe.models.infer.BatchSchedulerFixtures.run;
import static io.troupe.models.infer.BatchSchedulerFixtures.scheduler;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Prompts prefilled beside the steps: the same tokens, one-token prompts, priming ahead of a full batch,
 * admission beside a busy lane, primed requests given back to the queue, and blocks kept while a prefill is in flight.
 */
@Timeout(120)
class BatchSchedulerPrefillLaneTest {
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
}
