package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.Random;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The sampler's unboxed probability order against the plain comparator sort, and whole draws against a reference. */
@Timeout(60)
class SamplerTest {
    /**
     * The plain reference draw: with top-p 1 (and a finite max) walk the ids in order over the float
     * weights exp((l - max) / T); else sort boxed ids with a comparator, keep the top-p nucleus, draw.
     */
    private static int referenceSample(float[] logits, int off, int vocab, float temperature, float topP,
                                       SplittableRandom rng) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[off + i]);
        }
        if (topP >= 1f && Float.isFinite(max)) {
            double sum = 0;
            for (int i = 0; i < vocab; i++) {
                sum += RowKernels.exp((logits[off + i] - max) / temperature);
            }
            double u = rng.nextDouble() * sum;
            double acc = 0;
            for (int i = 0; i < vocab; i++) {
                acc += RowKernels.exp((logits[off + i] - max) / temperature);
                if (u < acc) {
                    return i;
                }
            }
            return vocab - 1;
        }
        double[] p = new double[vocab];
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            p[i] = Math.exp((logits[off + i] - max) / (double) temperature);
            sum += p[i];
        }
        Integer[] order = new Integer[vocab];
        boolean finite = true;
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
            p[i] /= sum;
            finite &= Double.isFinite(p[i]);
        }
        if (topP >= 1f && finite) {
            double mass = 0;
            for (double x : p) {
                mass += x;
            }
            double u = rng.nextDouble() * mass;
            double acc = 0;
            for (int i = 0; i < vocab; i++) {
                acc += p[i];
                if (u < acc) {
                    return i;
                }
            }
            return vocab - 1;
        }
        java.util.Arrays.sort(order, (a, b) -> p[a] != p[b] ? Double.compare(p[b], p[a]) : Integer.compare(a, b));
        int keep = 0;
        double mass = 0;
        while (keep < vocab && (keep == 0 || mass < topP)) {
            mass += p[order[keep]];
            keep++;
        }
        double u = rng.nextDouble() * mass;
        double acc = 0;
        for (int j = 0; j < keep; j++) {
            acc += p[order[j]];
            if (u < acc) {
                return order[j];
            }
        }
        return order[keep - 1];
    }

    /** Random logits; {@code kind} 1: few distinct values (many exact ties); 2: -0, -inf and near-ties. */
    private static float[] logits(Random r, int n, int kind) {
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            l[i] = switch (kind) {
                case 0 -> (float) (r.nextGaussian() * 3);
                case 1 -> r.nextInt(5) - 2f;
                default -> switch (r.nextInt(6)) {
                    case 0 -> -0f;
                    case 1 -> 0f;
                    case 2 -> Float.NEGATIVE_INFINITY;
                    case 3 -> Math.nextUp(1f);
                    case 4 -> 1f;
                    default -> (float) (r.nextGaussian() * 40);   // far below the max: p underflows to 0
                };
            };
        }
        return l;
    }

    @Test
    void shouldOrderLikeTheComparatorSortOnRandomTiedAndExtremeLogits() {
        Random r = new Random(11);
        for (int trial = 0; trial < 300; trial++) {
            int vocab = 1 + r.nextInt(300);
            float[] l = logits(r, vocab, trial % 3);
            float temperature = 0.05f + r.nextFloat() * 2;
            float max = Float.NEGATIVE_INFINITY;
            for (float v : l) {
                max = Math.max(max, v);
            }
            double[] p = new double[vocab];
            double sum = 0;
            for (int i = 0; i < vocab; i++) {
                p[i] = Math.exp((l[i] - max) / (double) temperature);
                sum += p[i];
            }
            for (int i = 0; i < vocab; i++) {
                p[i] /= sum;
            }
            assertArrayEquals(Sampler.orderByComparator(p, vocab), Sampler.orderByProbability(l, 0, p, vocab),
                "trial " + trial + ", vocab " + vocab);
        }
    }

    @Test
    void shouldDrawTheSameTokensAsTheReference() {
        Random r = new Random(12);
        for (int trial = 0; trial < 300; trial++) {
            int vocab = 256;
            float[] l = logits(r, 2 * vocab, trial % 3);
            float temperature = trial % 7 == 0 ? 1f : 0.1f + r.nextFloat();
            float topP = trial % 2 == 0 ? 1f : r.nextFloat();
            SplittableRandom a = new SplittableRandom(trial);
            SplittableRandom b = new SplittableRandom(trial);
            for (int draw = 0; draw < 4; draw++) {
                assertEquals(referenceSample(l, vocab, vocab, temperature, topP, a),
                    Sampler.sample(l, vocab, vocab, temperature, topP, b), "trial " + trial + ", draw " + draw);
            }
        }
    }

    @Test
    void shouldFallBackToTheComparatorOrderForNonFiniteRows() {
        float[] l = {1f, Float.NaN, 3f, Float.POSITIVE_INFINITY};
        SplittableRandom a = new SplittableRandom(3);
        SplittableRandom b = new SplittableRandom(3);
        assertEquals(referenceSample(l, 0, 4, 0.7f, 1f, a), Sampler.sample(l, 0, 4, 0.7f, 1f, b));
    }

    @Test
    void penaltiesCountTheGeneratedTokensOnlyAndBiasesAddFirst() {
        SamplingParams p = SamplingParams.greedy(4).withPenalties(0.5f, 0.25f, Map.of(1, 10f, 9, 3f));
        float[] row = {0f, 1f, 2f, 3f, 4f};
        // tokens: a prompt of [2, 2] (not counted), then generated 3, 3, 1
        int[] tokens = {2, 2, 3, 3, 1};
        p.adjust(row, 0, 5, tokens, 2, 5, new int[5]);
        // id 1: +10 bias, then once generated: -(0.5 + 0.25); id 3: twice: -(1.0 + 0.25); id 9 outside the row
        assertArrayEquals(new float[] {0f, 1f + 10f - 0.75f, 2f, 3f - 1.25f, 4f}, row);
        assertThrows(IllegalArgumentException.class,
            () -> SamplingParams.greedy(1).withPenalties(2.5f, 0f, Map.of()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> SamplingParams.greedy(1).withPenalties(0f, 0f, Map.of(4, 101f)));
        assertTrue(e.getMessage().contains("token 4"), e.getMessage());
    }
}
