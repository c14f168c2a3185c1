package io.troupe.models.parallel.tp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The async collectives of every group kind (the group of one, the in-process group, the data-plane
 * group) give bitwise the blocking forms' results; an await that times out names the group, the
 * member, the collective and the peer; a member cannot issue a collective while one is in flight.
 */
@Timeout(120)
class TensorParallelAsyncCollectivesTest {
    private static final int TP = 2;
    private static final int N = 12;
    private static final int C = 8;
    private static final long SECOND_NS = TimeUnit.SECONDS.toNanos(1);

    private static float[] in(int k, int salt) {
        return RandomTensors.normal(new Random(100L * salt + k), N * C, 0, 1);
    }

    /** {sum, gather, reduce-scatter} on member k, by the blocking forms or the async ones. */
    private static float[][] exercise(TensorParallelGroup g, CpuDevice dev, boolean async) {
        int k = g.index();
        int size = g.size();
        Tensor s = RandomTensors.tensor(dev, in(k, 1), N, C);
        Tensor shard = RandomTensors.tensor(dev, java.util.Arrays.copyOf(in(k, 3), N * C / size), N / size, C);
        Tensor full = dev.allocate(N, C);
        Tensor rsIn = RandomTensors.tensor(dev, in(k, 4), N, C);
        Tensor rs = dev.allocate(N / size, C);
        if (async) {
            PendingTensorParallelCollective p = g.allReduceSumAsync(s);
            p.await(10 * SECOND_NS);
            assertTrue(p.isDone());
            g.allGatherAsync(shard, full).await();
            g.reduceScatterAsync(rsIn, rs).await(10 * SECOND_NS);
        } else {
            g.allReduceSum(s);
            g.allGather(shard, full);
            g.reduceScatter(rsIn, rs);
        }
        return new float[][] {s.toFloatArray(), full.toFloatArray(), rs.toFloatArray()};
    }

    private static void assertSame(List<float[][]> blocking, List<float[][]> async, String group) {
        String[] ops = {"allReduceSum", "allGather", "reduceScatter"};
        for (int r = 0; r < blocking.size(); r++) {
            for (int op = 0; op < ops.length; op++) {
                assertArrayEquals(blocking.get(r)[op], async.get(r)[op],
                    group + " " + ops[op] + "Async on member " + r);
            }
        }
    }

    @Test
    void shouldGiveTheBlockingResultsBitwiseInTheGroupOfOne() {
        try (CpuDevice dev = new CpuDevice(1)) {
            TensorParallelGroup g = TensorParallelGroup.single();
            List<float[][]> blocking = List.<float[][]>of(exercise(g, dev, false));
            assertSame(blocking, List.<float[][]>of(exercise(g, dev, true)), "single");
        }
    }

    @Test
    void shouldGiveTheBlockingResultsBitwiseInTheInProcessGroup() {
        List<float[][]> blocking = TensorParallelMembers.run(TP, (g, dev) -> exercise(g, (CpuDevice) dev, false));
        List<float[][]> async = TensorParallelMembers.run(TP, (g, dev) -> exercise(g, (CpuDevice) dev, true));
        assertSame(blocking, async, "in-process");
    }

    @Test
    void shouldGiveTheBlockingResultsBitwiseOverTheDataPlane() {
        List<float[][]> blocking = TensorParallelMembers.run(TP, (g, dev) -> exercise(g, (CpuDevice) dev, false));
        List<float[][]> async = TensorParallelMembers.runOverDataPlane(TP, 8, 20,
            (g, dev) -> exercise(g, (CpuDevice) dev, true));
        assertSame(blocking, async, "data-plane");
    }

    @Test
    void shouldNameTheGroupAndThePeerWhenAnInProcessAwaitTimesOut() {
        List<TensorParallelGroup> groups = LocalTensorParallelGroup.create(TP, 30_000);
        try (CpuDevice dev = new CpuDevice(1)) {
            Tensor t = dev.allocate(N, C);
            PendingTensorParallelCollective p = groups.get(0).allReduceSumAsync(t);
            long t0 = System.nanoTime();
            TensorParallelTimeoutException e = assertThrows(TensorParallelTimeoutException.class,
                () -> p.await(TimeUnit.MILLISECONDS.toNanos(100)));
            long waitedMs = (System.nanoTime() - t0) / 1_000_000;
            System.out.println("in-process await timed out after " + waitedMs + " ms: " + e.getMessage());
            assertTrue(e.getMessage().contains("in-process") && e.getMessage().contains("member 0")
                && e.getMessage().contains("not started by its peer member 1")
                && e.getMessage().contains("allReduceSum(96, async)"), e.getMessage());
            assertTrue(waitedMs >= 100, "waited the timeout: " + waitedMs + " ms");
            // The late peer finds the collective failed rather than completing it.
            IllegalStateException late = assertThrows(IllegalStateException.class,
                () -> groups.get(1).allReduceSumAsync(dev.allocate(N, C)));
            assertTrue(late.getMessage().contains("waited more than 100 ms"), late.getMessage());
        }
    }

    @Test
    void shouldNameTheGroupAndThePeerWhenADataPlaneAwaitTimesOut() {
        CountDownLatch timedOut = new CountDownLatch(1);
        List<float[]> sums = TensorParallelMembers.runOverDataPlane(TP, 9, 20, (g, dev) -> {
            Tensor t = RandomTensors.tensor(dev, in(g.index(), 5), N, C);
            if (g.index() == 0) {
                PendingTensorParallelCollective p = g.allReduceSumAsync(t);
                TensorParallelTimeoutException e = assertThrows(TensorParallelTimeoutException.class,
                    () -> p.await(TimeUnit.MILLISECONDS.toNanos(200)));
                System.out.println("data-plane await timed out: " + e.getMessage());
                assertTrue(e.getMessage().contains("member 0") && e.getMessage().contains("member 1 (rank 1)")
                    && e.getMessage().contains("allReduceSum(96)") && e.getMessage().contains("group"),
                    e.getMessage());
                timedOut.countDown();
                // The collective stays in flight: once the peer joins, a second await completes it.
                p.await(10 * SECOND_NS);
            } else {
                try {
                    assertTrue(timedOut.await(30, TimeUnit.SECONDS), "member 0 timed out first");
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
                g.allReduceSum(t);
            }
            return t.toFloatArray();
        });
        float[] expected = in(0, 5);
        float[] other = in(1, 5);
        for (int i = 0; i < expected.length; i++) {
            expected[i] += other[i];
        }
        assertArrayEquals(expected, sums.get(0));
        assertArrayEquals(expected, sums.get(1));
    }

    @Test
    void shouldRefuseACollectiveWhileAnotherIsInFlight() {
        List<TensorParallelGroup> groups = LocalTensorParallelGroup.create(TP, 30_000);
        try (CpuDevice dev = new CpuDevice(1)) {
            groups.get(0).allReduceSumAsync(dev.allocate(N, C));
            IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> groups.get(0).allReduceSum(dev.allocate(N, C)));
            assertTrue(e.getMessage().contains("still in flight"), e.getMessage());
        }
    }
}
