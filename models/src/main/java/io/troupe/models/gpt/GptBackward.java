package io.troupe.models.gpt;

import io.troupe.models.parallel.tp.PendingTensorParallelCollective;
import io.troupe.models.parallel.tp.SequenceParallel;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.models.parallel.tp.VocabParallelCrossEntropy;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.function.IntConsumer;

/**
 * The backward passes of a {@link Gpt} stage: the input gradient (B), the weight gradient (W),
 * both fused (with full recomputation, each block's W right after its B), and at tp > 1 the fused
 * pass that overlaps the column-parallel layers' input-gradient reductions with weight gradients;
 * each over the head (cross-entropy, lm_head, ln_f), the blocks from the last, and the embeddings,
 * reporting every parameter once its gradient is final. It owns the activation-gradient scratch
 * that all slots share (one backward at a time). The head's and embeddings' layers that hold
 * gradient views are read from the stage at each call, since they are rebuilt when the gradients
 * move into an arena.
 */
final class GptBackward implements AutoCloseable {
    /** Parameters per transformer block in {@link ParameterLayout} order. */
    private static final int PARAMS_PER_BLOCK = 12;

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
    private final Tensor lnfW;
    private final VocabParallelCrossEntropy ce;
    private final GptGradients gradients;
    private final GptRecompute recompute;
    /** The fused backward overlaps each column-parallel layer's input-gradient reduction with weight gradients. */
    private boolean tensorParallelOverlap = true;

    // Activation-gradient scratch shared by all slots (one backward at a time).
    private final Tensor dresidual;   // (B·T/sp, C)
    private final Tensor dln;         // (B·T/sp, C)
    private final Tensor datty;       // (B, T, C/tp)
    private final Tensor dfchGelu;    // (B, T, 4C/tp)
    private final Tensor gradInput;   // (B·T/sp, C)

    GptBackward(Gpt stage, SequenceParallel sp, int residualRows, GptBlock[] w, Tensor lnfW,
                VocabParallelCrossEntropy ce, GptGradients gradients, GptRecompute recompute) {
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
        this.lnfW = lnfW;
        this.ce = ce;
        this.gradients = gradients;
        this.recompute = recompute;
        int bt = rows * cfg.seqLen();
        int c = cfg.dModel();
        this.dresidual = dev.allocate(residualRows, c);
        this.dln = dev.allocate(residualRows, c);
        this.datty = dev.allocate(bt, c / tp.size());
        this.dfchGelu = dev.allocate(bt, 4 * c / tp.size());
        this.gradInput = dev.allocate(residualRows, c);
    }

    /** See {@link Gpt#overlapTensorParallel}. */
    void overlapTensorParallel(boolean on) {
        tensorParallelOverlap = on;
    }

    /** B of a slot whose forward is done: see {@link Gpt#backwardInput}. */
    Tensor backwardInput(GptActivations a, Tensor gradOutput, float lossScale) {
        headBackwardInput(a, gradOutput, lossScale);
        GptWeightInputs kept = null;
        if (recompute.sharedBlock() != null) {
            kept = recompute.takeWeightInputs();
            a.pendingWeightInputs = kept;
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Tensor hIn = l == 0 ? a.residualIn : a.residual3[l - 1];
            GptActivations.BlockTensors b = a.block(l);
            if (kept != null) {
                b = b.withWeightInputs(kept, l);
                w[l].forward(b, hIn, false);
            }
            blockBackwardInput(w[l], b, hIn);
        }
        a.weightPending = true;
        return stageInputGradient(a);
    }

    /** The start of B: dresidual from the head (last stage) or from {@code gradOutput}. */
    private void headBackwardInput(GptActivations a, Tensor gradOutput, float lossScale) {
        final int bt = rows * cfg.seqLen();
        if (last) {
            Tensor dlogits = a.logits;                                                         // reuse (B, T, V/tp)
            ce.backward(dlogits, a.probs, a.targets, lossScale, bt);
            stage.lmHead.backwardInput(dlogits, dln, bt);                                      // (nr, C)
            dev.fill(dresidual, 0f);
            Tensor h = blocks == 0 ? a.residualIn : a.residual3[blocks - 1];
            dev.layerNormBackward(dresidual, stage.dlnfW, stage.dlnfB, dln, h, lnfW, a.lnfMean, a.lnfRstd,
                residualRows, cfg.dModel());
        } else {
            dev.copy(gradOutput, dresidual);
        }
    }

