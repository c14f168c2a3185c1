package io.troupe.models.gpt;

import io.troupe.models.ParamSpec;
import io.troupe.models.parallel.TensorParallelPlacement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The parameters of a GPT (or of one pipeline stage of it) in nanoGPT order, packed into one flat
 * buffer so gradients reduce as flat buckets. Names follow nanoGPT: {@code tok_emb.weight},
 * {@code blocks.3.attn.qkv.weight}, {@code lm_head.weight}.
 *
 * <p>Initialisation (the recipe of the parity golden file): one LCG walk over all parameters of
 * the whole model in this order, value {@code center + (2u - 1) * halfwidth} with A = 0.02*sqrt(3)
 * for embeddings and input projections, A/sqrt(2*n_layer) for residual projections, 0.01 for biases,
 * LayerNorm weight 1 +- 0.1 and bias 0 +- 0.01.
 */
public final class ParameterLayout {
    private final List<ParamSpec> specs;
    private final long numel;

    private ParameterLayout(List<ParamSpec> specs, long numel) {
        this.specs = Collections.unmodifiableList(specs);
        this.numel = numel;
    }

    /** The whole model's layout. */
    public static ParameterLayout full(GptConfig cfg) {
        return stage(cfg, 0, cfg.nLayer(), true, true);
    }

    /** The layout of a stage holding blocks [firstBlock, endBlock) and optionally embedding and head. */
    public static ParameterLayout stage(GptConfig cfg, int firstBlock, int endBlock, boolean embedding, boolean head) {
        return stage(cfg, firstBlock, endBlock, embedding, head, 1);
    }

    /**
     * The layout of one tensor-parallel member of a stage: every parameter as the member's shard
     * ({@link GptPlacements}), so shapes and sizes are local; {@code globalOffset} stays the offset
     * of the whole tensor in the unsplit model. The same for every member (shards are equal).
     */
    public static ParameterLayout stage(GptConfig cfg, int firstBlock, int endBlock, boolean embedding, boolean head,
                                        int tp) {
        GptPlacements.check(cfg, tp);
        Builder all = new Builder(cfg);
        all.build(0, cfg.nLayer(), true, true);
        Builder mine = new Builder(cfg);
        mine.build(firstBlock, endBlock, embedding, head);
        List<ParamSpec> out = new ArrayList<>();
        long local = 0;
        for (ParamSpec s : mine.specs) {
            long global = all.globalOffsetOf(s.name());
            int[] shape = s.shape();
            if (GptPlacements.of(s.name(), false) instanceof TensorParallelPlacement.Split split) {
                shape = split.split().localShape(s.name(), shape, tp);
            }
            long numel = s.numel() / (shape == s.shape() ? 1 : tp);
            out.add(new ParamSpec(s.name(), shape, global, local, numel, s.initCenter(), s.initHalfwidth(),
                s.decay()));
            local += numel;
        }
        return new ParameterLayout(out, local);
    }

    public List<ParamSpec> specs() {
        return specs;
    }

    public long numel() {
        return numel;
    }

    public ParamSpec get(String name) {
        for (ParamSpec s : specs) {
            if (s.name().equals(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException("no parameter named '" + name + "'");
    }

    private static final class Builder {
        private final GptConfig cfg;
        private final List<ParamSpec> specs = new ArrayList<>();
        private long offset;

        Builder(GptConfig cfg) {
            this.cfg = cfg;
        }

        void build(int firstBlock, int endBlock, boolean embedding, boolean head) {
            int c = cfg.dModel();
            double a = 0.02 * Math.sqrt(3);
            double aProj = a / Math.sqrt(2.0 * cfg.nLayer());
            if (embedding) {
                add("tok_emb.weight", a, 0, true, cfg.vocabSize(), c);
                add("pos_emb.weight", a, 0, true, cfg.seqLen(), c);
            }
            for (int l = firstBlock; l < endBlock; l++) {
                String p = "blocks." + l + ".";
                add(p + "ln1.weight", 0.1, 1, false, c);
                add(p + "ln1.bias", 0.01, 0, false, c);
                add(p + "attn.qkv.weight", a, 0, true, 3 * c, c);
                add(p + "attn.qkv.bias", 0.01, 0, false, 3 * c);
                add(p + "attn.proj.weight", aProj, 0, true, c, c);
                add(p + "attn.proj.bias", 0.01, 0, false, c);
                add(p + "ln2.weight", 0.1, 1, false, c);
                add(p + "ln2.bias", 0.01, 0, false, c);
                add(p + "mlp.fc.weight", a, 0, true, 4 * c, c);
                add(p + "mlp.fc.bias", 0.01, 0, false, 4 * c);
                add(p + "mlp.proj.weight", aProj, 0, true, c, 4 * c);
                add(p + "mlp.proj.bias", 0.01, 0, false, c);
            }
            if (head) {
                add("ln_f.weight", 0.1, 1, false, c);
                add("ln_f.bias", 0.01, 0, false, c);
                add("lm_head.weight", a, 0, true, cfg.vocabSize(), c);
            }
        }

        private void add(String name, double halfwidth, double center, boolean decay, int... shape) {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            specs.add(new ParamSpec(name, shape, offset, offset, n, center, halfwidth, decay));
            offset += n;
        }

        long globalOffsetOf(String name) {
            for (ParamSpec s : specs) {
                if (s.name().equals(name)) {
                    return s.globalOffset();
                }
            }
            throw new IllegalStateException("missing " + name);
        }
    }
}
