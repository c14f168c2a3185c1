package io.troupe.models.gpt;

import io.troupe.models.ModelShape;
import java.util.Locale;

/**
 * Shape of a GPT model. Byte-level vocabulary by default (256).
 *
 * @param dModel C, the residual width; must be divisible by {@code nHead}
 * @param seqLen T, the context length (position embedding rows)
 */
public record GptConfig(String name, int vocabSize, int dModel, int nLayer, int nHead, int seqLen, float lnEps)
    implements ModelShape {

    public GptConfig {
        require(vocabSize > 0, "vocab_size must be > 0: vocab_size=" + vocabSize);
        require(dModel > 0, "d_model must be > 0: d_model=" + dModel);
        require(nLayer > 0, "n_layer must be > 0: n_layer=" + nLayer);
        require(nHead > 0 && dModel % nHead == 0, "n_head must divide d_model: d_model=" + dModel + ", n_head="
            + nHead);
        require(seqLen > 0, "seq_len must be > 0: seq_len=" + seqLen);
        require(lnEps > 0, "ln_eps must be > 0: ln_eps=" + lnEps);
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    public int headDim() {
        return dModel / nHead;
    }

    /** The golden-parity model: d 32, 2 layers, 4 heads, seq 16. */
    public static GptConfig tiny() {
        return new GptConfig("tiny", 256, 32, 2, 4, 16, 1e-5f);
    }

    /** d 128, 4 layers, 4 heads, seq 64. */
    public static GptConfig small() {
        return new GptConfig("small", 256, 128, 4, 4, 64, 1e-5f);
    }

    /** d 256, 6 layers, 8 heads, seq 128. */
    public static GptConfig big() {
        return new GptConfig("big", 256, 256, 6, 8, 128, 1e-5f);
    }

    /** GPT-2-medium sized (d 1024, 24 layers, 16 heads, seq 1024), byte vocabulary. */
    public static GptConfig medium() {
        return new GptConfig("medium", 256, 1024, 24, 16, 1024, 1e-5f);
    }

    /** Parses a preset name: tiny, small, big, medium. */
    public static GptConfig preset(String name) {
        return switch (name.trim().toLowerCase(Locale.ROOT)) {
            case "tiny" -> tiny();
            case "small" -> small();
            case "big" -> big();
            case "medium" -> medium();
            default -> throw new IllegalArgumentException("unknown model '" + name
                + "': expected tiny, small, big or medium");
        };
    }

    /** The default global batch size (rows) the presets are benchmarked with. */
    public int defaultBatchSize() {
        return switch (name) {
            case "tiny" -> 2;
            case "medium" -> 8;
            default -> 16;
        };
    }
}
