package io.troupe.models.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.ParamSpec;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(60)
class StepTailTest {
    private static final int N = 37;
    private static final LrSchedule SCHEDULE = new LrSchedule(1e-2f, 1e-3f, 3, 10);

    /** Two parts, clipped: the tail equals the written-out recipe bit for bit, for several steps. */
    @Test
    void shouldMatchTheWrittenOutRecipeBitwise() {
        try (CpuDevice dev = new CpuDevice(1)) {
            Random rnd = new Random(5);
            float[][] p0 = {RandomTensors.normal(rnd, N, 0, 1), RandomTensors.normal(rnd, N, 0, 1)};
            float[][] g0 = {RandomTensors.normal(rnd, N, 0, 2), RandomTensors.normal(rnd, N, 0, 3)};
            List<Tensor> open = new ArrayList<>();
            List<StepTail.Part> tailParts = parts(dev, p0, g0, open);
            List<StepTail.Part> refParts = parts(dev, p0, g0, open);
            StepTail tail = StepTail.local(SCHEDULE, 1.0);
            for (long step = 0; step < 4; step++) {
                StepTail.Result r = tail.apply(step, tailParts, tailParts);
                // The reference: the recipe each runtime wrote out before the tail was one class.
                double sum = 0;
                for (StepTail.Part p : refParts) {
                    sum += dev.sumOfSquares(p.grads());
                }
                double norm = Math.sqrt(sum);
                float clip = GradClip.scaleFor(norm, 1.0);
                float lr = SCHEDULE.lr(step);
                for (StepTail.Part p : refParts) {
                    if (clip != 1f) {
                        dev.scale(p.grads(), clip);
                    }
                    p.optimizer().step(p.params(), p.grads(), lr);
                }
                assertEquals(norm, r.gradNorm(), 0.0, "step " + step);
                assertEquals(clip, r.clipScale(), 0f);
                assertEquals(lr, r.lr(), 0f);
                assertTrue(r.clipScale() < 1f, "gradients of norm ~" + norm + " are clipped to 1");
                for (int i = 0; i < 2; i++) {
                    assertArrayEquals(RandomTensors.read(refParts.get(i).params()),
                        RandomTensors.read(tailParts.get(i).params()),
                        "step " + step + " part " + i);
                }
                // Fresh gradients for the next step, the same in both.
                for (int i = 0; i < 2; i++) {
                    float[] g = RandomTensors.normal(rnd, N, 0, 2);
                    dev.copyFromHost(g, tailParts.get(i).grads());
                    dev.copyFromHost(g, refParts.get(i).grads());
                }
            }
            closeAll(tailParts, refParts, open);
        }
    }

    /** The reduction sees this participant's local sum once, and its answer decides the norm. */
    @Test
    void shouldTakeTheGlobalNormFromTheReduction() {
        try (CpuDevice dev = new CpuDevice(1)) {
            Random rnd = new Random(9);
            float[][] p = {RandomTensors.normal(rnd, N, 0, 1)};
            float[][] g = {RandomTensors.normal(rnd, N, 0, 1e-3)};
            List<Tensor> open = new ArrayList<>();
            List<StepTail.Part> parts = parts(dev, p, g, open);
            double local = dev.sumOfSquares(parts.get(0).grads());
            List<Double> seen = new ArrayList<>();
            StepTail tail = new StepTail(SCHEDULE, 1.0, s -> {
                seen.add(s);
                return s + 99.0; // the other participants' share
            });
            StepTail.Result r = tail.apply(0, parts, parts);
            assertEquals(List.of(local), seen);
            assertEquals(Math.sqrt(local + 99.0), r.gradNorm(), 0.0);
            assertTrue(r.clipScale() < 1f, "the global norm, not the local one, decides clipping");

            // A replica whose gradients another counts passes no norm parts: it contributes 0.
            seen.clear();
            tail.apply(1, List.of(), parts);
            assertEquals(List.of(0.0), seen);
            closeAll(parts, List.of(), open);
        }
    }

    private static List<StepTail.Part> parts(CpuDevice dev, float[][] params, float[][] grads, List<Tensor> open) {
        List<StepTail.Part> out = new ArrayList<>();
        for (int i = 0; i < params.length; i++) {
            Tensor p = RandomTensors.tensor(dev, params[i], N);
            Tensor g = RandomTensors.tensor(dev, grads[i], N);
            open.add(p);
            open.add(g);
            List<ParamSpec> specs = List.of(new ParamSpec("w" + i, new int[] {N}, 0, 0, N, 0, 0, true));
            out.add(new StepTail.Part(dev, p, g, new AdamW(AdamWConfig.defaults(), dev, specs, N)));
        }
        return out;
    }

    private static void closeAll(List<StepTail.Part> a, List<StepTail.Part> b, List<Tensor> open) {
        for (StepTail.Part p : a) {
            p.optimizer().close();
        }
        for (StepTail.Part p : b) {
            p.optimizer().close();
        }
        for (Tensor t : open) {
            t.close();
        }
    }
}
