package io.troupe.models.infer;

import java.util.ArrayDeque;
import java.util.ArrayList;
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
 *
 * <p>Pipelined serving keeps several steps (micro-batches) in flight: {@link #plan(long, int)} may
 * be called again before the earlier steps complete; a sequence belongs to at most one pending
 * step, in-flight sequences are never preempted, and {@link #complete} applies the oldest pending
 * step (stages finish steps in the order they were planned).
 *
 * <p>A driver with a second core may prefill beside the steps ({@link #prefillBeside}): while
 * sequences decode, {@link #planPrefill} hands waiting requests, in arrival order, to a prefill
 * forward that runs on another thread (its own {@link KvCachedGpt} over the same weights and cache,
 * on blocks no step touches). It computes every prompt token but the last; a request so
 * <em>primed</em> then joins the next step with room with one row (its last prompt token, whose
 * logits give its first new token) instead of a whole prompt. The lane primes as many requests as
 * the batch has free places, or, with {@link #primeAhead} above 0, that many more, ahead of a full
 * batch (each then replaces a finished sequence with one row, at max-batch 1 too). The steps admit
 * a waiting request themselves only into room the primed ones do not cover, and only while the lane
 * is busy (a burst of arrivals is not held up) or they have nothing else to run (so one request
 * alone is served exactly as without the lane). Each prompt's forward is the same row-independent
 * computation wherever it runs, and wherever it is split: the tokens do not change. Primed
 * requests count as waiting ({@link #queueDepth}); when the cache runs short, the newest primed
 * request gives its blocks back (and is recomputed later) before any running sequence is preempted.
 *
 * <p>Listeners are called at once, or, after {@link #deferEvents deferEvents(true)}, held in order
 * until {@link #deliverEvents}: a driver that plans and starts the next step before it delivers
 * keeps the clients' streaming work off the path from one step to the next.
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

    /** A planned step whose logits are not applied yet. */
    private record Pending(StepBatch batch, List<ScheduledChunk> scheduled) {
    }

    /**
     * Whole prompts to prefill beside the steps ({@link #planPrefill}): run {@link #batch()} through
     * a {@link KvCachedGpt} forward on any thread, then give the logits to {@link #completePrefill}.
     */
    public static final class Prefill {
        final StepBatch batch = new StepBatch();
        final List<ScheduledChunk> scheduled = new ArrayList<>();

        Prefill() {
        }

        /** The prompts' tokens but each one's last, one row each; logits asked only for rows that score a prompt. */
        public StepBatch batch() {
            return batch;
        }

        /** Requests in this prefill. */
        public int requests() {
            return scheduled.size();
        }

        /** The ids of its requests, in arrival order. */
        public long[] ids() {
            return scheduled.stream().mapToLong(x -> x.generation().id()).toArray();
        }
    }

    private final DecodingModel model;
    private final PagedKvCache cache;
    private final Limits limits;
    private final ArrayDeque<Generation> waiting = new ArrayDeque<>();
    private final List<Generation> running = new ArrayList<>();
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    private final ArrayDeque<Pending> spare = new ArrayDeque<>();
    private final java.util.Set<Generation> inFlight =
        java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
    private final SchedulerEvents events = new SchedulerEvents();
    private final PrefixReuse prefixes;
    private final PrefillLane lane;
    private final SchedulerExits exits;
    private List<ScheduledChunk> scheduled;
    private StepBatch batch;
    private long tokensGenerated;

    public BatchScheduler(DecodingModel model, Limits limits) {
        this.model = model;
        this.cache = model.cache();
        this.limits = limits;
        int ctx = model.config().seqLen();
        if (cache.numBlocks() < cache.blocksFor(ctx)) {
            throw new IllegalArgumentException("KV cache of " + cache.numBlocks()
                + " blocks cannot hold one sequence of "
                + ctx + " tokens (" + cache.blocksFor(ctx) + " blocks of " + cache.blockSize() + ")");
        }
        this.prefixes = new PrefixReuse(cache);
        this.lane = new PrefillLane(model, limits, waiting, running, inFlight, events, prefixes);
        this.exits = new SchedulerExits(cache, waiting, running, inFlight, events, lane);
    }

    public DecodingModel model() {
        return model;
    }

    public Limits limits() {
        return limits;
    }

    /** Queues a request; false (nothing queued) when {@code maxQueue} requests already wait. */
    public boolean submit(Generation g) {
        if (queueDepth() >= limits.maxQueue()) {
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
        return exits.cancel(id);
    }

    /**
     * With {@code true}, listener calls are held (in the order they happen) until
     * {@link #deliverEvents}; with {@code false} (the default) they are made at once, and any held
     * ones are delivered now.
     */
    public void deferEvents(boolean defer) {
        events.defer(defer);
    }

    /** Makes the held listener calls, oldest first (none are held unless {@link #deferEvents} is on). */
    public void deliverEvents() {
        events.deliver();
    }

    /**
     * Takes the held listener calls out of this scheduler, oldest first, as one task that makes them
     * (on any thread, once), or null when none are held: a driver hands them to another thread so
     * the clients' streaming work runs beside the next step instead of before it. The calls of
     * successive tasks keep their order when the tasks run in the order they were taken.
     */
    public Runnable takeEvents() {
        return events.take();
    }

    /** Listener calls held for {@link #deliverEvents}. */
    public int heldEvents() {
        return events.held();
    }

    /** Requests not yet decoding: waiting, and primed (ready or in the lane). */
    public int queueDepth() {
        return waiting.size() + lane.size();
    }

    public int runningSize() {
        return running.size();
    }

    public boolean hasWork() {
        return !waiting.isEmpty() || !lane.isEmpty() || !running.isEmpty();
    }

    public long preemptions() {
        return exits.preemptions();
    }

    public long tokensGenerated() {
        return tokensGenerated;
    }

    /** Requests prefilled beside the steps so far ({@link #planPrefill}). */
    public long prefilledBeside() {
        return lane.prefilled();
    }

    /**
     * With {@code true}, a driver prefills new requests beside the steps ({@link #planPrefill}), and
     * while any sequence decodes the steps admit waiting ones themselves only where the lane's do not
     * cover the free room; with {@code false} (the default) the steps admit and prefill them.
     */
    public void prefillBeside(boolean on) {
        lane.prefillBeside(on);
    }

    /**
     * How many requests the prefill lane may prime beyond the batch's free room (default 0: only as
     * many as there are free places in the batch). Above 0, while requests queue behind a full batch,
     * the lane computes their prompts ahead, and each joins the batch with one row the moment a
     * place frees (at max-batch 1 too), instead of a whole prompt: more tokens per second where the
     * lane has a core to itself; on a host where it shares one with the HTTP side the steps can wait
     * for it instead.
     */
    public void primeAhead(int requests) {
        if (requests < 0) {
            throw new IllegalArgumentException("prime-ahead must be >= 0: " + requests);
        }
        lane.primeAhead(requests);
    }

    /**
     * With {@code true}, the full blocks of keys and values that steps compute are kept in the cache's
     * prefix index, and a request whose tokens begin with an indexed prefix takes those blocks
     * instead of computing them ({@link PagedKvCache}: the same bits, so the same tokens). A request
     * that scores its prompt computes every prompt row (it needs their logits) and only offers its
     * blocks. Off by default.
     */
    public void cachePrefixes(boolean on) {
        prefixes.cachePrefixes(on);
    }

    /**
     * Takes waiting requests, in arrival order, for one prefill beside the steps: while sequences
     * decode in the steps, the running and primed requests are fewer than {@code maxBatch} (plus
     * {@link #primeAhead}), the pool has free blocks for a whole prompt and its first new token and
     * the prompts fit in {@code tokenBudget} tokens (the first always fits). Each prompt's tokens but
     * its last are computed (a one-token prompt has nothing to compute beside: the steps take it).
     * Returns null when none is taken (nothing waits, nothing decodes: the next step admits it, or no
     * room). The requests are primed from now on: no step schedules them, and none gives its blocks
     * back, until {@link #completePrefill}.
     */
    public Prefill planPrefill(long nowNs) {
        expireWaiting(nowNs);
        return lane.plan();
    }

    /**
     * Applies a prefill beside the steps (a forward of {@link Prefill#batch()}, which asks for the logits
     * of the prompt rows that requests scoring their prompt need, and no others): its requests' prompts
     * but the last token are computed (and scored), and each joins a step when
     * there is room. A request cancelled meanwhile is retired; with {@code logits} null (the forward
     * failed) the requests end, finish reason cancelled.
     */
    public void completePrefill(Prefill p, float[] logits, long nowNs) {
        lane.complete(p, logits, nowNs);
    }

    /**
     * Builds the next step, or returns null when there is nothing to run. The returned batch is
     * valid until {@link #complete}, which must follow before the next plan.
     */
    public StepBatch plan(long nowNs) {
        if (!pending.isEmpty()) {
            throw new IllegalStateException("plan called while a step of " + pending.peekFirst().scheduled().size()
                + " sequences is pending");
        }
        return plan(nowNs, limits.maxBatch());
    }

    /** Steps planned and not yet completed. */
    public int pendingSteps() {
        return pending.size();
    }

    /**
     * Builds another step of at most {@code maxSequences} sequences from those not in a pending
     * step, or returns null when none can run now. The batch is valid until its {@link #complete}.
     */
    public StepBatch plan(long nowNs, int maxSequences) {
        if (maxSequences < 1) {
            throw new IllegalArgumentException("a step needs room for >= 1 sequence: maxSequences=" + maxSequences);
        }
        expireWaiting(nowNs);
        lane.retirePrimed(nowNs);
        exits.retireStopped(nowNs);
        Pending step = spare.isEmpty() ? new Pending(new StepBatch(), new ArrayList<>()) : spare.pollFirst();
        batch = step.batch();
        scheduled = step.scheduled();
        batch.clear();
        int budget = limits.tokenBudget();
        for (int i = 0; i < running.size() && budget > 0 && scheduled.size() < maxSequences; i++) {
            Generation g = running.get(i);
            if (inFlight.contains(g)) {
                continue;
            }
            int chunk = Math.min(g.numTokens() - g.numComputed(), budget);
            while (!cache.ensureCapacity(g.table(), g.numComputed() + chunk)) {
                if (lane.unprimeNewest()) {
                    continue;                           // a primed request's blocks before a running sequence's
                }
                int v = exits.newestIdle();
                Generation victim = running.get(v);
                exits.preempt(v);
                if (victim == g) {
                    break;
                }
            }
            if (i >= running.size() || running.get(i) != g) {
                break;                                  // g itself was preempted: it was the newest idle one
            }
            budget -= schedule(g, chunk);
        }
        // beside a prefill lane, the steps admit waiting requests only into room the primed ones do not cover,
        // and only while the lane is busy (a burst is not held up) or they have nothing else to run
        final boolean admit = lane.stepsAdmit();
        // primed requests first, in arrival order: one row each (the rest of the prompt is computed)
        while (budget > 0 && running.size() < limits.maxBatch() && scheduled.size() < maxSequences
            && lane.firstReady()) {
            Generation g = lane.takeFirst();
            running.add(g);
            budget -= schedule(g, Math.min(g.numTokens() - g.numComputed(), budget));
        }
        while (budget > 0 && running.size() + lane.size() < limits.maxBatch()
            && scheduled.size() < maxSequences && !waiting.isEmpty()) {
            Generation g = waiting.peekFirst();
            // a one-token prompt gives the lane nothing to compute (its token joins a step): the steps take it,
            // or it would hold up the queue behind it until the running sequences had all finished
            if ((!admit && g.numTokens() > 1) || !prefixes.fits(g, g.numTokens() + 1, g.numTokens() - 1)) {
                break;
            }
            waiting.pollFirst();
            int reused = prefixes.reusePrefix(g, g.numTokens() - 1);     // the last token is computed, for its logits
            int chunk = Math.min(g.numTokens() - reused, budget);
            cache.ensureCapacity(g.table(), reused + chunk);
            running.add(g);
            budget -= schedule(g, chunk);
        }
        if (batch.size() == 0) {
            spare.addLast(step);
            return null;
        }
        for (ScheduledChunk s : scheduled) {
            inFlight.add(s.generation());
        }
        pending.addLast(step);
        return batch;
    }

    private int schedule(Generation g, int chunk) {
        return ScheduledChunk.add(g, chunk, batch, scheduled);
    }

    /** Ends the waiting requests whose deadline has passed (every {@link #plan} does it too). */
    public void expireWaiting(long nowNs) {
        exits.expireWaiting(nowNs);
    }

    /** Applies a step's logits (from {@link KvCachedGpt#forward} of the planned batch): samples, appends, retires. */
    public void complete(float[] logits, long nowNs) {
        Pending step = pending.pollFirst();
        if (step == null) {
            throw new IllegalStateException("complete called with no pending step");
        }
        int vocab = model.config().vocabSize();
        for (ScheduledChunk s : step.scheduled()) {
            inFlight.remove(s.generation());
            apply(s, logits, vocab, nowNs);
        }
        step.scheduled().clear();
        spare.addLast(step);
        exits.retireDone();
    }

    /**
     * A scheduled chunk is computed: its sequence advances, scores the prompt rows it asked logits for and,
     * where it asked for its last row's, samples a token; a request that only scores its prompt ends once
     * the whole prompt is computed.
     */
    private void apply(ScheduledChunk s, float[] logits, int vocab, long nowNs) {
        Generation g = s.generation();
        g.advanceComputed(s.tokens());
        if (g.isCancelled()) {
            return;
        }
        prefixes.offerPrefix(g);
        s.score(logits, vocab);
        if (s.logitRow() < 0) {
            if (g.promptOnlyDone()) {
                g.finish(FinishReason.LENGTH);
            }
            return;
        }
        int token = g.sample(logits, s.logitRow() * vocab, vocab);
        g.recordSampled(token, logits, s.logitRow() * vocab, vocab);
        String delta = g.append(token, nowNs);
        tokensGenerated++;
        events.token(g, token, delta);
    }

    /**
     * Ends every waiting and running request with {@code reason}, freeing all blocks (shutdown, failed
     * step). A request in a prefill beside the steps is only cancelled: its blocks are still being
     * written, so it is retired when that prefill completes.
     */
    public void cancelAll(FinishReason reason) {
        abandon();
        exits.cancelAll(reason);
    }

    /**
     * Returns every running sequence to the front of the queue, in order, its blocks freed: a pipeline
     * stage lost its KV cache, so each is recomputed (prompt and the tokens it has) when admitted again.
     * The tokens it has are kept and its sampler goes on where it was, so its output does not change.
     * Pending steps are abandoned first; finished and cancelled sequences are retired; primed requests
     * go back to the queue behind the running ones. Not while a prefill beside the steps is in flight.
     */
    public void preemptAll() {
        if (lane.prefilling() > 0) {
            throw new IllegalStateException("preemptAll while " + lane.prefilling() + " prompt(s) are prefilled"
                + " beside the steps: their blocks are still being written");
        }
        abandon();
        exits.retireDone();
        while (lane.unprimeNewest()) {
            // primed requests (prefilled beside the steps, waiting for room) lost their keys and values too
        }
        for (int i = running.size() - 1; i >= 0; i--) {
            exits.preempt(i);
        }
        cache.forgetPrefixes();                         // what the index points at is gone with the stage
    }

    /**
     * Abandons every pending step (a forward failed, the server stops): their sequences lose what the
     * steps were computing. Only ever followed at once by their retiring or preemption, which frees their
     * blocks: recomputing them in place would write blocks they may share by prefix. The steps' batches
     * are dropped, not reused: a forward may still be reading one (a pipeline's first stage).
     */
    private void abandon() {
        while (!pending.isEmpty()) {
            Pending step = pending.pollFirst();
            for (ScheduledChunk s : step.scheduled()) {
                inFlight.remove(s.generation());
                s.generation().resetComputed();
            }
        }
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