    /** The end of B: the stage input's gradient (null on the first stage, which keeps it for the embeddings' W). */
    private Tensor stageInputGradient(GptActivations a) {
        if (first) {
            dev.copy(dresidual, a.dEmbedding);
            return null;
        }
        dev.copy(dresidual, gradInput);
        return gradInput;
    }

    /** One block's input gradient: dresidual (block output's gradient) becomes the block input's. */
    private void blockBackwardInput(GptBlock p, GptActivations.BlockTensors b, Tensor hIn) {
        final int t = cfg.seqLen();
        final int c = cfg.dModel();
        final int heads = cfg.nHead() / tp.size();
        final int bt = rows * t;
        final int nr = residualRows;
        // MLP: residual3 = residual2 + proj(gelu(fc(ln2(residual2))))
        dev.copy(dresidual, b.dFcProj());
        p.fcProj.backwardInput(dresidual, dfchGelu, bt);                                       // (B, T, 4C/tp)
        p.fc.backwardGelu(b.fch(), dfchGelu, b.dfch(), bt);                                   // and fc's bias grad
        p.fc.backwardInput(b.dfch(), dln, bt);                                                 // (nr, C)
        dev.layerNormBackward(dresidual, p.dln2W, p.dln2B, dln, b.residual2(), p.ln2W, b.ln2Mean(), b.ln2Rstd(), nr,
            c);
        // Attention: residual2 = h + proj(attn(qkv(ln1(h))))
        dev.copy(dresidual, b.dAttProj());
        p.proj.backwardInput(dresidual, datty, bt);                                            // (B, T, C/tp)
        if (recompute.sharedAtt() != null) {
            // Selective recomputation: the probabilities again from the kept qkv (atty comes out bitwise as kept).
            dev.attention(b.qkv(), b.atty(), recompute.sharedAtt(), rows, t, heads, cfg.headDim());
        }
        dev.attentionBackward(b.dqkv(), datty, b.qkv(), b.att(), rows, t, heads, cfg.headDim());
        p.qkv.backwardInput(b.dqkv(), dln, bt);                                                // (nr, C)
        dev.layerNormBackward(dresidual, p.dln1W, p.dln1B, dln, hIn, p.ln1W, b.ln1Mean(), b.ln1Rstd(), nr, c);
    }

    /**
     * Block {@code l}'s weight gradients from what its B left in {@code b}; reports each linear's
     * two parameters right after it (the LayerNorms', finished by B, in their place in the order).
     */
    private void blockBackwardWeight(int l, GptActivations.BlockTensors b, int firstBlockParam,
                                     IntConsumer parameterDone) {
        final int bt = rows * cfg.seqLen();
        final int base = firstBlockParam + PARAMS_PER_BLOCK * l;
        GptBlock p = w[l];
        gradients.linearWeight(p.fcProj, b.dFcProj(), b.fchGelu(), bt, base + 11, base + 10, parameterDone);
        gradients.done(parameterDone, base + 9);                                            // by backwardGelu
        gradients.linearWeight(p.fc, b.dfch(), b.ln2(), bt, -1, base + 8, parameterDone);
        gradients.done(parameterDone, base + 7);
        gradients.done(parameterDone, base + 6);
        gradients.linearWeight(p.proj, b.dAttProj(), b.atty(), bt, base + 5, base + 4, parameterDone);
        gradients.linearWeight(p.qkv, b.dqkv(), b.ln1(), bt, base + 3, base + 2, parameterDone);
        gradients.done(parameterDone, base + 1);
        gradients.done(parameterDone, base);
    }

