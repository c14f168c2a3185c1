package io.troupe.actors.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.ParamSpec;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * dp × pp training under every schedule gives single-device training's per-step loss and final
 * weights (up to float summation order), and repeating a layout is bitwise identical.
 */
@Timeout(300)
class LayoutInvarianceTest {
    private static final GptConfig MODEL = new GptConfig("tiny8", 256, 32, 8, 4, 16, 1e-5f);
    private static final int STEPS = 10;
    /**
     * Final weights agree as {@code ||a - b|| / ||b|| <= WEIGHT_RTOL} (L2 over all parameters). Accumulation order
     * differs by layout (micro-batches, replicas), and AdamW turns a last-bit difference in a near-zero gradient into
     * a weight difference of up to ~1e-5 on that one element over ten steps at lr 3e-3, whatever the layout; the
     * elementwise maximum is printed beside.
     */
    private static final double WEIGHT_RTOL = 1e-5;
    private static final Corpora DATA = Corpora.builtIn();
    private static double[] referenceLosses;
    private static float[] referenceWeights;

    private static TrainConfig train() {
        return new TrainConfig(MODEL, 8, 1, STEPS, 3e-3f, 3e-4f, 2, 1.0f, 11, 0, 1, 0, AdamWConfig.defaults());
    }

    @BeforeAll
    static void singleDevice() {
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(train(), dev, DATA)) {
            referenceLosses = new double[STEPS];
            for (int i = 0; i < STEPS; i++) {
                referenceLosses[i] = t.trainStep().loss();
            }
            referenceWeights = t.model().params().toFloatArray();
        }
    }

    private static PipelineJobSpec spec(String layout, int v, String schedule) {
        Layout l = Layout.parse(layout, v);
        return new PipelineJobSpec(train(), l, schedule, 4, StagePartition.balanced(MODEL, l.modelStages()), 1, 30_000);
    }

    /** Runs a job; returns per-step losses and the final weights gathered by name in model order. */
    private static Object[] run(PipelineJobSpec spec) {
        try (LocalPipelineEngine engine = new LocalPipelineEngine(spec, DATA)) {
            double[] losses = new double[STEPS];
            for (int i = 0; i < STEPS; i++) {
                losses[i] = engine.trainStep().step().loss();
            }
            float[] weights = new float[referenceWeights.length];
            int off = 0;
            for (int g = 0; g < spec.layout().modelStages(); g++) {
                float[] p = engine.stage(0, g).params().toFloatArray();
                System.arraycopy(p, 0, weights, off, p.length);
                off += p.length;
            }
            return new Object[] {losses, weights};
        }
    }

    @Test
    void shouldMatchSingleDeviceLossAndWeightsUnderEveryLayoutAndSchedule() {
        List<String> report = new ArrayList<>();
        double worstLoss = 0;
        double worstWeight = 0;
        for (String layout : List.of("1x1", "2x1", "1x2", "2x2", "1x4")) {
            for (String schedule : List.of("gpipe", "1f1b", "interleaved", "zb-h1", "adaptive")) {
                int v = schedule.equals("interleaved") ? 2 : 1;
                PipelineJobSpec spec = spec(layout, v, schedule);
                Object[] r = run(spec);
                double[] losses = (double[]) r[0];
                float[] weights = (float[]) r[1];
                double lossRel = 0;
                for (int i = 0; i < STEPS; i++) {
                    lossRel = Math.max(lossRel, Math.abs(losses[i] - referenceLosses[i]) / referenceLosses[i]);
                }
                double diffSq = 0;
                double refSq = 0;
                double maxAbs = 0;
                for (int i = 0; i < weights.length; i++) {
                    double d = weights[i] - referenceWeights[i];
                    diffSq += d * d;
                    refSq += (double) referenceWeights[i] * referenceWeights[i];
                    maxAbs = Math.max(maxAbs, Math.abs(d));
                }
                double w = Math.sqrt(diffSq / refSq);
                worstLoss = Math.max(worstLoss, lossRel);
                worstWeight = Math.max(worstWeight, w);
                report.add(String.format("%s %-11s loss max rel diff %.2e, weights rel diff %.2e (max abs %.2e)",
                    layout, schedule, lossRel, w, maxAbs));
            }
        }
        report.forEach(System.out::println);
        assertTrue(worstLoss <= 1e-5, "per-step loss off by relative " + worstLoss + "\n" + String.join("\n", report));
        assertTrue(worstWeight <= WEIGHT_RTOL, "final weights off by relative " + worstWeight + "\n"
            + String.join("\n", report));
    }

    @Test
    void shouldBeBitwiseRepeatable() {
        Object[] a = run(spec("2x2", 1, "1f1b"));
        Object[] b = run(spec("2x2", 1, "1f1b"));
        assertArrayEquals((double[]) a[0], (double[]) b[0], 0.0);
        assertArrayEquals((float[]) a[1], (float[]) b[1], 0f);
    }

    @Test
    void shouldRefuseBadJobsBeforeAnyWork() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> spec("2x2", 1, "2f2b"));
        assertTrue(e.getMessage().contains("'2f2b'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> StagePartition.balanced(MODEL, 9));
        assertTrue(e.getMessage().contains("stages=9"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
            () -> new PipelineJobSpec(train(), Layout.parse("3x1", 1), "1f1b", 4, StagePartition.balanced(MODEL, 1), 1,
                1000));
        assertTrue(e.getMessage().contains("dp=3"), e.getMessage());
        List<String> names = new ArrayList<>();
        for (ParamSpec s : io.troupe.models.gpt.ParameterLayout.full(MODEL).specs()) {
            names.add(s.name());
        }
        assertTrue(names.get(0).equals("tok_emb.weight"));
    }
}
