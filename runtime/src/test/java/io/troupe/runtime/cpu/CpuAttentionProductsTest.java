package io.troupe.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The attention's Vector API products bitwise against {@link CpuAttentionProducts}' plain loops, odd shapes too. */
class CpuAttentionProductsTest {
    private static final int[] SEQS = {1, 3, 4, 5, 8, 16, 17, 31, 64, 67};
    private static final int[] HEAD_DIMS = {1, 5, 8, 16, 32, 33, 48, 64};

    @Test
    @Timeout(60)
    void shouldMatchThePlainLoopsBitwise() {
        assumeTrue(CpuAttention.VECTOR_API, "needs --add-modules jdk.incubator.vector");
        Random rnd = new Random(11);
        for (int seq : SEQS) {
            for (int hd : HEAD_DIMS) {
                float scale = (float) (1.0 / Math.sqrt(hd));
                // a, b and c as windows of wider arrays: column offset 3, row stride hd + 5 (a, b), 2 hd + 1 (c)
                int off = 3;
                int ld = hd + 5;
                int ldc = 2 * hd + 1;
                float[] a = random(rnd, off + seq * ld);
                float[] bt = random(rnd, hd * seq);
                float[] b = random(rnd, off + seq * ld);
                float[] p = random(rnd, seq * seq);
                String shape = " seq=" + seq + " hd=" + hd;

                float[] want = new float[seq * seq];
                float[] got = new float[seq * seq];
                CpuAttentionProducts.scoresCausal(a, off, ld, bt, want, seq, hd, scale);
                CpuAttentionVectorKernel.scoresCausal(a, off, ld, bt, got, seq, hd, scale);
                for (int i = 0; i < seq; i++) {
                    for (int j = 0; j <= i; j++) {
                        same("scoresCausal" + shape, i, j, want[i * seq + j], got[i * seq + j]);
                    }
                }

                float[] wantC = new float[off + seq * ldc];
                float[] gotC = new float[off + seq * ldc];
                // entries above p's diagonal must not be read: NaN there would show
                float[] lower = p.clone();
                for (int i = 0; i < seq; i++) {
                    for (int j = i + 1; j < seq; j++) {
                        lower[i * seq + j] = Float.NaN;
                    }
                }
                CpuAttentionProducts.lowerTimes(lower, b, off, ld, wantC, off, ldc, seq, hd, scale);
                CpuAttentionVectorKernel.lowerTimes(lower, b, off, ld, gotC, off, ldc, seq, hd, scale);
                all("lowerTimes" + shape, wantC, gotC, ldc);
                CpuAttentionProducts.lowerTransposedTimes(lower, b, off, ld, wantC, off, ldc, seq, hd, 1f);
                CpuAttentionVectorTransposedKernel.lowerTransposedTimes(lower, b, off, ld, gotC, off, ldc, seq, hd, 1f);
                all("lowerTransposedTimes" + shape, wantC, gotC, ldc);
            }
        }
    }

    @Test
    @Timeout(30)
    void shouldTransposeWithGathersAsThePlainLoop() {
        assumeTrue(CpuAttention.VECTOR_API, "needs --add-modules jdk.incubator.vector");
        Random rnd = new Random(14);
        for (int rows : SEQS) {
            for (int cols : HEAD_DIMS) {
                for (int ld : new int[] {cols, 3 * cols + 7}) {
                    float[] src = random(rnd, 5 + rows * ld);
                    float[] want = new float[rows * cols];
                    float[] got = new float[rows * cols];
                    CpuAttention.transpose(src, 5, ld, want, rows, cols);
                    CpuAttentionVectorKernel.transpose(src, 5, ld, got, rows, cols);
                    all("transpose rows=" + rows + " cols=" + cols + " ld=" + ld, want, got, rows);
                }
            }
        }
    }

    @Test
    @Timeout(30)
    void shouldComputeTheProductsTheyName() {
        Random rnd = new Random(12);
        int seq = 7;
        int hd = 3;
        float[] a = random(rnd, seq * hd);
        float[] b = random(rnd, seq * hd);
        float[] bt = new float[hd * seq];
        for (int i = 0; i < seq; i++) {
            for (int d = 0; d < hd; d++) {
                bt[d * seq + i] = b[i * hd + d];
            }
        }
        float[] p = random(rnd, seq * seq);
        float[] s = new float[seq * seq];
        float[] c = new float[seq * hd];
        float[] ct = new float[seq * hd];
        CpuAttentionProducts.scoresCausal(a, 0, hd, bt, s, seq, hd, 0.5f);
        CpuAttentionProducts.lowerTimes(p, b, 0, hd, c, 0, hd, seq, hd, 2f);
        CpuAttentionProducts.lowerTransposedTimes(p, b, 0, hd, ct, 0, hd, seq, hd, 1f);
        for (int i = 0; i < seq; i++) {
            for (int j = 0; j <= i; j++) {
                double dot = 0;
                for (int d = 0; d < hd; d++) {
                    dot += (double) a[i * hd + d] * b[j * hd + d];
                }
                assertEquals(0.5 * dot, s[i * seq + j], 1e-5, "scores " + i + "," + j);
            }
            for (int d = 0; d < hd; d++) {
                double lowerSum = 0;
                double upperSum = 0;
                for (int j = 0; j < seq; j++) {
                    lowerSum += j <= i ? (double) p[i * seq + j] * b[j * hd + d] : 0;
                    upperSum += j >= i ? (double) p[j * seq + i] * b[j * hd + d] : 0;
                }
                assertEquals(2 * lowerSum, c[i * hd + d], 1e-5, "lowerTimes " + i + "," + d);
                assertEquals(upperSum, ct[i * hd + d], 1e-5, "lowerTransposedTimes " + i + "," + d);
            }
        }
    }

    /** Every element, the untouched ones between the windows included (both sides leave them 0). */
    private static void all(String what, float[] want, float[] got, int ld) {
        for (int i = 0; i < want.length; i++) {
            same(what, i / ld, i % ld, want[i], got[i]);
        }
    }

    private static void same(String what, int row, int col, float want, float got) {
        assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got),
            what + " at (" + row + ", " + col + "): " + got + " vs reference " + want);
    }

    private static float[] random(Random rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        return x;
    }
}
