package io.troupe.models.gpt;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.data.Lcg;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.HashMap;
import java.util.Map;

/**
 * GPT-2 style decoder, nanoGPT order, as one pipeline stage holding blocks [firstBlock, endBlock)
 * and, on the first stage, the token and position embeddings; on the last, ln_f, the untied
 * lm_head (no bias) and the mean cross-entropy. The single-device model is {@link #whole}.
 *
 * <pre>
 * Legend: B rows of a micro-batch, T positions, C = d_model, NH heads, hd = C/NH, V vocabulary.
 *   h = tok_emb[x] + pos_emb[t]                      (B, T, C)       first stage
 *   per block: h += attn(ln1(h)); h += mlp(ln2(h))   (B, T, C)
 *   logits = ln_f(h) @ lm_head^T                     (B, T, V)       last stage
 *   loss = mean CE(logits, y)
 * </pre>
 *
 * Parameters live in one flat buffer with named views ({@link ParameterLayout}); gradients
 * likewise, so they reduce as flat buckets. The model never knows whether it is split.
 */
public final class Gpt implements StageModule {
    private final GptConfig cfg;
    private final Device dev;
    private final int rows;
    private final int firstBlock;
    private final int blocks;
    private final boolean first;
    private final boolean last;
    private final ParameterLayout layout;
    private final Tensor params;
    private final Tensor grads;
    private final Map<Integer, GptActivations> slots = new HashMap<>();

    // Named views into params / grads.
    private final Tensor wte;
    private final Tensor wpe;
    private final Tensor dwte;
    private final Tensor dwpe;
    private final Block[] w;
    private final Block[] dw;
    private final Tensor lnfW;
    private final Tensor lnfB;
    private final Tensor lmHead;
    private final Tensor dlnfW;
    private final Tensor dlnfB;
    private final Tensor dlmHead;

    // Activation-gradient scratch shared by all slots (one backward at a time).
    private final Tensor dresidual;   // (B, T, C)
    private final Tensor dln;         // (B, T, C)
    private final Tensor datty;       // (B, T, C)
    private final Tensor dfchGelu;    // (B, T, 4C)
    private final Tensor gradInput;   // (B, T, C)

    /** The parameter tensors of one block, as views. */
    private record Block(Tensor ln1W, Tensor ln1B, Tensor qkvW, Tensor qkvB, Tensor projW, Tensor projB,
                         Tensor ln2W, Tensor ln2B, Tensor fcW, Tensor fcB, Tensor fcProjW, Tensor fcProjB) {
    }

    /**
     * @param rows micro-batch rows B this stage is sized for
     */
    public Gpt(GptConfig cfg, Device dev, int rows, int firstBlock, int endBlock, boolean first, boolean last) {
        if (firstBlock < 0 || endBlock > cfg.nLayer() || firstBlock > endBlock) {
            throw new IllegalArgumentException("bad block range [" + firstBlock + ", " + endBlock + ") for n_layer=" + cfg.nLayer());
        }
        if (rows < 1) {
            throw new IllegalArgumentException("micro-batch rows must be >= 1: rows=" + rows);
        }
        this.cfg = cfg;
        this.dev = dev;
        this.rows = rows;
        this.firstBlock = firstBlock;
        this.blocks = endBlock - firstBlock;
        this.first = first;
        this.last = last;
        this.layout = ParameterLayout.stage(cfg, firstBlock, endBlock, first, last);
        this.params = dev.allocate((int) layout.numel());
        this.grads = dev.allocate((int) layout.numel());
        this.wte = first ? view(params, "tok_emb.weight") : null;
        this.wpe = first ? view(params, "pos_emb.weight") : null;
        this.dwte = first ? view(grads, "tok_emb.weight") : null;
        this.dwpe = first ? view(grads, "pos_emb.weight") : null;
        this.w = new Block[blocks];
        this.dw = new Block[blocks];
        for (int l = 0; l < blocks; l++) {
            w[l] = block(params, firstBlock + l);
            dw[l] = block(grads, firstBlock + l);
        }
        this.lnfW = last ? view(params, "ln_f.weight") : null;
        this.lnfB = last ? view(params, "ln_f.bias") : null;
        this.lmHead = last ? view(params, "lm_head.weight") : null;
        this.dlnfW = last ? view(grads, "ln_f.weight") : null;
        this.dlnfB = last ? view(grads, "ln_f.bias") : null;
        this.dlmHead = last ? view(grads, "lm_head.weight") : null;
        int bt = rows * cfg.seqLen();
        int c = cfg.dModel();
        this.dresidual = dev.allocate(bt, c);
        this.dln = dev.allocate(bt, c);
        this.datty = dev.allocate(bt, c);
        this.dfchGelu = dev.allocate(bt, 4 * c);
        this.gradInput = dev.allocate(bt, c);
    }

    /** The whole model on one device as a single stage. */
    public static Gpt whole(GptConfig cfg, Device dev, int rows) {
        return new Gpt(cfg, dev, rows, 0, cfg.nLayer(), true, true);
    }

