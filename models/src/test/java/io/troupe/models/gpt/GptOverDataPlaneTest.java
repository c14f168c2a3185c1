package io.troupe.models.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.parallel.tp.LocalTensorParallelGroup;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.models.parallel.tp.TensorParallelMembers;
import io.troupe.runtime.cpu.CpuDevice;
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
 * The GPT split over two tp members whose group is the collectives' communicator on the real data
 * plane (one embedded driver, a collective agent per member): forward and backward give the loss and
 * gradients the in-process group gives, with and without sequence parallelism.
 */
@Timeout(120)
class GptOverDataPlaneTest {
    private static final GptConfig CFG = new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f);
    private static final int ROWS = 2;
    private static final int TP = 2;

    /** {loss, grads...} of one member after one micro-batch. */
    private static float[][] step(TensorParallelGroup g, CpuDevice dev, boolean sp) {
        try (Gpt gpt = new Gpt(CFG, dev, g, sp, ROWS, 0, CFG.nLayer(), true, true)) {
            gpt.initialize(9);
            gpt.zeroGrads();
            int n = ROWS * CFG.seqLen();
            Random rnd = new Random(3);
            int[] x = new int[n];
            int[] y = new int[n];
            for (int i = 0; i < n; i++) {
                x[i] = rnd.nextInt(CFG.vocabSize());
                y[i] = rnd.nextInt(CFG.vocabSize());
            }
            gpt.forwardTokens(0, x, y);
            gpt.backward(0, null, 1f / n);
            return new float[][] {{(float) gpt.loss(0)}, gpt.grads().toFloatArray()};
        }
    }

    private static List<float[][]> inProcess(boolean sp) throws Exception {
        List<TensorParallelGroup> groups = LocalTensorParallelGroup.create(TP, 30_000);
        ExecutorService pool = Executors.newFixedThreadPool(TP);
        try {
            List<Future<float[][]>> fs = new ArrayList<>();
            for (TensorParallelGroup g : groups) {
                fs.add(pool.submit(() -> {
                    try (CpuDevice dev = new CpuDevice(1)) {
                        return step(g, dev, sp);
                    }
                }));
            }
            List<float[][]> out = new ArrayList<>();
            for (Future<float[][]> f : fs) {
                out.add(f.get(60, TimeUnit.SECONDS));
            }
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    private static List<float[][]> overDataPlane(boolean sp) {
        return TensorParallelMembers.runOverDataPlane(TP, 5, 30, (g, dev) -> step(g, (CpuDevice) dev, sp));
    }

    private static void compare(boolean sp) throws Exception {
        List<float[][]> local = inProcess(sp);
        List<float[][]> wire = overDataPlane(sp);
        for (int k = 0; k < TP; k++) {
            assertEquals(local.get(k)[0][0], wire.get(k)[0][0], 1e-6f * Math.abs(local.get(k)[0][0]), "loss");
            float[] a = local.get(k)[1];
            float[] b = wire.get(k)[1];
            double maxDiff = 0;
            double maxRef = 0;
            for (int i = 0; i < a.length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
                maxRef = Math.max(maxRef, Math.abs(a[i]));
            }
            System.out.printf("tp member %d%s over the data plane: loss %.7f (in-process %.7f), gradients max diff "
                + "%.2e of %.2e%n", k, sp ? " (sequence parallel)" : "", wire.get(k)[0][0], local.get(k)[0][0],
                maxDiff, maxRef);
            assertTrue(maxDiff <= 1e-5 * maxRef, "gradients within 1e-5 relative");
        }
        assertArrayEquals(wire.get(0)[0], wire.get(1)[0], "every member reports the same loss");
    }

    @Test
    void shouldTrainTheSameOverTheDataPlaneAsInProcess() throws Exception {
        compare(false);
    }

    @Test
    void shouldTrainTheSameOverTheDataPlaneWithSequenceParallelism() throws Exception {
        compare(true);
    }
}
