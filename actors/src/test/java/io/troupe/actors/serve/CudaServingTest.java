package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.models.infer.DeviceKvCachedGpt;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.CudaSupport;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code troupe serve --device cuda}'s server ({@link InferenceServer#startOnDevice} on {@code cuda:0}) over
 * HTTP: greedy completions of prompts sent together (sharing decode steps) are the tokens each gets alone
 * (batch invariance on the GPU's kernels) and the text the default CPU path serves. Needs a GPU, or the
 * CUDA emulator (runtime/src/test/cuda-emu); skips visibly otherwise.
 */
@Timeout(180)
class CudaServingTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    @Test
    void shouldServeTheSameGreedyTokensOnTheGpuAloneTogetherAndAsTheDefaultPath() throws Exception {
        assumeTrue(CudaSupport.isAvailable(),
            "no usable GPU, CUDA test skipped: " + CudaSupport.availability().reason());
        List<String> prompts = List.of("To be", "or not", "that is the question", "W", "Whether 'tis nobler");
        InferenceServer plain = InferenceServer.start(ServeTestSupport.weights(5), ServeTestSupport.settings());
        open.add(plain);
        CudaDevice gpu = new CudaDevice(0);
        InferenceServer device = InferenceServer.startOnDevice(ServeTestSupport.CFG, ServeTestSupport.parameters(5),
            gpu, ServeTestSupport.settings());
        open.add(device);
        assertTrue(device.model() instanceof DeviceKvCachedGpt, "served through DeviceKvCachedGpt");
        List<String> together = ServeTestSupport.greedyTexts(device, prompts);
        assertFalse(together.stream().allMatch(String::isEmpty), "the model says something");
        List<String> alone = new ArrayList<>();
        for (String p : prompts) {
            alone.add(ServeTestSupport.greedyTexts(device, List.of(p)).get(0));
        }
        assertEquals(alone, together, "each prompt alone gets the tokens it got among the others");
        assertEquals(ServeTestSupport.greedyTexts(plain, prompts), together, "the default path's text");
    }
}
