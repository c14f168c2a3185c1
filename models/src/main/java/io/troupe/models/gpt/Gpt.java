package io.troupe.models.gpt;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.data.Lcg;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.models.parallel.tp.ColumnParallelLinear;
import io.troupe.models.parallel.tp.RowParallelLinear;
import io.troupe.models.parallel.tp.SequenceParallel;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.models.parallel.tp.VocabParallelCrossEntropy;
import io.troupe.models.parallel.tp.VocabParallelEmbedding;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.HashMap;
import java.util.Map;

/**
 * GPT-2 style decoder, nanoGPT order, as one pipeline stage holding blocks [firstBlock, endBlock)
 * and, on the first stage, the token and position embeddings; on the last, ln_f, the untied
 * lm_head (no bias) and the mean cross-entropy. The single-device model is {@link #whole}.
 *
 * <pre>
 * Legend: B rows of a micro-batch, T positions, C = d_model, NH heads, hd = C/NH, V vocabulary;
 *         a trailing "/tp" marks the width one tensor-parallel member holds (tp = 1: the whole).
 *   h = tok_emb[x] + pos_emb[t]                      (B, T, C)       first stage
 *   per block: h += attn(ln1(h)); h += mlp(ln2(h))   (B, T, C)
 *     attn: qkv (column-parallel by heads) -> causal attention over NH/tp heads -> proj (row-parallel)
 *     mlp:  fc (column-parallel) -> GELU -> proj (row-parallel)
 *   logits = ln_f(h) @ lm_head^T                     (B, T, V/tp)    last stage, vocabulary-parallel
 *   loss = mean CE(logits, y)                        (the parallel CE never gathers the logits)
 * </pre>
 *
 * Parameters live in one flat buffer with named views ({@link ParameterLayout}); gradients
 * likewise, so they reduce as flat buckets. The model never knows whether it is split: the parallel
 * layers hold their member's shard and do their own communication.
 */
public final class Gpt implements StageModule {
    private final GptConfig cfg;
    private final Device dev;
    private final TensorParallelGroup tp;
    private final SequenceParallel sp;
    private final int rows;
    private final int residualRows;
    private final int firstBlock;
    private final int blocks;
    private final boolean first;
    private final boolean last;
    private final ParameterLayout layout;
    private final Tensor params;
    private final Tensor grads;
    private final Map<Integer, GptActivations> slots = new HashMap<>();
    /** Selective recomputation: one (B, NH/tp, T, T) tensor for every slot's and block's attention probabilities. */
    private Tensor sharedAtt;

    // Layers over named views into params / grads.
    private final VocabParallelEmbedding tokEmb;
    private final Tensor wpe;
    private final Tensor dwpe;
    private final Block[] w;
    private final Tensor lnfW;
    private final Tensor lnfB;
    private final Tensor dlnfW;
    private final Tensor dlnfB;
    private final ColumnParallelLinear lmHead;
    private final VocabParallelCrossEntropy ce;

    // Activation-gradient scratch shared by all slots (one backward at a time).
    private final Tensor dresidual;   // (B·T/sp, C)
    private final Tensor dln;         // (B·T/sp, C)
    private final Tensor datty;       // (B, T, C/tp)
    private final Tensor dfchGelu;    // (B, T, 4C/tp)
    private final Tensor gradInput;   // (B·T/sp, C)

    /** One block: its LayerNorm views (params, grads) and its four parallel linears. */
    private record Block(Tensor ln1W, Tensor ln1B, Tensor dln1W, Tensor dln1B, ColumnParallelLinear qkv,
                         RowParallelLinear proj, Tensor ln2W, Tensor ln2B, Tensor dln2W, Tensor dln2B,
                         ColumnParallelLinear fc, RowParallelLinear fcProj) {
    }

    /**
     * @param rows micro-batch rows B this stage is sized for
     */
    public Gpt(GptConfig cfg, Device dev, int rows, int firstBlock, int endBlock, boolean first, boolean last) {
        this(cfg, dev, TensorParallelGroup.single(), rows, firstBlock, endBlock, first, last);
    }

    /**
     * A stage as member {@code tp.index()} of a tensor-parallel group: it holds that member's shard
     * of every split parameter and a copy of every replicated one ({@link GptPlacements}).
     *
     * @throws IllegalArgumentException when heads, vocabulary or MLP width do not divide by tp
     */
    public Gpt(GptConfig cfg, Device dev, TensorParallelGroup tp, int rows, int firstBlock, int endBlock, boolean first,
               boolean last) {
        this(cfg, dev, tp, false, rows, firstBlock, endBlock, first, last);
    }

