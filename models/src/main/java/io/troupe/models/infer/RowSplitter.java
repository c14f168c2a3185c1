package io.troupe.models.infer;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Splits the rows of a row-independent kernel over threads: the calling thread takes the first
 * contiguous range and {@code parts - 1} helper threads the others. Every row is computed by the
 * same code in the same order whichever thread runs it, so results are bit-identical to the
 * serial run (batch invariance holds). Batches under {@code minRows} rows run on the caller alone.
 * One caller at a time.
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

    /** Runs {@code task} over rows [0, n), split when n >= minRows; rethrows a helper's failure. */
    public void run(int n, RowTask task) {
        if (helpers == null || n < minRows) {
            task.run(0, n);
            return;
        }
        int k = Math.min(parts, n);
        CountDownLatch done = new CountDownLatch(k - 1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        for (int p = 1; p < k; p++) {
            int from = (int) ((long) n * p / k);
            int to = (int) ((long) n * (p + 1) / k);
            helpers.execute(() -> {
                try {
                    task.run(from, to);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                } finally {
                    done.countDown();
                }
            });
        }
        try {
            task.run(0, n / k);
        } finally {
            try {
                done.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while rows ran on helper threads", e);
            }
        }
        Throwable t = failure.get();
        if (t != null) {
            throw new IllegalStateException("a row range failed on a helper thread: " + t, t);
        }
    }

    @Override
    public void close() {
        if (helpers != null) {
            helpers.shutdownNow();
        }
    }
}
