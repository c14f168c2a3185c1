package io.troupe.models.parallel.tp;

import static io.troupe.models.parallel.tp.TensorParallelMembers.assertClose;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.testkit.RandomTensors;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every parallel layer at tp = 2 and 4 against the unsplit layer (the same class at tp = 1) on
 * random inputs: outputs, input gradients and weight gradients, each member's shard compared with
 * the slice of the unsplit result it stands for (max difference printed; 1e-5 relative).
 */
@Timeout(120)
class ParallelLayersTest {
    private static final double REL = 1e-5;
    private static final int N = 24;      // tokens
    private static final int IN = 16;
    private static final int HEADS_OUT = 3 * 16;   // fused q, k, v of width 16
    private static final int FFN = 64;
    private static final int VOCAB = 40;

    private static float[] rnd(long seed, int n, double std) {
        return RandomTensors.normal(new Random(seed), n, 0, std);
    }

    private static float[] slice(float[] full, int[] shape, TensorParallelSplit split, int tp, int k) {
        return split.shard(full, shape, tp, k);
    }

    /** The unsplit column-parallel layer's results: {Y, dX, dW, db}. */
    private static float[][] column(Device dev, TensorParallelGroup g, int out, TensorParallelSplit wSplit,
                                    float[] x, float[] w, float[] b, float[] dy) {
        int tp = g.size();
        int k = g.index();
        int[] wShape = {out, IN};
        int[] yShape = {N, out};
        TensorParallelSplit ySplit = new TensorParallelSplit(1, wSplit.parts());
        Tensor wt = RandomTensors.tensor(dev, slice(w, wShape, wSplit, tp, k), out / tp, IN);
        Tensor bt = RandomTensors.tensor(dev, slice(b, new int[] {out}, new TensorParallelSplit(0, wSplit.parts()),
            tp, k), out / tp);
        Tensor dW = dev.allocate(out / tp, IN);
        Tensor db = dev.allocate(out / tp);
        dev.fill(dW, 0f);
        dev.fill(db, 0f);
        ColumnParallelLinear layer = new ColumnParallelLinear(dev, g, IN, out, wt, bt, dW, db);
        Tensor xt = RandomTensors.tensor(dev, x, N, IN);
        Tensor y = dev.allocate(N, out / tp);
        layer.forward(xt, y, N);
        Tensor dyt = RandomTensors.tensor(dev, slice(dy, yShape, ySplit, tp, k), N, out / tp);
        Tensor dx = dev.allocate(N, IN);
        layer.backwardInput(dyt, dx, N);
        layer.backwardWeight(dyt, xt, N);
        return new float[][] {y.toFloatArray(), dx.toFloatArray(), dW.toFloatArray(), db.toFloatArray()};
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void shouldMatchTheUnsplitLinearWhenColumnParallelOverFusedQkvHeads(int tp) {
        TensorParallelSplit wSplit = new TensorParallelSplit(0, 3);
        float[] x = rnd(1, N * IN, 1);
        float[] w = rnd(2, HEADS_OUT * IN, 0.2);
        float[] b = rnd(3, HEADS_OUT, 0.1);
        float[] dy = rnd(4, N * HEADS_OUT, 0.1);
        float[][] full;
        try (CpuDevice dev = new CpuDevice(1)) {
            full = column(dev, TensorParallelGroup.single(), HEADS_OUT, wSplit, x, w, b, dy);
        }
        List<float[][]> parts = TensorParallelMembers.run(tp, (g, dev) -> column(dev, g, HEADS_OUT, wSplit, x, w, b,
            dy));
        int[] yShape = {N, HEADS_OUT};
        for (int k = 0; k < tp; k++) {
            String m = "column qkv tp=" + tp + " member " + k + ": ";
            assertClose(m + "output", slice(full[0], yShape, new TensorParallelSplit(1, 3), tp, k), parts.get(k)[0],
                REL);
            assertClose(m + "input grad", full[1], parts.get(k)[1], REL);
            assertClose(m + "weight grad", slice(full[2], new int[] {HEADS_OUT, IN}, wSplit, tp, k), parts.get(k)[2],
                REL);
            assertClose(m + "bias grad", slice(full[3], new int[] {HEADS_OUT}, new TensorParallelSplit(0, 3), tp, k),
                parts.get(k)[3], REL);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void shouldMatchTheUnsplitLinearWhenColumnParallelOverMlpWidth(int tp) {
        TensorParallelSplit wSplit = TensorParallelSplit.along(0);
        float[] x = rnd(5, N * IN, 1);
        float[] w = rnd(6, FFN * IN, 0.2);
        float[] b = rnd(7, FFN, 0.1);
        float[] dy = rnd(8, N * FFN, 0.1);
        float[][] full;
        try (CpuDevice dev = new CpuDevice(1)) {
            full = column(dev, TensorParallelGroup.single(), FFN, wSplit, x, w, b, dy);
        }
        List<float[][]> parts = TensorParallelMembers.run(tp, (g, dev) -> column(dev, g, FFN, wSplit, x, w, b, dy));
        for (int k = 0; k < tp; k++) {
            String m = "column fc tp=" + tp + " member " + k + ": ";
            assertClose(m + "output", slice(full[0], new int[] {N, FFN}, TensorParallelSplit.along(1), tp, k),
                parts.get(k)[0], REL);
            assertClose(m + "input grad", full[1], parts.get(k)[1], REL);
            assertClose(m + "weight grad", slice(full[2], new int[] {FFN, IN}, wSplit, tp, k), parts.get(k)[2], REL);
            assertClose(m + "bias grad", slice(full[3], new int[] {FFN}, wSplit, tp, k), parts.get(k)[3], REL);
        }
    }

    /** {Y, dX_i, dW_i, db}. */
    private static float[][] row(Device dev, TensorParallelGroup g, float[] x, float[] w, float[] b, float[] dy) {
        int tp = g.size();
        int k = g.index();
        TensorParallelSplit cols = TensorParallelSplit.along(1);
        Tensor wt = RandomTensors.tensor(dev, cols.shard(w, new int[] {IN, FFN}, tp, k), IN, FFN / tp);
        Tensor bt = RandomTensors.tensor(dev, b, IN);
        Tensor dW = dev.allocate(IN, FFN / tp);
        Tensor db = dev.allocate(IN);
        dev.fill(dW, 0f);
        dev.fill(db, 0f);
        RowParallelLinear layer = new RowParallelLinear(dev, g, FFN, IN, wt, bt, dW, db);
        Tensor xt = RandomTensors.tensor(dev, cols.shard(x, new int[] {N, FFN}, tp, k), N, FFN / tp);
        Tensor y = dev.allocate(N, IN);
        layer.forward(xt, y, N);
        Tensor dyt = RandomTensors.tensor(dev, dy, N, IN);
        Tensor dx = dev.allocate(N, FFN / tp);
        layer.backwardInput(dyt, dx, N);
        layer.backwardWeight(dyt, xt, N);
        return new float[][] {y.toFloatArray(), dx.toFloatArray(), dW.toFloatArray(), db.toFloatArray()};
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void shouldMatchTheUnsplitLinearWhenRowParallelWithTheBiasAddedOnce(int tp) {
        float[] x = rnd(9, N * FFN, 1);
        float[] w = rnd(10, IN * FFN, 0.2);
        float[] b = rnd(11, IN, 0.5);
        float[] dy = rnd(12, N * IN, 0.1);
        float[][] full;
        try (CpuDevice dev = new CpuDevice(1)) {
            full = row(dev, TensorParallelGroup.single(), x, w, b, dy);
        }
        List<float[][]> parts = TensorParallelMembers.run(tp, (g, dev) -> row(dev, g, x, w, b, dy));
        TensorParallelSplit cols = TensorParallelSplit.along(1);
        for (int k = 0; k < tp; k++) {
            String m = "row proj tp=" + tp + " member " + k + ": ";
            assertClose(m + "output", full[0], parts.get(k)[0], REL);
            assertClose(m + "input grad", cols.shard(full[1], new int[] {N, FFN}, tp, k), parts.get(k)[1], REL);
            assertClose(m + "weight grad", cols.shard(full[2], new int[] {IN, FFN}, tp, k), parts.get(k)[2], REL);
            assertClose(m + "bias grad (replicated)", full[3], parts.get(k)[3], REL);
        }
    }

    /** {out, dTable_i}. */
    private static float[][] embedding(Device dev, TensorParallelGroup g, float[] table, int[] ids, float[] dOut) {
        int tp = g.size();
        TensorParallelSplit rows = TensorParallelSplit.along(0);
        Tensor t = RandomTensors.tensor(dev, rows.shard(table, new int[] {VOCAB, IN}, tp, g.index()), VOCAB / tp, IN);
        Tensor dt = dev.allocate(VOCAB / tp, IN);
        dev.fill(dt, 0f);
        try (VocabParallelEmbedding e = new VocabParallelEmbedding(dev, g, VOCAB, IN, N, t, dt)) {
            Tensor idt = RandomTensors.intTensor(dev, ids, N);
            Tensor local = e.allocateLocalIds(N);
            Tensor out = dev.allocate(N, IN);
            e.forward(idt, local, out, N);
            e.backwardWeight(RandomTensors.tensor(dev, dOut, N, IN), idt, local, N);
            return new float[][] {out.toFloatArray(), dt.toFloatArray()};
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void shouldMatchTheUnsplitEmbeddingWhenTheVocabularyIsSplit(int tp) {
        float[] table = rnd(13, VOCAB * IN, 1);
        int[] ids = RandomTensors.ints(new Random(14), N, VOCAB);
        ids[0] = 0;
        ids[1] = VOCAB - 1;
        ids[2] = ids[3];              // a repeated id accumulates
        float[] dOut = rnd(15, N * IN, 0.1);
        float[][] full;
        try (CpuDevice dev = new CpuDevice(1)) {
            full = embedding(dev, TensorParallelGroup.single(), table, ids, dOut);
        }
        List<float[][]> parts = TensorParallelMembers.run(tp, (g, dev) -> embedding(dev, g, table, ids, dOut));
        for (int k = 0; k < tp; k++) {
            String m = "vocab embedding tp=" + tp + " member " + k + ": ";
            assertClose(m + "output", full[0], parts.get(k)[0], 0);
            assertClose(m + "table grad", TensorParallelSplit.along(0).shard(full[1], new int[] {VOCAB, IN}, tp, k),
                parts.get(k)[1], REL);
        }
    }

    /** LM head + loss: {losses, dX, dW_i}: logits = x @ W^T over a vocabulary-split W, then the parallel CE. */
    private static float[][] head(Device dev, TensorParallelGroup g, float[] x, float[] w, int[] targets) {
        int tp = g.size();
        int k = g.index();
        int vl = VOCAB / tp;
        Tensor wt = RandomTensors.tensor(dev, TensorParallelSplit.along(0).shard(w, new int[] {VOCAB, IN}, tp, k), vl,
            IN);
        Tensor dW = dev.allocate(vl, IN);
        dev.fill(dW, 0f);
        ColumnParallelLinear lmHead = new ColumnParallelLinear(dev, g, IN, VOCAB, wt, null, dW, null);
        try (VocabParallelCrossEntropy ce = new VocabParallelCrossEntropy(dev, g, VOCAB, N)) {
            Tensor xt = RandomTensors.tensor(dev, x, N, IN);
            Tensor tt = RandomTensors.intTensor(dev, targets, N);
            Tensor logits = dev.allocate(N, vl);
            Tensor probs = dev.allocate(N, vl);
            Tensor losses = dev.allocate(N);
            lmHead.forward(xt, logits, N);
            ce.forward(logits, tt, probs, losses, N);
            ce.backward(logits, probs, tt, 1f / N, N);
            Tensor dx = dev.allocate(N, IN);
            lmHead.backwardInput(logits, dx, N);
            lmHead.backwardWeight(logits, xt, N);
            return new float[][] {losses.toFloatArray(), dx.toFloatArray(), dW.toFloatArray()};
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void shouldMatchTheFullSoftmaxCrossEntropyWithoutGatheringTheLogits(int tp) {
        float[] x = rnd(16, N * IN, 1);
        float[] w = rnd(17, VOCAB * IN, 0.5);
        int[] targets = RandomTensors.ints(new Random(18), N, VOCAB);
        targets[0] = 0;
        targets[1] = VOCAB - 1;
        float[][] full;
        try (CpuDevice dev = new CpuDevice(1)) {
            full = head(dev, TensorParallelGroup.single(), x, w, targets);
        }
        List<float[][]> parts = TensorParallelMembers.run(tp, (g, dev) -> head(dev, g, x, w, targets));
        for (int k = 0; k < tp; k++) {
            String m = "vocab-parallel CE tp=" + tp + " member " + k + ": ";
            assertClose(m + "per-token loss", full[0], parts.get(k)[0], REL);
            assertClose(m + "input grad", full[1], parts.get(k)[1], REL);
            assertClose(m + "lm_head grad", TensorParallelSplit.along(0).shard(full[2], new int[] {VOCAB, IN}, tp, k),
                parts.get(k)[2], REL);
        }
    }
}
