package io.troupe.models.infer;

import io.troupe.models.gpt.GptConfig;

/**
 * The GPT forward for generation, nanoGPT order as {@code io.troupe.models.gpt.Gpt}, over a paged
 * KV cache: each step feeds only new tokens; the keys and values of earlier positions are read
 * from the cache through the sequence's block table.
 *
 * <pre>
 * Legend: N tokens in the step (all sequences concatenated), C = d_model, NH heads, hd = C/NH,
 * V vocabulary, P = a token's position (it attends to positions [0, P] of its own sequence).
 *   h = tok_emb[x] + pos_emb[p]                          (N, C)
 *   per block: q,k,v = ln1(h) @ Wqkv^T;  k,v -> cache    (N, 3C)
 *              h += proj(softmax(q k^T / sqrt(hd)) v)    (N, C)   per token, over its cached P+1
 *              h += fcProj(gelu(fc(ln2(h))))             (N, C)
 *   logits = ln_f(h[rows]) @ lm_head^T                   (R, V)   only the rows asked for
 * </pre>
 *
 * Every kernel is row-independent with a fixed reduction order ({@link RowKernels}), so a token's
 * logits are bit-identical whatever else shares the step, and a prefill split into chunks equals
 * the unsplit one. Not thread-safe: one step at a time (scratch is reused).
 *
 * <p>A pipeline stage holds blocks {@code [firstBlock, endBlock)} and a cache of those layers only;
 * {@link #stageForward} takes the previous stage's hidden states (the first stage embeds the
 * tokens instead) and returns its own (the last stage returns the logits). The stages run in
 * sequence compute exactly the operations of the whole model, so the logits are bit-identical.
 */
public final class KvCachedGpt implements DecodingModel {
    private final InferenceWeights w;
    private final PagedKvCache cache;
    private final GptConfig cfg;
    private final float attnScale;
    private final int firstBlock;
    private final int endBlock;
    private RowSplitter rows;
    private boolean vectorApi = Fp32Linear.VECTOR_API;
    private float[] h = new float[0];
    private float[] ln = new float[0];
    private float[] qkv = new float[0];
    private float[] atty = new float[0];
    private float[] tmp = new float[0];
    private float[] fc = new float[0];
    private final float[][] scores;     // (NH, T rounded up to whole blocks) one token's attention rows
    private final float[] kvRow;
    private final float[] pRow;
    private final float[] outRow;
    private final int[] posOff;         // one token's cached positions: offsets in a layer's v
    private int[] logitRowIndex = new int[16];   // the last block's logit rows (lastBlockForLogitRows)
    private final int[] blockBase;      // one token's blocks: offsets in a layer's k and v
    private final float[] lnLanes = new float[RowKernels.LANES];

    public KvCachedGpt(InferenceWeights weights, PagedKvCache cache) {
        this(weights, cache, 0, weights.config().nLayer());
    }

    /** A pipeline stage holding blocks {@code [firstBlock, endBlock)}; {@code cache} holds exactly those layers. */
    public KvCachedGpt(InferenceWeights weights, PagedKvCache cache, int firstBlock, int endBlock) {
        this.w = weights;
        this.cache = cache;
        this.cfg = weights.config();
        if (firstBlock < 0 || endBlock < firstBlock || endBlock > cfg.nLayer()) {
            throw new IllegalArgumentException("stage blocks [" + firstBlock + ", " + endBlock + ") outside [0, "
                + cfg.nLayer() + "]");
        }
        if (firstBlock < weights.firstBlock() || endBlock > weights.endBlock()) {
            throw new IllegalArgumentException("stage blocks [" + firstBlock + ", " + endBlock + ") not all held by"
                + " the weights, which hold [" + weights.firstBlock() + ", " + weights.endBlock() + ")");
        }
        if (cache.layers() != endBlock - firstBlock) {
            throw new IllegalArgumentException("KV cache holds " + cache.layers() + " layers, the stage has "
                + (endBlock - firstBlock) + " blocks");
        }
        this.firstBlock = firstBlock;
        this.endBlock = endBlock;
        this.attnScale = (float) (1.0 / Math.sqrt(cfg.headDim()));
        this.scores = new float[cfg.nHead()][cache.blocksFor(cfg.seqLen()) * cache.blockSize()];
        this.kvRow = new float[cfg.dModel()];
        this.pRow = new float[cfg.dModel()];
        this.outRow = new float[cfg.dModel()];
        this.posOff = new int[cfg.seqLen()];
        this.blockBase = new int[cache.blocksFor(cfg.seqLen())];
    }

