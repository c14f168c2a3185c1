package io.troupe.models.parallel.tp;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.Device;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Runs one body per member of an in-process tp group, each on its own thread with its own CPU device. */
final class TensorParallelMembers {
    private TensorParallelMembers() {
    }

    interface Body<T> {
        T run(TensorParallelGroup group, Device device);
    }

    static <T> List<T> run(int tp, Body<T> body) {
        List<TensorParallelGroup> groups = LocalTensorParallelGroup.create(tp, 30_000);
        ExecutorService pool = Executors.newFixedThreadPool(tp);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int k = 0; k < tp; k++) {
                TensorParallelGroup g = groups.get(k);
                futures.add(pool.submit(() -> {
                    try (CpuDevice dev = new CpuDevice(1)) {
                        return body.run(g, dev);
                    }
                }));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : futures) {
                out.add(f.get(60, TimeUnit.SECONDS));
            }
            return out;
        } catch (ExecutionException e) {
            throw new AssertionError("a tp member failed: " + e.getCause(), e.getCause());
        } catch (InterruptedException | TimeoutException e) {
            throw new AssertionError("tp members did not finish: " + e, e);
        } finally {
            pool.shutdownNow();
        }
    }

    /** Asserts max |a - b| / max(max |b|, 1e-30) <= rel and prints the figures. */
    static void assertClose(String what, float[] expected, float[] actual, double rel) {
        assertTrue(expected.length == actual.length, what + ": length " + actual.length + " != " + expected.length);
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < expected.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs((double) expected[i] - actual[i]));
            maxRef = Math.max(maxRef, Math.abs(expected[i]));
        }
        double r = maxDiff / Math.max(maxRef, 1e-30);
        System.out.printf("%-44s max|diff|=%.3e  max|ref|=%.3e  rel=%.3e%n", what, maxDiff, maxRef, r);
        assertTrue(r <= rel, what + ": relative max difference " + r + " > " + rel);
    }
}
