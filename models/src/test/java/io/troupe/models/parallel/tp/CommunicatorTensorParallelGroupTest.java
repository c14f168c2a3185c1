package io.troupe.models.parallel.tp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.CollectiveAgent;
import io.troupe.collectives.CollectiveGroup;
import io.troupe.collectives.CollectiveSettings;
import io.troupe.collectives.Communicator;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.testkit.RandomTensors;
import io.troupe.runtime.transport.TransportEndpoint;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tp group over the real data plane (one embedded driver, IPC, one collective agent per member,
 * each driven by its member's thread) gives bitwise the in-process group's results for every
 * collective the parallel layers use.
 */
@Timeout(120)
class CommunicatorTensorParallelGroupTest {
    private static final int TP = 2;
    private static final int N = 12;
    private static final int C = 8;

    private static float[] in(int k, int salt) {
        return RandomTensors.normal(new Random(100L * salt + k), N * C, 0, 1);
    }

    /** Every collective the layers use, on member k: {sum, max, gather, reduce-scatter}. */
    private static float[][] exercise(TensorParallelGroup g, CpuDevice dev) {
        int k = g.index();
        Tensor s = RandomTensors.tensor(dev, in(k, 1), N, C);
        g.allReduceSum(s);
        Tensor m = RandomTensors.tensor(dev, in(k, 2), N, C);
        g.allReduceMax(m);
        Tensor shard = RandomTensors.tensor(dev, java.util.Arrays.copyOf(in(k, 3), N * C / TP), N / TP, C);
        Tensor full = dev.allocate(N, C);
        g.allGather(shard, full);
        Tensor rs = dev.allocate(N / TP, C);
        g.reduceScatter(RandomTensors.tensor(dev, in(k, 4), N, C), rs);
        return new float[][] {s.toFloatArray(), m.toFloatArray(), full.toFloatArray(), rs.toFloatArray()};
    }

    @Test
    void shouldGiveTheInProcessGroupsResultsOverTheDataPlane() throws Exception {
        List<float[][]> reference = TensorParallelMembers.run(TP, (g, dev) -> exercise(g, (CpuDevice) dev));
        try (LoopbackDriver driver = LoopbackDriver.start(LoopbackDriver.testSettings()
            .withChunkBytes(256 * 1024).withTermLengthBytes(4 * 1024 * 1024))) {
            CollectiveAgent[] agents = new CollectiveAgent[TP];
            TransportEndpoint[] endpoints = new TransportEndpoint[TP];
            for (int r = 0; r < TP; r++) {
                agents[r] = new CollectiveAgent("tp" + r, null, driver.errors()::add);
                agents[r].attach(driver.openWorker("tp" + r, r, 1, agents[r]));
                endpoints[r] = agents[r].worker().endpoint();
            }
            ExecutorService pool = Executors.newFixedThreadPool(TP);
            try {
                List<Future<float[][]>> futures = new ArrayList<>();
                for (int r = 0; r < TP; r++) {
                    Communicator c = agents[r].communicator(CollectiveGroup.ofWorld(1, 7, r, endpoints),
                        CollectiveSettings.defaults().withTimeoutNs(TimeUnit.SECONDS.toNanos(20)));
                    futures.add(pool.submit(() -> {
                        try (CpuDevice dev = new CpuDevice(1);
                             CommunicatorTensorParallelGroup g = new CommunicatorTensorParallelGroup(c, dev)) {
                            return exercise(g, dev);
                        }
                    }));
                }
                String[] ops = {"allReduceSum", "allReduceMax", "allGather", "reduceScatter"};
                for (int r = 0; r < TP; r++) {
                    float[][] got = futures.get(r).get(60, TimeUnit.SECONDS);
                    for (int op = 0; op < ops.length; op++) {
                        assertArrayEquals(reference.get(r)[op], got[op], ops[op] + " on member " + r);
                    }
                }
            } finally {
                pool.shutdownNow();
                for (CollectiveAgent a : agents) {
                    a.close();
                }
            }
            assertTrue(driver.errors().isEmpty(), "no transport errors: " + driver.errors());
        }
    }
}
