package io.troupe.models.gpt;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * Everything one micro-batch keeps between its forward and its backward on one stage, plus the
 * output-side gradients the deferred weight-gradient pass (W) needs. Legend: B rows, T positions,
 * C width, NH heads, V vocabulary, L blocks on this stage; "/tp" marks a tensor-parallel member's
 * part of a width (tp = 1: the whole). The residual stream (LayerNorm inputs and outputs,
 * residual sums, their gradients) has {@code residualRows} token rows: B·T, or B·T/tp under
 * sequence parallelism.
 */
final class GptActivations implements AutoCloseable {
    final Tensor ids;          // (B, T) I32, first stage
    final Tensor localIds;     // (B, T) I32, first stage: ids as rows of this member's vocabulary shard
    final Tensor posIds;       // (B, T) I32, first stage
    final Tensor targets;      // (B, T) I32, last stage
    final Tensor residualIn;   // (B, T, C) stage input (embedding output on the first stage)
    final Tensor[] ln1;        // (B, T, C) per block
    final Tensor[] ln1Mean;    // (B, T)
    final Tensor[] ln1Rstd;    // (B, T)
    final Tensor[] qkv;        // (B, T, 3C/tp)
    final Tensor[] att;        // (B, NH/tp, T, T)
    final Tensor[] atty;       // (B, T, C/tp)
    final Tensor[] residual2;  // (B, T, C) after attention
    final Tensor[] ln2;
    final Tensor[] ln2Mean;
    final Tensor[] ln2Rstd;
    final Tensor[] fch;        // (B, T, 4C/tp) before GELU
    final Tensor[] fchGelu;    // (B, T, 4C/tp)
    final Tensor[] residual3;  // (B, T, C) block output
    final Tensor lnf;          // (B, T, C) last stage
    final Tensor lnfMean;
    final Tensor lnfRstd;
    final Tensor logits;       // (B, T, V/tp) last stage; holds dlogits after B
    final Tensor probs;        // (B, T, V/tp)
    final Tensor losses;       // (B, T)

    // Output-side gradients kept from B for W.
    final Tensor[] dqkv;       // (B, T, 3C/tp)
    final Tensor[] dAttProj;   // (B, T, C)
    final Tensor[] dfch;       // (B, T, 4C/tp)
    final Tensor[] dFcProj;    // (B, T, C)
    final Tensor dEmbedding;   // (B, T, C) first stage

    boolean positionsReady;
    boolean forwardDone;
    boolean weightPending;
    double loss;

    private final List<Tensor> owned = new ArrayList<>();

    GptActivations(Device dev, GptConfig cfg, int tp, int residualRows, int rows, int blocks, boolean first,
                   boolean last) {
        int t = cfg.seqLen();
        int c = cfg.dModel();
        int bt = rows * t;
        int nr = residualRows;
        int heads = cfg.nHead() / tp;
        int vocab = cfg.vocabSize() / tp;
        ids = first ? own(dev.allocate(DType.I32, bt)) : null;
        localIds = first ? own(dev.allocate(DType.I32, bt)) : null;
        posIds = first ? own(dev.allocate(DType.I32, nr)) : null;
        targets = last ? own(dev.allocate(DType.I32, bt)) : null;
        residualIn = own(dev.allocate(nr, c));
        ln1 = new Tensor[blocks];
        ln1Mean = new Tensor[blocks];
        ln1Rstd = new Tensor[blocks];
        qkv = new Tensor[blocks];
        att = new Tensor[blocks];
        atty = new Tensor[blocks];
        residual2 = new Tensor[blocks];
        ln2 = new Tensor[blocks];
        ln2Mean = new Tensor[blocks];
        ln2Rstd = new Tensor[blocks];
        fch = new Tensor[blocks];
        fchGelu = new Tensor[blocks];
        residual3 = new Tensor[blocks];
        dqkv = new Tensor[blocks];
        dAttProj = new Tensor[blocks];
        dfch = new Tensor[blocks];
        dFcProj = new Tensor[blocks];
        for (int l = 0; l < blocks; l++) {
            ln1[l] = own(dev.allocate(nr, c));
            ln1Mean[l] = own(dev.allocate(nr));
            ln1Rstd[l] = own(dev.allocate(nr));
            qkv[l] = own(dev.allocate(bt, 3 * c / tp));
            att[l] = own(dev.allocate(rows, heads, t, t));
            atty[l] = own(dev.allocate(bt, c / tp));
            residual2[l] = own(dev.allocate(nr, c));
            ln2[l] = own(dev.allocate(nr, c));
            ln2Mean[l] = own(dev.allocate(nr));
            ln2Rstd[l] = own(dev.allocate(nr));
            fch[l] = own(dev.allocate(bt, 4 * c / tp));
            fchGelu[l] = own(dev.allocate(bt, 4 * c / tp));
            residual3[l] = own(dev.allocate(nr, c));
            dqkv[l] = own(dev.allocate(bt, 3 * c / tp));
            dAttProj[l] = own(dev.allocate(nr, c));
            dfch[l] = own(dev.allocate(bt, 4 * c / tp));
            dFcProj[l] = own(dev.allocate(nr, c));
        }
        lnf = last ? own(dev.allocate(nr, c)) : null;
        lnfMean = last ? own(dev.allocate(nr)) : null;
        lnfRstd = last ? own(dev.allocate(nr)) : null;
        logits = last ? own(dev.allocate(bt, vocab)) : null;
        probs = last ? own(dev.allocate(bt, vocab)) : null;
        losses = last ? own(dev.allocate(bt)) : null;
        dEmbedding = first ? own(dev.allocate(nr, c)) : null;
    }

    private Tensor own(Tensor t) {
        owned.add(t);
        return t;
    }

    /** The stage's output activations: the last block's output, or the input when the stage has no blocks. */
    Tensor output() {
        return residual3.length == 0 ? residualIn : residual3[residual3.length - 1];
    }

    @Override
    public void close() {
        for (Tensor t : owned) {
            t.close();
        }
        owned.clear();
    }
}
