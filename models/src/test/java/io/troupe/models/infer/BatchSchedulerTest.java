package io.troupe.models.infer;

import static io.troupe.models.infer.BatchSchedulerFixtures.CFG;
import static io.troupe.models.infer.BatchSchedulerFixtures.PARAMS;
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
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Continuous batching: a request gets the same tokens alone and in a batch (penalties, two pipeline stages,
 * a bfloat16 cache, rows split over threads), stop strings, token times, and held or taken listener calls.
 */
@Timeout(120)
class BatchSchedulerTest {
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
}