    /**
     * A tensor-parallel member that, with {@code sequenceParallel} and tp > 1, also splits the
     * residual stream (LayerNorms, residual adds, row-parallel biases, embeddings, the activations
     * sent between stages) by tokens: member k holds tokens [k·N/tp, (k+1)·N/tp) of the N = B·T.
     * Its replicated parameters then get partial gradients
     * ({@link io.troupe.models.parallel.tp.TensorParallelGradients#reducePartialGradients}).
     *
     * @throws IllegalArgumentException when heads, vocabulary, MLP width or B·T do not divide by tp
     */
    public Gpt(GptConfig cfg, Device dev, TensorParallelGroup tp, boolean sequenceParallel, int rows, int firstBlock,
               int endBlock, boolean first, boolean last) {
        if (firstBlock < 0 || endBlock > cfg.nLayer() || firstBlock > endBlock) {
            throw new IllegalArgumentException("bad block range [" + firstBlock + ", " + endBlock + ") for n_layer="
                + cfg.nLayer());
        }
        if (rows < 1) {
            throw new IllegalArgumentException("micro-batch rows must be >= 1: rows=" + rows);
        }
        this.cfg = cfg;
        this.dev = dev;
        this.tp = tp;
        this.rows = rows;
        this.firstBlock = firstBlock;
        this.blocks = endBlock - firstBlock;
        this.first = first;
        this.last = last;
        this.layout = ParameterLayout.stage(cfg, firstBlock, endBlock, first, last, tp.size());
        this.params = dev.allocate((int) layout.numel());
        this.grads = dev.allocate((int) layout.numel());
        int bt = rows * cfg.seqLen();
        int c = cfg.dModel();
        int v = cfg.vocabSize();
        this.sp = sequenceParallel && tp.size() > 1 ? new SequenceParallel(dev, tp, bt, c) : null;
        this.residualRows = sp == null ? bt : sp.localTokens(bt);
        this.tokEmb = first ? new VocabParallelEmbedding(dev, tp, v, c, bt, view(params, "tok_emb.weight"),
            view(grads, "tok_emb.weight"), sp) : null;
        this.wpe = first ? view(params, "pos_emb.weight") : null;
        this.dwpe = first ? view(grads, "pos_emb.weight") : null;
        this.w = new Block[blocks];
        for (int l = 0; l < blocks; l++) {
            w[l] = block(firstBlock + l);
        }
        this.lnfW = last ? view(params, "ln_f.weight") : null;
        this.lnfB = last ? view(params, "ln_f.bias") : null;
        this.dlnfW = last ? view(grads, "ln_f.weight") : null;
        this.dlnfB = last ? view(grads, "ln_f.bias") : null;
        this.lmHead = last ? new ColumnParallelLinear(dev, tp, c, v, view(params, "lm_head.weight"), null,
            view(grads, "lm_head.weight"), null, sp) : null;
        this.ce = last ? new VocabParallelCrossEntropy(dev, tp, v, bt) : null;
        this.dresidual = dev.allocate(residualRows, c);
        this.dln = dev.allocate(residualRows, c);
        this.datty = dev.allocate(bt, c / tp.size());
        this.dfchGelu = dev.allocate(bt, 4 * c / tp.size());
        this.gradInput = dev.allocate(residualRows, c);
    }

    /** The whole model on one device as a single stage. */
    public static Gpt whole(GptConfig cfg, Device dev, int rows) {
        return new Gpt(cfg, dev, rows, 0, cfg.nLayer(), true, true);
    }

    private Tensor view(Tensor buf, String name) {
        ParamSpec s = layout.get(name);
        return buf.view(s.localOffset(), s.shape());
    }

    private Block block(int l) {
        String p = "blocks." + l + ".";
        int c = cfg.dModel();
        return new Block(view(params, p + "ln1.weight"), view(params, p + "ln1.bias"),
            view(grads, p + "ln1.weight"), view(grads, p + "ln1.bias"),
            new ColumnParallelLinear(dev, tp, c, 3 * c, view(params, p + "attn.qkv.weight"),
                view(params, p + "attn.qkv.bias"), view(grads, p + "attn.qkv.weight"),
                view(grads, p + "attn.qkv.bias"), sp),
            new RowParallelLinear(dev, tp, c, c, view(params, p + "attn.proj.weight"),
                view(params, p + "attn.proj.bias"), view(grads, p + "attn.proj.weight"),
                view(grads, p + "attn.proj.bias"), sp),
            view(params, p + "ln2.weight"), view(params, p + "ln2.bias"),
            view(grads, p + "ln2.weight"), view(grads, p + "ln2.bias"),
            new ColumnParallelLinear(dev, tp, c, 4 * c, view(params, p + "mlp.fc.weight"),
                view(params, p + "mlp.fc.bias"), view(grads, p + "mlp.fc.weight"),
                view(grads, p + "mlp.fc.bias"), sp),
            new RowParallelLinear(dev, tp, 4 * c, c, view(params, p + "mlp.proj.weight"),
                view(params, p + "mlp.proj.bias"), view(grads, p + "mlp.proj.weight"),
                view(grads, p + "mlp.proj.bias"), sp));
    }

