package io.troupe.models.parallel.tp;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;

/**
 * Mean-free per-token cross-entropy over logits split by vocabulary: member i holds columns
 * {@code [i·V/tp, (i+1)·V/tp)} of the {@code (N, V)} logits and the full logits are never gathered.
 * Per token, with z the logits and y the target:
 * <pre>
 *   m = max over members of (max_j z_j)                       all-reduce MAX of N floats
 *   S = sum over members of sum_j exp(z_j - m)                all-reduce SUM of 2N floats,
 *   z_y - m from the member that owns y (others add 0)        together with S
 *   loss = log S - (z_y - m);  softmax_j = exp(z_j - m) / S   (kept in probs for backward)
 * </pre>
 * Backward needs no communication: {@code dz_j = scale·(softmax_j - [j = y])} on the member owning
 * column j. With tp = 1 the device's own fused kernel runs instead.
 *
 * <p>At tp > 1 the per-token arithmetic runs on the host (float exponentials, double row sums, as the
 * CPU kernel does): it is the simple reference form, and costs a transfer of the local logits.
 * Threading: the member's device executor.
 */
public final class VocabParallelCrossEntropy implements AutoCloseable {
    private final Device dev;
    private final TensorParallelGroup group;
    private final int vocabLocal;
    private final int vocabStart;
    private final HostIds hostIds;
    private final Tensor maxes;   // (N)
    private final Tensor sums;    // (2N): sum-exp, then the target logit

    /**
     * @param vocab   the global vocabulary V; must divide by tp
     * @param maxRows the most tokens one call handles
     */
    public VocabParallelCrossEntropy(Device dev, TensorParallelGroup group, int vocab, int maxRows) {
        this.dev = dev;
        this.group = group;
        this.vocabLocal = TensorParallelChecks.divide("vocabulary", vocab, group.size());
        this.vocabStart = group.index() * vocabLocal;
        boolean split = group.size() > 1;
        this.hostIds = split ? new HostIds(dev, vocab, maxRows) : null;
        this.maxes = split ? dev.allocate(maxRows) : null;
        this.sums = split ? dev.allocate(2 * maxRows) : null;
    }

    /** This member's vocabulary columns, V/tp. */
    public int vocabLocal() {
        return vocabLocal;
    }

    /**
     * @param logits  {@code (N, V/tp)} this member's columns
     * @param targets {@code (N)} I32 global target ids
     * @param probs   {@code (N, V/tp)} receives this member's columns of the softmax
     * @param losses  {@code (N)} receives the per-token loss (the same on every member)
     */
    public void forward(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int rows) {
        if (group.size() == 1) {
            dev.crossEntropy(logits, targets, probs, losses, rows, vocabLocal);
            return;
        }
        final int v = vocabLocal;
        int[] y = hostIds.read(targets, rows);
        float[] z = logits.view(0, rows * v).toFloatArray();
        float[] m = new float[rows];
        for (int r = 0; r < rows; r++) {
            float mx = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < v; j++) {
                mx = Math.max(mx, z[r * v + j]);
            }
            m[r] = mx;
        }
        Tensor mt = maxes.view(0, rows);
        dev.copyFromHost(m, mt);
        group.allReduceMax(mt);
        m = mt.toFloatArray();
        float[] s = new float[2 * rows];
        float[] e = new float[rows * v];
        for (int r = 0; r < rows; r++) {
            double sum = 0;
            for (int j = 0; j < v; j++) {
                float ex = (float) Math.exp(z[r * v + j] - m[r]);
                e[r * v + j] = ex;
                sum += ex;
            }
            s[r] = (float) sum;
            int local = y[r] - vocabStart;
            s[rows + r] = local >= 0 && local < v ? z[r * v + local] - m[r] : 0f;
        }
        Tensor st = sums.view(0, 2 * rows);
        dev.copyFromHost(s, st);
        group.allReduceSum(st);
        s = st.toFloatArray();
        float[] loss = new float[rows];
        for (int r = 0; r < rows; r++) {
            double total = s[r];
            loss[r] = (float) (Math.log(total) - s[rows + r]);
            float inv = (float) (1.0 / total);
            for (int j = 0; j < v; j++) {
                e[r * v + j] *= inv;
            }
        }
        dev.copyFromHost(e, probs.view(0, rows * v));
        dev.copyFromHost(loss, losses.view(0, rows));
    }

    /** {@code dlogits (N, V/tp) = scale · (probs - onehot(targets))} on this member's columns. */
    public void backward(Tensor dlogits, Tensor probs, Tensor targets, float scale, int rows) {
        if (group.size() == 1) {
            dev.crossEntropyBackward(dlogits, probs, targets, scale, rows, vocabLocal);
            return;
        }
        final int v = vocabLocal;
        int[] y = hostIds.read(targets, rows);
        float[] p = probs.view(0, rows * v).toFloatArray();
        for (int r = 0; r < rows; r++) {
            int local = y[r] - vocabStart;
            for (int j = 0; j < v; j++) {
                float g = p[r * v + j] - (j == local ? 1f : 0f);
                p[r * v + j] = g * scale;
            }
        }
        dev.copyFromHost(p, dlogits.view(0, rows * v));
    }

    @Override
    public void close() {
        if (hostIds != null) {
            hostIds.close();
            maxes.close();
            sums.close();
        }
    }
}
