package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.Gpt;
import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.cpu.CpuDevice;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The KV-cached forward against the training model's full forward, and batch invariance of its kernels. */
@Timeout(60)
class KvCachedGptTest {
    private static final GptConfig CFG = new GptConfig("t", 256, 48, 3, 4, 24, 1e-5f);

    /** Full-forward logits (T, V) of the training Gpt on {@code x}. */
    private static float[] fullForward(float[] params, int[] x) {
        try (CpuDevice dev = new CpuDevice(1); Gpt gpt = Gpt.whole(CFG, dev, 1)) {
            dev.copyFromHost(params, gpt.params());
            gpt.forwardTokens(0, x, new int[x.length]);
            return gpt.logits(0).toFloatArray();
        }
    }

    private static KvCachedGpt model(float[] params, Quantization q, int blocks) {
        return new KvCachedGpt(InferenceWeights.fromFlat(CFG, params, q), new PagedKvCache(CFG, 4, blocks));
    }

    @Test
    void shouldMatchFullForwardLogitsWhenDecodingOneTokenAtATime() {
        float[] params = InferenceFixtures.randomParams(CFG, 1);
        int[] x = InferenceFixtures.randomTokens(new Random(2), CFG.seqLen(), CFG.vocabSize());
        float[] full = fullForward(params, x);
        KvCachedGpt m = model(params, Quantization.NONE, 16);
        BlockTable table = new BlockTable();
        // take the blocks out of order, so the table is not contiguous
        BlockTable spare = new BlockTable();
        m.cache().ensureCapacity(spare, 8);
        m.cache().ensureCapacity(table, CFG.seqLen());
        m.cache().free(spare);
        StepBatch b = new StepBatch();
        int v = CFG.vocabSize();
        double maxDiff = 0;
        for (int p = 0; p < CFG.seqLen(); p++) {
            b.clear();
            b.add(x[p], p, table, true);
            float[] logits = m.forward(b);
            for (int i = 0; i < v; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(logits[i] - full[p * v + i]));
            }
        }
        System.out.printf("incremental decode vs full forward: max |diff| = %.3g%n", maxDiff);
        assertTrue(maxDiff < 2e-5, "max |diff| " + maxDiff);
    }

    @Test
    void shouldGiveBitIdenticalLogitsWhetherPrefilledInOneStepInChunksOrAlongsideOthers() {
        float[] params = InferenceFixtures.randomParams(CFG, 3);
        Random rnd = new Random(4);
        int[] x = InferenceFixtures.randomTokens(rnd, CFG.seqLen(), CFG.vocabSize());
        int v = CFG.vocabSize();
        // (1) whole sequence in one step, logits for every row
        KvCachedGpt m1 = model(params, Quantization.NONE, 16);
        BlockTable t1 = new BlockTable();
        m1.cache().ensureCapacity(t1, CFG.seqLen());
        StepBatch b = new StepBatch();
        for (int p = 0; p < x.length; p++) {
            b.add(x[p], p, t1, true);
        }
        float[] oneStep = m1.forward(b);
        // (2) chunks of 5, each step shared with 7 other random sequences
        KvCachedGpt m2 = model(params, Quantization.NONE, 64);
        BlockTable t2 = new BlockTable();
        m2.cache().ensureCapacity(t2, CFG.seqLen());
        BlockTable[] others = new BlockTable[7];
        int[][] otherTokens = new int[7][];
        for (int o = 0; o < 7; o++) {
            others[o] = new BlockTable();
            m2.cache().ensureCapacity(others[o], CFG.seqLen());
            otherTokens[o] = InferenceFixtures.randomTokens(rnd, CFG.seqLen(), v);
        }
        float[] chunked = new float[x.length * v];
        for (int p0 = 0; p0 < x.length; p0 += 5) {
            b.clear();
            for (int o = 0; o < 3; o++) {
                b.add(otherTokens[o][p0], p0, others[o], true);
            }
            int firstRow = -1;
            for (int p = p0; p < Math.min(p0 + 5, x.length); p++) {
                int r = b.add(x[p], p, t2, true);
                firstRow = firstRow < 0 ? r : firstRow;
            }
            for (int o = 3; o < 7; o++) {
                b.add(otherTokens[o][p0], p0, others[o], true);
            }
            float[] logits = m2.forward(b);
            int n = Math.min(p0 + 5, x.length) - p0;
            System.arraycopy(logits, firstRow * v, chunked, p0 * v, n * v);
        }
        assertArrayEquals(oneStep, chunked, 0f);
    }

    /**
     * The last block runs its attention and MLP only on the rows whose logits are asked for (the keys
     * and values of every row still go into the cache): a step of four sequences' prompts asking for
     * a few rows' logits, or none (a prefill beside the steps), gives those rows the same logits bit
     * for bit as the step asking for every row, leaves the same cache, and the next step's logits are
     * the same; with the Vector API attention and the plain loops, float32 and bfloat16 caches.
     */
    @Test
    void shouldGiveTheSameLogitsAndCacheWhenOnlySomeRowsAskForLogits() {
        float[] params = InferenceFixtures.randomParams(CFG, 12);
        int v = CFG.vocabSize();
        for (KvPrecision kv : KvPrecision.values()) {
            for (boolean vectorApi : new boolean[] {true, false}) {
                Random rnd = new Random(13);
                int[][] prompts = new int[4][];
                for (int q = 0; q < 4; q++) {
                    prompts[q] = InferenceFixtures.randomTokens(rnd, 3 + 5 * q, v);
                }
                KvCachedGpt[] models = new KvCachedGpt[3];
                BlockTable[][] tables = new BlockTable[3][4];
                float[][] firstStep = new float[3][];
                StepBatch b = new StepBatch();
                for (int m = 0; m < 3; m++) {
                    models[m] = new KvCachedGpt(InferenceWeights.fromFlat(CFG, params, Quantization.NONE),
                        new PagedKvCache(CFG, 4, 32, CFG.nLayer(), kv));
                    models[m].useVectorApi(vectorApi);
                    b.clear();
                    for (int q = 0; q < 4; q++) {
                        tables[m][q] = new BlockTable();
                        models[m].cache().ensureCapacity(tables[m][q], prompts[q].length + 1);
                        for (int p = 0; p < prompts[q].length; p++) {
                            // model 0: every row's logits; model 1: each prompt's last row and row 1 of
                            // the third; model 2: none
                            boolean want = m == 0 || m == 1 && (p == prompts[q].length - 1 || q == 2 && p == 1);
                            b.add(prompts[q][p], p, tables[m][q], want);
                        }
                    }
                    firstStep[m] = models[m].forward(b);
                }
                String what = kv + (vectorApi ? ", Vector API" : ", plain loops");
                assertEquals(0, firstStep[2].length, what);
                assertEquals(5 * v, firstStep[1].length, what);
                int row = 0;
                int asked = 0;
                for (int q = 0; q < 4; q++) {
                    for (int p = 0; p < prompts[q].length; p++, row++) {
                        if (p == prompts[q].length - 1 || q == 2 && p == 1) {
                            assertArrayEquals(java.util.Arrays.copyOfRange(firstStep[0], row * v, (row + 1) * v),
                                java.util.Arrays.copyOfRange(firstStep[1], asked * v, (asked + 1) * v), 0f,
                                what + ": sequence " + q + " position " + p);
                            asked++;
                        }
                    }
                }
                float[][] next = new float[3][];
                for (int m = 0; m < 3; m++) {
                    b.clear();
                    for (int q = 0; q < 4; q++) {
                        b.add(7 + q, prompts[q].length, tables[m][q], true);
                    }
                    next[m] = models[m].forward(b);
                }
                assertArrayEquals(next[0], next[1], 0f, what + ": the next step");
                assertArrayEquals(next[0], next[2], 0f, what + ": the next step after a step asking for none");
            }
        }
    }

    /**
     * The attention's Vector API loops against the plain ones (the models tests run with the
     * module, so both are here): the same logits bit for bit at every step of 4 sequences prefilled
     * in chunks and then decoded, for a head width of 12 (three groups of four), of 10 (a tail), and
     * of 32 with 4 and 8 heads (the shapes the values kernel takes with 8 and 16 lanes), with KV
     * blocks of 16 and 32 positions (whole vectors of 4, 8 or 16 lanes: the scores kernel) and of 4
     * (the plain scores beside the vector values where there are 8 or 16 lanes).
     */
    @Test
    void shouldGiveTheSameLogitsWithTheVectorApiAttentionAsWithThePlainLoops() {
        assertTrue(Fp32Linear.VECTOR_API, "the models tests run with --add-modules jdk.incubator.vector");
        assertTrue(VectorAttentionKernel.scoresFit(16) && VectorAttentionKernel.scoresFit(32));
        for (KvPrecision kv : KvPrecision.values()) {
          for (int bs : new int[] {16, 4, 32}) {
            for (GptConfig cfg : new GptConfig[] {CFG, new GptConfig("t10", 256, 30, 2, 3, 20, 1e-5f),
                new GptConfig("h32x4", 256, 128, 2, 4, 24, 1e-5f), new GptConfig("h32x8", 256, 256, 1, 8, 20, 1e-5f)}) {
                float[] params = InferenceFixtures.randomParams(cfg, 8);
                InferenceWeights w = InferenceWeights.fromFlat(cfg, params, Quantization.NONE);
                KvCachedGpt vector = new KvCachedGpt(w, new PagedKvCache(cfg, bs, 32, cfg.nLayer(), kv));
                KvCachedGpt plain = new KvCachedGpt(w, new PagedKvCache(cfg, bs, 32, cfg.nLayer(), kv));
                plain.useVectorApi(false);
                Random rnd = new Random(9);
                int seqs = 4;
                int[][] tokens = new int[seqs][];
                BlockTable[] tv = new BlockTable[seqs];
                BlockTable[] tp = new BlockTable[seqs];
                for (int q = 0; q < seqs; q++) {
                    tokens[q] = InferenceFixtures.randomTokens(rnd, cfg.seqLen(), cfg.vocabSize());
                    tv[q] = new BlockTable();
                    tp[q] = new BlockTable();
                    vector.cache().ensureCapacity(tv[q], cfg.seqLen());
                    plain.cache().ensureCapacity(tp[q], cfg.seqLen());
                }
                StepBatch bv = new StepBatch();
                StepBatch bp = new StepBatch();
                int steps = 0;
                for (int p0 = 0; p0 < cfg.seqLen(); steps++) {
                    int chunk = p0 < 8 ? 4 : 1;                      // prefill in chunks of 4, then decode
                    bv.clear();
                    bp.clear();
                    for (int q = 0; q < seqs; q++) {
                        for (int p = p0; p < Math.min(cfg.seqLen(), p0 + chunk); p++) {
                            bv.add(tokens[q][p], p, tv[q], true);
                            bp.add(tokens[q][p], p, tp[q], true);
                        }
                    }
                    assertArrayEquals(plain.forward(bp), vector.forward(bv), 0f, cfg.name() + ", " + kv + " blocks of "
                        + bs + ", step at position " + p0);
                    p0 += chunk;
                }
                System.out.printf("%s, %s blocks of %d: vector and plain attention bit-equal over %d steps%n",
                    cfg.name(), kv, bs, steps);
            }
          }
        }
    }

    /**
     * A bfloat16 cache rounds each key and value once (8 bits of mantissa): the logits of a whole
     * prefilled and decoded context stay within a small distance of the float32 cache's, and the
     * greedy token (the argmax) is the same at nearly every position.
     */
    @Test
    void shouldStayCloseToTheFloat32CacheWithABfloat16Cache() {
        GptConfig cfg = new GptConfig("h32x4", 256, 128, 2, 4, 48, 1e-5f);
        InferenceWeights w = InferenceWeights.fromFlat(cfg, InferenceFixtures.randomParams(cfg, 11), Quantization.NONE);
        KvCachedGpt f32 = new KvCachedGpt(w, new PagedKvCache(cfg, 16, 8, cfg.nLayer(), KvPrecision.F32));
        KvCachedGpt bf16 = new KvCachedGpt(w, new PagedKvCache(cfg, 16, 8, cfg.nLayer(), KvPrecision.BF16));
        assertEquals(KvPrecision.BF16, bf16.cache().precision());
        int[] tokens = InferenceFixtures.randomTokens(new Random(12), cfg.seqLen(), cfg.vocabSize());
        BlockTable t32 = new BlockTable();
        BlockTable t16 = new BlockTable();
        f32.cache().ensureCapacity(t32, cfg.seqLen());
        bf16.cache().ensureCapacity(t16, cfg.seqLen());
        double worst = 0;
        double scale = 0;
        int sameArgmax = 0;
        int v = cfg.vocabSize();
        for (int p = 0; p < cfg.seqLen(); p++) {
            StepBatch a = new StepBatch();
            StepBatch b = new StepBatch();
            a.add(tokens[p], p, t32, true);
            b.add(tokens[p], p, t16, true);
            float[] la = f32.forward(a);
            float[] lb = bf16.forward(b);
            int ia = 0;
            int ib = 0;
            for (int j = 0; j < v; j++) {
                worst = Math.max(worst, Math.abs(la[j] - lb[j]));
                scale = Math.max(scale, Math.abs(la[j]));
                ia = la[j] > la[ia] ? j : ia;
                ib = lb[j] > lb[ib] ? j : ib;
            }
            sameArgmax += ia == ib ? 1 : 0;
        }
        System.out.printf("bf16 KV cache against f32: max |logit difference| %.3e (max |logit| %.3f), argmax equal at"
            + " %d of %d positions%n", worst, scale, sameArgmax, cfg.seqLen());
        assertTrue(worst > 0, "a bfloat16 cache rounds: the logits differ somewhere");
        assertTrue(worst < 0.02 * scale, "max |logit difference| " + worst + " against max |logit| " + scale);
        assertTrue(sameArgmax >= cfg.seqLen() - 2, "argmax equal at " + sameArgmax + " of " + cfg.seqLen());
    }

    /** Rounding to bfloat16 against a plain reference: the nearer of the two neighbours, ties to even. */
    @Test
    void shouldRoundToTheNearestBfloat16TiesToEven() {
        Random rnd = new Random(13);
        for (int i = 0; i < 200_000; i++) {
            float x = i < 100_000 ? Float.intBitsToFloat(rnd.nextInt()) : (float) rnd.nextGaussian() * 3f;
            if (Float.isNaN(x)) {
                assertTrue(Float.isNaN(KvPrecision.fromBf16(KvPrecision.toBf16(x))), "NaN stays NaN");
                continue;
            }
            int bits = Float.floatToRawIntBits(x);
            float down = Float.intBitsToFloat(bits & 0xffff0000);
            float up = Float.intBitsToFloat((bits & 0xffff0000) + 0x10000);
            double dd = Math.abs((double) x - down);
            double du = Math.abs((double) x - up);
            float want = dd < du ? down : du < dd ? up : ((bits >>> 16) & 1) == 0 ? down : up;
            if (Float.isInfinite(x)) {
                want = x;
            }
 float got = KvPrecision.fromBf16(KvPrecision.toBf16(x));
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got),
                "x=" + x + " (" + Integer.toHexString(bits) + ")");
        }
        assertEquals(1f, KvPrecision.fromBf16(KvPrecision.toBf16(1f + 0x1p-9f)), "a tie rounds to even (down)");
        assertEquals(1f + 0x1p-6f, KvPrecision.fromBf16(KvPrecision.toBf16(1f + 0x1p-7f + 0x1p-8f)),
            "a tie rounds to even (up)");
        assertThrows(IllegalArgumentException.class, () -> KvPrecision.parse("fp8"));
        assertEquals(KvPrecision.BF16, KvPrecision.parse(" BF16 "));
    }
}
