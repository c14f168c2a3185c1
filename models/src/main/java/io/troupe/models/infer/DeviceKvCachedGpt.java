package io.troupe.models.infer;

import io.troupe.models.ParamSpec;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.PagedKvLayout;
import io.troupe.runtime.device.PagedRows;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@link KvCachedGpt}'s decoding forward written over any {@link Device} (a GPU through
 * {@code CudaDevice}, or the CPU): the same contract, {@link #forward(StepBatch)} returning the logits
 * of the rows that ask for them, the whole model on one device (pipeline stages are not offered here).
 *
 * <pre>
 * Legend: N tokens in the step, C = d_model, NH heads, hd = C/NH, V vocabulary, R logit rows.
 *   h = tok_emb[x] + pos_emb[p]                               (N, C)     embedding, twice
 *   per block: qkv = ln1(h) @ Wqkv^T + b                      (N, 3C)    linearRowInvariant
 *              k, v -> paged cache at p                                  pagedKvWrite
 *              h += proj(softmax(q k^T / sqrt(hd)) v)          (N, C)     pagedAttention, over [0, p]
 *              h += fcProj(gelu(fc(ln2(h))))                  (N, C)
 *   logits = ln_f(h[rows]) @ lm_head^T                        (R, V)     rows gathered by embedding
 * </pre>
 *
 * The weights are uploaded once, as device tensors. The keys and values live on the device in
 * {@link PagedKvLayout}, one tensor per layer for each; the block tables and positions are those the
 * {@link BatchScheduler} plans in the given {@link PagedKvCache}, which here only allocates blocks (it
 * may hold no layers of its own: {@code new PagedKvCache(cfg, blockSize, numBlocks, 0)}).
 *
 * <p>Batch invariance: every linear runs {@link Device#linearRowInvariant}, never {@code gemm}: a
 * BLAS, or cuBLAS on a GPU, picks its algorithm by shape (tiles, split-k), so a row's bits could change
 * with the number of rows beside it; the row-invariant form has one fma order per element (on CUDA,
 * Troupe's FP32 sgemm whatever the device's GEMM settings). LayerNorm is row-wise, GELU and the adds
 * elementwise, attention per row ({@link Device#pagedAttention}): a sequence's logits are the same
 * bits alone or among 15 others. The kernels are not {@link KvCachedGpt}'s, so the two agree within
 * float rounding, not bitwise. Not thread-safe: one step at a time (a device's calls from one thread at a
 * time: a server builds it on one thread and steps it on its loop's).
 */
public final class DeviceKvCachedGpt implements DecodingModel, AutoCloseable {
    private final GptConfig cfg;
    private final Device dev;
    private final PagedKvCache blocks;
    private final int maxBlocks;
    private final float attnScale;
    private final List<Tensor> owned = new ArrayList<>();
    private final Tensor tokEmb;
    private final Tensor posEmb;
    private final Tensor[][] layer;     // per block: ln1W, ln1B, qkvW, qkvB, projW, projB, ln2W, ln2B, fcW, fcB, pW, pB
    private final Tensor lnfW;
    private final Tensor lnfB;
    private final Tensor lmHead;
    private final Tensor[] keys;
    private final Tensor[] values;
    private final PagedRows rows;
    private int capacity;
    private Tensor h;
    private Tensor ln;
    private Tensor mean;
    private Tensor rstd;
    private Tensor qkv;
    private Tensor atty;
    private Tensor tmp;
    private Tensor fc;
    private Tensor tokens;
    private Tensor logitRows;
    private Tensor logits;
    private int[] hostTokens = new int[0];
    private int[] hostPositions = new int[0];
    private int[] hostRowTable = new int[0];
    private int[] hostBlockTables = new int[0];
    private int[] hostLogitRows = new int[0];
    private BlockTable[] seen = new BlockTable[8];

    /**
     * Uploads {@code params} (every name of {@link ParameterLayout#full}, float32) to {@code device} and
     * allocates a cache there of {@code blocks.numBlocks()} blocks of {@code blocks.blockSize()} tokens.
     */
    public DeviceKvCachedGpt(GptConfig cfg, Map<String, float[]> params, PagedKvCache blocks, Device device) {
        this.cfg = cfg;
        this.dev = device;
        this.blocks = blocks;
        int c = cfg.dModel();
        int v = cfg.vocabSize();
        this.maxBlocks = blocks.blocksFor(cfg.seqLen());
        this.attnScale = (float) (1.0 / Math.sqrt(cfg.headDim()));
        this.tokEmb = upload(params, "tok_emb.weight", v * c);
        this.posEmb = upload(params, "pos_emb.weight", cfg.seqLen() * c);
        this.layer = new Tensor[cfg.nLayer()][];
        String[] names = {"ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
            "attn.proj.bias", "ln2.weight", "ln2.bias", "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight",
            "mlp.proj.bias"};
        int[] sizes = {c, c, 3 * c * c, 3 * c, c * c, c, c, c, 4 * c * c, 4 * c, 4 * c * c, c};
        for (int l = 0; l < cfg.nLayer(); l++) {
            layer[l] = new Tensor[names.length];
            for (int i = 0; i < names.length; i++) {
                layer[l][i] = upload(params, "blocks." + l + "." + names[i], sizes[i]);
            }
        }
        this.lnfW = upload(params, "ln_f.weight", c);
        this.lnfB = upload(params, "ln_f.bias", c);
        this.lmHead = upload(params, "lm_head.weight", v * c);
        long perLayer = PagedKvLayout.layerElements(blocks.numBlocks(), blocks.blockSize(), c);
        if (perLayer > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("KV cache layer too large for one tensor: " + perLayer + " floats");
        }
        this.keys = new Tensor[cfg.nLayer()];
        this.values = new Tensor[cfg.nLayer()];
        for (int l = 0; l < cfg.nLayer(); l++) {
            keys[l] = own(dev.allocate((int) perLayer));
            values[l] = own(dev.allocate((int) perLayer));
        }
        this.rows = new PagedRows(dev, maxBlocks);
    }

    /** Over a single-device Gpt's flat parameters ({@link ParameterLayout#full} order). */
    public static DeviceKvCachedGpt fromFlat(GptConfig cfg, float[] flat, PagedKvCache blocks, Device device) {
        Map<String, float[]> p = new HashMap<>();
        for (ParamSpec s : ParameterLayout.full(cfg).specs()) {
            p.put(s.name(), Arrays.copyOfRange(flat, (int) s.localOffset(), (int) (s.localOffset() + s.numel())));
        }
        return new DeviceKvCachedGpt(cfg, p, blocks, device);
    }

    private Tensor upload(Map<String, float[]> params, String name, int numel) {
        float[] values = params.get(name);
        if (values == null || values.length != numel) {
            throw new IllegalArgumentException("parameter '" + name + "' must hold " + numel + " floats for model "
                + cfg.name() + ": " + (values == null ? "missing" : values.length));
        }
        Tensor t = own(dev.allocate(numel));
        dev.copyFromHost(values, t);
        return t;
    }

    private Tensor own(Tensor t) {
        owned.add(t);
        return t;
    }

    public GptConfig config() {
        return cfg;
    }

    /** The block allocator whose tables the steps use. */
    public PagedKvCache cache() {
        return blocks;
    }

    public Device device() {
        return dev;
    }

    private void ensureScratch(int n) {
        if (n <= capacity) {
            return;
        }
        int cap = Math.max(n, Math.max(16, 2 * capacity));
        for (Tensor t : new Tensor[] {h, ln, mean, rstd, qkv, atty, tmp, fc, tokens, logitRows, logits}) {
            if (t != null) {
                owned.remove(t);
                t.close();
            }
        }
        int c = cfg.dModel();
        h = own(dev.allocate(cap, c));
        ln = own(dev.allocate(cap, c));
        mean = own(dev.allocate(cap));
        rstd = own(dev.allocate(cap));
        qkv = own(dev.allocate(cap, 3 * c));
        atty = own(dev.allocate(cap, c));
        tmp = own(dev.allocate(cap, c));
        fc = own(dev.allocate(cap, 4 * c));
        tokens = own(dev.allocate(DType.I32, cap));
        logitRows = own(dev.allocate(DType.I32, cap));
        logits = own(dev.allocate(cap, cfg.vocabSize()));
        hostTokens = new int[cap];
        hostPositions = new int[cap];
        hostRowTable = new int[cap];
        hostLogitRows = new int[cap];
        capacity = cap;
    }

    /**
     * Runs one step: writes every token's keys and values into its sequence's blocks (which must
     * already cover its position) and returns the logits (logitCount, V) of the marked rows.
     */
    public float[] forward(StepBatch batch) {
        final int n = batch.size();
        final int c = cfg.dModel();
        final int r = batch.logitCount();
        if (n == 0) {
            return new float[0];
        }
        ensureScratch(n);
        planRows(batch, n);
        dev.copyFromHost(hostTokens, tokens);
        dev.embedding(h, tokens, tokEmb, n, c, false);                                   // (N, C)
        dev.embedding(h, rows.positionsOnDevice(), posEmb, n, c, true);
        for (int l = 0; l < cfg.nLayer(); l++) {
            block(l, n, c);
        }
        if (r == 0) {
            dev.synchronize();
            return new float[0];
        }
        for (int j = 0; j < r; j++) {
            hostLogitRows[j] = batch.logitRow(j);
        }
        dev.copyFromHost(hostLogitRows, logitRows);
        dev.embedding(tmp, logitRows, h, r, c, false);                                    // gather (R, C)
        dev.layerNorm(tmp, lnfW, lnfB, ln, mean, rstd, r, c, cfg.lnEps());
        dev.linearRowInvariant(r, cfg.vocabSize(), c, ln, lmHead, null, logits);          // (R, V)
        float[] out = new float[r * cfg.vocabSize()];
        dev.copyToHost(logits.view(0, r, cfg.vocabSize()), out);
        return out;
    }

    private void block(int l, int n, int c) {
        Tensor[] w = layer[l];
        int bs = blocks.blockSize();
        dev.layerNorm(h, w[0], w[1], ln, mean, rstd, n, c, cfg.lnEps());
        dev.linearRowInvariant(n, 3 * c, c, ln, w[2], w[3], qkv);                          // (N, 3C)
        dev.pagedKvWrite(qkv, keys[l], values[l], rows, c, bs);
        dev.pagedAttention(qkv, keys[l], values[l], atty, rows, cfg.nHead(), cfg.headDim(), bs, attnScale);
        dev.linearRowInvariant(n, c, c, atty, w[4], w[5], tmp);                           // (N, C)
        Tensor hn = h.view(0, n, c);
        dev.add(hn, tmp.view(0, n, c), hn);
        dev.layerNorm(h, w[6], w[7], ln, mean, rstd, n, c, cfg.lnEps());
        dev.linearRowInvariant(n, 4 * c, c, ln, w[8], w[9], fc);                          // (N, 4C)
        dev.gelu(fc, fc, (long) n * 4 * c);
        dev.linearRowInvariant(n, c, 4 * c, fc, w[10], w[11], tmp);                       // (N, C)
        dev.add(hn, tmp.view(0, n, c), hn);
    }

    /** Tokens, positions and block tables of the step (each distinct sequence's table once), checked and uploaded. */
    private void planRows(StepBatch batch, int n) {
        int tables = 0;
        for (int i = 0; i < n; i++) {
            int token = batch.token(i);
            int p = batch.position(i);
            if (token < 0 || token >= cfg.vocabSize()) {
                throw new IllegalArgumentException("token id " + token + " outside the vocabulary [0, "
                    + cfg.vocabSize() + ")");
            }
            if (p < 0 || p >= cfg.seqLen()) {
                throw new IllegalArgumentException("position " + p + " outside the context [0, " + cfg.seqLen() + ")");
            }
            BlockTable t = batch.table(i);
            if (p / blocks.blockSize() >= t.size()) {
                throw new IllegalArgumentException("position " + p + " is past the " + t.size() + " blocks its"
                    + " sequence holds");
            }
            int found = -1;
            for (int s = tables - 1; s >= 0; s--) {                       // a sequence's rows are adjacent
                if (seen[s] == t) {
                    found = s;
                    break;
                }
            }
            if (found < 0) {
                if (tables == seen.length) {
                    seen = Arrays.copyOf(seen, 2 * tables);
                }
                if (hostBlockTables.length < (tables + 1) * maxBlocks) {
                    hostBlockTables = Arrays.copyOf(hostBlockTables, Math.max(2 * hostBlockTables.length,
                        (tables + 1) * maxBlocks));
                }
                int held = Math.min(t.size(), maxBlocks);
                for (int b = 0; b < maxBlocks; b++) {
                    hostBlockTables[tables * maxBlocks + b] = b < held ? t.block(b) : 0;
                }
                seen[tables] = t;
                found = tables++;
            }
            hostTokens[i] = token;
            hostPositions[i] = p;
            hostRowTable[i] = found;
        }
        Arrays.fill(seen, 0, tables, null);
        rows.set(n, hostPositions, hostRowTable, tables, hostBlockTables);
    }

    @Override
    public void close() {
        dev.synchronize();
        rows.close();
        for (Tensor t : owned) {
            t.close();
        }
        owned.clear();
    }
}
