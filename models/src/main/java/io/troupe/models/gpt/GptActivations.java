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

    /** One block's tensors of a slot: what its forward writes and its backward reads and writes. */
    record BlockTensors(Tensor ln1, Tensor ln1Mean, Tensor ln1Rstd, Tensor qkv, Tensor att, Tensor atty,
                        Tensor residual2, Tensor ln2, Tensor ln2Mean, Tensor ln2Rstd, Tensor fch, Tensor fchGelu,
                        Tensor residual3, Tensor dqkv, Tensor dAttProj, Tensor dfch, Tensor dFcProj) {
        /** These tensors with what the weight-gradient pass reads taken from {@code w}'s block {@code l}. */
        BlockTensors withWeightInputs(GptWeightInputs w, int l) {
            return new BlockTensors(w.ln1[l], ln1Mean, ln1Rstd, qkv, att, w.atty[l], residual2, w.ln2[l], ln2Mean,
                ln2Rstd, fch, w.fchGelu[l], residual3, w.dqkv[l], w.dAttProj[l], w.dfch[l], w.dFcProj[l]);
        }
    }

    /** Full recomputation, B split from W: what this slot's W reads, kept from its B (from the stage's pool). */
    GptWeightInputs pendingWeightInputs;

    /**
     * @param sharedAtt   when not null, every block's attention probabilities live in this one tensor
     *                    (selective recomputation: backward recomputes them from {@code qkv})
     * @param sharedBlock when not null (full recomputation), every block's tensors but its output
     *                    {@code residual3} are this one-block workspace's: the slot keeps only the
     *                    stage input and each block's output, and backward recomputes each block
     */
    GptActivations(Device dev, GptConfig cfg, int tp, int residualRows, int rows, int blocks, boolean first,
                   boolean last, Tensor sharedAtt, GptActivations sharedBlock) {
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
            if (sharedBlock != null) {
                aliasBlock(l, sharedBlock);
                residual3[l] = own(dev.allocate(nr, c));
                continue;
            }
            ln1[l] = own(dev.allocate(nr, c));
            ln1Mean[l] = own(dev.allocate(nr));
            ln1Rstd[l] = own(dev.allocate(nr));
            qkv[l] = own(dev.allocate(bt, 3 * c / tp));
            att[l] = sharedAtt != null ? sharedAtt : own(dev.allocate(rows, heads, t, t));
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

    private void aliasBlock(int l, GptActivations s) {
        ln1[l] = s.ln1[0];
        ln1Mean[l] = s.ln1Mean[0];
        ln1Rstd[l] = s.ln1Rstd[0];
        qkv[l] = s.qkv[0];
        att[l] = s.att[0];
        atty[l] = s.atty[0];
        residual2[l] = s.residual2[0];
        ln2[l] = s.ln2[0];
        ln2Mean[l] = s.ln2Mean[0];
        ln2Rstd[l] = s.ln2Rstd[0];
        fch[l] = s.fch[0];
        fchGelu[l] = s.fchGelu[0];
        dqkv[l] = s.dqkv[0];
        dAttProj[l] = s.dAttProj[0];
        dfch[l] = s.dfch[0];
        dFcProj[l] = s.dFcProj[0];
    }

    /** Block {@code l}'s tensors. */
    BlockTensors block(int l) {
        return new BlockTensors(ln1[l], ln1Mean[l], ln1Rstd[l], qkv[l], att[l], atty[l], residual2[l], ln2[l],
            ln2Mean[l], ln2Rstd[l], fch[l], fchGelu[l], residual3[l], dqkv[l], dAttProj[l], dfch[l], dFcProj[l]);
    }

    private Tensor own(Tensor t) {
        owned.add(t);
        return t;
    }

    /** Bytes of every tensor this slot holds. */
    long bytes() {
        long b = 0;
        for (Tensor t : owned) {
            b += t.numel() * t.dtype().sizeBytes();
        }
        return b;
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