    public GptConfig config() {
        return cfg;
    }

    @Override
    public java.util.List<ParamSpec> parameters() {
        return layout.specs();
    }

    @Override
    public TensorParallelPlacement tensorParallelPlacement(int i) {
        return GptPlacements.of(layout.specs().get(i).name(), sp != null);
    }

    public ParameterLayout layout() {
        return layout;
    }

    /** The tensor-parallel group this stage is a member of (size 1 when unsplit). */
    public TensorParallelGroup tensorParallelGroup() {
        return tp;
    }

    @Override
    public Device device() {
        return dev;
    }

    public int rows() {
        return rows;
    }

    /**
     * Fills the parameters with the deterministic LCG init: every element gets the value it has in
     * the unsplit model, whatever the stage split and the tensor-parallel shard.
     */
    public void initialize(long seed) {
        float[] host = new float[(int) layout.numel()];
        ParameterLayout full = ParameterLayout.full(cfg);
        for (ParamSpec s : layout.specs()) {
            int[] global = full.get(s.name()).shape();
            long[] runs = {0};
            long runLength = s.numel();
            if (GptPlacements.of(s.name(), false) instanceof TensorParallelPlacement.Split split) {
                runs = split.split().runStarts(global, tp.size(), tp.index());
                runLength = split.split().runLength(global, tp.size());
            }
            int at = (int) s.localOffset();
            for (long start : runs) {
                Lcg g = new Lcg(seed);
                g.skip(s.globalOffset() + start);
                for (long i = 0; i < runLength; i++) {
                    host[at++] = (float) (s.initCenter() + (2.0 * g.uniform01() - 1.0) * s.initHalfwidth());
                }
            }
        }
        dev.copyFromHost(host, params);
    }

    @Override
    public boolean isFirst() {
        return first;
    }

    @Override
    public boolean isLast() {
        return last;
    }

    @Override
    public Tensor params() {
        return params;
    }

    @Override
    public Tensor grads() {
        return grads;
    }

    @Override
    public void zeroGrads() {
        dev.fill(grads, 0f);
    }

    @Override
    public long activationBytes() {
        long b = 0;
        for (GptActivations a : slots.values()) {
            b += a.bytes();
        }
        return b;
    }

    /**
     * {@code selective}: the attention probabilities (B, NH/tp, T, T) of every block are not kept per
     * micro-batch; backward recomputes them from the kept qkv with the same kernel (bitwise the same
     * values), so losses and gradients are unchanged. {@code full} is refused.
     */
    @Override
    public void recompute(io.troupe.models.memory.Recompute mode) {
        if (!slots.isEmpty()) {
            throw new IllegalStateException("recompute must be set before the first forward: slots=" + slots.keySet());
        }
        switch (mode) {
            case NONE -> {
                if (sharedAtt != null) {
                    sharedAtt.close();
                    sharedAtt = null;
                }
            }
            case SELECTIVE -> {
                if (sharedAtt == null) {
                    sharedAtt = dev.allocate(rows, cfg.nHead() / tp.size(), cfg.seqLen(), cfg.seqLen());
                }
            }
            default -> throw new IllegalArgumentException("recompute=" + mode.optionName()
                + " is not available for GPT stages (none or selective)");
        }
    }

    @Override
    public long activationBytesPerSlot() {
        return slot(0).bytes(); // slot 0 is the first a step takes
    }

    private GptActivations slot(int slot) {
        return slots.computeIfAbsent(slot,
            s -> new GptActivations(dev, cfg, tp.size(), residualRows, rows, blocks, first, last, sharedAtt));
    }

    /** Copies host token ids (and targets on the last stage) into a slot; see {@link #forward}. */
    public Tensor forwardTokens(int slot, int[] x, int[] y) {
        GptActivations a = slot(slot);
        Tensor ids = null;
        if (first) {
            dev.copyFromHost(x, a.ids);
            ids = a.ids;
        }
        if (last) {
            dev.copyFromHost(y, a.targets);
        }
        return forward(slot, ids, last ? a.targets : null);
    }

