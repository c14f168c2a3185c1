package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.data.TokenStream;
import io.troupe.models.gpt.Gpt;
import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.cpu.CpuDevice;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The exact validation loss against the training model's loss on the same windows. */
@Timeout(120)
class ValidationLossTest {
    @Test
    void shouldEqualTheMeanOfTheTrainingModelsLossOverEveryWindow() {
        GptConfig cfg = new GptConfig("t", 256, 32, 2, 4, 16, 1e-5f);
        float[] params = InferenceFixtures.randomParams(cfg, 9);
        byte[] bytes = new byte[16 * 13 + 5];        // 13 whole windows and a tail too short for a 14th
        new Random(10).nextBytes(bytes);
        TokenStream stream = new TokenStream(bytes, "random");
        double reference = 0;
        try (CpuDevice dev = new CpuDevice(1); Gpt gpt = Gpt.whole(cfg, dev, 1)) {
            dev.copyFromHost(params, gpt.params());
            for (int w = 0; w < 13; w++) {
                int[] x = new int[16];
                int[] y = new int[16];
                for (int p = 0; p < 16; p++) {
                    x[p] = stream.token(w * 16 + p);
                    y[p] = stream.token(w * 16 + p + 1);
                }
                gpt.forwardTokens(0, x, y);
                reference += gpt.loss(0);
            }
        }
        reference /= 13;
        InferenceWeights weights = InferenceWeights.fromFlat(cfg, params, Quantization.NONE);
        ValidationLoss.Result one = ValidationLoss.exact(weights, stream, 4);
        ValidationLoss.Result three = ValidationLoss.exact(weights, stream, 5);
        System.out.printf("exact validation loss %.7f, training model %.7f%n", one.loss(), reference);
        assertEquals(13, one.windows());
        assertEquals(13 * 16, one.tokens());
        assertEquals(reference, one.loss(), 1e-5 * reference);
        assertEquals(one.loss(), three.loss(), 1e-9 * one.loss(), "rows per step do not change the figure");
        double int8 = ValidationLoss.exact(InferenceWeights.fromFlat(cfg, params, Quantization.INT8), stream, 4).loss();
        assertTrue(Math.abs(int8 - one.loss()) < 0.05 * one.loss(), "int8 " + int8 + " vs fp32 " + one.loss());
    }
}