    public GptConfig config() {
        return cfg;
    }

    public PagedKvCache cache() {
        return cache;
    }

    public InferenceWeights weights() {
        return w;
    }

    /**
     * Splits the rows of every linear layer over {@code splitter}'s threads (null: the calling
     * thread alone). Each row is computed exactly as before, so the logits do not change.
     */
    public void splitRows(RowSplitter splitter) {
        this.rows = splitter;
    }

    /**
     * Attention on the Vector API kernel (where this JVM has the module: the default) or on the
     * plain loops; both give the same bits (tests compare them).
     */
    void useVectorApi(boolean use) {
        if (use && !Fp32Linear.VECTOR_API) {
            throw new IllegalStateException("this JVM has no jdk.incubator.vector (start it with --add-modules"
                + " jdk.incubator.vector)");
        }
        this.vectorApi = use;
    }

    private void linear(LinearWeights lin, float[] x, int n, float[] y) {
        RowSplitter r = rows;
        if (r == null) {
            lin.forward(x, n, y);
        } else {
            r.run(n, (from, to) -> lin.forwardRows(x, from, to, y));
        }
    }

    /** True when this stage embeds the tokens (it holds block 0). */
    public boolean isFirstStage() {
        return firstBlock == 0;
    }

    /** True when this stage computes the logits (it holds the last block). */
    public boolean isLastStage() {
        return endBlock == cfg.nLayer();
    }

    private void ensureScratch(int n) {
        int c = cfg.dModel();
        if (h.length < n * c) {
            h = new float[n * c];
            ln = new float[n * c];
            qkv = new float[n * 3 * c];
            atty = new float[n * c];
            tmp = new float[n * c];
            fc = new float[n * 4 * c];
        }
    }

    /**
     * Runs one step: writes the keys and values of every token into its sequence's blocks (which
     * must already cover its position) and returns the logits (logitCount, V) of the marked rows.
     * The whole model only.
     */
    public float[] forward(StepBatch batch) {
        if (!isFirstStage() || !isLastStage()) {
            throw new IllegalStateException("forward needs the whole model; this stage holds blocks [" + firstBlock
                + ", " + endBlock + ") of " + cfg.nLayer() + ": use stageForward");
        }
        return stageForward(batch, null);
    }

    /**
     * Runs this stage's part of one step. {@code input} is the previous stage's output (N, C), or
     * null on the first stage, which embeds the tokens. Returns the logits (logitCount, V) on the
     * last stage, else a new array (N, C) of hidden states for the next stage.
     */
    public float[] stageForward(StepBatch batch, float[] input) {
        final int n = batch.size();
        final int c = cfg.dModel();
        ensureScratch(n);
        if (isFirstStage()) {
            embed(batch, n, c);
        } else {
            if (input == null || input.length < n * c) {
                throw new IllegalArgumentException("stage input must hold " + n + " x " + c + " floats: "
                    + (input == null ? "null" : input.length));
            }
            System.arraycopy(input, 0, h, 0, n * c);
        }
        int r = batch.logitCount();
        // on the last stage, the last block needs only its keys and values for the rows whose logits nobody
        // asks for (a prompt's rows but its last): the rest of that block runs on the logit rows alone
        boolean prune = isLastStage() && r < n;
        for (int l = firstBlock; l < endBlock; l++) {
            if (prune && l == endBlock - 1) {
                lastBlockForLogitRows(batch, l, n, c);
            } else {
                block(batch, l, n, c);
            }
        }
        if (!isLastStage()) {
            return java.util.Arrays.copyOf(h, n * c);
        }
        for (int j = 0; j < r; j++) {
            System.arraycopy(h, (prune ? j : batch.logitRow(j)) * c, tmp, j * c, c);    // gather (R, C)
        }
        layerNorm(tmp, w.lnfW(), w.lnfB(), ln, r);
        float[] logits = new float[r * cfg.vocabSize()];
        linear(w.lmHead(), ln, r, logits);                                    // (R, V)
        return logits;
    }

