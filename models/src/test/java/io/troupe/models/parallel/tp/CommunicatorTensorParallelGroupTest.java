package io.troupe.models.parallel.tp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.List;
import java.util.Random;
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
        List<float[][]> got = TensorParallelMembers.runOverDataPlane(TP, 7, 20,
            (g, dev) -> exercise(g, (CpuDevice) dev));
        String[] ops = {"allReduceSum", "allReduceMax", "allGather", "reduceScatter"};
        for (int r = 0; r < TP; r++) {
            for (int op = 0; op < ops.length; op++) {
                assertArrayEquals(reference.get(r)[op], got.get(r)[op], ops[op] + " on member " + r);
            }
        }
    }
}
