package io.troupe.models.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.GptPlacements;
import io.troupe.models.gpt.ParameterLayout;
import org.junit.jupiter.api.Test;

/** GPT's parameters placed over dp × pp × tp: shapes, stages, replicas, ZeRO segments, refusals. */
class ParallelParameterLayoutTest {

    @Test
    void shouldPlaceGptParametersTheMegatronWay() {
        GptConfig cfg = GptConfig.small();
        ParallelParameterLayout l = ParallelParameterLayout.gpt(cfg, StagePartition.balanced(cfg, 2), false);
        assertArrayEquals(new int[] {3 * 128 / 2, 128}, l.get("blocks.0.attn.qkv.weight").localShape(2));
        assertArrayEquals(new int[] {128, 128 / 2}, l.get("blocks.0.attn.proj.weight").localShape(2));
        assertArrayEquals(new int[] {128}, l.get("blocks.0.attn.proj.bias").localShape(2));
        assertArrayEquals(new int[] {256 / 4, 128}, l.get("lm_head.weight").localShape(4));
        assertEquals(0, l.get("tok_emb.weight").modelStage());
        assertEquals(1, l.get("lm_head.weight").modelStage());
        assertEquals(1, l.get("blocks.3.mlp.fc.weight").modelStage());
        assertTrue(l.get("blocks.0.ln1.weight").countsInGradientNorm(0));
        assertFalse(l.get("blocks.0.ln1.weight").countsInGradientNorm(1), "a replica counts once");
        assertTrue(l.get("blocks.0.mlp.fc.weight").countsInGradientNorm(1));
        assertFalse(l.get("blocks.0.ln1.weight").gradientReducedOverTensorParallelGroup());
        ParallelParameterLayout sp = ParallelParameterLayout.gpt(cfg, StagePartition.balanced(cfg, 2), true);
        assertTrue(sp.get("blocks.0.ln1.weight").gradientReducedOverTensorParallelGroup());
        assertTrue(sp.get("pos_emb.weight").gradientReducedOverTensorParallelGroup());
    }

    @Test
    void shouldHoldTheUnsplitModelAtTpOneAndAboutHalfOfItAtTpTwo() {
        GptConfig cfg = GptConfig.big();
        ParallelParameterLayout l = ParallelParameterLayout.gpt(cfg, StagePartition.balanced(cfg, 1), false);
        long one = l.local(0, 1, 0).numel();
        assertEquals(ParameterLayout.full(cfg).numel(), one);
        long two = l.local(0, 2, 0).numel();
        System.out.printf("big: params per rank tp1=%d tp2=%d ratio=%.4f%n", one, two, (double) two / one);
        assertTrue(two <= 0.55 * one, "tp 2 holds at most 0.55 of the model: " + two + " of " + one);
        assertEquals(ParameterLayout.stage(cfg, 0, cfg.nLayer(), true, true, 2).numel(), two,
            "what a tp member of the model allocates");
        ParallelParameterLayout.RankMemory m1 = l.memoryPerRank(new Layout(1, 1, 1, 1));
        ParallelParameterLayout.RankMemory m2 = l.memoryPerRank(new Layout(1, 1, 2, 1));
        System.out.println("big 1x1x1: " + m1 + "; 1x1x2: " + m2);
        assertEquals(16 * one, m1.totalBytes());
        assertEquals(16 * two, m2.totalBytes());
        ParallelParameterLayout.RankMemory z1 = l.memoryPerRank(new Layout(2, 1, 1, 1), 1);
        ParallelParameterLayout.RankMemory z2 = l.memoryPerRank(new Layout(2, 1, 1, 1), 2);
        assertEquals(4 * one, z1.paramBytes(), "zero keeps whole parameters");
        assertEquals(4 * one, z1.gradBytes(), "zero 1 keeps whole gradients");
        assertEquals(8 * ((one + 1) / 2), z1.optimizerBytes(), "zero 1: the moments of half the model at dp 2");
        assertTrue(z2.gradBytes() <= 0.55 * 4 * one, "zero 2 at dp 2: a slice and one window: " + z2);
        assertEquals(z1.optimizerBytes(), z2.optimizerBytes());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> l.memoryPerRank(new Layout(2, 1, 1, 1), 3));
        assertTrue(e.getMessage().contains("zero=3"), e.getMessage());
    }

    @Test
    void shouldTileTheFlatBufferWithZeroSegments() {
        GptConfig cfg = GptConfig.tiny();
        ParallelParameterLayout.Local local = ParallelParameterLayout.gpt(cfg, StagePartition.balanced(cfg, 1), false)
            .local(0, 2, 1);
        long next = 0;
        for (int d = 0; d < 3; d++) {
            long[] seg = local.zeroSegment(3, d);
            assertEquals(next, seg[0]);
            next = seg[1];
        }
        assertEquals(local.numel(), next);
    }

    @Test
    void shouldRefuseATpDegreeTheModelCannotBeSplitByNamingTheNumbers() {
        GptConfig cfg = GptConfig.small();
        IllegalArgumentException heads = assertThrows(IllegalArgumentException.class, () -> GptPlacements.check(cfg,
            8));
        assertTrue(heads.getMessage().contains("n_head=4") && heads.getMessage().contains("tp=8"), heads.getMessage());
        GptConfig oddVocab = new GptConfig("v", 250, 128, 2, 4, 8, 1e-5f);
        IllegalArgumentException vocab = assertThrows(IllegalArgumentException.class, () -> GptPlacements.check(
            oddVocab, 4));
        assertTrue(vocab.getMessage().contains("vocab_size=250"), vocab.getMessage());
        GptPlacements.check(cfg, 4);
    }
}
