package io.troupe.runtime.device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The decoding ops' CPU forms against dumb loops written here: {@link CpuDevice}'s (the reference loops
 * on its memory in place) and the {@link Device} defaults (the same loops on host copies, what a
 * backend without its own kernels gets), each on random paged scenarios and linears.
 */
@Timeout(60)
class DecodeOpsTest {
    private static final Set<String> DECODE_OPS = Set.of("linearRowInvariant", "pagedKvWrite", "pagedAttention");
    private CpuDevice cpu;
    private Device defaults;

    @BeforeEach
    void open() {
        cpu = new CpuDevice(1);
        defaults = defaultsOver(cpu);
    }

    @AfterEach
    void close() {
        cpu.close();
    }

    /** A device that is {@code cpu} except for the decoding ops, which run the interface's defaults. */
    static Device defaultsOver(CpuDevice cpu) {
        InvocationHandler h = (proxy, method, args) -> {
            if (DECODE_OPS.contains(method.getName())) {
                return InvocationHandler.invokeDefault(proxy, method, args);
            }
            try {
                return method.invoke(cpu, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        };
        return (Device) Proxy.newProxyInstance(Device.class.getClassLoader(), new Class<?>[] {Device.class}, h);
    }

    private static List<PagedDecodeCase> cases() {
        return List.of(
            new PagedDecodeCase(1, 4, 8, 4, new int[] {9, 5, 14}, 6, 4),
            new PagedDecodeCase(2, 2, 12, 3, new int[] {1, 7}, 4, 5),
            new PagedDecodeCase(3, 3, 16, 16, new int[] {20, 2, 3}, 20, 3));
    }

    @Test
    void shouldMatchTheDumbLoopWhenAttendingOverPagedCaches() {
        for (Device dev : new Device[] {cpu, defaults}) {
            for (PagedDecodeCase c : cases()) {
                double diff = PagedDecodeCase.maxRelDiff(c.run(dev), c.expected());
                System.out.printf("paged attention (%s) vs dumb loop, %d heads of %d, blocks of %d: max rel %.3g%n",
                    dev == cpu ? "cpu" : "defaults", c.heads, c.headDim, c.blockSize, diff);
                assertTrue(diff < 2e-6, "max rel diff " + diff);
            }
        }
    }

    @Test
    void shouldGiveARowTheSameBitsAloneOrAmongOthers() {
        PagedDecodeCase c = cases().get(0);
        List<float[]> all = c.run(cpu);
        for (int seq = 0; seq < 3; seq++) {
            List<float[]> mine = c.rowsOf(seq, all);
            List<float[]> alone = c.onlySequence(seq).run(cpu);
            for (int st = 0; st < mine.size(); st++) {
                assertArrayEquals(alone.get(st), mine.get(st), "sequence " + seq + ", its step " + st);
            }
        }
        List<float[]> viaDefaults = c.run(defaults);
        for (int st = 0; st < all.size(); st++) {
            assertArrayEquals(all.get(st), viaDefaults.get(st), "cpu and defaults, step " + st);
        }
    }

    @Test
    void shouldComputeTheLinearInOneOrderWhateverTheRowCount() {
        Random rnd = new Random(7);
        int rows = 6;
        int n = 37;
        int k = 29;
        float[] x = PagedDecodeCase.gaussian(rnd, rows * k);
        float[] w = PagedDecodeCase.gaussian(rnd, n * k);
        float[] b = PagedDecodeCase.gaussian(rnd, n);
        for (Device dev : new Device[] {cpu, defaults}) {
            float[] all = PagedDecodeCase.linear(dev, rows, n, k, x, w, b);
            float[] noBias = PagedDecodeCase.linear(dev, rows, n, k, x, w, null);
            double worst = 0;
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < n; j++) {
                    double acc = 0;
                    for (int kk = 0; kk < k; kk++) {
                        acc += (double) x[r * k + kk] * w[j * k + kk];
                    }
                    worst = Math.max(worst, Math.abs(all[r * n + j] - (acc + b[j])) / (1 + Math.abs(acc)));
                    worst = Math.max(worst, Math.abs(noBias[r * n + j] - acc) / (1 + Math.abs(acc)));
                }
            }
            System.out.printf("linearRowInvariant vs dumb loop: max rel diff %.3g%n", worst);
            assertTrue(worst < 1e-5, "max rel diff " + worst);
            for (int r = 0; r < rows; r++) {
                float[] row = java.util.Arrays.copyOfRange(x, r * k, (r + 1) * k);
                float[] one = PagedDecodeCase.linear(dev, 1, n, k, row, w, b);
                assertArrayEquals(java.util.Arrays.copyOfRange(all, r * n, (r + 1) * n), one, "row " + r);
            }
        }
    }

    @Test
    void shouldRefuseRowsPastTheirTableOrOutsideTheCache() {
        try (Tensor q = cpu.allocate(1, 3 * 8); Tensor k = cpu.allocate(4 * 2 * 8); Tensor v = cpu.allocate(4 * 2 * 8);
             PagedRows rows = new PagedRows(cpu, 2)) {
            rows.set(1, new int[] {4}, new int[] {0}, 1, new int[] {0, 1});
            assertThrows(IllegalArgumentException.class, () -> cpu.pagedKvWrite(q, k, v, rows, 8, 2));
            rows.set(1, new int[] {3}, new int[] {0}, 1, new int[] {0, 4});
            assertThrows(IllegalArgumentException.class, () -> cpu.pagedKvWrite(q, k, v, rows, 8, 2));
            assertThrows(IllegalArgumentException.class,
                () -> rows.set(1, new int[] {0}, new int[] {1}, 1, new int[] {0, 1}));
        }
    }
}
