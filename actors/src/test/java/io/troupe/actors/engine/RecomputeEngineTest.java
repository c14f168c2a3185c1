package io.troupe.actors.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.memory.GradCompression;
import io.troupe.models.memory.MemoryOptions;
import io.troupe.models.memory.Recompute;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Selective activation recomputation (attention probabilities recomputed in backward from the kept
 * qkv): bitwise the losses of keeping everything under every schedule, the zero-bubble ones with
 * their late W included, and with ZeRO; each slot holds fewer bytes. Full recomputation (each
 * block's input kept, the block recomputed in backward) likewise, with tensor parallelism too, and
 * at dp 2 it holds at most 0.35x the activation bytes.
 */
@Timeout(300)
class RecomputeEngineTest {
    private static final GptConfig MODEL = new GptConfig("tiny8", 256, 32, 8, 4, 16, 1e-5f);
    private static final int STEPS = 5;
    private static final Corpora DATA = Corpora.builtIn();

    private static PipelineJobSpec spec(String layout, int v, String schedule, MemoryOptions memory) {
        Layout l = Layout.parse(layout, v);
        TrainConfig train = new TrainConfig(MODEL, 8, 1, STEPS, 3e-3f, 3e-4f, 2, 1.0f, 11, 0, 1, 0,
            AdamWConfig.defaults());
        int m = l.pp() > 1 || l.dp() == 1 ? 4 : 1;
        StagePartition partition = StagePartition.balanced(MODEL, l.modelStages());
        return new PipelineJobSpec(train, l, schedule, m, partition, 1, 30_000).withMemory(memory);
    }

    private static double[] run(PipelineJobSpec spec, long[] activationBytes) {
        try (LocalPipelineEngine engine = new LocalPipelineEngine(spec, DATA)) {
            double[] losses = new double[STEPS];
            for (int i = 0; i < STEPS; i++) {
                losses[i] = engine.trainStep().step().loss();
            }
            activationBytes[0] = engine.memoryPerRank().activationBytes();
            return losses;
        }
    }

    @Test
    void shouldGiveBitwiseTheLossesOfKeepingEverythingUnderEverySchedule() {
        MemoryOptions selective = new MemoryOptions(0, Recompute.SELECTIVE, GradCompression.NONE);
        String[][] cases = {{"1x2", "1", "1f1b"}, {"1x2", "1", "gpipe"}, {"1x2", "1", "zb-h1"}, {"1x2", "1", "zb-h2"},
            {"1x2", "2", "interleaved"}, {"2x2", "1", "zb-h1"}};
        for (String[] c : cases) {
            long[] kept = new long[1];
            long[] recomputed = new long[1];
            double[] none = run(spec(c[0], Integer.parseInt(c[1]), c[2], MemoryOptions.NONE), kept);
            double[] sel = run(spec(c[0], Integer.parseInt(c[1]), c[2], selective), recomputed);
            System.out.printf("%s %s: activations per rank %d -> %d bytes (%.3fx), losses bitwise equal%n", c[0], c[2],
                kept[0], recomputed[0], (double) recomputed[0] / kept[0]);
            assertArrayEquals(none, sel, c[0] + " " + c[2]);
            assertTrue(recomputed[0] < kept[0], kept[0] + " -> " + recomputed[0]);
        }
        long[] bytes = new long[1];
        double[] zero = run(spec("2x1", 1, "1f1b", MemoryOptions.NONE.withZero(1)), bytes);
        double[] zeroSelective = run(spec("2x1", 1, "1f1b", new MemoryOptions(1, Recompute.SELECTIVE,
            GradCompression.NONE)), bytes);
        assertArrayEquals(zero, zeroSelective, "zero 1 with selective recomputation");
    }

    @Test
    void shouldGiveBitwiseTheLossesOfKeepingEverythingWithFullRecomputationUnderEverySchedule() {
        MemoryOptions full = new MemoryOptions(0, Recompute.FULL, GradCompression.NONE);
        String[][] cases = {{"1x1", "1", "1f1b"}, {"1x1", "1", "gpipe"}, {"1x1", "2", "interleaved"},
            {"1x1", "1", "zb-h1"}, {"1x1", "1", "zb-h2"}, {"1x1", "1", "adaptive"}, {"1x2", "1", "1f1b"},
            {"1x2", "1", "gpipe"}, {"1x2", "1", "zb-h1"}, {"1x2", "1", "zb-h2"}, {"1x2", "2", "interleaved"},
            {"1x2", "1", "adaptive"}, {"2x2", "1", "zb-h1"}, {"1x2x2", "1", "zb-h1"}, {"1x1x2", "1", "1f1b"}};
        for (String[] c : cases) {
            long[] kept = new long[1];
            long[] recomputed = new long[1];
            double[] none = run(spec(c[0], Integer.parseInt(c[1]), c[2], MemoryOptions.NONE), kept);
            double[] fullLosses = run(spec(c[0], Integer.parseInt(c[1]), c[2], full), recomputed);
            System.out.printf("full %s %s: activations per rank %d -> %d bytes (%.3fx), losses bitwise equal%n", c[0],
                c[2], kept[0], recomputed[0], (double) recomputed[0] / kept[0]);
            assertArrayEquals(none, fullLosses, c[0] + " " + c[2]);
            assertTrue(recomputed[0] < kept[0], kept[0] + " -> " + recomputed[0]);
        }
        long[] bytes = new long[1];
        double[] zero = run(spec("2x1", 1, "1f1b", MemoryOptions.NONE.withZero(1)), bytes);
        double[] zeroFull = run(spec("2x1", 1, "1f1b", new MemoryOptions(1, Recompute.FULL, GradCompression.NONE)),
            bytes);
        assertArrayEquals(zero, zeroFull, "zero 1 with full recomputation");
        double[] zero2 = run(spec("2x1", 1, "1f1b", MemoryOptions.NONE.withZero(2)), bytes);
        double[] zero2Full = run(spec("2x1", 1, "1f1b", new MemoryOptions(2, Recompute.FULL, GradCompression.NONE)),
            bytes);
        assertArrayEquals(zero2, zero2Full, "zero 2 (gradients as slices) with full recomputation");
    }

    @Test
    void shouldHoldAtMostAThirdOfTheActivationsWithFullRecomputationAtDataParallelTwo() {
        long[] kept = new long[1];
        long[] recomputed = new long[1];
        run(spec("2x1", 1, "1f1b", MemoryOptions.NONE), kept);
        run(spec("2x1", 1, "1f1b", new MemoryOptions(0, Recompute.FULL, GradCompression.NONE)), recomputed);
        double ratio = (double) recomputed[0] / kept[0];
        System.out.printf("2x1 full recomputation: activation peak per rank %d -> %d bytes (%.3fx)%n", kept[0],
            recomputed[0], ratio);
        assertTrue(ratio <= 0.35, "activation ratio " + ratio);
    }

    @Test
    void shouldRefuseAnUnknownRecomputationModeNamingIt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> MemoryOptions.parse(0, "partial", "none"));
        assertTrue(e.getMessage().contains("'partial'"), e.getMessage());
    }
}
