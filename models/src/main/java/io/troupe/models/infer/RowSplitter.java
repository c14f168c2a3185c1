package io.troupe.models.infer;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * Splits the rows of a row-independent kernel over threads. A batch is cut into {@code parts}
 * contiguous ranges; the calling thread and {@code parts - 1} helper threads claim ranges until
 * none is left, so a helper that the OS has not scheduled yet never holds the caller up: the
 * caller then computes the rest itself and waits only for ranges a helper has already begun. Every
 * row is computed by the same code in the same order whichever thread runs it, so results are
 * bit-identical to the serial run (batch invariance holds). Batches under {@code minRows} rows run
 * on the caller alone. One caller at a time.
 */
public final class RowSplitter implements AutoCloseable {
    /** A kernel over rows {@code [from, to)}. */
    public interface RowTask {
        void run(int from, int to);
    }

    private final int parts;
    private final int minRows;
    private final ExecutorService helpers;

    /**
     * @param parts   threads sharing a batch (the caller included), >= 1
     * @param minRows the smallest batch worth splitting, >= 2
     */
    public RowSplitter(int parts, int minRows) {
        if (parts < 1) {
            throw new IllegalArgumentException("row splitter needs >= 1 part: parts=" + parts);
        }
        if (minRows < 2) {
            throw new IllegalArgumentException("row splitter's smallest split batch must be >= 2 rows: minRows="
                + minRows);
        }
        this.parts = parts;
        this.minRows = minRows;
        this.helpers = parts == 1 ? null : Executors.newFixedThreadPool(parts - 1, r -> {
            Thread t = new Thread(r, "troupe-infer-rows");
            t.setDaemon(true);
            return t;
        });
    }

    public int parts() {
        return parts;
    }

    /** Runs {@code task} over rows [0, n), split when n >= minRows; rethrows a range that failed. */
    public void run(int n, RowTask task) {
        if (helpers == null || n < minRows) {
            task.run(0, n);
            return;
        }
        Split split = new Split(n, Math.min(parts, n), task, Thread.currentThread());
        for (int p = 1; p < split.ranges; p++) {
            helpers.execute(split::claim);
        }
        split.claim();
        split.awaitAll();
        Throwable t = split.failure.get();
        if (t != null) {
            throw new IllegalStateException("a row range failed: " + t, t);
        }
    }

    /** One split batch: ranges claimed by whichever thread comes first, and the count of those finished. */
    private static final class Split {
        private final int rows;
        private final int ranges;
        private final RowTask task;
        private final Thread caller;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger finished = new AtomicInteger();
        private final AtomicReference<Throwable> failure = new AtomicReference<>();

        Split(int rows, int ranges, RowTask task, Thread caller) {
            this.rows = rows;
            this.ranges = ranges;
            this.task = task;
            this.caller = caller;
        }

        /** Runs ranges until none is left unclaimed (a helper that starts late finds none and returns). */
        void claim() {
            int r;
            while ((r = next.getAndIncrement()) < ranges) {
                try {
                    task.run((int) ((long) rows * r / ranges), (int) ((long) rows * (r + 1) / ranges));
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                } finally {
                    if (finished.incrementAndGet() == ranges) {
                        LockSupport.unpark(caller);
                    }
                }
            }
        }

        /** Waits until every range has finished (an interrupt is kept for later: helpers may still write). */
        void awaitAll() {
            boolean interrupted = false;
            while (finished.get() < ranges) {
                LockSupport.park(this);
                interrupted |= Thread.interrupted();
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void close() {
        if (helpers != null) {
            helpers.shutdownNow();
        }
    }
}