    /**
     * Forward of a stage that takes activations: copies {@code input} in and, on the last stage,
     * the host targets {@code y}; see {@link #forward}.
     */
    public Tensor forwardActivations(int slot, Tensor input, int[] y) {
        GptActivations a = slot(slot);
        if (last) {
            dev.copyFromHost(y, a.targets);
        }
        return forward(slot, input, last ? a.targets : null);
    }

    @Override
    public Tensor forward(int slot, Tensor input, Tensor targets) {
        final int t = cfg.seqLen();
        final int c = cfg.dModel();
        final int heads = cfg.nHead() / tp.size();
        final int bt = rows * t;
        final int nr = residualRows;      // tokens of the residual stream this member holds: B·T, or B·T/tp
        GptActivations a = slot(slot);
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
            tokEmb.forward(a.ids, a.localIds, a.residualIn, bt);                                // (nr, C)
            dev.embedding(a.residualIn, a.posIds, wpe, nr, c, true);                           // += pos
        } else {
            dev.copy(input, a.residualIn);
        }
        Tensor h = a.residualIn;
        for (int l = 0; l < blocks; l++) {
            Block p = w[l];
            dev.layerNorm(h, p.ln1W, p.ln1B, a.ln1[l], a.ln1Mean[l], a.ln1Rstd[l], nr, c, cfg.lnEps());
            p.qkv.forward(a.ln1[l], a.qkv[l], bt);                                              // (B, T, 3C/tp)
            dev.attention(a.qkv[l], a.atty[l], a.att[l], rows, t, heads, cfg.headDim());       // (B, T, C/tp)
            p.proj.forward(a.atty[l], a.residual2[l], bt);                                      // (nr, C)
            // residual2 = h + attn, then ln2 of it: one fused pass where the device has one
            dev.residualLayerNorm(a.residual2[l], h, a.residual2[l], p.ln2W, p.ln2B, a.ln2[l], a.ln2Mean[l],
                a.ln2Rstd[l], nr, c, cfg.lnEps());
            // fch keeps the pre-activation for backward; bias and GELU fused
            p.fc.forwardGelu(a.ln2[l], a.fch[l], a.fchGelu[l], bt);                             // (B, T, 4C/tp)
            p.fcProj.forward(a.fchGelu[l], a.residual3[l], bt);                                 // (nr, C)
            dev.add(a.residual3[l], a.residual2[l], a.residual3[l]);                            // h + mlp
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
        lmHead.forward(a.lnf, a.logits, bt);                                                    // (B, T, V/tp)
        ce.forward(a.logits, a.targets, a.probs, a.losses, bt);
        float[] losses = a.losses.toFloatArray();
        double sum = 0;
        for (float x : losses) {
            sum += x;
        }
        a.loss = sum / bt;
        return null;
    }

    /** This member's logits of the slot's last forward (last stage), (B, T, V/tp); overwritten by its backward. */
    public Tensor logits(int slot) {
        return slot(slot).logits;
    }

    @Override
    public double loss(int slot) {
        if (!last) {
            throw new IllegalStateException("loss is only known on the last stage");
        }
        return slot(slot).loss;
    }

