package io.troupe.models.gpt;

import io.troupe.models.parallel.tp.SequenceParallel;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.models.parallel.tp.VocabParallelCrossEntropy;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;

/**
 * The forward pass of a {@link Gpt} stage into a slot's activations: the token and position embeddings
 * (first stage) or the stage's input, the blocks in order, and on the last stage ln_f, the
 * vocabulary-parallel lm_head and the mean cross-entropy, kept as the slot's loss. It holds no tensors of
 * its own: everything it writes lives in the slot. The token embedding and lm_head hold gradient views,
 * so they are read from the stage at each call (they are rebuilt when the gradients move into an arena).
 */
final class GptForward {
    private final Gpt stage;
    private final GptConfig cfg;
    private final Device dev;
    private final TensorParallelGroup tp;
    private final SequenceParallel sp;
    private final int rows;
    private final int residualRows;
    private final int blocks;
    private final boolean first;
    private final boolean last;
    private final GptBlock[] w;
    private final Tensor wpe;
    private final Tensor lnfW;
    private final Tensor lnfB;
    private final VocabParallelCrossEntropy ce;

    GptForward(Gpt stage, SequenceParallel sp, int residualRows, GptBlock[] w, Tensor wpe, Tensor lnfW,
               Tensor lnfB, VocabParallelCrossEntropy ce) {
        this.stage = stage;
        this.cfg = stage.config();
        this.dev = stage.device();
        this.tp = stage.tensorParallelGroup();
        this.sp = sp;
        this.rows = stage.rows();
        this.residualRows = residualRows;
        this.blocks = w.length;
        this.first = stage.isFirst();
        this.last = stage.isLast();
        this.w = w;
        this.wpe = wpe;
        this.lnfW = lnfW;
        this.lnfB = lnfB;
        this.ce = ce;
    }

    /** See {@link Gpt#forwardTokens}. */
    Tensor forwardTokens(GptActivations a, int[] x, int[] y) {
        Tensor ids = null;
        if (first) {
            dev.copyFromHost(x, a.ids);
            ids = a.ids;
        }
        if (last) {
            dev.copyFromHost(y, a.targets);
        }
        return forward(a, ids, last ? a.targets : null);
    }

    /** See {@link Gpt#forwardActivations}. */
    Tensor forwardActivations(GptActivations a, Tensor input, int[] y) {
        if (last) {
            dev.copyFromHost(y, a.targets);
        }
        return forward(a, input, last ? a.targets : null);
    }

    /** See {@link Gpt#forward}: the forward of slot {@code a}. */
    Tensor forward(GptActivations a, Tensor input, Tensor targets) {
        final int t = cfg.seqLen();
        final int c = cfg.dModel();
        final int heads = cfg.nHead() / tp.size();
        final int bt = rows * t;
        final int nr = residualRows;      // tokens of the residual stream this member holds: B·T, or B·T/tp
        if (first) {
            if (input != a.ids) {
                dev.copy(input, a.ids);
            }
            if (!a.positionsReady) {
                int firstToken = sp == null ? 0 : sp.firstToken(bt);
                int[] pos = new int[nr];
                for (int i = 0; i < nr; i++) {
                    pos[i] = (firstToken + i) % t;
                }
                dev.copyFromHost(pos, a.posIds);
                a.positionsReady = true;
            }
            stage.tokEmb.forward(a.ids, a.localIds, a.residualIn, bt);                          // (nr, C)
            dev.embedding(a.residualIn, a.posIds, wpe, nr, c, true);                           // += pos
        } else {
            dev.copy(input, a.residualIn);
        }
        Tensor h = a.residualIn;
        for (int l = 0; l < blocks; l++) {
            w[l].forward(a.block(l), h, true);
            h = a.residual3[l];
        }
        a.forwardDone = true;
        if (!last) {
            return h;
        }
        if (targets != a.targets) {
            dev.copy(targets, a.targets);
        }
        dev.layerNorm(h, lnfW, lnfB, a.lnf, a.lnfMean, a.lnfRstd, nr, c, cfg.lnEps());
        stage.lmHead.forward(a.lnf, a.logits, bt);                                              // (B, T, V/tp)
        ce.forward(a.logits, a.targets, a.probs, a.losses, bt);
        float[] losses = a.losses.toFloatArray();
        double sum = 0;
        for (float x : losses) {
            sum += x;
        }
        a.loss = sum / bt;
        return null;
    }
}
