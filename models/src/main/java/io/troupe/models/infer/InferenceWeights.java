package io.troupe.models.infer;

import io.troupe.models.ParamSpec;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.ShardedCheckpointReader;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import io.troupe.models.parallel.ParallelParameterLayout;
import io.troupe.models.parallel.StagePartition;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
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
    private final int firstBlock;
    private final int endBlock;
    private final String fingerprint;

    private InferenceWeights(GptConfig cfg, Quantization quantization, Map<String, float[]> p, int firstBlock,
                             int endBlock, String fingerprint) {
        this.cfg = cfg;
        this.quantization = quantization;
        this.firstBlock = firstBlock;
        this.endBlock = endBlock;
        this.fingerprint = fingerprint;
        int c = cfg.dModel();
        int v = cfg.vocabSize();
        boolean first = firstBlock == 0;
        boolean last = endBlock == cfg.nLayer();
        this.tokEmb = first ? EmbeddingTable.of(p.get("tok_emb.weight"), v, c, quantization) : null;
        this.posEmb = first ? p.get("pos_emb.weight") : null;
        this.blocks = new Block[cfg.nLayer()];
        for (int l = firstBlock; l < endBlock; l++) {
            String n = "blocks." + l + ".";
            blocks[l] = new Block(p.get(n + "ln1.weight"), p.get(n + "ln1.bias"),
                LinearWeights.of(p.get(n + "attn.qkv.weight"), p.get(n + "attn.qkv.bias"), 3 * c, c, quantization),
                LinearWeights.of(p.get(n + "attn.proj.weight"), p.get(n + "attn.proj.bias"), c, c, quantization),
                p.get(n + "ln2.weight"), p.get(n + "ln2.bias"),
                LinearWeights.of(p.get(n + "mlp.fc.weight"), p.get(n + "mlp.fc.bias"), 4 * c, c, quantization),
                LinearWeights.of(p.get(n + "mlp.proj.weight"), p.get(n + "mlp.proj.bias"), c, 4 * c, quantization));
        }
        this.lnfW = last ? p.get("ln_f.weight") : null;
        this.lnfB = last ? p.get("ln_f.bias") : null;
        this.lmHead = last ? LinearWeights.of(p.get("lm_head.weight"), null, v, c, quantization) : null;
    }

    /**
     * Builds from the whole model's parameters by name ({@link ParameterLayout#full} names); every
     * name must be present with its full shape.
     */
    public static InferenceWeights fromParameters(GptConfig cfg, Map<String, float[]> byName,
        Quantization quantization) {
        return fromParameters(cfg, byName, quantization, 0, cfg.nLayer());
    }

    /** Builds from a flat buffer in {@link ParameterLayout#full} order (a single-device Gpt's params). */
    public static InferenceWeights fromFlat(GptConfig cfg, float[] flat, Quantization quantization) {
        Map<String, float[]> p = new HashMap<>();
        for (ParamSpec s : ParameterLayout.full(cfg).specs()) {
            p.put(s.name(), Arrays.copyOfRange(flat, (int) s.localOffset(), (int) (s.localOffset() + s.numel())));
        }
        return new InferenceWeights(cfg, quantization, p, 0, cfg.nLayer(), null);
    }

    /** Loads a committed checkpoint (a step directory, or a run / checkpoints directory: its latest step). */
    public static InferenceWeights load(Path checkpoint, Quantization quantization) {
        return load(checkpoint, quantization, 0, -1);
    }

    /**
     * Loads only what a pipeline stage holding blocks {@code [firstBlock, endBlock)} needs (the
     * embeddings with block 0, ln_f and the head with the last block; -1 as {@code endBlock}: the last
     * block), from a checkpoint written under any training layout: tensor-parallel shards are joined,
     * and only the stage's parameters are read, without their AdamW moments. Every byte used is verified
     * (the CRC32C of each 64 KiB block read; a version-1 checkpoint, without block checksums, is verified
     * whole first), so a stage host reads and holds its share of the model.
     *
     * @throws IllegalArgumentException naming the range when it is outside the model's blocks
     */
    public static InferenceWeights load(Path checkpoint, Quantization quantization, int firstBlock, int endBlock) {
        Path dir = Checkpoints.resolve(checkpoint);
        try (ShardedCheckpointReader reader = ShardedCheckpointReader.open(dir)) {
            if (!reader.verifiesPartialReads()) {
                Checkpoints.verify(dir);
            }
            GptConfig cfg = reader.manifest().model();
            int end = endBlock < 0 ? cfg.nLayer() : endBlock;
            if (firstBlock < 0 || end <= firstBlock || end > cfg.nLayer()) {
                throw new IllegalArgumentException("stage blocks [" + firstBlock + ", " + end + ") outside the "
                    + cfg.nLayer() + " blocks of model " + cfg.name());
            }
            // the model's own placement: stage 0 holds the embeddings, the last stage ln_f and the head
            List<Integer> blocks = new ArrayList<>();
            if (firstBlock > 0) {
                blocks.add(firstBlock);
            }
            int stage = blocks.size();
            blocks.add(end - firstBlock);
            if (end < cfg.nLayer()) {
                blocks.add(cfg.nLayer() - end);
            }
            StagePartition partition = new StagePartition(blocks.stream().mapToInt(Integer::intValue).toArray());
            Map<String, float[]> p = reader.readParameters(ParallelParameterLayout.gpt(cfg, partition, false)
                .local(stage, 1, 0));
            return new InferenceWeights(cfg, quantization, p, firstBlock, end, fingerprint(reader.manifest()));
        }
    }

    /**
     * The whole model's float32 parameters by name from a committed checkpoint (a step directory, or a
     * run / checkpoints directory: its latest step), every byte verified as {@link #load} does: the
     * input of a forward on a device ({@link DeviceKvCachedGpt}), which uploads them as they are.
     */
    public static Map<String, float[]> loadParameters(Path checkpoint) {
        Path dir = Checkpoints.resolve(checkpoint);
        try (ShardedCheckpointReader reader = ShardedCheckpointReader.open(dir)) {
            if (!reader.verifiesPartialReads()) {
                Checkpoints.verify(dir);
            }
            GptConfig cfg = reader.manifest().model();
            StagePartition whole = new StagePartition(new int[] {cfg.nLayer()});
            return reader.readParameters(ParallelParameterLayout.gpt(cfg, whole, false).local(0, 1, 0));
        }
    }

    private static InferenceWeights fromParameters(GptConfig cfg, Map<String, float[]> byName,
                                                   Quantization quantization, int firstBlock, int endBlock) {
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
        return new InferenceWeights(cfg, quantization, p, firstBlock, endBlock, null);
    }

    private InferenceWeights(InferenceWeights w, String fingerprint) {
        this.cfg = w.cfg;
        this.quantization = w.quantization;
        this.tokEmb = w.tokEmb;
        this.posEmb = w.posEmb;
        this.blocks = w.blocks;
        this.lnfW = w.lnfW;
        this.lnfB = w.lnfB;
        this.lmHead = w.lmHead;
        this.firstBlock = w.firstBlock;
        this.endBlock = w.endBlock;
        this.fingerprint = fingerprint;
    }

    /**
     * The {@link #fingerprint} of the checkpoint {@link #load} would read at {@code checkpoint} now (a run
     * directory's latest step), from its manifest alone: no shard is read.
     *
     * @throws IllegalArgumentException (or an unchecked I/O error) naming the directory when it holds no
     *                                  readable committed checkpoint
     */
    public static String fingerprintOf(Path checkpoint) {
        return fingerprint(Checkpoints.readManifest(Checkpoints.resolve(checkpoint)));
    }

    /**
     * What identifies a checkpoint's contents wherever it is read: the model, the step and the CRC32C
     * of every shard file (from the verified manifest). Two hosts that read the same checkpoint, from
     * any path, agree on it.
     */
    static String fingerprint(io.troupe.models.checkpoint.Manifest m) {
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        for (io.troupe.models.checkpoint.Manifest.FileEntry f : m.files()) {
            crc.update(f.name().getBytes(java.nio.charset.StandardCharsets.UTF_8));
            crc.update(java.nio.ByteBuffer.allocate(16).putLong(f.bytes()).putLong(f.crc32c()).flip());
        }
        return String.format(java.util.Locale.ROOT, "%s step %d files %d crc32c %08x", m.model().name(), m.step(),
            m.files().size(), crc.getValue());
    }

    /**
     * The checkpoint these weights came from ({@link #load}), or null for weights built in memory.
     */
    public String fingerprint() {
        return fingerprint;
    }

    /** First block held: 0 unless these are a pipeline stage's weights. */
    public int firstBlock() {
        return firstBlock;
    }

    /** End of the blocks held (exclusive): n_layer unless these are a pipeline stage's weights. */
    public int endBlock() {
        return endBlock;
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

    /** @throws IllegalStateException for a block these (stage) weights do not hold */
    public Block block(int l) {
        Block b = blocks[l];
        if (b == null) {
            throw new IllegalStateException("block " + l + " is not held: these weights hold blocks [" + firstBlock
                + ", " + endBlock + ")");
        }
        return b;
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
        long bytes = (tokEmb == null ? 0 : tokEmb.weightBytes() + 4L * posEmb.length)
            + (lmHead == null ? 0 : lmHead.weightBytes() + 8L * c);
        for (int l = firstBlock; l < endBlock; l++) {
            Block b = blocks[l];
            bytes += b.qkv().weightBytes() + b.proj().weightBytes() + b.fc().weightBytes() + b.fcProj().weightBytes();
            bytes += 4L * (4 * c + 3 * c + c + 4 * c + c);    // ln1, ln2 (w, b) and the four biases
        }
        return bytes;
    }
}
