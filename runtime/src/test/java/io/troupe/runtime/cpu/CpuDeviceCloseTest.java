package io.troupe.runtime.cpu;

import static io.troupe.runtime.testkit.LiveThreads.minus;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.LiveThreads;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Closing a {@link CpuDevice} (its {@link CpuParallel}) waits for its compute threads to end: when close returns,
 * none of them is alive, checked at once with no wait of the test's own. A worker that does not end within the
 * close timeout is named in close's failure; close is idempotent and keeps the caller's interrupt status.
 */
@Timeout(60)
class CpuDeviceCloseTest {
    private static final int THREADS = 4;
    private static final int ROUNDS = 10;
    private static final long SHORT_CLOSE_TIMEOUT_MS = 100;
    private static final long SLOW_END_MS = 300;

    @Test
    void shouldLeaveNoComputeThreadAliveWhenCloseReturns() {
        for (int round = 1; round <= ROUNDS; round++) {
            Set<Thread> before = computeThreads();
            CpuDevice device = new CpuDevice(THREADS);
            Set<Thread> running = minus(computeThreads(), before);
            assertEquals(THREADS - 1, running.size(), "round " + round + ": a built device's compute threads");
            try (Tensor t = device.allocate(DType.F32, 1 << 18)) {
                device.fill(t, 1.0f); // the workers have run a job and spin or park
            } finally {
                device.close();
            }
            assertEquals(List.of(), alive(running), "round " + round + ": compute threads alive when close returned");
            device.close();
        }
    }

    @Test
    void shouldNameAWorkerThatDoesNotEndWithinTheCloseTimeout() throws InterruptedException {
        CountDownLatch release = new CountDownLatch(1);
        List<Thread> made = new ArrayList<>();
        AtomicInteger calls = new AtomicInteger();
        CpuParallel parallel = new CpuParallel(3, r -> {
            boolean stuck = calls.incrementAndGet() == 2;
            Thread t = new Thread(() -> {
                r.run();
                if (stuck) {
                    awaitQuietly(release);
                }
            });
            made.add(t);
            return t;
        }, SHORT_CLOSE_TIMEOUT_MS);
        try {
            IllegalStateException failure = assertThrows(IllegalStateException.class, parallel::close);

            String stuckName = CpuParallel.WORKER_NAME + 2;
            assertTrue(failure.getMessage().contains("[" + stuckName + "]"), "names the stuck worker only: "
                + failure.getMessage());
            assertFalse(made.get(0).isAlive(), "the worker that ended was waited for: " + made.get(0).getName());
            assertTrue(made.get(1).isAlive(), "the stuck worker is still alive: " + made.get(1).getName());
        } finally {
            release.countDown();
        }
        parallel.close();
        assertEquals(List.of(), alive(Set.copyOf(made)), "workers alive when the second close returned");
    }

    @Test
    void shouldWaitForTheWorkersAndKeepTheInterruptStatusWhenCalledInterrupted() {
        List<Thread> made = new ArrayList<>();
        CpuParallel parallel = new CpuParallel(2, r -> { // one worker: an interrupt cuts short its only wait
            Thread t = new Thread(() -> {
                r.run();
                endSlowly();
            });
            made.add(t);
            return t;
        });
        Thread.currentThread().interrupt();
        try {
            parallel.close();
        } finally {
            assertTrue(Thread.interrupted(), "the caller's interrupt status is kept (and cleared here)");
        }
        assertEquals(List.of(), alive(Set.copyOf(made)), "workers alive when an interrupted close returned");
    }

    /** A worker that takes {@link #SLOW_END_MS} to end once its loop has returned. */
    private static void endSlowly() {
        try {
            Thread.sleep(SLOW_END_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void awaitQuietly(CountDownLatch latch) {
        try {
            latch.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static List<String> alive(Set<Thread> threads) {
        return threads.stream().filter(Thread::isAlive).map(Thread::getName).sorted().toList();
    }

    private static Set<Thread> computeThreads() {
        return LiveThreads.named(CpuParallel.WORKER_NAME);
    }
}
