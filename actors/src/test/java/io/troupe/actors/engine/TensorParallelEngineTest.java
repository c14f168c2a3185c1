package io.troupe.actors.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tensor parallelism in the in-process engine: dp × pp × tp layouts give single-device training's
 * per-step losses (1e-5 relative) and final weights (reassembled from the tp shards by name; 1e-5
 * relative in L2, the elementwise maximum printed, as {@code LayoutInvarianceTest}), repeat
 * themselves bitwise, and a checkpoint written by one layout resumes under another on the same
 * trajectory.
 */
@Timeout(600)
class TensorParallelEngineTest {
    private static final GptConfig MODEL = new GptConfig("tiny4", 256, 32, 4, 4, 16, 1e-5f);
    private static final int STEPS = 10;
    private static final Corpora DATA = Corpora.builtIn();
    private static double[] referenceLosses;
    private static float[] referenceWeights;

    @TempDir
    Path tmp;

    private static TrainConfig train(int steps) {
        return new TrainConfig(MODEL, 8, 1, steps, 3e-3f, 3e-4f, 2, 1.0f, 11, 0, 1, 0, AdamWConfig.defaults());
    }

    @BeforeAll
    static void singleDevice() {
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(train(STEPS), dev, DATA)) {
            referenceLosses = new double[STEPS];
            for (int i = 0; i < STEPS; i++) {
                referenceLosses[i] = t.trainStep().loss();
            }
            referenceWeights = t.model().params().toFloatArray();
        }
    }

    private static PipelineJobSpec spec(String layout, int steps) {
        return spec(layout, steps, "1f1b");
    }

    private static PipelineJobSpec spec(String layout, int steps, String schedule) {
        Layout l = Layout.parse(layout, schedule.equals("interleaved") ? 2 : 1);
        return new PipelineJobSpec(train(steps), l, schedule, 2, StagePartition.balanced(MODEL, l.modelStages()), 1,
            60_000);
    }

    /** The unsplit model's weights in model order, from replica 0's stages and tp members. */
    private static float[] weights(LocalPipelineEngine engine, Layout l) {
        float[] out = new float[referenceWeights.length];
        int off = 0;
        for (int g = 0; g < l.modelStages(); g++) {
            StageModule s0 = engine.stage(0, g, 0);
            List<ParamSpec> specs = s0.parameters();
            float[][] members = new float[l.tp()][];
            for (int t = 0; t < l.tp(); t++) {
                members[t] = engine.stage(0, g, t).params().toFloatArray();
            }
            io.troupe.models.gpt.ParameterLayout full = io.troupe.models.gpt.ParameterLayout.full(MODEL);
            for (int i = 0; i < specs.size(); i++) {
                ParamSpec s = specs.get(i);
                int[] global = full.get(s.name()).shape();
                float[] whole;
                if (s0.tensorParallelPlacement(i) instanceof TensorParallelPlacement.Split split) {
                    float[][] shards = new float[l.tp()][];
                    for (int t = 0; t < l.tp(); t++) {
                        shards[t] = Arrays.copyOfRange(members[t], (int) s.localOffset(), (int) (s.localOffset()
                            + s.numel()));
                    }
                    whole = split.split().unshard(shards, global);
                } else {
                    whole = Arrays.copyOfRange(members[0], (int) s.localOffset(), (int) (s.localOffset() + s.numel()));
                }
                System.arraycopy(whole, 0, out, off, whole.length);
                off += whole.length;
            }
        }
        return out;
    }

    private static Object[] run(String layout) {
        return run(spec(layout, STEPS));
    }

    private static Object[] run(PipelineJobSpec spec) {
        try (LocalPipelineEngine engine = new LocalPipelineEngine(spec, DATA)) {
            double[] losses = new double[STEPS];
            for (int i = 0; i < STEPS; i++) {
                losses[i] = engine.trainStep().step().loss();
            }
            return new Object[] {losses, weights(engine, spec.layout())};
        }
    }

    /** {max |w - ref|, ||w - ref|| / ||ref||} against the single-device weights. */
    private static double[] weightDiff(float[] w) {
        double maxAbs = 0;
        double diff2 = 0;
        double ref2 = 0;
        for (int i = 0; i < w.length; i++) {
            double d = (double) w[i] - referenceWeights[i];
            maxAbs = Math.max(maxAbs, Math.abs(d));
            diff2 += d * d;
            ref2 += (double) referenceWeights[i] * referenceWeights[i];
        }
        return new double[] {maxAbs, Math.sqrt(diff2 / ref2)};
    }

    private static double lossRel(double[] losses, double[] reference, int from) {
        double worst = 0;
        for (int i = from; i < reference.length; i++) {
            worst = Math.max(worst, Math.abs(losses[i] - reference[i]) / reference[i]);
        }
        return worst;
    }

    @Test
    void shouldMatchSingleDeviceLossAndWeightsUnderTensorParallelLayouts() {
        List<String> report = new ArrayList<>();
        double worstLoss = 0;
        double worstWeight = 0;
        for (String layout : List.of("1x1x2", "2x1x2", "1x2x2", "2x2x2")) {
            Object[] r = run(layout);
            double l = lossRel((double[]) r[0], referenceLosses, 0);
            double[] wd = weightDiff((float[]) r[1]);
            worstLoss = Math.max(worstLoss, l);
            worstWeight = Math.max(worstWeight, wd[1]);
            report.add(String.format("%s 1f1b loss max rel diff %.2e, weights rel diff %.2e (max abs %.2e)", layout, l,
                wd[1], wd[0]));
        }
        report.forEach(System.out::println);
        assertTrue(worstLoss <= 1e-5, "per-step loss off by relative " + worstLoss + "\n" + String.join("\n", report));
        assertTrue(worstWeight <= 1e-5, "final weights off by " + worstWeight + "\n" + String.join("\n", report));
    }

    @Test
    void shouldMatchSingleDeviceLossUnderEverySchedule() {
        List<String> report = new ArrayList<>();
        double worst = 0;
        for (String schedule : List.of("gpipe", "interleaved", "zb-h1", "zb-h2", "adaptive")) {
            double l = lossRel((double[]) run(spec("1x2x2", STEPS, schedule))[0], referenceLosses, 0);
            worst = Math.max(worst, l);
            report.add(String.format("1x2x2 %-11s loss max rel diff %.2e", schedule, l));
        }
        // The adaptive policy's order follows arrival times: each stage's tp leader decides for its group.
        double l = lossRel((double[]) run(spec("2x2x2", STEPS, "adaptive"))[0], referenceLosses, 0);
        worst = Math.max(worst, l);
        report.add(String.format("2x2x2 %-11s loss max rel diff %.2e", "adaptive", l));
        report.forEach(System.out::println);
        assertTrue(worst <= 1e-5, String.join("\n", report));
    }

    @Test
    void shouldMatchSingleDeviceLossAndWeightsWithSequenceParallelism() {
        List<String> report = new ArrayList<>();
        double worstLoss = 0;
        double worstWeight = 0;
        for (String layout : List.of("1x1x2", "2x2x2", "1x2x4")) {
            Layout l = Layout.parse(layout, 1);
            PipelineJobSpec spec = new PipelineJobSpec(train(STEPS), l, "1f1b", 2, StagePartition.balanced(MODEL,
                l.modelStages()),
                1, 60_000, io.troupe.runtime.device.DeviceKind.CPU, "", true);
            Object[] r = run(spec);
            double lr = lossRel((double[]) r[0], referenceLosses, 0);
            double[] wd = weightDiff((float[]) r[1]);
            worstLoss = Math.max(worstLoss, lr);
            worstWeight = Math.max(worstWeight, wd[1]);
            report.add(String.format(
                "%s sequence-parallel loss max rel diff %.2e, weights rel diff %.2e (max abs %.2e)",
                layout, lr, wd[1], wd[0]));
        }
        report.forEach(System.out::println);
        assertTrue(worstLoss <= 1e-5, String.join("\n", report));
        assertTrue(worstWeight <= 1e-5, String.join("\n", report));
    }

    @Test
    void shouldTraceEveryTensorParallelCollectiveOnATrackOfItsOwn() {
        try (LocalPipelineEngine engine = new LocalPipelineEngine(spec("1x2x2", STEPS), DATA)) {
            io.troupe.actors.trace.Timeline t = engine.trainStep().timeline();
            long tpTracks = t.tracks().stream().filter(k -> k.name().endsWith("tp collectives")).count();
            assertTrue(tpTracks == 4, "one tp track per worker: " + tpTracks);
            for (io.troupe.actors.trace.TimelineTrack k : t.tracks()) {
                if (k.name().endsWith("tp collectives")) {
                    // per micro-batch and block: 2 all-reduces forward, 2 backward; at least that many
                    assertTrue(k.intervals().size() >= 2 * 2 * 2, k.name() + ": " + k.intervals().size());
                    assertTrue(k.intervals().stream().allMatch(i -> i.category().equals("tp")));
                }
            }
        }
    }

    /** {losses, weights} of {@code steps} steps of {@code spec} with every tp member's overlap on or off. */
    private static Object[] run(PipelineJobSpec spec, int steps, boolean overlap) {
        try (LocalPipelineEngine engine = new LocalPipelineEngine(spec, DATA)) {
            Layout l = spec.layout();
            for (int d = 0; d < l.dp(); d++) {
                for (int g = 0; g < l.modelStages(); g++) {
                    for (int t = 0; t < l.tp(); t++) {
                        ((io.troupe.models.gpt.Gpt) engine.stage(d, g, t)).overlapTensorParallel(overlap);
                    }
                }
            }
            double[] losses = new double[steps];
            for (int i = 0; i < steps; i++) {
                losses[i] = engine.trainStep().step().loss();
            }
            return new Object[] {losses, weights(engine, l)};
        }
    }

    @Test
    void shouldGiveTheNonOverlappedResultsBitwiseWhenTpReductionsOverlapWeightGradients() {
        int steps = 4;
        for (String layout : List.of("1x1x2", "2x2x2")) {
            for (String schedule : List.of("gpipe", "1f1b", "interleaved")) {
                PipelineJobSpec s = spec(layout, steps, schedule);
                Object[] on = run(s, steps, true);
                Object[] off = run(s, steps, false);
                assertArrayEquals((double[]) off[0], (double[]) on[0], 0.0, layout + " " + schedule + " losses");
                assertArrayEquals((float[]) off[1], (float[]) on[1], 0f, layout + " " + schedule + " weights");
                System.out.printf("%s %-11s tp overlap on: losses and weights bitwise as off over %d steps%n", layout,
                    schedule, steps);
            }
            Layout l = Layout.parse(layout, 1);
            PipelineJobSpec sp = new PipelineJobSpec(train(steps), l, "1f1b", 2, StagePartition.balanced(MODEL,
                l.modelStages()), 1, 60_000, io.troupe.runtime.device.DeviceKind.CPU, "", true);
            Object[] on = run(sp, steps, true);
            Object[] off = run(sp, steps, false);
            assertArrayEquals((double[]) off[0], (double[]) on[0], 0.0, layout + " sequence-parallel losses");
            assertArrayEquals((float[]) off[1], (float[]) on[1], 0f, layout + " sequence-parallel weights");
            System.out.printf("%s 1f1b sequence-parallel tp overlap on: bitwise as off over %d steps%n", layout, steps);
        }
    }

    @Test
    void shouldTraceTheOverlappedTpCollectivesWithTheTimeTheyWereWaitedFor() {
        try (LocalPipelineEngine engine = new LocalPipelineEngine(spec("1x1x2", STEPS), DATA)) {
            engine.trainStep();
            io.troupe.actors.trace.Timeline t = engine.trainStep().timeline();
            int overlapped = 0;
            double inFlightUs = 0;
            double waitedUs = 0;
            for (io.troupe.actors.trace.TimelineTrack k : t.tracks()) {
                if (k.name().endsWith("tp collectives")) {
                    for (io.troupe.actors.trace.TimelineInterval i : k.intervals()) {
                        if (i.name().endsWith("(overlapped)")) {
                            overlapped++;
                            inFlightUs += i.endUs() - i.startUs();
                            waitedUs += Double.parseDouble(i.args().get("wait_us"));
                        }
                    }
                }
            }
            System.out.printf("1x1x2 1f1b: %d overlapped tp collectives, %.0f us in flight, %.0f us waited for%n",
                overlapped, inFlightUs, waitedUs);
            // two members x two micro-batches x (lm_head + 2 per block)
            assertTrue(overlapped == 2 * 2 * (1 + 2 * MODEL.nLayer()), "overlapped tp collectives: " + overlapped);
            assertTrue(waitedUs <= inFlightUs, "waited " + waitedUs + " us of " + inFlightUs + " us in flight");
        }
    }

    @Test
    void shouldBeBitwiseRepeatable() {
        Object[] a = run("1x2x2");
        Object[] b = run("1x2x2");
        assertArrayEquals((double[]) a[0], (double[]) b[0], 0.0);
        assertArrayEquals((float[]) a[1], (float[]) b[1], 0f);
    }

    /** Trains 5 steps as {@code from}, checkpoints, resumes as {@code to} for the last 5: the reference trajectory. */
    private double resumeAcross(String from, String to) {
        Path root = tmp.resolve(from + "-" + to);
        try (LocalPipelineEngine a = new LocalPipelineEngine(spec(from, STEPS), DATA)) {
            for (int i = 0; i < STEPS / 2; i++) {
                a.trainStep();
            }
            a.checkpoint(root, DATA.train().description());
        }
        double[] losses = new double[STEPS];
        try (LocalPipelineEngine b = new LocalPipelineEngine(spec(to, STEPS), DATA)) {
            b.restore(Checkpoints.load(Checkpoints.resolve(root)));
            for (int i = STEPS / 2; i < STEPS; i++) {
                losses[i] = b.trainStep().step().loss();
            }
        }
        double rel = lossRel(losses, referenceLosses, STEPS / 2);
        System.out.printf("train %s, resume as %s: loss max rel diff %.2e over the resumed steps%n", from, to, rel);
        return rel;
    }

    @Test
    void shouldResumeACheckpointUnderAnotherLayoutOnTheSameTrajectory() {
        assertTrue(resumeAcross("1x2x2", "2x1x1") <= 1e-5);
        assertTrue(resumeAcross("1x1x1", "1x1x4") <= 1e-5);
    }

    @Test
    void shouldRefuseATpDegreeTheModelCannotBeSplitByNamingTheNumbers() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> spec("1x1x3", STEPS));
        assertTrue(e.getMessage().contains("n_head=4") && e.getMessage().contains("tp=3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new PipelineJobSpec(train(STEPS), Layout.parse("1x1x2",
            1),
            "1f1b", 2, StagePartition.balanced(MODEL, 1), 1, 1000, io.troupe.runtime.device.DeviceKind.CPU,
            "io.troupe.examples.ResidualMlpModel"));
        assertTrue(e.getMessage().contains("does not support tensor parallelism"), e.getMessage());
    }
}
