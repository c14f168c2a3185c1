package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Prefix caching: requests whose tokens begin with blocks other requests computed take those blocks
 * and get exactly the tokens they get without the cache, in the steps, in the prefill lane, under
 * preemption and eviction; blocks are counted and returned.
 */
@Timeout(120)
class PrefixCacheTest {
    private static final GptConfig CFG = new GptConfig("t", 256, 48, 2, 4, 40, 1e-5f);
    private static final float[] PARAMS = InferenceFixtures.randomParams(CFG, 5);
    /** Blocks of 4 positions: 17 shared tokens are 4 full blocks. */
    private static final int[] SHARED = InferenceFixtures.randomTokens(new Random(31), 17, CFG.vocabSize());

    private static BatchScheduler scheduler(int maxBatch, int blocks, boolean cache) {
        BatchScheduler s = InferenceFixtures.scheduler(CFG, PARAMS, maxBatch, 24, blocks);
        s.cachePrefixes(cache);
        return s;
    }

    /** Requests beginning with {@link #SHARED}, then 1 to 6 tokens of their own; sampled, each its own seed. */
    private static List<int[]> prompts(long seed, int n) {
        Random rnd = new Random(seed);
        List<int[]> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] tail = InferenceFixtures.randomTokens(rnd, 1 + rnd.nextInt(6), CFG.vocabSize());
            int[] p = java.util.Arrays.copyOf(SHARED, SHARED.length + tail.length);
            System.arraycopy(tail, 0, p, SHARED.length, tail.length);
            out.add(p);
        }
        return out;
    }

    private static SamplingParams sampling(int i) {
        return new SamplingParams(12, 0.9f, 0.95f, 1000L + i, List.of());
    }

    /** Each prompt's tokens alone, on a scheduler without the cache. */
    private static List<int[]> alone(List<int[]> prompts) {
        List<int[]> out = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
            BatchScheduler s = scheduler(1, 64, false);
            Generation g = InferenceFixtures.generation(CFG, i, prompts.get(i), sampling(i));
            s.submit(g);
            s.runToCompletion();
            out.add(g.completion());
        }
        return out;
    }

    /**
     * Submits the prompts one every other step (the first alone until it has a computed block), runs
     * steps and, when {@code lane}, prefills beside them on another thread; returns the completions.
     */
    private static List<int[]> drive(BatchScheduler s, List<int[]> prompts, boolean lane) throws Exception {
        ArrayDeque<Generation> arrivals = new ArrayDeque<>();
        List<Generation> all = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
            Generation g = InferenceFixtures.generation(CFG, i, prompts.get(i), sampling(i));
            arrivals.add(g);
            all.add(g);
        }
        s.prefillBeside(lane);
        KvCachedGpt laneModel = new KvCachedGpt(((KvCachedGpt) s.model()).weights(), s.model().cache());
        ExecutorService prefills = Executors.newSingleThreadExecutor();
        try {
            BatchScheduler.Prefill inFlight = null;
            Future<float[]> logits = null;
            s.submit(arrivals.poll());
            for (int steps = 0; s.hasWork() || !arrivals.isEmpty() || inFlight != null; steps++) {
                if (steps >= 6 && steps % 2 == 0 && !arrivals.isEmpty()) {
                    s.submit(arrivals.poll());
                }
                if (inFlight != null) {
                    s.completePrefill(inFlight, logits.get(30, TimeUnit.SECONDS), System.nanoTime());
                    inFlight = null;
                }
                BatchScheduler.Prefill next = lane ? s.planPrefill(System.nanoTime()) : null;
                if (next != null) {
                    inFlight = next;
                    logits = prefills.submit(() -> laneModel.forward(next.batch()));
                }
                StepBatch b = s.plan(System.nanoTime());
                if (b != null) {
                    s.complete(s.model().forward(b), System.nanoTime());
                }
                assertTrue(steps < 10_000, "the requests finish");
            }
        } finally {
            prefills.shutdownNow();
        }
        assertEquals(0, s.model().cache().usedBlocks(), "every block returned");
        return all.stream().map(Generation::completion).toList();
    }

    private static void assertSame(List<int[]> expected, List<int[]> got) {
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), got.get(i), "request " + i);
        }
    }

    @Test
    void shouldTakeASharedPrefixInTheStepsAndGiveTheTokensItGivesWithout() throws Exception {
        List<int[]> prompts = prompts(1, 10);
        BatchScheduler s = scheduler(16, 256, true);
        List<int[]> got = drive(s, prompts, false);
        assertSame(alone(prompts), got);
        PagedKvCache cache = s.model().cache();
        // the first computes the 4 shared blocks; the 9 after it arrive once they are offered and take them
        assertEquals(9L * 16, cache.reusedTokens(), "each later request took the 16 shared positions");
        assertTrue(cache.cachedBlocks() >= 4, "released blocks stay cached: " + cache.cachedBlocks());
        assertEquals(cache.numBlocks(), cache.freeBlocks(), "cached blocks count as free");

        BatchScheduler off = scheduler(16, 256, false);
        assertSame(got, drive(off, prompts, false));
        assertEquals(0, off.model().cache().reusedTokens(), "off: nothing taken");
    }

    @Test
    void shouldTakeASharedPrefixInThePrefillLaneAndGiveTheTokensItGivesWithout() throws Exception {
        List<int[]> prompts = prompts(2, 10);
        BatchScheduler s = scheduler(16, 256, true);
        List<int[]> got = drive(s, prompts, true);
        assertSame(alone(prompts), got);
        assertTrue(s.prefilledBeside() > 0, "the lane prefilled some: " + s.prefilledBeside());
        assertEquals(9L * 16, s.model().cache().reusedTokens());
    }

    /**
     * A prompt prefilled beside the steps offers its full blocks as soon as that prefill completes: a
     * request with the same prefix that goes to the lane before the first has joined any step takes the
     * 4 shared blocks (16 positions) and computes only its own rows; both get the tokens they get alone.
     */
    @Test
    void shouldOfferTheBlocksOfAPromptPrefilledBesideTheSteps() {
        List<int[]> prompts = prompts(7, 2);
        List<int[]> alone = alone(prompts);
        BatchScheduler s = scheduler(4, 64, true);
        s.prefillBeside(true);
        PagedKvCache cache = s.model().cache();
        KvCachedGpt lane = new KvCachedGpt(((KvCachedGpt) s.model()).weights(), cache);
        long now = System.nanoTime();
        s.submit(InferenceFixtures.generation(CFG, 9, InferenceFixtures.randomTokens(new Random(8), 5,
            CFG.vocabSize()), SamplingParams.greedy(20)));
        s.complete(s.model().forward(s.plan(now)), now);             // decodes: new requests go to the lane
        Generation first = InferenceFixtures.generation(CFG, 0, prompts.get(0), sampling(0));
        Generation second = InferenceFixtures.generation(CFG, 1, prompts.get(1), sampling(1));
        s.submit(first);
        BatchScheduler.Prefill p1 = s.planPrefill(now);
        assertArrayEquals(new long[] {0}, p1.ids());
        s.completePrefill(p1, lane.forward(p1.batch()), now);
        s.submit(second);
        BatchScheduler.Prefill p2 = s.planPrefill(now);
        assertArrayEquals(new long[] {1}, p2.ids(), "the first is primed, not yet in a step");
        assertEquals(16, cache.reusedTokens(), "the second took the 4 blocks the first's prefill offered");
        assertEquals(prompts.get(1).length - 1 - 16, p2.batch().size(), "only its own rows are computed");
        s.completePrefill(p2, lane.forward(p2.batch()), now);
        s.runToCompletion();
        assertArrayEquals(alone.get(0), first.completion());
        assertArrayEquals(alone.get(1), second.completion());
        assertEquals(0, cache.usedBlocks(), "every block returned");
    }

    /**
     * 12 blocks (one full-context sequence is 10): requests preempt one another, the cached blocks
     * are evicted for allocations, and every request still gets its tokens.
     */
    @Test
    void shouldEvictCachedBlocksUnderPressureAndStillGiveTheSameTokens() throws Exception {
        List<int[]> prompts = prompts(3, 8);
        Random rnd = new Random(4);
        for (int i = 0; i < 4; i++) {       // others with prompts of their own fill the cache too
            prompts.add(InferenceFixtures.randomTokens(rnd, 9 + rnd.nextInt(9), CFG.vocabSize()));
        }
        java.util.Collections.shuffle(prompts.subList(1, prompts.size()), rnd);
        BatchScheduler s = scheduler(4, 12, true);
        List<int[]> got = drive(s, prompts, false);
        assertSame(alone(prompts), got);
        assertTrue(s.preemptions() > 0, "a full cache preempts");
        assertTrue(s.model().cache().evictions() > 0, "cached blocks were evicted");
        assertTrue(s.model().cache().reusedTokens() > 0, "and shared before");
    }

    /**
     * Admission counts the blocks a request would share with a sequence holding them as room: with 7
     * of 10 blocks held by a request decoding (the 4 of {@link #SHARED}'s full blocks among them), a
     * second request beginning alike needs 6 blocks but only 2 new ones, and joins it at once instead of
     * waiting for it to finish; both get the tokens they get alone. Without the cache, it waits.
     */
    @Test
    void shouldAdmitARequestThatSharesHeldBlocksWhenOnlyItsOwnBlocksAreFree() {
        List<int[]> prompts = prompts(61, 2);
        prompts.set(0, java.util.Arrays.copyOf(prompts.get(0), 18));       // 17 shared + 1 of its own
        prompts.set(1, java.util.Arrays.copyOf(prompts.get(1), 18));
        prompts.get(1)[17] = (prompts.get(0)[17] + 1) % CFG.vocabSize();
        List<int[]> alone = alone(prompts);
        for (boolean cache : new boolean[] {true, false}) {
            BatchScheduler s = scheduler(4, 10, cache);
            Generation first = InferenceFixtures.generation(CFG, 0, prompts.get(0), sampling(0));
            Generation second = InferenceFixtures.generation(CFG, 1, prompts.get(1), sampling(1));
            s.submit(first);
            for (int i = 0; i < 8; i++) {              // 18 + 7 positions: 7 blocks held, 3 free
                s.complete(s.model().forward(s.plan(System.nanoTime())), System.nanoTime());
            }
            assertEquals(7, s.model().cache().usedBlocks());
            s.submit(second);                           // 19 positions: 5 blocks, 4 of them shared
            s.complete(s.model().forward(s.plan(System.nanoTime())), System.nanoTime());
            assertEquals(cache ? 2 : 1, s.runningSize(), "cache " + cache + ": admitted beside the first");
            s.runToCompletion();
            assertArrayEquals(alone.get(0), first.completion(), "cache " + cache);
            assertArrayEquals(alone.get(1), second.completion(), "cache " + cache);
            assertEquals(0, s.model().cache().usedBlocks());
        }
    }

    /**
     * A request that scores its prompt computes every prompt row (it needs their logits) and offers
     * its blocks; after {@link BatchScheduler#preemptAll} (a stage lost its cache) nothing is taken
     * from the index until steps compute blocks again.
     */
    @Test
    void shouldComputeAScoredPromptAndForgetEveryPrefixWhenAStageLosesItsCache() {
        BatchScheduler s = scheduler(16, 256, true);
        PagedKvCache cache = s.model().cache();
        Generation scorer = InferenceFixtures.generation(CFG, 1, SHARED, SamplingParams.greedy(1)
            .withLogprobs(0, true));
        s.submit(scorer);
        s.runToCompletion();
        assertEquals(0, cache.reusedTokens());
        assertEquals(4, cache.indexedBlocks(), "its 4 full blocks offered");

        Generation again = InferenceFixtures.generation(CFG, 2, SHARED, SamplingParams.greedy(1)
            .withLogprobs(0, true));
        s.submit(again);
        s.runToCompletion();
        assertEquals(0, cache.reusedTokens(), "a scored prompt takes nothing");
        for (int p = 1; p < SHARED.length; p++) {
            assertEquals(scorer.logprob(p), again.logprob(p), "position " + p);
        }

        int[] prompt = prompts(5, 1).get(0);
        Generation first = InferenceFixtures.generation(CFG, 3, prompt, sampling(0));
        s.submit(first);
        StepBatch b = s.plan(System.nanoTime());
        s.complete(s.model().forward(b), System.nanoTime());
        assertEquals(16, cache.reusedTokens(), "a sampling request takes the offered blocks");
        s.preemptAll();
        assertEquals(0, cache.indexedBlocks(), "the index is empty");
        s.runToCompletion();
        assertEquals(16, cache.reusedTokens(), "recomputed, not taken");
        assertArrayEquals(alone(List.of(prompt)).get(0), first.completion());
    }

    /** Reference counts: a shared block is held while any table holds it; the least recently released goes first. */
    @Test
    void shouldCountSharersAndEvictTheLeastRecentlyReleasedBlockFirst() {
        PagedKvCache cache = new PagedKvCache(CFG, 4, 12);
        int[] other = InferenceFixtures.randomTokens(new Random(9), 9, CFG.vocabSize());
        Generation g1 = InferenceFixtures.generation(CFG, 1, java.util.Arrays.copyOf(SHARED, 9), sampling(0));
        Generation g2 = InferenceFixtures.generation(CFG, 2, other, sampling(0));
        for (Generation g : List.of(g1, g2)) {
            assertTrue(cache.ensureCapacity(g.table(), 9));
            cache.offer(g, 8);                  // 2 full blocks computed; the third is partly written
        }
        int g1Second = g1.table().block(1);
        assertEquals(4, cache.indexedBlocks());
        cache.free(g1.table());                 // released last block first: g1's third, second, first
        cache.free(g2.table());
        assertEquals(4, cache.cachedBlocks(), "the full blocks stay cached, the partial ones are plain free");
        assertEquals(0, cache.usedBlocks());

        Generation b = InferenceFixtures.generation(CFG, 3, other, sampling(1));
        Generation c = InferenceFixtures.generation(CFG, 4, other, sampling(2));
        assertEquals(8, cache.reuse(b, 9));
        assertEquals(8, cache.reuse(c, 8));
        Generation d = InferenceFixtures.generation(CFG, 5, other, sampling(3));
        assertEquals(4, cache.reuse(d, 7), "whole blocks up to the limit only");
        cache.free(d.table());
        assertEquals(b.table().block(1), c.table().block(1), "one block, two tables");
        assertEquals(2, cache.usedBlocks());
        cache.free(b.table());
        assertEquals(2, cache.usedBlocks(), "c still holds them");
        cache.free(c.table());
        assertEquals(0, cache.usedBlocks());
        assertEquals(4, cache.cachedBlocks());

        BlockTable hog = new BlockTable();
        assertTrue(cache.ensureCapacity(hog, 4 * (cache.numBlocks() - 4)), "every never-used block");
        assertEquals(0, cache.evictions());
        assertTrue(cache.ensureCapacity(hog, 4 * (hog.size() + 1)));
        assertEquals(1, cache.evictions());
        assertEquals(g1Second, hog.block(hog.size() - 1), "the least recently released cached block");
        assertEquals(3, cache.indexedBlocks());
        Generation again = InferenceFixtures.generation(CFG, 6, java.util.Arrays.copyOf(SHARED, 9), sampling(0));
        assertEquals(4, cache.reuse(again, 8), "its first block is still there, its second is not");
        assertTrue(!cache.ensureCapacity(hog, 4 * (cache.numBlocks() + 1)), "never more than the pool");
        cache.free(hog);
        cache.free(again.table());
        assertEquals(0, cache.usedBlocks());
    }

    /**
     * Two sequences that computed the same prompt apart, offering their blocks in turns: a block whose
     * prefix another block already holds is not indexed, and the keys after it chain from the one the
     * index has, so a third sequence with that prompt finds the whole chain, whichever sequence offered
     * each block; the one only partly alike finds its common part only.
     */
    @Test
    void shouldChainKeysThroughTheBlockTheIndexHoldsForAPrefixComputedTwice() {
        PagedKvCache cache = new PagedKvCache(CFG, 4, 16);
        int[] prompt = java.util.Arrays.copyOf(SHARED, 13);
        Generation g1 = InferenceFixtures.generation(CFG, 1, prompt, sampling(0));
        Generation g2 = InferenceFixtures.generation(CFG, 2, prompt, sampling(0));
        assertTrue(cache.ensureCapacity(g1.table(), 13) && cache.ensureCapacity(g2.table(), 13));
        cache.offer(g1, 4);                     // g1's first block
        cache.offer(g2, 12);                    // g2's first is a duplicate; its second and third are indexed
        cache.offer(g1, 12);                    // g1's second and third are duplicates of g2's
        assertEquals(3, cache.indexedBlocks());
        Generation again = InferenceFixtures.generation(CFG, 3, prompt, sampling(1));
        assertEquals(12, cache.reuse(again, 12));
        assertEquals(g1.table().block(0), again.table().block(0));
        assertEquals(g2.table().block(1), again.table().block(1));
        assertEquals(g2.table().block(2), again.table().block(2));
        int[] partly = prompt.clone();
        partly[5] = (partly[5] + 1) % CFG.vocabSize();     // differs in the second block
        Generation apart = InferenceFixtures.generation(CFG, 4, partly, sampling(1));
        assertEquals(4, cache.reuse(apart, 12), "the first block only");
        for (Generation g : List.of(g1, g2, again, apart)) {
            cache.free(g.table());
        }
        assertEquals(0, cache.usedBlocks());
    }
}
