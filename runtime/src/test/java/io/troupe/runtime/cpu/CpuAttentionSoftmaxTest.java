package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The packed causal softmax, its Vector API form, its whole-matrix backward and the four-chain max, bitwise
 * against their simple forms.
 */
class CpuAttentionSoftmaxTest {
    @Test
    @Timeout(30)
    void shouldMatchTheScalarCausalSoftmaxBitwiseOnTheVectorApi() {
        assumeTrue(CpuAttention.VECTOR_API, "needs --add-modules jdk.incubator.vector");
        Random rnd = new Random(7);
        int pad = CpuAttentionSoftmaxVector.PAD;
        for (int seq : new int[] {1, 2, 5, 15, 16, 17, 33, 64, 67}) {
            int nn = seq * seq;
            int packed = seq * (seq + 1) / 2;
            for (int round = 0; round < 3; round++) {
                float[] want = new float[nn];
                // padding and the masked half filled with junk: neither may leak into the result
                float[] got = new float[nn + pad];
                java.util.Arrays.fill(got, Float.NaN);
                for (int i = 0; i < nn; i++) {
                    float x = switch (i % 13) {
                        case 0 -> 0f;
                        case 1 -> -0f;
                        case 2 -> -90f - rnd.nextFloat() * 10f;
                        case 3 -> 80f + rnd.nextFloat();
                        default -> (float) (rnd.nextGaussian() * 4);
                    };
                    want[i] = x;
                    got[i] = (i % seq) > (i / seq) ? Float.NaN : x;
                }
                float[] q = new float[packed + pad];
                float[] scratch = new float[packed + pad];
                java.util.Arrays.fill(q, Float.POSITIVE_INFINITY);
                CpuAttention.softmaxCausalInPlace(want, seq);
                CpuAttentionSoftmaxVector.causal(got, q, scratch, seq);
                for (int i = 0; i < nn; i++) {
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]),
                        "seq=" + seq + " row=" + i / seq + " col=" + i % seq + ": vector " + got[i] + " vs " + want[i]);
                }
            }
        }
    }

    @Test
    @Timeout(30)
    void shouldMatchTheScalarCausalSoftmaxBackwardBitwiseOnTheVectorApi() {
        assumeTrue(CpuAttention.VECTOR_API, "needs --add-modules jdk.incubator.vector");
        Random rnd = new Random(8);
        int pad = CpuAttentionSoftmaxVector.PAD;
        for (int seq : new int[] {1, 2, 5, 15, 16, 17, 33, 64, 67}) {
            int nn = seq * seq;
            float[] p = new float[nn + pad];
            java.util.Arrays.fill(p, Float.NaN);
            for (int i = 0; i < nn; i++) {
                p[i] = (float) (rnd.nextGaussian() * 3);
            }
            CpuAttention.softmaxCausalInPlace(p, seq);
            float[] want = new float[nn];
            float[] got = new float[nn + pad];
            java.util.Arrays.fill(got, Float.NaN);
            for (int i = 0; i < nn; i++) {
                want[i] = (float) rnd.nextGaussian();
                // the masked half may hold anything: it must come out 0
                got[i] = (i % seq) > (i / seq) ? Float.NaN : want[i];
            }
            CpuAttention.softmaxBackwardCausalInPlace(p, want, seq);
            CpuAttentionSoftmaxVector.causalBackward(p, got, seq);
            for (int i = 0; i < nn; i++) {
                assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]),
                    "seq=" + seq + " row=" + i / seq + " col=" + i % seq + ": vector " + got[i] + " vs " + want[i]);
            }
            assertTrue(Float.isNaN(got[nn]), "seq=" + seq + ": wrote past the matrix");
        }
    }

    @Test
    @Timeout(30)
    void shouldMatchTheUnpackedCausalSoftmaxBitwise() {
        Random rnd = new Random(5);
        for (int seq : new int[] {1, 2, 5, 16, 64, 67}) {
            int nn = seq * seq;
            float[] scores = new float[nn];
            for (int i = 0; i < nn; i++) {
                scores[i] = switch (i % 11) {
                    case 0 -> 0f;
                    case 1 -> -0f;
                    case 2 -> -90f - rnd.nextFloat() * 10f; // under exp's cut-off after the shift
                    default -> (float) (rnd.nextGaussian() * 4);
                };
            }
            try (CpuStorage a = new CpuStorage(4L * nn); CpuStorage b = new CpuStorage(4L * nn)) {
                for (int i = 0; i < nn; i++) {
                    UNSAFE.putFloat(a.address() + 4L * i, scores[i]);
                    UNSAFE.putFloat(b.address() + 4L * i, scores[i]);
                }
                CpuAttention.softmaxCausal(a.address(), seq);
                CpuAttention.softmaxCausalUnpacked(b.address(), seq);
                for (int i = 0; i < nn; i++) {
                    float got = UNSAFE.getFloat(a.address() + 4L * i);
                    float want = UNSAFE.getFloat(b.address() + 4L * i);
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got),
                        "seq=" + seq + " row=" + i / seq + " col=" + i % seq + ": packed " + got + " vs " + want);
                }
            }
        }
    }

    @Test
    @Timeout(30)
    void shouldMatchTheRowByRowCausalSoftmaxBackwardBitwise() {
        Random rnd = new Random(6);
        for (int seq : new int[] {1, 3, 16, 64, 67}) {
            int nn = seq * seq;
            try (CpuStorage p = new CpuStorage(4L * nn); CpuStorage a = new CpuStorage(4L * nn);
                 CpuStorage b = new CpuStorage(4L * nn)) {
                for (int i = 0; i < nn; i++) {
                    UNSAFE.putFloat(p.address() + 4L * i, (float) (rnd.nextGaussian() * 3));
                }
                CpuAttention.softmaxCausal(p.address(), seq);
                for (int i = 0; i < nn; i++) {
                    float g = (float) rnd.nextGaussian();
                    UNSAFE.putFloat(a.address() + 4L * i, g);
                    UNSAFE.putFloat(b.address() + 4L * i, g);
                }
                CpuAttention.softmaxBackwardCausal(p.address(), a.address(), seq);
                CpuAttention.softmaxBackwardCausalRows(p.address(), b.address(), seq);
                for (int i = 0; i < nn; i++) {
                    float got = UNSAFE.getFloat(a.address() + 4L * i);
                    float want = UNSAFE.getFloat(b.address() + 4L * i);
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got),
                        "seq=" + seq + " row=" + i / seq + " col=" + i % seq + ": whole " + got + " vs rows " + want);
                }
            }
        }
    }

    @Test
    @Timeout(30)
    void shouldFindTheSameMaxAsOneChain() {
        Random rnd = new Random(9);
        for (int n = 1; n < 40; n++) {
            float[] x = new float[n + 3];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            for (int from : new int[] {0, 3}) {
                int to = Math.min(x.length, from + n);
                float max = x[from];
                for (int j = from + 1; j < to; j++) {
                    max = x[j] > max ? x[j] : max;
                }
                assertEquals(max, CpuAttention.max4(x, from, to), "n=" + n + " from=" + from);
                assertEquals(max, CpuAttention.max1(x, from, to), "reference n=" + n + " from=" + from);
            }
        }
    }
}