    @Override
    public Tensor backwardInput(int slot, Tensor gradOutput, float lossScale) {
        GptActivations a = slots.get(slot);
        if (a == null || !a.forwardDone) {
            throw new IllegalStateException("backward of slot " + slot + " before its forward");
        }
        final int t = cfg.seqLen();
        final int c = cfg.dModel();
        final int heads = cfg.nHead() / tp.size();
        final int bt = rows * t;
        final int nr = residualRows;
        if (last) {
            Tensor dlogits = a.logits;                                                         // reuse (B, T, V/tp)
            ce.backward(dlogits, a.probs, a.targets, lossScale, bt);
            lmHead.backwardInput(dlogits, dln, bt);                                            // (nr, C)
            dev.fill(dresidual, 0f);
            Tensor h = blocks == 0 ? a.residualIn : a.residual3[blocks - 1];
            dev.layerNormBackward(dresidual, dlnfW, dlnfB, dln, h, lnfW, a.lnfMean, a.lnfRstd, nr, c);
        } else {
            dev.copy(gradOutput, dresidual);
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Block p = w[l];
            Tensor hIn = l == 0 ? a.residualIn : a.residual3[l - 1];
            // MLP: residual3 = residual2 + proj(gelu(fc(ln2(residual2))))
            dev.copy(dresidual, a.dFcProj[l]);
            p.fcProj.backwardInput(dresidual, dfchGelu, bt);                                   // (B, T, 4C/tp)
            p.fc.backwardGelu(a.fch[l], dfchGelu, a.dfch[l], bt);                               // and fc's bias grad
            p.fc.backwardInput(a.dfch[l], dln, bt);                                            // (nr, C)
            dev.layerNormBackward(dresidual, p.dln2W, p.dln2B, dln, a.residual2[l], p.ln2W, a.ln2Mean[l],
                a.ln2Rstd[l], nr, c);
            // Attention: residual2 = h + proj(attn(qkv(ln1(h))))
            dev.copy(dresidual, a.dAttProj[l]);
            p.proj.backwardInput(dresidual, datty, bt);                                        // (B, T, C/tp)
            if (sharedAtt != null) {
                // Selective recomputation: the probabilities again from the kept qkv (atty comes out bitwise as kept).
                dev.attention(a.qkv[l], a.atty[l], sharedAtt, rows, t, heads, cfg.headDim());
            }
            dev.attentionBackward(a.dqkv[l], datty, a.qkv[l], a.att[l], rows, t, heads, cfg.headDim());
            p.qkv.backwardInput(a.dqkv[l], dln, bt);                                           // (nr, C)
            dev.layerNormBackward(dresidual, p.dln1W, p.dln1B, dln, hIn, p.ln1W, a.ln1Mean[l], a.ln1Rstd[l], nr, c);
        }
        a.weightPending = true;
        if (first) {
            dev.copy(dresidual, a.dEmbedding);
            return null;
        }
        dev.copy(dresidual, gradInput);
        return gradInput;
    }

    @Override
    public void backwardWeight(int slot) {
        backwardWeight(slot, NO_LISTENER);
    }

    private static final java.util.function.IntConsumer NO_LISTENER = i -> { };
    /** Parameters per transformer block in {@link ParameterLayout} order. */
    private static final int PARAMS_PER_BLOCK = 12;

    /**
     * Reports the head's parameters after the head gradient, each block's twelve after its four
     * weight gradients (layer norm gradients were finished by the input backward), and the
     * embeddings last.
     */
    @Override
    public void backwardWeight(int slot, java.util.function.IntConsumer parameterDone) {
        GptActivations a = slots.get(slot);
        if (a == null || !a.weightPending) {
            throw new IllegalStateException("weight gradient of slot " + slot + " before its input gradient");
        }
        final int c = cfg.dModel();
        final int bt = rows * cfg.seqLen();
        int firstBlockParam = first ? 2 : 0;
        if (last) {
            lmHead.backwardWeight(a.logits, a.lnf, bt);                                        // (V/tp, C)
            int head = firstBlockParam + PARAMS_PER_BLOCK * blocks;
            for (int i = head + 2; i >= head; i--) {
                parameterDone.accept(i);
            }
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Block p = w[l];
            p.fcProj.backwardWeight(a.dFcProj[l], a.fchGelu[l], bt);
            p.fc.backwardWeight(a.dfch[l], a.ln2[l], bt, false);                                 // bias: backwardGelu
            p.proj.backwardWeight(a.dAttProj[l], a.atty[l], bt);
            p.qkv.backwardWeight(a.dqkv[l], a.ln1[l], bt);
            int base = firstBlockParam + PARAMS_PER_BLOCK * l;
            for (int i = base + PARAMS_PER_BLOCK - 1; i >= base; i--) {
                parameterDone.accept(i);
            }
        }
        if (first) {
            tokEmb.backwardWeight(a.dEmbedding, a.ids, a.localIds, bt);
            dev.embeddingBackward(dwpe, a.dEmbedding, a.posIds, residualRows, c);
            parameterDone.accept(1);
            parameterDone.accept(0);
        }
        a.weightPending = false;
        a.forwardDone = false;
    }

    /** Frees the activation memory of every slot (between steps, when memory matters). */
    public void releaseActivations() {
        for (GptActivations a : slots.values()) {
            a.close();
        }
        slots.clear();
    }

    @Override
    public void close() {
        releaseActivations();
        if (sharedAtt != null) {
            sharedAtt.close();
            sharedAtt = null;
        }
        if (tokEmb != null) {
            tokEmb.close();
        }
        if (ce != null) {
            ce.close();
        }
        if (sp != null) {
            sp.close();
        }
        for (Tensor x : new Tensor[] {params, grads, dresidual, dln, datty, dfchGelu, gradInput}) {
            x.close();
        }
    }
}
