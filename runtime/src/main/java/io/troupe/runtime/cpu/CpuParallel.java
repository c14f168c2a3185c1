package io.troupe.runtime.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The CPU device's thread budget: the calling thread plus {@code threads - 1} workers split an index
 * range into at most {@code threads} contiguous blocks. Block boundaries depend only on the range and
 * the thread count, so results are repeatable for a fixed budget.
 *
 * <p>Kernels are short (tens of microseconds), so hand-off latency matters more than idle CPU:
 * workers spin for up to {@link #SPIN_NS} after each job before parking, and the caller runs block 0
 * itself and spins on completion. A fork-join pool's park/unpark per op cost more than the work of
 * a small model's kernels (measured: 2 threads were slower than 1 on LayerNorm and bias).
 *
 * <p>Threading: one thread (the device's executor) calls {@link #forRange}; bodies must not call it
 * again (no nesting). {@link #close} may be called from any thread once no {@link #forRange} runs.
 */
final class CpuParallel implements AutoCloseable {
    /** How long an idle worker spins before it parks. */
    static final long SPIN_NS = TimeUnit.MICROSECONDS.toNanos(200);
    /** The name of each worker thread, followed by its block index. */
    static final String WORKER_NAME = "troupe-cpu-worker-";
    /** How long {@link #close} waits, in all, for the workers to end. */
    static final long CLOSE_TIMEOUT_MS = 5_000;

    /** A body over the half-open index range [start, end). */
    @FunctionalInterface
    interface RangeBody {
        void run(int start, int end);
    }

    private final int threads;
    private final Thread[] workers;
    private final long closeTimeoutMs;
    private final AtomicInteger pending = new AtomicInteger();
    private volatile long generation;
    private volatile boolean closed;
    private volatile Throwable failure;
    // Job fields: written before the volatile generation write, read after its read.
    private RangeBody jobBody;
    private int jobN;
    private int jobBlocks;

    CpuParallel(int threads) {
        this(threads, Thread::new, CLOSE_TIMEOUT_MS);
    }

    CpuParallel(int threads, ThreadFactory factory) {
        this(threads, factory, CLOSE_TIMEOUT_MS);
    }

    /**
     * Starts {@code threads - 1} daemon workers made by {@code factory} and named {@code troupe-cpu-worker-<block>}.
     * All or nothing: when a worker cannot be made or started (the process is out of threads), those already
     * started are stopped and the failure is rethrown, a failure of that cleanup added to it as suppressed.
     * {@link #close} waits up to {@code closeTimeoutMs} in all for the workers to end.
     */
    CpuParallel(int threads, ThreadFactory factory, long closeTimeoutMs) {
        if (threads < 1) {
            throw new IllegalArgumentException("cpu threads must be >= 1: threads=" + threads);
        }
        if (closeTimeoutMs < 0) {
            throw new IllegalArgumentException("close timeout must be >= 0 ms: closeTimeoutMs=" + closeTimeoutMs);
        }
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        this.closeTimeoutMs = closeTimeoutMs;
        try {
            for (int i = 0; i < workers.length; i++) {
                int block = i + 1;
                Thread t = factory.newThread(() -> workerLoop(block));
                t.setName(WORKER_NAME + block);
                t.setDaemon(true);
                t.start();
                workers[i] = t;
            }
        } catch (Throwable failure) {
            try {
                close();
            } catch (Throwable cleanup) {
                failure.addSuppressed(cleanup);
            }
            throw failure;
        }
    }

    int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over [0, n) in at most {@code threads} blocks; ranges smaller than
     * {@code grain} per block run on the caller alone. Rethrows the first failure of any block.
     */
    void forRange(int n, int grain, RangeBody body) {
        int blocks = Math.min(threads, Math.max(1, n / Math.max(1, grain)));
        if (blocks <= 1) {
            if (n > 0) {
                body.run(0, n);
            }
            return;
        }
        jobBody = body;
        jobN = n;
        jobBlocks = blocks;
        failure = null;
        pending.set(blocks - 1);
        generation++;
        for (int i = 0; i < blocks - 1; i++) {
            LockSupport.unpark(workers[i]);
        }
        Throwable mine = null;
        try {
            body.run(0, blockStart(n, blocks, 1));
        } catch (Throwable t) {
            mine = t;
        }
        while (pending.get() != 0) {
            Thread.onSpinWait();
        }
        jobBody = null;
        Throwable t = mine != null ? mine : failure;
        if (t instanceof RuntimeException re) {
            throw re;
        }
        if (t instanceof Error e) {
            throw e;
        }
        if (t != null) {
            throw new IllegalStateException(t);
        }
    }

    private void workerLoop(int block) {
        long seen = 0;
        while (!closed) {
            long spinUntil = System.nanoTime() + SPIN_NS;
            long g;
            while ((g = generation) == seen && !closed) {
                if (System.nanoTime() < spinUntil) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.parkNanos(this, TimeUnit.MILLISECONDS.toNanos(50));
                }
            }
            if (closed) {
                return;
            }
            seen = g;
            int blocks = jobBlocks;
            if (block < blocks) {
                try {
                    jobBody.run(blockStart(jobN, blocks, block), blockStart(jobN, blocks, block + 1));
                } catch (Throwable t) {
                    failure = t;
                } finally {
                    pending.decrementAndGet();
                }
            }
        }
    }

    static int blockStart(int n, int blocks, int i) {
        return (int) ((long) n * i / blocks);
    }

    /**
     * Stops the workers and waits until they have ended, so that none is alive when this returns. Idempotent.
     * The wait is bounded by the close timeout in all and is not cut short by an interrupt (the caller's
     * interrupt status is kept).
     *
     * @throws IllegalStateException naming the workers still alive when the timeout ran out
     */
    @Override
    public void close() {
        closed = true;
        for (Thread t : workers) {
            LockSupport.unpark(t); // null, a worker that never started: no effect
        }
        long deadlineNs = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(closeTimeoutMs);
        boolean interrupted = false;
        List<String> alive = new ArrayList<>();
        for (Thread t : workers) {
            if (t == null || t == Thread.currentThread()) {
                continue;
            }
            while (t.isAlive()) {
                long leftNs = deadlineNs - System.nanoTime();
                if (leftNs <= 0) {
                    alive.add(t.getName());
                    break;
                }
                try {
                    t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(leftNs)));
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (!alive.isEmpty()) {
            throw new IllegalStateException("cpu worker threads still alive " + closeTimeoutMs + " ms after close: "
                + alive);
        }
    }
}
