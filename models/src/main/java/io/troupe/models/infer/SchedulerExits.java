package io.troupe.models.infer;

import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * How requests leave the queue and the running sequences of a {@link BatchScheduler}: cancellation by id,
 * deadlines, the retiring of cancelled and finished sequences (blocks back to the pool, the held-back text
 * and the finish to the listeners), the ending of every request at once, and preemption, which gives a
 * running sequence back to the queue's front (its blocks freed, its tokens recomputed when it is admitted
 * again). It shares the scheduler's queue, running sequences, in-flight set, events and prefill lane. Not
 * thread-safe: the scheduler's thread.
 */
final class SchedulerExits {
    private final PagedKvCache cache;
    private final ArrayDeque<Generation> waiting;
    private final List<Generation> running;
    private final Set<Generation> inFlight;
    private final SchedulerEvents events;
    private final PrefillLane lane;
    private long preemptions;

    SchedulerExits(PagedKvCache cache, ArrayDeque<Generation> waiting, List<Generation> running,
                   Set<Generation> inFlight, SchedulerEvents events, PrefillLane lane) {
        this.cache = cache;
        this.waiting = waiting;
        this.running = running;
        this.inFlight = inFlight;
        this.events = events;
        this.lane = lane;
    }

    /** Sequences preempted so far. */
    long preemptions() {
        return preemptions;
    }

    static boolean expired(Generation g, long nowNs) {
        return g.deadlineNs() != Long.MAX_VALUE && nowNs - g.deadlineNs() > 0;
    }

    /** See {@link BatchScheduler#cancel}. */
    boolean cancel(long id) {
        for (Iterator<Generation> it = waiting.iterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (g.id() == id) {
                it.remove();
                endWaiting(g, FinishReason.CANCELLED);
                return true;
            }
        }
        if (lane.cancel(id)) {
            return true;
        }
        for (Generation g : running) {
            if (g.id() == id) {
                g.cancel();
                return true;
            }
        }
        return false;
    }

    /** Ends a waiting request (it holds no place in a step): blocks back, finish. */
    private void endWaiting(Generation g, FinishReason reason) {
        endWaiting(cache, events, g, reason);
    }

    /**
     * Ends a request that holds no place in a step (waiting, or primed and not in the prefill lane): its blocks back
     * to {@code cache}, then its finish, then the event. A request preempted back to the queue has tokens already,
     * and may hold back text (a possible stop string, an unfinished character): that goes out first, as when a
     * running sequence retires.
     */
    static void endWaiting(PagedKvCache cache, SchedulerEvents events, Generation g, FinishReason reason) {
        cache.free(g.table());
        g.finish(reason);
        releaseHeldText(events, g);
        events.finish(g);
    }

    private static void releaseHeldText(SchedulerEvents events, Generation g) {
        String rest = g.drainText();
        if (!rest.isEmpty()) {
            events.token(g, -1, rest);
        }
    }

    /** See {@link BatchScheduler#expireWaiting}. */
    void expireWaiting(long nowNs) {
        for (Iterator<Generation> it = waiting.iterator(); it.hasNext(); ) {
            Generation g = it.next();
            if (expired(g, nowNs)) {
                it.remove();
                endWaiting(g, FinishReason.DEADLINE);
            }
        }
    }

    /** Retires the running sequences outside the pending steps that are cancelled or past their deadline. */
    void retireStopped(long nowNs) {
        for (int i = running.size() - 1; i >= 0; i--) {
            Generation g = running.get(i);
            if (inFlight.contains(g)) {
                continue;                               // retired when its step completes
            }
            if (g.isCancelled()) {
                retire(i, FinishReason.CANCELLED);
            } else if (expired(g, nowNs)) {
                retire(i, FinishReason.DEADLINE);
            }
        }
    }

    /** Retires the running sequences outside any step or prefill in flight that are cancelled or finished. */
    void retireDone() {
        for (int i = running.size() - 1; i >= 0; i--) {
            Generation g = running.get(i);
            if (inFlight.contains(g)) {
                continue;
            }
            if (g.isCancelled()) {
                retire(i, FinishReason.CANCELLED);
            } else if (g.isFinished()) {
                retire(i, g.finishReason());
            }
        }
    }

    /**
     * Ends every running, primed and waiting request with {@code reason}, freeing their blocks (the pending
     * steps are abandoned first); a request in a prefill beside the steps is only cancelled.
     */
    void cancelAll(FinishReason reason) {
        for (int i = running.size() - 1; i >= 0; i--) {
            retire(i, reason);
        }
        lane.cancelAll(reason);
        while (!waiting.isEmpty()) {
            endWaiting(waiting.pollFirst(), reason);
        }
    }

    /** Index of the newest running sequence that is in no pending step (the scheduling one is such). */
    int newestIdle() {
        for (int j = running.size() - 1; j >= 0; j--) {
            if (!inFlight.contains(running.get(j))) {
                return j;
            }
        }
        throw new IllegalStateException("no running sequence outside the pending steps");
    }

    /** Gives running sequence {@code index} back to the queue's front: blocks freed, recomputed when admitted. */
    void preempt(int index) {
        Generation g = running.remove(index);
        cache.free(g.table());
        g.resetComputed();
        waiting.addFirst(g);
        preemptions++;
    }

    private void retire(int index, FinishReason reason) {
        Generation g = running.remove(index);
        cache.free(g.table());
        g.finish(reason);
        releaseHeldText(events, g);
        events.finish(g);
    }
}