    private Tensor view(Tensor buf, String name) {
        ParamSpec s = layout.get(name);
        return buf.view(s.localOffset(), s.shape());
    }

    private Block block(Tensor buf, int l) {
        String p = "blocks." + l + ".";
        return new Block(view(buf, p + "ln1.weight"), view(buf, p + "ln1.bias"),
            view(buf, p + "attn.qkv.weight"), view(buf, p + "attn.qkv.bias"),
            view(buf, p + "attn.proj.weight"), view(buf, p + "attn.proj.bias"),
            view(buf, p + "ln2.weight"), view(buf, p + "ln2.bias"),
            view(buf, p + "mlp.fc.weight"), view(buf, p + "mlp.fc.bias"),
            view(buf, p + "mlp.proj.weight"), view(buf, p + "mlp.proj.bias"));
    }

    public GptConfig config() {
        return cfg;
    }

    @Override
    public java.util.List<ParamSpec> parameters() {
        return layout.specs();
    }

    public ParameterLayout layout() {
        return layout;
    }

    @Override
    public Device device() {
        return dev;
    }

    public int rows() {
        return rows;
    }

    /** Fills the parameters with the deterministic LCG init (same values for any stage split). */
    public void initialize(long seed) {
        float[] host = new float[(int) layout.numel()];
        for (ParamSpec s : layout.specs()) {
            Lcg g = new Lcg(seed);
            g.skip(s.globalOffset());
            for (long i = 0; i < s.numel(); i++) {
                host[(int) (s.localOffset() + i)] = (float) (s.initCenter() + (2.0 * g.uniform01() - 1.0) * s.initHalfwidth());
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

    private GptActivations slot(int slot) {
        return slots.computeIfAbsent(slot, s -> new GptActivations(dev, cfg, rows, blocks, first, last));
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
        final int nh = cfg.nHead();
        final int bt = rows * t;
        GptActivations a = slot(slot);
        if (first) {
            if (input != a.ids) {
                dev.copy(input, a.ids);
            }
            if (!a.positionsReady) {
                int[] pos = new int[bt];
                for (int i = 0; i < bt; i++) {
                    pos[i] = i % t;
                }
                dev.copyFromHost(pos, a.posIds);
                a.positionsReady = true;
            }
            dev.embedding(a.residualIn, a.ids, wte, bt, c, false);           // (B, T, C)
            dev.embedding(a.residualIn, a.posIds, wpe, bt, c, true);         // += pos
        } else {
            dev.copy(input, a.residualIn);
        }
        Tensor h = a.residualIn;
        for (int l = 0; l < blocks; l++) {
            Block p = w[l];
            dev.layerNorm(h, p.ln1W, p.ln1B, a.ln1[l], a.ln1Mean[l], a.ln1Rstd[l], bt, c, cfg.lnEps());
            linear(a.ln1[l], p.qkvW, p.qkvB, a.qkv[l], bt, c, 3 * c);                        // (B, T, 3C)
            dev.attention(a.qkv[l], a.atty[l], a.att[l], rows, t, nh, cfg.headDim());         // (B, T, C)
            linear(a.atty[l], p.projW, p.projB, a.residual2[l], bt, c, c);
            // residual2 = h + attn, then ln2 of it: one fused pass where the device has one
            dev.residualLayerNorm(a.residual2[l], h, a.residual2[l], p.ln2W, p.ln2B, a.ln2[l], a.ln2Mean[l], a.ln2Rstd[l],
                bt, c, cfg.lnEps());
            // fch = ln2 @ fcW^T, then + fcB and GELU fused (fch keeps the pre-activation for backward)
            dev.matmul(false, true, bt, 4 * c, c, 1f, a.ln2[l], p.fcW, 0f, a.fch[l]);          // (B, T, 4C)
            dev.biasAddGelu(a.fch[l], p.fcB, a.fchGelu[l], bt, 4 * c);
            linear(a.fchGelu[l], p.fcProjW, p.fcProjB, a.residual3[l], bt, 4 * c, c);        // (B, T, C)
            dev.add(a.residual3[l], a.residual2[l], a.residual3[l]);                          // h + mlp
            h = a.residual3[l];
        }
        a.forwardDone = true;
        if (!last) {
            return h;
        }
        if (targets != a.targets) {
            dev.copy(targets, a.targets);
        }
        int v = cfg.vocabSize();
        dev.layerNorm(h, lnfW, lnfB, a.lnf, a.lnfMean, a.lnfRstd, bt, c, cfg.lnEps());
        dev.matmul(false, true, bt, v, c, 1f, a.lnf, lmHead, 0f, a.logits);                   // (B, T, V)
        dev.crossEntropy(a.logits, a.targets, a.probs, a.losses, bt, v);
        float[] losses = a.losses.toFloatArray();
        double sum = 0;
        for (float x : losses) {
            sum += x;
        }
        a.loss = sum / bt;
        return null;
    }

    /** The logits of the slot's last forward (last stage), (B, T, V); overwritten by its backward. */
    public Tensor logits(int slot) {
        return slot(slot).logits;
    }

    /** out = inp @ weight^T + bias, with weight (outDim, inDim) as in torch.nn.Linear. */
    private void linear(Tensor inp, Tensor weight, Tensor bias, Tensor out, int n, int inDim, int outDim) {
        dev.matmul(false, true, n, outDim, inDim, 1f, inp, weight, 0f, out);
        dev.biasAdd(out, bias, n, outDim);
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
        final int nh = cfg.nHead();
        final int bt = rows * t;
        if (last) {
            int v = cfg.vocabSize();
            Tensor dlogits = a.logits;                                                         // reuse (B, T, V)
            dev.crossEntropyBackward(dlogits, a.probs, a.targets, lossScale, bt, v);
            dev.matmul(false, false, bt, c, v, 1f, dlogits, lmHead, 0f, dln);                 // (B, T, C)
            dev.fill(dresidual, 0f);
            Tensor h = blocks == 0 ? a.residualIn : a.residual3[blocks - 1];
            dev.layerNormBackward(dresidual, dlnfW, dlnfB, dln, h, lnfW, a.lnfMean, a.lnfRstd, bt, c);
        } else {
            dev.copy(gradOutput, dresidual);
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Block p = w[l];
            Block g = dw[l];
            Tensor hIn = l == 0 ? a.residualIn : a.residual3[l - 1];
            // MLP: residual3 = residual2 + proj(gelu(fc(ln2(residual2))))
            dev.copy(dresidual, a.dFcProj[l]);
            dev.matmul(false, false, bt, 4 * c, c, 1f, dresidual, p.fcProjW, 0f, dfchGelu);    // (B, T, 4C)
            dev.geluBackward(a.fch[l], dfchGelu, a.dfch[l], (long) bt * 4 * c);
            dev.matmul(false, false, bt, c, 4 * c, 1f, a.dfch[l], p.fcW, 0f, dln);             // (B, T, C)
            dev.layerNormBackward(dresidual, g.ln2W, g.ln2B, dln, a.residual2[l], p.ln2W, a.ln2Mean[l], a.ln2Rstd[l], bt, c);
            // Attention: residual2 = h + proj(attn(qkv(ln1(h))))
            dev.copy(dresidual, a.dAttProj[l]);
            dev.matmul(false, false, bt, c, c, 1f, dresidual, p.projW, 0f, datty);
            dev.attentionBackward(a.dqkv[l], datty, a.qkv[l], a.att[l], rows, t, nh, cfg.headDim());
            dev.matmul(false, false, bt, c, 3 * c, 1f, a.dqkv[l], p.qkvW, 0f, dln);
            dev.layerNormBackward(dresidual, g.ln1W, g.ln1B, dln, hIn, p.ln1W, a.ln1Mean[l], a.ln1Rstd[l], bt, c);
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
            dev.matmul(true, false, cfg.vocabSize(), c, bt, 1f, a.logits, a.lnf, 1f, dlmHead);   // (V, C)
            int head = firstBlockParam + PARAMS_PER_BLOCK * blocks;
            for (int i = head + 2; i >= head; i--) {
                parameterDone.accept(i);
            }
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Block g = dw[l];
            weightGrad(a.dFcProj[l], a.fchGelu[l], g.fcProjW, g.fcProjB, bt, 4 * c, c);
            weightGrad(a.dfch[l], a.ln2[l], g.fcW, g.fcB, bt, c, 4 * c);
            weightGrad(a.dAttProj[l], a.atty[l], g.projW, g.projB, bt, c, c);
            weightGrad(a.dqkv[l], a.ln1[l], g.qkvW, g.qkvB, bt, c, 3 * c);
            int base = firstBlockParam + PARAMS_PER_BLOCK * l;
            for (int i = base + PARAMS_PER_BLOCK - 1; i >= base; i--) {
                parameterDone.accept(i);
            }
        }
        if (first) {
            dev.embeddingBackward(dwte, a.dEmbedding, a.ids, bt, c);
            dev.embeddingBackward(dwpe, a.dEmbedding, a.posIds, bt, c);
            parameterDone.accept(1);
            parameterDone.accept(0);
        }
        a.weightPending = false;
        a.forwardDone = false;
    }

    /** dW += dout^T @ inp, db += colsum(dout), for a Linear (outDim, inDim). */
    private void weightGrad(Tensor dout, Tensor inp, Tensor dW, Tensor db, int n, int inDim, int outDim) {
        dev.matmul(true, false, outDim, inDim, n, 1f, dout, inp, 1f, dW);
        dev.biasBackward(db, dout, n, outDim);
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
        for (Tensor x : new Tensor[] {params, grads, dresidual, dln, datty, dfchGelu, gradInput}) {
            x.close();
        }
    }
}
