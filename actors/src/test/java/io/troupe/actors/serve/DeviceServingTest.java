package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.infer.DeviceKvCachedGpt;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.runtime.cpu.CpuDevice;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Serving through {@link DeviceKvCachedGpt} on one device ({@link InferenceServer#startOnDevice}, what
 * {@code troupe serve --device} runs), here over the CPU device: greedy completions of several prompts
 * sent at once (so they share steps) are the text the default path serves for them.
 */
@Timeout(120)
class DeviceServingTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    @Test
    void shouldServeTheSameGreedyTokensThroughTheDeviceForwardAsTheDefaultPath() throws Exception {
        List<String> prompts = List.of("To be", "or not", "that is the question", "W", "Whether 'tis nobler");
        InferenceServer plain = InferenceServer.start(ServeTestSupport.weights(5), ServeTestSupport.settings());
        open.add(plain);
        InferenceServer device = InferenceServer.startOnDevice(ServeTestSupport.CFG, ServeTestSupport.parameters(5),
            new CpuDevice(1), ServeTestSupport.settings());
        open.add(device);
        assertTrue(device.model() instanceof DeviceKvCachedGpt, "served through DeviceKvCachedGpt");
        List<String> expected = ServeTestSupport.greedyTexts(plain, prompts);
        List<String> got = ServeTestSupport.greedyTexts(device, prompts);
        assertFalse(expected.stream().allMatch(String::isEmpty), "the model says something");
        assertEquals(expected, got);
        assertEquals(got, ServeTestSupport.greedyTexts(device, prompts), "and again, in other steps");
    }

    @Test
    void shouldServeACheckpointWrittenInTwoStagesThroughTheDeviceForward(@TempDir Path tmp) throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> prompts = List.of("Once", "upon a time");
        InferenceServer plain = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE),
            ServeTestSupport.settings());
        open.add(plain);
        InferenceServer device = InferenceServer.startOnDevice(Checkpoints.readManifest(Checkpoints.resolve(ckpt))
            .model(), InferenceWeights.loadParameters(ckpt), new CpuDevice(1), ServeTestSupport.settings());
        open.add(device);
        assertEquals(ServeTestSupport.greedyTexts(plain, prompts), ServeTestSupport.greedyTexts(device, prompts));
    }
}
