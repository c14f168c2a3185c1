package io.troupe.models.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.models.memory.Recompute;
import io.troupe.models.parallel.tp.ObservedTensorParallelGroup;
import io.troupe.models.parallel.tp.PendingTensorParallelCollective;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.models.parallel.tp.TensorParallelMembers;
import io.troupe.runtime.device.Device;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The fused backward that overlaps each column-parallel layer's input-gradient reduction with the
 * weight gradients gives bitwise the gradients (and reports the parameters in the same order) as B
 * then W, in process and over the data plane, with and without sequence parallelism and under every
 * recomputation mode.
 */
@Timeout(300)
class TensorParallelOverlapTest {
    private static final GptConfig CFG = new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f);
    private static final int ROWS = 2;
    private static final int TP = 2;

    /** The member's group, counting the async collectives its layers start. */
    private static final class Counting extends ObservedTensorParallelGroup {
        int async;

        Counting(TensorParallelGroup inner) {
            super(inner);
        }

        @Override
        protected PendingTensorParallelCollective started(Collective c, long elements, long startNs,
                                                          PendingTensorParallelCollective p) {
            async++;
            return p;
        }
    }

    /**
     * {losses, grads, parameter report order, {async collectives}} of one member after two
     * micro-batches, overlapped or not.
     */
    private static float[][] step(TensorParallelGroup member, Device dev, boolean sp, Recompute recompute,
                                  boolean overlap) {
        Counting g = new Counting(member);
        try (Gpt gpt = new Gpt(CFG, dev, g, sp, ROWS, 0, CFG.nLayer(), true, true)) {
            gpt.initialize(9);
            gpt.recompute(recompute);
            gpt.overlapTensorParallel(overlap);
            gpt.zeroGrads();
            int n = ROWS * CFG.seqLen();
            Random rnd = new Random(3);
            float[] losses = new float[2];
            List<Integer> reported = new ArrayList<>();
            for (int mb = 0; mb < 2; mb++) {
                int[] x = new int[n];
                int[] y = new int[n];
                for (int i = 0; i < n; i++) {
                    x[i] = rnd.nextInt(CFG.vocabSize());
                    y[i] = rnd.nextInt(CFG.vocabSize());
                }
                gpt.forwardTokens(mb, x, y);
                losses[mb] = (float) gpt.loss(mb);
            }
            for (int mb = 1; mb >= 0; mb--) {
                gpt.backward(mb, null, 1f / (2 * n), reported::add);
            }
            float[] order = new float[reported.size()];
            for (int i = 0; i < order.length; i++) {
                order[i] = reported.get(i);
            }
            return new float[][] {losses, gpt.grads().toFloatArray(), order, {g.async}};
        }
    }

    private static void assertBitwise(String what, List<float[][]> off, List<float[][]> on) {
        for (int k = 0; k < TP; k++) {
            assertArrayEquals(off.get(k)[0], on.get(k)[0], what + ": losses of member " + k);
            assertArrayEquals(off.get(k)[1], on.get(k)[1], what + ": gradients of member " + k);
            assertArrayEquals(off.get(k)[2], on.get(k)[2], what + ": parameter report order of member " + k);
        }
        // per micro-batch: lm_head, and fc and qkv of each block (with sp also each one's input gather)
        int perMicroBatch = 1 + 2 * CFG.nLayer();
        assertEquals(0f, off.get(0)[3][0], what + ": B then W starts no async collective");
        assertEquals(2 * perMicroBatch * (what.contains("sequence") ? 2 : 1), on.get(0)[3][0],
            what + ": async collectives of the overlapped backward");
        assertEquals(off.get(0)[2].length, 2 * CFG.nLayer() * 12 + 2 * 5, what + ": every parameter reported");
        System.out.printf("%-40s overlapped backward bitwise B then W (%d gradients per member)%n", what,
            on.get(0)[1].length);
    }

    @Test
    void shouldGiveBThenWGradientsBitwiseInProcess() {
        for (boolean sp : new boolean[] {false, true}) {
            for (Recompute r : Recompute.values()) {
                List<float[][]> off = TensorParallelMembers.run(TP, (g, dev) -> step(g, dev, sp, r, false));
                List<float[][]> on = TensorParallelMembers.run(TP, (g, dev) -> step(g, dev, sp, r, true));
                assertBitwise("in-process" + (sp ? ", sequence parallel" : "") + ", recompute " + r, off, on);
            }
        }
    }

    @Test
    void shouldGiveBThenWGradientsBitwiseOverTheDataPlane() {
        for (boolean sp : new boolean[] {false, true}) {
            List<float[][]> off = TensorParallelMembers.runOverDataPlane(TP, 6, 30,
                (g, dev) -> step(g, dev, sp, Recompute.NONE, false));
            List<float[][]> on = TensorParallelMembers.runOverDataPlane(TP, 6, 30,
                (g, dev) -> step(g, dev, sp, Recompute.NONE, true));
            assertBitwise("data plane" + (sp ? ", sequence parallel" : ""), off, on);
        }
    }
}
