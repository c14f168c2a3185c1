package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** int8 weight-only linears against their float reference, and the memory they save. */
@Timeout(60)
class Int8WeightsTest {
    @Test
    void shouldEqualTheFloatProductOfTheDequantizedWeightAndStayCloseToFp32() {
        Random rnd = new Random(1);
        int out = 37;
        int in = 70;
        int rows = 5;
        float[] w = new float[out * in];
        float[] b = new float[out];
        float[] x = new float[rows * in];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian() * 0.1f;
        }
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        for (int i = 0; i < out; i++) {
            b[i] = (float) rnd.nextGaussian();
        }
        Int8Linear q = Int8Linear.quantize(w, b, out, in);
        float[] deq = q.dequantized();
        double maxQErr = 0;
        for (int j = 0; j < out; j++) {
            float max = 0;
            for (int k = 0; k < in; k++) {
                max = Math.max(max, Math.abs(w[j * in + k]));
            }
            for (int k = 0; k < in; k++) {
                maxQErr = Math.max(maxQErr, Math.abs(deq[j * in + k] - w[j * in + k]) / (max / 127f));
            }
        }
        assertTrue(maxQErr <= 0.5 + 1e-3, "round to nearest: error <= half a step, got " + maxQErr + " steps");
        float[] yq = new float[rows * out];
        float[] yRef = new float[rows * out];
        float[] yFp = new float[rows * out];
        q.forward(x, rows, yq);
        new Fp32Linear(w, b, out, in).forward(x, rows, yFp);
        double maxRef = 0;
        double maxFp = 0;
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < out; j++) {
                double ref = b[j];   // the plain reference: dequantized weight, double accumulation
                for (int k = 0; k < in; k++) {
                    ref += (double) x[r * in + k] * deq[j * in + k];
                }
                maxRef = Math.max(maxRef, Math.abs(yq[r * out + j] - ref));
                maxFp = Math.max(maxFp, Math.abs(yq[r * out + j] - yFp[r * out + j]));
            }
        }
        System.out.printf("int8 linear: max |diff| vs dequantized reference %.3g, vs fp32 %.3g%n", maxRef, maxFp);
        assertTrue(maxRef < 1e-4, "fused dequant equals the dequantized product: " + maxRef);
        assertTrue(maxFp < 0.05, "int8 stays near fp32: " + maxFp);
    }

    @Test
    void shouldHoldTheSmallModelInAtMostThreeTenthsOfItsFloatBytes() {
        GptConfig cfg = GptConfig.small();
        float[] params = InferenceFixtures.randomParams(cfg, 2);
        long fp32 = InferenceWeights.fromFlat(cfg, params, Quantization.NONE).weightBytes();
        long int8 = InferenceWeights.fromFlat(cfg, params, Quantization.INT8).weightBytes();
        assertEquals(4L * params.length, fp32, "fp32 counts every parameter once");
        double ratio = (double) int8 / fp32;
        System.out.printf("small model weights: fp32 %d bytes, int8 %d bytes, ratio %.3f%n", fp32, int8, ratio);
        assertTrue(ratio <= 0.3, "ratio " + ratio);
    }

    @Test
    void shouldGiveEachRowTheSameBitsWhateverTheNumberOfRowsBesideIt() {
        Random rnd = new Random(3);
        int out = 40;
        int in = 24;
        int rows = 37;                      // crosses row tiles
        float[] w = new float[out * in];
        float[] b = new float[out];
        float[] x = new float[rows * in];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        for (LinearWeights lin : new LinearWeights[] {new Fp32Linear(w, b, out, in),
            Int8Linear.quantize(w, b, out, in)}) {
            float[] all = new float[rows * out];
            lin.forward(x, rows, all);
            for (int r = 0; r < rows; r++) {
                float[] one = new float[out];
                lin.forward(java.util.Arrays.copyOfRange(x, r * in, (r + 1) * in), 1, one);
                org.junit.jupiter.api.Assertions.assertArrayEquals(one,
                    java.util.Arrays.copyOfRange(all, r * out, (r + 1) * out), 0f,
                    lin.getClass().getSimpleName() + " row " + r);
            }
        }
    }

    @Test
    void shouldComputeGeluWithin2e6RelativeOfTheExactTanhForm() {
        float[] x = new float[20001];
        for (int i = 0; i < x.length; i++) {
            x[i] = -20f + 40f * i / (x.length - 1);
        }
        float[] y = x.clone();
        RowKernels.gelu(y, y.length);
        double max = 0;
        for (int i = 0; i < x.length; i++) {
            double v = x[i];
            double exact = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            max = Math.max(max, Math.abs(y[i] - exact) / Math.max(1, Math.abs(exact)));
        }
        System.out.printf("gelu: max |diff| / max(1, |exact|) %.3g%n", max);
        assertTrue(max < 2e-6, "max " + max);
    }
}
