package io.troupe.runtime.cpu;

import static io.troupe.runtime.testkit.LiveThreads.minus;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.testkit.LiveThreads;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link CpuDevice} and its {@link CpuParallel} are built all or nothing: a failure after compute threads have
 * started (the BLAS library cannot load; the process runs out of threads part-way) stops those threads and
 * rethrows the failure itself. The threads seen while the build ran are joined until one deadline; failed
 * builds are repeated to show none of them leaves a thread behind.
 */
@Timeout(60)
class CpuDeviceConstructionTest {
    private static final int THREADS = 4;
    private static final int ROUNDS = 5;
    private static final long THREADS_END_MS = 10_000;

    @Test
    void shouldStopTheComputeThreadsWhenTheBlasLibraryCannotLoad() throws InterruptedException {
        Set<Thread> atStart = computeThreads();
        for (int round = 1; round <= ROUNDS; round++) {
            UnsatisfiedLinkError failure = new UnsatisfiedLinkError("no openblas_nolapack in java.library.path, round "
                + round);
            Set<Thread> running = new LinkedHashSet<>();
            Set<Thread> before = computeThreads();

            Throwable thrown = assertThrows(UnsatisfiedLinkError.class, () -> new CpuDevice(THREADS, () -> {
                running.addAll(minus(computeThreads(), before));
                throw failure;
            }));

            assertSame(failure, thrown, "the library's own failure is rethrown");
            assertEquals(0, failure.getSuppressed().length, "stopping the threads did not fail");
            assertEquals(THREADS - 1, running.size(), "compute threads running when the library failed: " + running);
            assertEnded(running);
        }
        assertEquals(Set.of(), minus(computeThreads(), atStart), "compute threads left after " + ROUNDS + " builds");
    }

    @Test
    void shouldStopTheStartedWorkersWhenAWorkerCannotBeCreated() throws InterruptedException {
        Set<Thread> atStart = computeThreads();
        for (int round = 1; round <= ROUNDS; round++) {
            OutOfMemoryError failure = new OutOfMemoryError("unable to create native thread, round " + round);
            List<Thread> made = new ArrayList<>();
            AtomicInteger calls = new AtomicInteger();

            Throwable thrown = assertThrows(OutOfMemoryError.class, () -> new CpuParallel(THREADS, r -> {
                if (calls.incrementAndGet() == THREADS - 1) {
                    throw failure;
                }
                Thread t = new Thread(r);
                made.add(t);
                return t;
            }));

            assertSame(failure, thrown, "the factory's own failure is rethrown");
            assertEquals(THREADS - 2, made.size(), "workers made before the failing one");
            for (Thread t : made) {
                assertTrue(t.getName().startsWith(CpuParallel.WORKER_NAME), "a worker's name: " + t.getName());
            }
            assertEnded(new LinkedHashSet<>(made));
        }
        assertEquals(Set.of(), minus(computeThreads(), atStart), "compute threads left after " + ROUNDS + " builds");
    }

    @Test
    void shouldStopTheComputeThreadsOfABuiltDeviceOnClose() throws InterruptedException {
        Set<Thread> before = computeThreads();
        CpuDevice device = new CpuDevice(THREADS);
        Set<Thread> running = minus(computeThreads(), before);
        try {
            assertEquals(THREADS, device.threads());
            assertEquals(THREADS - 1, running.size(), "a built device's compute threads: " + running);
        } finally {
            device.close();
        }
        assertEnded(running);
    }

    /** Joins each thread until one deadline; fails naming those still alive then. */
    private static void assertEnded(Set<Thread> threads) throws InterruptedException {
        List<String> alive = LiveThreads.aliveAfter(threads, THREADS_END_MS);
        assertTrue(alive.isEmpty(), "compute threads still alive " + THREADS_END_MS + " ms after the build: " + alive);
    }

    private static Set<Thread> computeThreads() {
        return LiveThreads.named(CpuParallel.WORKER_NAME);
    }
}
