package io.troupe.models.gpt;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.data.Lcg;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.models.parallel.tp.ColumnParallelLinear;
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
    /** The gradient buffer and its layout (the whole layout's, or under ZeRO 2 an arena's). */
    private final GptGradients gradients;
    private final Map<Integer, GptActivations> slots = new HashMap<>();
    /** The recomputation workspace the slots share ({@link #recompute}). */
    private final GptRecompute recompute;

    // Layers over named views into params / grads.
    // The layers holding gradient views are rebuilt when the gradients move into an arena
    // (those outside the blocks are package-private: GptForward and GptBackward read them at each call).
    VocabParallelEmbedding tokEmb;
    private final Tensor wpe;
    Tensor dwpe;
    private final GptBlock[] w;
    private final Tensor lnfW;
    private final Tensor lnfB;
    Tensor dlnfW;
    Tensor dlnfB;
    ColumnParallelLinear lmHead;
    private final VocabParallelCrossEntropy ce;
    /** The forward pass into a slot's activations. */
    private final GptForward forwardPass;
    /** B, W and the fused backward, with the activation-gradient scratch they share. */
    private final GptBackward backwardPass;

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
        this.gradients = new GptGradients(dev, layout);
        int bt = rows * cfg.seqLen();
        int c = cfg.dModel();
        int v = cfg.vocabSize();
        this.sp = sequenceParallel && tp.size() > 1 ? new SequenceParallel(dev, tp, bt, c) : null;
        this.residualRows = sp == null ? bt : sp.localTokens(bt);
        this.recompute = new GptRecompute(dev, cfg, tp.size(), residualRows, rows, blocks);
        this.wpe = first ? view("pos_emb.weight") : null;
        this.w = new GptBlock[blocks];
        this.lnfW = last ? view("ln_f.weight") : null;
        this.lnfB = last ? view("ln_f.bias") : null;
        bindLayers();
        this.ce = last ? new VocabParallelCrossEntropy(dev, tp, v, bt) : null;
        this.forwardPass = new GptForward(this, sp, residualRows, w, wpe, lnfW, lnfB, ce);
        this.backwardPass = new GptBackward(this, sp, residualRows, w, lnfW, ce, gradients, recompute);
    }

    /** The whole model on one device as a single stage. */
    public static Gpt whole(GptConfig cfg, Device dev, int rows) {
        return new Gpt(cfg, dev, rows, 0, cfg.nLayer(), true, true);
    }

    /** The view of parameter {@code name} in {@link #params}. */
    private Tensor view(String name) {
        ParamSpec s = layout.get(name);
        return params.view(s.localOffset(), s.shape());
    }

    /** (Re)builds every layer over the parameter views and the current gradient views. */
    private void bindLayers() {
        int c = cfg.dModel();
        int v = cfg.vocabSize();
        if (tokEmb != null) {
            tokEmb.close();
        }
        tokEmb = first ? new VocabParallelEmbedding(dev, tp, v, c, rows * cfg.seqLen(), view("tok_emb.weight"),
            gradients.view("tok_emb.weight"), sp) : null;
        dwpe = first ? gradients.view("pos_emb.weight") : null;
        for (int l = 0; l < blocks; l++) {
            w[l] = new GptBlock(firstBlock + l, cfg, dev, tp, sp, rows, residualRows, this::view, gradients);
        }
        dlnfW = last ? gradients.view("ln_f.weight") : null;
        dlnfB = last ? gradients.view("ln_f.bias") : null;
        lmHead = last ? new ColumnParallelLinear(dev, tp, c, v, view("lm_head.weight"), null,
            gradients.view("lm_head.weight"), null, sp) : null;
    }

    /**
     * ZeRO stage 2: moves the gradients into a {@link io.troupe.models.memory.GradientArena} of
     * {@link GptGradientArena}'s layout (LayerNorms resident, one shared bucket window), so
     * {@link #grads()} becomes that smaller buffer. Weight gradients are reported piece by piece
     * (indices into the arena's pieces): a linear's weight and bias, or one block of rows of a
     * weight the arena cuts, so the runtime can empty the window between buckets. Before the first
     * forward; tp = 1.
     */
    @Override
    public io.troupe.models.memory.GradientArena shardGradients(long bucketElements) {
        checkArenaOnce();
        return applyArena(GptGradientArena.of(layout, firstBlock, blocks, first, last, bucketElements));
    }

    /**
     * ZeRO stage 2 with the runtime's buckets ({@link GptGradientArena#ofBuckets}): each bucket is
     * a flat range of the whole gradient buffer, imaged in the window (the parameters B writes kept
     * resident); W fills and reports a bucket's parameters before it writes the next bucket's.
     */
    @Override
    public io.troupe.models.memory.GradientArena shardGradients(long[] bucketStartElements, long[] bucketNumels) {
        checkArenaOnce();
        return applyArena(GptGradientArena.ofBuckets(layout, bucketStartElements, bucketNumels));
    }

    @Override
    public int gradientRowElements(int i) {
        return tp.size() == 1 ? GptGradientArena.rowElements(layout.specs().get(i)) : 0;
    }

    private void checkArenaOnce() {
        if (!slots.isEmpty() || tp.size() != 1 || gradients.inArena()) {
            throw new IllegalStateException("gradients move into an arena once, before the first forward, at tp = 1: "
                + "slots=" + slots.keySet() + ", tp=" + tp.size());
        }
    }

    private io.troupe.models.memory.GradientArena applyArena(io.troupe.models.memory.GradientArena arena) {
        gradients.moveInto(arena);
        bindLayers();
        zeroGrads();
        return arena;
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
        return gradients.buffer();
    }

    @Override
    public void zeroGrads() {
        dev.fill(gradients.buffer(), 0f);
    }

    @Override
    public long activationBytes() {
        long b = 0;
        for (GptActivations a : slots.values()) {
            b += a.bytes();
        }
        return b + recompute.weightInputsBytes() + activationBytesShared();
    }

    @Override
    public long activationBytesLive() {
        long b = 0;
        for (Map.Entry<Integer, GptActivations> e : slots.entrySet()) {
            if (e.getKey() >= 0 && e.getValue().forwardDone) {
                b += e.getValue().bytes();
                if (e.getValue().pendingWeightInputs != null) {
                    b += e.getValue().pendingWeightInputs.bytes();
                }
            }
        }
        return b + activationBytesShared();
    }

    /** The recomputation workspace every slot shares: selective's probabilities, full's one block. */
    @Override
    public long activationBytesShared() {
        return recompute.sharedBytes();
    }

    /**
     * {@code selective}: the attention probabilities (B, NH/tp, T, T) of every block are not kept per
     * micro-batch; backward recomputes them from the kept qkv with the same kernel (bitwise the same
     * values), so losses and gradients are unchanged. {@code full}: a slot keeps only the stage input
     * and each block's output (B·T, C), plus the head's tensors on the last stage; every other block
     * tensor lives in one block-sized workspace, and backward recomputes each block from its kept
     * input with the same kernels (bitwise the same values) just before that block's backward. A
     * fused backward ({@link #backward(int, Tensor, float, java.util.function.IntConsumer)}) runs each
     * block's weight gradient right after its input gradient; a split one (B now, W later) keeps
     * what W reads in a pooled {@link GptWeightInputs} from B until W.
     */
    @Override
    public void recompute(io.troupe.models.memory.Recompute mode) {
        if (!slots.isEmpty()) {
            throw new IllegalStateException("recompute must be set before the first forward: slots=" + slots.keySet());
        }
        recompute.set(mode);
    }

    @Override
    public long activationBytesPerSlot() {
        return slot(0).bytes(); // slot 0 is the first a step takes
    }

    private GptActivations slot(int slot) {
        return slots.computeIfAbsent(slot,
            s -> new GptActivations(dev, cfg, tp.size(), residualRows, rows, blocks, first, last,
                recompute.sharedAtt(), recompute.sharedBlock()));
    }

    /** Copies host token ids (and targets on the last stage) into a slot; see {@link #forward}. */
    public Tensor forwardTokens(int slot, int[] x, int[] y) {
        return forwardPass.forwardTokens(slot(slot), x, y);
    }

    /**
     * Forward of a stage that takes activations: copies {@code input} in and, on the last stage,
     * the host targets {@code y}; see {@link #forward}.
     */
    public Tensor forwardActivations(int slot, Tensor input, int[] y) {
        return forwardPass.forwardActivations(slot(slot), input, y);
    }

    @Override
    public Tensor forward(int slot, Tensor input, Tensor targets) {
        return forwardPass.forward(slot(slot), input, targets);
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
        return backwardPass.backwardInput(forwardDone(slot), gradOutput, lossScale);
    }

    /** The slot's activations, checked to hold a forward not yet taken back. */
    private GptActivations forwardDone(int slot) {
        GptActivations a = slots.get(slot);
        if (a == null || !a.forwardDone) {
            throw new IllegalStateException("backward of slot " + slot + " before its forward");
        }
        return a;
    }

    @Override
    public Tensor backward(int slot, Tensor gradOutput, float lossScale) {
        return backward(slot, gradOutput, lossScale, NO_LISTENER);
    }

    /**
     * B then W. Under full recomputation each block's weight gradient runs right after its input
     * gradient, while its recomputed tensors are in the workspace; otherwise as the two calls.
     */
    @Override
    public Tensor backward(int slot, Tensor gradOutput, float lossScale, java.util.function.IntConsumer parameterDone) {
        return backwardPass.backward(forwardDone(slot), gradOutput, lossScale, parameterDone);
    }

    /**
     * Whether the fused {@link #backward} (B and W of a micro-batch together) overlaps the tp
     * reductions with weight gradients (on by default; off gives B then W, bitwise the same result).
     * No effect at tp = 1 or on the split {@link #backwardInput} / {@link #backwardWeight}.
     */
    public void overlapTensorParallel(boolean on) {
        backwardPass.overlapTensorParallel(on);
    }

    @Override
    public void backwardWeight(int slot) {
        backwardWeight(slot, NO_LISTENER);
    }

    private static final java.util.function.IntConsumer NO_LISTENER = i -> { };

    /**
     * Reports the head's parameters after the head gradient, each linear's weight and bias right
     * after its weight gradient (a block's LayerNorms, finished by the input backward, in their
     * place in reverse order), and the embeddings last.
     */
    @Override
    public void backwardWeight(int slot, java.util.function.IntConsumer parameterDone) {
        GptActivations a = slots.get(slot);
        if (a == null || !a.weightPending) {
            throw new IllegalStateException("weight gradient of slot " + slot + " before its input gradient");
        }
        backwardPass.backwardWeight(a, parameterDone);
    }

    /** Frees the activation memory of every slot (between steps, when memory matters). */
    public void releaseActivations() {
        for (GptActivations a : slots.values()) {
            if (a.pendingWeightInputs != null) {
                recompute.giveBack(a.pendingWeightInputs);
            }
            a.close();
        }
        slots.clear();
    }

    @Override
    public void close() {
        releaseActivations();
        recompute.close();
        if (tokEmb != null) {
            tokEmb.close();
        }
        if (ce != null) {
            ce.close();
        }
        if (sp != null) {
            sp.close();
        }
        params.close();
        gradients.close();
        backwardPass.close();
    }
}
