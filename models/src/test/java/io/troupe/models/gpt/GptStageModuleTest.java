package io.troupe.models.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The stage contract as a runtime uses it: factories, and early per-parameter gradient reports. */
@Timeout(60)
class GptStageModuleTest {
    private static final GptConfig CFG = new GptConfig("t3", 64, 32, 3, 4, 8, 1e-5f);
    private static final int ROWS = 2;

    /**
     * Every parameter is reported exactly once, and at the moment it is reported its gradient
     * already holds its final value: nothing after the report changes it. Checked for a first, a
     * middle and a last stage, over two micro-batches (gradients accumulate).
     */
    @Test
    void shouldReportEachParameterOnceAndOnlyWhenItsGradientIsFinal() {
        int[][] split = {{0, 1}, {1, 2}, {2, 3}};
        try (CpuDevice dev = new CpuDevice(1)) {
            for (int s = 0; s < 3; s++) {
                StageModuleFactory.Stage spec = new StageModuleFactory.Stage(CFG, dev, s, 3, split[s][0], split[s][1],
                    ROWS, 7);
                try (StageModule stage = new GptStages().create(spec)) {
                    Random rnd = new Random(11 + s);
                    int n = ROWS * CFG.seqLen();
                    Tensor ids = RandomTensors.intTensor(dev, RandomTensors.ints(rnd, n, CFG.vocabSize()), n);
                    Tensor targets = RandomTensors.intTensor(dev, RandomTensors.ints(rnd, n, CFG.vocabSize()), n);
                    Tensor act = RandomTensors.tensor(dev, RandomTensors.normal(rnd, n * CFG.dModel(), 0, 1), ROWS,
                        CFG.seqLen(), CFG.dModel());
                    Tensor gradOut = RandomTensors.tensor(dev, RandomTensors.normal(rnd, n * CFG.dModel(), 0, 1e-2),
                        ROWS, CFG.seqLen(), CFG.dModel());
                    stage.zeroGrads();
                    for (int slot = 0; slot < 2; slot++) {
                        stage.forward(slot, spec.first() ? ids : act, spec.last() ? targets : null);
                        stage.backwardInput(slot, spec.last() ? null : gradOut, 1f / n);
                    }
                    stage.backwardWeight(0);
                    List<ParamSpec> params = stage.parameters();
                    float[][] atReport = new float[params.size()][];
                    List<Integer> order = new ArrayList<>();
                    stage.backwardWeight(1, i -> {
                        order.add(i);
                        atReport[i] = slice(stage.grads(), params.get(i));
                    });
                    assertEquals(params.size(), order.size(), "every parameter reported");
                    assertEquals(params.size(), order.stream().distinct().count(), "no parameter reported twice: "
                        + order);
                    for (int i = 0; i < params.size(); i++) {
                        assertArrayEquals(slice(stage.grads(), params.get(i)), atReport[i],
                            "stage " + s + " parameter " + params.get(i).name() + " changed after it was reported");
                    }
                    assertTrue(order.get(0) > order.get(order.size() - 1),
                        "backward order: last parameters first, was " + order);
                    for (Tensor t : new Tensor[] {ids, targets, act, gradOut}) {
                        t.close();
                    }
                }
            }
        }
    }

    private static float[] slice(Tensor grads, ParamSpec p) {
        float[] all = grads.toFloatArray();
        return Arrays.copyOfRange(all, (int) p.localOffset(), (int) (p.localOffset() + p.numel()));
    }

}
