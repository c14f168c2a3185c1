package io.troupe.models.parallel.tp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Each conjugate operator, forward and backward, on the in-process group against a simple
 * reference written here on host arrays (sums in member order, so the results are exact).
 */
@Timeout(120)
class TensorParallelRegionsTest {
    private static final int ROWS = 8;
    private static final int COLS = 6;

    /** Member k's input: seeded by k, so every member (and the reference) can draw any member's. */
    private static float[] input(int k, int salt) {
        return RandomTensors.normal(new Random(1000L * salt + k), ROWS * COLS, 0, 1);
    }

    private static float[] sumOver(int tp, int salt) {
        float[] s = new float[ROWS * COLS];
        for (int k = 0; k < tp; k++) {
            float[] x = input(k, salt);
            for (int i = 0; i < s.length; i++) {
                s[i] += x[i];
            }
        }
        return s;
    }

    private static float[] rowsOf(float[] full, int tp, int k) {
        int n = full.length / tp;
        float[] out = new float[n];
        System.arraycopy(full, k * n, out, 0, n);
        return out;
    }

    private static float[] concat(int tp, int salt, int shardLen) {
        float[] out = new float[shardLen * tp];
        for (int k = 0; k < tp; k++) {
            System.arraycopy(input(k, salt), 0, out, k * shardLen, shardLen);
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void shouldCopyForwardAndAllReduceBackwardInCopyToTensorParallelRegion(int tp) {
        List<float[][]> r = TensorParallelMembers.run(tp, (g, dev) -> {
            Tensor x = RandomTensors.tensor(dev, input(g.index(), 1), ROWS, COLS);
            Tensor y = TensorParallelRegions.copyToTensorParallelRegion(g, x);
            Tensor dx = RandomTensors.tensor(dev, input(g.index(), 2), ROWS, COLS);
            TensorParallelRegions.copyToTensorParallelRegionBackward(g, dx);
            return new float[][] {y.toFloatArray(), dx.toFloatArray()};
        });
        for (int k = 0; k < tp; k++) {
            assertArrayEquals(input(k, 1), r.get(k)[0], "forward is the identity");
            assertArrayEquals(sumOver(tp, 2), r.get(k)[1], "backward sums the members' gradients");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void shouldAllReduceForwardAndCopyBackwardInReduceFromTensorParallelRegion(int tp) {
        List<float[][]> r = TensorParallelMembers.run(tp, (g, dev) -> {
            Tensor x = RandomTensors.tensor(dev, input(g.index(), 3), ROWS, COLS);
            TensorParallelRegions.reduceFromTensorParallelRegion(g, x);
            Tensor dy = RandomTensors.tensor(dev, input(g.index(), 4), ROWS, COLS);
            Tensor dx = TensorParallelRegions.reduceFromTensorParallelRegionBackward(g, dy);
            return new float[][] {x.toFloatArray(), dx.toFloatArray()};
        });
        for (int k = 0; k < tp; k++) {
            assertArrayEquals(sumOver(tp, 3), r.get(k)[0], "forward sums the partial outputs");
            assertArrayEquals(input(k, 4), r.get(k)[1], "backward is the identity");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void shouldKeepOwnRowsForwardAndGatherBackwardInScatterToSequenceParallelRegion(int tp) {
        int shard = ROWS * COLS / tp;
        List<float[][]> r = TensorParallelMembers.run(tp, (g, dev) -> {
            Tensor full = RandomTensors.tensor(dev, input(0, 5), ROWS, COLS);            // replicated input
            Tensor mine = dev.allocate(ROWS / tp, COLS);
            TensorParallelRegions.scatterToSequenceParallelRegion(g, full, mine);
            Tensor dMine = RandomTensors.tensor(dev, java.util.Arrays.copyOf(input(g.index(), 6), shard), ROWS / tp,
                COLS);
            Tensor dFull = dev.allocate(ROWS, COLS);
            TensorParallelRegions.scatterToSequenceParallelRegionBackward(g, dMine, dFull);
            return new float[][] {mine.toFloatArray(), dFull.toFloatArray()};
        });
        for (int k = 0; k < tp; k++) {
            assertArrayEquals(rowsOf(input(0, 5), tp, k), r.get(k)[0], "forward keeps member k's rows");
            assertArrayEquals(concat(tp, 6, shard), r.get(k)[1], "backward gathers every member's rows");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void shouldGatherForwardAndReduceScatterBackwardInGatherFromSequenceParallelRegion(int tp) {
        int shard = ROWS * COLS / tp;
        List<float[][]> r = TensorParallelMembers.run(tp, (g, dev) -> {
            Tensor mine = RandomTensors.tensor(dev, java.util.Arrays.copyOf(input(g.index(), 7), shard), ROWS / tp,
                COLS);
            Tensor full = dev.allocate(ROWS, COLS);
            TensorParallelRegions.gatherFromSequenceParallelRegion(g, mine, full);
            Tensor dFull = RandomTensors.tensor(dev, input(g.index(), 8), ROWS, COLS);
            Tensor dMine = dev.allocate(ROWS / tp, COLS);
            TensorParallelRegions.gatherFromSequenceParallelRegionBackward(g, dFull, dMine);
            return new float[][] {full.toFloatArray(), dMine.toFloatArray()};
        });
        for (int k = 0; k < tp; k++) {
            assertArrayEquals(concat(tp, 7, shard), r.get(k)[0], "forward gathers the rows");
            assertArrayEquals(rowsOf(sumOver(tp, 8), tp, k), r.get(k)[1], "backward sums and keeps member k's rows");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void shouldReduceScatterForwardAndGatherBackwardInReduceScatterToSequenceParallelRegion(int tp) {
        int shard = ROWS * COLS / tp;
        List<float[][]> r = TensorParallelMembers.run(tp, (g, dev) -> {
            Tensor partial = RandomTensors.tensor(dev, input(g.index(), 9), ROWS, COLS);
            Tensor mine = dev.allocate(ROWS / tp, COLS);
            TensorParallelRegions.reduceScatterToSequenceParallelRegion(g, partial, mine);
            Tensor dMine = RandomTensors.tensor(dev, java.util.Arrays.copyOf(input(g.index(), 10), shard), ROWS / tp,
                COLS);
            Tensor dFull = dev.allocate(ROWS, COLS);
            TensorParallelRegions.reduceScatterToSequenceParallelRegionBackward(g, dMine, dFull);
            return new float[][] {mine.toFloatArray(), dFull.toFloatArray()};
        });
        for (int k = 0; k < tp; k++) {
            assertArrayEquals(rowsOf(sumOver(tp, 9), tp, k), r.get(k)[0], "forward sums and keeps member k's rows");
            assertArrayEquals(concat(tp, 10, shard), r.get(k)[1], "backward gathers the rows");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void shouldTakeTheElementwiseMaximumInAllReduceMax(int tp) {
        List<float[]> r = TensorParallelMembers.run(tp, (g, dev) -> {
            Tensor x = RandomTensors.tensor(dev, input(g.index(), 11), ROWS, COLS);
            g.allReduceMax(x);
            return x.toFloatArray();
        });
        float[] expect = input(0, 11);
        for (int k = 1; k < tp; k++) {
            float[] x = input(k, 11);
            for (int i = 0; i < expect.length; i++) {
                expect[i] = Math.max(expect[i], x[i]);
            }
        }
        for (float[] got : r) {
            assertArrayEquals(expect, got);
        }
    }

    @org.junit.jupiter.api.Test
    void shouldReleaseAWaitingMemberAtOnceWhenTheGroupIsAborted() throws Exception {
        List<TensorParallelGroup> g = LocalTensorParallelGroup.create(2, 60_000);
        java.util.concurrent.CompletableFuture<Throwable> waiting =
            java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            try (io.troupe.runtime.cpu.CpuDevice dev = new io.troupe.runtime.cpu.CpuDevice(1)) {
                g.get(0).allReduceSum(dev.allocate(4));
                return null;
            } catch (IllegalStateException e) {
                return e;
            }
        });
        Thread.sleep(200);   // let member 0 reach the rendezvous; the abort must release it either way
        long t0 = System.nanoTime();
        ((LocalTensorParallelGroup) g.get(1)).abort("member 1's step failed");
        Throwable e = waiting.get(10, java.util.concurrent.TimeUnit.SECONDS);
        assertTrue(e != null && e.getMessage().contains("member 1's step failed"), String.valueOf(e));
        assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "released well before the 60 s timeout");
    }

    @ParameterizedTest
    @ValueSource(ints = {2})
    void shouldFailEveryMemberWhenTheyIssueDifferentCollectives(int tp) {
        AssertionError e = assertThrows(AssertionError.class, () -> TensorParallelMembers.run(tp, (g, dev) -> {
            Tensor x = dev.allocate(g.index() == 0 ? 4 : 6);
            g.allReduceSum(x);
            return null;
        }));
        assertTrue(String.valueOf(e.getCause()).contains("disagree"), "names the disagreement: " + e.getCause());
    }
}
