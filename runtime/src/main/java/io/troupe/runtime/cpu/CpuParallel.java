package io.troupe.runtime.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;

/**
 * The CPU device's thread budget: a fork-join pool of {@code threads} workers (none when the budget
 * is 1: the caller runs everything) splits index ranges into contiguous blocks; the caller waits. Block boundaries depend only on the range
 * and the thread count, so results are repeatable for a fixed budget.
 */
final class CpuParallel implements AutoCloseable {

    /** A body over the half-open index range [start, end). */
    @FunctionalInterface
    interface RangeBody {
        void run(int start, int end);
    }

    private final int threads;
    private final ForkJoinPool pool;

    CpuParallel(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("cpu threads must be >= 1: threads=" + threads);
        }
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads);
    }

    int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over [0, n) in at most {@code threads} blocks; ranges smaller than
     * {@code grain} per block run on the caller alone.
     */
    void forRange(int n, int grain, RangeBody body) {
        int blocks = Math.min(threads, Math.max(1, n / Math.max(1, grain)));
        if (blocks <= 1 || pool == null) {
            if (n > 0) {
                body.run(0, n);
            }
            return;
        }
        pool.invoke(new Block(body, n, blocks, 0, blocks));
    }

    static int blockStart(int n, int blocks, int i) {
        return (int) ((long) n * i / blocks);
    }

    private static final class Block extends RecursiveAction {
        private final RangeBody body;
        private final int n;
        private final int blocks;
        private final int from;
        private final int to;

        Block(RangeBody body, int n, int blocks, int from, int to) {
            this.body = body;
            this.n = n;
            this.blocks = blocks;
            this.from = from;
            this.to = to;
        }

        @Override
        protected void compute() {
            if (to - from == 1) {
                body.run(blockStart(n, blocks, from), blockStart(n, blocks, to));
                return;
            }
            int mid = (from + to) >>> 1;
            ForkJoinTask.invokeAll(new Block(body, n, blocks, from, mid), new Block(body, n, blocks, mid, to));
        }
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdownNow();
        }
    }
}