    private void embed(StepBatch batch, int n, int c) {
        final int t = cfg.seqLen();
        for (int i = 0; i < n; i++) {
            int p = batch.position(i);
            if (p < 0 || p >= t) {
                throw new IllegalArgumentException("position " + p + " outside the context [0, " + t + ")");
            }
            w.tokEmb().lookup(batch.token(i), h, i * c);                    // (N, C)
            float[] pos = w.posEmb();
            for (int j = 0; j < c; j++) {
                h[i * c + j] += pos[p * c + j];
            }
        }
    }

    private void block(StepBatch batch, int l, int n, int c) {
        InferenceWeights.Block b = w.block(l);
        int layer = l - firstBlock;                                           // the stage cache's index
        layerNorm(h, b.ln1W(), b.ln1B(), ln, n);
        linear(b.qkv(), ln, n, qkv);                                          // (N, 3C)
        storeKeysValues(batch, layer, n, c);
        attend(batch, layer, c, null, n);                                     // (N, C)
        rest(b, n, c);
    }

    /**
     * The model's last block when only some rows' logits are asked for: every row's keys and values
     * go into the cache (later tokens attend to them), then the attention and the rest of the block
     * run on the logit rows alone, which end up first in {@code h} ((R, C), in their order). Each
     * computed row does exactly what {@link #block} does for it: the same bits.
     */
    private void lastBlockForLogitRows(StepBatch batch, int l, int n, int c) {
        InferenceWeights.Block b = w.block(l);
        int layer = l - firstBlock;
        layerNorm(h, b.ln1W(), b.ln1B(), ln, n);
        linear(b.qkv(), ln, n, qkv);
        storeKeysValues(batch, layer, n, c);
        int r = batch.logitCount();
        if (r == 0) {
            return;                                                           // a prefill that asks for none
        }
        if (logitRowIndex.length < r) {
            logitRowIndex = new int[Math.max(r, 2 * logitRowIndex.length)];
        }
        for (int j = 0; j < r; j++) {
            int i = batch.logitRow(j);                                        // ascending, so i >= j
            logitRowIndex[j] = i;
            System.arraycopy(h, i * c, h, j * c, c);                          // the residual stream, compacted
        }
        attend(batch, layer, c, logitRowIndex, r);                           // (R, C)
        rest(b, r, c);
    }

    /** The block after the attention, on the first {@code n} rows: projection, residual, LayerNorm, MLP, residual. */
    private void rest(InferenceWeights.Block b, int n, int c) {
        linear(b.proj(), atty, n, tmp);
        RowKernels.addInPlace(h, tmp, n * c);
        layerNorm(h, b.ln2W(), b.ln2B(), ln, n);
        linear(b.fc(), ln, n, fc);                                            // (N, 4C)
        RowKernels.gelu(fc, n * 4 * c);
        linear(b.fcProj(), fc, n, tmp);                                       // (N, C)
        RowKernels.addInPlace(h, tmp, n * c);
    }

    /** {@link RowKernels#layerNorm} over n rows of d_model, on the Vector API where it runs (the same bits). */
    private void layerNorm(float[] x, float[] weight, float[] bias, float[] out, int n) {
        if (vectorApi && VectorRowKernels.fits()) {
            VectorRowKernels.layerNorm(x, weight, bias, out, n, cfg.dModel(), cfg.lnEps(), lnLanes);
        } else {
            RowKernels.layerNorm(x, weight, bias, out, n, cfg.dModel(), cfg.lnEps());
        }
    }

