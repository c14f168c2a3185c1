package io.troupe.models.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.CudaSupport;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link DeviceKvCachedGpt} on {@code cuda:0}: its logits against the same forward on the CPU device
 * over prefill chunks and decode steps of several sequences, and a sequence's logits alone against
 * the same sequence among 15 others, bit for bit, on the GPU. Skipped, with the reason, without a GPU.
 */
@Timeout(180)
class CudaDeviceKvCachedGptTest {
    private CpuDevice cpu;
    private CudaDevice gpu;

    @BeforeEach
    void open() {
        assumeTrue(CudaSupport.isAvailable(), "no usable GPU, CUDA test skipped: "
            + CudaSupport.availability().reason());
        cpu = new CpuDevice(2);
        gpu = new CudaDevice(0);
    }

    @AfterEach
    void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    @Test
    void shouldMatchTheCpuDeviceOverPrefillChunksAndDecodeSteps() {
        float[] params = InferenceFixtures.randomParams(DeviceKvCachedGptTest.CFG, 31);
        DecodeScenario sc = new DecodeScenario(DeviceKvCachedGptTest.CFG, 32, 4, 13, 8, 5);
        PagedKvCache cache = new PagedKvCache(DeviceKvCachedGptTest.CFG, 4, 40, 0);
        int v = DeviceKvCachedGptTest.CFG.vocabSize();
        try (DeviceKvCachedGpt onCpu = DeviceKvCachedGpt.fromFlat(DeviceKvCachedGptTest.CFG, params, cache, cpu);
             DeviceKvCachedGpt onGpu = DeviceKvCachedGpt.fromFlat(DeviceKvCachedGptTest.CFG, params, cache, gpu)) {
            List<List<float[]>> expected = sc.run(onCpu::forward, cache, DecodeScenario.all(4), v);
            List<List<float[]>> got = sc.run(onGpu::forward, cache, DecodeScenario.all(4), v);
            double diff = DecodeScenario.maxDiff(got, expected);
            System.out.printf("DeviceKvCachedGpt cuda vs cpu: max |diff| of logits %.3g%n", diff);
            assertTrue(diff < 1e-4, "max |diff| " + diff);
        }
    }

    @Test
    void shouldGiveASequenceTheSameLogitsAloneOrAmongFifteenOthers() {
        float[] params = InferenceFixtures.randomParams(DeviceKvCachedGptTest.CFG, 33);
        DecodeScenario sc = new DecodeScenario(DeviceKvCachedGptTest.CFG, 34, 16, 12, 8, 5);
        PagedKvCache cache = new PagedKvCache(DeviceKvCachedGptTest.CFG, 4, 16 * 6, 0);
        int v = DeviceKvCachedGptTest.CFG.vocabSize();
        try (DeviceKvCachedGpt m = DeviceKvCachedGpt.fromFlat(DeviceKvCachedGptTest.CFG, params, cache, gpu)) {
            List<List<float[]>> together = sc.run(m::forward, cache, DecodeScenario.all(16), v);
            for (int s : new int[] {0, 7, 15}) {
                List<float[]> alone = sc.run(m::forward, cache, new int[] {s}, v).get(0);
                for (int p = 0; p < alone.size(); p++) {
                    assertArrayEquals(alone.get(p), together.get(s).get(p), 0f, "sequence " + s + " position " + p);
                }
            }
        }
    }
}
