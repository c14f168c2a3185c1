package io.troupe.actors.engine;

import static io.troupe.runtime.testkit.LiveThreads.minus;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.LiveThreads;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.IntFunction;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A worker whose build fails part-way frees exactly what it had opened, and rethrows the failure: its device's
 * {@code threads - 1} compute threads end, and every chunk built so far is closed once (its parameter and gradient
 * memory freed). The builds are real (GPT stages on a CPU device with {@link #THREADS} threads, {@link #CHUNKS}
 * chunks per worker); {@link BuildFailingStages} makes one stage's build throw after the device and the chunks before
 * it exist. The device's threads are the compute threads that appear while the worker builds its stages; each is
 * joined with a deadline. Failed builds are repeated to show nothing is left behind by any of them.
 */
@Timeout(120)
class StageWorkerBuildFailureTest {
    private static final GptConfig MODEL = new GptConfig("tiny4", 256, 32, 4, 4, 16, 1e-5f);
    private static final int THREADS = 3;
    private static final int CHUNKS = 3;
    private static final int ROUNDS = 5;
    /** How CpuParallel names a device's compute threads. */
    private static final String COMPUTE_THREAD = "troupe-cpu-worker-";
    private static final long THREADS_END_MS = 10_000;

    @AfterEach
    void disarm() {
        BuildFailingStages.reset();
    }

    /** The last chunk's factory call throws: the device and the two chunks (and optimizers) before it are freed. */
    @Test
    void shouldFreeTheDeviceAndTheBuiltChunksWhenAStageBuildThrows() throws Exception {
        Set<Thread> atStart = computeThreads();
        for (int round = 1; round <= ROUNDS; round++) {
            IllegalStateException failure = new IllegalStateException("stage " + CHUNKS + " cannot be built, round "
                + round);
            Build b = failingBuild(CHUNKS, false, () -> failure, null);

            assertSame(failure, b.thrown, "the build's own failure is rethrown");
            assertEquals(0, failure.getSuppressed().length, "nothing failed while freeing the build");
            assertFreed(b, CHUNKS - 1);
        }
        assertEquals(Set.of(), minus(computeThreads(), atStart), "compute threads left after " + ROUNDS + " builds");
    }

    /**
     * An Error after a stage is kept but before its optimizer exists (its {@code recompute} throws): that stage is
     * closed too, once, with the device and the stage before it.
     */
    @Test
    void shouldFreeWhatWasBuiltWhenAnErrorIsThrownAfterAStageIsKept() throws Exception {
        Set<Thread> atStart = computeThreads();
        for (int round = 1; round <= ROUNDS; round++) {
            OutOfMemoryError failure = new OutOfMemoryError("no memory for stage 2's activations, round " + round);
            Build b = failingBuild(2, true, () -> failure, null);

            assertSame(failure, b.thrown, "the build's own Error is rethrown");
            assertEquals(0, failure.getSuppressed().length, "nothing failed while freeing the build");
            assertFreed(b, 2);
        }
        assertEquals(Set.of(), minus(computeThreads(), atStart), "compute threads left after " + ROUNDS + " builds");
    }

    /**
     * Stages whose close throws (after freeing their memory): the build's failure is still what is thrown, each close
     * failure suppressed by it, newest chunk first; the device is freed all the same.
     */
    @Test
    void shouldRethrowTheBuildFailureWithTheCleanupFailuresSuppressed() throws Exception {
        IllegalArgumentException failure = new IllegalArgumentException("stage " + CHUNKS + ": bad config");
        Build b = failingBuild(CHUNKS, false, () -> failure,
            stage -> new IllegalStateException("close of stage " + stage + " failed"));

        assertSame(failure, b.thrown, "the build's own failure is rethrown, not a cleanup failure");
        assertArrayEquals(new String[] {"close of stage 2 failed", "close of stage 1 failed"},
            Arrays.stream(failure.getSuppressed()).map(Throwable::getMessage).toArray(String[]::new),
            "each close failure suppressed by the build's failure, newest chunk first");
        assertFreed(b, CHUNKS - 1);
    }

    /** The success path is unchanged: a whole build, then close() frees the same things, each once. */
    @Test
    void shouldFreeAWholeBuildOnceOnClose() throws Exception {
        Set<Thread> base = computeThreads();
        Set<Thread> device = new LinkedHashSet<>();
        BuildFailingStages.arm(new BuildFailingStages.Plan(Integer.MAX_VALUE, false, () -> new AssertionError(), null,
            () -> device.addAll(minus(computeThreads(), base))));
        StageWorker w = new StageWorker(spec(), 0, 0, 7);
        try {
            assertEquals(CHUNKS, w.chunks());
            assertEquals(THREADS - 1, device.size(), "the device's compute threads while it built: " + device);
        } finally {
            w.close();
        }
        assertEnded(device);
        for (BuildFailingStages.Built s : BuildFailingStages.built()) {
            assertEquals(1, s.closes(), "closed once");
            assertClosed(s);
        }
    }

    /** What one failed build left: its device's compute threads and the stages it built. */
    private record Build(Throwable thrown, Set<Thread> deviceThreads, List<BuildFailingStages.Built> built) {
    }

    /** Builds a worker whose {@code failAt}-th stage fails as {@code failure} says; returns what it threw and left. */
    private static Build failingBuild(int failAt, boolean inRecompute, Supplier<? extends Throwable> failure,
                                      IntFunction<? extends RuntimeException> closeFailure) {
        Set<Thread> base = computeThreads();
        Set<Thread> device = new LinkedHashSet<>();
        BuildFailingStages.arm(new BuildFailingStages.Plan(failAt, inRecompute, failure, closeFailure,
            () -> device.addAll(minus(computeThreads(), base))));
        Throwable thrown = assertThrows(Throwable.class, () -> new StageWorker(spec(), 0, 0, 7));
        return new Build(thrown, device, BuildFailingStages.built());
    }

    /** The build's device threads have ended and each of its {@code chunks} built stages was closed once. */
    private static void assertFreed(Build b, int chunks) throws InterruptedException {
        assertEquals(THREADS - 1, b.deviceThreads().size(), "the device's compute threads while it built: "
            + b.deviceThreads());
        assertEnded(b.deviceThreads());
        assertEquals(chunks, b.built().size(), "stages built before the failure");
        for (BuildFailingStages.Built s : b.built()) {
            assertEquals(1, s.closes(), "a built stage is closed exactly once");
            assertClosed(s);
        }
    }

    private static void assertClosed(BuildFailingStages.Built s) {
        for (Tensor t : s.tensors()) {
            assertFalse(t.storage().isOpen(), "a built stage's memory is freed: " + t);
        }
    }

    /** Joins each thread until one deadline; fails naming those still alive then. */
    private static void assertEnded(Set<Thread> threads) throws InterruptedException {
        List<String> alive = LiveThreads.aliveAfter(threads, THREADS_END_MS);
        assertTrue(alive.isEmpty(), "device compute threads still alive " + THREADS_END_MS + " ms after the build: "
            + alive);
    }

    private static PipelineJobSpec spec() {
        TrainConfig train = new TrainConfig(MODEL, 8, 1, 1, 3e-3f, 3e-4f, 2, 1.0f, 11, 0, 1, 0,
            AdamWConfig.defaults());
        return new PipelineJobSpec(train, Layout.parse("1x1", CHUNKS), "interleaved", 2,
            StagePartition.balanced(MODEL, CHUNKS), THREADS, 30_000, DeviceKind.CPU,
            BuildFailingStages.class.getName());
    }

    private static Set<Thread> computeThreads() {
        return LiveThreads.named(COMPUTE_THREAD);
    }
}