    private void storeKeysValues(StepBatch batch, int layer, int n, int c) {
        if (cache.precision() == KvPrecision.BF16) {
            storeKeysValues16(batch, layer, n, c);
            return;
        }
        float[] kc = cache.keys(layer);
        float[] vc = cache.values(layer);
        final int bs = cache.blockSize();
        for (int i = 0; i < n; i++) {
            int kOff = cache.keyOffset(batch.table(i), batch.position(i));
            int ko = i * 3 * c + c;
            for (int ch = 0; ch < c; ch++) {
                kc[kOff + ch * bs] = qkv[ko + ch];                             // keys channel-major in the block
            }
            System.arraycopy(qkv, i * 3 * c + 2 * c, vc, cache.offset(batch.table(i), batch.position(i)), c);
        }
    }

    /** As {@link #storeKeysValues}, each value rounded to bfloat16 ({@link KvPrecision#toBf16}). */
    private void storeKeysValues16(StepBatch batch, int layer, int n, int c) {
        short[] kc = cache.keys16(layer);
        short[] vc = cache.values16(layer);
        final int bs = cache.blockSize();
        for (int i = 0; i < n; i++) {
            int kOff = cache.keyOffset(batch.table(i), batch.position(i));
            int vOff = cache.offset(batch.table(i), batch.position(i));
            int ko = i * 3 * c + c;
            int vo = i * 3 * c + 2 * c;
            for (int ch = 0; ch < c; ch++) {
                kc[kOff + ch * bs] = KvPrecision.toBf16(qkv[ko + ch]);
                vc[vOff + ch] = KvPrecision.toBf16(qkv[vo + ch]);
            }
        }
    }

    /**
     * Causal attention over its own cached positions of the token in row {@code rows[o]} (row o when
     * {@code rows} is null), into row o of the output, for o below {@code count}. With the Vector
     * API (and a block size and head width its kernels take) the loops read the cache in place
     * ({@link VectorAttentionKernel}: the scores a block of positions at a time, each lane a
     * position; the same bits); otherwise one score at a time, and rows of v copied into offset-0
     * scratch so the element-wise loop vectorises. Per token and head the reduction order is fixed
     * (positions ascending, head dimensions in {@link RowKernels#sum}'s order); the softmax's
     * exponentials by {@link RowKernels#exp}.
     */
    private void attend(StepBatch batch, int layer, int c, int[] rows, int count) {
        final int hd = cfg.headDim();
        final int nh = cfg.nHead();
        final boolean half = cache.precision() == KvPrecision.BF16;
        final float[] kc = half ? null : cache.keys(layer);
        final float[] vc = half ? null : cache.values(layer);
        final short[] kc16 = half ? cache.keys16(layer) : null;
        final short[] vc16 = half ? cache.values16(layer) : null;
        final int bs = cache.blockSize();
        final boolean vectorScores = vectorApi && VectorAttentionKernel.scoresFit(bs);
        final boolean vectorValues = vectorApi && VectorAttentionKernel.valuesFit(hd);
        for (int o = 0; o < count; o++) {
            final int i = rows == null ? o : rows[o];                        // the query's row; its output: row o
            final int positions = batch.position(i) + 1;
            cache.offsets(batch.table(i), positions, posOff);
            cache.blockBases(batch.table(i), positions, blockBase);
            final int qo = i * 3 * c;
            if (vectorScores && half) {
                VectorAttentionKernel.scores16(qkv, qo, kc16, blockBase, positions, nh, hd, bs, attnScale, scores);
            } else if (vectorScores) {
                VectorAttentionKernel.scores(qkv, qo, kc, blockBase, positions, nh, hd, bs, attnScale, scores);
            } else {
                for (int u = 0; u < positions; u++) {
                    int kOff = blockBase[u / bs] + u % bs;
                    for (int h = 0; h < nh; h++) {
                        scores[h][u] = (half ? headScore16(qkv, qo + h * hd, kc16, kOff + h * hd * bs, bs, hd)
                            : headScore(qkv, qo + h * hd, kc, kOff + h * hd * bs, bs, hd)) * attnScale;
                    }
                }
            }
            if (vectorApi) {
                VectorAttentionKernel.softmaxHeads(scores, nh, positions);
            } else {
                for (int h = 0; h < nh; h++) {
                    float[] s = scores[h];
                    float max = Float.NEGATIVE_INFINITY;
                    for (int u = 0; u < positions; u++) {
                        max = Math.max(max, s[u]);
                    }
                    double sum = 0;
                    for (int u = 0; u < positions; u++) {
                        float e = RowKernels.exp(s[u] - max);
                        s[u] = e;
                        sum += e;
                    }
                    float inv = (float) (1.0 / sum);
                    for (int u = 0; u < positions; u++) {
                        s[u] *= inv;
                    }
                }
            }
            if (vectorValues && half) {
                VectorAttentionKernel.weightedValues16(scores, vc16, posOff, positions, c, hd, atty, o * c);
                continue;
            }
            if (vectorValues) {
                VectorAttentionKernel.weightedValues(scores, vc, posOff, positions, c, hd, atty, o * c);
                continue;
            }
            java.util.Arrays.fill(outRow, 0f);
            for (int u = 0; u < positions; u++) {
                if (half) {
                    for (int ch = 0; ch < c; ch++) {
                        kvRow[ch] = KvPrecision.fromBf16(vc16[posOff[u] + ch]);
                    }
                } else {
                    System.arraycopy(vc, posOff[u], kvRow, 0, c);
                }
                for (int h = 0; h < nh; h++) {
                    java.util.Arrays.fill(pRow, h * hd, (h + 1) * hd, scores[h][u]);
                }
                RowKernels.multiplyAdd(pRow, kvRow, outRow, c);                   // out += p * v, all heads
            }
            System.arraycopy(outRow, 0, atty, o * c, c);
        }
    }

