package io.troupe.actors.engine;

import java.util.Collection;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * The inbox of one {@link StageWorker}: the notices that an activation or gradient arrived (or that the
 * step failed), and the wait for the next one. Any thread may {@link #add} (the threads that deliver
 * into the worker's buffers); only the worker's compute thread polls and waits.
 */
final class StageInbox {
    private final LinkedBlockingQueue<StageEvent> events = new LinkedBlockingQueue<>();
    private final IdleStrategy waitIdle = new BackoffIdleStrategy(
        100, 100, TimeUnit.MICROSECONDS.toNanos(1), TimeUnit.MICROSECONDS.toNanos(50));
    private final long timeoutMs;

    /** An inbox whose {@link #await} gives up after {@code timeoutMs} milliseconds. */
    StageInbox(long timeoutMs) {
        this.timeoutMs = timeoutMs;
    }

    void add(StageEvent e) {
        events.add(e);
    }

    /** Puts back events taken out of turn (in their order). */
    void addAll(Collection<StageEvent> deferred) {
        events.addAll(deferred);
    }

    /** The next event, or {@code null} when there is none now. */
    StageEvent poll() {
        return events.poll();
    }

    /**
     * The next event, or null after the step timeout. Over a drivable link the waiting thread
     * runs the link's receive duty cycle itself (spin, then yield, then park up to 50 us): the event
     * it waits for is usually in the data plane already, and a wake-up of another thread can take
     * milliseconds when the cores are busy. Otherwise it sleeps on the inbox.
     */
    StageEvent await(StageLink link) {
        try {
            if (link == null || !link.drivable()) {
                return events.poll(timeoutMs, TimeUnit.MILLISECONDS);
            }
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            waitIdle.reset();
            StageEvent e;
            while ((e = events.poll()) == null) {
                if (System.nanoTime() > deadline) {
                    return null;
                }
                waitIdle.idle(link.progress());
            }
            return e;
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("stage worker interrupted", ie);
        }
    }
}
