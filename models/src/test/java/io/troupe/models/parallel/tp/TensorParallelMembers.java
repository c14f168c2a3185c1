package io.troupe.models.parallel.tp;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.CollectiveAgent;
import io.troupe.collectives.CollectiveGroup;
import io.troupe.collectives.CollectiveSettings;
import io.troupe.collectives.Communicator;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.transport.TransportEndpoint;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Runs one body per member of a tp group, each on its own thread with its own CPU device: an in-process
 * group, or communicators over a real data plane (a loopback media driver).
 */
public final class TensorParallelMembers {
    private TensorParallelMembers() {
    }

    public interface Body<T> {
        T run(TensorParallelGroup group, Device device);
    }

    public static <T> List<T> run(int tp, Body<T> body) {
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

    /**
     * The same over the data plane: one collective agent and communicator (group {@code groupId}) per
     * member on a loopback driver, each member's group a {@link CommunicatorTensorParallelGroup}; no
     * transport error may occur.
     */
    public static <T> List<T> runOverDataPlane(int tp, int groupId, long timeoutSeconds, Body<T> body) {
        try (LoopbackDriver driver = LoopbackDriver.start(LoopbackDriver.testSettings()
            .withChunkBytes(256 * 1024).withTermLengthBytes(4 * 1024 * 1024))) {
            CollectiveAgent[] agents = new CollectiveAgent[tp];
            TransportEndpoint[] endpoints = new TransportEndpoint[tp];
            for (int r = 0; r < tp; r++) {
                agents[r] = new CollectiveAgent("tp" + r, null, driver.errors()::add);
                agents[r].attach(driver.openWorker("tp" + r, r, 1, agents[r]));
                endpoints[r] = agents[r].worker().endpoint();
            }
            ExecutorService pool = Executors.newFixedThreadPool(tp);
            try {
                List<Future<T>> futures = new ArrayList<>();
                for (int r = 0; r < tp; r++) {
                    Communicator c = agents[r].communicator(CollectiveGroup.ofWorld(1, groupId, r, endpoints),
                        CollectiveSettings.defaults().withTimeoutNs(TimeUnit.SECONDS.toNanos(timeoutSeconds)));
                    futures.add(pool.submit(() -> {
                        try (CpuDevice dev = new CpuDevice(1);
                             CommunicatorTensorParallelGroup g = new CommunicatorTensorParallelGroup(c, dev)) {
                            return body.run(g, dev);
                        }
                    }));
                }
                List<T> out = new ArrayList<>();
                for (Future<T> f : futures) {
                    out.add(f.get(60, TimeUnit.SECONDS));
                }
                assertTrue(driver.errors().isEmpty(), "no transport errors: " + driver.errors());
                return out;
            } catch (ExecutionException e) {
                throw new AssertionError("a tp member failed: " + e.getCause(), e.getCause());
            } catch (InterruptedException | TimeoutException e) {
                throw new AssertionError("tp members did not finish: " + e, e);
            } finally {
                pool.shutdownNow();
                for (CollectiveAgent a : agents) {
                    a.close();
                }
            }
        }
    }

    /** Asserts max |a - b| / max(max |b|, 1e-30) <= rel and prints the figures. */
    public static void assertClose(String what, float[] expected, float[] actual, double rel) {
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
