package io.troupe.models.infer;

import io.troupe.models.ParamSpec;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The weights of a whole GPT for inference, read by parameter name, so a checkpoint written under
 * any training layout (its stages' shards together hold every name) loads the same. Linears and
 * the token embedding are int8 under {@link Quantization#INT8}; LayerNorms, biases and the position
 * embedding stay float32.
 */
public final class InferenceWeights {
    /** One transformer block. */
    public record Block(float[] ln1W, float[] ln1B, LinearWeights qkv, LinearWeights proj,
                        float[] ln2W, float[] ln2B, LinearWeights fc, LinearWeights fcProj) {
    }

    private final GptConfig cfg;
    private final Quantization quantization;
    private final EmbeddingTable tokEmb;
    private final float[] posEmb;
    private final Block[] blocks;
    private final float[] lnfW;
    private final float[] lnfB;
    private final LinearWeights lmHead;

    private InferenceWeights(GptConfig cfg, Quantization quantization, Map<String, float[]> p) {
        this.cfg = cfg;
        this.quantization = quantization;
        int c = cfg.dModel();
        int v = cfg.vocabSize();
        this.tokEmb = EmbeddingTable.of(p.get("tok_emb.weight"), v, c, quantization);
        this.posEmb = p.get("pos_emb.weight");
        this.blocks = new Block[cfg.nLayer()];
        for (int l = 0; l < blocks.length; l++) {
            String n = "blocks." + l + ".";
            blocks[l] = new Block(p.get(n + "ln1.weight"), p.get(n + "ln1.bias"),
                LinearWeights.of(p.get(n + "attn.qkv.weight"), p.get(n + "attn.qkv.bias"), 3 * c, c, quantization),
                LinearWeights.of(p.get(n + "attn.proj.weight"), p.get(n + "attn.proj.bias"), c, c, quantization),
                p.get(n + "ln2.weight"), p.get(n + "ln2.bias"),
                LinearWeights.of(p.get(n + "mlp.fc.weight"), p.get(n + "mlp.fc.bias"), 4 * c, c, quantization),
                LinearWeights.of(p.get(n + "mlp.proj.weight"), p.get(n + "mlp.proj.bias"), c, 4 * c, quantization));
        }
        this.lnfW = p.get("ln_f.weight");
        this.lnfB = p.get("ln_f.bias");
        this.lmHead = LinearWeights.of(p.get("lm_head.weight"), null, v, c, quantization);
    }

    /**
     * Builds from the whole model's parameters by name ({@link ParameterLayout#full} names); every
     * name must be present with its full shape.
     */
    public static InferenceWeights fromParameters(GptConfig cfg, Map<String, float[]> byName,
            Quantization quantization) {
        Map<String, float[]> p = new HashMap<>();
        for (ParamSpec s : ParameterLayout.full(cfg).specs()) {
            float[] values = byName.get(s.name());
            if (values == null) {
                throw new CheckpointException("checkpoint has no parameter '" + s.name() + "'");
            }
            if (values.length != s.numel()) {
                throw new CheckpointException("parameter '" + s.name() + "' has " + values.length + " values, model "
                    + cfg.name() + " expects " + s.numel() + " " + Arrays.toString(s.shape()));
            }
            p.put(s.name(), values);
        }
        return new InferenceWeights(cfg, quantization, p);
    }

    /** Builds from a flat buffer in {@link ParameterLayout#full} order (a single-device Gpt's params). */
    public static InferenceWeights fromFlat(GptConfig cfg, float[] flat, Quantization quantization) {
        Map<String, float[]> p = new HashMap<>();
        for (ParamSpec s : ParameterLayout.full(cfg).specs()) {
            p.put(s.name(), Arrays.copyOfRange(flat, (int) s.localOffset(), (int) (s.localOffset() + s.numel())));
        }
        return new InferenceWeights(cfg, quantization, p);
    }

    /** Loads a committed checkpoint (a step directory, or a run / checkpoints directory: its latest step). */
    public static InferenceWeights load(Path checkpoint, Quantization quantization) {
        Checkpoints.Loaded loaded = Checkpoints.load(Checkpoints.resolve(checkpoint));
        Map<String, float[]> byName = new HashMap<>();
        for (ShardState s : loaded.shards().values()) {
            for (ShardState.Entry e : s.entries().values()) {
                byName.putIfAbsent(e.name(), e.param());
            }
        }
        return fromParameters(loaded.manifest().model(), byName, quantization);
    }

    public GptConfig config() {
        return cfg;
    }

    public Quantization quantization() {
        return quantization;
    }

    public EmbeddingTable tokEmb() {
        return tokEmb;
    }

    public float[] posEmb() {
        return posEmb;
    }

    public Block block(int l) {
        return blocks[l];
    }

    public float[] lnfW() {
        return lnfW;
    }

    public float[] lnfB() {
        return lnfB;
    }

    public LinearWeights lmHead() {
        return lmHead;
    }

    /**
     * Bytes of the weight matrices and embeddings (the tensors int8 shrinks), scales included;
     * LayerNorm parameters and biases, float32 either way, are counted too.
     */
    public long weightBytes() {
        int c = cfg.dModel();
        long bytes = tokEmb.weightBytes() + 4L * posEmb.length + lmHead.weightBytes() + 8L * c;
        for (Block b : blocks) {
            bytes += b.qkv().weightBytes() + b.proj().weightBytes() + b.fc().weightBytes() + b.fcProj().weightBytes();
            bytes += 4L * (4 * c + 3 * c + c + 4 * c + c);    // ln1, ln2 (w, b) and the four biases
        }
        return bytes;
    }
}
