package io.troupe.actors.engine;

import io.troupe.actors.trace.TimelineInterval;
import io.troupe.models.parallel.tp.ObservedTensorParallelGroup;
import io.troupe.models.parallel.tp.PendingTensorParallelCollective;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A worker's tensor-parallel group that records every collective its layers issue as a timeline
 * interval (category {@code tp}: name, element count, time spent including the wait for the
 * peers), so the trace shows the tp collectives on the critical path on a track of their own. An
 * async collective's interval spans from its start to the end of its await, named "… (overlapped)",
 * with {@code wait_us}, the part the member spent blocked in the await: the rest of the interval
 * was overlapped by the member's own compute (weight gradients).
 * Threading: the worker's compute thread, like the group it wraps.
 */
final class TracedTensorParallelGroup extends ObservedTensorParallelGroup {
    private final List<TimelineInterval> intervals = new ArrayList<>();
    private long originNs;
    private boolean recording = true;
    private final TracedPending pending = new TracedPending();

    TracedTensorParallelGroup(TensorParallelGroup inner) {
        super(inner);
    }

    /** Starts a new recording whose times count from {@code originNs} ({@link System#nanoTime()}). */
    void restart(long originNs) {
        this.originNs = originNs;
        intervals.clear();
    }

    /** Whether collectives are recorded (validation forwards between steps are not). */
    void recording(boolean on) {
        recording = on;
    }

    List<TimelineInterval> intervals() {
        return intervals;
    }

    @Override
    protected void completed(Collective c, long elements, long startNs) {
        record(c.traceName(), elements, startNs);
    }

    @Override
    protected PendingTensorParallelCollective started(Collective c, long elements, long startNs,
                                                      PendingTensorParallelCollective p) {
        return pending.start(p, c.traceName() + " (overlapped)", elements, startNs);
    }

    private void record(String name, long elements, long startNs) {
        if (!recording) {
            return;
        }
        double start = Math.max(0, (startNs - originNs) / 1e3);
        double end = Math.max(start, (System.nanoTime() - originNs) / 1e3);
        intervals.add(new TimelineInterval(name, "tp", start, end, "", Map.of("elements", Long.toString(elements))));
    }

    /** The member's one async collective, recorded when awaited (reused: one in flight at a time). */
    private final class TracedPending implements PendingTensorParallelCollective {
        private PendingTensorParallelCollective inner;
        private String name;
        private long elements;
        private long startNs;

        PendingTensorParallelCollective start(PendingTensorParallelCollective started, String what, long count,
                                              long t0) {
            inner = started;
            name = what;
            elements = count;
            startNs = t0;
            return this;
        }

        @Override
        public boolean isDone() {
            return inner.isDone();
        }

        @Override
        public void await(long timeoutNs) {
            long w0 = System.nanoTime();
            inner.await(timeoutNs);
            recorded(w0);
        }

        @Override
        public void await() {
            long w0 = System.nanoTime();
            inner.await();
            recorded(w0);
        }

        private void recorded(long waitStartNs) {
            if (!recording) {
                return;
            }
            long now = System.nanoTime();
            double start = Math.max(0, (startNs - originNs) / 1e3);
            double end = Math.max(start, (now - originNs) / 1e3);
            intervals.add(new TimelineInterval(name, "tp", start, end, "", Map.of("elements", Long.toString(elements),
                "wait_us", String.format(java.util.Locale.ROOT, "%.1f", (now - waitStartNs) / 1e3))));
        }
    }
}
