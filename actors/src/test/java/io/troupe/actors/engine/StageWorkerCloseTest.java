package io.troupe.actors.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.StageModule;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.memory.MemoryOptions;
import io.troupe.models.optim.AdamW;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.parallel.Layout;
import io.troupe.models.parallel.StagePartition;
import io.troupe.models.train.TrainConfig;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Closing a worker frees every tensor it allocated on its device, its optimizers' moments included: the CPU
 * device's {@link CpuDevice#bytesInUse() bytes in use} (which count from allocation until free, and still read
 * after the device is closed) return to zero. Checked on a worker whose optimizers have stepped, and on the
 * workers of an in-process engine after a whole training step (activations, received buffers, ZeRO's packed
 * owned gradients and sharded moments).
 */
@Timeout(120)
class StageWorkerCloseTest {
    private static final GptConfig MODEL = new GptConfig("tiny4", 256, 32, 4, 4, 16, 1e-5f);
    private static final Corpora DATA = Corpora.builtIn();
    private static final int CHUNKS = 2;

    @Test
    void shouldFreeEveryAllocationOptimizerMomentsIncludedOnClose() {
        StageWorker w = new StageWorker(spec(Layout.parse("1x1", CHUNKS), "interleaved", MemoryOptions.NONE), 0, 0, 7);
        CpuDevice device;
        List<Tensor> moments = new ArrayList<>();
        try {
            device = assertInstanceOf(CpuDevice.class, w.device());
            long stateBytes = 0;
            for (int v = 0; v < w.chunks(); v++) {
                StageModule chunk = w.chunk(v);
                AdamW optimizer = w.optimizer(v);
                device.fill(chunk.grads(), 0.5f);
                optimizer.step(chunk.params(), chunk.grads(), 1e-3f);
                assertEquals(1, optimizer.stepCount(), "chunk " + v + "'s optimizer stepped");
                assertTrue(maxAbs(optimizer.firstMoment()) > 0, "chunk " + v + "'s first moment holds the step");
                moments.add(optimizer.firstMoment());
                moments.add(optimizer.secondMoment());
                stateBytes += optimizer.stateBytes();
            }
            assertTrue(device.bytesInUse() > stateBytes, "the device counts the moments (" + stateBytes
                + " bytes) and the chunks: " + device.bytesInUse());
        } finally {
            w.close();
        }
        assertEquals(0, device.bytesInUse(), "bytes still allocated on the worker's device after close");
        for (Tensor m : moments) {
            assertFalse(m.storage().isOpen(), "an optimizer moment is freed: " + m);
        }
    }

    @Test
    void shouldFreeEveryAllocationOfAnEngineAfterATrainingStep() {
        Object[][] cases = {
            {"1x2", 1, "1f1b", MemoryOptions.NONE},
            {"1x1", CHUNKS, "interleaved", MemoryOptions.NONE},
            {"2x1", 1, "1f1b", MemoryOptions.NONE.withZero(1)},
            {"2x1", 1, "1f1b", MemoryOptions.NONE.withZero(2)},
        };
        for (Object[] c : cases) {
            Layout layout = Layout.parse((String) c[0], (Integer) c[1]);
            PipelineJobSpec spec = spec(layout, (String) c[2], (MemoryOptions) c[3]);
            String what = c[0] + " " + c[2] + " zero " + spec.memory().zero();
            Set<CpuDevice> devices = new LinkedHashSet<>();
            try (LocalPipelineEngine engine = new LocalPipelineEngine(spec, DATA)) {
                for (int d = 0; d < layout.dp(); d++) {
                    for (int g = 0; g < layout.modelStages(); g++) {
                        devices.add(assertInstanceOf(CpuDevice.class, engine.stage(d, g).params().device()));
                    }
                }
                assertTrue(Double.isFinite(engine.trainStep().step().loss()), what + ": a step ran");
                for (CpuDevice device : devices) {
                    assertTrue(device.bytesInUse() > 0, what + ": the device counts its tensors");
                }
            }
            assertEquals(layout.dp() * layout.pp(), devices.size(), what + ": one device per worker");
            for (CpuDevice device : devices) {
                assertEquals(0, device.bytesInUse(), what + ": bytes still allocated on " + device.name()
                    + " after the engine closed");
            }
        }
    }

    private static PipelineJobSpec spec(Layout layout, String schedule, MemoryOptions memory) {
        TrainConfig train = new TrainConfig(MODEL, 8, 1, 1, 3e-3f, 3e-4f, 2, 1.0f, 11, 0, 1, 0,
            AdamWConfig.defaults());
        int microbatches = layout.pp() > 1 || layout.virtualStages() > 1 ? 2 : 1;
        return new PipelineJobSpec(train, layout, schedule, microbatches,
            StagePartition.balanced(MODEL, layout.modelStages()), 2, 30_000).withMemory(memory);
    }

    private static float maxAbs(Tensor t) {
        float max = 0;
        for (float x : t.toFloatArray()) {
            max = Math.max(max, Math.abs(x));
        }
        return max;
    }
}
