package io.troupe.models.gpt;

import io.troupe.models.ParamSpec;
import io.troupe.models.StageModule;
import io.troupe.models.data.Lcg;
import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.models.parallel.tp.ColumnParallelLinear;
import io.troupe.models.parallel.tp.PendingTensorParallelCollective;
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
    /** The whole flat gradient buffer, or under ZeRO 2 the {@link #gradientArena} buffer. */
    private Tensor grads;
    /** Where each parameter's gradient starts in {@link #grads} when it is an arena; null: the layout's offsets. */
    private long[] gradOffsets;
    /** ZeRO 2: per parameter its arena pieces, and the window views of pieces that are row blocks (else null). */
    private int[][] piecesOf;
    private Tensor[] rowBlockGrads;
    private io.troupe.models.memory.GradientArena arena;
    private final Map<Integer, GptActivations> slots = new HashMap<>();
    /** Selective recomputation: one (B, NH/tp, T, T) tensor for every slot's and block's attention probabilities. */
    private Tensor sharedAtt;
    /** Full recomputation: one block's tensors, shared by every slot and block (null otherwise). */
    private GptActivations sharedBlock;
    /** Full recomputation with B split from W: what W reads, kept from B; free ones for reuse. */
    private final java.util.ArrayDeque<GptWeightInputs> freeWeightInputs = new java.util.ArrayDeque<>();
    private final java.util.List<GptWeightInputs> allWeightInputs = new java.util.ArrayList<>();
    /** The fused backward overlaps each column-parallel layer's input-gradient reduction with weight gradients. */
    private boolean tensorParallelOverlap = true;

    // Layers over named views into params / grads.
    // The layers holding gradient views are rebuilt when the gradients move into an arena.
    private VocabParallelEmbedding tokEmb;
    private final Tensor wpe;
    private Tensor dwpe;
    private final Block[] w;
    private final Tensor lnfW;
    private final Tensor lnfB;
    private Tensor dlnfW;
    private Tensor dlnfB;
    private ColumnParallelLinear lmHead;
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
        this.wpe = first ? view(params, "pos_emb.weight") : null;
        this.w = new Block[blocks];
        this.lnfW = last ? view(params, "ln_f.weight") : null;
        this.lnfB = last ? view(params, "ln_f.bias") : null;
        bindLayers();
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
        if (buf == grads && gradOffsets != null) {
            long at = gradOffsets[layout.specs().indexOf(s)];
            return at < 0 ? null : buf.view(at, s.shape());  // null: a weight the arena keeps in row blocks
        }
        return buf.view(s.localOffset(), s.shape());
    }

    /** (Re)builds every layer over the parameter views and the current gradient views. */
    private void bindLayers() {
        int c = cfg.dModel();
        int v = cfg.vocabSize();
        if (tokEmb != null) {
            tokEmb.close();
        }
        tokEmb = first ? new VocabParallelEmbedding(dev, tp, v, c, rows * cfg.seqLen(), view(params, "tok_emb.weight"),
            view(grads, "tok_emb.weight"), sp) : null;
        dwpe = first ? view(grads, "pos_emb.weight") : null;
        for (int l = 0; l < blocks; l++) {
            w[l] = block(firstBlock + l);
        }
        dlnfW = last ? view(grads, "ln_f.weight") : null;
        dlnfB = last ? view(grads, "ln_f.bias") : null;
        lmHead = last ? new ColumnParallelLinear(dev, tp, c, v, view(params, "lm_head.weight"), null,
            view(grads, "lm_head.weight"), null, sp) : null;
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
        if (!slots.isEmpty() || tp.size() != 1 || gradOffsets != null) {
            throw new IllegalStateException("gradients move into an arena once, before the first forward, at tp = 1: "
                + "slots=" + slots.keySet() + ", tp=" + tp.size());
        }
    }

    private io.troupe.models.memory.GradientArena applyArena(io.troupe.models.memory.GradientArena arena) {
        grads.close();
        grads = dev.allocate((int) (arena.residentElements() + arena.bucketElements()));
        int n = layout.specs().size();
        gradOffsets = new long[n];
        java.util.Arrays.fill(gradOffsets, -1);
        int[] count = new int[n];
        for (io.troupe.models.memory.GradientArena.Piece piece : arena.pieces()) {
            count[piece.parameter()]++;
        }
        piecesOf = new int[n][];
        for (int i = 0; i < n; i++) {
            piecesOf[i] = new int[count[i]];
            count[i] = 0;
        }
        rowBlockGrads = new Tensor[arena.pieces().size()];
        for (int k = 0; k < arena.pieces().size(); k++) {
            io.troupe.models.memory.GradientArena.Piece piece = arena.pieces().get(k);
            piecesOf[piece.parameter()][count[piece.parameter()]++] = k;
            if (piece.elements() == layout.specs().get(piece.parameter()).numel()) {
                gradOffsets[piece.parameter()] = piece.arenaOffset();
            } else {
                rowBlockGrads[k] = grads.view(piece.arenaOffset(), (int) piece.elements());
            }
        }
        this.arena = arena;
        bindLayers();
        zeroGrads();
        return arena;
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
        for (GptWeightInputs wi : allWeightInputs) {
            b += wi.bytes();
        }
        return b + activationBytesShared();
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
        long b = sharedAtt == null ? 0 : sharedAtt.numel() * 4;
        return sharedBlock == null ? b : b + sharedBlock.bytes();
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
        closeRecomputeBuffers();
        switch (mode) {
            case NONE -> {
            }
            case SELECTIVE -> sharedAtt = dev.allocate(rows, cfg.nHead() / tp.size(), cfg.seqLen(), cfg.seqLen());
            case FULL -> sharedBlock = new GptActivations(dev, cfg, tp.size(), residualRows, rows, 1, false, false,
                null, null);
            default -> throw new IllegalStateException("unhandled recompute mode " + mode);
        }
    }

    @Override
    public long activationBytesPerSlot() {
        return slot(0).bytes(); // slot 0 is the first a step takes
    }

    private GptActivations slot(int slot) {
        return slots.computeIfAbsent(slot,
            s -> new GptActivations(dev, cfg, tp.size(), residualRows, rows, blocks, first, last, sharedAtt,
                sharedBlock));
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
            blockForward(w[l], a.block(l), h, true);
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
        headBackwardInput(a, gradOutput, lossScale);
        GptWeightInputs kept = null;
        if (sharedBlock != null) {
            kept = freeWeightInputs.poll();
            if (kept == null) {
                kept = new GptWeightInputs(dev, cfg, tp.size(), residualRows, rows, blocks);
                allWeightInputs.add(kept);
            }
            a.pendingWeightInputs = kept;
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Tensor hIn = l == 0 ? a.residualIn : a.residual3[l - 1];
            GptActivations.BlockTensors b = a.block(l);
            if (kept != null) {
                b = b.withWeightInputs(kept, l);
                blockForward(w[l], b, hIn, false);
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
            lmHead.backwardInput(dlogits, dln, bt);                                            // (nr, C)
            dev.fill(dresidual, 0f);
            Tensor h = blocks == 0 ? a.residualIn : a.residual3[blocks - 1];
            dev.layerNormBackward(dresidual, dlnfW, dlnfB, dln, h, lnfW, a.lnfMean, a.lnfRstd, residualRows,
                cfg.dModel());
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

    /**
     * One block's forward from {@code h} into {@code b}. {@code output} false (recomputation in
     * backward) stops after what backward reads: the MLP's projection and the block output are left out.
     */
    private void blockForward(Block p, GptActivations.BlockTensors b, Tensor h, boolean output) {
        final int t = cfg.seqLen();
        final int c = cfg.dModel();
        final int heads = cfg.nHead() / tp.size();
        final int bt = rows * t;
        final int nr = residualRows;      // tokens of the residual stream this member holds: B·T, or B·T/tp
        dev.layerNorm(h, p.ln1W, p.ln1B, b.ln1(), b.ln1Mean(), b.ln1Rstd(), nr, c, cfg.lnEps());
        p.qkv.forward(b.ln1(), b.qkv(), bt);                                                   // (B, T, 3C/tp)
        dev.attention(b.qkv(), b.atty(), b.att(), rows, t, heads, cfg.headDim());             // (B, T, C/tp)
        p.proj.forward(b.atty(), b.residual2(), bt);                                           // (nr, C)
        // residual2 = h + attn, then ln2 of it: one fused pass where the device has one
        dev.residualLayerNorm(b.residual2(), h, b.residual2(), p.ln2W, p.ln2B, b.ln2(), b.ln2Mean(), b.ln2Rstd(), nr,
            c, cfg.lnEps());
        // fch keeps the pre-activation for backward; bias and GELU fused
        p.fc.forwardGelu(b.ln2(), b.fch(), b.fchGelu(), bt);                                   // (B, T, 4C/tp)
        if (output) {
            p.fcProj.forward(b.fchGelu(), b.residual3(), bt);                                  // (nr, C)
            dev.add(b.residual3(), b.residual2(), b.residual3());                              // h + mlp
        }
    }

    /** One block's input gradient: dresidual (block output's gradient) becomes the block input's. */
    private void blockBackwardInput(Block p, GptActivations.BlockTensors b, Tensor hIn) {
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
        if (sharedAtt != null) {
            // Selective recomputation: the probabilities again from the kept qkv (atty comes out bitwise as kept).
            dev.attention(b.qkv(), b.atty(), sharedAtt, rows, t, heads, cfg.headDim());
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
                                     java.util.function.IntConsumer parameterDone) {
        final int bt = rows * cfg.seqLen();
        final int base = firstBlockParam + PARAMS_PER_BLOCK * l;
        Block p = w[l];
        linearWeight(p.fcProj, b.dFcProj(), b.fchGelu(), bt, base + 11, base + 10, parameterDone);
        done(parameterDone, base + 9);                                                        // by backwardGelu
        linearWeight(p.fc, b.dfch(), b.ln2(), bt, -1, base + 8, parameterDone);
        done(parameterDone, base + 7);
        done(parameterDone, base + 6);
        linearWeight(p.proj, b.dAttProj(), b.atty(), bt, base + 5, base + 4, parameterDone);
        linearWeight(p.qkv, b.dqkv(), b.ln1(), bt, base + 3, base + 2, parameterDone);
        done(parameterDone, base + 1);
        done(parameterDone, base);
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
        if (tensorParallelOverlap && tp.size() > 1) {
            GptActivations a = slots.get(slot);
            if (a == null || !a.forwardDone) {
                throw new IllegalStateException("backward of slot " + slot + " before its forward");
            }
            return backwardOverlapped(a, gradOutput, lossScale, parameterDone);
        }
        if (sharedBlock == null) {
            Tensor g = backwardInput(slot, gradOutput, lossScale);
            backwardWeight(slot, parameterDone);
            return g;
        }
        GptActivations a = slots.get(slot);
        if (a == null || !a.forwardDone) {
            throw new IllegalStateException("backward of slot " + slot + " before its forward");
        }
        headBackwardInput(a, gradOutput, lossScale);
        int firstBlockParam = first ? 2 : 0;
        if (last) {
            headBackwardWeight(a, firstBlockParam, parameterDone);
        }
        for (int l = blocks - 1; l >= 0; l--) {
            Tensor hIn = l == 0 ? a.residualIn : a.residual3[l - 1];
            GptActivations.BlockTensors b = a.block(l);
            blockForward(w[l], b, hIn, false);
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
     * Whether the fused {@link #backward} (B and W of a micro-batch together) overlaps the tp
     * reductions with weight gradients (on by default; off gives B then W, bitwise the same result).
     * No effect at tp = 1 or on the split {@link #backwardInput} / {@link #backwardWeight}.
     */
    public void overlapTensorParallel(boolean on) {
        tensorParallelOverlap = on;
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
                                      java.util.function.IntConsumer parameterDone) {
        final int bt = rows * cfg.seqLen();
        final int firstBlockParam = first ? 2 : 0;
        if (last) {
            Tensor dlogits = a.logits;                                                         // reuse (B, T, V/tp)
            ce.backward(dlogits, a.probs, a.targets, lossScale, bt);
            PendingTensorParallelCollective reduce = lmHead.backwardInputAsync(dlogits, a.lnf, dln, bt);
            lmHead.backwardWeightInFlight(dlogits, a.lnf, bt, true);                          // (V/tp, C)
            reduce.await();
            dev.fill(dresidual, 0f);
            Tensor h = blocks == 0 ? a.residualIn : a.residual3[blocks - 1];
            dev.layerNormBackward(dresidual, dlnfW, dlnfB, dln, h, lnfW, a.lnfMean, a.lnfRstd, residualRows,
                cfg.dModel());
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
            if (sharedBlock != null) {
                blockForward(w[l], b, hIn, false);
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
                                         java.util.function.IntConsumer parameterDone) {
        final int t = cfg.seqLen();
        final int c = cfg.dModel();
        final int heads = cfg.nHead() / tp.size();
        final int bt = rows * t;
        final int nr = residualRows;
        final int base = firstBlockParam + PARAMS_PER_BLOCK * l;
        final boolean rowWeightInFlight = sp == null;
        Block p = w[l];
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
        if (sharedAtt != null) {
            dev.attention(b.qkv(), b.atty(), sharedAtt, rows, t, heads, cfg.headDim());
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

    @Override
    public void backwardWeight(int slot) {
        backwardWeight(slot, NO_LISTENER);
    }

    private static final java.util.function.IntConsumer NO_LISTENER = i -> { };
    /** Parameters per transformer block in {@link ParameterLayout} order. */
    private static final int PARAMS_PER_BLOCK = 12;

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
            freeWeightInputs.push(kept);
        }
        if (first) {
            embeddingBackwardWeight(a, parameterDone);
        }
        a.weightPending = false;
        a.forwardDone = false;
    }

    private void headBackwardWeight(GptActivations a, int firstBlockParam,
                                    java.util.function.IntConsumer parameterDone) {
        int head = firstBlockParam + PARAMS_PER_BLOCK * blocks;
        linearWeight(lmHead, a.logits, a.lnf, rows * cfg.seqLen(), -1, head + 2, parameterDone);    // (V/tp, C)
        done(parameterDone, head + 1);
        done(parameterDone, head);
    }

    private void embeddingBackwardWeight(GptActivations a, java.util.function.IntConsumer parameterDone) {
        // Position first: each reported before the next is written (W's order is reverse parameter order).
        dev.embeddingBackward(dwpe, a.dEmbedding, a.posIds, residualRows, cfg.dModel());
        done(parameterDone, 1);
        tokEmb.backwardWeight(a.dEmbedding, a.ids, a.localIds, rows * cfg.seqLen());
        done(parameterDone, 0);
    }

    /**
     * W of one linear ({@code dOut}, {@code in} as its backward takes them) and the reports of its
     * bias ({@code biasIndex}, -1 when B formed it) and weight. Under an arena the bias is formed
     * and reported before the weight, and a weight the arena keeps in row blocks is formed block by
     * block into the window, each reported once written: bitwise the rows of the whole gemm.
     */
    private void linearWeight(io.troupe.models.parallel.tp.LinearWeightGradient lin, Tensor dOut, Tensor in, int bt,
                              int biasIndex, int weightIndex, java.util.function.IntConsumer parameterDone) {
        if (gradOffsets == null) {
            lin.backwardWeight(dOut, in, bt, biasIndex >= 0);
            if (biasIndex >= 0) {
                done(parameterDone, biasIndex);
            }
            done(parameterDone, weightIndex);
            return;
        }
        // Under an arena the bias may end a bucket whose window the weight then reuses: report it first.
        if (biasIndex >= 0) {
            lin.backwardBias(dOut, bt);
            done(parameterDone, biasIndex);
        }
        if (gradOffsets[weightIndex] >= 0) {
            lin.backwardWeight(dOut, in, bt, false);
            done(parameterDone, weightIndex);
            return;
        }
        long width = layout.specs().get(weightIndex).shape()[1];
        for (int k : piecesOf[weightIndex]) {
            lin.backwardWeightRows(dOut, in, bt, (int) (arena.pieces().get(k).firstElement() / width),
                rowBlockGrads[k]);
            parameterDone.accept(k);
        }
    }

    /** Reports parameter {@code i} finished: its index, or under an arena the indices of its pieces. */
    private void done(java.util.function.IntConsumer parameterDone, int i) {
        if (piecesOf == null) {
            parameterDone.accept(i);
            return;
        }
        for (int k : piecesOf[i]) {
            parameterDone.accept(k);
        }
    }

    /** Frees the activation memory of every slot (between steps, when memory matters). */
    public void releaseActivations() {
        for (GptActivations a : slots.values()) {
            if (a.pendingWeightInputs != null) {
                freeWeightInputs.push(a.pendingWeightInputs);
            }
            a.close();
        }
        slots.clear();
    }

    private void closeRecomputeBuffers() {
        if (sharedAtt != null) {
            sharedAtt.close();
            sharedAtt = null;
        }
        if (sharedBlock != null) {
            sharedBlock.close();
            sharedBlock = null;
        }
        for (GptWeightInputs wi : allWeightInputs) {
            wi.close();
        }
        allWeightInputs.clear();
        freeWeightInputs.clear();
    }

    @Override
    public void close() {
        releaseActivations();
        closeRecomputeBuffers();
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
