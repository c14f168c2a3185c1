package io.troupe.models.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.troupe.models.ParamSpec;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** ZeRO shards of AdamW: owners of disjoint ranges, stepped on the same buffers, update bitwise as the whole one. */
@Timeout(60)
class ShardedAdamWTest {
    private static final List<ParamSpec> SPECS = List.of(
        new ParamSpec("w", new int[] {5, 7}, 0, 0, 35, 0, 0.1, true),
        new ParamSpec("b", new int[] {7}, 35, 35, 7, 0, 0, false),
        new ParamSpec("w2", new int[] {3, 9}, 42, 42, 27, 0, 0.1, true));
    private static final int N = 69;

    @Test
    void shouldUpdateEveryElementAsTheWholeOptimizerDoes() {
        try (CpuDevice dev = new CpuDevice(1)) {
            Random rnd = new Random(3);
            float[] p0 = RandomTensors.normal(rnd, N, 0, 1);
            Tensor whole = dev.allocate(N);
            Tensor sharded = dev.allocate(N);
            Tensor grads = dev.allocate(N);
            dev.copyFromHost(p0, whole);
            dev.copyFromHost(p0, sharded);
            AdamW ref = new AdamW(AdamWConfig.defaults(), dev, SPECS, N);
            // Owner 0: two ranges cutting through w and w2; owner 1: the rest.
            AdamW a = AdamW.ranges(AdamWConfig.defaults(), dev, SPECS, N, new long[] {0, 40}, new long[] {20, 10});
            AdamW b = AdamW.ranges(AdamWConfig.defaults(), dev, SPECS, N, new long[] {20, 50}, new long[] {20, 19});
            assertEquals(N, a.stateNumel() + b.stateNumel());
            for (int step = 0; step < 5; step++) {
                dev.copyFromHost(RandomTensors.normal(rnd, N, 0, 1), grads);
                ref.step(whole, grads, 1e-2f);
                a.step(sharded, grads, 1e-2f);
                b.step(sharded, grads, 1e-2f);
                assertArrayEquals(whole.toFloatArray(), sharded.toFloatArray(), "step " + step);
            }
            float[] m = new float[N];
            a.unpack(a.firstMoment().toFloatArray(), m);
            b.unpack(b.firstMoment().toFloatArray(), m);
            assertArrayEquals(ref.firstMoment().toFloatArray(), m);
            assertArrayEquals(a.firstMoment().toFloatArray(), a.pack(m));
            for (AutoCloseable c : new AutoCloseable[] {ref, a, b, whole, sharded, grads}) {
                try {
                    c.close();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    @Test
    void shouldRefuseOverlappingOrOutsideRanges() {
        try (CpuDevice dev = new CpuDevice(1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AdamW.ranges(AdamWConfig.defaults(), dev, SPECS, N, new long[] {0, 10}, new long[] {20, 5}));
            assertEquals(true, e.getMessage().contains("range 1 = [10, +5)"), e.getMessage());
            assertThrows(IllegalArgumentException.class,
                () -> AdamW.ranges(AdamWConfig.defaults(), dev, SPECS, N, new long[] {60}, new long[] {10}));
        }
    }
}