    /**
     * One head's q . k in {@link RowKernels#sum}'s order (lane l adds the products of channels 4g + l
     * for g ascending, then (s0 + s1) + (s2 + s3), then the tail channels in order): the query's
     * channels from {@code q[qOff]}, the key's from {@code k[kOff]} at a stride of {@code bs}.
     */
    static float headScore(float[] q, int qOff, float[] k, int kOff, int bs, int hd) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        int d = 0;
        for (; d + 3 < hd; d += 4) {
            s0 += q[qOff + d] * k[kOff + d * bs];
            s1 += q[qOff + d + 1] * k[kOff + (d + 1) * bs];
            s2 += q[qOff + d + 2] * k[kOff + (d + 2) * bs];
            s3 += q[qOff + d + 3] * k[kOff + (d + 3) * bs];
        }
        float s = (s0 + s1) + (s2 + s3);
        for (; d < hd; d++) {
            s += q[qOff + d] * k[kOff + d * bs];
        }
        return s;
    }

    /** {@link #headScore} over bfloat16 keys, each widened exactly ({@link KvPrecision#fromBf16}). */
    static float headScore16(float[] q, int qOff, short[] k, int kOff, int bs, int hd) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        int d = 0;
        for (; d + 3 < hd; d += 4) {
            s0 += q[qOff + d] * KvPrecision.fromBf16(k[kOff + d * bs]);
            s1 += q[qOff + d + 1] * KvPrecision.fromBf16(k[kOff + (d + 1) * bs]);
            s2 += q[qOff + d + 2] * KvPrecision.fromBf16(k[kOff + (d + 2) * bs]);
            s3 += q[qOff + d + 3] * KvPrecision.fromBf16(k[kOff + (d + 3) * bs]);
        }
        float s = (s0 + s1) + (s2 + s3);
        for (; d < hd; d++) {
            s += q[qOff + d] * KvPrecision.fromBf16(k[kOff + d * bs]);
        }
        return s;
    }
}
