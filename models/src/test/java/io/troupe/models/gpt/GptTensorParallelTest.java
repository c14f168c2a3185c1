package io.troupe.models.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.ParamSpec;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.models.parallel.tp.LocalTensorParallelGroup;
import io.troupe.models.parallel.tp.TensorParallelGradients;
import io.troupe.models.parallel.tp.TensorParallelGroup;
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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The whole GPT split over tp members of an in-process group against the unsplit model: the
 * initial weights are the unsplit ones sliced, exactly; over two micro-batches the losses agree
 * to 1e-5 relative and every member's gradient equals the slice of the unsplit gradient it holds.
 */
@Timeout(120)
class GptTensorParallelTest {
    private static final GptConfig CFG = new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f);
    private static final int ROWS = 2;
    private static final long SEED = 5;

    /** What one member saw: {params, grads} flat, and the losses of two micro-batches. */
    private record Result(float[] params, float[] grads, double[] losses, List<ParamSpec> specs, double normPart) {
    }

    private static Result run(TensorParallelGroup g, CpuDevice dev, boolean sequenceParallel) {
        try (Gpt gpt = new Gpt(CFG, dev, g, sequenceParallel, ROWS, 0, CFG.nLayer(), true, true)) {
            gpt.initialize(SEED);
            float[] p0 = gpt.params().toFloatArray();
            gpt.zeroGrads();
            int n = ROWS * CFG.seqLen();
            double[] losses = new double[2];
            for (int mb = 0; mb < 2; mb++) {
                Random rnd = new Random(100 + mb);
                int[] x = new int[n];
                int[] y = new int[n];
                for (int i = 0; i < n; i++) {
                    x[i] = rnd.nextInt(CFG.vocabSize());
                    y[i] = rnd.nextInt(CFG.vocabSize());
                }
                gpt.forwardTokens(mb, x, y);
                losses[mb] = gpt.loss(mb);
            }
            for (int mb = 1; mb >= 0; mb--) {
                gpt.backward(mb, null, 1f / (2 * n));
            }
            TensorParallelGradients.reducePartialGradients(gpt, g);
            double normPart = 0;
            for (io.troupe.runtime.tensor.Tensor v : TensorParallelGradients.normViews(gpt, g.index())) {
                normPart += io.troupe.models.optim.GradClip.sumOfSquares(dev, v);
            }
            return new Result(p0, gpt.grads().toFloatArray(), losses, gpt.parameters(), normPart);
        }
    }

    private static List<Result> members(int tp, boolean sequenceParallel) throws Exception {
        List<TensorParallelGroup> groups = LocalTensorParallelGroup.create(tp, 30_000);
        ExecutorService pool = Executors.newFixedThreadPool(tp);
        try {
            List<Future<Result>> fs = new ArrayList<>();
            for (TensorParallelGroup g : groups) {
                fs.add(pool.submit(() -> {
                    try (CpuDevice dev = new CpuDevice(1)) {
                        return run(g, dev, sequenceParallel);
                    }
                }));
            }
            List<Result> out = new ArrayList<>();
            for (Future<Result> f : fs) {
                out.add(f.get(60, TimeUnit.SECONDS));
            }
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    private static float[] part(float[] flat, ParamSpec s) {
        return java.util.Arrays.copyOfRange(flat, (int) s.localOffset(), (int) (s.localOffset() + s.numel()));
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void shouldMatchTheUnsplitModelsLossAndGradientsWhenSplitByTensorParallelism(int tp) throws Exception {
        check(tp, false);
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void shouldMatchTheUnsplitModelsLossAndGradientsWithSequenceParallelism(int tp) throws Exception {
        check(tp, true);
    }

    private static void check(int tp, boolean sequenceParallel) throws Exception {
        Result full = members(1, false).get(0);
        List<Result> parts = members(tp, sequenceParallel);
        String mode = "tp=" + tp + (sequenceParallel ? " sp" : "");
        ParameterLayout fullLayout = ParameterLayout.full(CFG);
        double worstGrad = 0;
        for (int k = 0; k < tp; k++) {
            Result r = parts.get(k);
            for (int mb = 0; mb < 2; mb++) {
                double rel = Math.abs(r.losses()[mb] - full.losses()[mb]) / Math.abs(full.losses()[mb]);
                System.out.printf("%s member %d micro-batch %d: loss %.9f vs unsplit %.9f, rel %.2e%n", mode, k, mb,
                    r.losses()[mb], full.losses()[mb], rel);
                assertTrue(rel <= 1e-5, "loss within 1e-5 relative");
            }
            for (ParamSpec s : r.specs()) {
                ParamSpec fs = fullLayout.get(s.name());
                float[] fp = part(full.params(), fs);
                float[] fg = part(full.grads(), fs);
                TensorParallelPlacement pl = GptPlacements.of(s.name(), false);
                if (pl instanceof TensorParallelPlacement.Split split) {
                    fp = split.split().shard(fp, fs.shape(), tp, k);
                    fg = split.split().shard(fg, fs.shape(), tp, k);
                }
                assertArrayEquals(fp, part(r.params(), s), s.name() + ": initial shard is the unsplit weight's slice");
                float[] g = part(r.grads(), s);
                double maxDiff = 0;
                double maxRef = 0;
                for (int i = 0; i < g.length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(g[i] - fg[i]));
                    maxRef = Math.max(maxRef, Math.abs(fg[i]));
                }
                double rel = maxDiff / Math.max(maxRef, 1e-30);
                worstGrad = Math.max(worstGrad, rel);
                assertTrue(rel <= 1e-5, s.name() + " gradient on member " + k + ": rel " + rel);
            }
        }
        System.out.printf("%s: worst gradient relative max difference %.3e%n", mode, worstGrad);
        double sumSq = 0;
        for (Result r : parts) {
            sumSq += r.normPart();
        }
        double relNorm = Math.abs(Math.sqrt(sumSq) - Math.sqrt(full.normPart())) / Math.sqrt(full.normPart());
        System.out.printf("%s: global gradient norm %.9f vs unsplit %.9f, rel %.2e%n", mode, Math.sqrt(sumSq),
            Math.sqrt(full.normPart()), relNorm);
        assertTrue(relNorm <= 1e-5, "replicas counted once in the global norm");
    }

    @Test
    void shouldRefuseATpDegreeTheHeadsDoNotDivideNamingTheNumbers() {
        TensorParallelGroup three = LocalTensorParallelGroup.create(3, 1000).get(0);
        try (CpuDevice dev = new CpuDevice(1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Gpt(CFG, dev, three, ROWS, 0, CFG.nLayer(), true, true));
            assertTrue(e.getMessage().contains("n_head=4") && e.getMessage().contains("tp=3"), e.getMessage());
        }
        assertEquals(3, three.size());
    }
}
