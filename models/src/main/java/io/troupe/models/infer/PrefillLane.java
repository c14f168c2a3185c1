package io.troupe.models.infer;

import java.util.ArrayDeque;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * The prefill lane of a {@link BatchScheduler} (see {@link BatchScheduler#prefillBeside}): it takes waiting
 * requests for prefills beside the steps and holds them, primed, until a step has room for them. It shares
 * the scheduler's queue, running sequences, in-flight set and cache. Not thread-safe: the scheduler's thread.
 */
final class PrefillLane {
    private final DecodingModel model;
    private final PagedKvCache cache;
    private final BatchScheduler.Limits limits;
    private final ArrayDeque<Generation> waiting;
    private final List<Generation> running;
    private final Set<Generation> inFlight;
    private final SchedulerEvents events;
    private final PrefixReuse prefixes;
    /** Requests whose prompts, all but the last token, the lane computes or has computed; in arrival order. */
    private final ArrayDeque<Generation> primed = new ArrayDeque<>();
    private boolean prefillBeside;
    private int primeAhead;
    private final Set<Generation> prefilling = Collections.newSetFromMap(new IdentityHashMap<>());
    private long prefilled;

    PrefillLane(DecodingModel model, BatchScheduler.Limits limits, ArrayDeque<Generation> waiting,
                List<Generation> running, Set<Generation> inFlight, SchedulerEvents events, PrefixReuse prefixes) {
        this.model = model;
        this.cache = model.cache();
        this.limits = limits;
        this.waiting = waiting;
        this.running = running;
        this.inFlight = inFlight;
        this.events = events;
        this.prefixes = prefixes;
    }

    /** See {@link BatchScheduler#prefillBeside}. */
    void prefillBeside(boolean on) {
        this.prefillBeside = on;
    }

    /** See {@link BatchScheduler#primeAhead}. */
    void primeAhead(int requests) {
        this.primeAhead = requests;
    }

    /** Requests prefilled beside the steps so far. */
    long prefilled() {
        return prefilled;
    }

    /** Primed requests: ready, or in the lane. */
    int size() {
        return primed.size();
    }

    boolean isEmpty() {
        return primed.isEmpty();
    }

    /** Requests in a prefill in flight. */
    int prefilling() {
        return prefilling.size();
    }

    /**
     * Cancels primed request {@code id}: one outside the lane ends now, one in it is retired when the lane
     * is done. Returns false when no primed request has that id.
     */
    boolean cancel(long id) {
        for (Iterator<Generation> it = primed.iterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (g.id() == id) {
                if (prefilling.contains(g)) {
                    g.cancel();                         // its blocks are being written: retired when the lane is done
                } else {
                    it.remove();
                    endWaiting(g, FinishReason.CANCELLED);
                }
                return true;
            }
        }
        return false;
    }

    /** Ends a request that holds no place in a step (primed and not in the lane): blocks back, finish. */
    private void endWaiting(Generation g, FinishReason reason) {
        SchedulerExits.endWaiting(cache, events, g, reason);
    }

    /** Whether some sequence decodes (or prefills) in the steps. */
    private boolean stepsHaveWork() {
        return !running.isEmpty();
    }

    /**
     * Whether the steps may admit waiting requests themselves: beside a prefill lane, only while the lane is
     * busy (a burst is not held up) or they have nothing else to run.
     */
    boolean stepsAdmit() {
        return !prefillBeside || !stepsHaveWork() || !prefilling.isEmpty();
    }

    /** Whether the oldest primed request is ready (outside the lane) to join a step. */
    boolean firstReady() {
        return !primed.isEmpty() && !prefilling.contains(primed.peekFirst());
    }

    /** Takes the oldest primed request (ready: {@link #firstReady}) for a step. */
    Generation takeFirst() {
        return primed.pollFirst();
    }

    /** See {@link BatchScheduler#planPrefill}; the waiting requests past their deadline are ended already. */
    BatchScheduler.Prefill plan() {
        if (!prefillBeside || !stepsHaveWork()) {
            return null;
        }
        BatchScheduler.Prefill p = null;
        int tokens = 0;
        while (!waiting.isEmpty() && running.size() + primed.size() < limits.maxBatch() + primeAhead) {
            Generation g = waiting.peekFirst();
            int n = g.numTokens() - 1;                  // the last prompt token joins a step, for its logits
            if (n < 1 || !prefixes.fits(g, n + 2, n - 1) || (p != null && tokens + n > limits.tokenBudget())) {
                break;
            }
            waiting.pollFirst();
            int reused = prefixes.reusePrefix(g, n - 1);        // at least one row left for the lane
            cache.ensureCapacity(g.table(), n + 1);
            primed.addLast(g);
            inFlight.add(g);
            prefilling.add(g);
            if (p == null) {
                p = new BatchScheduler.Prefill();
            }
            tokens += ScheduledChunk.add(g, n - reused, p.batch, p.scheduled);     // from the first position not reused
        }
        return p;
    }

    /** See {@link BatchScheduler#completePrefill}. */
    void complete(BatchScheduler.Prefill p, float[] logits, long nowNs) {
        for (ScheduledChunk s : p.scheduled) {
            Generation g = s.generation();
            if (!prefilling.remove(g)) {
                throw new IllegalStateException("request " + g.id() + " is not in a prefill beside the steps");
            }
            inFlight.remove(g);
            if (logits == null) {
                g.cancel();
            } else {
                g.advanceComputed(s.tokens());
                prefixes.offerPrefix(g);
                s.score(logits, model.config().vocabSize());
                prefilled++;
            }
        }
        retirePrimed(nowNs);
    }

    /** Ends the primed requests outside the lane that are cancelled or past their deadline. */
    void retirePrimed(long nowNs) {
        for (Iterator<Generation> it = primed.iterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (prefilling.contains(g)) {
                continue;
            }
            if (g.isCancelled()) {
                it.remove();
                endWaiting(g, FinishReason.CANCELLED);
            } else if (SchedulerExits.expired(g, nowNs)) {
                it.remove();
                endWaiting(g, FinishReason.DEADLINE);
            }
        }
    }

    /** Gives the newest primed request outside the lane back to the queue's front (its blocks freed); false: none. */
    boolean unprimeNewest() {
        for (Iterator<Generation> it = primed.descendingIterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (!prefilling.contains(g)) {
                it.remove();
                cache.free(g.table());
                g.resetComputed();
                waiting.addFirst(g);            // primed requests arrived before every waiting one
                return true;
            }
        }
        return false;
    }

    /**
     * Ends every primed request with {@code reason}, freeing its blocks; one in a prefill in flight is only
     * cancelled: its blocks are still being written, so it is retired when that prefill completes.
     */
    void cancelAll(FinishReason reason) {
        for (Iterator<Generation> it = primed.iterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (prefilling.contains(g)) {
                g.cancel();                             // retired when its prefill completes
            } else {
                it.remove();
                endWaiting(g, reason);
            }
        }
    }
}