    /**
     * B then W of a slot whose forward is done. Under full recomputation each block's weight
     * gradient runs right after its input gradient, while its recomputed tensors are in the
     * workspace; otherwise as the two calls.
     */
    Tensor backward(GptActivations a, Tensor gradOutput, float lossScale, IntConsumer parameterDone) {
        if (tensorParallelOverlap && tp.size() > 1) {
            return backwardOverlapped(a, gradOutput, lossScale, parameterDone);
        }
        if (recompute.sharedBlock() == null) {
            Tensor g = backwardInput(a, gradOutput, lossScale);
            backwardWeight(a, parameterDone);
            return g;
        }
        headBackwardInput(a, gradOutput, lossScale);
        int firstBlockParam = first ? 2 : 0;
        if (last) {
            headBackwardWeight(a, firstBlockParam, parameterDone);
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Tensor hIn = l == 0 ? a.residualIn : a.residual3[l - 1];
            GptActivations.BlockTensors b = a.block(l);
            w[l].forward(b, hIn, false);
            blockBackwardInput(w[l], b, hIn);
            blockBackwardWeight(l, b, firstBlockParam, parameterDone);
        }
        Tensor g = stageInputGradient(a);
        if (first) {
            embeddingBackwardWeight(a, parameterDone);
        }
        a.forwardDone = false;
        return g;
    }

    /**
     * The fused backward at tp > 1, block by block: each column-parallel layer's input gradient
     * (lm_head, fc, qkv) is reduced over the tp group while this member computes the weight
     * gradients that do not read it (that layer's and, without sequence parallelism, the row-parallel
     * layer's before it); the wait comes where the reduced gradient is consumed, the LayerNorm
     * backward. Every operation is the one of B then W on the same inputs, and each gradient is
     * accumulated once per micro-batch, so the result is bitwise B then W; parameters are reported
     * in the same order, each once final.
     */
    private Tensor backwardOverlapped(GptActivations a, Tensor gradOutput, float lossScale,
                                      IntConsumer parameterDone) {
        final int bt = rows * cfg.seqLen();
        final int firstBlockParam = first ? 2 : 0;
        if (last) {
            Tensor dlogits = a.logits;                                                         // reuse (B, T, V/tp)
            ce.backward(dlogits, a.probs, a.targets, lossScale, bt);
            PendingTensorParallelCollective reduce = stage.lmHead.backwardInputAsync(dlogits, a.lnf, dln, bt);
            stage.lmHead.backwardWeightInFlight(dlogits, a.lnf, bt, true);                    // (V/tp, C)
            reduce.await();
            dev.fill(dresidual, 0f);
            Tensor h = blocks == 0 ? a.residualIn : a.residual3[blocks - 1];
            dev.layerNormBackward(dresidual, stage.dlnfW, stage.dlnfB, dln, h, lnfW, a.lnfMean, a.lnfRstd,
                residualRows, cfg.dModel());
            int head = firstBlockParam + PARAMS_PER_BLOCK * blocks;
            for (int i = head + 2; i >= head; i--) {
                parameterDone.accept(i);
            }
        } else {
            dev.copy(gradOutput, dresidual);
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Tensor hIn = l == 0 ? a.residualIn : a.residual3[l - 1];
            GptActivations.BlockTensors b = a.block(l);
            if (recompute.sharedBlock() != null) {
                w[l].forward(b, hIn, false);
            }
            blockBackwardOverlapped(l, b, hIn, firstBlockParam, parameterDone);
        }
        Tensor g = stageInputGradient(a);
        if (first) {
            embeddingBackwardWeight(a, parameterDone);
        }
        a.forwardDone = false;
        return g;
    }

