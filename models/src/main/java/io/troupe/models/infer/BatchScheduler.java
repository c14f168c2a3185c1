package io.troupe.models.infer;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * Continuous (iteration-level) batching over a paged KV cache, as a plain class the serving actor
 * drives: {@link #plan} builds one step, the step's forward runs (on any thread), {@link #complete}
 * samples, appends and retires. Requests join at every step and leave the moment they finish.
 *
 * <p>Each step, under a budget of {@code tokenBudget} tokens:
 * <ol>
 *   <li>running sequences first, oldest first: one token each when decoding, a chunk of the rest
 *       of their prompt while prefilling (so a long prompt never stalls the others' next token);
 *       a sequence that needs a new block and finds none preempts the newest running one, whose
 *       blocks are freed and whose tokens are recomputed when it is readmitted (front of the queue);</li>
 *   <li>then waiting requests in arrival order while the batch has fewer than {@code maxBatch}
 *       sequences, budget is left and the pool has free blocks for the whole prompt and its first
 *       new token; the head of the queue is never overtaken.</li>
 * </ol>
 * A request past its deadline, or cancelled, is retired at the next plan or completion and its
 * blocks return to the pool at once. Not thread-safe: one driving thread.
 */
public final class BatchScheduler {
    /**
     * @param maxBatch    sequences in one step at most
     * @param tokenBudget tokens in one step at most (>= maxBatch, so every running sequence decodes)
     * @param maxQueue    waiting requests at most; beyond it {@link #submit} refuses
     */
    public record Limits(int maxBatch, int tokenBudget, int maxQueue) {
        public Limits {
            if (maxBatch < 1) {
                throw new IllegalArgumentException("max batch must be >= 1: maxBatch=" + maxBatch);
            }
            if (tokenBudget < maxBatch) {
                throw new IllegalArgumentException("token budget must be >= max batch: tokenBudget=" + tokenBudget
                    + ", maxBatch=" + maxBatch);
            }
            if (maxQueue < 0) {
                throw new IllegalArgumentException("queue limit must be >= 0: maxQueue=" + maxQueue);
            }
        }
    }

    private record Scheduled(Generation generation, int tokens, int logitRow) {
    }

    private final KvCachedGpt model;
    private final PagedKvCache cache;
    private final Limits limits;
    private final ArrayDeque<Generation> waiting = new ArrayDeque<>();
    private final List<Generation> running = new ArrayList<>();
    private final List<Scheduled> scheduled = new ArrayList<>();
    private final StepBatch batch = new StepBatch();
    private long preemptions;
    private long tokensGenerated;

    public BatchScheduler(KvCachedGpt model, Limits limits) {
        this.model = model;
        this.cache = model.cache();
        this.limits = limits;
        int ctx = model.config().seqLen();
        if (cache.numBlocks() < cache.blocksFor(ctx)) {
            throw new IllegalArgumentException("KV cache of " + cache.numBlocks()
                + " blocks cannot hold one sequence of "
                + ctx + " tokens (" + cache.blocksFor(ctx) + " blocks of " + cache.blockSize() + ")");
        }
    }

    public KvCachedGpt model() {
        return model;
    }

    public Limits limits() {
        return limits;
    }

    /** Queues a request; false (nothing queued) when {@code maxQueue} requests already wait. */
    public boolean submit(Generation g) {
        if (waiting.size() >= limits.maxQueue()) {
            return false;
        }
        waiting.addLast(g);
        return true;
    }

    /**
     * Cancels request {@code id}: a waiting one ends now; a running one is retired (its blocks
     * freed) at the next {@link #plan} or {@link #complete}. Returns false for an unknown id.
     */
    public boolean cancel(long id) {
        for (Iterator<Generation> it = waiting.iterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (g.id() == id) {
                it.remove();
                cache.free(g.table());
                g.finish(FinishReason.CANCELLED);
                g.listener().onFinish(g);
                return true;
            }
        }
        for (Generation g : running) {
            if (g.id() == id) {
                g.cancel();
                return true;
            }
        }
        return false;
    }

    public int queueDepth() {
        return waiting.size();
    }

    public int runningSize() {
        return running.size();
    }

    public boolean hasWork() {
        return !waiting.isEmpty() || !running.isEmpty();
    }

    public long preemptions() {
        return preemptions;
    }

    public long tokensGenerated() {
        return tokensGenerated;
    }

    /**
     * Builds the next step, or returns null when there is nothing to run. The returned batch is
     * valid until {@link #complete}, which must follow before the next plan.
     */
    public StepBatch plan(long nowNs) {
        if (!scheduled.isEmpty()) {
            throw new IllegalStateException("plan called while a step of " + scheduled.size()
                + " sequences is pending");
        }
        expireWaiting(nowNs);
        for (int i = running.size() - 1; i >= 0; i--) {
            Generation g = running.get(i);
            if (g.isCancelled()) {
                retire(i, FinishReason.CANCELLED);
            } else if (expired(g, nowNs)) {
                retire(i, FinishReason.DEADLINE);
            }
        }
        batch.clear();
        int budget = limits.tokenBudget();
        for (int i = 0; i < running.size() && budget > 0; i++) {
            Generation g = running.get(i);
            int chunk = Math.min(g.numTokens() - g.numComputed(), budget);
            while (!cache.ensureCapacity(g.table(), g.numComputed() + chunk)) {
                Generation victim = running.get(running.size() - 1);
                preempt(running.size() - 1);
                if (victim == g) {
                    break;
                }
            }
            if (i >= running.size() || running.get(i) != g) {
                break;                                  // g itself was preempted: it was the newest
            }
            budget -= schedule(g, chunk);
        }
        while (budget > 0 && running.size() < limits.maxBatch() && !waiting.isEmpty()) {
            Generation g = waiting.peekFirst();
            if (cache.freeBlocks() < cache.blocksFor(g.numTokens() + 1)) {
                break;
            }
            waiting.pollFirst();
            int chunk = Math.min(g.numTokens(), budget);
            cache.ensureCapacity(g.table(), chunk);
            running.add(g);
            budget -= schedule(g, chunk);
        }
        return batch.size() == 0 ? null : batch;
    }

    private int schedule(Generation g, int chunk) {
        int from = g.numComputed();
        int row = -1;
        for (int j = 0; j < chunk; j++) {
            int r = batch.add(g.token(from + j), from + j, g.table(), from + j == g.numTokens() - 1);
            if (r >= 0) {
                row = r;
            }
        }
        scheduled.add(new Scheduled(g, chunk, row));
        return chunk;
    }

    private void preempt(int index) {
        Generation g = running.remove(index);
        cache.free(g.table());
        g.resetComputed();
        waiting.addFirst(g);
        preemptions++;
    }

    private static boolean expired(Generation g, long nowNs) {
        return g.deadlineNs() != Long.MAX_VALUE && nowNs - g.deadlineNs() > 0;
    }

    private void expireWaiting(long nowNs) {
        for (Iterator<Generation> it = waiting.iterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (expired(g, nowNs)) {
                it.remove();
                cache.free(g.table());
                g.finish(FinishReason.DEADLINE);
                g.listener().onFinish(g);
            }
        }
    }

    /** Applies a step's logits (from {@link KvCachedGpt#forward} of the planned batch): samples, appends, retires. */
    public void complete(float[] logits, long nowNs) {
        int vocab = model.config().vocabSize();
        for (Scheduled s : scheduled) {
            Generation g = s.generation();
            g.advanceComputed(s.tokens());
            if (s.logitRow() < 0 || g.isCancelled()) {
                continue;
            }
            int token = g.sample(logits, s.logitRow() * vocab, vocab);
            String delta = g.append(token, nowNs);
            tokensGenerated++;
            g.listener().onToken(g, token, delta);
        }
        scheduled.clear();
        for (int i = running.size() - 1; i >= 0; i--) {
            Generation g = running.get(i);
            if (g.isCancelled()) {
                retire(i, FinishReason.CANCELLED);
            } else if (g.isFinished()) {
                retire(i, g.finishReason());
            }
        }
    }

    /** Ends every waiting and running request with {@code reason}, freeing all blocks (shutdown, failed step). */
    public void cancelAll(FinishReason reason) {
        scheduled.clear();
        for (int i = running.size() - 1; i >= 0; i--) {
            retire(i, reason);
        }
        while (!waiting.isEmpty()) {
            Generation g = waiting.pollFirst();
            cache.free(g.table());
            g.finish(reason);
            g.listener().onFinish(g);
        }
    }

    /** Abandons a planned step whose forward failed: its sequences are recomputed from scratch. */
    public void abandon() {
        for (Scheduled s : scheduled) {
            s.generation().resetComputed();
        }
        scheduled.clear();
    }

    private void retire(int index, FinishReason reason) {
        Generation g = running.remove(index);
        cache.free(g.table());
        g.finish(reason);
        String rest = g.drainText();
        if (!rest.isEmpty()) {
            g.listener().onToken(g, -1, rest);
        }
        g.listener().onFinish(g);
    }

    /** Runs steps on the calling thread until nothing is left (tests, eval, offline generation). */
    public void runToCompletion() {
        while (hasWork()) {
            StepBatch b = plan(System.nanoTime());
            if (b == null) {
                throw new IllegalStateException("requests wait but none can be scheduled: " + waiting.size()
                    + " waiting, " + cache.freeBlocks() + " free blocks");
            }
            complete(model.forward(b), System.nanoTime());
        }
    }
}