    /**
     * {@link #blockBackwardInput} and {@link #blockBackwardWeight} of block {@code l} in one pass,
     * weight gradients computed while the column-parallel layers' input gradients are reduced. Under
     * sequence parallelism a row-parallel weight gradient gathers its output gradient (a collective of
     * its own), so it waits until the reduction is in.
     */
    private void blockBackwardOverlapped(int l, GptActivations.BlockTensors b, Tensor hIn, int firstBlockParam,
                                         IntConsumer parameterDone) {
        final int t = cfg.seqLen();
        final int c = cfg.dModel();
        final int heads = cfg.nHead() / tp.size();
        final int bt = rows * t;
        final int nr = residualRows;
        final int base = firstBlockParam + PARAMS_PER_BLOCK * l;
        final boolean rowWeightInFlight = sp == null;
        GptBlock p = w[l];
        // MLP: residual3 = residual2 + proj(gelu(fc(ln2(residual2))))
        dev.copy(dresidual, b.dFcProj());
        p.fcProj.backwardInput(dresidual, dfchGelu, bt);                                       // (B, T, 4C/tp)
        p.fc.backwardGelu(b.fch(), dfchGelu, b.dfch(), bt);                                   // and fc's bias grad
        PendingTensorParallelCollective reduce = p.fc.backwardInputAsync(b.dfch(), b.ln2(), dln, bt);   // (nr, C)
        if (rowWeightInFlight) {
            p.fcProj.backwardWeight(b.dFcProj(), b.fchGelu(), bt);
        }
        p.fc.backwardWeightInFlight(b.dfch(), b.ln2(), bt, false);                            // bias: backwardGelu
        reduce.await();
        if (!rowWeightInFlight) {
            p.fcProj.backwardWeight(b.dFcProj(), b.fchGelu(), bt);
        }
        dev.layerNormBackward(dresidual, p.dln2W, p.dln2B, dln, b.residual2(), p.ln2W, b.ln2Mean(), b.ln2Rstd(), nr,
            c);
        for (int i = base + 11; i >= base + 6; i--) {
            parameterDone.accept(i);
        }
        // Attention: residual2 = h + proj(attn(qkv(ln1(h))))
        dev.copy(dresidual, b.dAttProj());
        p.proj.backwardInput(dresidual, datty, bt);                                            // (B, T, C/tp)
        if (recompute.sharedAtt() != null) {
            dev.attention(b.qkv(), b.atty(), recompute.sharedAtt(), rows, t, heads, cfg.headDim());
        }
        dev.attentionBackward(b.dqkv(), datty, b.qkv(), b.att(), rows, t, heads, cfg.headDim());
        reduce = p.qkv.backwardInputAsync(b.dqkv(), b.ln1(), dln, bt);                         // (nr, C)
        if (rowWeightInFlight) {
            p.proj.backwardWeight(b.dAttProj(), b.atty(), bt);
        }
        p.qkv.backwardWeightInFlight(b.dqkv(), b.ln1(), bt, true);
        reduce.await();
        if (!rowWeightInFlight) {
            p.proj.backwardWeight(b.dAttProj(), b.atty(), bt);
        }
        dev.layerNormBackward(dresidual, p.dln1W, p.dln1B, dln, hIn, p.ln1W, b.ln1Mean(), b.ln1Rstd(), nr, c);
        for (int i = base + 5; i >= base; i--) {
            parameterDone.accept(i);
        }
    }

    /**
     * W of a slot whose B is done. Reports the head's parameters after the head gradient, each
     * linear's weight and bias right after its weight gradient (a block's LayerNorms, finished by
     * the input backward, in their place in reverse order), and the embeddings last.
     */
    void backwardWeight(GptActivations a, IntConsumer parameterDone) {
        int firstBlockParam = first ? 2 : 0;
        if (last) {
            headBackwardWeight(a, firstBlockParam, parameterDone);
        }
        GptWeightInputs kept = a.pendingWeightInputs;
        for (int l = blocks - 1; l >= 0; l--) {
            GptActivations.BlockTensors b = a.block(l);
            blockBackwardWeight(l, kept == null ? b : b.withWeightInputs(kept, l), firstBlockParam, parameterDone);
        }
        if (kept != null) {
            a.pendingWeightInputs = null;
            recompute.giveBack(kept);
        }
        if (first) {
            embeddingBackwardWeight(a, parameterDone);
        }
        a.weightPending = false;
        a.forwardDone = false;
    }

    private void headBackwardWeight(GptActivations a, int firstBlockParam, IntConsumer parameterDone) {
        int head = firstBlockParam + PARAMS_PER_BLOCK * blocks;
        gradients.linearWeight(stage.lmHead, a.logits, a.lnf, rows * cfg.seqLen(), -1, head + 2,
            parameterDone);                                                                    // (V/tp, C)
        gradients.done(parameterDone, head + 1);
        gradients.done(parameterDone, head);
    }

    private void embeddingBackwardWeight(GptActivations a, IntConsumer parameterDone) {
        // Position first: each reported before the next is written (W's order is reverse parameter order).
        dev.embeddingBackward(stage.dwpe, a.dEmbedding, a.posIds, residualRows, cfg.dModel());
        gradients.done(parameterDone, 1);
        stage.tokEmb.backwardWeight(a.dEmbedding, a.ids, a.localIds, rows * cfg.seqLen());
        gradients.done(parameterDone, 0);
    }

    @Override
    public void close() {
        for (Tensor x : new Tensor[] {dresidual, dln, datty, dfchGelu, gradInput}) {
            x.close();
        }
    }
}
